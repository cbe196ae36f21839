/*
 * tls.h -- the one home of TLS in gust: contexts for serving and for
 * clients, and the non-blocking read and write loops that server
 * connections (conn.c) and streams (stream.c, under the HTTP and WebSocket
 * clients) share. The client handshake lives with connecting (stream.c).
 */
#ifndef GUST_TLS_H
#define GUST_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct ssl_st;
struct ssl_ctx_st;
struct evbuffer;

/* A TLS session on a non-blocking socket, with what OpenSSL is waiting for. */
typedef struct gust_tls {
    struct ssl_st *ssl; /* owned; NULL for a plain socket */
    int wlen;           /* the SSL_write to repeat after WANT_* */
    unsigned read_wants_write : 1, write_wants_read : 1, dead : 1;
} gust_tls_t;

/* A context serving `cert` (a PEM chain) with `key` (NULL: in `cert`), or
 * NULL with the reason in err. */
struct ssl_ctx_st *gust_tls_server_ctx_new(const char *cert, const char *key, char *err,
                                           size_t errlen);

/* A client context: with `verify`, peers are checked against the system CA
 * store plus `ca_file` (PEM, may be NULL); without, anything is accepted.
 * NULL with the reason in err. SSL objects made from it hold their own
 * reference, so it may be freed (gust_tls_ctx_free) while they live. */
struct ssl_ctx_st *gust_tls_client_ctx_new(int verify, const char *ca_file, char *err,
                                           size_t errlen);
void gust_tls_ctx_free(struct ssl_ctx_st *ctx);

/* Starts a server-side session on fd; -1 when OpenSSL cannot. */
int gust_tls_accept(gust_tls_t *t, struct ssl_ctx_st *ctx, int fd);

/*
 * SSL_read into `in` until OpenSSL needs the socket again (level-triggered
 * events never report what OpenSSL has already decrypted) or more than
 * `max` bytes are buffered.
 * @return the bytes read (*eof set when the stream ended after them), -2
 *         when nothing is there yet (t->read_wants_write: wait for
 *         writable), -1 on failure with the reason in *err
 */
ssize_t gust_tls_read(gust_tls_t *t, struct evbuffer *in, size_t max, int *eof, const char **err);

/*
 * One SSL_write of the front of `out`.
 * @return the bytes taken, 0 to wait (for readable when
 *         t->write_wants_read, else writable), -1 on failure with *err
 */
int gust_tls_write(gust_tls_t *t, struct evbuffer *out, const char **err);

/* Ends the session: a best-effort close_notify unless the session failed
 * or `notify` is 0, then frees it. */
void gust_tls_close(gust_tls_t *t, int notify);

#endif
