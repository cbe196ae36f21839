/*
 * log.c -- "2026-11-26 14:00:00 [warn] message" lines on stderr.
 */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *const names[] = {"error", "warn", "info", "debug"};

int gust_log_level_parse(const char *name) {
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *gust_log_level_name(int level) {
    return level >= 0 && level <= GUST_LOG_DEBUG ? names[level] : "?";
}

void gust_log(const gust_log_t *log, int level, const char *fmt, ...) {
    if (!gust_log_enabled(log, level))
        return;
    char line[8192], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    int n = snprintf(line, sizeof line, "%s [%s] ", stamp, names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    n = m < 0 ? n : (size_t)(n + m) >= sizeof line - 1 ? (int)sizeof line - 2 : n + m;
    line[n++] = '\n';
    /* One write per line keeps lines whole when several workers share stderr. */
    fwrite(line, 1, n, stderr);
    fflush(stderr);
}
