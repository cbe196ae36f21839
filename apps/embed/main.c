/*
 * gust-embed -- a C program that embeds gust and exposes a module of its
 * own to the app's scripts (DESIGN.md §5):
 *
 *     build/gust-embed --port 8080 apps/embed/app.lua
 *     curl http://127.0.0.1:8080/        -> values computed by the "host" module
 *     curl http://127.0.0.1:8080/c/hello -> "Hello from C", answered in C
 *
 * It uses only the public API of gust.h and libgust, the way any embedder
 * would (`pkg-config --cflags --libs gust` once installed).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "gust.h"

/* host.fib(n) -> the n-th Fibonacci number, computed in C. */
static int host_fib(lua_State *L) {
    int n = (int)luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= 90, 1, "0..90 expected");
    long long a = 0, b = 1;
    for (int i = 0; i < n; i++) {
        long long t = a + b;
        a = b;
        b = t;
    }
    lua_pushnumber(L, (lua_Number)a);
    return 1;
}

/* host.info() -> {program=, pid=, gust=}: facts only the host knows. */
static int host_info(lua_State *L) {
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "gust-embed");
    lua_setfield(L, -2, "program");
    lua_pushinteger(L, getpid());
    lua_setfield(L, -2, "pid");
    lua_pushliteral(L, GUST_VERSION);
    lua_setfield(L, -2, "gust");
    return 1;
}

static int luaopen_host(lua_State *L) {
    static const luaL_Reg funcs[] = {{"fib", host_fib}, {"info", host_info}, {NULL, NULL}};
    lua_newtable(L);
    luaL_setfuncs(L, funcs, 0);
    return 1;
}

/* GET /c/hello, answered in C beside the Lua app (gust_handle). */
static void c_hello(gust_request_t *req, void *arg) {
    static const char *const headers[] = {"Content-Type", "text/plain", NULL};
    static const char body[] = "Hello from C";
    if (strcmp(gust_request_method(req), "GET") != 0 &&
        strcmp(gust_request_method(req), "HEAD") != 0) {
        static const char *const allow[] = {"Allow", "GET, HEAD", NULL};
        gust_request_respond(req, 405, allow, NULL, 0);
        return;
    }
    gust_request_respond(req, 200, headers, body, sizeof body - 1);
}

int main(int argc, char **argv) {
    gust_config_t cfg;
    gust_config_init(&cfg);
    const char *app = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--port") == 0 || strcmp(argv[i], "-p") == 0) && i + 1 < argc)
            cfg.port = atoi(argv[++i]) ? atoi(argv[i]) : GUST_PORT_ANY;
        else
            app = argv[i];
    }
    if (!app) {
        fprintf(stderr, "usage: gust-embed [--port PORT] APP.lua\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* No event base of ours: the server makes its own loop, and with it
     * stops gracefully on SIGTERM/SIGINT as the gust command does. */
    gust_server_t *s = gust_server_new(&cfg, NULL);
    if (!s) {
        fprintf(stderr, "gust-embed: cannot create the server\n");
        return 1;
    }
    char err[GUST_ERR_LEN * 4];
    int rc = 1;
    if (gust_preload(s, "host", luaopen_host) != 0 ||
        gust_handle(s, "/c/hello", c_hello, NULL) != 0 ||
        gust_load_app(s, app, err, sizeof err) != 0) {
        fprintf(stderr, "gust-embed: %s\n", err);
        goto done;
    }
    if (gust_listen(s, NULL, 0) != 0)
        goto done;
    printf("gust-embed listening on http://%s:%d\n", cfg.bind, gust_port(s));
    fflush(stdout);
    rc = gust_run(s) == 0 ? 0 : 1;
done:
    gust_server_free(s);
    return rc;
}
