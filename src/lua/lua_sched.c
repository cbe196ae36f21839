/*
 * lua_sched.c -- running Lua coroutines from the event loop.
 *
 * Every request, timer callback and spawned task runs in its own coroutine.
 * A binding that must wait anchors the running coroutine in the registry
 * (gust_sched_anchor), records the ref where the event it waits for can
 * find it, and returns lua_yield(). The event then resumes it directly from
 * the loop, or through the run queue when it happens inside another
 * coroutine's C call: coroutines are never resumed from within each other.
 */
#include <string.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <luajit.h>

#include "core/log.h"
#include "core/mem.h"
#include "lua_sched.h"

#define THREAD_POOL_MAX 64

struct gust_sched {
    gust_server_t *server;
    gust_run_t *runq;
    size_t runq_len, runq_cap;
    /* Idle request coroutines: pool[0..pool_len). Each is anchored at
     * index i + 1 of the table pool_ref, which keeps what a slot held
     * while its coroutine runs: given back to the same slot, as it is
     * when runs nest, a coroutine costs no table write. */
    lua_State *pool[THREAD_POOL_MAX];
    int pool_len;
    int pool_ref; /* registry ref of the anchoring table; LUA_NOREF until used */
    int depth;    /* resumes in progress (1: Lua holds the loop) */
    int batch;    /* gust_sched_batch_begin nesting */
    int *unrefs;  /* registry refs to release once Lua is back in C (gust_sched_unref) */
    size_t unrefs_len, unrefs_cap;
    double t0;     /* when the outermost one began */
    int warned;    /* this hold was reported while it lasted */
    int profiling; /* the LuaJIT profiler samples this state */
};

/* The worker's watchdog slot in the (possibly shared) metrics area. */
static gust_metrics_slot_t *slot_of(gust_server_t *s) { return gust_core_slot(s->core); }

gust_sched_t *gust_sched_new(gust_server_t *s) {
    gust_sched_t *sc = gust_calloc(1, sizeof *sc);
    sc->server = s;
    sc->pool_ref = LUA_NOREF;
    return sc;
}

void gust_sched_free(gust_sched_t *sc) {
    if (!sc)
        return;
    if (sc->profiling)
        gust_sched_watch(sc->server, 0);
    gust_free(sc->runq);
    gust_free(sc->unrefs);
    gust_free(sc);
}

void gust_sched_set_running(gust_sched_t *sc, const char *method, const char *uri, size_t ulen) {
    /* Into the shared slot, so that the master can name what a worker it
     * kills was doing; copied, since a finished response resets the
     * request it points into. */
    char *what = slot_of(sc->server)->what;
    if (!method) {
        what[0] = 0;
        return;
    }
    size_t mlen = strlen(method), room = sizeof slot_of(sc->server)->what;
    if (mlen + 1 + ulen >= room)
        ulen = room - mlen - 2;
    memcpy(what, method, mlen);
    what[mlen] = ' ';
    memcpy(what + mlen + 1, uri, ulen);
    what[mlen + 1 + ulen] = 0;
}

/* Message handler for lua_pcall: the message plus a traceback. Error
 * objects with __tostring (HTTPError) are rendered through it (which may
 * raise)  [-1, +1, e] */
int gust_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1))
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/*
 * The watchdog (--block-warn). While Lua runs, the worker's slot says since
 * when; the master reads it to replace a worker held past --block-kill.
 * The warning itself comes from inside the VM: LuaJIT's profiler samples
 * the running code (compiled code too, in its line mode) and its callback,
 * run on this thread at a safe point, reports a hold that passed
 * --block-warn with the traceback of the code that holds the loop.
 */
static void hold_warn(gust_server_t *s, double ms, const char *trace, size_t len) {
    gust_metrics_slot_t *slot = slot_of(s);
    if (len >= sizeof slot->trace)
        len = sizeof slot->trace - 1;
    memcpy(slot->trace, trace, len);
    slot->trace[len] = 0;
    if (s->sched->warned)
        return;
    s->sched->warned = 1;
    __atomic_store_n(&slot->warned, 1, __ATOMIC_RELAXED);
    if (slot->what[0]) {
        /* The request target is the peer's text: escaped, not trusted. */
        char what[GUST_LOG_ESCAPED_MAX(sizeof slot->what)];
        gust_log_escape(slot->what, strlen(slot->what), what, sizeof what);
        gust_log(&s->core->log, GUST_LOG_WARN, "blocked the loop for %.0f ms handling %s\n%s", ms,
                 what, slot->trace);
    } else
        gust_log(&s->core->log, GUST_LOG_WARN, "blocked the loop for %.0f ms\n%s", ms, slot->trace);
}

static void on_profile(void *data, lua_State *L, int samples, int vmstate) {
    gust_server_t *s = data;
    gust_sched_t *sc = s->sched;
    if (!sc || sc->depth == 0)
        return;
    double ms = (gust_now_coarse() - sc->t0) * 1000; /* the clock hold_begin() read */
    if (ms < s->core->cfg.block_warn_ms)
        return;
    char trace[GUST_TRACE_MAX];
    size_t len;
    const char *stack = luaJIT_profile_dumpstack(L, "\n\tpl", 12, &len);
    int n = snprintf(trace, sizeof trace, "stack traceback:%.*s", (int)len, stack);
    hold_warn(s, ms, trace, n < 0 ? 0 : (size_t)n < sizeof trace ? (size_t)n : sizeof trace - 1);
}

void gust_sched_watch(gust_server_t *s, int on) {
    gust_sched_t *sc = s->sched;
    int warn_ms = s->core->cfg.block_warn_ms;
    if (on && !sc->profiling && warn_ms > 0 && s->main_L) {
        /* A few samples per --block-warn period (CPU time, so an idle
         * worker takes none); 'l' makes compiled code check for them. */
        char mode[32];
        snprintf(mode, sizeof mode, "i%dl", warn_ms / 4 > 10 ? warn_ms / 4 : 10);
        luaJIT_profile_start(s->main_L, mode, on_profile, s);
        sc->profiling = 1;
    } else if (!on && sc->profiling) {
        luaJIT_profile_stop(s->main_L);
        sc->profiling = 0;
    }
}

static void hold_begin(gust_server_t *s) {
    gust_sched_t *sc = s->sched;
    if (sc->depth++)
        return;
    sc->t0 = gust_now_coarse();
    sc->warned = 0;
    gust_metrics_slot_t *slot = slot_of(s);
    slot->warned = 0;
    __atomic_store_n(&slot->busy_since_us, (uint64_t)(sc->t0 * 1e6), __ATOMIC_RELEASE);
}

static void hold_end(gust_server_t *s, lua_State *co, int rc) {
    gust_sched_t *sc = s->sched;
    if (--sc->depth)
        return;
    __atomic_store_n(&slot_of(s)->busy_since_us, 0, __ATOMIC_RELEASE);
    int warn_ms = s->core->cfg.block_warn_ms;
    double ms = (gust_now_coarse() - sc->t0) * 1000;
    if (warn_ms <= 0 || ms < warn_ms || sc->warned || !s->L)
        return;
    /* Held too long, but ended before a sample caught it (or in C code):
     * what it ran last is all there is to say. */
    lua_State *L = s->L;
    if (rc == LUA_YIELD)
        luaL_traceback(L, co, "stack traceback (where it yielded after holding the loop):", 0);
    else
        lua_pushliteral(L, "stack traceback:\n\t(the task finished before a sample was taken)");
    size_t len;
    const char *trace = lua_tolstring(L, -1, &len);
    hold_warn(s, ms, trace, len);
    lua_pop(L, 1);
}

/* Lua ran out of memory: this worker finishes what it can and is
 * replaced (its heap may be fragmented past use, and a retry would fail
 * the same way). */
void gust_sched_out_of_memory(gust_server_t *s) {
    gust_core_t *c = s->core;
    if (c->stopping)
        return;
    gust_log(&c->log, GUST_LOG_ERROR,
             "out of Lua memory: this worker finishes its requests and is replaced");
    __atomic_fetch_add(&c->metrics->replaced[GUST_REPLACED_MEMORY], 1, __ATOMIC_RELAXED);
    c->exit_status = GUST_EXIT_REPLACE;
    gust_core_stop(c);
}

static int is_oom(lua_State *co, int rc) {
    if (rc == LUA_ERRMEM)
        return 1;
    const char *msg = lua_tostring(co, -1);
    return msg && strstr(msg, "not enough memory") != NULL;
}

void gust_sched_unref(gust_sched_t *sc, int ref) {
    if (!sc || ref == LUA_NOREF)
        return;
    if (sc->unrefs_len == sc->unrefs_cap) {
        sc->unrefs_cap = sc->unrefs_cap ? sc->unrefs_cap * 2 : 16;
        sc->unrefs = gust_realloc(sc->unrefs, sc->unrefs_cap * sizeof *sc->unrefs);
    }
    sc->unrefs[sc->unrefs_len++] = ref;
}

int gust_sched_resume(gust_server_t *s, lua_State *co, int nargs) {
    hold_begin(s);
    int rc = lua_resume(co, nargs);
    hold_end(s, co, rc);
    gust_sched_t *sc = s->sched;
    while (sc->unrefs_len > 0 && s->L)
        luaL_unref(s->L, LUA_REGISTRYINDEX, sc->unrefs[--sc->unrefs_len]);
    if (rc == 0 || rc == LUA_YIELD) {
        lua_settop(co, 0); /* results or yielded values: nobody reads them */
        return rc;
    }
    /* An error escaped the framework's own handlers: log it with the dead
     * coroutine's traceback, the only place it is still available. */
    lua_State *L = s->L;
    int oom = is_oom(co, rc);
    const char *msg = lua_tostring(co, -1);
    if (!msg && luaL_callmeta(co, -1, "__tostring"))
        msg = lua_tostring(co, -1);
    luaL_traceback(L, co, msg ? msg : "(error object is not a string)", 0);
    gust_log(&s->core->log, GUST_LOG_ERROR, "uncaught error in task: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    if (oom)
        gust_sched_out_of_memory(s);
    return rc;
}

/*
 * Request coroutines are recycled: a thread that returned normally can run
 * a new function, which saves creating and collecting one per request. Only
 * threads that finished without ever yielding go back, since nothing but
 * their own run can have kept a reference to them for a later wake-up.
 */
lua_State *gust_sched_thread(gust_sched_t *sc) {
    lua_State *L = sc->server->L;
    if (sc->pool_len > 0) {
        /* No table look-up: the thread pushes itself over to L. */
        lua_State *co = sc->pool[--sc->pool_len];
        lua_pushthread(co);
        lua_xmove(co, L, 1);
        return co;
    }
    return lua_newthread(L);
}

/* Sets slot i + 1 of the anchoring table to the value on top of L (popped). */
static void pool_anchor(gust_sched_t *sc, lua_State *L, int i) {
    if (sc->pool_ref == LUA_NOREF) {
        lua_createtable(L, THREAD_POOL_MAX, 0);
        sc->pool_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, sc->pool_ref);
    lua_insert(L, -2);
    lua_rawseti(L, -2, i + 1);
    lua_pop(L, 1);
}

void gust_sched_release(gust_sched_t *sc, lua_State *co, int rc) {
    lua_State *L = sc->server->L;
    int i = sc->pool_len;
    int same_slot = i < THREAD_POOL_MAX && sc->pool[i] == co;
    if (rc == 0 && i < THREAD_POOL_MAX && lua_gettop(co) == 0) {
        if (!same_slot) {
            pool_anchor(sc, L, i); /* pops the thread */
            sc->pool[i] = co;
        } else {
            lua_pop(L, 1);
        }
        sc->pool_len++;
        return;
    }
    lua_pop(L, 1);
    if (same_slot) {
        /* It yielded (or failed): whoever waits for it anchors it now, and
         * the pool lets go of it. */
        lua_pushnil(L);
        pool_anchor(sc, L, i);
        sc->pool[i] = NULL;
    }
}

int gust_sched_anchor(lua_State *co) {
    if (lua_pushthread(co)) {
        lua_pop(co, 1);
        return LUA_NOREF; /* the main thread cannot yield */
    }
    return luaL_ref(co, LUA_REGISTRYINDEX);
}

void gust_sched_push(gust_server_t *s, gust_run_t run) {
    if (!s->L)
        return; /* shutting down: nothing will run again */
    gust_sched_t *sc = s->sched;
    if (sc->runq_len == sc->runq_cap) {
        sc->runq_cap = sc->runq_cap ? sc->runq_cap * 2 : 64;
        sc->runq = gust_realloc(sc->runq, sc->runq_cap * sizeof *sc->runq);
    }
    sc->runq[sc->runq_len++] = run;
    if (!sc->batch)
        gust_core_defer(s->core);
}

void gust_sched_batch_begin(gust_sched_t *sc) {
    if (sc)
        sc->batch++;
}

void gust_sched_batch_end(gust_sched_t *sc) {
    if (!sc || --sc->batch > 0 || sc->runq_len == 0)
        return;
    /* What a run queues meanwhile waits for the deferred callbacks, as
     * usual. */
    if (sc->depth > 0 || gust_sched_run_queue(sc))
        gust_core_defer(sc->server->core);
}

int gust_sched_disown(gust_sched_t *sc, int co_ref) {
    if (!sc)
        return 0; /* the state is closing: nothing will run again */
    for (size_t i = 0; i < sc->runq_len; i++) {
        if (sc->runq[i].kind == GUST_RUN_KEPT && sc->runq[i].co_ref == co_ref) {
            sc->runq[i].kind = GUST_RUN_STACK;
            return 1;
        }
    }
    return 0;
}

/* Starts fn(...) -- the function and its `nargs` arguments on top of L,
 * popped -- in a new coroutine on the next loop iteration. */
void gust_sched_start(gust_server_t *s, lua_State *L, int nargs) {
    lua_State *co = lua_newthread(L);
    lua_insert(L, -(nargs + 2));
    lua_xmove(L, co, nargs + 1);
    gust_run_t run = {luaL_ref(L, LUA_REGISTRYINDEX), GUST_RUN_START, nargs, NULL};
    gust_sched_push(s, run);
}

/* Runs what was queued before this call; what those runs queue waits for
 * the next loop iteration, so a busy task cannot starve I/O. */
size_t gust_sched_pending(const gust_sched_t *sc) { return sc->runq_len; }

int gust_sched_run_queue(void *arg) {
    gust_sched_t *sc = arg;
    gust_server_t *s = sc->server;
    lua_State *L = s->L;
    size_t n = sc->runq_len;
    for (size_t i = 0; i < n && s->L; i++) {
        gust_run_t run = sc->runq[i];
        /* Taken: gust_sched_disown must not match it from now on (it stays
         * in the array until the pass ends). */
        sc->runq[i].co_ref = LUA_NOREF;
        lua_rawgeti(L, LUA_REGISTRYINDEX, run.co_ref);
        if (run.kind != GUST_RUN_KEPT)
            luaL_unref(L, LUA_REGISTRYINDEX, run.co_ref);
        lua_State *co = lua_tothread(L, -1);
        int nargs = 0;
        if (run.kind == GUST_RUN_START || run.kind == GUST_RUN_STACK || run.kind == GUST_RUN_KEPT) {
            nargs = run.n; /* already on its stack */
        } else if (lua_status(co) != LUA_YIELD) {
            if (run.kind == GUST_RUN_VALUES)
                luaL_unref(L, LUA_REGISTRYINDEX, run.n);
            lua_pop(L, 1);
            continue; /* finished or already running: a stale wake-up */
        } else if (run.kind == GUST_RUN_TRUE) {
            lua_pushboolean(co, 1);
            nargs = 1;
        } else if (run.kind == GUST_RUN_ERR) {
            lua_pushnil(co);
            lua_pushstring(co, run.err);
            nargs = 2;
        } else {
            lua_rawgeti(L, LUA_REGISTRYINDEX, run.n);
            luaL_unref(L, LUA_REGISTRYINDEX, run.n);
            nargs = (int)lua_objlen(L, -1);
            luaL_checkstack(co, nargs, "too many values to wake with");
            for (int k = 1; k <= nargs; k++)
                lua_rawgeti(L, -k, k);
            lua_xmove(L, co, nargs);
            lua_pop(L, 1);
        }
        gust_sched_resume(s, co, nargs);
        lua_pop(L, 1);
    }
    if (sc->runq_len > n)
        memmove(sc->runq, sc->runq + n, (sc->runq_len - n) * sizeof *sc->runq);
    sc->runq_len -= n;
    return sc->runq_len > 0;
}
