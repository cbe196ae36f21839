/*
 * tls.c -- TLS contexts and the non-blocking read/write loops (tls.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gust.h"
#include "tls.h"

#define READ_CHUNK 16384
#define WRITE_MAX 65536

struct ssl_ctx_st *gust_tls_server_ctx_new(const char *cert, const char *key, char *err,
                                           size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "tls: cannot create a context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "tls: cannot load the certificate %s: %s", cert,
                 ERR_reason_error_string(ERR_get_error()));
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key ? key : cert, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "tls: cannot load the key %s: %s", key ? key : cert,
                 ERR_reason_error_string(ERR_get_error()));
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "tls: the key does not match the certificate %s", cert);
    } else {
        return ctx;
    }
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

int gust_tls_check(const char *cert, const char *key, char *err, size_t errlen) {
    SSL_CTX *ctx = gust_tls_server_ctx_new(cert, key, err, errlen);
    SSL_CTX_free(ctx);
    return ctx ? 0 : -1;
}

struct ssl_ctx_st *gust_tls_client_ctx_new(int verify, const char *ca_file, char *err,
                                           size_t errlen) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        goto err;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Partial writes let one SSL_write take what the socket takes; the
     * buffer may move between a WANT_WRITE and its retry (evbuffer). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Many servers close without close_notify; HTTP framing catches a
     * truncated body, so a bare EOF is an ordinary end of stream. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_set_default_verify_paths(ctx) != 1)
            goto err;
        if (ca_file && *ca_file && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            unsigned long e = ERR_peek_last_error();
            snprintf(err, errlen, "tls: cannot load ca_certs %s: %s", ca_file,
                     e ? ERR_reason_error_string(e) : "unknown error");
            ERR_clear_error();
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
err : {
    unsigned long e = ERR_peek_last_error();
    snprintf(err, errlen, "tls: %s", e ? ERR_reason_error_string(e) : "cannot make a context");
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}
}

void gust_tls_ctx_free(struct ssl_ctx_st *ctx) { SSL_CTX_free(ctx); }

int gust_tls_accept(gust_tls_t *t, struct ssl_ctx_st *ctx, int fd) {
    memset(t, 0, sizeof *t);
    t->ssl = SSL_new(ctx);
    if (!t->ssl || !SSL_set_fd(t->ssl, fd)) {
        SSL_free(t->ssl);
        t->ssl = NULL;
        return -1;
    }
    SSL_set_accept_state(t->ssl);
    SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return 0;
}

ssize_t gust_tls_read(gust_tls_t *t, struct evbuffer *in, size_t max, int *eof, const char **err) {
    ssize_t got = 0;
    for (;;) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(in, READ_CHUNK, &v, 1) < 1)
            return got ? got : -2;
        ERR_clear_error();
        int n = SSL_read(t->ssl, v.iov_base, (int)v.iov_len);
        v.iov_len = n > 0 ? (size_t)n : 0;
        evbuffer_commit_space(in, &v, 1);
        if (n > 0) {
            got += n;
            if (evbuffer_get_length(in) > max)
                return got;
            continue;
        }
        switch (SSL_get_error(t->ssl, n)) {
        case SSL_ERROR_WANT_WRITE:
            t->read_wants_write = 1; /* a handshake step that must write first */
            return got ? got : -2;
        case SSL_ERROR_WANT_READ: return got ? got : -2;
        case SSL_ERROR_ZERO_RETURN:
            *eof = 1; /* close_notify; what came before it still counts */
            return got;
        case SSL_ERROR_SYSCALL:
            t->dead = 1;
            if (errno == 0 || errno == ECONNRESET) {
                *eof = 1;
                return got;
            }
            *err = strerror(errno);
            return got ? got : -1;
        default:
            t->dead = 1; /* a failed handshake or a corrupt record */
            *err = SSL_is_init_finished(t->ssl) ? "tls: read failed" : "tls: handshake failed";
            ERR_clear_error();
            return got ? got : -1;
        }
    }
}

int gust_tls_write(gust_tls_t *t, struct evbuffer *out, const char **err) {
    struct evbuffer_iovec v;
    if (evbuffer_peek(out, -1, NULL, &v, 1) < 1)
        return 0;
    /* After WANT_*, OpenSSL wants the same call repeated. */
    int len = t->wlen ? t->wlen : (int)(v.iov_len > WRITE_MAX ? WRITE_MAX : v.iov_len);
    ERR_clear_error();
    int n = SSL_write(t->ssl, v.iov_base, len);
    if (n > 0) {
        t->wlen = 0;
        evbuffer_drain(out, (size_t)n);
        return n;
    }
    t->wlen = len;
    switch (SSL_get_error(t->ssl, n)) {
    case SSL_ERROR_WANT_WRITE: return 0;
    case SSL_ERROR_WANT_READ: t->write_wants_read = 1; return 0;
    case SSL_ERROR_SYSCALL:
        t->dead = 1;
        *err = errno ? strerror(errno) : "closed";
        return -1;
    default:
        t->dead = 1;
        *err = "tls: write failed";
        ERR_clear_error();
        return -1;
    }
}

void gust_tls_close(gust_tls_t *t, int notify) {
    if (!t->ssl)
        return;
    if (notify && !t->dead)
        SSL_shutdown(t->ssl); /* one non-blocking close_notify */
    ERR_clear_error();
    SSL_free(t->ssl);
    t->ssl = NULL;
}
