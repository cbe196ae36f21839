/*
 * stream.h -- gust_stream_t: a buffered, non-blocking byte stream over a
 * socket, with C callbacks. The Lua IOStream (lua_stream.c) and the HTTP
 * client sit on it; connection setup (connect with async DNS, and for
 * outgoing TLS the OpenSSL handshake with certificate checks) is here too.
 * A TLS stream reads and writes through its SSL object; its owners see the
 * same plain bytes in `in` and `out`.
 *
 * Callbacks never free the stream: they may call gust_stream_close(), and
 * the memory goes when the owner calls gust_stream_free() (refcounted so a
 * callback in flight keeps it: an owner may drop its reference from inside
 * a callback, and then must not touch the stream after the call that led
 * there, such as gust_stream_write() or gust_stream_close()).
 */
#ifndef GUST_STREAM_H
#define GUST_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "tls.h"

typedef struct gust_core gust_core_t;
typedef struct gust_stream gust_stream_t;
struct ssl_st;
struct ssl_ctx_st;

/* st->err when the stream closed without an error (EOF, or closed by us). */
extern const char gust_err_closed[];

/* Called when input arrived, the peer closed (eof set), or an error closed
 * the stream (closed set, err says why). */
typedef void (*gust_stream_cb)(gust_stream_t *st, void *arg);

struct gust_stream {
    gust_core_t *core;
    int fd;
    int refs;
    unsigned closed : 1, eof : 1, reading : 1, writing : 1, connecting : 1, in_list : 1,
        is_sock : 1; /* recv/send, which skip the file layer; else read/writev (a pipe) */
    const char *err; /* why it closed, static */
    struct event rev, wev, tev;
    struct evbuffer *in, *out;
    size_t max_buffer; /* input beyond this closes with "max_buffer_size exceeded" */
    gust_stream_cb on_read, on_drain, on_close;
    void *arg;
    gust_tls_t tls;             /* TLS: owned, freed with the stream; tls.ssl NULL for plain */
    uint64_t bytes_out;         /* written to the socket so far */
    struct gust_access *access; /* owned: a detached request, logged (101) at close */
    gust_stream_t *prev, *next; /* the server's streams */
};

/* Adopts a connected, non-blocking fd. */
gust_stream_t *gust_stream_new(gust_core_t *s, int fd);
void gust_stream_set_fd(gust_stream_t *st, int fd);
void gust_stream_incref(gust_stream_t *st);
/* Drops a reference; the last one closes and frees. NULL is a no-op. */
void gust_stream_free(gust_stream_t *st);
void gust_stream_close(gust_stream_t *st, const char *err);
void gust_stream_read_start(gust_stream_t *st);
void gust_stream_read_stop(gust_stream_t *st);
/* Queues bytes and writes what the socket takes now; on_drain fires when
 * the output empties after a partial write. Returns the bytes still queued. */
size_t gust_stream_write(gust_stream_t *st, const void *data, size_t len);
/* The same for several pieces, sent together (one writev when nothing is
 * queued before them). */
struct iovec;
size_t gust_stream_writev(gust_stream_t *st, const struct iovec *iov, int iovcnt);
size_t gust_stream_pending(const gust_stream_t *st);

/* Connects to host:port (a name is resolved with evdns). `done` gets the
 * stream or NULL and an error ("connection refused", "timeout", ...). It is
 * never called from inside gust_stream_connect(). */
typedef void (*gust_connect_cb)(gust_stream_t *st, const char *err, void *arg);
typedef struct gust_connect gust_connect_t;
gust_connect_t *gust_stream_connect(gust_core_t *s, const char *host, int port, double timeout,
                                    gust_connect_cb done, void *arg);

typedef struct gust_connect_opts {
    double timeout;         /* seconds for DNS + connect + handshake; 0: none */
    struct ssl_ctx_st *tls; /* a context from gust_tls_client_ctx_new, or NULL */
} gust_connect_opts_t;

/* As gust_stream_connect; with opts->tls the stream is handed over only
 * after a TLS handshake that sent `host` as SNI (not for an IP literal) and,
 * when the context verifies, checked the peer's certificate and that it is
 * for `host`. Errors: "tls: certificate verify failed: <OpenSSL reason>",
 * "tls: handshake failed: <reason>", and those of a plain connect. */
gust_connect_t *gust_stream_connect_ex(gust_core_t *s, const char *host, int port,
                                       const gust_connect_opts_t *opts, gust_connect_cb done,
                                       void *arg);

/* Abandons a connect in progress; `done` will not be called. */
void gust_stream_connect_cancel(gust_connect_t *c);

/* The server is going away: close every stream (their owners' frees later
 * only release memory). */
void gust_stream_close_all(gust_core_t *s);

#endif
