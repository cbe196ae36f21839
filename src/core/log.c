/*
 * log.c -- "2026-11-26 14:00:00 [warn] message" lines on stderr, and the
 * escaping that keeps text from a peer from forging or breaking a line.
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

static size_t escaped_len(unsigned char c) {
    return c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? 4 : 1;
}

size_t gust_log_escape(const char *s, size_t n, char *out, size_t outlen) {
    static const char hex[] = "0123456789abcdef";
    if (outlen == 0)
        return 0;
    /* How much of s fits whole; if not all of it, how much leaves room for
     * the "..." that says it was cut. */
    size_t room = outlen - 1, need = 0, end = 0, cut = 0;
    for (; end < n && need + escaped_len((unsigned char)s[end]) <= room; end++) {
        need += escaped_len((unsigned char)s[end]);
        if (need + 3 <= room)
            cut = end + 1;
    }
    if (end < n)
        end = cut;
    size_t pos = 0;
    for (size_t i = 0; i < end; i++) {
        unsigned char c = (unsigned char)s[i];
        if (escaped_len(c) == 1) {
            out[pos++] = (char)c;
        } else {
            out[pos++] = '\\';
            out[pos++] = 'x';
            out[pos++] = hex[c >> 4];
            out[pos++] = hex[c & 15];
        }
    }
    for (int dots = 0; end < n && dots < 3 && pos < room; dots++)
        out[pos++] = '.';
    out[pos] = '\0';
    return pos;
}
