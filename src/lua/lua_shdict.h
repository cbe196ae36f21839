/*
 * lua_shdict.h -- core.shdict() and the gust.shared.dict methods
 * (lua_shdict.c).
 */
#ifndef GUST_LUA_SHDICT_H
#define GUST_LUA_SHDICT_H

#include <lua.h>

#include "server.h"

void gust_shdict_open(lua_State *L, gust_server_t *s);

#endif
