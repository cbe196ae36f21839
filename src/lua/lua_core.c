/*
 * lua_core.c -- `require "gust.core"`: the C core as the Lua framework sees
 * it (loop control, tasks, listeners, logging). Every function carries its
 * server as upvalue 1, so a lookup costs nothing per call.
 *
 * Loaded into the gust executable, it finds the server that owns the Lua
 * state; loaded into plain luajit or busted, it makes one (server.c).
 */
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>

#include "core/mem.h"
#include "lua_core.h"
#include "lua_crypto.h"
#include "lua_httpclient.h"
#include "lua_pubsub.h"
#include "lua_redis.h"
#include "lua_request.h"
#include "lua_sched.h"
#include "lua_shdict.h"
#include "lua_socket.h"
#include "lua_stream.h"
#include "lua_thread.h"
#include "lua_timer.h"
#include "lua_ws.h"

#define LISTENER_MT "gust.listener"

static gust_server_t *upserver(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* core.now() -> monotonic seconds  [-0, +1, -] */
static int core_now(lua_State *L) {
    lua_pushnumber(L, gust_now());
    return 1;
}

/* core.time() -> wall-clock seconds since the epoch  [-0, +1, -] */
static int core_time(lua_State *L) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (double)tv.tv_sec + tv.tv_usec / 1e6);
    return 1;
}

/* core.spawn(fn, ...) -- fn(...) in a new coroutine, next iteration
 * [-(1+n), +0, e] */
static int core_spawn(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    gust_sched_start(upserver(L), L, lua_gettop(L) - 1);
    return 0;
}

/* core.wake(co, ...) -- resumes a coroutine suspended with coroutine.yield
 * on the next iteration, with the given values  [-(1+n), +0, e] */
static int core_wake(lua_State *L) {
    gust_server_t *s = upserver(L);
    luaL_checktype(L, 1, LUA_TTHREAD);
    int n = lua_gettop(L) - 1;
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, i + 1);
        lua_rawseti(L, -2, i);
    }
    int vals = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 1);
    gust_run_t run = {luaL_ref(L, LUA_REGISTRYINDEX), GUST_RUN_VALUES, vals, NULL};
    gust_sched_push(s, run);
    return 0;
}

/* core.run() -- runs the loop until core.stop(). Under the gust executable
 * the loop starts once the app has loaded, so this returns at once there.
 * [-0, +0, e] */
static int core_run(lua_State *L) {
    gust_server_t *s = upserver(L);
    if (s->loading || s->own_lua)
        return 0;
    if (event_base_dispatch(s->core->base) < 0)
        return luaL_error(L, "event loop failed");
    return 0;
}

/* core.stop() -- makes core.run() return after this iteration  [-0, +0, -] */
static int core_stop(lua_State *L) {
    gust_server_t *s = upserver(L);
    if (s->own_lua)
        gust_stop(s);
    else
        event_base_loopexit(s->core->base, NULL);
    return 0;
}

static int parse_level(lua_State *L, int idx) {
    int level = gust_log_level_parse(luaL_checkstring(L, idx));
    if (level < 0)
        luaL_argerror(L, idx, "level must be error, warn, info or debug");
    return level;
}

/* core.log(level, msg)  [-2, +0, e] */
static int core_log(lua_State *L) {
    gust_server_t *s = upserver(L);
    int level = parse_level(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    if (gust_log_enabled(&s->core->log, level))
        gust_log(&s->core->log, level, "%s", msg);
    /* The framework catches handler errors and logs them; one that says the
     * Lua state ran out of memory means this worker must be replaced, even
     * when a 500 could still be written. */
    if (level == GUST_LOG_ERROR && strstr(msg, "not enough memory"))
        gust_sched_out_of_memory(s);
    return 0;
}

/* core.log_level([level]) -> current level name  [-(0..1), +1, e] */
static int core_log_level(lua_State *L) {
    gust_server_t *s = upserver(L);
    if (!lua_isnoneornil(L, 1))
        s->core->log.level = parse_level(L, 1);
    lua_pushstring(L, gust_log_level_name(s->core->log.level));
    return 1;
}

/* core.set_close_hook(close[, adopt]): close(req) runs when the client of
 * an unfinished request went away; adopt(req, co), when the run a request
 * started in ended and the request can still be reported (it goes on, or
 * its client left during that run), so that whoever keeps requests by
 * handle need keep only those; co is that run's coroutine if it is
 * suspended, else nil  [-(1|2), +0, e] */
static int core_set_close_hook(lua_State *L) {
    gust_server_t *s = upserver(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_unref(L, LUA_REGISTRYINDEX, s->close_hook_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->adopt_hook_ref);
    lua_pushvalue(L, 1);
    s->close_hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->adopt_hook_ref = LUA_NOREF;
    if (!lua_isnoneornil(L, 2)) {
        lua_pushvalue(L, 2);
        s->adopt_hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 0;
}

void gust_lua_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                       const luaL_Reg *meta) {
    if (!luaL_newmetatable(L, name))
        return;
    /* Each method and metamethod holds the metatable as upvalue 1, for
     * gust_lua_checkself. */
    lua_newtable(L);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__index");
    if (meta) {
        lua_pushvalue(L, -1);
        luaL_setfuncs(L, meta, 1);
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
}

void *gust_lua_checkself(lua_State *L, const char *name) {
    void *p = lua_touserdata(L, 1);
    if (p && lua_getmetatable(L, 1)) {
        int same = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
        if (same)
            return p;
    }
    return luaL_checkudata(L, 1, name); /* raises the usual error */
}

double gust_lua_opt_number(lua_State *L, int idx, const char *name, double dflt) {
    lua_getfield(L, idx, name);
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1))
            luaL_error(L, "option %s: number expected, got %s", name, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

int gust_lua_opt_bool(lua_State *L, int idx, const char *name, int dflt) {
    lua_getfield(L, idx, name);
    int v = lua_isnil(L, -1) ? dflt : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

void gust_lua_apply_settings(gust_listener_t *l, lua_State *L, int idx) {
    const gust_config_t *cfg = &l->core->cfg;
    if (!lua_istable(L, idx)) {
        gust_listener_set_limits(l, cfg->max_body_size, cfg->max_header_size,
                                 cfg->idle_connection_timeout, cfg->header_timeout,
                                 cfg->body_timeout);
        return;
    }
    gust_listener_set_limits(
        l, (size_t)gust_lua_opt_number(L, idx, "max_body_size", (double)cfg->max_body_size),
        (size_t)gust_lua_opt_number(L, idx, "max_header_size", (double)cfg->max_header_size),
        gust_lua_opt_number(L, idx, "idle_connection_timeout", cfg->idle_connection_timeout),
        gust_lua_opt_number(L, idx, "header_timeout", cfg->header_timeout),
        gust_lua_opt_number(L, idx, "body_timeout", cfg->body_timeout));
}

/* Pushes the Lua handle of a new listener. */
static int listener_push(lua_State *L, gust_lua_handler_t *lh) {
    struct gust_listener_handle *h = lua_newuserdata(L, sizeof *h);
    h->l = lh->listener;
    h->lh = lh;
    lh->handle = h;
    luaL_getmetatable(L, LISTENER_MT);
    lua_setmetatable(L, -2);
    return 1;
}

int gust_listen_lua(lua_State *L, gust_server_t *s, int raw) {
    int port = luaL_checkint(L, 2);
    const char *addr = luaL_optstring(L, 3, s->core->cfg.bind);
    char err[GUST_ERR_LEN];
    gust_listener_t *l = gust_listener_new(s->core, addr, port, err, sizeof err);
    if (!l) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushvalue(L, 1);
    gust_lua_handler_t *lh = gust_lua_handler_attach(s, l, luaL_ref(L, LUA_REGISTRYINDEX));
    if (raw) {
        gust_listener_set_accept(l, gust_lua_stream_accept, lh);
    } else {
        gust_listener_serve_http(l, &gust_lua_request_handler, lh);
        gust_lua_apply_settings(l, L, 4);
    }
    return listener_push(L, lh);
}

/* core.listen(handler, port, address?, settings?) -> listener | nil, err
 * [-(2..4), +1|2, e] */
static int core_listen(lua_State *L) {
    if (lua_isnoneornil(L, 1))
        luaL_argerror(L, 1, "a handler (function or callable table) is required");
    return gust_listen_lua(L, upserver(L), 0);
}

static gust_listener_t *check_listener(lua_State *L) {
    struct gust_listener_handle *h = gust_lua_checkself(L, LISTENER_MT);
    return h->l;
}

/* listener:port() -> number | nil when closed or a Unix socket
 * [-1, +1, e] */
static int listener_port(lua_State *L) {
    gust_listener_t *l = check_listener(L);
    if (!l || l->port < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, l->port);
    return 1;
}

/* listener:close() -- stops accepting; open connections carry on
 * [-1, +0, e] */
static int listener_close(lua_State *L) {
    gust_listener_t *l = check_listener(L);
    if (l)
        gust_listener_close(l);
    return 0;
}

/* listener __gc -- the listener outlives its handle  [-1, +0, e] */
static int listener_gc(lua_State *L) {
    struct gust_listener_handle *h = gust_lua_checkself(L, LISTENER_MT);
    if (h->l) /* the listener goes on without its handle */
        h->lh->handle = NULL;
    return 0;
}

/* core.loading_app() -> the path of the app script being loaded, or nil
 * (for messages that must name the app's line after a tail call)
 * [-0, +1, m] */
static int core_loading_app(lua_State *L) {
    gust_server_t *s = upserver(L);
    if (s->loading && s->app_path)
        lua_pushstring(L, s->app_path);
    else
        lua_pushnil(L);
    return 1;
}

/* core.pid() -> this process's pid (a worker's, under the gust command)
 * [-0, +1, -] */
static int core_pid(lua_State *L) {
    lua_pushinteger(L, getpid());
    return 1;
}

/* core.metrics() -> the Prometheus text of this server (all its workers)
 * [-0, +1, m] */
static int core_metrics(lua_State *L) {
    size_t len;
    char *text = gust_metrics_render(upserver(L)->core->metrics, &len);
    lua_pushlstring(L, text ? text : "", len);
    gust_free(text);
    return 1;
}

/* core.config() -> {bind=, port=} as given on the command line (port 0:
 * any free port), for scripts that open their own listeners.  [-0, +1, m] */
static int core_config(lua_State *L) {
    gust_server_t *s = upserver(L);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, s->core->cfg.bind);
    lua_setfield(L, -2, "bind");
    lua_pushinteger(L, s->core->cfg.port == GUST_PORT_ANY ? 0 : s->core->cfg.port);
    lua_setfield(L, -2, "port");
    return 1;
}

/* require "gust.core" -> the module table; the module name it is called
 * with goes unused  [-1, +1, e] */
GUST_API int luaopen_gust_core(lua_State *L) {
    gust_server_t *s = gust_server_for_lua(L);
    static const luaL_Reg listener_methods[] = {
        {"port", listener_port}, {"close", listener_close}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"now", core_now},
                                     {"time", core_time},
                                     {"spawn", core_spawn},
                                     {"wake", core_wake},
                                     {"run", core_run},
                                     {"stop", core_stop},
                                     {"log", core_log},
                                     {"log_level", core_log_level},
                                     {"set_close_hook", core_set_close_hook},
                                     {"listen", core_listen},
                                     {"config", core_config},
                                     {"metrics", core_metrics},
                                     {"pid", core_pid},
                                     {"loading_app", core_loading_app},
                                     {NULL, NULL}};
    static const luaL_Reg listener_meta[] = {{"__gc", listener_gc}, {NULL, NULL}};
    gust_lua_newclass(L, LISTENER_MT, listener_methods, listener_meta);
    lua_pop(L, 1);
    gust_lua_request_open(L);

    lua_newtable(L);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
    gust_timer_open(L, s);
    gust_socket_open(L, s);
    gust_stream_open(L, s);
    gust_httpclient_open(L, s);
    gust_ws_open(L, s);
    gust_pubsub_open(L, s);
    gust_thread_open(L, s);
    gust_shdict_open(L, s);
    gust_redis_open(L, s);
    gust_crypto_open(L);
    /* The reason phrases, from the one table the core answers with. */
    lua_createtable(L, 0, 80);
    for (int code = 100; code < 600; code++) {
        const char *reason = gust_http_reason(code);
        if (reason) {
            lua_pushstring(L, reason);
            lua_rawseti(L, -2, code);
        }
    }
    lua_setfield(L, -2, "responses");
    lua_pushliteral(L, GUST_VERSION);
    lua_setfield(L, -2, "VERSION");
    return 1;
}
