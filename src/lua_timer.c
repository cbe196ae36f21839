/*
 * lua_timer.c -- "gust.timer": core.sleep() and core.call_later().
 *
 * Timers live in the server's binary heap ordered by (deadline, sequence
 * number): the nearest fires first and equal deadlines fire in the order
 * they were added, as in Tornado. libevent's own heap is not stable for
 * equal deadlines, so it only holds one event, armed for our earliest.
 *
 * A timer is a userdata. While pending it is anchored in the registry, so
 * dropping the Lua handle never cancels it; call_later keeps the callback
 * and its arguments in the userdata's environment table. When the server
 * goes first (lua_close of a state it does not own), it detaches every
 * pending timer so their __gc leaves the loop alone.
 */
#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "server.h"

#define TIMER_MT "gust.timer"

typedef struct gust_timer {
    gust_server_t *server; /* NULL once fired, cancelled or detached */
    double when;           /* gust_now() deadline */
    uint64_t seq;
    size_t slot; /* index in the heap */
    int self_ref; /* anchors the userdata while pending */
    int co_ref;   /* sleep: the coroutine to resume */
} gust_timer_t;

/* ---- the heap ------------------------------------------------------- */

static int before(const gust_timer_t *a, const gust_timer_t *b) {
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(gust_server_t *s, size_t i, gust_timer_t *t) {
    s->theap[i] = t;
    t->slot = i;
}

static void sift_up(gust_server_t *s, size_t i) {
    gust_timer_t *t = s->theap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, s->theap[parent]))
            break;
        heap_set(s, i, s->theap[parent]);
        i = parent;
    }
    heap_set(s, i, t);
}

static void sift_down(gust_server_t *s, size_t i) {
    gust_timer_t *t = s->theap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= s->theap_len)
            break;
        if (child + 1 < s->theap_len && before(s->theap[child + 1], s->theap[child]))
            child++;
        if (!before(s->theap[child], t))
            break;
        heap_set(s, i, s->theap[child]);
        i = child;
    }
    heap_set(s, i, t);
}

static void arm(gust_server_t *s) {
    if (s->theap_len == 0) {
        evtimer_del(&s->timer_ev);
        return;
    }
    double delay = s->theap[0]->when - gust_now();
    if (delay < 0)
        delay = 0;
    struct timeval tv;
    tv.tv_sec = (time_t)delay;
    tv.tv_usec = (suseconds_t)((delay - floor(delay)) * 1e6);
    evtimer_add(&s->timer_ev, &tv);
}

static void heap_push(gust_server_t *s, gust_timer_t *t) {
    if (s->theap_len == s->theap_cap) {
        s->theap_cap = s->theap_cap ? s->theap_cap * 2 : 64;
        s->theap = gust_realloc(s->theap, s->theap_cap * sizeof *s->theap);
    }
    t->seq = s->timer_seq++;
    heap_set(s, s->theap_len++, t);
    sift_up(s, t->slot);
    if (s->theap[0] == t)
        arm(s);
}

static void heap_remove(gust_server_t *s, gust_timer_t *t) {
    size_t i = t->slot;
    int was_first = i == 0;
    gust_timer_t *last = s->theap[--s->theap_len];
    if (last != t) {
        heap_set(s, i, last);
        sift_up(s, i);
        sift_down(s, last->slot);
    }
    if (was_first)
        arm(s);
}

/* ---- firing --------------------------------------------------------- */

static void fire(gust_server_t *s, gust_timer_t *t) {
    lua_State *L = s->L;
    t->server = NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref); /* keeps t alive below */
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
    t->self_ref = LUA_NOREF;
    if (t->co_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, t->co_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, t->co_ref);
        t->co_ref = LUA_NOREF;
        lua_State *co = lua_tothread(L, -1);
        lua_pushboolean(co, 1);
        gust_sched_resume(s, co, 1);
        lua_pop(L, 2);
        return;
    }
    /* call_later: fn(...) in a coroutine of its own. */
    lua_getfenv(L, -1);
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

/* Fires what is due now. Timers added meanwhile (a callback calling
 * call_later(0)) wait for the next iteration, so they cannot starve I/O. */
static void on_timer_ev(evutil_socket_t fd, short what, void *arg) {
    gust_server_t *s = arg;
    double now = gust_now();
    uint64_t seq_limit = s->timer_seq;
    while (s->theap_len && s->L) {
        gust_timer_t *t = s->theap[0];
        if (t->when > now || t->seq >= seq_limit)
            break;
        gust_timer_t *last = s->theap[--s->theap_len];
        if (s->theap_len) {
            heap_set(s, 0, last);
            sift_down(s, 0);
        }
        fire(s, t);
    }
    arm(s);
}

void gust_timer_init(gust_server_t *s) {
    evtimer_assign(&s->timer_ev, s->base, on_timer_ev, s);
}

/* The server is going away: pending timers forget it. */
void gust_timer_forget_server(gust_server_t *s) {
    for (size_t i = 0; i < s->theap_len; i++)
        s->theap[i]->server = NULL;
    s->theap_len = 0;
    gust_free(s->theap);
    s->theap = NULL;
    s->theap_cap = 0;
    evtimer_del(&s->timer_ev);
}

/* ---- the Lua side --------------------------------------------------- */

static gust_timer_t *timer_new(lua_State *L, gust_server_t *s, double delay) {
    gust_timer_t *t = lua_newuserdata(L, sizeof *t);
    memset(t, 0, sizeof *t);
    t->self_ref = t->co_ref = LUA_NOREF;
    luaL_getmetatable(L, TIMER_MT);
    lua_setmetatable(L, -2);
    if (!(delay > 0)) /* also NaN */
        delay = 0;
    t->server = s;
    t->when = gust_now() + delay;
    heap_push(s, t);
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
    int pending = t->server != NULL && t->co_ref == LUA_NOREF;
    if (pending) {
        heap_remove(t->server, t);
        t->server = NULL;
        luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
        t->self_ref = LUA_NOREF;
    }
    lua_pushboolean(L, pending);
    return 1;
}

void gust_timer_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg methods[] = {{"cancel", timer_cancel}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {
        {"sleep", core_sleep}, {"call_later", core_call_later}, {NULL, NULL}};
    if (luaL_newmetatable(L, TIMER_MT)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1); /* into the module table below */
}
