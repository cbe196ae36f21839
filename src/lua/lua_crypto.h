/*
 * lua_crypto.h -- hashes, HMAC and random bytes for the framework
 * (lua_crypto.c).
 */
#ifndef GUST_LUA_CRYPTO_H
#define GUST_LUA_CRYPTO_H

#include <lua.h>

void gust_crypto_open(lua_State *L);

#endif
