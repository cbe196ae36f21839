/*
 * conn.h -- gust_conn_t: one accepted HTTP/1.1 connection: its socket
 * (plain or TLS), its timers, and while it is busy its buffers, the parser
 * and the one request (request.h) it carries at a time.
 *
 * An idle keep-alive connection holds only this struct: the parser and the
 * request (gust_conn_req_t) come from the core's free list when a request
 * begins arriving and go back when the connection is idle again; the input
 * and output buffers and the write event are made when something must wait
 * in them and freed when empty on the way to idle.
 *
 * Lifetime: `refs` counts the open socket plus every caller that may run a
 * handler (which can close the connection under it); the memory goes when
 * the last reference does, never inside a callback that still uses it.
 */
#ifndef GUST_CONN_H
#define GUST_CONN_H

#include <stddef.h>
#include <sys/socket.h>

#include <event2/event_struct.h>

#include "core.h"
#include "http_parser.h"
#include "request.h"
#include "tls.h"

enum { CONN_IDLE, CONN_READING, CONN_HANDLING, CONN_LINGER, CONN_CLOSED };

/* How long a graceful stop leaves an idle keep-alive connection open for a
 * request its client may already be sending. */
#define GUST_DRAIN_IDLE_GRACE_MS 1000

/* Request states a core keeps for reuse; more are freed. */
#define GUST_CONN_REQ_FREE_MAX 64

/* What a connection holds only while a request is arriving or in flight.
 * The gust_request_t handed to a handler lives here, so the memory outlives
 * the request (the free list keeps it) until the connection is idle. */
typedef struct gust_conn_req {
    gust_http_request_t msg; /* the parser and the request it parsed */
    gust_request_t req;      /* the request in flight (state CONN_HANDLING) */
    double t_start;          /* when the request began arriving */
    struct gust_conn_req *next_free;
} gust_conn_req_t;

struct gust_conn {
    gust_core_t *core;
    gust_listener_t *listener;
    int fd;
    int refs;
    int state;
    unsigned peer_eof : 1, in_dispatch : 1, pending : 1, writing : 1, reading : 1, close_after : 1,
        sent_continue : 1, is_tcp : 1, nodelay : 1, unread_input : 1;
    gust_tls_t tls;
    struct event rev, timer;
    struct event *wev;         /* made when a write must wait, else NULL */
    struct evbuffer *in, *out; /* made when bytes must wait, NULL when idle */
    gust_conn_req_t *rq;       /* the request arriving or in flight, NULL when idle */
    double deadline;           /* when the connection times out (gust_now_coarse), 0: never */
    double timer_at;           /* when `timer` fires, 0: not armed */
    gust_conn_t *prev, *next, *pending_next;
    char remote_ip[48];
};

/* Takes ownership of the accepted socket `fd` and serves HTTP on it with
 * the listener's handler. */
void gust_conn_accept(gust_listener_t *l, int fd, const struct sockaddr *sa, int salen);
void gust_conn_incref(gust_conn_t *c);
void gust_conn_decref(gust_conn_t *c);
void gust_conn_close(gust_conn_t *c);

/* Writes at once what the socket takes; queues the rest. */
void gust_conn_write(gust_conn_t *c, const void *data, size_t len);
/* Queues a file range (sendfile, or mapped for TLS). Takes ownership of fd. */
void gust_conn_write_file(gust_conn_t *c, int fd, off_t offset, off_t length);
/* Writes what is queued; 1 when the output is empty. */
int gust_conn_send(gust_conn_t *c);
/* The response in flight is complete: keep-alive or close, then the next
 * request. */
void gust_conn_response_done(gust_conn_t *c, int keep_alive);
void gust_conn_nodelay(gust_conn_t *c);
/* Hands the socket to someone else; see gust_request_detach(). */
int gust_conn_detach(gust_conn_t *c, struct evbuffer *rest, struct ssl_st **ssl);
/* A graceful stop: an idle connection closes after a short grace unless a
 * request arrives (answered with Connection: close); a busy one after its
 * response. */
void gust_conn_drain(gust_conn_t *c);
void gust_conn_process_pending(gust_core_t *core);

/* Frees the request states a core keeps for reuse (gust_core_free). */
void gust_conn_free_list_clear(gust_core_t *core);

/* Writes a whole response the core makes itself (error pages, metrics). */
void gust_conn_write_simple(gust_conn_t *c, int status, const char *ctype, const char *body,
                            size_t blen, int keep_alive);
/* The access log's view of the request in flight (borrowed strings). */
void gust_conn_access(const gust_conn_t *c, gust_access_t *a);
/* Metrics always, the access log when on (gust_core_log_access). */
void gust_conn_log_access(gust_conn_t *c, int status, size_t bytes);
/* Tornado's error page for `status`, into body; returns its length. */
size_t gust_error_page(int status, char *body, size_t size);

#endif
