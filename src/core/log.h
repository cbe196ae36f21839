/*
 * log.h -- leveled logging to stderr and the access log.
 *
 * The level lives in a gust_log_t owned by each server, so two servers in
 * one process can log differently; the pure protocol code never logs.
 */
#ifndef GUST_LOG_H
#define GUST_LOG_H

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

#endif
