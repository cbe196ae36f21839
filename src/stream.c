/*
 * stream.c -- gust_stream_t (buffered socket with callbacks) and outgoing
 * connections (evdns lookup, non-blocking connect, timeout, and the client
 * side of TLS: contexts, the non-blocking handshake, SNI, verification).
 *
 * A TLS stream differs only in how bytes cross the socket: SSL_read and
 * SSL_write instead of read and writev. OpenSSL may need the opposite
 * readiness to make progress (a read that must write, a write that must
 * read); the tls_*_wants_* flags remember that so the other event resumes
 * the stalled direction.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/util.h>

#include "server.h"
#include "stream.h"

#define READ_CHUNK 65536

const char gust_err_closed[] = "closed";

/* SSL_read until OpenSSL needs the socket again. Returns what read() would
 * for the last call: > 0 data, 0 end of stream, -1 with *err, or -2 when it
 * would block (after reading some bytes or none). */
static ssize_t tls_fill(gust_stream_t *st, const char **err) {
    ssize_t got = 0;
    for (;;) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(st->in, READ_CHUNK, &v, 1) < 1)
            return -2;
        ERR_clear_error();
        int n = SSL_read(st->ssl, v.iov_base, (int)v.iov_len);
        v.iov_len = n > 0 ? (size_t)n : 0;
        evbuffer_commit_space(st->in, &v, 1);
        if (n > 0) {
            got += n;
            if (evbuffer_get_length(st->in) > st->max_buffer)
                return got;
            continue;
        }
        switch (SSL_get_error(st->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            return got ? got : -2;
        case SSL_ERROR_WANT_WRITE:
            st->tls_read_wants_write = 1;
            event_add(&st->wev, NULL);
            return got ? got : -2;
        case SSL_ERROR_ZERO_RETURN:
            return got ? got : 0;
        case SSL_ERROR_SYSCALL:
            if (errno == 0 || errno == ECONNRESET)
                return got ? got : 0;
            st->tls_dead = 1;
            *err = strerror(errno);
            return -1;
        default:
            st->tls_dead = 1;
            *err = "tls: read failed";
            return -1;
        }
    }
}

static size_t flush_out(gust_stream_t *st);
static void arm_write(gust_stream_t *st);

static void on_readable(evutil_socket_t fd, short what, void *arg) {
    gust_stream_t *st = arg;
    const char *err = NULL;
    ssize_t n;
    if (st->tls_write_wants_read) {
        st->tls_write_wants_read = 0;
        if (!st->reading)
            event_del(&st->rev);
        gust_stream_incref(st);
        arm_write(st);
        int gone = st->closed;
        gust_stream_free(st);
        if (gone || !st->reading)
            return;
    }
    if (st->ssl) {
        n = tls_fill(st, &err);
        if (n == -2)
            return;
        if (n > 0 && st->tls_read_wants_write)
            n = n; /* the data goes up now; the write side resumes reading */
    } else {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(st->in, READ_CHUNK, &v, 1) < 1)
            return;
        n = read(fd, v.iov_base, v.iov_len);
        v.iov_len = n > 0 ? (size_t)n : 0;
        evbuffer_commit_space(st->in, &v, 1);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n < 0)
            err = strerror(errno);
    }
    gust_stream_incref(st);
    if (n < 0) {
        gust_stream_close(st, err);
    } else if (n == 0) {
        /* As Tornado: the peer's EOF closes the stream; what is buffered
         * can still be read. */
        st->eof = 1;
        gust_stream_close(st, NULL);
    } else if (evbuffer_get_length(st->in) > st->max_buffer) {
        gust_stream_close(st, "max_buffer_size exceeded");
    }
    if (st->on_read)
        st->on_read(st, st->arg);
    gust_stream_free(st);
}

/* One SSL_write of the front of the output; the bytes it took, 0 to wait
 * (the flags say for what), -1 when the stream closed. */
static int tls_write_some(gust_stream_t *st) {
    struct evbuffer_iovec v;
    if (evbuffer_peek(st->out, -1, NULL, &v, 1) < 1)
        return 0;
    /* After WANT_*, OpenSSL wants the same call repeated. */
    int len = st->tls_wlen ? st->tls_wlen : (int)(v.iov_len > 65536 ? 65536 : v.iov_len);
    ERR_clear_error();
    int n = SSL_write(st->ssl, v.iov_base, len);
    if (n > 0) {
        st->tls_wlen = 0;
        evbuffer_drain(st->out, (size_t)n);
        return n;
    }
    st->tls_wlen = len;
    switch (SSL_get_error(st->ssl, n)) {
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_WANT_READ:
        st->tls_write_wants_read = 1;
        return 0;
    case SSL_ERROR_SYSCALL:
        st->tls_dead = 1;
        gust_stream_close(st, errno ? strerror(errno) : gust_err_closed);
        return -1;
    default:
        st->tls_dead = 1;
        gust_stream_close(st, "tls: write failed");
        return -1;
    }
}

/* Writes what the socket takes; 0 when all is out. */
static size_t flush_out(gust_stream_t *st) {
    while (!st->closed && evbuffer_get_length(st->out) > 0) {
        if (st->ssl) {
            if (tls_write_some(st) <= 0)
                break;
            continue;
        }
        int n = evbuffer_write(st->out, st->fd);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                gust_stream_close(st, strerror(errno));
            break;
        }
        if (n == 0)
            break;
    }
    return st->closed ? 0 : evbuffer_get_length(st->out);
}

/* Flushes, then waits for the readiness the rest needs: writable, or for
 * TLS sometimes readable. on_drain fires once the output empties. */
static void arm_write(gust_stream_t *st) {
    if (flush_out(st) == 0) {
        if (st->writing) {
            st->writing = 0;
            event_del(&st->wev);
            if (st->on_drain)
                st->on_drain(st, st->arg);
        }
        return;
    }
    st->writing = 1;
    if (st->tls_write_wants_read) {
        event_del(&st->wev); /* writable is not what it waits for */
        event_add(&st->rev, NULL);
    } else {
        event_add(&st->wev, NULL);
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
    gust_stream_t *st = arg;
    gust_stream_incref(st);
    if (st->tls_read_wants_write) {
        st->tls_read_wants_write = 0;
        if (!st->writing)
            event_del(&st->wev);
        if (st->reading)
            on_readable(fd, EV_READ, st);
    }
    if (!st->closed && st->writing)
        arm_write(st);
    gust_stream_free(st);
}

size_t gust_stream_write(gust_stream_t *st, const void *data, size_t len) {
    if (st->closed)
        return 0;
    evbuffer_add(st->out, data, len);
    if (st->writing)
        return evbuffer_get_length(st->out);
    size_t left = flush_out(st);
    if (left > 0 && !st->writing) {
        st->writing = 1;
        if (st->tls_write_wants_read)
            event_add(&st->rev, NULL);
        else
            event_add(&st->wev, NULL);
    }
    return left;
}

size_t gust_stream_pending(const gust_stream_t *st) {
    return st->closed ? 0 : evbuffer_get_length(st->out);
}

void gust_stream_close_all(gust_server_t *s) {
    while (s->streams)
        gust_stream_close(s->streams, NULL);
}

/* ---- connecting ------------------------------------------------------ */

struct gust_connect {
    gust_server_t *server;
    char *host;
    int port, fd;
    unsigned starting : 1, timed_out : 1;
    const char *deferred_err; /* a failure seen while still in gust_stream_connect */
    char msg[GUST_ERR_LEN];
    struct evdns_getaddrinfo_request *dns;
    struct event ev, timer;
    gust_connect_cb done; /* NULL once cancelled */
    void *arg;
};

static void on_connect_timer(evutil_socket_t fd, short what, void *arg);

/* Reports and frees. A failure found before gust_stream_connect returned is
 * reported from the loop instead, so the caller always gets its handle
 * first and the callback never runs inside the call. */
static void connect_end(gust_connect_t *c, gust_stream_t *st, const char *err) {
    if (c->starting) {
        c->deferred_err = err;
        event_del(&c->timer);
        event_active(&c->timer, EV_TIMEOUT, 0);
        return;
    }
    event_del(&c->ev);
    event_del(&c->timer);
    if (!st && c->fd >= 0)
        close(c->fd);
    gust_connect_cb done = c->done;
    void *arg = c->arg;
    char msg[GUST_ERR_LEN];
    snprintf(msg, sizeof msg, "%s", err ? err : "");
    gust_free(c->host);
    gust_free(c);
    if (done)
        done(st, st ? NULL : msg, arg);
    else if (st)
        gust_stream_free(st);
}

static void on_connect_timer(evutil_socket_t fd, short what, void *arg) {
    gust_connect_t *c = arg;
    if (c->deferred_err) {
        connect_end(c, NULL, c->deferred_err);
        return;
    }
    if (c->dns) {
        c->timed_out = 1; /* on_resolved reports it, called by the cancel */
        evdns_getaddrinfo_cancel(c->dns);
        return;
    }
    connect_end(c, NULL, "timeout");
}

static void on_connected(evutil_socket_t fd, short what, void *arg) {
    gust_connect_t *c = arg;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        connect_end(c, NULL, err == ECONNREFUSED ? "connection refused" : strerror(err));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    gust_stream_t *st = gust_stream_new(c->server, fd);
    c->fd = -1;
    connect_end(c, st, NULL);
}

static void start_connect(gust_connect_t *c, const struct sockaddr *sa, socklen_t salen) {
    c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        connect_end(c, NULL, strerror(errno));
        return;
    }
    if (connect(c->fd, sa, salen) < 0 && errno != EINPROGRESS) {
        connect_end(c, NULL, errno == ECONNREFUSED ? "connection refused" : strerror(errno));
        return;
    }
    event_assign(&c->ev, c->server->base, c->fd, EV_WRITE, on_connected, c);
    event_add(&c->ev, NULL);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg) {
    gust_connect_t *c = arg;
    c->dns = NULL;
    if (result != 0) {
        if (res)
            evutil_freeaddrinfo(res);
        if (c->timed_out) {
            connect_end(c, NULL, "timeout");
        } else {
            snprintf(c->msg, sizeof c->msg, "dns: %s: %s", c->host,
                     evutil_gai_strerror(result));
            connect_end(c, NULL, c->msg);
        }
        return;
    }
    start_connect(c, res->ai_addr, res->ai_addrlen);
    evutil_freeaddrinfo(res);
}

gust_connect_t *gust_stream_connect(gust_server_t *s, const char *host, int port,
                                    double timeout, gust_connect_cb done, void *arg) {
    gust_connect_t *c = gust_calloc(1, sizeof *c);
    c->server = s;
    c->host = gust_strdup(host);
    c->port = port;
    c->fd = -1;
    c->done = done;
    c->arg = arg;
    c->starting = 1;
    evtimer_assign(&c->timer, s->base, on_connect_timer, c);
    event_assign(&c->ev, s->base, -1, 0, NULL, NULL);
    if (timeout > 0) {
        struct timeval tv = {(time_t)timeout, (suseconds_t)((timeout - (time_t)timeout) * 1e6)};
        evtimer_add(&c->timer, &tv);
    }
    /* Numeric addresses skip the resolver. */
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    char hostport[300];
    snprintf(hostport, sizeof hostport, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    if (evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss, &sslen) == 0) {
        start_connect(c, (struct sockaddr *)&ss, sslen);
    } else {
        if (!s->dns)
            s->dns = evdns_base_new(s->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                                 EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        struct evutil_addrinfo hints;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        char service[16];
        snprintf(service, sizeof service, "%d", port);
        c->dns = evdns_getaddrinfo(s->dns, host, service, &hints, on_resolved, c);
    }
    c->starting = 0;
    return c;
}

void gust_stream_connect_cancel(gust_connect_t *c) {
    if (!c)
        return;
    c->done = NULL;
    if (c->dns) {
        evdns_getaddrinfo_cancel(c->dns); /* on_resolved frees c */
        return;
    }
    connect_end(c, NULL, NULL);
}
