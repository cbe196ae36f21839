/*
 * http_client.h -- the HTTP/1.1 client's fetch engine (http_client.c):
 * gust_http_fetch_t, one request over a pooled or new connection, with
 * timeouts and one retry, its response parsed by http_reply.h. The Lua
 * binding (src/lua/lua_httpclient.c) sits on top; nothing here knows Lua.
 */
#ifndef GUST_HTTP_CLIENT_H
#define GUST_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>
#include <llhttp.h>
#include <zlib.h>

#include "gust.h" /* GUST_ERR_LEN */
#include "http_reply.h"

typedef struct gust_core gust_core_t;

typedef struct gust_http_fetch gust_http_fetch_t;
typedef struct gust_http_pool gust_http_pool_t;

/* Progress: headers arrived (f->headers_ready), streamed body data is in
 * f->body, or the fetch ended (f->done, f->err). The callback may free the
 * fetch; it never runs inside gust_http_fetch_start(). */
typedef void (*gust_http_fetch_cb)(gust_http_fetch_t *f, void *arg);

typedef struct gust_http_fetch_opts {
    const char *host;
    int port;
    double connect_timeout, request_timeout; /* seconds; 0: none */
    double idle_timeout;                     /* for the pooled connection */
    size_t max_header_size, max_body_size;
    const char *ca_file; /* extra trust for TLS, or NULL */
    unsigned tls : 1, verify : 1, head : 1, decompress : 1,
        streaming : 1,     /* body pieces are reported as they come */
        headers_event : 1, /* the headers are reported when they come */
        idempotent : 1;    /* may be retried after a stale pooled connection */
} gust_http_fetch_opts_t;

struct gust_http_fetch {
    gust_core_t *core; /* NULL once the server went away */
    gust_http_fetch_opts_t o;
    char *host; /* o.host's copy */
    char *req;  /* the serialised request, owned */
    size_t req_len;
    struct gust_http_conn *conn; /* the connection it runs on */
    struct gust_connect *connecting;
    gust_http_reply_t reply;
    struct evbuffer *body; /* decoded body: all of it, or what is not taken yet */
    const char *err;       /* set when done with a failure */
    char errbuf[GUST_ERR_LEN];
    struct event timer, defer;
    gust_http_fetch_cb cb;
    void *arg;
    int in_cb;
    unsigned starting : 1, done : 1, headers_ready : 1, reused : 1, retried : 1, paused : 1,
        free_pending : 1, notify_pending : 1;
    gust_http_fetch_t *prev, *next; /* the pool's live fetches */
};

/*
 * Starts sending `req` (a complete request, head and body; ownership taken)
 * to o->host:o->port over an idle pooled connection for the same (scheme,
 * host, port, TLS settings), or a new one. Returns NULL, with err set, only
 * when a TLS context cannot be made (e.g. an unreadable ca_file).
 */
gust_http_fetch_t *gust_http_fetch_start(gust_core_t *s, const gust_http_fetch_opts_t *o, char *req,
                                         size_t req_len, gust_http_fetch_cb cb, void *arg,
                                         char *err, size_t errlen);

/* Streaming: the owner took what was in f->body; reading resumes when it
 * had stopped at the high-water mark. */
void gust_http_fetch_resume(gust_http_fetch_t *f);

/* Ends the fetch (closing its connection if the exchange is unfinished) and
 * frees it; safe from its own callback. NULL is a no-op. */
void gust_http_fetch_free(gust_http_fetch_t *f);

/* Closes every idle connection; returns how many. */
unsigned gust_http_pool_close_idle(gust_core_t *s);

/* Counts idle pooled connections (for tests). */
unsigned gust_http_pool_idle(gust_core_t *s);

/* The server is going away: closes idle connections, detaches live
 * fetches (their callbacks will not run again) and frees TLS contexts. */
void gust_http_pool_free(gust_core_t *s);

#endif
