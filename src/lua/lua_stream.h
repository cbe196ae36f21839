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
/* What a connected stream becomes in Lua: pushes it on co. */
typedef void (*gust_lua_stream_wrap_fn)(lua_State *co, gust_server_t *s, gust_stream_t *st);
/* The body of a connecting binding: checks (host, port, timeout?) at 1..3,
 * connects, and yields the running task, which resumes with wrap's value,
 * or nil, err. `what` names the call in the error raised outside a task.
 * [-(2..3), +0, y] */
int gust_lua_connect(lua_State *L, gust_server_t *s, const char *what,
                     gust_lua_stream_wrap_fn wrap);
/* Takes the stream out of the IOStream at idx (which is then closed to Lua). */
gust_stream_t *gust_lua_stream_take(lua_State *L, int idx);
/* A listener's accept callback (arg: its gust_lua_handler_t): the socket
 * becomes an IOStream for the handler, run as a task. */
void gust_lua_stream_accept(gust_listener_t *l, int fd, const struct sockaddr *sa, int salen,
                            void *arg);

#endif
