/*
 * redis_url.c -- Redis URLs (redis_url.h): split, check, decode.
 */
#include "redis_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *why) {
    snprintf(err, errlen, "%s", why);
    return -1;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies s[0..n) into out with %XX decoded; -1 when it does not fit or an
 * escape is broken. */
static int decode(const char *s, size_t n, char *out, size_t outlen) {
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return -1;
            c = hexval(s[i + 1]) << 4 | hexval(s[i + 2]);
            i += 2;
        }
        if (c == 0 || j + 1 >= outlen)
            return -1;
        out[j++] = (char)c;
    }
    out[j] = '\0';
    return 0;
}

static int all_digits(const char *s, size_t n) {
    if (n == 0 || n > 9)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int gust_redis_url_parse(const char *url, gust_redis_url_t *out, char *err, size_t errlen) {
    static const char expected[] = "redis://[:password@]host[:port][/db] or unix:///path expected";
    memset(out, 0, sizeof *out);
    out->port = GUST_REDIS_DEFAULT_PORT;
    if (!url)
        return fail(err, errlen, expected);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return fail(err, errlen, "spaces or control characters in the URL");
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        if (path[0] != '/' || path[1] == '\0')
            return fail(err, errlen, "unix:///path expected (an absolute socket path)");
        if (strlen(path) >= sizeof out->path)
            return fail(err, errlen, "socket path too long");
        snprintf(out->path, sizeof out->path, "%s", path);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return fail(err, errlen, expected);
    const char *p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    if (*end == '?' || *end == '#')
        return fail(err, errlen, "no query or fragment expected");
    /* userinfo: the last '@' before the path ends it (an escaped one is %40) */
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return fail(err, errlen, "password expected as :password@ before the host");
        if (decode(p, (size_t)(colon - p), out->user, sizeof out->user) < 0 ||
            decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof out->password) < 0)
            return fail(err, errlen, "bad user or password (%XX escapes, at most 255 bytes)");
        if (!out->password[0])
            return fail(err, errlen, "empty password");
        p = at + 1;
    }
    /* host, [v6] or a name */
    const char *hend;
    if (*p == '[') {
        hend = memchr(p, ']', (size_t)(end - p));
        if (!hend || hend == p + 1)
            return fail(err, errlen, "bad [IPv6] host");
        if ((size_t)(hend - p - 1) >= sizeof out->host)
            return fail(err, errlen, "host too long");
        memcpy(out->host, p + 1, (size_t)(hend - p - 1));
        hend++;
    } else {
        hend = p;
        while (hend < end && *hend != ':')
            hend++;
        if (hend == p)
            return fail(err, errlen, "host expected");
        if ((size_t)(hend - p) >= sizeof out->host)
            return fail(err, errlen, "host too long");
        for (const char *q = p; q < hend; q++)
            if (!(q[0] == '-' || q[0] == '.' || q[0] == '_' || (q[0] >= '0' && q[0] <= '9') ||
                  ((q[0] | 0x20) >= 'a' && (q[0] | 0x20) <= 'z')))
                return fail(err, errlen, "bad character in the host");
        memcpy(out->host, p, (size_t)(hend - p));
    }
    if (hend < end) {
        if (*hend != ':')
            return fail(err, errlen, expected);
        const char *ps = hend + 1;
        if (!all_digits(ps, (size_t)(end - ps)))
            return fail(err, errlen, "port expected after ':'");
        long port = strtol(ps, NULL, 10);
        if (port < 1 || port > 65535)
            return fail(err, errlen, "port out of range");
        out->port = (int)port;
    }
    if (*end == '/' && end[1]) {
        const char *ds = end + 1;
        if (!all_digits(ds, strlen(ds)))
            return fail(err, errlen, "database number expected after '/'");
        out->db = (int)strtol(ds, NULL, 10);
    }
    return 0;
}

const char *gust_redis_url_where(const gust_redis_url_t *u, char *out, size_t outlen) {
    if (u->path[0])
        snprintf(out, outlen, "%s", u->path);
    else if (strchr(u->host, ':'))
        snprintf(out, outlen, "[%s]:%d", u->host, u->port);
    else
        snprintf(out, outlen, "%s:%d", u->host, u->port);
    return out;
}
