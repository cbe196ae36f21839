/*
 * lua_timer.h -- "gust.timer" (lua_timer.c): core.sleep() and
 * core.call_later(), over the timers' own heap.
 */
#ifndef GUST_LUA_TIMER_H
#define GUST_LUA_TIMER_H

#include <lua.h>

#include "server.h"

gust_timers_t *gust_timers_new(gust_server_t *s);
/* Pending timers forget the server (their __gc then leaves the loop alone). */
void gust_timers_free(gust_timers_t *t);
/* Timers waiting to fire. */
size_t gust_timers_pending(const gust_timers_t *t);
void gust_timer_open(lua_State *L, gust_server_t *s);

#endif
