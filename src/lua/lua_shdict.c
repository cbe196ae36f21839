/*
 * lua_shdict.c -- "gust.shared.dict": shared dicts (shdict.c) as Lua sees
 * them, with the conventions of OpenResty's ngx.shared.DICT.
 *
 * core.shdict(name, bytes) returns a handle, a userdata that owns one
 * mapping of the segment. Handles are cached per Lua state in a registry
 * table, name -> handle, so a second call with the same name returns the
 * same handle, the size of the dict that exists winning over the one asked
 * for. The cache keeps handles alive until the state closes; their __gc
 * then unmaps (and, in a process that owns its dicts -- plain luajit, an
 * embedder -- removes the segment).
 *
 * Values are copied out of shared memory into the handle's scratch buffer
 * before anything is pushed, so no Lua allocation (which may raise) ever
 * happens while the dict's lock is held.
 */
#include <math.h>
#include <string.h>

#include <event2/event.h>
#include <lauxlib.h>

#include "core/shdict.h"
#include "lua_core.h"
#include "lua_shdict.h"

#define SHDICT_MT "gust.shared.dict"
#define KEYS_DEFAULT 1024

static const char cache_key = 'D'; /* registry[&cache_key] = {name = handle} */

typedef struct shdict_handle {
    gust_shdict_t *d; /* NULL until the segment is mapped */
    gust_buf_t scratch;
} shdict_handle_t;

static shdict_handle_t *check_handle(lua_State *L) {
    shdict_handle_t *h = gust_lua_checkself(L, SHDICT_MT);
    if (!h->d)
        luaL_argerror(L, 1, "not an open shared dict");
    return h;
}

static gust_shdict_t *check_dict(lua_State *L) { return check_handle(L)->d; }

static const char *check_key(lua_State *L, size_t *len) {
    int t = lua_type(L, 2);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_argerror(L, 2,
                      lua_pushfstring(L, "key must be a string, got %s", luaL_typename(L, 2)));
    const char *k = lua_tolstring(L, 2, len);
    if (*len == 0)
        luaL_argerror(L, 2, "empty key");
    if (*len > GUST_SHDICT_KEY_MAX)
        luaL_argerror(L, 2, "key too long (65535 bytes at most)");
    return k;
}

static void check_value(lua_State *L, int idx, gust_shdict_value_t *v) {
    memset(v, 0, sizeof *v);
    switch (lua_type(L, idx)) {
    case LUA_TNONE:
    case LUA_TNIL: v->type = GUST_SHDICT_NIL; break;
    case LUA_TBOOLEAN:
        v->type = GUST_SHDICT_BOOLEAN;
        v->num = lua_toboolean(L, idx);
        break;
    case LUA_TNUMBER:
        v->type = GUST_SHDICT_NUMBER;
        v->num = lua_tonumber(L, idx);
        break;
    case LUA_TSTRING:
        v->type = GUST_SHDICT_STRING;
        v->str = lua_tolstring(L, idx, &v->len);
        break;
    default:
        luaL_argerror(L, idx,
                      lua_pushfstring(L,
                                      "value must be a string, number or boolean, "
                                      "got %s",
                                      luaL_typename(L, idx)));
    }
}

/* Seconds, nil or absent for none (0). */
static double opt_ttl(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx))
        return 0;
    double ttl = luaL_checknumber(L, idx);
    if (!(ttl >= 0))
        luaL_argerror(L, idx, "ttl must be a number of seconds >= 0");
    return ttl;
}

static uint32_t opt_flags(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx))
        return 0;
    double f = luaL_checknumber(L, idx);
    if (!(f >= 0 && f <= 4294967295.0) || f != floor(f))
        luaL_argerror(L, idx, "flags must be an integer from 0 to 2^32-1");
    return (uint32_t)f;
}

static int push_fail(lua_State *L, int first_is_false, int rc) {
    if (first_is_false)
        lua_pushboolean(L, 0);
    else
        lua_pushnil(L);
    lua_pushstring(L, gust_shdict_strerror(rc));
    return 2;
}

/* dict:get(key) -> value, flags? | nil  [-2, +1|2, e] */
static int dict_get(lua_State *L) {
    shdict_handle_t *h = check_handle(L);
    gust_shdict_t *d = h->d;
    size_t klen;
    const char *key = check_key(L, &klen);
    gust_shdict_value_t v;
    int rc = gust_shdict_get(d, key, klen, &v, &h->scratch);
    if (rc == GUST_SHDICT_ENOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != 0)
        return push_fail(L, 0, rc);
    switch (v.type) {
    case GUST_SHDICT_STRING: lua_pushlstring(L, v.str, v.len); break;
    case GUST_SHDICT_NUMBER: lua_pushnumber(L, v.num); break;
    default: lua_pushboolean(L, v.num != 0); break;
    }
    if (!v.flags)
        return 1;
    lua_pushnumber(L, v.flags);
    return 2;
}

static int generic_set(lua_State *L, int mode) {
    gust_shdict_t *d = check_dict(L);
    size_t klen;
    const char *key = check_key(L, &klen);
    gust_shdict_value_t v;
    check_value(L, 3, &v);
    double ttl = opt_ttl(L, 4);
    v.flags = opt_flags(L, 5);
    int rc = gust_shdict_set(d, key, klen, &v, ttl, mode);
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    /* add/replace's "exists"/"not found" are answers, not failures. */
    return push_fail(L, rc == GUST_SHDICT_EEXISTS || rc == GUST_SHDICT_ENOTFOUND, rc);
}

/* dict:set(key, value, ttl?, flags?) -> true | nil, "no memory"  [-(3..5), +1|2, e] */
static int dict_set(lua_State *L) { return generic_set(L, GUST_SHDICT_SET); }

/* dict:add(...) -> true | false, "exists" | nil, "no memory"  [-(3..5), +1|2, e] */
static int dict_add(lua_State *L) { return generic_set(L, GUST_SHDICT_ADD); }

/* dict:replace(...) -> true | false, "not found" | nil, "no memory"  [-(3..5), +1|2, e] */
static int dict_replace(lua_State *L) { return generic_set(L, GUST_SHDICT_REPLACE); }

/* dict:incr(key, n, init?, init_ttl?) -> new value | nil, "not found" |
 * nil, "not a number" | nil, "no memory"  [-(3..5), +1|2, e] */
static int dict_incr(lua_State *L) {
    gust_shdict_t *d = check_dict(L);
    size_t klen;
    const char *key = check_key(L, &klen);
    double n = luaL_checknumber(L, 3), init = 0, out = 0;
    int has_init = !lua_isnoneornil(L, 4);
    if (has_init)
        init = luaL_checknumber(L, 4);
    double init_ttl = opt_ttl(L, 5);
    int rc = gust_shdict_incr(d, key, klen, n, has_init ? &init : NULL, init_ttl, &out);
    if (rc != 0)
        return push_fail(L, 0, rc);
    lua_pushnumber(L, out);
    return 1;
}

/* dict:delete(key) -> true  [-2, +1, e] */
static int dict_delete(lua_State *L) {
    gust_shdict_t *d = check_dict(L);
    size_t klen;
    const char *key = check_key(L, &klen);
    int rc = gust_shdict_delete(d, key, klen);
    if (rc == GUST_SHDICT_ELOCK)
        return push_fail(L, 0, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* dict:ttl(key) -> seconds left (0: no expiry) | nil, "not found"  [-2, +1|2, e] */
static int dict_ttl(lua_State *L) {
    gust_shdict_t *d = check_dict(L);
    size_t klen;
    const char *key = check_key(L, &klen);
    double ttl = 0;
    int rc = gust_shdict_ttl(d, key, klen, &ttl);
    if (rc != 0)
        return push_fail(L, 0, rc);
    lua_pushnumber(L, ttl);
    return 1;
}

/* dict:expire(key, ttl) -> true | nil, "not found"  [-3, +1|2, e] */
static int dict_expire(lua_State *L) {
    gust_shdict_t *d = check_dict(L);
    size_t klen;
    const char *key = check_key(L, &klen);
    luaL_checkany(L, 3);
    int rc = gust_shdict_expire(d, key, klen, opt_ttl(L, 3));
    if (rc != 0)
        return push_fail(L, 0, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* dict:keys(max?) -> {key, ...}, at most max (default 1024; 0: all)
 * [-(1..2), +1|2, e] */
static int dict_keys(lua_State *L) {
    shdict_handle_t *h = check_handle(L);
    gust_shdict_t *d = h->d;
    double max = luaL_optnumber(L, 2, KEYS_DEFAULT);
    if (!(max >= 0) || max != floor(max))
        luaL_argerror(L, 2, "max must be an integer >= 0");
    h->scratch.len = 0;
    long n = gust_shdict_keys(d, max > (double)SIZE_MAX / 2 ? 0 : (size_t)max, &h->scratch);
    if (n < 0)
        return push_fail(L, 0, (int)n);
    lua_createtable(L, (int)n, 0);
    const char *p = h->scratch.p;
    for (long i = 1; i <= n; i++) {
        uint16_t len;
        memcpy(&len, p, sizeof len);
        lua_pushlstring(L, p + sizeof len, len);
        lua_rawseti(L, -2, (int)i);
        p += sizeof len + len;
    }
    if (h->scratch.cap > 65536) /* a big listing need not stay around */
        gust_buf_free(&h->scratch);
    return 1;
}

/* dict:flush_all() -> true  [-1, +1|2, e] */
static int dict_flush_all(lua_State *L) {
    int rc = gust_shdict_flush_all(check_dict(L));
    if (rc != 0)
        return push_fail(L, 0, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* dict:flush_expired(max?) -> number freed  [-(1..2), +1|2, e] */
static int dict_flush_expired(lua_State *L) {
    gust_shdict_t *d = check_dict(L);
    double max = luaL_optnumber(L, 2, 0);
    if (!(max >= 0) || max != floor(max))
        luaL_argerror(L, 2, "max must be an integer >= 0");
    long n = gust_shdict_flush_expired(d, max > (double)SIZE_MAX / 2 ? 0 : (size_t)max);
    if (n < 0)
        return push_fail(L, 0, (int)n);
    lua_pushnumber(L, (double)n);
    return 1;
}

/* dict:capacity() -> bytes  [-1, +1, e] */
static int dict_capacity(lua_State *L) {
    lua_pushnumber(L, (double)gust_shdict_capacity(check_dict(L)));
    return 1;
}

/* dict:free_space() -> bytes in free blocks  [-1, +1, e] */
static int dict_free_space(lua_State *L) {
    lua_pushnumber(L, (double)gust_shdict_free_space(check_dict(L)));
    return 1;
}

/* dict:name() -> the name it was opened with  [-1, +1, e] */
static int dict_name(lua_State *L) {
    lua_pushstring(L, gust_shdict_name(check_dict(L)));
    return 1;
}

/* dict __tostring -> "gust.shared.dict: name (bytes)" | "...: closed"
 * [-1, +1, e] */
static int dict_tostring(lua_State *L) {
    shdict_handle_t *h = gust_lua_checkself(L, SHDICT_MT);
    if (h->d)
        lua_pushfstring(L, "gust.shared.dict: %s (%f bytes)", gust_shdict_name(h->d),
                        (double)gust_shdict_capacity(h->d));
    else
        lua_pushliteral(L, "gust.shared.dict: closed");
    return 1;
}

/* dict __gc -- unmaps this process's view of the segment  [-1, +0, e] */
static int dict_gc(lua_State *L) {
    shdict_handle_t *h = gust_lua_checkself(L, SHDICT_MT);
    gust_shdict_free(h->d);
    h->d = NULL;
    gust_buf_free(&h->scratch);
    return 0;
}

/* core.shdict(name, bytes) -> dict | nil, err  [-2, +1|2, e] */
static int core_shdict(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    double size = luaL_checknumber(L, 2);
    if (!gust_shdict_name_ok(name))
        luaL_argerror(L, 1, "a name is 1 to 128 of A-Z a-z 0-9 _ . -");
    if (!(size >= (double)GUST_SHDICT_MIN_SIZE && size <= (double)GUST_SHDICT_MAX_SIZE))
        luaL_argerror(L, 2, "size must be from 8k to 1t bytes");
    lua_pushlightuserdata(L, (void *)&cache_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1))
        return 1;
    lua_pop(L, 1);
    /* The handle exists, closed, before the segment is mapped: if anything
     * below raises, its __gc has nothing to undo. */
    shdict_handle_t *h = lua_newuserdata(L, sizeof *h);
    h->d = NULL;
    gust_buf_init(&h->scratch, NULL, 0);
    luaL_getmetatable(L, SHDICT_MT);
    lua_setmetatable(L, -2);
    char err[GUST_ERR_LEN];
    h->d = gust_shdict_new(gust_shdict_owner(), name, (size_t)size, err, sizeof err);
    if (!h->d) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

void gust_shdict_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg methods[] = {{"get", dict_get},
                                       {"set", dict_set},
                                       {"add", dict_add},
                                       {"replace", dict_replace},
                                       {"incr", dict_incr},
                                       {"delete", dict_delete},
                                       {"ttl", dict_ttl},
                                       {"expire", dict_expire},
                                       {"keys", dict_keys},
                                       {"flush_all", dict_flush_all},
                                       {"flush_expired", dict_flush_expired},
                                       {"capacity", dict_capacity},
                                       {"free_space", dict_free_space},
                                       {"name", dict_name},
                                       {NULL, NULL}};
    static const luaL_Reg metamethods[] = {
        {"__gc", dict_gc}, {"__tostring", dict_tostring}, {NULL, NULL}};
    gust_lua_newclass(L, SHDICT_MT, methods, metamethods);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, (void *)&cache_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pushlightuserdata(L, (void *)&cache_key);
        lua_newtable(L);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, core_shdict);
    lua_setfield(L, -2, "shdict"); /* into the module table below */
    lua_pushnumber(L, (double)GUST_SHDICT_MIN_SIZE);
    lua_setfield(L, -2, "SHDICT_MIN_SIZE");
    lua_pushnumber(L, (double)GUST_SHDICT_MAX_SIZE);
    lua_setfield(L, -2, "SHDICT_MAX_SIZE");
}
