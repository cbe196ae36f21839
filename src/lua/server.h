/*
 * server.h -- gust_server_t, the object behind the embedding API of gust.h:
 * a core (src/core) and the Lua state that serves on it, with pointers to
 * the subsystems of the bindings, each of which owns its state behind its
 * own header. Nothing here is installed.
 */
#ifndef GUST_LUA_SERVER_H
#define GUST_LUA_SERVER_H

#include <event2/event_struct.h>
#include <lua.h>

#include "core/core.h"
#include "gust.h"

typedef struct gust_sched gust_sched_t;
typedef struct gust_timers gust_timers_t;
typedef struct gust_bus gust_bus_t;
struct gust_threads;
struct gust_watcher;

struct gust_server {
    gust_core_t *core;
    lua_State *L; /* a thread of the Lua state that belongs to the server */
    lua_State *main_L;
    unsigned own_lua : 1, loading : 1;
    int gc_pause; /* the collector's pause gc_floor() last set; 0: not ours */

    int app_ref;          /* what the app script returned */
    const char *app_path; /* the script gust_load_app() runs, while it runs */
    int close_hook_ref;   /* core.set_close_hook(close, adopt) */
    int adopt_hook_ref;

    gust_sched_t *sched;           /* coroutines run from the loop (lua_sched.c) */
    gust_timers_t *timers;         /* Lua timers (lua_timer.c) */
    gust_bus_t *bus;               /* pubsub to the other workers (lua_pubsub.c) */
    struct gust_threads *threads;  /* run_in_thread's pool, made on first use */
    struct gust_watcher *watchers; /* fd handlers (lua_socket.c) */
    struct event sample_ev;        /* the Lua heap's size, once a second */
};

/* Attaches the server to a Lua state (registry keys, a thread of its own). */
int gust_server_attach_lua(gust_server_t *s, lua_State *L);
/* The server of a Lua state, or NULL. */
gust_server_t *gust_server_from_lua(lua_State *L);
/* The same, making one when the state has none (plain luajit, busted): it is
 * freed when the state closes. */
gust_server_t *gust_server_for_lua(lua_State *L);

#endif
