/*
 * gust.h -- the public embedding API of gust, a Lua-scriptable web server.
 *
 * A host program creates a server, optionally exposes its own Lua modules
 * with gust_preload(), loads an app script, listens and runs the loop:
 *
 *     gust_config_t cfg;
 *     gust_config_init(&cfg);
 *     cfg.port = 8080;
 *     gust_server_t *s = gust_server_new(&cfg, NULL);
 *     gust_preload(s, "mymod", luaopen_mymod);
 *     if (gust_load_app(s, "app.lua", err, sizeof err) == 0 &&
 *         gust_listen(s, NULL, 0) == 0)
 *         gust_run(s);
 *     gust_server_free(s);
 *
 * Conventions: functions returning int return 0 on success and -1 on
 * failure, with a message in the caller's buffer or the server's log. There
 * is no global state: two servers in one process are independent. A server
 * and everything it owns must be used from one thread only.
 */
#ifndef GUST_H
#define GUST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GUST_VERSION "0.1.0"
#define GUST_VERSION_NUM 100 /* major * 10000 + minor * 100 + patch */

#define GUST_API __attribute__((visibility("default")))

/** Room an error message needs in the caller's buffer. */
#define GUST_ERR_LEN 256

struct event_base;
typedef struct gust_server gust_server_t;

/* The two Lua types this header names, declared as lua.h does (a repeated
 * identical typedef is valid C11 and C++), so that the header, and the core
 * library that implements the request API, need no Lua headers. */
typedef struct lua_State lua_State;
typedef int (*lua_CFunction)(lua_State *L);

/*
 * Server settings. The struct is public so callers can fill it; a zero or
 * NULL field means "the default", which gust_config_init() writes out. New
 * fields are only ever added at the end.
 */
typedef struct gust_config {
    const char *bind;               /* "127.0.0.1"; "unix:/path" for a Unix socket */
    int port;                       /* 8888 (also for 0); GUST_PORT_ANY: a free one */
    const char *log_level;          /* "error" | "warn" | "info" | "debug" */
    const char *access_log;         /* file path, "-" for stderr, NULL for none */
    size_t max_body_size;           /* bytes; 100 MiB */
    size_t max_header_size;         /* bytes; 64 KiB */
    double idle_connection_timeout; /* seconds; 60 */
    double header_timeout;          /* seconds; 10 */
    double body_timeout;            /* seconds; 0 = none */
    const char *lua_dir;            /* the framework's lua/ directory; NULL = find it */
    double drain_timeout;           /* seconds a graceful stop waits; 10 */
    const char *metrics_path;       /* serve Prometheus metrics at this path; NULL: off */
    int block_warn_ms;              /* log Lua that holds the loop longer; 200 */
    const char *tls_cert;           /* PEM certificate chain: serve HTTPS; NULL: HTTP */
    const char *tls_key;            /* PEM private key for tls_cert */
    double block_kill;              /* seconds a worker's loop may be held before its
                                       master replaces it; 30; < 0: never */
    size_t max_lua_memory;          /* bytes the Lua heap may keep after a full
                                       collection before the worker is replaced; 0: off */
} gust_config_t;

/** gust_config_t.port value asking the kernel for a free port. */
#define GUST_PORT_ANY (-1)

/**
 * Checks that a certificate chain and its key load and match, as
 * gust_server_new() will need them for HTTPS.
 * @return 0, or -1 with the reason in err
 */
GUST_API int gust_tls_check(const char *cert, const char *key, char *err, size_t errlen);

/** Fills every field of `cfg` with its default. */
GUST_API void gust_config_init(gust_config_t *cfg);

/**
 * Creates a server with its own Lua state.
 * @param cfg  settings, copied (NULL: defaults)
 * @param base the event loop to run on, borrowed (NULL: the server makes and
 *             owns one)
 * @return the server, or NULL when the loop or Lua state cannot be created
 *         or the TLS certificate does not load (check it with gust_tls_check)
 */
GUST_API gust_server_t *gust_server_new(const gust_config_t *cfg, struct event_base *base);

/** Closes listeners and connections at once and frees the server. NULL is a no-op. */
GUST_API void gust_server_free(gust_server_t *s);

/**
 * Makes `require(name)` in scripts call `open` (package.preload). Call it
 * before gust_load_app().
 * @return 0, or -1 when name or open is NULL
 */
GUST_API int gust_preload(gust_server_t *s, const char *name, lua_CFunction open);

/**
 * Runs the app script at `path` in the server's Lua state. The script's
 * directory is added to package.path. When the script returns a value (an
 * Application), gust_listen() serves it; a script that returns nothing sets
 * up its own listeners.
 * @return 0, or -1 with "file:line: message" (and a traceback) in `err`
 */
GUST_API int gust_load_app(gust_server_t *s, const char *path, char *err, size_t errlen);

/** Whether the loaded app script returned something to serve. */
GUST_API int gust_has_app(gust_server_t *s);

/**
 * Listens for the loaded app on addr:port (NULL / 0: the configured ones).
 * `addr` may be "unix:/path".
 * @return 0, or -1 (the reason is logged)
 */
GUST_API int gust_listen(gust_server_t *s, const char *addr, int port);

/**
 * Serves the loaded app on a socket the caller bound (a pre-forking master
 * binds once and each worker listens on the inherited fd). Takes ownership
 * of `fd`.
 * @return 0, or -1 (the reason is logged)
 */
GUST_API int gust_listen_fd(gust_server_t *s, int fd);

/**
 * Binds a listening socket without a server: addr "unix:/path" or an
 * address, port 0 for any free one (the chosen port goes to *bound_port, -1
 * for Unix sockets).
 * @return the fd, or -1 with the reason in err
 */
GUST_API int gust_bind(const char *addr, int port, int *bound_port, char *err, size_t errlen);

/**
 * The port of the first TCP listener (useful with GUST_PORT_ANY), or -1.
 */
GUST_API int gust_port(gust_server_t *s);

/**
 * Runs the loop until gust_stop() has drained the server or nothing is left
 * to wait for. A server that made its own loop (base NULL) also stops
 * gracefully on SIGTERM and SIGINT, and at once on a second one, as the
 * gust command does; with the host's loop, signals are the host's.
 * @return 0 after a clean stop, -1 on a loop failure
 */
GUST_API int gust_run(gust_server_t *s);

/**
 * Stops gracefully: no new connections, idle ones closed, in-flight requests
 * finished within drain_timeout. Safe to call from a signal event or a Lua
 * callback (it only schedules the work). A second call stops at once.
 */
GUST_API void gust_stop(gust_server_t *s);

/** The server's Lua state, borrowed: do not close it. */
GUST_API lua_State *gust_lua(gust_server_t *s);

/* ---- Answering requests in C ------------------------------------------ */

/*
 * A request is an object of its own, separate from the connection that
 * carried it (HTTP/1.1 carries one at a time). It is valid from the call of
 * the handler until its response is finished, it is aborted, or its client
 * leaves -- whichever comes first; gust_request_on_close() tells a handler
 * that answers later when that happens. Every function below must be called
 * on the server's thread. Strings returned are borrowed from the request
 * and stay valid as long as it does; they are not NUL-terminated unless
 * said so.
 */
typedef struct gust_request gust_request_t;

/** A C request handler; `arg` is what was given to gust_handle(). It must
 * eventually answer (gust_request_respond() or gust_request_start() ...
 * gust_request_end()), now or later from the loop. */
typedef void (*gust_handler_fn)(gust_request_t *req, void *arg);

/**
 * Routes every request whose path is `prefix` or starts with `prefix` (the
 * longest registered prefix wins) to `fn`, before the Lua app sees it.
 * `prefix` is copied. Works for every listener of the server, including
 * those opened later.
 * @return 0, or -1 when prefix does not start with '/' or fn is NULL
 */
GUST_API int gust_handle(gust_server_t *s, const char *prefix, gust_handler_fn fn, void *arg);

/** The method, NUL-terminated ("GET"). */
GUST_API const char *gust_request_method(const gust_request_t *req);
/** The path of the target, without the query ("/c/hello"), and its length. */
GUST_API const char *gust_request_path(const gust_request_t *req, size_t *len);
/** The query string after '?', "" when none. */
GUST_API const char *gust_request_query(const gust_request_t *req, size_t *len);
/** The value of the last header called `name` (any case), or NULL. */
GUST_API const char *gust_request_header(const gust_request_t *req, const char *name, size_t *len);
/** The request body (already read whole, within max_body_size); "" when none. */
GUST_API const char *gust_request_body(const gust_request_t *req, size_t *len);
/** The client's address, NUL-terminated ("127.0.0.1", "unix" for Unix sockets). */
GUST_API const char *gust_request_remote_ip(const gust_request_t *req);

/**
 * Answers at once: status, headers, body. `headers` is NULL or a
 * NULL-terminated array of name, value pairs ({"Content-Type",
 * "text/plain", NULL}); values must not contain CR or LF. Server, Date,
 * Content-Length and a default Content-Type are added as for Lua handlers.
 * The request is over when this returns.
 * @return 0, or -1 when the client is gone or a header is invalid (the
 *         request is then aborted)
 */
GUST_API int gust_request_respond(gust_request_t *req, int status, const char *const *headers,
                                  const void *body, size_t len);

/**
 * Starts a streamed response (chunked on HTTP/1.1, close-delimited on
 * HTTP/1.0); send the body with gust_request_write() and end it with
 * gust_request_end().
 * @return 0, or -1 as gust_request_respond()
 */
GUST_API int gust_request_start(gust_request_t *req, int status, const char *const *headers);

/** Sends a piece of a started response now. Output the socket does not take
 * at once is buffered.
 * @return 0, or -1 when the client is gone (the request is over) */
GUST_API int gust_request_write(gust_request_t *req, const void *data, size_t len);

/** Ends a started response. The request is over when this returns.
 * @return 0, or -1 when the client is gone */
GUST_API int gust_request_end(gust_request_t *req);

/** Registers `fn`, called once when the request ends without a response
 * finished by the handler: its client left or the server closed it. After
 * `fn` returns the request is invalid. */
GUST_API void gust_request_on_close(gust_request_t *req, void (*fn)(gust_request_t *req, void *arg),
                                    void *arg);

#ifdef __cplusplus
}
#endif

#endif /* GUST_H */
