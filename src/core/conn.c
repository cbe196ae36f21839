/*
 * conn.c -- gust_conn_t (conn.h): HTTP/1.1 over one accepted socket.
 *
 * A connection owns its socket and two events (read, one timer for
 * whichever deadline applies). It reads, feeds the parser, and hands each
 * complete request to the listener's handler (request.c), one at a time so
 * that pipelined requests are answered in order. Output is written at once
 * when the socket takes it; only the rest waits, in an output buffer, for a
 * write event, so a keep-alive request costs one read and one write and
 * touches neither.
 *
 * Memory follows the work: the parser and the request come from the core's
 * free list when a request begins arriving; the input buffer is made when
 * bytes must wait for the next read (a partial or pipelined request, TLS),
 * the output buffer and the write event when a write must wait. An idle
 * connection gives all of them back (conn_rest), so that it costs little
 * more than its struct.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
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
static int read_direct(gust_conn_t *c, short what);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void conn_process(gust_conn_t *c);

void gust_conn_incref(gust_conn_t *c) { c->refs++; }

static size_t in_len(const gust_conn_t *c) { return c->in ? evbuffer_get_length(c->in) : 0; }

static size_t out_len(const gust_conn_t *c) { return c->out ? evbuffer_get_length(c->out) : 0; }

/* The buffer *b, made if there is none yet. */
static struct evbuffer *buffer(struct evbuffer **b) {
    if (!*b && !(*b = evbuffer_new())) {
        fputs("gust: out of memory allocating a buffer\n", stderr);
        abort();
    }
    return *b;
}

static void buffer_free(struct evbuffer **b) {
    if (*b)
        evbuffer_free(*b);
    *b = NULL;
}

/* The state of the request arriving or in flight, taken from the core's
 * free list (or made) when there is none. A state on the free list is
 * between requests: its parser is at the start of one. */
static gust_conn_req_t *conn_req(gust_conn_t *c) {
    gust_conn_req_t *q = c->rq;
    if (q)
        return q;
    gust_core_t *s = c->core;
    q = s->free_reqs;
    if (q) {
        s->free_reqs = q->next_free;
        s->nfree_reqs--;
        q->msg.limits = &c->listener->limits;
    } else {
        q = gust_calloc(1, sizeof *q);
        gust_http_request_init(&q->msg, &c->listener->limits);
    }
    q->t_start = 0;
    c->rq = q;
    return q;
}

/* Gives the request state back. `clean`: its parser is between requests
 * (the connection went idle); else whatever it was in the middle of is
 * forgotten first. */
static void req_put(gust_core_t *s, gust_conn_req_t *q, int clean) {
    if (s->nfree_reqs >= GUST_CONN_REQ_FREE_MAX) {
        gust_http_request_free(&q->msg);
        gust_free(q);
        return;
    }
    if (!clean)
        gust_http_request_recycle(&q->msg, NULL);
    q->next_free = s->free_reqs;
    s->free_reqs = q;
    s->nfree_reqs++;
}

void gust_conn_free_list_clear(gust_core_t *s) {
    while (s->free_reqs) {
        gust_conn_req_t *q = s->free_reqs;
        s->free_reqs = q->next_free;
        gust_http_request_free(&q->msg);
        gust_free(q);
    }
    s->nfree_reqs = 0;
}

void gust_conn_decref(gust_conn_t *c) {
    if (--c->refs > 0)
        return;
    if (c->rq)
        req_put(c->core, c->rq, 0);
    gust_free(c->wev); /* deleted by gust_conn_close() */
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
    c->deadline = gust_now_coarse() + seconds;
    if (!c->timer_at || c->timer_at > c->deadline)
        arm_timer(c, tv, c->deadline);
}

static void set_reading(gust_conn_t *c, int on) {
    if (on == c->reading)
        return;
    c->reading = on;
    if (on)
        event_add(&c->rev, NULL); /* epoll announces a socket added while readable */
    else
        event_del(&c->rev);
}

/* Waits for writable: output is queued, or a TLS handshake step must
 * write. The event is made the first time a write has to wait. */
static void want_write(gust_conn_t *c) {
    if (c->writing)
        return;
    c->writing = 1;
    if (!c->wev) {
        c->wev = gust_malloc(sizeof *c->wev);
        event_assign(c->wev, c->core->base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
    }
    event_add(c->wev, NULL);
}

static void stop_writing(gust_conn_t *c) {
    if (!c->writing)
        return;
    c->writing = 0;
    event_del(c->wev);
}

/* An idle connection with nothing buffered gives back what only a busy one
 * needs: the request state, the input buffer and, once nothing waits to be
 * written, the output buffer and the write event. Not while a request it
 * dispatched is in its handler's call: the caller may still look at the
 * request after the response (after_feed() rests the connection then). */
static void conn_rest(gust_conn_t *c) {
    if (c->state != CONN_IDLE || c->close_after || c->in_dispatch || in_len(c))
        return;
    if (c->rq) {
        req_put(c->core, c->rq, 1);
        c->rq = NULL;
    }
    buffer_free(&c->in);
    if (c->writing || out_len(c))
        return;
    buffer_free(&c->out);
    gust_free(c->wev); /* not pending: stop_writing() deleted it */
    c->wev = NULL;
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
    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST | (c->tls.ssl ? 0 : EV_ET | EV_CLOSED),
                 on_read, c);
    evtimer_assign(&c->timer, s->base, on_timer, c);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    GUST_METRICS_BUMP(gust_core_slot(s)->connections_open, 1);
    set_reading(c, 1);
    set_timer(c, l->idle_tv, l->idle_s);
    /* The request is here already (the listener defers accept until it
     * is): read it now rather than after a round of the loop. With epoll's
     * change list, a request answered and closed at once costs no
     * epoll_ctl. A connection handed over with nothing to read was silent
     * for the kernel's second: that second counts as idle. (A TLS one is
     * read by the loop; a peek tells whether it said anything.) */
    double idle = l->deferred && l->idle_tv ? l->idle_s : -1; /* l may go with c below */
    char b;
    int silent = c->tls.ssl ? idle >= 0 && recv(fd, &b, 1, MSG_PEEK) < 0 && errno == EAGAIN
                            : read_direct(c, 0) == 0;
    if (silent && idle >= 0) {
        double left = idle > GUST_DEFER_ACCEPT_S ? idle - GUST_DEFER_ACCEPT_S : 0;
        struct timeval tv = gust_timeval(left);
        set_timer(c, &tv, left);
    }
}

void gust_conn_close(gust_conn_t *c) {
    if (c->state == CONN_CLOSED)
        return;
    gust_core_t *s = c->core;
    gust_request_t *in_flight = c->state == CONN_HANDLING && c->rq->req.conn ? &c->rq->req : NULL;
    c->state = CONN_CLOSED;
    event_del(&c->rev);
    stop_writing(c);
    evtimer_del(&c->timer);
    gust_tls_close(&c->tls, c->fd >= 0);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    buffer_free(&c->in);
    buffer_free(&c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    GUST_METRICS_BUMP(gust_core_slot(s)->connections_open, -1);
    /* Tell the handler its client left before the request goes; the log
     * says so as nginx does (499), or keeps the status a cut response had. */
    if (in_flight) {
        gust_conn_log_access(c, in_flight->started ? in_flight->resp_status : 499, 0);
        gust_request_client_left(in_flight);
        gust_request_over(in_flight);
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
    if (!c->tls.ssl && !c->writing && out_len(c) == 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == (ssize_t)len)
            return;
        if (n > 0) {
            data = (const char *)data + n;
            len -= (size_t)n;
        } /* else an error the next gust_conn_send() meets again and handles */
    }
    evbuffer_add(buffer(&c->out), data, len);
}

/* Half-closes and waits briefly for the peer's EOF, so that unread input
 * does not turn our last response into a reset (lingering close). A peer
 * that sent nothing beyond what was answered is simply closed. */
static void linger(gust_conn_t *c) {
    if (!c->unread_input && in_len(c) == 0) {
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
        evbuffer_add_file(buffer(&c->out), fd, (ev_off_t)offset, (ev_off_t)length); /* owns fd */
        return;
    }
    /* TLS encrypts in user space: the file is mapped, not sendfile()d. */
    struct evbuffer_file_segment *seg = evbuffer_file_segment_new(
        fd, (ev_off_t)offset, (ev_off_t)length, EVBUF_FS_DISABLE_SENDFILE | EVBUF_FS_CLOSE_ON_FREE);
    if (!seg) {
        close(fd);
        return;
    }
    evbuffer_add_file_segment(buffer(&c->out), seg, 0, (ev_off_t)length);
    evbuffer_file_segment_free(seg); /* the buffer holds its own reference */
}

int gust_conn_send(gust_conn_t *c) {
    if (c->state == CONN_CLOSED)
        return 0;
    while (out_len(c) > 0) {
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
    if (out_len(c) > 0) {
        want_write(c);
        return 0;
    }
    stop_writing(c);
    if (c->close_after && c->state != CONN_HANDLING)
        linger(c);
    return 1;
}

static void on_write(evutil_socket_t fd, short what, void *arg) {
    gust_conn_t *c = arg;
    if (c->tls.read_wants_write) {
        /* The handshake wrote what it had to: read on. */
        c->tls.read_wants_write = 0;
        if (out_len(c) == 0)
            stop_writing(c);
        on_read(fd, EV_READ, c);
        return;
    }
    gust_conn_incref(c);
    if (gust_conn_send(c)) {
        if (c->state == CONN_HANDLING && c->rq->req.flushing)
            gust_request_flushed(&c->rq->req, 1);
        if (c->state == CONN_IDLE && !c->close_after) {
            /* The output is out: the next request, or rest (not from
             * inside this event's own callback). */
            set_reading(c, 1);
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
    int http_minor = c->rq ? c->rq->msg.http_minor : 1;
    gust_http_head_frame_t f = {http_minor, gust_core_date(c->core), (long long)blen, 0, 0,
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
    c->rq->msg.http_minor = 1; /* a rejected request may not have said which */
    gust_conn_write_simple(c, status, "text/html; charset=UTF-8", body, blen, 0);
    c->close_after = 1;
    c->unread_input = 1; /* the rest of what it sent is never read */
    c->state = CONN_IDLE;
    buffer_free(&c->in);
    gust_conn_send(c);
}

/* Feeds one span to the parser, with the state changes that brings (the
 * header deadline, 100-continue). Returns the bytes used. */
static size_t feed(gust_conn_t *c, const char *data, size_t avail) {
    gust_conn_req_t *q = conn_req(c);
    gust_http_request_t *r = &q->msg;
    gust_listener_t *l = c->listener;
    size_t used = gust_http_request_feed(r, data, avail);
    if (r->begun && c->state == CONN_IDLE) {
        c->state = CONN_READING;
        q->t_start = gust_now();
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
    gust_conn_req_t *q = c->rq;
    gust_http_request_t *r = &q->msg;
    if (r->status) {
        reject(c, r->status, r->error);
        return 0;
    }
    if (!r->complete)
        return 0;
    c->state = CONN_HANDLING;
    set_timer(c, NULL, 0);
    if (!c->sent_continue && !q->t_start)
        q->t_start = gust_now();
    c->in_dispatch = 1;
    gust_request_begin(&q->req, c, r);
    c->in_dispatch = 0;
    if (c->state != CONN_IDLE)
        return 0;
    conn_rest(c); /* answered at once, and nothing more buffered */
    return 1;
}

/* Whether the connection may take another request from its input now. */
static int ready_for_input(gust_conn_t *c) {
    if ((c->state != CONN_IDLE && c->state != CONN_READING) || c->close_after)
        return 0; /* busy, gone, or a final response is on its way out */
    if (out_len(c) > OUTPUT_MAX) {
        set_reading(c, 0); /* on_write resumes once the peer reads */
        return 0;
    }
    return 1;
}

/* Parses what is buffered and dispatches complete requests until one is in
 * flight, the input runs out, or the connection closes. */
static void conn_process(gust_conn_t *c) {
    while (ready_for_input(c)) {
        if (!c->rq && in_len(c) == 0) {
            if (c->peer_eof)
                gust_conn_close(c);
            else
                conn_rest(c);
            return;
        }
        gust_http_request_t *r = &conn_req(c)->msg;
        size_t avail;
        while (!r->complete && !r->status && c->in &&
               (avail = evbuffer_get_contiguous_space(c->in))) {
            size_t used = feed(c, (const char *)evbuffer_pullup(c->in, avail), avail);
            if (c->state == CONN_CLOSED)
                return;
            evbuffer_drain(c->in, used);
        }
        if (!r->complete && !r->status && c->peer_eof) {
            gust_conn_close(c);
            return;
        }
        if (!after_feed(c)) {
            conn_rest(c); /* only empty lines came, say */
            return;
        }
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
        if (c->rq->msg.complete && len > 0) {
            /* Bytes past a complete request must be in the connection's own
             * buffer before its handler runs: it may detach the socket (an
             * Upgrade) and take them along. The buffered path goes on. */
            evbuffer_add(buffer(&c->in), data, len);
            if (after_feed(c))
                conn_process(c);
            return;
        }
        if (!after_feed(c))
            break;
    }
    if (len > 0 && c->state != CONN_CLOSED && !c->unread_input)
        evbuffer_add(buffer(&c->in), data, len);
    else
        conn_rest(c); /* only empty lines came, say */
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
    gust_request_over(&c->rq->req);
    if (!keep_alive || c->peer_eof || c->core->stopping)
        c->close_after = 1;
    else
        gust_conn_nodelay(c);
    gust_http_request_reset(&c->rq->msg, 0);
    c->rq->t_start = 0;
    c->sent_continue = 0;
    c->state = CONN_IDLE;
    if (c->close_after) {
        if (out_len(c) == 0)
            linger(c);
        return;
    }
    set_timer(c, c->listener->idle_tv, c->listener->idle_s);
    set_reading(c, 1);
    /* Pipelined requests already buffered: the dispatcher loops when this
     * happens inside it; otherwise pick them up on the next iteration. */
    if (in_len(c) > 0 && !c->in_dispatch)
        schedule(c);
    else
        conn_rest(c); /* idle: hold no buffers */
}

/* Hands the socket of the request in flight to someone else (an Upgrade:
 * WebSocket, a tunnel): what was read past the request moves to `rest`,
 * the TLS session to *ssl, and the HTTP side forgets the connection without
 * closing the fd. */
int gust_conn_detach(gust_conn_t *c, struct evbuffer *rest, struct ssl_st **ssl) {
    if (c->state != CONN_HANDLING || c->tls.dead)
        return GUST_DETACH_CLOSED;
    if (c->rq->req.started || out_len(c) > 0)
        return GUST_DETACH_STARTED;
    int fd = c->fd;
    if (c->in)
        evbuffer_add_buffer(rest, c->in);
    *ssl = c->tls.ssl;
    c->tls.ssl = NULL;              /* goes with the socket: not shut down, not freed */
    gust_request_over(&c->rq->req); /* detached, not a client that left */
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
    if (c->state == CONN_IDLE && out_len(c) == 0 && in_len(c) == 0)
        set_timer(c, &grace, GUST_DRAIN_IDLE_GRACE_MS / 1000.0);
}

/* SSL_read until OpenSSL needs the socket again: -1 with errno EAGAIN when
 * nothing is there yet, 0 at the end of the stream. */
static ssize_t tls_read(gust_conn_t *c) {
    int eof = 0;
    const char *err = NULL;
    ssize_t n = gust_tls_read(&c->tls, buffer(&c->in), READ_AHEAD_MAX, &eof, &err);
    if (c->tls.read_wants_write)
        want_write(c); /* a handshake step that must write first */
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
 * first ask the kernel how much is waiting, a syscall per request. *full
 * says the read took all the room it had: the socket may hold more. */
static ssize_t read_some(gust_conn_t *c, int *full) {
    *full = 0;
    if (c->tls.ssl)
        return tls_read(c);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(buffer(&c->in), READ_CHUNK, &v, 1) < 1)
        return -1;
    ssize_t n = recv(c->fd, v.iov_base, v.iov_len, 0);
    *full = n > 0 && (size_t)n == v.iov_len;
    v.iov_len = n > 0 ? (size_t)n : 0;
    evbuffer_commit_space(c->in, &v, 1);
    return n;
}

/* A plain connection's read event is edge-triggered (gust_read_again). */
static void read_again(gust_conn_t *c, int full, short what) {
    if (c->state != CONN_CLOSED && c->reading)
        gust_read_again(&c->rev, full, what);
}

/* A plain connection with nothing pending parses straight from the
 * server's read buffer. 1: bytes were read; 0: none were there; -1: the
 * connection is closed (EOF or an error) and `c` may be gone. */
static int read_direct(gust_conn_t *c, short what) {
    ssize_t n = recv(c->fd, c->core->rbuf, sizeof c->core->rbuf, 0);
    if (n > 0) {
        gust_conn_incref(c);
        conn_process_mem(c, c->core->rbuf, (size_t)n);
        read_again(c, (size_t)n == sizeof c->core->rbuf, what);
        gust_conn_decref(c);
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n < 0)
        gust_log(&c->core->log, GUST_LOG_DEBUG, "read from %s: %s", c->remote_ip, strerror(errno));
    gust_conn_close(c); /* EOF or error with nothing buffered */
    return -1;
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    gust_conn_t *c = arg;
    if (c->tls.write_wants_read) {
        c->tls.write_wants_read = 0;
        on_write(fd, EV_WRITE, c);
        if (c->state == CONN_CLOSED)
            return;
    }
    if (!c->tls.ssl && in_len(c) == 0 && (c->state == CONN_IDLE || c->state == CONN_READING)) {
        read_direct(c, what);
        return;
    }
    int full;
    ssize_t n = read_some(c, &full);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        conn_rest(c); /* a TLS record not yet whole, say: no empty buffer kept */
        return;
    }
    if (c->state == CONN_LINGER) {
        buffer_free(&c->in);
        if (n <= 0)
            gust_conn_close(c);
        else
            read_again(c, full, what);
        return;
    }
    if (n <= 0) {
        if (n < 0)
            gust_log(&c->core->log, GUST_LOG_DEBUG, "read from %s: %s", c->remote_ip,
                     strerror(errno));
        c->peer_eof = 1;
        set_reading(c, 0);
        if (c->state == CONN_HANDLING && n == 0 && out_len(c) == 0) {
            /* The handler learns its client left; it may still answer a
             * half-closed peer, and the connection closes after. */
            gust_request_client_left(&c->rq->req);
            return;
        }
        if (c->state == CONN_HANDLING || in_len(c) == 0) {
            gust_conn_close(c);
            return;
        }
    }
    gust_conn_incref(c);
    if (c->state == CONN_HANDLING) {
        if (in_len(c) > READ_AHEAD_MAX)
            set_reading(c, 0);
    } else {
        conn_process(c);
    }
    read_again(c, full, what);
    gust_conn_decref(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    gust_conn_t *c = arg;
    c->timer_at = 0;
    if (!c->deadline)
        return;
    double left = c->deadline - gust_now_coarse();
    if (left > 0) {
        struct timeval tv = gust_timeval(left);
        arm_timer(c, &tv, c->deadline);
        return;
    }
    if (c->state == CONN_READING)
        gust_log(&c->core->log, GUST_LOG_INFO, "%s timeout from %s, closing",
                 c->sent_continue ? "body" : "header", c->remote_ip);
    gust_conn_close(c);
}

void gust_conn_access(const gust_conn_t *c, gust_access_t *a) {
    memset(a, 0, sizeof *a);
    a->ip = c->remote_ip;
    if (!c->rq)
        return;
    const gust_http_request_t *r = &c->rq->msg;
    a->t_start = c->rq->t_start;
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
        a.t_start = c->rq ? c->rq->t_start : 0;
    }
    gust_core_log_access(c->core, &a, status, bytes);
}
