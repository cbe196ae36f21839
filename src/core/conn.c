/*
 * conn.c -- gust_conn_t (conn.h): HTTP/1.1 over one accepted socket.
 *
 * A connection owns its socket, two evbuffers and three events (read, write,
 * one timer for whichever deadline applies). It reads, feeds the parser, and
 * hands each complete request to the listener's handler (request.c), one at
 * a time so that pipelined requests are answered in order. Output is written
 * at once when the socket takes it; only the rest waits for EV_WRITE, so a
 * keep-alive request costs one read and one write.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "conn.h"
#include "listener.h"
#include "mem.h"

/* Bytes read ahead of a request that is still being handled; past this the
 * connection stops reading until the handler finishes. */
#define READ_AHEAD_MAX (64 * 1024)
#define LINGER_SECONDS 2
#define READ_CHUNK 16384
/* Output queued by answered pipelined requests before the next is parsed. */
#define OUTPUT_MAX (1024 * 1024)

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void conn_process(gust_conn_t *c);

void gust_conn_incref(gust_conn_t *c) { c->refs++; }

void gust_conn_decref(gust_conn_t *c) {
    if (--c->refs > 0)
        return;
    gust_http_request_free(&c->msg);
    gust_free(c);
}

/* Deadlines are kept lazily (as nginx and Redis keep theirs): a keep-alive
 * request would otherwise move the timer in libevent three times (header
 * deadline, none while handled, idle deadline). Only a deadline earlier
 * than the armed timer re-arms it; a timer that fires before the current
 * deadline is armed again for the rest, and one that fires with no
 * deadline is left unarmed. */
static void arm_timer(gust_conn_t *c, const struct timeval *tv, double at) {
    evtimer_add(&c->timer, tv);
    c->timer_at = at;
}

/* A deadline `seconds` (tv: the same as a timeval) from now, or none
 * when tv is NULL. */
static void set_timer(gust_conn_t *c, const struct timeval *tv, double seconds) {
    if (!tv) {
        c->deadline = 0;
        return;
    }
    c->deadline = gust_now() + seconds;
    if (!c->timer_at || c->timer_at > c->deadline)
        arm_timer(c, tv, c->deadline);
}

static void set_reading(gust_conn_t *c, int on) {
    if (on == c->reading)
        return;
    c->reading = on;
    if (on)
        event_add(&c->rev, NULL);
    else
        event_del(&c->rev);
}

void gust_conn_accept(gust_listener_t *l, int fd, const struct sockaddr *sa, int salen) {
    gust_core_t *s = l->core;
    if (s->stopping) {
        close(fd);
        return;
    }
    gust_conn_t *c = gust_calloc(1, sizeof *c);
    c->core = s;
    c->listener = l;
    gust_listener_incref(l);
    c->fd = fd;
    c->refs = 1;
    c->state = CONN_IDLE;
    gust_http_request_init(&c->msg, &l->limits);
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->remote_ip,
                  sizeof c->remote_ip);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->remote_ip,
                  sizeof c->remote_ip);
    } else {
        strcpy(c->remote_ip, "unix");
    }
    c->is_tcp = sa->sa_family != AF_UNIX;
    if (s->tls_ctx && gust_tls_accept(&c->tls, s->tls_ctx, fd) != 0)
        gust_log(&s->log, GUST_LOG_ERROR, "tls: cannot set up a connection");
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    evtimer_assign(&c->timer, s->base, on_timer, c);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    gust_metrics_add(&s->metrics->connections_open, 1);
    set_reading(c, 1);
    set_timer(c, l->idle_tv, l->idle_s);
}

void gust_conn_close(gust_conn_t *c) {
    if (c->state == CONN_CLOSED)
        return;
    gust_core_t *s = c->core;
    int in_flight = c->state == CONN_HANDLING && c->req.conn;
    c->state = CONN_CLOSED;
    event_del(&c->rev);
    event_del(&c->wev);
    evtimer_del(&c->timer);
    gust_tls_close(&c->tls, c->fd >= 0);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    c->in = c->out = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    gust_metrics_add(&s->metrics->connections_open, -1);
    /* Tell the handler its client left before the request goes; the log
     * says so as nginx does (499), or keeps the status a cut response had. */
    if (in_flight) {
        gust_conn_log_access(c, c->req.started ? c->req.resp_status : 499, 0);
        gust_request_client_left(&c->req);
        gust_request_over(&c->req);
    }
    gust_listener_decref(c->listener);
    c->listener = NULL;
    gust_core_conn_gone(s);
    gust_conn_decref(c);
}

/* Queues `c` for conn_process() on the next loop iteration. */
static void schedule(gust_conn_t *c) {
    if (c->pending || c->state == CONN_CLOSED)
        return;
    c->pending = 1;
    gust_conn_incref(c);
    c->pending_next = c->core->pending;
    c->core->pending = c;
    gust_core_defer(c->core);
}

void gust_conn_process_pending(gust_core_t *s) {
    gust_conn_t *list = s->pending;
    s->pending = NULL;
    while (list) {
        gust_conn_t *c = list;
        list = c->pending_next;
        c->pending = 0;
        if (c->state != CONN_CLOSED)
            conn_process(c);
        gust_conn_decref(c);
    }
}

/* Writes at once when nothing is queued before (the common case: one send
 * per response, no buffer), and queues what the socket does not take. */
void gust_conn_write(gust_conn_t *c, const void *data, size_t len) {
    if (c->state == CONN_CLOSED || !len)
        return;
    if (!c->tls.ssl && !c->writing && evbuffer_get_length(c->out) == 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == (ssize_t)len)
            return;
        if (n > 0) {
            data = (const char *)data + n;
            len -= (size_t)n;
        } /* else an error the next gust_conn_send() meets again and handles */
    }
    evbuffer_add(c->out, data, len);
}

/* Half-closes and waits briefly for the peer's EOF, so that unread input
 * does not turn our last response into a reset (lingering close). A peer
 * that sent nothing beyond what was answered is simply closed. */
static void linger(gust_conn_t *c) {
    if (!c->unread_input && evbuffer_get_length(c->in) == 0) {
        gust_conn_close(c);
        return;
    }
    c->state = CONN_LINGER;
    shutdown(c->fd, SHUT_WR);
    set_reading(c, 1);
    static const struct timeval tv = {LINGER_SECONDS, 0};
    set_timer(c, &tv, LINGER_SECONDS);
}

void gust_conn_write_file(gust_conn_t *c, int fd, off_t offset, off_t length) {
    if (c->state == CONN_CLOSED) {
        close(fd);
        return;
    }
    if (!c->tls.ssl) {
        evbuffer_add_file(c->out, fd, (ev_off_t)offset, (ev_off_t)length); /* owns fd */
        return;
    }
    /* TLS encrypts in user space: the file is mapped, not sendfile()d. */
    struct evbuffer_file_segment *seg = evbuffer_file_segment_new(
        fd, (ev_off_t)offset, (ev_off_t)length, EVBUF_FS_DISABLE_SENDFILE | EVBUF_FS_CLOSE_ON_FREE);
    if (!seg) {
        close(fd);
        return;
    }
    evbuffer_add_file_segment(c->out, seg, 0, (ev_off_t)length);
    evbuffer_file_segment_free(seg); /* the buffer holds its own reference */
}

int gust_conn_send(gust_conn_t *c) {
    if (c->state == CONN_CLOSED)
        return 0;
    while (evbuffer_get_length(c->out) > 0) {
        if (c->tls.ssl) {
            const char *err = NULL;
            int n = gust_tls_write(&c->tls, c->out, &err);
            if (n < 0) {
                gust_conn_close(c);
                return 0;
            }
            if (n == 0)
                break;
            continue;
        }
        int n = evbuffer_write(c->out, c->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            gust_log(&c->core->log, GUST_LOG_DEBUG, "write to %s: %s", c->remote_ip,
                     strerror(errno));
            gust_conn_close(c);
            return 0;
        }
        if (n == 0)
            break;
    }
    if (evbuffer_get_length(c->out) > 0) {
        if (!c->writing) {
            c->writing = 1;
            event_add(&c->wev, NULL);
        }
        return 0;
    }
    if (c->writing) {
        c->writing = 0;
        event_del(&c->wev);
    }
    if (c->close_after && c->state != CONN_HANDLING)
        linger(c);
    return 1;
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    gust_conn_t *c = arg;
    if (c->tls.read_wants_write) {
        /* The handshake wrote what it had to: read on. */
        c->tls.read_wants_write = 0;
        if (evbuffer_get_length(c->out) == 0) {
            c->writing = 0;
            event_del(&c->wev);
        }
        on_read(fd, EV_READ, c);
        return;
    }
    gust_conn_incref(c);
    if (gust_conn_send(c)) {
        if (c->req.flushing)
            gust_request_flushed(&c->req, 1);
        if (c->state == CONN_IDLE && !c->close_after) {
            set_reading(c, 1);
            if (evbuffer_get_length(c->in) > 0)
                schedule(c);
        }
    }
    gust_conn_decref(c);
}

/* Writes a whole response the core makes itself (error pages, metrics):
 * status line, Server, Date, Content-Type, Content-Length and, unless the
 * connection stays open, Connection: close. */
void gust_conn_write_simple(gust_conn_t *c, int status, const char *ctype, const char *body,
                            size_t blen, int keep_alive) {
    gust_http_head_t hd;
    gust_http_head_init(&hd, status, NULL, 0);
    gust_http_head_add(&hd, "Content-Type", 12, ctype, strlen(ctype));
    gust_http_head_frame_t f = {c->msg.http_minor, gust_core_date(c->core), (long long)blen, 0, 0,
                                keep_alive};
    char storage[512];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    gust_http_head_write(&hd, &f, &b);
    gust_http_head_free(&hd);
    gust_buf_add(&b, body, blen);
    gust_conn_write(c, b.p, b.len);
    gust_buf_free(&b);
    gust_conn_log_access(c, status, blen);
}

/* Tornado's error page for `status`, into body; returns its length. */
size_t gust_error_page(int status, char *body, size_t size) {
    const char *reason = gust_http_reason(status);
    int n = snprintf(body, size, "<html><title>%d: %s</title><body>%d: %s</body></html>", status,
                     reason, status, reason);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* Answers a request the parser rejected, then closes. */
static void reject(gust_conn_t *c, int status, const char *why) {
    gust_log(&c->core->log, GUST_LOG_INFO, "%d %s from %s: %s", status, gust_http_reason(status),
             c->remote_ip, why ? why : "bad request");
    char body[160];
    size_t blen = gust_error_page(status, body, sizeof body);
    c->msg.http_minor = 1; /* a rejected request may not have said which */
    gust_conn_write_simple(c, status, "text/html; charset=UTF-8", body, blen, 0);
    c->close_after = 1;
    c->unread_input = 1; /* the rest of what it sent is never read */
    c->state = CONN_IDLE;
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    gust_conn_send(c);
}

/* Feeds one span to the parser, with the state changes that brings (the
 * header deadline, 100-continue). Returns the bytes used. */
static size_t feed(gust_conn_t *c, const char *data, size_t avail) {
    gust_http_request_t *r = &c->msg;
    gust_listener_t *l = c->listener;
    size_t used = gust_http_request_feed(r, data, avail);
    if (r->begun && c->state == CONN_IDLE) {
        c->state = CONN_READING;
        c->t_start = gust_now();
        /* A request that came whole in this read is handled at once. */
        if (!r->complete && !r->status)
            set_timer(c, l->header_tv, l->header_s);
    }
    if (r->headers_done && !r->complete && !c->sent_continue) {
        if (r->expect_continue && !r->status) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            gust_conn_write(c, cont, sizeof cont - 1);
            gust_conn_send(c);
        }
        c->sent_continue = 1; /* also marks: header deadline passed */
        if (c->state != CONN_CLOSED)
            set_timer(c, l->body_tv, l->body_s);
    }
    return used;
}

/* What a fed request leads to: a rejection, a dispatch, or more waiting.
 * Returns 1 when the connection is ready for the next request now. */
static int after_feed(gust_conn_t *c) {
    gust_http_request_t *r = &c->msg;
    if (r->status) {
        reject(c, r->status, r->error);
        return 0;
    }
    if (!r->complete)
        return 0;
    c->state = CONN_HANDLING;
    set_timer(c, NULL, 0);
    if (!c->sent_continue && !c->t_start)
        c->t_start = gust_now();
    c->in_dispatch = 1;
    gust_request_begin(&c->req, c, r);
    c->in_dispatch = 0;
    return c->state == CONN_IDLE;
}

/* Whether the connection may take another request from its input now. */
static int ready_for_input(gust_conn_t *c) {
    if ((c->state != CONN_IDLE && c->state != CONN_READING) || c->close_after)
        return 0; /* busy, gone, or a final response is on its way out */
    if (evbuffer_get_length(c->out) > OUTPUT_MAX) {
        set_reading(c, 0); /* on_write resumes once the peer reads */
        return 0;
    }
    return 1;
}

/* Parses what is buffered and dispatches complete requests until one is in
 * flight, the input runs out, or the connection closes. */
static void conn_process(gust_conn_t *c) {
    gust_http_request_t *r = &c->msg;
    while (ready_for_input(c)) {
        size_t avail;
        while (!r->complete && !r->status && (avail = evbuffer_get_contiguous_space(c->in))) {
            size_t used = feed(c, (const char *)evbuffer_pullup(c->in, avail), avail);
            if (c->state == CONN_CLOSED)
                return;
            evbuffer_drain(c->in, used);
        }
        if (!r->complete && !r->status && c->peer_eof) {
            gust_conn_close(c);
            return;
        }
        if (!after_feed(c))
            return;
    }
}

/* The same for bytes just read into the server's buffer, parsed where they
 * are: only what is left over (a partial or pipelined request) is copied
 * into the connection's input buffer. */
static void conn_process_mem(gust_conn_t *c, const char *data, size_t len) {
    while (len > 0 && ready_for_input(c)) {
        size_t used = feed(c, data, len);
        if (c->state == CONN_CLOSED)
            return;
        data += used;
        len -= used;
        if (c->msg.complete && len > 0) {
            /* Bytes past a complete request must be in the connection's own
             * buffer before its handler runs: it may detach the socket (an
             * Upgrade) and take them along. The buffered path goes on. */
            evbuffer_add(c->in, data, len);
            if (after_feed(c))
                conn_process(c);
            return;
        }
        if (!after_feed(c))
            break;
    }
    if (len > 0 && c->state != CONN_CLOSED && !c->unread_input)
        evbuffer_add(c->in, data, len);
}

/* Nagle only delays a connection's second small write, so a connection
 * that answers once and closes never needs the setsockopt (as nginx). */
void gust_conn_nodelay(gust_conn_t *c) {
    if (c->nodelay || !c->is_tcp || c->state == CONN_CLOSED)
        return;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->nodelay = 1;
}

void gust_conn_response_done(gust_conn_t *c, int keep_alive) {
    if (c->state != CONN_HANDLING)
        return;
    gust_request_over(&c->req);
    if (!keep_alive || c->peer_eof || c->core->stopping)
        c->close_after = 1;
    else
        gust_conn_nodelay(c);
    gust_http_request_reset(&c->msg, 0);
    c->sent_continue = 0;
    c->t_start = 0;
    c->state = CONN_IDLE;
    if (c->close_after) {
        if (evbuffer_get_length(c->out) == 0)
            linger(c);
        return;
    }
    set_timer(c, c->listener->idle_tv, c->listener->idle_s);
    set_reading(c, 1);
    /* Pipelined requests already buffered: the dispatcher loops when this
     * happens inside it; otherwise pick them up on the next iteration. */
    if (evbuffer_get_length(c->in) > 0 && !c->in_dispatch)
        schedule(c);
    else if (evbuffer_get_length(c->in) == 0)
        gust_http_request_reset(&c->msg, 1); /* idle: hold no buffers */
}

/* Hands the socket of the request in flight to someone else (an Upgrade:
 * WebSocket, a tunnel): what was read past the request moves to `rest`,
 * the TLS session to *ssl, and the HTTP side forgets the connection without
 * closing the fd. */
int gust_conn_detach(gust_conn_t *c, struct evbuffer *rest, struct ssl_st **ssl) {
    if (c->state != CONN_HANDLING || c->tls.dead)
        return GUST_DETACH_CLOSED;
    if (c->req.started || evbuffer_get_length(c->out) > 0)
        return GUST_DETACH_STARTED;
    int fd = c->fd;
    evbuffer_add_buffer(rest, c->in);
    *ssl = c->tls.ssl;
    c->tls.ssl = NULL;          /* goes with the socket: not shut down, not freed */
    gust_request_over(&c->req); /* detached, not a client that left */
    c->fd = -1;
    gust_conn_close(c);
    return fd;
}

/* A graceful stop. Closing an idle keep-alive connection at once races
 * with a client that is sending its next request right then (it would see
 * a reset), so an idle one gets a short grace: a request that arrives is
 * answered with Connection: close (the core is stopping), and one still
 * idle after it is closed. A busy connection closes after its response. */
void gust_conn_drain(gust_conn_t *c) {
    static const struct timeval grace = {GUST_DRAIN_IDLE_GRACE_MS / 1000,
                                         GUST_DRAIN_IDLE_GRACE_MS % 1000 * 1000};
    if (c->state == CONN_IDLE && evbuffer_get_length(c->out) == 0 &&
        evbuffer_get_length(c->in) == 0)
        set_timer(c, &grace, GUST_DRAIN_IDLE_GRACE_MS / 1000.0);
}

/* SSL_read until OpenSSL needs the socket again: -1 with errno EAGAIN when
 * nothing is there yet, 0 at the end of the stream. */
static ssize_t tls_read(gust_conn_t *c) {
    int eof = 0;
    const char *err = NULL;
    ssize_t n = gust_tls_read(&c->tls, c->in, READ_AHEAD_MAX, &eof, &err);
    if (c->tls.read_wants_write && !c->writing) {
        c->writing = 1; /* a handshake step that must write first */
        event_add(&c->wev, NULL);
    }
    if (n == -2) {
        errno = EAGAIN;
        return -1;
    }
    if (n < 0) {
        gust_log(&c->core->log, GUST_LOG_INFO, "%s with %s", err, c->remote_ip);
        errno = EPROTO;
    }
    return n;
}

/* Reads straight into the input buffer's free space: evbuffer_read() would
 * first ask the kernel how much is waiting, a syscall per request. */
static ssize_t read_some(gust_conn_t *c) {
    if (c->tls.ssl)
        return tls_read(c);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1)
        return -1;
    ssize_t n = read(c->fd, v.iov_base, v.iov_len);
    v.iov_len = n > 0 ? (size_t)n : 0;
    evbuffer_commit_space(c->in, &v, 1);
    return n;
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    gust_conn_t *c = arg;
    if (c->tls.write_wants_read) {
        c->tls.write_wants_read = 0;
        on_write(fd, EV_WRITE, c);
        if (c->state == CONN_CLOSED)
            return;
    }
    if (!c->tls.ssl && evbuffer_get_length(c->in) == 0 &&
        (c->state == CONN_IDLE || c->state == CONN_READING)) {
        /* Nothing pending: parse straight from the server's read buffer. */
        ssize_t n = read(fd, c->core->rbuf, sizeof c->core->rbuf);
        if (n > 0) {
            gust_conn_incref(c);
            conn_process_mem(c, c->core->rbuf, (size_t)n);
            gust_conn_decref(c);
            return;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n < 0)
            gust_log(&c->core->log, GUST_LOG_DEBUG, "read from %s: %s", c->remote_ip,
                     strerror(errno));
        gust_conn_close(c); /* EOF or error with nothing buffered */
        return;
    }
    ssize_t n = read_some(c);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (c->state == CONN_LINGER) {
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
        if (n <= 0)
            gust_conn_close(c);
        return;
    }
    if (n <= 0) {
        if (n < 0)
            gust_log(&c->core->log, GUST_LOG_DEBUG, "read from %s: %s", c->remote_ip,
                     strerror(errno));
        c->peer_eof = 1;
        set_reading(c, 0);
        if (c->state == CONN_HANDLING && n == 0 && evbuffer_get_length(c->out) == 0) {
            /* The handler learns its client left; it may still answer a
             * half-closed peer, and the connection closes after. */
            gust_request_client_left(&c->req);
            return;
        }
        if (c->state == CONN_HANDLING || evbuffer_get_length(c->in) == 0) {
            gust_conn_close(c);
            return;
        }
    }
    gust_conn_incref(c);
    if (c->state == CONN_HANDLING) {
        if (evbuffer_get_length(c->in) > READ_AHEAD_MAX)
            set_reading(c, 0);
    } else {
        conn_process(c);
    }
    gust_conn_decref(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    gust_conn_t *c = arg;
    c->timer_at = 0;
    if (!c->deadline)
        return;
    double left = c->deadline - gust_now();
    if (left > 0) {
        struct timeval tv = {(time_t)left, (suseconds_t)((left - (double)(time_t)left) * 1e6)};
        arm_timer(c, &tv, c->deadline);
        return;
    }
    if (c->state == CONN_READING)
        gust_log(&c->core->log, GUST_LOG_INFO, "%s timeout from %s, closing",
                 c->sent_continue ? "body" : "header", c->remote_ip);
    gust_conn_close(c);
}

void gust_conn_access(const gust_conn_t *c, gust_access_t *a) {
    const gust_http_request_t *r = &c->msg;
    memset(a, 0, sizeof *a);
    a->ip = c->remote_ip;
    a->t_start = c->t_start;
    a->http_minor = r->http_minor;
    if (!r->headers_done)
        return; /* a request rejected before its head was whole */
    a->method = llhttp_method_name((llhttp_method_t)r->method);
    a->uri = r->arena;
    a->uri_len = r->url_len;
    a->referer = gust_http_request_header(r, "referer", &a->referer_len);
    a->agent = gust_http_request_header(r, "user-agent", &a->agent_len);
}

void gust_conn_log_access(gust_conn_t *c, int status, size_t bytes) {
    gust_access_t a;
    if (c->core->log.access) {
        gust_conn_access(c, &a);
    } else {
        /* The metrics alone need only the start: no header look-ups. */
        memset(&a, 0, sizeof a);
        a.t_start = c->t_start;
    }
    gust_core_log_access(c->core, &a, status, bytes);
}
