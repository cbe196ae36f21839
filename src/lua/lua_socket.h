/*
 * lua_socket.h -- "gust.socket" and fd handlers (lua_socket.c): netutil's
 * sockets and IOLoop.add_handler.
 */
#ifndef GUST_LUA_SOCKET_H
#define GUST_LUA_SOCKET_H

#include <sys/socket.h>

#include <lua.h>

#include "server.h"

void gust_socket_open(lua_State *L, gust_server_t *s);
/* Stops every fd handler: the server is going away. */
void gust_socket_forget_server(gust_server_t *s);
/* The fd of the socket at idx, taken from it. */
int gust_socket_take(lua_State *L, int idx);
/* Pushes {ip, port} (or the path of a Unix socket). */
void gust_push_address(lua_State *L, const struct sockaddr *sa);

#endif
