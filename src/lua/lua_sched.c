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

#include <lauxlib.h>

#include "server.h"

/* Message handler for lua_pcall: the message plus a traceback. Error
 * objects with __tostring (HTTPError) are rendered through it. */
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

/* The watchdog (--block-warn): Lua cannot be interrupted here (JIT-compiled
 * code runs no hooks), so a resume that held the loop too long is reported
 * when it returns, with where the task now waits. */
static void warn_blocked(gust_server_t *s, lua_State *co, int rc, double ms) {
    lua_State *L = s->L;
    if (rc == LUA_YIELD)
        luaL_traceback(L, co, NULL, 0);
    else
        lua_pushliteral(L, "stack traceback:\n\t(the task has finished)");
    if (s->running_what[0])
        gust_log(&s->log, GUST_LOG_WARN, "blocked the loop for %.0f ms handling %s\n%s", ms,
                 s->running_what, lua_tostring(L, -1));
    else
        gust_log(&s->log, GUST_LOG_WARN, "blocked the loop for %.0f ms\n%s", ms,
                 lua_tostring(L, -1));
    lua_pop(L, 1);
}

int gust_sched_resume(gust_server_t *s, lua_State *co, int nargs) {
    double t0 = s->cfg.block_warn_ms > 0 ? gust_now() : 0;
    int rc = lua_resume(co, nargs);
    if (t0 > 0) {
        double ms = (gust_now() - t0) * 1000;
        if (ms >= s->cfg.block_warn_ms && s->L)
            warn_blocked(s, co, rc, ms);
    }
    if (rc == 0 || rc == LUA_YIELD) {
        lua_settop(co, 0); /* results or yielded values: nobody reads them */
        return rc;
    }
    /* An error escaped the framework's own handlers: log it with the dead
     * coroutine's traceback, the only place it is still available. */
    lua_State *L = s->L;
    const char *msg = lua_tostring(co, -1);
    if (!msg && luaL_callmeta(co, -1, "__tostring"))
        msg = lua_tostring(co, -1);
    luaL_traceback(L, co, msg ? msg : "(error object is not a string)", 0);
    gust_log(&s->log, GUST_LOG_ERROR, "uncaught error in task: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return rc;
}

/*
 * Request coroutines are recycled: a thread that returned normally can run
 * a new function, which saves creating and collecting one per request. Only
 * threads that finished without ever yielding go back, since nothing but
 * their own run can have kept a reference to them for a later wake-up.
 */
#define THREAD_POOL_MAX 64

lua_State *gust_sched_thread(gust_server_t *s) {
    lua_State *L = s->L;
    if (s->pool_len > 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->pool[--s->pool_len]);
        luaL_unref(L, LUA_REGISTRYINDEX, s->pool[s->pool_len]);
        return lua_tothread(L, -1);
    }
    return lua_newthread(L);
}

void gust_sched_release(gust_server_t *s, lua_State *co, int rc) {
    lua_State *L = s->L;
    if (rc == 0 && s->pool_len < THREAD_POOL_MAX && lua_gettop(co) == 0)
        s->pool[s->pool_len++] = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
}

int gust_sched_anchor(lua_State *co) {
    if (lua_pushthread(co)) {
        lua_pop(co, 1);
        return LUA_NOREF; /* the main thread cannot yield */
    }
    return luaL_ref(co, LUA_REGISTRYINDEX);
}

void gust_sched_push(gust_server_t *s, gust_run_t run) {
    if (!s->L) {
        return; /* shutting down: nothing will run again */
    }
    if (s->runq_len == s->runq_cap) {
        s->runq_cap = s->runq_cap ? s->runq_cap * 2 : 64;
        s->runq = gust_realloc(s->runq, s->runq_cap * sizeof *s->runq);
    }
    s->runq[s->runq_len++] = run;
    gust_server_defer(s);
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
void gust_sched_run_queue(gust_server_t *s) {
    lua_State *L = s->L;
    size_t n = s->runq_len;
    for (size_t i = 0; i < n && s->L; i++) {
        gust_run_t run = s->runq[i];
        lua_rawgeti(L, LUA_REGISTRYINDEX, run.co_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, run.co_ref);
        lua_State *co = lua_tothread(L, -1);
        int nargs = 0;
        if (run.kind == GUST_RUN_START || run.kind == GUST_RUN_STACK) {
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
    if (s->runq_len > n)
        memmove(s->runq, s->runq + n, (s->runq_len - n) * sizeof *s->runq);
    s->runq_len -= n;
}
