/*
 * lua_timer.c -- "gust.timer": core.sleep() and core.call_later().
 *
 * A timer is a userdata holding its libevent timer. While pending it is
 * anchored in the registry, so dropping the Lua handle never cancels it;
 * call_later keeps the callback and its arguments in the userdata's
 * environment table. Timers sit in libevent's min-heap: the nearest fires
 * first and equal deadlines fire in the order they were added.
 *
 * Live timers are also linked into their server, which deletes their events
 * before it frees the loop, whichever goes first at lua_close().
 */
#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "server.h"

#define TIMER_MT "gust.timer"

typedef struct gust_timer {
    struct event ev;
    gust_server_t *server; /* NULL once the server is gone */
    int self_ref;          /* anchors the userdata while pending */
    int co_ref;            /* sleep: the coroutine to resume */
    struct gust_timer *prev, *next; /* the server's live timers */
} gust_timer_t;

static void unlink_timer(gust_timer_t *t) {
    if (t->prev)
        t->prev->next = t->next;
    else if (t->server && t->server->timers == t)
        t->server->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void timer_done(gust_timer_t *t, lua_State *L) {
    unlink_timer(t);
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
    t->self_ref = LUA_NOREF;
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    gust_timer_t *t = arg;
    gust_server_t *s = t->server;
    lua_State *L = s->L;
    if (t->co_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
        t->co_ref = LUA_NOREF;
        timer_done(t, L);
        lua_State *co = lua_tothread(L, -1);
        lua_pushboolean(co, 1);
        gust_sched_resume(s, co, 1);
        lua_pop(L, 1);
        return;
    }
    /* call_later: fn(...) in a coroutine of its own. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
    lua_getfenv(L, -1);
    timer_done(t, L);
    int n = (int)lua_objlen(L, -1);
    lua_State *co = lua_newthread(L);
    luaL_checkstack(co, n, "too many timer arguments");
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        lua_xmove(L, co, 1);
    }
    gust_sched_resume(s, co, n - 1);
    lua_pop(L, 3);
}

static gust_timer_t *timer_new(lua_State *L, gust_server_t *s, double delay) {
    gust_timer_t *t = lua_newuserdata(L, sizeof *t);
    memset(t, 0, sizeof *t);
    t->server = s;
    t->self_ref = t->co_ref = LUA_NOREF;
    luaL_getmetatable(L, TIMER_MT);
    lua_setmetatable(L, -2);
    evtimer_assign(&t->ev, s->base, on_timer, t);
    if (delay < 0 || delay != delay)
        delay = 0;
    struct timeval tv;
    tv.tv_sec = (time_t)delay;
    tv.tv_usec = (suseconds_t)((delay - floor(delay)) * 1e6);
    evtimer_add(&t->ev, &tv);
    t->next = s->timers;
    if (s->timers)
        s->timers->prev = t;
    s->timers = t;
    return t;
}

/* core.sleep(seconds) -> true, after yielding  [-1, +1, e] */
static int core_sleep(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    double delay = luaL_checknumber(L, 1);
    int ref = gust_sched_anchor(L);
    if (ref == LUA_NOREF)
        return luaL_error(L, "sleep() must be called from a task (gust.spawn, a handler)");
    gust_timer_t *t = timer_new(L, s, delay);
    t->co_ref = ref;
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return lua_yield(L, 0);
}

/* core.call_later(delay, fn, ...) -> timer  [-(2+n), +1, e] */
static int core_call_later(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    double delay = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int n = lua_gettop(L) - 1; /* fn and its arguments */
    lua_createtable(L, n, 0);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, i + 1);
        lua_rawseti(L, -2, i);
    }
    gust_timer_t *t = timer_new(L, s, delay);
    lua_insert(L, -2);
    lua_setfenv(L, -2);
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* timer:cancel() -> true if it was pending  [-1, +1, -] */
static int timer_cancel(lua_State *L) {
    gust_timer_t *t = luaL_checkudata(L, 1, TIMER_MT);
    int pending = t->server && t->self_ref != LUA_NOREF && t->co_ref == LUA_NOREF;
    if (pending) {
        evtimer_del(&t->ev);
        timer_done(t, L);
    }
    lua_pushboolean(L, pending);
    return 1;
}

static int timer_gc(lua_State *L) {
    gust_timer_t *t = luaL_checkudata(L, 1, TIMER_MT);
    if (t->server) {
        evtimer_del(&t->ev);
        unlink_timer(t);
        t->server = NULL;
    }
    return 0;
}

/* The server is going away: its timers must leave the loop first. */
void gust_timer_forget_server(gust_server_t *s) {
    while (s->timers) {
        gust_timer_t *t = s->timers;
        evtimer_del(&t->ev);
        unlink_timer(t);
        t->server = NULL;
    }
}

void gust_timer_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg methods[] = {{"cancel", timer_cancel}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {
        {"sleep", core_sleep}, {"call_later", core_call_later}, {NULL, NULL}};
    if (luaL_newmetatable(L, TIMER_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, timer_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1); /* into the module table below */
}
