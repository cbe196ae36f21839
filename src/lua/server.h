/*
 * server.h -- the internal structures behind gust_server_t: the server, its
 * listeners, its connections and its coroutine scheduler, and the functions
 * the C files share. Nothing here is installed; src/gust.h is the public API.
 */
#ifndef GUST_SERVER_H
#define GUST_SERVER_H

#include <sys/types.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <lua.h>
#include <lauxlib.h>

#include "gust.h"
#include "http_parser.h"
#include "http_response.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"

typedef struct gust_listener gust_listener_t;
typedef struct gust_conn gust_conn_t;
typedef struct gust_req_handle gust_req_handle_t;

/* Entries of the run queue: coroutines to start or resume on the next loop
 * iteration, never from inside another coroutine's C call. */
enum { GUST_RUN_START, GUST_RUN_TRUE, GUST_RUN_ERR, GUST_RUN_VALUES, GUST_RUN_STACK };
typedef struct gust_run {
    int co_ref;      /* registry ref of the coroutine */
    int kind;        /* GUST_RUN_* */
    int n;           /* START, STACK: values on its stack; VALUES: table ref */
    const char *err; /* ERR: the message (static) */
} gust_run_t;

struct gust_server {
    struct event_base *base;
    lua_State *L; /* a thread of the Lua state that belongs to the server */
    lua_State *main_L;
    unsigned own_base : 1, own_lua : 1, stopping : 1, loading : 1;

    gust_config_t cfg;
    char *bind, *log_level_name, *access_log_path, *lua_dir, *metrics_path; /* cfg's copies */
    gust_metrics_t *metrics; /* shared with the other workers, or private */
    int own_metrics, metrics_slot;
    struct event sample_ev;  /* loop lag and Lua memory, once a second */
    double sample_due;
    char running_what[128]; /* "GET /path" being dispatched, for the watchdog */
    char rbuf[16384];       /* connections read here first (conn.c) */
    gust_log_t log;

    int app_ref;        /* what the app script returned */
    int close_hook_ref; /* core.set_close_hook */
    int request_mt_ref; /* metatable of gust.request handles */
    int dispatch_ref;   /* the Lua trampoline every request runs through */

    gust_listener_t *listeners;
    gust_conn_t *conns;
    unsigned nconns;

    struct gust_stream *streams; /* open streams (stream.c) */
    struct gust_watcher *watchers; /* fd handlers (lua_socket.c) */
    struct evdns_base *dns;        /* made on the first name lookup */
    struct gust_http_pool *http_pool; /* the HTTP client's idle connections */
    struct ssl_ctx_st *tls_ctx;      /* HTTPS serving (--tls-cert/--tls-key), or NULL */
    int bus_fd, bus_handler_ref;     /* pubsub to the other workers (lua_pubsub.c) */
    struct gust_threads *threads;    /* run_in_thread's pool, made on first use */
    struct event bus_ev;
    struct gust_timer_slot *theap; /* pending Lua timers (lua_timer.c) */
    size_t theap_len, theap_cap, timers_cancelled;
    uint64_t timer_seq;
    struct event timer_ev;
    int pool[64];              /* idle request coroutines (lua_sched.c) */
    int pool_len;
    gust_run_t *runq;
    size_t runq_len, runq_cap;
    gust_conn_t *pending; /* connections with work deferred to the loop */
    struct event defer_ev;
    struct event drain_ev, drain_check_ev;
    int going_away_sent; /* the drain timeout sent WebSockets their 1001 */

    time_t date_time;
    char date[GUST_HTTP_DATE_LEN + 1];
};

struct gust_listener {
    gust_server_t *server;
    struct evconnlistener *lev;
    int handler_ref;
    int refs; /* 1 while listening + 1 per open connection */
    gust_http_limits_t limits;
    const struct timeval *idle_tv, *header_tv, *body_tv;
    char *unix_path;
    int port;
    int raw; /* connections go to Lua as streams (TCPServer), not HTTP */
    struct gust_listener_handle *handle;
    gust_listener_t *prev, *next;
};

enum { CONN_IDLE, CONN_READING, CONN_HANDLING, CONN_LINGER, CONN_CLOSED };

struct gust_conn {
    gust_server_t *server;
    gust_listener_t *listener;
    int fd;
    int refs;
    int state;
    unsigned peer_eof : 1, in_dispatch : 1, pending : 1, writing : 1,
        reading : 1, started : 1, chunked : 1, close_after : 1, sent_continue : 1,
        told_left : 1, is_tcp : 1, nodelay : 1, unread_input : 1, tls_dead : 1,
        tls_read_wants_write : 1, tls_write_wants_read : 1;
    struct ssl_st *ssl; /* HTTPS: this connection's TLS, or NULL */
    int tls_wlen;       /* the SSL_write to repeat after WANT_* */
    struct event rev, wev, timer;
    struct evbuffer *in, *out;
    gust_http_request_t req;
    gust_req_handle_t *handle; /* the Lua handle of the request in flight */
    int handle_ref;
    int flush_ref; /* a coroutine waiting for the output to drain */
    int resp_status; /* once flush() sent the head */
    double t_start;
    gust_conn_t *prev, *next, *pending_next;
    char remote_ip[48];
};

struct gust_listener_handle {
    gust_listener_t *l; /* NULL once closed */
};

struct gust_req_handle {
    gust_conn_t *conn; /* NULL once the response is finished or the peer left */
};

/* server.c */
void gust_server_attach_metrics(gust_server_t *s, gust_metrics_t *m, int slot);
void gust_server_date(gust_server_t *s, const char **date);
void gust_server_defer(gust_server_t *s);
int gust_server_attach_lua(gust_server_t *s, lua_State *L);
void gust_server_conn_gone(gust_server_t *s);
double gust_now(void);

/* listener.c */
gust_listener_t *gust_listener_new(gust_server_t *s, const char *addr, int port,
                                   int handler_ref, char *err, size_t errlen);
gust_listener_t *gust_listener_adopt(gust_server_t *s, int fd, int handler_ref, char *err,
                                     size_t errlen);
void gust_listener_free(gust_listener_t *l);
void gust_listener_decref(gust_listener_t *l);
void gust_listener_apply_settings(gust_listener_t *l, lua_State *L, int idx);

/* conn.c */
void gust_conn_accept(gust_listener_t *l, int fd, const struct sockaddr *sa, int salen);
void gust_conn_incref(gust_conn_t *c);
void gust_conn_decref(gust_conn_t *c);
void gust_conn_close(gust_conn_t *c);
void gust_conn_write(gust_conn_t *c, const void *data, size_t len);
int gust_conn_send(gust_conn_t *c); /* 1 when the output is empty */
void gust_conn_response_done(gust_conn_t *c, int keep_alive);
void gust_conn_process_pending(gust_server_t *s);
void gust_conn_drain(gust_conn_t *c);
void gust_conn_nodelay(gust_conn_t *c);
int gust_conn_detach(gust_conn_t *c, struct evbuffer *rest);
void gust_conn_log_access(gust_conn_t *c, int status, size_t bytes);
void gust_conn_write_simple(gust_conn_t *c, int status, const char *ctype, const char *body,
                            size_t blen, int keep_alive);
size_t gust_error_page(int status, char *body, size_t size);

/* lua_sched.c */
int gust_sched_resume(gust_server_t *s, lua_State *co, int nargs);
void gust_sched_push(gust_server_t *s, gust_run_t run);
void gust_sched_run_queue(gust_server_t *s);
int gust_sched_anchor(lua_State *co);
lua_State *gust_sched_thread(gust_server_t *s);
void gust_sched_release(gust_server_t *s, lua_State *co, int rc);
void gust_sched_start(gust_server_t *s, lua_State *L, int nargs);
int gust_traceback(lua_State *L);

/* lua_request.c */
void gust_request_open(lua_State *L, gust_server_t *s);
void gust_request_dispatch(gust_conn_t *c);
void gust_request_invalidate(gust_conn_t *c);
void gust_request_client_left(gust_conn_t *c);

/* lua_timer.c, lua_crypto.c */
void gust_timer_open(lua_State *L, gust_server_t *s);
void gust_timer_forget_server(gust_server_t *s);
void gust_timer_init(gust_server_t *s);
void gust_crypto_open(lua_State *L);

/* lua_socket.c, lua_stream.c */
void gust_socket_open(lua_State *L, gust_server_t *s);
void gust_socket_forget_server(gust_server_t *s);
int gust_socket_take(lua_State *L, int idx);
void gust_push_address(lua_State *L, const struct sockaddr *sa);
void gust_stream_open(lua_State *L, gust_server_t *s);
struct gust_stream;
void gust_stream_push(lua_State *L, gust_server_t *s, struct gust_stream *st);
void gust_conn_accept_stream(gust_listener_t *l, int fd, const struct sockaddr *sa);
struct gust_stream *gust_stream_take(lua_State *L, int idx);

/* lua_ws.c: "gust.websocket" connections and the handshake helpers */
void gust_ws_open(lua_State *L, gust_server_t *s);
/* Starts the close handshake (1001) on every server-side WebSocket, for a
 * graceful stop or a reload's drain; returns how many are still open (each
 * ends within its close timeout). */
int gust_ws_going_away(gust_server_t *s);
/* Server-side WebSockets still open. */
int gust_ws_open_count(gust_server_t *s);

/* lua_httpclient.c: the HTTP client's Lua binding and pool */
void gust_httpclient_open(lua_State *L, gust_server_t *s);
void gust_httpclient_forget_server(gust_server_t *s);

/* lua_shdict.c: core.shdict() and the gust.shared.dict methods */
void gust_shdict_open(lua_State *L, gust_server_t *s);

/* lua_pubsub.c: one packet on the bus between workers, at most */
#define GUST_BUS_MAX (64 * 1024 + 2 + 1024)
void gust_server_attach_bus(gust_server_t *s, int fd);
void gust_pubsub_forget_server(gust_server_t *s);
void gust_pubsub_open(lua_State *L, gust_server_t *s);

/* lua_thread.c: gust.run_in_thread */
void gust_thread_open(lua_State *L, gust_server_t *s);
void gust_threads_free(gust_server_t *s);

/* lua_core.c */
int luaopen_gust_core(lua_State *L);
int gust_listener_push(lua_State *L, gust_listener_t *l);
int gust_listen_lua(lua_State *L, gust_server_t *s, int raw);
gust_server_t *gust_server_from_lua(lua_State *L);
gust_server_t *gust_server_for_lua(lua_State *L);

#endif
