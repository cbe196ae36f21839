/*
 * lua_httpclient.c -- the HTTP client's Lua binding (issue: AsyncHTTPClient).
 * Placeholder until the client lands: registers nothing.
 */
#include "server.h"

void gust_httpclient_open(lua_State *L, gust_server_t *s) {
    (void)L;
    (void)s;
}

void gust_httpclient_forget_server(gust_server_t *s) { (void)s; }
