/*
 * lua_core.h -- `require "gust.core"` (lua_core.c): the module that gathers
 * every binding, listeners from Lua, and the helper that registers a class.
 */
#ifndef GUST_LUA_CORE_H
#define GUST_LUA_CORE_H

#include <lauxlib.h>
#include <lua.h>

#include "core/listener.h"
#include "server.h"

int luaopen_gust_core(lua_State *L);

/* Registers (once) the metatable `name` with `methods` as its __index
 * table and `meta` (may be NULL) as metamethods; leaves it on the stack. */
void gust_lua_newclass(lua_State *L, const char *name, const luaL_Reg *methods,
                       const luaL_Reg *meta);

/* luaL_checkudata(L, 1, name) for a method registered by gust_lua_newclass,
 * at the cost of a pointer comparison: its metatable is the method's first
 * upvalue, not looked up by name. */
void *gust_lua_checkself(lua_State *L, const char *name);

/* The same for the methods run per request or per message, at a third of
 * the cost: their struct's first member is a tag, the address of a static
 * of its binding, so a userdata of the struct's size holding that tag is
 * one (no other userdata holds the address). Anything else goes through
 * gust_lua_checkself, for the same error. */
static inline void *gust_lua_checktag(lua_State *L, const void *tag, size_t size,
                                      const char *name) {
    if (lua_type(L, 1) == LUA_TUSERDATA && lua_objlen(L, 1) == size) {
        void *p = lua_touserdata(L, 1);
        if (*(const void *const *)p == tag)
            return p;
    }
    return gust_lua_checkself(L, name);
}

/* Field `name` of the options table at idx: nil gives `dflt`; a value of
 * the wrong type raises "option NAME: number expected". */
double gust_lua_opt_number(lua_State *L, int idx, const char *name, double dflt);
int gust_lua_opt_bool(lua_State *L, int idx, const char *name, int dflt);

/* Applies an Application's settings table at idx (limits and timeouts) to
 * the listener; not a table: the server's configuration. */
void gust_lua_apply_settings(gust_listener_t *l, lua_State *L, int idx);

/* Listens for the handler at stack index 1 on port (2) and address (3):
 * HTTP requests go to it (settings at 4), or with `raw` accepted
 * connections as streams (TCPServer). Pushes the listener's handle, or nil
 * and the error. */
int gust_listen_lua(lua_State *L, gust_server_t *s, int raw);

#endif
