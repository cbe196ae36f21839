/*
 * lua_redis.h -- "gust.redis.conn", one Redis connection on a gust stream
 * for gust.redis (lua_redis.c).
 */
#ifndef GUST_LUA_REDIS_H
#define GUST_LUA_REDIS_H

#include <lua.h>

#include "server.h"

void gust_redis_open(lua_State *L, gust_server_t *s);

#endif
