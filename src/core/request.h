/*
 * request.h -- gust_request_t: one request and its response, apart from
 * the connection that carried it, and the handler interface through which
 * the core hands requests to whoever serves them (the Lua bindings, a C
 * handler of gust_handle(), a test).
 *
 * HTTP/1.1 is one producer of requests: a connection carries one at a
 * time, in order. A protocol that multiplexes (HTTP/2) makes one request
 * per stream, each with its own response state; the handler cannot tell.
 *
 * Life cycle: on_request hands the request over. It stays valid until
 * on_end: the response was finished, the request was aborted or detached,
 * or the connection went away. A handler keeps its own per-request state in
 * `ctx` and must forget the request in on_end.
 */
#ifndef GUST_REQUEST_H
#define GUST_REQUEST_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "gust.h"
#include "http_parser.h"
#include "http_response.h"

typedef struct gust_conn gust_conn_t;
struct evbuffer;
struct ssl_st;

typedef struct gust_request_handler {
    /* A complete request (headers and body) to answer, now or later. */
    void (*on_request)(gust_request_t *r, void *arg);
    /* The client closed its side while the request is in flight; the
     * handler may still answer a half-closed peer. At most once. */
    void (*on_client_left)(gust_request_t *r, void *arg);
    /* A gust_request_flush() that returned 0 is done: ok when its output
     * reached the socket, 0 when the connection failed first. */
    void (*on_flushed)(gust_request_t *r, int ok, void *arg);
    /* The request is over: forget it. Never called from inside
     * on_request's caller's response functions before they returned. */
    void (*on_end)(gust_request_t *r, void *arg);
} gust_request_handler_t;

struct gust_request {
    gust_conn_t *conn;              /* NULL once the request is over */
    const gust_http_request_t *msg; /* the parsed request */
    const gust_request_handler_t *handler;
    void *handler_arg;
    void *ctx; /* the handler's state for this request */
    const char *path, *query;
    size_t path_len, query_len;
    int resp_status; /* once the head went out */
    unsigned started : 1, chunked : 1, told_left : 1, flushing : 1, keep_alive : 1;
    void (*on_close)(gust_request_t *r, void *arg); /* gust_request_on_close() */
    void *on_close_arg;
};

/*
 * Ends the response: `hd` (NULL after gust_request_flush() started it) and
 * the body in `nbody` pieces. A 200 answer to GET or HEAD gets a strong
 * ETag unless the head has one, and 304 without a body when the client's
 * If-None-Match matches.
 * @return 0, or -1 when the request was already over
 */
int gust_request_finish(gust_request_t *r, gust_http_head_t *hd, const struct iovec *body,
                        int nbody);

/*
 * Sends the head (the first time; `hd` is then required) and the body
 * pieces now, chunked on HTTP/1.1.
 * @return 1 when the output is all out, 0 when it is queued (on_flushed
 *         follows), -1 when the request is over
 */
int gust_request_flush(gust_request_t *r, gust_http_head_t *hd, const struct iovec *body,
                       int nbody);

/* Ends the response with `length` bytes of the open file `fd` from
 * `offset` (sendfile, or mapped for TLS). Takes ownership of fd.
 * @return 0, or -1 when the request was over or a flush() came first */
int gust_request_send_file(gust_request_t *r, gust_http_head_t *hd, int fd, off_t offset,
                           off_t length);

/* Takes the connection away from HTTP (an Upgrade): the bytes read past the
 * request move to `rest`, the TLS session to *ssl. The request is over.
 * @return the fd, GUST_DETACH_CLOSED when the connection failed or is gone,
 *         GUST_DETACH_STARTED when the response has started */
#define GUST_DETACH_CLOSED (-1)
#define GUST_DETACH_STARTED (-2)
int gust_request_detach(gust_request_t *r, struct evbuffer *rest, struct ssl_st **ssl);

/* Cuts the connection: the only honest end of a response that failed after
 * it started. */
void gust_request_abort(gust_request_t *r);

/* A handler failed: a 500 when nothing was sent yet, else a cut. */
void gust_request_fail(gust_request_t *r);

/* Whether the client is gone (left, or the request is over). */
static inline int gust_request_gone(const gust_request_t *r) { return !r->conn || r->told_left; }

int gust_request_is_tls(const gust_request_t *r);
/* The access log's view of the request (borrowed strings). */
void gust_request_access(const gust_request_t *r, gust_access_t *a);
int gust_request_http_minor(const gust_request_t *r);

/* Called by the connection code (conn.c). */
void gust_request_begin(gust_request_t *r, gust_conn_t *c, const gust_http_request_t *msg);
void gust_request_client_left(gust_request_t *r);
void gust_request_flushed(gust_request_t *r, int ok);
void gust_request_over(gust_request_t *r); /* the request ends: on_end, forget conn */

#endif
