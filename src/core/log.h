/*
 * log.h -- leveled logging to stderr and the access log.
 *
 * The level lives in a gust_log_t owned by each server, so two servers in
 * one process can log differently; the pure protocol code never logs.
 */
#ifndef GUST_LOG_H
#define GUST_LOG_H

#include <stddef.h>
#include <stdio.h>

enum { GUST_LOG_ERROR, GUST_LOG_WARN, GUST_LOG_INFO, GUST_LOG_DEBUG };

typedef struct gust_log {
    int level;
    FILE *access; /* NULL: access log off */
    int own_access;
} gust_log_t;

/* -1 for an unknown name. */
int gust_log_level_parse(const char *name);
const char *gust_log_level_name(int level);

void gust_log(const gust_log_t *log, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define gust_log_enabled(log, lvl) ((lvl) <= (log)->level)

/*
 * Copies s[0..n), text that came from a peer (a request target, a header),
 * into out for a log line, with every byte that could pass for structure
 * written as \xhh: control bytes (below 0x20, and 0x7f) so it cannot start a
 * line of its own or drive a terminal, '"' and '\' so it cannot leave a
 * quoted field of the access log (and "\x" always starts an escape). out is
 * NUL-terminated; a copy that does not fit is cut before an escape, never
 * inside one, and ends with "...". Pure: no allocation, no state.
 * @return strlen(out); GUST_LOG_ESCAPED_MAX(n) bytes of out always suffice
 */
size_t gust_log_escape(const char *s, size_t n, char *out, size_t outlen);

#define GUST_LOG_ESCAPED_MAX(n) (4 * (size_t)(n) + 1)

#endif
