/*
 * server.c -- gust_server_t (server.h): a core and the Lua state serving on
 * it, and the embedding API of gust.h.
 *
 * A server is made either by gust_server_new() (the gust executable and C
 * embedders: it owns its Lua state) or by `require "gust.core"` in a Lua
 * state someone else owns (plain luajit, busted), where a sentinel's __gc
 * frees it when that state closes. Both find the server from Lua through
 * the registry, so every binding works the same in either.
 */
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <lualib.h>

#include "core/conn.h"
#include "core/listener.h"
#include "core/mem.h"
#include "core/stream.h"
#include "lua_core.h"
#include "lua_pubsub.h"
#include "lua_request.h"
#include "lua_sched.h"
#include "lua_socket.h"
#include "lua_thread.h"
#include "lua_timer.h"
#include "lua_ws.h"
#include "server.h"

static const char server_key = 'S'; /* registry[&server_key] = the server */
static const char thread_key = 'T'; /* registry[&thread_key] = s->L */

#define SAMPLE_SECONDS 1

static uint64_t lua_heap(lua_State *L) {
    return (uint64_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (uint64_t)lua_gc(L, LUA_GCCOUNTB, 0);
}

/* Once a second: the size of the Lua heap, into this worker's metrics slot
 * (the core samples the loop's lag beside it). */
static void on_sample(evutil_socket_t fd, short what, void *arg) {
    gust_server_t *s = arg;
    gust_core_t *c = s->core;
    if (s->main_L) {
        uint64_t bytes = lua_heap(s->main_L);
        size_t max = c->cfg.max_lua_memory;
        if (max && bytes > max && !c->stopping) {
            /* Garbage does not count: only what a full collection keeps. */
            lua_gc(s->main_L, LUA_GCCOLLECT, 0);
            bytes = lua_heap(s->main_L);
            if (bytes > max) {
                gust_log(&c->log, GUST_LOG_ERROR,
                         "the Lua heap keeps %llu bytes, above --max-lua-memory %zu",
                         (unsigned long long)bytes, max);
                gust_sched_out_of_memory(s);
            }
        }
        __atomic_store_n(&gust_core_slot(c)->lua_bytes, bytes, __ATOMIC_RELAXED);
    }
    struct timeval tv = {SAMPLE_SECONDS, 0};
    evtimer_add(&s->sample_ev, &tv);
}

/*
 * The collector's pause, with a floor. LuaJIT starts a cycle once the heap
 * is `pause` percent of what the last cycle kept (200: twice that). A
 * server's heap is mostly its code, half a MiB, while every request leaves
 * a few hundred bytes of garbage: at pause 200 a cycle re-marks the whole
 * heap every 1,500 requests or so. As Go's collector does with its
 * minimum heap, a cycle here waits for at least GC_FLOOR bytes of garbage:
 * at the end of every cycle the finalizer of a sentinel, which each run
 * makes anew, sets the pause from what that cycle kept. Heaps of GC_FLOOR
 * and more keep pause 200. An app that sets the pause itself
 * (collectgarbage("setpause")) keeps its own from then on.
 */
#define GC_FLOOR (1u << 20)
#define GC_PAUSE 200

/* A userdata holding the server whose __gc is `gc`: a sentinel, whose
 * finalizer runs when the collector finds it unreachable.  [-0, +1, m] */
static void push_sentinel(lua_State *L, gust_server_t *s, lua_CFunction gc) {
    gust_server_t **sp = lua_newuserdata(L, sizeof *sp);
    *sp = s;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
}

/* The GC floor's sentinel's __gc; each run makes the next one, garbage
 * from the start, which the next cycle finalizes.  [-0, +0, m] */
static int gc_floor(lua_State *L) {
    gust_server_t *s = *(gust_server_t **)lua_touserdata(L, 1);
    if (!s->gc_pause)
        return 0; /* the state is closing, or the app set its own pause */
    uint64_t kept = lua_heap(L) | 1;
    uint64_t pause = 100 * (kept + GC_FLOOR) / kept;
    if (pause < GC_PAUSE)
        pause = GC_PAUSE;
    /* The next sentinel first, so that running out of memory making it
     * (which LuaJIT raises in whatever allocation ran this finalizer)
     * leaves the pause as it was. */
    push_sentinel(L, s, gc_floor);
    lua_pop(L, 1);
    int was = lua_gc(L, LUA_GCSETPAUSE, (int)pause);
    if (was != s->gc_pause) { /* not what we left: the app's */
        lua_gc(L, LUA_GCSETPAUSE, was);
        s->gc_pause = 0;
        return 0;
    }
    s->gc_pause = (int)pause;
    return 0;
}

/* WebSockets are the bindings' connections: a graceful stop waits for them
 * and the drain timeout sends them 1001. */
static unsigned ws_open(void *arg) { return (unsigned)gust_ws_open_count(arg); }
static unsigned ws_going_away(void *arg) { return (unsigned)gust_ws_going_away(arg); }

static const char *find_lua_dir(char *buf, size_t len) {
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
    return 0;
}

gust_server_t *gust_server_from_lua(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&server_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    gust_server_t *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

/* The server around a new core: its subsystems and the hooks the core
 * calls them through. */
static gust_server_t *server_alloc(const gust_config_t *cfg, struct event_base *base) {
    gust_core_t *core = gust_core_new(cfg, base);
    if (!core)
        return NULL;
    gust_server_t *s = gust_calloc(1, sizeof *s);
    s->core = core;
    s->app_ref = s->close_hook_ref = s->adopt_hook_ref = LUA_NOREF;
    s->sched = gust_sched_new(s);
    s->timers = gust_timers_new(s);
    s->bus = gust_bus_new(s);
    gust_core_add_defer(core, gust_sched_run_queue, s->sched);
    gust_drain_hook_t ws = {ws_open, ws_going_away, s};
    gust_core_add_drain(core, &ws);
    return s;
}

gust_server_t *gust_server_new(const gust_config_t *cfg, struct event_base *base) {
    gust_server_t *s = server_alloc(cfg, base);
    if (!s)
        return NULL;
    lua_State *L = luaL_newstate();
    if (!L) {
        gust_server_free(s);
        return NULL;
    }
    s->own_lua = 1;
    lua_gc(L, LUA_GCSETPAUSE, GC_PAUSE);
    s->gc_pause = GC_PAUSE;
    push_sentinel(L, s, gc_floor);
    lua_pop(L, 1);
    luaL_openlibs(L);
    gust_server_attach_lua(s, L);
    char buf[PATH_MAX];
    const char *dir = s->core->cfg.lua_dir;
    prepend_path(L, dir ? dir : find_lua_dir(buf, sizeof buf));
    gust_preload(s, "gust.core", luaopen_gust_core);
    /* Load the core now: request handles need its metatables even when an
     * app (a bare handler function) never requires it. */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "gust.core");
    if (lua_pcall(L, 1, 0, 0) != 0) {
        gust_log(&s->core->log, GUST_LOG_ERROR, "gust.core: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return s;
}

/* The __gc of the sentinel that `require "gust.core"` leaves in a state it
 * does not own: the server goes when the state does.  [-1, +0, -] */
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
    push_sentinel(L, s, sentinel_gc);
    luaL_ref(L, LUA_REGISTRYINDEX);
    return s;
}

void gust_server_free(gust_server_t *s) {
    if (!s)
        return;
    if (!s->own_lua)
        s->L = NULL; /* inside the owner's lua_close(): Lua is off limits */
    if (event_initialized(&s->sample_ev))
        event_del(&s->sample_ev);
    /* The core goes first: closing its connections and streams ends the
     * requests and WebSockets that the bindings below still track. */
    gust_core_t *core = s->core;
    while (core->listeners)
        gust_listener_close(core->listeners);
    while (core->conns)
        gust_conn_close(core->conns);
    gust_conn_process_pending(core);
    gust_bus_free(s->bus);
    gust_threads_free(s);
    gust_stream_close_all(core);
    gust_socket_forget_server(s);
    gust_timers_free(s->timers);
    gust_sched_free(s->sched);
    s->sched = NULL;
    s->gc_pause = 0; /* lua_close() runs the sentinel's __gc */
    if (s->own_lua && s->main_L)
        lua_close(s->main_L);
    gust_core_free(core);
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

static int is_callable(lua_State *L, int idx) {
    if (lua_isfunction(L, idx))
        return 1;
    if (!luaL_getmetafield(L, idx, "__call"))
        return 0;
    lua_pop(L, 1);
    return 1;
}

/* Whether a script that returned nothing set up something to run. */
static int has_work(gust_server_t *s) {
    return s->core->listeners || s->core->streams || s->watchers ||
           gust_timers_pending(s->timers) || gust_sched_pending(s->sched);
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
    s->app_path = path;
    int rc = lua_pcall(L, 0, 1, top + 1);
    s->loading = 0;
    s->app_path = NULL;
    if (rc != 0) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", msg ? msg : "error object is not a string");
        lua_settop(L, top);
        return -1;
    }
    /* What a script may return: an Application (a callable table), a bare
     * handler function, or nothing when it runs listeners or tasks of its
     * own. Anything else is a mistake to name now, not a hang later. */
    int t = lua_type(L, -1);
    if (t == LUA_TNIL ? !has_work(s) : !is_callable(L, -1)) {
        snprintf(err, errlen, "%s must return a web.Application (got %s)", path,
                 lua_typename(L, t));
        lua_settop(L, top);
        return -1;
    }
    if (t != LUA_TNIL) {
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
        gust_log(&s->core->log, GUST_LOG_ERROR, "the app script returned no Application to serve");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    gust_listener_t *l = fd >= 0 ? gust_listener_adopt(s->core, fd, err, sizeof err)
                                 : gust_listener_new(s->core, addr, port, err, sizeof err);
    if (!l) {
        gust_log(&s->core->log, GUST_LOG_ERROR, "%s", err);
        return -1;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->app_ref);
    gust_lua_handler_t *lh = gust_lua_handler_attach(s, l, luaL_ref(L, LUA_REGISTRYINDEX));
    gust_listener_serve_http(l, &gust_lua_request_handler, lh);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->app_ref);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "settings");
        gust_lua_apply_settings(l, L, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

int gust_listen(gust_server_t *s, const char *addr, int port) {
    if (!addr)
        addr = s->core->cfg.bind;
    if (!port)
        port = s->core->cfg.port;
    if (port == GUST_PORT_ANY)
        port = 0;
    return listen_app(s, -1, addr, port);
}

int gust_listen_fd(gust_server_t *s, int fd) { return listen_app(s, fd, NULL, 0); }

int gust_has_app(gust_server_t *s) { return s->app_ref != LUA_NOREF; }

int gust_port(gust_server_t *s) {
    for (gust_listener_t *l = s->core->listeners; l; l = l->next)
        if (l->port > 0)
            return l->port;
    return -1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg) { gust_stop(arg); }

int gust_run(gust_server_t *s) {
    if (!event_initialized(&s->sample_ev)) {
        evtimer_assign(&s->sample_ev, s->core->base, on_sample, s);
        on_sample(-1, 0, s);
    }
    if (s->own_lua)
        gust_sched_watch(s, 1);
    if (!s->core->own_base)
        return gust_core_run(s->core); /* the host's loop: its signals too */
    /* Our own loop: SIGTERM and SIGINT stop gracefully, a second at once,
     * as the gust command does. */
    struct event *sigs[2];
    static const int signums[2] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        sigs[i] = evsignal_new(s->core->base, signums[i], on_signal, s);
        event_add(sigs[i], NULL);
    }
    int rc = gust_core_run(s->core);
    for (int i = 0; i < 2; i++)
        event_free(sigs[i]);
    return rc;
}

void gust_stop(gust_server_t *s) { gust_core_stop(s->core); }

int gust_handle(gust_server_t *s, const char *prefix, gust_handler_fn fn, void *arg) {
    return gust_core_handle(s->core, prefix, fn, arg);
}

lua_State *gust_lua(gust_server_t *s) { return s->main_L; }
