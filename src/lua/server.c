/*
 * server.c -- gust_server_t: the event loop, the Lua state, the listeners
 * and connections, and the embedding API of gust.h.
 *
 * A server is made either by gust_server_new() (the gust executable and C
 * embedders: it owns its Lua state) or by `require "gust.core"` in a Lua
 * state someone else owns (plain luajit, busted), where a sentinel's __gc
 * frees it when that state closes. Both find the server from Lua through
 * the registry, so every binding works the same in either.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/dns.h>
#include <event2/listener.h>

#include "stream.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <lauxlib.h>
#include <lualib.h>

#include "server.h"

static const char server_key = 'S'; /* registry[&server_key] = the server */
static const char thread_key = 'T'; /* registry[&thread_key] = s->L */

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
}

double gust_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void gust_server_date(gust_server_t *s, const char **date) {
    struct timeval tv;
    event_base_gettimeofday_cached(s->base, &tv);
    if (tv.tv_sec != s->date_time) {
        s->date_time = tv.tv_sec;
        gust_http_date(tv.tv_sec, s->date);
    }
    *date = s->date;
}

static void on_defer(evutil_socket_t fd, short what, void *arg) {
    gust_server_t *s = arg;
    gust_sched_run_queue(s);
    gust_conn_process_pending(s);
    if (s->runq_len || s->pending)
        event_active(&s->defer_ev, 0, 0);
}

#define SAMPLE_SECONDS 1.0

/* Once a second: how late this timer fired (the loop's lag) and the size of
 * the Lua heap, into this worker's metrics slot. */
static void on_sample(evutil_socket_t fd, short what, void *arg) {
    gust_server_t *s = arg;
    double now = gust_now(), lag = now - s->sample_due;
    gust_metrics_slot_t *slot = &s->metrics->slot[s->metrics_slot];
    __atomic_store_n(&slot->pid, (int32_t)getpid(), __ATOMIC_RELAXED);
    __atomic_store_n(&slot->lag_us, (uint32_t)(lag > 0 ? lag * 1e6 : 0), __ATOMIC_RELAXED);
    if (s->main_L) {
        uint64_t bytes = (uint64_t)lua_gc(s->main_L, LUA_GCCOUNT, 0) * 1024 +
                         (uint64_t)lua_gc(s->main_L, LUA_GCCOUNTB, 0);
        __atomic_store_n(&slot->lua_bytes, bytes, __ATOMIC_RELAXED);
    }
    s->sample_due = now + SAMPLE_SECONDS;
    struct timeval tv = {1, 0};
    evtimer_add(&s->sample_ev, &tv);
}

static void start_sampling(gust_server_t *s) {
    evtimer_assign(&s->sample_ev, s->base, on_sample, s);
    s->sample_due = gust_now();
    on_sample(-1, 0, s);
}

void gust_server_attach_metrics(gust_server_t *s, gust_metrics_t *m, int slot) {
    if (s->own_metrics)
        gust_metrics_free(s->metrics, 0);
    s->metrics = m;
    s->own_metrics = 0;
    s->metrics_slot = slot;
    __atomic_store_n(&m->slot[slot].pid, (int32_t)getpid(), __ATOMIC_RELAXED);
}

/* Activating an already active event is a no-op, so this is cheap to repeat. */
void gust_server_defer(gust_server_t *s) { event_active(&s->defer_ev, 0, 0); }

static void stop_now(gust_server_t *s) {
    event_del(&s->drain_ev);
    event_del(&s->drain_check_ev);
    while (s->conns)
        gust_conn_close(s->conns);
    event_base_loopexit(s->base, NULL);
}

/* The drain timeout: long-lived WebSockets get close 1001 (DESIGN §2), a
 * moment to answer it, and then everything that is left is closed. */
static void on_drain_timeout(evutil_socket_t fd, short what, void *arg) {
    gust_server_t *s = arg;
    if (!s->going_away_sent) {
        s->going_away_sent = 1;
        int ws = gust_ws_going_away(s);
        if (s->nconns)
            gust_log(&s->log, GUST_LOG_WARN, "drain timeout: closing %u connection(s)",
                     s->nconns);
        while (s->conns)
            gust_conn_close(s->conns);
        if (ws > 0) {
            struct timeval tv = {2, 0}; /* the close handshake's own timeout */
            evtimer_add(&s->drain_ev, &tv);
            return;
        }
    }
    stop_now(s);
}

static int drained(gust_server_t *s) {
    return s->nconns == 0 && gust_ws_open_count(s) == 0;
}

/* While draining: stop as soon as nothing is left. */
static void on_drain_check(evutil_socket_t fd, short what, void *arg) {
    gust_server_t *s = arg;
    if (drained(s))
        stop_now(s);
}

void gust_server_conn_gone(gust_server_t *s) {
    if (s->stopping && s->base && drained(s))
        stop_now(s);
}

static const char *find_lua_dir(gust_server_t *s, char *buf, size_t len) {
    struct stat st;
    const char *env = getenv("GUST_LUA_DIR");
    if (env && *env)
        return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *dir = dirname(exe);
        static const char *const rel[] = {"/../lua", "/../share/gust/lua"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(buf, len, "%s%s/gust", dir, rel[i]);
            if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) {
                buf[strlen(buf) - 5] = 0;
                return buf;
            }
        }
    }
    if (stat(GUST_SOURCE_LUA_DIR "/gust", &st) == 0)
        return GUST_SOURCE_LUA_DIR;
    return GUST_LUA_INSTALL_DIR;
}

/* Puts `dir`/?.lua and `dir`/?/init.lua in front of package.path. */
static void prepend_path(lua_State *L, const char *dir) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

int gust_server_attach_lua(gust_server_t *s, lua_State *L) {
    s->main_L = L;
    lua_pushlightuserdata(L, (void *)&server_key);
    lua_pushlightuserdata(L, s);
    lua_rawset(L, LUA_REGISTRYINDEX);
    /* A thread of our own whose stack we control, whatever coroutine the
     * state's owner happens to be running when it calls in. */
    lua_pushlightuserdata(L, (void *)&thread_key);
    s->L = lua_newthread(L);
    lua_rawset(L, LUA_REGISTRYINDEX);
    s->app_ref = s->close_hook_ref = s->request_mt_ref = LUA_NOREF;
    return 0;
}

gust_server_t *gust_server_from_lua(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&server_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    gust_server_t *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

static gust_server_t *server_alloc(const gust_config_t *cfg, struct event_base *base) {
    gust_server_t *s = gust_calloc(1, sizeof *s);
    gust_config_t dflt;
    gust_config_init(&dflt);
    s->cfg = dflt;
    if (cfg) {
        /* Zero / NULL fields keep their defaults. */
#define TAKE(f) if (cfg->f) s->cfg.f = cfg->f
        TAKE(bind); TAKE(port); TAKE(log_level); TAKE(access_log);
        TAKE(max_body_size); TAKE(max_header_size); TAKE(idle_connection_timeout);
        TAKE(header_timeout); TAKE(body_timeout); TAKE(lua_dir); TAKE(drain_timeout);
        TAKE(metrics_path); TAKE(block_warn_ms); TAKE(tls_cert); TAKE(tls_key);
#undef TAKE
    }
    s->cfg.bind = s->bind = gust_strdup(s->cfg.bind);
    s->cfg.log_level = s->log_level_name = gust_strdup(s->cfg.log_level);
    if (s->cfg.access_log)
        s->cfg.access_log = s->access_log_path = gust_strdup(s->cfg.access_log);
    if (s->cfg.lua_dir)
        s->cfg.lua_dir = s->lua_dir = gust_strdup(s->cfg.lua_dir);
    if (s->cfg.metrics_path)
        s->cfg.metrics_path = s->metrics_path = gust_strdup(s->cfg.metrics_path);
    int level = gust_log_level_parse(s->cfg.log_level);
    s->log.level = level < 0 ? GUST_LOG_INFO : level;
    if (s->cfg.access_log) {
        if (strcmp(s->cfg.access_log, "-") == 0) {
            s->log.access = stderr;
        } else if ((s->log.access = fopen(s->cfg.access_log, "a"))) {
            s->log.own_access = 1;
        } else {
            gust_log(&s->log, GUST_LOG_ERROR, "access log %s: %s", s->cfg.access_log,
                     strerror(errno));
        }
    }
    s->base = base;
    if (!s->base) {
        s->base = event_base_new();
        s->own_base = 1;
    }
    if (!s->base) {
        gust_free(s);
        return NULL;
    }
    event_assign(&s->defer_ev, s->base, -1, 0, on_defer, s);
    evtimer_assign(&s->drain_ev, s->base, on_drain_timeout, s);
    event_assign(&s->drain_check_ev, s->base, -1, EV_PERSIST, on_drain_check, s);
    gust_timer_init(s);
    s->metrics = gust_metrics_new(0);
    s->own_metrics = 1;
    s->app_ref = s->close_hook_ref = s->request_mt_ref = LUA_NOREF;
    s->bus_fd = -1;
    s->bus_handler_ref = LUA_NOREF;
    return s;
}

/* An SSL_CTX serving `cert` with `key`, or NULL with the reason in err. */
static SSL_CTX *tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen) {
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
    SSL_CTX *ctx = tls_server_ctx(cert, key, err, errlen);
    SSL_CTX_free(ctx);
    return ctx ? 0 : -1;
}

gust_server_t *gust_server_new(const gust_config_t *cfg, struct event_base *base) {
    gust_server_t *s = server_alloc(cfg, base);
    if (!s)
        return NULL;
    if (s->cfg.tls_cert) {
        char err[GUST_ERR_LEN];
        s->tls_ctx = tls_server_ctx(s->cfg.tls_cert, s->cfg.tls_key, err, sizeof err);
        if (!s->tls_ctx) {
            gust_log(&s->log, GUST_LOG_ERROR, "%s", err);
            gust_server_free(s);
            return NULL;
        }
    }
    lua_State *L = luaL_newstate();
    if (!L) {
        gust_server_free(s);
        return NULL;
    }
    s->own_lua = 1;
    luaL_openlibs(L);
    gust_server_attach_lua(s, L);
    char buf[PATH_MAX];
    prepend_path(L, s->cfg.lua_dir ? s->cfg.lua_dir : find_lua_dir(s, buf, sizeof buf));
    gust_preload(s, "gust.core", luaopen_gust_core);
    /* Load the core now: request handles need its metatables even when an
     * app (a bare handler function) never requires it. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "gust.core");
    if (lua_pcall(L, 1, 0, 0) != 0) {
        gust_log(&s->log, GUST_LOG_ERROR, "gust.core: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return s;
}

/* The __gc of the sentinel that `require "gust.core"` leaves in a state it
 * does not own: the server goes when the state does. */
static int sentinel_gc(lua_State *L) {
    gust_server_t **sp = lua_touserdata(L, 1);
    if (*sp)
        gust_server_free(*sp);
    *sp = NULL;
    return 0;
}

gust_server_t *gust_server_for_lua(lua_State *L) {
    gust_server_t *s = gust_server_from_lua(L);
    if (s)
        return s;
    gust_config_t cfg;
    gust_config_init(&cfg);
    const char *level = getenv("GUST_LOG_LEVEL");
    if (level && gust_log_level_parse(level) >= 0)
        cfg.log_level = level;
    s = server_alloc(&cfg, NULL);
    if (!s)
        luaL_error(L, "gust.core: cannot create an event loop");
    gust_server_attach_lua(s, L);
    gust_server_t **sp = lua_newuserdata(L, sizeof *sp);
    *sp = s;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, sentinel_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    luaL_ref(L, LUA_REGISTRYINDEX);
    return s;
}

void gust_server_free(gust_server_t *s) {
    if (!s)
        return;
    if (!s->own_lua)
        s->L = NULL; /* inside the owner's lua_close(): Lua is off limits */
    while (s->listeners)
        gust_listener_free(s->listeners);
    while (s->conns)
        gust_conn_close(s->conns);
    gust_conn_process_pending(s);
    gust_httpclient_forget_server(s);
    gust_pubsub_forget_server(s);
    gust_threads_free(s);
    gust_stream_close_all(s);
    gust_socket_forget_server(s);
    if (s->dns)
        evdns_base_free(s->dns, 0);
    if (s->base) {
        event_del(&s->defer_ev);
        event_del(&s->drain_ev);
        event_del(&s->drain_check_ev);
        if (event_initialized(&s->sample_ev))
            event_del(&s->sample_ev);
    }
    if (s->metrics) {
        /* This worker no longer reports; the shared counters stay. */
        gust_metrics_slot_t *slot = &s->metrics->slot[s->metrics_slot];
        if (slot->pid == (int32_t)getpid())
            __atomic_store_n(&slot->pid, 0, __ATOMIC_RELAXED);
        if (s->own_metrics)
            gust_metrics_free(s->metrics, 0);
    }
    gust_timer_forget_server(s);
    gust_free(s->runq);
    s->runq = NULL;
    s->runq_len = 0;
    if (s->own_lua && s->main_L)
        lua_close(s->main_L);
    if (s->own_base && s->base)
        event_base_free(s->base);
    if (s->log.own_access)
        fclose(s->log.access);
    gust_free(s->bind);
    gust_free(s->log_level_name);
    gust_free(s->access_log_path);
    gust_free(s->lua_dir);
    gust_free(s->metrics_path);
    SSL_CTX_free(s->tls_ctx);
    gust_free(s);
}

int gust_preload(gust_server_t *s, const char *name, lua_CFunction open) {
    if (!s || !name || !open)
        return -1;
    lua_State *L = s->L;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
    return 0;
}

int gust_load_app(gust_server_t *s, const char *path, char *err, size_t errlen) {
    lua_State *L = s->L;
    int top = lua_gettop(L);
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    prepend_path(L, dirname(copy));
    lua_pushcfunction(L, gust_traceback);
    if (luaL_loadfile(L, path) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return -1;
    }
    s->loading = 1;
    int rc = lua_pcall(L, 0, 1, top + 1);
    s->loading = 0;
    if (rc != 0) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", msg ? msg : "error object is not a string");
        lua_settop(L, top);
        return -1;
    }
    if (!lua_isnil(L, -1)) {
        if (s->app_ref != LUA_NOREF)
            luaL_unref(L, LUA_REGISTRYINDEX, s->app_ref);
        s->app_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_settop(L, top);
    return 0;
}

/* A listener for the app on `fd` (-1: bind addr:port), with the limits of
 * the app's settings table. */
static int listen_app(gust_server_t *s, int fd, const char *addr, int port) {
    lua_State *L = s->L;
    char err[GUST_ERR_LEN];
    if (s->app_ref == LUA_NOREF) {
        gust_log(&s->log, GUST_LOG_ERROR, "the app script returned no Application to serve");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->app_ref);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    gust_listener_t *l = fd >= 0 ? gust_listener_adopt(s, fd, ref, err, sizeof err)
                                 : gust_listener_new(s, addr, port, ref, err, sizeof err);
    if (!l) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        if (fd >= 0)
            close(fd);
        gust_log(&s->log, GUST_LOG_ERROR, "%s", err);
        return -1;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->app_ref);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "settings");
        gust_listener_apply_settings(l, L, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

int gust_listen(gust_server_t *s, const char *addr, int port) {
    if (!addr)
        addr = s->cfg.bind;
    if (!port)
        port = s->cfg.port;
    if (port == GUST_PORT_ANY)
        port = 0;
    return listen_app(s, -1, addr, port);
}

int gust_listen_fd(gust_server_t *s, int fd) { return listen_app(s, fd, NULL, 0); }

int gust_has_app(gust_server_t *s) { return s->app_ref != LUA_NOREF; }

int gust_port(gust_server_t *s) {
    for (gust_listener_t *l = s->listeners; l; l = l->next)
        if (l->port > 0)
            return l->port;
    return -1;
}

int gust_run(gust_server_t *s) {
    if (!event_initialized(&s->sample_ev))
        start_sampling(s);
    return event_base_dispatch(s->base) < 0 ? -1 : 0;
}

void gust_stop(gust_server_t *s) {
    if (s->stopping) {
        stop_now(s);
        return;
    }
    s->stopping = 1;
    while (s->listeners)
        gust_listener_free(s->listeners);
    for (gust_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        gust_conn_drain(c);
    }
    if (drained(s)) {
        stop_now(s);
        return;
    }
    struct timeval tv = {(time_t)s->cfg.drain_timeout,
                         (suseconds_t)((s->cfg.drain_timeout - (time_t)s->cfg.drain_timeout) * 1e6)};
    evtimer_add(&s->drain_ev, &tv);
    static const struct timeval check = {0, 200000};
    evtimer_add(&s->drain_check_ev, &check);
}

lua_State *gust_lua(gust_server_t *s) { return s->main_L; }
