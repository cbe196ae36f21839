/*
 * core.c -- gust_core_t: the loop, the configuration, and the graceful
 * stop of one worker. See core.h for who may call what.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "conn.h"
#include "core.h"
#include "http_client.h"
#include "listener.h"
#include "mem.h"
#include "request.h"
#include "stream.h"
#include "tls.h"

void gust_config_init(gust_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->bind = "127.0.0.1";
    cfg->port = 8888;
    cfg->log_level = "info";
    cfg->max_body_size = 100 * 1024 * 1024;
    cfg->max_header_size = 64 * 1024;
    cfg->idle_connection_timeout = 60;
    cfg->header_timeout = 10;
    cfg->drain_timeout = 10;
    cfg->block_warn_ms = 200;
    cfg->block_kill = 30;
}

static double clock_seconds(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double gust_now(void) { return clock_seconds(CLOCK_MONOTONIC); }

double gust_now_coarse(void) { return clock_seconds(CLOCK_MONOTONIC_COARSE); }

const char *gust_core_date(gust_core_t *c) {
    struct timeval tv;
    event_base_gettimeofday_cached(c->base, &tv);
    if (tv.tv_sec != c->date_time) {
        c->date_time = tv.tv_sec;
        gust_http_date(tv.tv_sec, c->date);
    }
    return c->date;
}

/* ---- deferred work --------------------------------------------------- */

static void on_defer(evutil_socket_t fd, short what, void *arg) {
    gust_core_t *c = arg;
    int more = 0;
    for (int i = 0; i < GUST_DEFER_HOOKS && c->defer[i].fn; i++)
        more |= c->defer[i].fn(c->defer[i].arg);
    gust_conn_process_pending(c);
    if (more || c->pending)
        event_active(&c->defer_ev, 0, 0);
}

/* Activating an already active event is a no-op, so this is cheap to repeat. */
void gust_core_defer(gust_core_t *c) { event_active(&c->defer_ev, 0, 0); }

int gust_core_add_defer(gust_core_t *c, gust_defer_fn fn, void *arg) {
    for (int i = 0; i < GUST_DEFER_HOOKS; i++) {
        if (!c->defer[i].fn) {
            c->defer[i].fn = fn;
            c->defer[i].arg = arg;
            return 0;
        }
    }
    return -1;
}

int gust_core_add_drain(gust_core_t *c, const gust_drain_hook_t *hook) {
    for (int i = 0; i < GUST_DRAIN_HOOKS; i++) {
        if (!c->drain[i].open) {
            c->drain[i] = *hook;
            return 0;
        }
    }
    return -1;
}

/* ---- C handlers by path prefix -------------------------------------- */

struct gust_prefix {
    char *prefix;
    size_t len;
    gust_handler_fn fn;
    void *arg;
    gust_prefix_t *next;
};

int gust_core_handle(gust_core_t *c, const char *prefix, gust_handler_fn fn, void *arg) {
    if (!prefix || prefix[0] != '/' || !fn)
        return -1;
    gust_prefix_t *p = gust_calloc(1, sizeof *p);
    p->prefix = gust_strdup(prefix);
    p->len = strlen(prefix);
    p->fn = fn;
    p->arg = arg;
    p->next = c->prefixes;
    c->prefixes = p;
    return 0;
}

gust_handler_fn gust_core_find_handler(const gust_core_t *c, const char *path, size_t len,
                                       void **arg) {
    const gust_prefix_t *best = NULL;
    for (const gust_prefix_t *p = c->prefixes; p; p = p->next)
        if (p->len <= len && memcmp(p->prefix, path, p->len) == 0 && (!best || p->len > best->len))
            best = p;
    if (!best)
        return NULL;
    *arg = best->arg;
    return best->fn;
}

static void prefixes_free(gust_core_t *c) {
    for (gust_prefix_t *p = c->prefixes, *next; p; p = next) {
        next = p->next;
        gust_free(p->prefix);
        gust_free(p);
    }
    c->prefixes = NULL;
}

/* ---- metrics sampling ------------------------------------------------ */

#define SAMPLE_SECONDS 1.0

/* Once a second: how late this timer fired, the loop's lag. */
static void on_sample(evutil_socket_t fd, short what, void *arg) {
    gust_core_t *c = arg;
    double now = gust_now(), lag = now - c->sample_due;
    gust_metrics_slot_t *slot = gust_core_slot(c);
    __atomic_store_n(&slot->pid, (int32_t)getpid(), __ATOMIC_RELAXED);
    __atomic_store_n(&slot->lag_us, (uint32_t)(lag > 0 ? lag * 1e6 : 0), __ATOMIC_RELAXED);
    c->sample_due = now + SAMPLE_SECONDS;
    struct timeval tv = {1, 0};
    evtimer_add(&c->sample_ev, &tv);
}

void gust_core_attach_metrics(gust_core_t *c, gust_metrics_t *m, int slot) {
    if (c->own_metrics)
        gust_metrics_free(c->metrics, 0);
    c->metrics = m;
    c->own_metrics = 0;
    c->metrics_slot = slot;
    gust_metrics_slot_used(m, slot);
    gust_metrics_slot_t *sl = gust_core_slot(c);
    sl->busy_since_us = 0; /* a slot is reused after a worker dies */
    sl->warned = 0;
    sl->what[0] = sl->trace[0] = 0;
    __atomic_store_n(&sl->pid, (int32_t)getpid(), __ATOMIC_RELAXED);
}

/* ---- the access log ------------------------------------------------- */

/* Appends `s` with what could forge or break a log line escaped. */
static void put_escaped(gust_buf_t *b, const char *s, size_t n) {
    gust_buf_reserve(b, GUST_LOG_ESCAPED_MAX(n));
    b->len += gust_log_escape(s, n, b->p + b->len, b->cap - b->len);
}

static void put_quoted(gust_buf_t *b, const char *s, size_t n) {
    gust_buf_addlit(b, "\"");
    if (s)
        put_escaped(b, s, n);
    else
        gust_buf_addlit(b, "-");
    gust_buf_addlit(b, "\"");
}

void gust_core_log_access(gust_core_t *c, const gust_access_t *a, int status, uint64_t bytes) {
    double seconds = a->t_start ? gust_now() - a->t_start : 0;
    gust_metrics_request(c->metrics, c->metrics_slot, status, seconds);
    FILE *f = c->log.access;
    if (!f)
        return;
    char stamp[40], num[64], storage[1024];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "[%d/%b/%Y:%H:%M:%S %z] \"", &tm);
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    gust_buf_add(&b, a->ip, strlen(a->ip));
    gust_buf_addlit(&b, " - - ");
    gust_buf_add(&b, stamp, strlen(stamp));
    if (a->method) {
        gust_buf_add(&b, a->method, strlen(a->method));
        gust_buf_addlit(&b, " ");
        put_escaped(&b, a->uri, a->uri_len);
        int n = snprintf(num, sizeof num, " HTTP/1.%d", a->http_minor);
        gust_buf_add(&b, num, (size_t)n);
    } else {
        gust_buf_addlit(&b, "-");
    }
    int n = snprintf(num, sizeof num, "\" %d %llu ", status, (unsigned long long)bytes);
    gust_buf_add(&b, num, (size_t)n);
    put_quoted(&b, a->referer, a->referer_len);
    gust_buf_addlit(&b, " ");
    put_quoted(&b, a->agent, a->agent_len);
    n = snprintf(num, sizeof num, " %.3f\n", seconds);
    gust_buf_add(&b, num, (size_t)n);
    fwrite(b.p, 1, b.len, f);
    fflush(f);
    gust_buf_free(&b);
}

static char *dup_span(const char *s, size_t n) {
    if (!s)
        return NULL;
    char *d = gust_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

gust_access_t *gust_access_copy(const gust_access_t *a) {
    gust_access_t *c = gust_calloc(1, sizeof *c);
    *c = *a;
    c->ip = dup_span(a->ip, strlen(a->ip));
    c->method = dup_span(a->method, a->method ? strlen(a->method) : 0);
    c->uri = dup_span(a->uri, a->uri_len);
    c->referer = dup_span(a->referer, a->referer_len);
    c->agent = dup_span(a->agent, a->agent_len);
    return c;
}

void gust_access_free(gust_access_t *a) {
    if (!a)
        return;
    gust_free((char *)a->ip);
    gust_free((char *)a->method);
    gust_free((char *)a->uri);
    gust_free((char *)a->referer);
    gust_free((char *)a->agent);
    gust_free(a);
}

/* ---- graceful stop --------------------------------------------------- */

static unsigned drain_open(gust_core_t *c) {
    unsigned n = c->nconns;
    for (int i = 0; i < GUST_DRAIN_HOOKS && c->drain[i].open; i++)
        n += c->drain[i].open(c->drain[i].arg);
    return n;
}

static void stop_now(gust_core_t *c) {
    event_del(&c->drain_ev);
    event_del(&c->drain_check_ev);
    while (c->conns)
        gust_conn_close(c->conns);
    event_base_loopexit(c->base, NULL);
}

/* The drain timeout: long-lived connections (WebSockets) are asked to
 * close (1001), get a moment to answer, and then everything left is closed. */
static void on_drain_timeout(evutil_socket_t fd, short what, void *arg) {
    gust_core_t *c = arg;
    if (!c->going_away_sent) {
        c->going_away_sent = 1;
        unsigned left = 0;
        for (int i = 0; i < GUST_DRAIN_HOOKS && c->drain[i].going_away; i++)
            left += c->drain[i].going_away(c->drain[i].arg);
        if (c->nconns)
            gust_log(&c->log, GUST_LOG_WARN, "drain timeout: closing %u connection(s)", c->nconns);
        while (c->conns)
            gust_conn_close(c->conns);
        if (left > 0) {
            struct timeval tv = {(time_t)GUST_CLOSE_TIMEOUT, 0};
            evtimer_add(&c->drain_ev, &tv);
            return;
        }
    }
    stop_now(c);
}

/* While draining: stop as soon as nothing is left. */
static void on_drain_check(evutil_socket_t fd, short what, void *arg) {
    gust_core_t *c = arg;
    if (drain_open(c) == 0)
        stop_now(c);
}

void gust_core_conn_gone(gust_core_t *c) {
    if (c->stopping && c->base && drain_open(c) == 0)
        stop_now(c);
}

void gust_core_stop(gust_core_t *c) {
    if (c->stopping) {
        stop_now(c);
        return;
    }
    c->stopping = 1;
    while (c->listeners)
        gust_listener_close(c->listeners);
    for (gust_conn_t *conn = c->conns, *next; conn; conn = next) {
        next = conn->next;
        gust_conn_drain(conn);
    }
    if (drain_open(c) == 0) {
        stop_now(c);
        return;
    }
    struct timeval tv = gust_timeval(c->cfg.drain_timeout);
    evtimer_add(&c->drain_ev, &tv);
    static const struct timeval check = {0, 200000};
    evtimer_add(&c->drain_check_ev, &check);
}

int gust_core_run(gust_core_t *c) {
    if (!event_initialized(&c->sample_ev)) {
        evtimer_assign(&c->sample_ev, c->base, on_sample, c);
        c->sample_due = gust_now();
        on_sample(-1, 0, c);
    }
    return event_base_dispatch(c->base) < 0 ? -1 : 0;
}

/* ---- life cycle ------------------------------------------------------ */

static void copy_config(gust_core_t *c, const gust_config_t *cfg) {
    gust_config_init(&c->cfg);
    if (cfg) {
        /* Zero / NULL fields keep their defaults. */
#define TAKE(f)                                                                                    \
    if (cfg->f)                                                                                    \
    c->cfg.f = cfg->f
        TAKE(bind);
        TAKE(port);
        TAKE(log_level);
        TAKE(access_log);
        TAKE(max_body_size);
        TAKE(max_header_size);
        TAKE(idle_connection_timeout);
        TAKE(header_timeout);
        TAKE(body_timeout);
        TAKE(lua_dir);
        TAKE(drain_timeout);
        TAKE(metrics_path);
        TAKE(block_warn_ms);
        TAKE(tls_cert);
        TAKE(tls_key);
        TAKE(block_kill);
        TAKE(max_lua_memory);
#undef TAKE
    }
    c->cfg.bind = c->bind = gust_strdup(c->cfg.bind);
    c->cfg.log_level = c->log_level_name = gust_strdup(c->cfg.log_level);
    if (c->cfg.access_log)
        c->cfg.access_log = c->access_log_path = gust_strdup(c->cfg.access_log);
    if (c->cfg.lua_dir)
        c->cfg.lua_dir = c->lua_dir = gust_strdup(c->cfg.lua_dir);
    if (c->cfg.metrics_path)
        c->cfg.metrics_path = c->metrics_path = gust_strdup(c->cfg.metrics_path);
    c->cfg.tls_cert = c->cfg.tls_key = NULL; /* used once, below; not kept */
}

static void open_logs(gust_core_t *c) {
    int level = gust_log_level_parse(c->cfg.log_level);
    c->log.level = level < 0 ? GUST_LOG_INFO : level;
    if (!c->cfg.access_log)
        return;
    if (strcmp(c->cfg.access_log, "-") == 0) {
        c->log.access = stderr;
    } else if ((c->log.access = fopen(c->cfg.access_log, "a"))) {
        c->log.own_access = 1;
    } else {
        gust_log(&c->log, GUST_LOG_ERROR, "access log %s: %s", c->cfg.access_log, strerror(errno));
    }
}

struct event_base *gust_event_base_new(void) {
    /* epoll's change list: an fd added and deleted within one loop
     * iteration (a connection read at accept, answered and closed) costs
     * no epoll_ctl. Its one caveat, fds that share a file description
     * (dup), does not arise: gust never dups. */
    struct event_config *ec = event_config_new();
    if (!ec)
        return NULL;
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

gust_core_t *gust_core_new(const gust_config_t *cfg, struct event_base *base) {
    gust_core_t *c = gust_calloc(1, sizeof *c);
    copy_config(c, cfg);
    open_logs(c);
    c->metrics = gust_metrics_new(0);
    c->own_metrics = 1;
    c->base = base;
    if (!c->base) {
        c->base = gust_event_base_new();
        c->own_base = 1;
    }
    if (!c->base) {
        gust_log(&c->log, GUST_LOG_ERROR, "cannot create an event loop");
        goto err;
    }
    event_assign(&c->defer_ev, c->base, -1, 0, on_defer, c);
    evtimer_assign(&c->drain_ev, c->base, on_drain_timeout, c);
    event_assign(&c->drain_check_ev, c->base, -1, EV_PERSIST, on_drain_check, c);
    if (cfg && cfg->tls_cert) {
        char err[GUST_ERR_LEN];
        c->tls_ctx = gust_tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, err, sizeof err);
        if (!c->tls_ctx) {
            gust_log(&c->log, GUST_LOG_ERROR, "%s", err);
            goto err;
        }
    }
    return c;
err:
    gust_core_free(c);
    return NULL;
}

void gust_core_free(gust_core_t *c) {
    if (!c)
        return;
    while (c->listeners)
        gust_listener_close(c->listeners);
    if (c->base) {
        while (c->conns)
            gust_conn_close(c->conns);
        gust_conn_process_pending(c);
        gust_conn_free_list_clear(c);
        gust_http_pool_free(c);
        gust_stream_close_all(c);
        if (c->dns)
            evdns_base_free(c->dns, 0);
        event_del(&c->defer_ev);
        event_del(&c->drain_ev);
        event_del(&c->drain_check_ev);
        if (event_initialized(&c->sample_ev))
            event_del(&c->sample_ev);
    }
    if (c->metrics) {
        /* This worker no longer reports; the shared counters stay. */
        gust_metrics_slot_t *slot = gust_core_slot(c);
        if (slot->pid == (int32_t)getpid())
            __atomic_store_n(&slot->pid, 0, __ATOMIC_RELAXED);
        if (c->own_metrics)
            gust_metrics_free(c->metrics, 0);
    }
    prefixes_free(c);
    if (c->own_base && c->base)
        event_base_free(c->base);
    if (c->log.own_access)
        fclose(c->log.access);
    gust_free(c->bind);
    gust_free(c->log_level_name);
    gust_free(c->access_log_path);
    gust_free(c->lua_dir);
    gust_free(c->metrics_path);
    SSL_CTX_free(c->tls_ctx);
    gust_free(c);
}
