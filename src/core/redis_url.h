/*
 * redis_url.h -- where a Redis server is, from a URL: the one parser behind
 * --redis (the master's pubsub relay) and gust.redis (redis_url.c). Pure: no
 * I/O, no allocation.
 *
 *   redis://[[user]:password@]host[:port][/db]    host: a name, IPv4 or [IPv6]
 *   unix:///path/to/redis.sock
 *
 * A password may carry %XX escapes (for '@', '/', ':'); port defaults to
 * 6379 and db to 0.
 */
#ifndef GUST_REDIS_URL_H
#define GUST_REDIS_URL_H

#include <stddef.h>

#define GUST_REDIS_DEFAULT_PORT 6379

typedef struct gust_redis_url {
    char host[256];     /* "" for a Unix socket */
    int port;           /* 1..65535 */
    char path[108];     /* the Unix socket's path, or "" */
    char user[128];     /* "" : AUTH password alone */
    char password[256]; /* "" : no AUTH */
    int db;             /* SELECT db when not 0 */
} gust_redis_url_t;

/* Parses `url` into *out.
 * @return 0, or -1 with why in err ("redis://[:password@]host[:port][/db]
 *         or unix:///path expected", "port out of range", ...) */
int gust_redis_url_parse(const char *url, gust_redis_url_t *out, char *err, size_t errlen);

/* "host:port", "[v6]:port" or the socket path, for log lines (never the
 * password). @return out */
const char *gust_redis_url_where(const gust_redis_url_t *u, char *out, size_t outlen);

#endif
