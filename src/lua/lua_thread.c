/*
 * lua_thread.c -- gust.run_in_thread(fn, ...) (DESIGN §4.10): blocking work
 * off the loop. The function (no upvalues) travels as bytecode with its
 * arguments (nil, booleans, numbers, strings) to a small pool of threads,
 * each with a Lua state of its own; the calling task yields until an
 * eventfd tells the loop its results are back.
 *
 * Threads share nothing with the loop but the two job lists under one
 * mutex; they never touch libevent or the server's Lua state.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>
#include <lualib.h>

#include "core/mem.h"
#include "lua_sched.h"
#include "lua_thread.h"

#define POOL_THREADS 4
#define MAX_VALUES 64

typedef struct value {
    int type; /* LUA_TNIL, LUA_TBOOLEAN, LUA_TNUMBER, LUA_TSTRING */
    lua_Number n;
    char *s;
    size_t len;
} value_t;

typedef struct job {
    struct job *next;
    char *code;
    size_t code_len;
    value_t v[MAX_VALUES];
    int nv, ok;
    int co_ref;
} job_t;

struct gust_threads {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *todo, *todo_tail, *done;
    pthread_t th[POOL_THREADS];
    int nthreads, quit, efd;
    struct event ev;
};

static void free_values(job_t *j) {
    for (int i = 0; i < j->nv; i++)
        free(j->v[i].s);
    j->nv = 0;
}

static void free_job(job_t *j) {
    free_values(j);
    free(j->code);
    free(j);
}

/* Copies the value at idx; 0 if its type cannot cross threads. */
static int take_value(lua_State *L, int idx, value_t *v) {
    v->type = lua_type(L, idx);
    v->s = NULL;
    switch (v->type) {
    case LUA_TNIL: return 1;
    case LUA_TBOOLEAN: v->n = lua_toboolean(L, idx); return 1;
    case LUA_TNUMBER: v->n = lua_tonumber(L, idx); return 1;
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, &v->len);
        v->s = gust_malloc(v->len ? v->len : 1);
        memcpy(v->s, s, v->len);
        return 1;
    }
    default: return 0;
    }
}

static void push_value(lua_State *L, const value_t *v) {
    switch (v->type) {
    case LUA_TBOOLEAN: lua_pushboolean(L, (int)v->n); break;
    case LUA_TNUMBER: lua_pushnumber(L, v->n); break;
    case LUA_TSTRING: lua_pushlstring(L, v->s, v->len); break;
    default: lua_pushnil(L);
    }
}

/* Runs one job in this thread's state; leaves results (or the error) in j. */
static void run_job(lua_State *L, job_t *j) {
    int top = lua_gettop(L);
    if (luaL_loadbuffer(L, j->code, j->code_len, "=run_in_thread") != 0) {
        j->ok = 0;
    } else {
        for (int i = 0; i < j->nv; i++)
            push_value(L, &j->v[i]);
        int nargs = j->nv;
        j->ok = lua_pcall(L, nargs, LUA_MULTRET, 0) == 0;
    }
    free_values(j);
    int n = lua_gettop(L) - top;
    if (!j->ok) {
        value_t *v = &j->v[0];
        const char *msg = lua_tostring(L, -1);
        v->type = LUA_TSTRING;
        v->len = strlen(msg ? msg : "error object is not a string");
        v->s = gust_malloc(v->len + 1);
        memcpy(v->s, msg ? msg : "error object is not a string", v->len);
        j->nv = 1;
    } else {
        for (int i = 0; i < n && i < MAX_VALUES; i++) {
            if (!take_value(L, top + 1 + i, &j->v[i])) {
                free_values(j);
                j->ok = 0;
                static const char why[] = "run_in_thread: results must be nil, booleans, "
                                          "numbers or strings";
                j->v[0].type = LUA_TSTRING;
                j->v[0].s = gust_malloc(sizeof why);
                memcpy(j->v[0].s, why, sizeof why - 1);
                j->v[0].len = sizeof why - 1;
                j->nv = 1;
                break;
            }
            j->nv = i + 1;
        }
    }
    lua_settop(L, top);
    lua_gc(L, LUA_GCSTEP, 0);
}

static void *thread_main(void *arg) {
    struct gust_threads *t = arg;
    lua_State *L = luaL_newstate();
    if (L)
        luaL_openlibs(L);
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->todo && !t->quit)
            pthread_cond_wait(&t->cv, &t->mu);
        if (t->quit)
            break;
        job_t *j = t->todo;
        t->todo = j->next;
        if (!t->todo)
            t->todo_tail = NULL;
        pthread_mutex_unlock(&t->mu);
        if (L) {
            run_job(L, j);
        } else {
            j->ok = 0;
            j->nv = 0;
        }
        pthread_mutex_lock(&t->mu);
        j->next = t->done;
        t->done = j;
        uint64_t one = 1;
        if (write(t->efd, &one, sizeof one) < 0) { /* the loop reads it back */
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (L)
        lua_close(L);
    return NULL;
}

/* Finished jobs: their tasks resume with the results, or nil and the error. */
static void on_done(evutil_socket_t fd, short what, void *arg) {
    gust_server_t *s = arg;
    struct gust_threads *t = s->threads;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&t->mu);
    job_t *list = t->done;
    t->done = NULL;
    pthread_mutex_unlock(&t->mu);
    while (list) {
        job_t *j = list;
        list = j->next;
        if (s->L) {
            lua_rawgeti(s->L, LUA_REGISTRYINDEX, j->co_ref);
            lua_State *co = lua_tothread(s->L, -1);
            lua_pop(s->L, 1);
            int nres = 0;
            if (!j->ok) {
                lua_pushnil(co);
                nres = 1;
            }
            for (int i = 0; i < j->nv; i++)
                push_value(co, &j->v[i]);
            nres += j->nv;
            if (!j->ok && j->nv == 0) {
                lua_pushliteral(co, "run_in_thread: no Lua state in the thread");
                nres++;
            }
            gust_run_t run = {j->co_ref, GUST_RUN_STACK, nres, NULL};
            gust_sched_push(s, run);
        }
        free_job(j);
    }
}

static struct gust_threads *pool(gust_server_t *s) {
    if (s->threads)
        return s->threads;
    struct gust_threads *t = gust_calloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    event_assign(&t->ev, s->core->base, t->efd, EV_READ | EV_PERSIST, on_done, s);
    event_add(&t->ev, NULL);
    s->threads = t;
    return t;
}

/* core.run_in_thread(bytecode, ...) -> results | nil, err (yields)
 * [-(1+n), +?, e] */
static int core_run_in_thread(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    size_t len;
    const char *code = luaL_checklstring(L, 1, &len);
    int nargs = lua_gettop(L) - 1;
    luaL_argcheck(L, nargs <= MAX_VALUES, MAX_VALUES + 2, "too many arguments");
    job_t *j = gust_calloc(1, sizeof *j);
    for (int i = 0; i < nargs; i++) {
        if (!take_value(L, i + 2, &j->v[i])) {
            free_job(j);
            return luaL_argerror(L, i + 2, "nil, boolean, number or string expected");
        }
        j->nv = i + 1;
    }
    j->co_ref = gust_sched_anchor(L);
    if (j->co_ref == LUA_NOREF) {
        free_job(j);
        return luaL_error(L, "run_in_thread() must be called from a task");
    }
    j->code = gust_malloc(len);
    memcpy(j->code, code, len);
    j->code_len = len;
    struct gust_threads *t = pool(s);
    pthread_mutex_lock(&t->mu);
    if (t->todo_tail)
        t->todo_tail->next = j;
    else
        t->todo = j;
    t->todo_tail = j;
    /* A new thread while some are likely busy, up to the pool's size. */
    if (t->nthreads < POOL_THREADS &&
        pthread_create(&t->th[t->nthreads], NULL, thread_main, t) == 0)
        t->nthreads++;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return lua_yield(L, 0);
}

/* Stops the threads (each finishes the job it runs) and drops the rest. */
void gust_threads_free(gust_server_t *s) {
    struct gust_threads *t = s->threads;
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->quit = 1;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < t->nthreads; i++)
        pthread_join(t->th[i], NULL);
    event_del(&t->ev);
    close(t->efd);
    for (job_t *list = t->todo, *next; list; list = next) {
        next = list->next;
        free_job(list);
    }
    for (job_t *list = t->done, *next; list; list = next) {
        next = list->next;
        free_job(list);
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    gust_free(t);
    s->threads = NULL;
}

void gust_thread_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg funcs[] = {{"run_in_thread", core_run_in_thread}, {NULL, NULL}};
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
}
