/*
 * lua_thread.h -- gust.run_in_thread (lua_thread.c): a thread pool with Lua
 * states of its own.
 */
#ifndef GUST_LUA_THREAD_H
#define GUST_LUA_THREAD_H

#include <lua.h>

#include "server.h"

void gust_thread_open(lua_State *L, gust_server_t *s);
/* Joins the pool's threads and frees what they left. */
void gust_threads_free(gust_server_t *s);

#endif
