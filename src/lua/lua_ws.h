/*
 * lua_ws.h -- "gust.websocket" connections (lua_ws.c): the RFC 6455
 * session over a stream, for server handlers and the client.
 */
#ifndef GUST_LUA_WS_H
#define GUST_LUA_WS_H

#include <lua.h>

#include "server.h"

void gust_ws_open(lua_State *L, gust_server_t *s);
/* Starts the close handshake (1001) on every server-side WebSocket, for a
 * graceful stop or a reload's drain; returns how many are still open (each
 * ends within its close timeout). */
int gust_ws_going_away(gust_server_t *s);
/* Server-side WebSockets still open. */
int gust_ws_open_count(gust_server_t *s);

#endif
