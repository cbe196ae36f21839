/*
 * lua_request.h -- the Lua side of serving HTTP: the "gust.request" handle
 * (lua_request.c) and what a listener serving Lua carries.
 */
#ifndef GUST_LUA_REQUEST_H
#define GUST_LUA_REQUEST_H

#include <lua.h>

#include "core/listener.h"
#include "core/request.h"
#include "server.h"

/* The Lua handle of a listener (core.listen's result); l and lh are NULL
 * once the listener is gone. */
struct gust_listener_handle {
    gust_listener_t *l;
    struct gust_lua_handler *lh; /* what the listener serves, which points back */
};

/* What a listener serving Lua hands each request or socket to: the server
 * and the registry ref of the handler (an Application or a function). */
typedef struct gust_lua_handler {
    gust_server_t *server;
    int handler_ref;
    int dispatch_ref, request_mt_ref; /* what every request starts with */
    gust_listener_t *listener;
    struct gust_listener_handle *handle; /* its Lua handle, or NULL */
} gust_lua_handler_t;

/* The request handler (request.h) that runs requests in Lua. */
extern const gust_request_handler_t gust_lua_request_handler;

/* Attaches `handler_ref` (owned from now on) to `l`; freed with it. */
gust_lua_handler_t *gust_lua_handler_attach(gust_server_t *s, gust_listener_t *l, int handler_ref);

/* Registers the "gust.request" metatable and the dispatch trampoline. */
void gust_lua_request_open(lua_State *L);

/* req:finish(status, nil, nil, body) called through LuaJIT's FFI by
 * gust.web.handler (exported for it): 1, 0 when the request is
 * over, -1 for what req:finish would raise an error for. */
GUST_API int gust_lua_finish_plain(void *handle, int status, const char *body, size_t len);

/* Whether a request has a body, through the FFI (gust.web.request, for the
 * same reason): 1, 0 (none, or the request is over), -1 for a handle that
 * is not a request's. */
GUST_API int gust_lua_has_body(void *handle);

#endif
