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
#include <string.h>

#include <event2/event.h>
#include <lauxlib.h>

#include "core/mem.h"
#include "lua_core.h"
#include "lua_sched.h"
#include "lua_timer.h"

#define TIMER_MT "gust.timer"

typedef struct gust_timer {
    gust_server_t *server; /* NULL once fired, cancelled or detached */
    int self_ref;          /* anchors the userdata while in the heap */
    int co_ref;            /* sleep: the coroutine to resume */
    int fn_ref;            /* call_later: the callback */
    int args_ref;          /* call_later: a table of its arguments, if any */
} gust_timer_t;

/* Heap entries carry their keys, so ordering never touches the timers
 * themselves (a million timers would otherwise cost a cache miss per
 * comparison). A cancelled timer stays in the heap, marked, until its
 * deadline pops it or until cancelled ones are most of the heap, as in
 * Tornado's IOLoop. */
struct gust_timer_slot {
    double when;
    uint64_t seq;
    gust_timer_t *t;
};

struct gust_timers {
    struct gust_timer_slot *heap;
    size_t len, cap, cancelled;
    uint64_t seq;
    struct event ev; /* armed for the earliest deadline */
};

/* ---- the heap ------------------------------------------------------- */

static int before(const struct gust_timer_slot *a, const struct gust_timer_slot *b) {
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void sift_up(struct gust_timer_slot *h, size_t i) {
    struct gust_timer_slot x = h[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&x, &h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = x;
}

static void sift_down(struct gust_timer_slot *h, size_t n, size_t i) {
    struct gust_timer_slot x = h[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && before(&h[child + 1], &h[child]))
            child++;
        if (!before(&h[child], &x))
            break;
        h[i] = h[child];
        i = child;
    }
    h[i] = x;
}

static void arm(gust_server_t *s) {
    if (s->timers->len == 0) {
        evtimer_del(&s->timers->ev);
        return;
    }
    double delay = s->timers->heap[0].when - gust_now();
    if (delay < 0)
        delay = 0;
    struct timeval tv = gust_timeval(delay);
    evtimer_add(&s->timers->ev, &tv);
}

static void heap_push(gust_server_t *s, gust_timer_t *t, double when) {
    if (s->timers->len == s->timers->cap) {
        s->timers->cap = s->timers->cap ? s->timers->cap * 2 : 64;
        s->timers->heap = gust_realloc(s->timers->heap, s->timers->cap * sizeof *s->timers->heap);
    }
    struct gust_timer_slot *slot = &s->timers->heap[s->timers->len++];
    slot->when = when;
    slot->seq = s->timers->seq++;
    slot->t = t;
    sift_up(s->timers->heap, s->timers->len - 1);
    if (s->timers->heap[0].t == t)
        arm(s);
}

static void heap_pop(gust_server_t *s) {
    s->timers->heap[0] = s->timers->heap[--s->timers->len];
    if (s->timers->len)
        sift_down(s->timers->heap, s->timers->len, 0);
}

/* Drops cancelled entries and rebuilds the heap (Floyd, O(n)). */
static void heap_compact(gust_server_t *s, lua_State *L) {
    size_t n = 0;
    for (size_t i = 0; i < s->timers->len; i++) {
        gust_timer_t *t = s->timers->heap[i].t;
        if (t->server) {
            s->timers->heap[n++] = s->timers->heap[i];
        } else {
            luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
            t->self_ref = LUA_NOREF;
        }
    }
    s->timers->len = n;
    s->timers->cancelled = 0;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(s->timers->heap, n, i);
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
    /* call_later: fn(...) in a coroutine of its own (a recycled one when
     * the previous callback finished without yielding). The userdata stays
     * on the stack until its fields have been read. */
    lua_State *co = gust_sched_thread(s->sched);
    lua_rawgeti(co, LUA_REGISTRYINDEX, t->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
    t->fn_ref = LUA_NOREF;
    int n = 0;
    if (t->args_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, t->args_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, t->args_ref);
        t->args_ref = LUA_NOREF;
        lua_getfield(L, -1, "n"); /* the count: arguments may be nil */
        n = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        luaL_checkstack(co, n, "too many timer arguments");
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            lua_xmove(L, co, 1);
        }
        lua_pop(L, 1);
    }
    gust_sched_release(s->sched, co, gust_sched_resume(s, co, n));
    lua_pop(L, 1);
}

/* Fires what is due now. Timers added meanwhile (a callback calling
 * call_later(0)) wait for the next iteration, so they cannot starve I/O. */
static void on_timer_ev(evutil_socket_t fd, short what, void *arg) {
    gust_server_t *s = arg;
    double now = gust_now();
    uint64_t seq_limit = s->timers->seq;
    while (s->timers->len && s->L) {
        struct gust_timer_slot top = s->timers->heap[0];
        if (top.when > now || top.seq >= seq_limit)
            break;
        heap_pop(s);
        if (top.t->server) {
            fire(s, top.t);
        } else {
            s->timers->cancelled--;
            luaL_unref(s->L, LUA_REGISTRYINDEX, top.t->self_ref);
            top.t->self_ref = LUA_NOREF;
        }
    }
    arm(s);
}

gust_timers_t *gust_timers_new(gust_server_t *s) {
    gust_timers_t *t = gust_calloc(1, sizeof *t);
    evtimer_assign(&t->ev, s->core->base, on_timer_ev, s);
    return t;
}

size_t gust_timers_pending(const gust_timers_t *t) { return t->len - t->cancelled; }

void gust_timers_free(gust_timers_t *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->len; i++)
        t->heap[i].t->server = NULL;
    evtimer_del(&t->ev);
    gust_free(t->heap);
    gust_free(t);
}

/* ---- the Lua side --------------------------------------------------- */

/* A timer due at `when` (monotonic seconds, core.now()'s clock). */
static gust_timer_t *timer_new(lua_State *L, gust_server_t *s, double when) {
    gust_timer_t *t = lua_newuserdata(L, sizeof *t);
    memset(t, 0, sizeof *t);
    t->self_ref = t->co_ref = t->fn_ref = t->args_ref = LUA_NOREF;
    luaL_getmetatable(L, TIMER_MT);
    lua_setmetatable(L, -2);
    if (when != when) /* NaN: now */
        when = gust_now();
    t->server = s;
    heap_push(s, t, when);
    return t;
}

static double after(double delay) { return gust_now() + (delay > 0 ? delay : 0); }

/* core.sleep(seconds) -> true, after yielding  [-1, +1, e] */
static int core_sleep(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    double delay = luaL_checknumber(L, 1);
    int ref = gust_sched_anchor(L);
    if (ref == LUA_NOREF)
        return luaL_error(L, "sleep() must be called from a task (gust.spawn, a handler)");
    gust_timer_t *t = timer_new(L, s, after(delay));
    t->co_ref = ref;
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return lua_yield(L, 0);
}

/* fn(...) at `when`: the function at 2 and its arguments after it. */
static int call_timer(lua_State *L, double when) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int n = lua_gettop(L) - 2;
    gust_timer_t *t = timer_new(L, s, when);
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (n > 0) {
        lua_createtable(L, n, 1);
        for (int i = 1; i <= n; i++) {
            lua_pushvalue(L, i + 2);
            lua_rawseti(L, -2, i);
        }
        lua_pushinteger(L, n);
        lua_setfield(L, -2, "n");
        t->args_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 1;
}

/* core.call_later(delay, fn, ...) -> timer  [-(2+n), +1, e] */
static int core_call_later(lua_State *L) { return call_timer(L, after(luaL_checknumber(L, 1))); }

/* core.call_at(when, fn, ...) -> timer: at `when` on core.now()'s clock;
 * equal deadlines fire in the order added  [-(2+n), +1, e] */
static int core_call_at(lua_State *L) { return call_timer(L, luaL_checknumber(L, 1)); }

/* timer:cancel() -> true if it was pending  [-1, +1, e] */
static int timer_cancel(lua_State *L) {
    gust_timer_t *t = gust_lua_checkself(L, TIMER_MT);
    int pending = t->server != NULL && t->co_ref == LUA_NOREF;
    if (pending) {
        gust_server_t *s = t->server;
        t->server = NULL; /* its heap entry goes when it pops */
        luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, t->args_ref);
        t->fn_ref = t->args_ref = LUA_NOREF;
        if (++s->timers->cancelled > 512 && s->timers->cancelled > s->timers->len / 2)
            heap_compact(s, L);
    }
    lua_pushboolean(L, pending);
    return 1;
}

void gust_timer_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg methods[] = {{"cancel", timer_cancel}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"sleep", core_sleep},
                                     {"call_later", core_call_later},
                                     {"call_at", core_call_at},
                                     {NULL, NULL}};
    gust_lua_newclass(L, TIMER_MT, methods, NULL);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1); /* into the module table below */
}
