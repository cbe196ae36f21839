/*
 * lua_pubsub.h -- the worker's end of the pubsub bus between workers
 * (lua_pubsub.c).
 */
#ifndef GUST_LUA_PUBSUB_H
#define GUST_LUA_PUBSUB_H

#include <lua.h>

#include "server.h"

/* One packet on the bus, at most. */
#define GUST_BUS_MAX (64 * 1024 + 2 + 1024)

gust_bus_t *gust_bus_new(gust_server_t *s);
void gust_bus_free(gust_bus_t *b);
/* Connects the server to the master's relay over `fd` (owned from now on). */
void gust_server_attach_bus(gust_server_t *s, int fd);
void gust_pubsub_open(lua_State *L, gust_server_t *s);

#endif
