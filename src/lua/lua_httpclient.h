/*
 * lua_httpclient.h -- the HTTP client's Lua binding (lua_httpclient.c).
 */
#ifndef GUST_LUA_HTTPCLIENT_H
#define GUST_LUA_HTTPCLIENT_H

#include <lua.h>

#include "server.h"

void gust_httpclient_open(lua_State *L, gust_server_t *s);

#endif
