/*
 * lua_stream.h -- "gust.stream", Tornado's IOStream over a gust_stream_t
 * (lua_stream.c), and TCPServer's accept callback.
 */
#ifndef GUST_LUA_STREAM_H
#define GUST_LUA_STREAM_H

#include <lua.h>

#include "core/listener.h"
#include "core/stream.h"
#include "server.h"

void gust_stream_open(lua_State *L, gust_server_t *s);
/* Pushes a Lua IOStream that owns `st`. */
void gust_lua_stream_push(lua_State *L, gust_server_t *s, gust_stream_t *st);
/* Takes the stream out of the IOStream at idx (which is then closed to Lua). */
gust_stream_t *gust_lua_stream_take(lua_State *L, int idx);
/* A listener's accept callback (arg: its gust_lua_handler_t): the socket
 * becomes an IOStream for the handler, run as a task. */
void gust_lua_stream_accept(gust_listener_t *l, int fd, const struct sockaddr *sa, int salen,
                            void *arg);

#endif
