/*
 * lua_sched.h -- running Lua coroutines from the event loop (lua_sched.c):
 * the run queue, the pool of request coroutines, the watchdog's clock.
 */
#ifndef GUST_LUA_SCHED_H
#define GUST_LUA_SCHED_H

#include <stddef.h>

#include <lua.h>

#include "server.h"

/* Entries of the run queue: coroutines to start or resume on the next loop
 * iteration, never from inside another coroutine's C call. */
enum {
    GUST_RUN_START,
    GUST_RUN_TRUE,
    GUST_RUN_ERR,
    GUST_RUN_VALUES,
    GUST_RUN_STACK,
    GUST_RUN_KEPT
};
typedef struct gust_run {
    int co_ref;      /* registry ref of the coroutine (released when run, but for KEPT) */
    int kind;        /* GUST_RUN_* */
    int n;           /* START, STACK, KEPT: values on its stack; VALUES: table ref */
    const char *err; /* ERR: the message (static) */
} gust_run_t;

gust_sched_t *gust_sched_new(gust_server_t *s);
void gust_sched_free(gust_sched_t *sc);

/* Resumes `co` with `nargs` values on its stack; logs an error that escaped
 * it (with the dead coroutine's traceback) and a resume that held the loop
 * past --block-warn. Returns lua_resume's status. */
int gust_sched_resume(gust_server_t *s, lua_State *co, int nargs);
/* Queues a run for the next loop iteration. */
void gust_sched_push(gust_server_t *s, gust_run_t run);
/* Releases a registry ref once the running coroutine is back in C (when
 * its resume returns): for code that may run inside an FFI call, where the
 * Lua API must not be used. NULL (the state is closing) is a no-op. */
void gust_sched_unref(gust_sched_t *sc, int ref);

/* Wake-ups pushed from begin to end run at end, from the loop callback
 * that caused them (a message read wakes its reader there), instead of on
 * the deferred callbacks' next pass: an event activation and a dispatch
 * less each. For loop callbacks; the caller must not touch what the runs
 * may free after end. NULL (the state is closing) is a no-op. */
void gust_sched_batch_begin(gust_sched_t *sc);
void gust_sched_batch_end(gust_sched_t *sc);
/* A KEPT entry leaves the coroutine's ref to whoever woke it (a waiter that
 * waits again and again on one object keeps one ref). That owner, letting
 * go of the ref, calls this first: 1 when a queued entry took it over (and
 * releases it once run), 0 when nothing is queued with it (or sc is gone:
 * the state is closing). */
int gust_sched_disown(gust_sched_t *sc, int co_ref);
/* Starts fn(...) -- the function and its `nargs` arguments on top of L,
 * popped -- in a new coroutine on the next loop iteration. */
void gust_sched_start(gust_server_t *s, lua_State *L, int nargs);
/* Anchors the running coroutine in the registry (LUA_NOREF for the main
 * thread, which cannot yield). */
int gust_sched_anchor(lua_State *co);

/* A coroutine for a request, left on the server's thread stack; give it
 * back with gust_sched_release() and the status of its run. */
lua_State *gust_sched_thread(gust_sched_t *sc);
void gust_sched_release(gust_sched_t *sc, lua_State *co, int rc);

/* What is running, for the watchdog ("GET /path"); method NULL: nothing. */
void gust_sched_set_running(gust_sched_t *sc, const char *method, const char *uri, size_t len);

/* Starts (on) or stops the watchdog's sampling of this server's Lua state
 * (--block-warn; one state per process can be sampled). */
void gust_sched_watch(gust_server_t *s, int on);

/* Lua ran out of memory: log, count, and stop this worker gracefully with
 * GUST_EXIT_REPLACE so that its master starts another. */
void gust_sched_out_of_memory(gust_server_t *s);

/* Coroutines queued to run. */
size_t gust_sched_pending(const gust_sched_t *sc);

/* The core's defer hook: runs what was queued. */
int gust_sched_run_queue(void *sched);

/* lua_pcall message handler: the message plus a traceback. */
int gust_traceback(lua_State *L);

#endif
