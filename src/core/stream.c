/*
 * stream.c -- gust_stream_t (buffered socket with callbacks) and outgoing
 * connections (evdns lookup, non-blocking connect, timeout, and the client
 * side of TLS: contexts, the non-blocking handshake, SNI, verification).
 *
 * A TLS stream differs only in how bytes cross the socket: SSL_read and
 * SSL_write instead of recv and send (read and writev for a pipe). OpenSSL
 * may need the opposite readiness to make progress (a read that must
 * write, a write that must read); the tls_*_wants_* flags remember that so
 * the other event resumes the stalled direction.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "core.h"
#include "stream.h"

#define READ_CHUNK 65536

const char gust_err_closed[] = "closed";

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);

static int is_socket(int fd) {
    struct stat sb;
    return fd >= 0 && fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode);
}

/* recv() for a socket (no file layer), read() for a pipe. */
static ssize_t read_fd(gust_stream_t *st, void *buf, size_t len) {
    return st->is_sock ? recv(st->fd, buf, len, 0) : read(st->fd, buf, len);
}

gust_stream_t *gust_stream_new(gust_core_t *s, int fd) {
    gust_stream_t *st = gust_calloc(1, sizeof *st);
    st->core = s;
    st->fd = fd;
    st->is_sock = is_socket(fd);
    st->refs = 1;
    st->max_buffer = 100 * 1024 * 1024;
    st->in = evbuffer_new();
    st->out = evbuffer_new();
    event_assign(&st->rev, s->base, fd, EV_READ | EV_PERSIST, on_readable, st);
    event_assign(&st->wev, s->base, fd, EV_WRITE | EV_PERSIST, on_writable, st);
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    st->in_list = 1;
    return st;
}

/* Gives a stream made with fd -1 its socket. */
void gust_stream_set_fd(gust_stream_t *st, int fd) {
    gust_core_t *s = st->core;
    st->fd = fd;
    st->is_sock = is_socket(fd);
    event_assign(&st->rev, s->base, fd, EV_READ | EV_PERSIST, on_readable, st);
    event_assign(&st->wev, s->base, fd, EV_WRITE | EV_PERSIST, on_writable, st);
}

void gust_stream_incref(gust_stream_t *st) { st->refs++; }

static void unlink_stream(gust_stream_t *st) {
    if (!st->in_list)
        return;
    gust_core_t *s = st->core;
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->in_list = 0;
}

void gust_stream_close(gust_stream_t *st, const char *err) {
    if (st->closed)
        return;
    st->closed = 1;
    st->err = err ? err : gust_err_closed;
    event_del(&st->rev);
    event_del(&st->wev);
    st->reading = st->writing = 0;
    /* A best-effort close_notify; a peer that is gone just misses it. The
     * session itself goes with the stream's memory. */
    if (st->tls.ssl && !st->eof && !st->tls.dead)
        SSL_shutdown(st->tls.ssl);
    ERR_clear_error();
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    unlink_stream(st);
    if (st->access) {
        /* A connection taken over from HTTP (a WebSocket): one access log
         * line for the whole session, now that it ended. */
        gust_core_log_access(st->core, st->access, 101, st->bytes_out);
        gust_access_free(st->access);
        st->access = NULL;
    }
    if (st->on_close) {
        gust_stream_incref(st);
        st->on_close(st, st->arg);
        gust_stream_free(st);
    }
}

void gust_stream_free(gust_stream_t *st) {
    if (!st || --st->refs > 0)
        return;
    st->on_close = NULL;
    gust_stream_close(st, NULL);
    gust_tls_close(&st->tls, 0);
    evbuffer_free(st->in);
    evbuffer_free(st->out);
    gust_free(st);
}

void gust_stream_read_start(gust_stream_t *st) {
    if (st->reading || st->closed || st->eof)
        return;
    st->reading = 1;
    /* A plain socket's read event is edge-triggered (gust_read_again):
     * epoll then does not poll it again at every wait. TLS stays
     * level-triggered (OpenSSL may hold bytes it read ahead). */
    if (!event_pending(&st->rev, EV_READ, NULL)) {
        short et = st->is_sock && !st->tls.ssl ? EV_ET | EV_CLOSED : 0;
        event_assign(&st->rev, st->core->base, st->fd, EV_READ | EV_PERSIST | et, on_readable, st);
    }
    event_add(&st->rev, NULL);
}

void gust_stream_read_stop(gust_stream_t *st) {
    if (!st->reading)
        return;
    st->reading = 0;
    if (!st->tls.write_wants_read) /* else a stalled TLS write still needs it */
        event_del(&st->rev);
}

static size_t flush_out(gust_stream_t *st);
static void arm_write(gust_stream_t *st);

static void on_readable(evutil_socket_t fd, short what, void *arg) {
    gust_stream_t *st = arg;
    const char *err = NULL;
    ssize_t n;
    int full = 0;
    /* Held throughout: a callback may drop the owner's reference. */
    gust_stream_incref(st);
    if (st->tls.write_wants_read) {
        st->tls.write_wants_read = 0;
        if (!st->reading)
            event_del(&st->rev);
        arm_write(st);
        if (st->closed || !st->reading)
            goto out;
    }
    if (st->tls.ssl) {
        int eof = 0;
        n = gust_tls_read(&st->tls, st->in, st->max_buffer, &eof, &err);
        if (st->tls.read_wants_write)
            event_add(&st->wev, NULL);
        if (n == -2)
            goto out;
        if (eof)
            n = 0; /* what was read is in st->in: an EOF after data */
    } else {
        if (evbuffer_get_length(st->in) == 0) {
            /* Nothing buffered (the usual case: each read is consumed
             * whole): read into the core's buffer and copy what came,
             * rather than reserve a fresh READ_CHUNK every time. */
            n = read_fd(st, st->core->rbuf, sizeof st->core->rbuf);
            if (n > 0)
                evbuffer_add(st->in, st->core->rbuf, (size_t)n);
            full = n == (ssize_t)sizeof st->core->rbuf;
        } else {
            struct evbuffer_iovec v;
            if (evbuffer_reserve_space(st->in, READ_CHUNK, &v, 1) < 1)
                goto out;
            n = read_fd(st, v.iov_base, v.iov_len);
            full = n > 0 && (size_t)n == v.iov_len;
            int e = errno;
            v.iov_len = n > 0 ? (size_t)n : 0;
            evbuffer_commit_space(st->in, &v, 1);
            errno = e;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            goto out;
        if (n < 0)
            err = strerror(errno);
    }
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
    if (st->reading && !st->closed)
        gust_read_again(&st->rev, full, what); /* edge-triggered */
out:
    gust_stream_free(st);
}

/* One SSL_write of the front of the output; the bytes it took, 0 to wait
 * (the flags say for what), -1 when the stream closed. */
static int tls_write_some(gust_stream_t *st) {
    const char *err = NULL;
    int n = gust_tls_write(&st->tls, st->out, &err);
    if (n > 0)
        st->bytes_out += (uint64_t)n;
    if (n < 0)
        gust_stream_close(st, strcmp(err, "closed") == 0 ? gust_err_closed : err);
    return n;
}

/* Writes what the socket takes; 0 when all is out. */
static size_t flush_out(gust_stream_t *st) {
    while (!st->closed && evbuffer_get_length(st->out) > 0) {
        if (st->tls.ssl) {
            if (tls_write_some(st) <= 0)
                break;
            continue;
        }
        int n = evbuffer_write(st->out, st->fd);
        if (n > 0)
            st->bytes_out += (uint64_t)n;
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
    if (st->tls.write_wants_read) {
        event_del(&st->wev); /* writable is not what it waits for */
        event_add(&st->rev, NULL);
    } else {
        event_add(&st->wev, NULL);
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
    gust_stream_t *st = arg;
    gust_stream_incref(st);
    if (st->tls.read_wants_write) {
        st->tls.read_wants_write = 0;
        if (!st->writing)
            event_del(&st->wev);
        if (st->reading)
            on_readable(fd, EV_READ, st);
    }
    if (!st->closed && st->writing)
        arm_write(st);
    gust_stream_free(st);
}

/* Small pieces are gathered and sent in one send(): a socket's writev
 * goes through the file layer first, and sendmsg copies the iovec in;
 * either costs more than copying a WebSocket frame's few bytes. */
#define GATHER_MAX 2048

static ssize_t write_direct(gust_stream_t *st, const struct iovec *iov, int iovcnt) {
    if (!st->is_sock)
        return writev(st->fd, iov, iovcnt); /* a pipe */
    if (iovcnt == 1)
        return send(st->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total > GATHER_MAX) {
        struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
        return sendmsg(st->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    char buf[GATHER_MAX];
    for (size_t i = 0, at = 0; i < (size_t)iovcnt; at += iov[i++].iov_len)
        memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
    return send(st->fd, buf, total, MSG_NOSIGNAL | MSG_DONTWAIT);
}

size_t gust_stream_writev(gust_stream_t *st, const struct iovec *iov, int iovcnt) {
    if (st->closed)
        return 0;
    size_t skip = 0; /* bytes of iov the socket took at once */
    if (!st->writing && !st->tls.ssl && evbuffer_get_length(st->out) == 0) {
        /* Nothing queued: straight to the socket, and only what it does
         * not take goes through the buffer (most writes are one call). */
        ssize_t n = write_direct(st, iov, iovcnt);
        if (n > 0) {
            st->bytes_out += (uint64_t)n;
            skip = (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            gust_stream_incref(st);
            gust_stream_close(st, strerror(errno));
            gust_stream_free(st);
            return 0;
        }
    }
    for (int i = 0; i < iovcnt; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        evbuffer_add(st->out, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip);
        skip = 0;
    }
    size_t queued = evbuffer_get_length(st->out);
    if (queued == 0 || st->writing)
        return queued;
    /* A failed write closes, and on_close may drop the owner's reference. */
    gust_stream_incref(st);
    size_t left = flush_out(st);
    if (left > 0 && !st->writing) {
        st->writing = 1;
        if (st->tls.write_wants_read)
            event_add(&st->rev, NULL);
        else
            event_add(&st->wev, NULL);
    }
    gust_stream_free(st);
    return left;
}

size_t gust_stream_write(gust_stream_t *st, const void *data, size_t len) {
    struct iovec v = {(void *)data, len};
    return gust_stream_writev(st, &v, 1);
}

size_t gust_stream_pending(const gust_stream_t *st) {
    return st->closed ? 0 : evbuffer_get_length(st->out);
}

void gust_stream_close_all(gust_core_t *s) {
    while (s->streams)
        gust_stream_close(s->streams, NULL);
}

/* ---- connecting ------------------------------------------------------ */

struct gust_connect {
    gust_core_t *core;
    char *host;
    int port, fd;
    unsigned starting : 1, timed_out : 1;
    const char *deferred_err; /* a failure seen while still in gust_stream_connect */
    char msg[GUST_ERR_LEN];
    struct evdns_getaddrinfo_request *dns;
    struct event ev, timer;
    SSL_CTX *tls;
    gust_stream_t *st;    /* during the TLS handshake: owns fd */
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
    if (!st && c->st) {
        gust_stream_free(c->st); /* closes the fd */
        c->fd = -1;
    }
    c->st = NULL;
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

static int is_ip_literal(const char *host) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void handshake_step(gust_connect_t *c);

static void on_handshake_io(evutil_socket_t fd, short what, void *arg) { handshake_step(arg); }

/* Drives SSL_connect; waits for the readiness it asks for. */
static void handshake_step(gust_connect_t *c) {
    gust_stream_t *st = c->st;
    ERR_clear_error();
    int rc = SSL_connect(st->tls.ssl);
    if (rc == 1) {
        connect_end(c, st, NULL);
        return;
    }
    int e = SSL_get_error(st->tls.ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        event_del(&c->ev);
        event_assign(&c->ev, c->core->base, st->fd, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE,
                     on_handshake_io, c);
        event_add(&c->ev, NULL);
        return;
    }
    st->tls.dead = 1;
    long vr = SSL_get_verify_result(st->tls.ssl);
    unsigned long ee = ERR_peek_last_error();
    if (vr != X509_V_OK) {
        snprintf(c->msg, sizeof c->msg, "tls: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (ee) {
        snprintf(c->msg, sizeof c->msg, "tls: handshake failed: %s",
                 ERR_reason_error_string(ee) ? ERR_reason_error_string(ee) : "unknown");
    } else if (e == SSL_ERROR_SYSCALL && errno && errno != ECONNRESET) {
        snprintf(c->msg, sizeof c->msg, "tls: handshake failed: %s", strerror(errno));
    } else {
        snprintf(c->msg, sizeof c->msg, "tls: handshake failed: connection closed by peer");
    }
    ERR_clear_error();
    connect_end(c, NULL, c->msg);
}

static void start_handshake(gust_connect_t *c, int fd) {
    gust_stream_t *st = gust_stream_new(c->core, fd);
    c->st = st;
    c->fd = -1;
    st->tls.ssl = SSL_new(c->tls);
    if (!st->tls.ssl || SSL_set_fd(st->tls.ssl, fd) != 1) {
        connect_end(c, NULL, "tls: cannot make a session");
        return;
    }
    int ip = is_ip_literal(c->host);
    if (!ip)
        SSL_set_tlsext_host_name(st->tls.ssl, c->host);
    if (SSL_CTX_get_verify_mode(c->tls) & SSL_VERIFY_PEER) {
        X509_VERIFY_PARAM *param = SSL_get0_param(st->tls.ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, c->host)
                    : SSL_set1_host(st->tls.ssl, c->host);
        if (ok != 1) {
            connect_end(c, NULL, "tls: cannot set the host name to verify");
            return;
        }
    }
    handshake_step(c);
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
    if (c->tls) {
        start_handshake(c, fd);
        return;
    }
    gust_stream_t *st = gust_stream_new(c->core, fd);
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
    event_assign(&c->ev, c->core->base, c->fd, EV_WRITE, on_connected, c);
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
            snprintf(c->msg, sizeof c->msg, "dns: %s: %s", c->host, evutil_gai_strerror(result));
            connect_end(c, NULL, c->msg);
        }
        return;
    }
    start_connect(c, res->ai_addr, res->ai_addrlen);
    evutil_freeaddrinfo(res);
}

gust_connect_t *gust_stream_connect(gust_core_t *s, const char *host, int port, double timeout,
                                    gust_connect_cb done, void *arg) {
    gust_connect_opts_t o = {timeout, NULL};
    return gust_stream_connect_ex(s, host, port, &o, done, arg);
}

gust_connect_t *gust_stream_connect_ex(gust_core_t *s, const char *host, int port,
                                       const gust_connect_opts_t *opts, gust_connect_cb done,
                                       void *arg) {
    static int sigpipe_checked;
    if (!sigpipe_checked) {
        /* A peer's reset must be an error return, not the death of the
         * process: under plain luajit nobody else ignores SIGPIPE (the
         * gust executable does; LuaSocket does the same on load). */
        struct sigaction sa;
        if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
            signal(SIGPIPE, SIG_IGN);
        sigpipe_checked = 1;
    }
    gust_connect_t *c = gust_calloc(1, sizeof *c);
    c->core = s;
    c->host = gust_strdup(host);
    c->port = port;
    c->fd = -1;
    c->tls = opts->tls;
    c->done = done;
    c->arg = arg;
    c->starting = 1;
    evtimer_assign(&c->timer, s->base, on_connect_timer, c);
    event_assign(&c->ev, s->base, -1, 0, NULL, NULL);
    double timeout = opts->timeout;
    if (timeout > 0) {
        struct timeval tv = gust_timeval(timeout);
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
