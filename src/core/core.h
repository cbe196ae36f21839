/*
 * core.h -- gust_core_t: what one worker's server core owns -- the event
 * loop, the configuration, logs and metrics, the listeners and connections,
 * the streams, the HTTPS context, deferred work and the graceful stop.
 *
 * The core knows nothing of Lua. Layers above reach it through the
 * functions here and it reaches them only through callbacks they gave it:
 * deferred-work hooks (a scheduler's run queue), drain hooks (connections
 * it does not own, such as WebSockets, that a graceful stop waits for),
 * request handlers per listener (request.h) and accept callbacks
 * (listener.h).
 */
#ifndef GUST_CORE_H
#define GUST_CORE_H

#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "gust.h"
#include "http_response.h"
#include "log.h"
#include "metrics.h"

typedef struct gust_core gust_core_t;
typedef struct gust_listener gust_listener_t;
typedef struct gust_conn gust_conn_t;
struct gust_conn_req;
struct gust_stream;
struct gust_http_pool;
struct evdns_base;
struct ssl_ctx_st;

/* Work run from the loop once the current callback returned; returns
 * nonzero while more is queued (the core then runs the hooks again on the
 * next iteration). */
typedef int (*gust_defer_fn)(void *arg);

/* Connections a graceful stop waits for that the core does not own. */
typedef struct gust_drain_hook {
    unsigned (*open)(void *arg);       /* how many are still open */
    unsigned (*going_away)(void *arg); /* the drain timed out: start closing
                                          them; returns how many remain */
    void *arg;
} gust_drain_hook_t;

#define GUST_DEFER_HOOKS 4
#define GUST_DRAIN_HOOKS 4

/* The drain timeout's last act: WebSockets got a close frame and have this
 * long to answer it (the same bound as a WebSocket's close_timeout). */
#define GUST_CLOSE_TIMEOUT 3.0

typedef struct gust_prefix gust_prefix_t;

/* The exit status of a worker that stopped to be replaced (out of memory):
 * its master starts another at once. */
#define GUST_EXIT_REPLACE 3

struct gust_core {
    struct event_base *base;
    unsigned own_base : 1, stopping : 1, going_away_sent : 1;
    int exit_status; /* what the process should exit with once stopped */

    gust_config_t cfg; /* strings below are the core's own copies */
    char *bind, *log_level_name, *access_log_path, *lua_dir, *metrics_path;
    gust_log_t log;
    gust_metrics_t *metrics; /* shared with the other workers, or private */
    int own_metrics, metrics_slot;
    struct event sample_ev; /* loop lag, once a second */
    double sample_due;

    gust_listener_t *listeners;
    gust_conn_t *conns;
    unsigned nconns;
    struct gust_stream *streams;      /* open streams (stream.c) */
    struct evdns_base *dns;           /* made on the first name lookup */
    struct gust_http_pool *http_pool; /* the HTTP client's idle connections */
    struct ssl_ctx_st *tls_ctx;       /* HTTPS serving, or NULL */
    gust_prefix_t *prefixes;          /* C handlers by path prefix */

    gust_conn_t *pending;            /* connections with work deferred to the loop */
    struct gust_conn_req *free_reqs; /* request states for reuse (conn.c) */
    unsigned nfree_reqs;
    struct event defer_ev;
    struct {
        gust_defer_fn fn;
        void *arg;
    } defer[GUST_DEFER_HOOKS];
    gust_drain_hook_t drain[GUST_DRAIN_HOOKS];
    struct event drain_ev, drain_check_ev;

    char rbuf[65536]; /* connections and streams read here first (conn.c, stream.c) */
    time_t date_time;
    char date[GUST_HTTP_DATE_LEN + 1];
};

/**
 * A core with the settings of `cfg` (copied; NULL: defaults) on `base`
 * (borrowed; NULL: the core makes and owns one).
 * @return the core, or NULL with the reason logged (no loop, a TLS
 *         certificate that does not load)
 */
gust_core_t *gust_core_new(const gust_config_t *cfg, struct event_base *base);

/* The event loop gust makes when it owns one (the workers', or a core made
 * without one): epoll with its change list. */
struct event_base *gust_event_base_new(void);

/* Closes listeners, connections and streams at once and frees the core.
 * NULL is a no-op. Deferred work still queued is dropped. */
void gust_core_free(gust_core_t *c);

/* Runs the loop until it has nothing left or gust_core_stop() finished. */
int gust_core_run(gust_core_t *c);

/* Graceful stop: no new connections, idle ones closed, busy ones closed
 * after their response, then the drain hooks; everything left after
 * drain_timeout is closed. A second call stops at once. */
void gust_core_stop(gust_core_t *c);

/* Asks for the defer hooks to run on the next loop iteration; cheap to
 * repeat. */
void gust_core_defer(gust_core_t *c);
/* @return 0, or -1 when every slot is taken */
int gust_core_add_defer(gust_core_t *c, gust_defer_fn fn, void *arg);
int gust_core_add_drain(gust_core_t *c, const gust_drain_hook_t *hook);

/* Serves requests under `prefix` with a C handler (gust_handle()). */
int gust_core_handle(gust_core_t *c, const char *prefix, gust_handler_fn fn, void *arg);
/* The handler of the longest prefix of `path`, or NULL. */
gust_handler_fn gust_core_find_handler(const gust_core_t *c, const char *path, size_t len,
                                       void **arg);

/* Reports into `slot` of a metrics area shared with other workers. */
void gust_core_attach_metrics(gust_core_t *c, gust_metrics_t *m, int slot);

/* The cached IMF-fixdate of the loop's current second. */
const char *gust_core_date(gust_core_t *c);

/* A connection closed: a draining core stops once nothing is left. */
void gust_core_conn_gone(gust_core_t *c);

/* What an access log line says of a request, besides its outcome. The
 * strings are borrowed (gust_access_copy makes a line that outlives the
 * request: a WebSocket session is logged when it closes). */
typedef struct gust_access {
    const char *ip, *method, *uri, *referer, *agent;
    size_t uri_len, referer_len, agent_len;
    int http_minor;
    double t_start; /* monotonic seconds; 0: unknown */
} gust_access_t;

/* Accounts for an answered request: metrics always, and the access log
 * when on, in the combined format plus the duration in seconds:
 * IP - - [time] "METHOD URI HTTP/1.x" STATUS BYTES "REFERER" "AGENT" SECS
 * Request-derived text has its control bytes, '"' and '\' as \xHH. */
void gust_core_log_access(gust_core_t *c, const gust_access_t *a, int status, uint64_t bytes);
gust_access_t *gust_access_copy(const gust_access_t *a);
void gust_access_free(gust_access_t *a);

/* An edge-triggered read event (EV_ET | EV_CLOSED) reports a socket once
 * per arrival, not at every wait until it is drained: after a read that
 * filled its buffer (`full`), or any read of an event that says the peer
 * closed (a FIN that came with the last bytes is no arrival of its own),
 * the callback runs again on the next round of the loop, until the EOF is
 * read. The caller says whether it still reads. */
static inline void gust_read_again(struct event *ev, int full, short what) {
    if (full || (what & EV_CLOSED))
        event_active(ev, EV_READ | (what & EV_CLOSED), 1);
}

/* This worker's corner of the metrics (slot 0 for a core without a master). */
static inline gust_metrics_slot_t *gust_core_slot(gust_core_t *c) {
    return &c->metrics->slot[c->metrics_slot];
}

/* `seconds` (0 or more) as the timeval libevent takes. */
static inline struct timeval gust_timeval(double seconds) {
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    return tv;
}

/* Monotonic seconds. */
double gust_now(void);

/* The same clock to the kernel's tick (a few ms), for a fraction of the
 * cost: for what is read on every request and judged in tens of
 * milliseconds or more (the watchdog, connection deadlines). */
double gust_now_coarse(void);

#endif
