/*
 * http_response.c -- reason phrases, status lines, dates, ETags, chunks.
 */
#include "http_response.h"

#include <stdio.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

const char *gust_http_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a Teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 511: return "Network Authentication Required";
    default: return NULL;
    }
}

void gust_http_status_line(gust_buf_t *b, int http_minor, int status,
                           const char *reason, size_t reason_len) {
    gust_buf_reserve(b, 16 + reason_len);
    char *p = b->p + b->len;
    memcpy(p, http_minor ? "HTTP/1.1 " : "HTTP/1.0 ", 9);
    p[9] = '0' + status / 100 % 10;
    p[10] = '0' + status / 10 % 10;
    p[11] = '0' + status % 10;
    p[12] = ' ';
    memcpy(p + 13, reason, reason_len);
    p[13 + reason_len] = '\r';
    p[14 + reason_len] = '\n';
    b->len += 15 + reason_len;
}

void gust_http_header_line(gust_buf_t *b, const char *name, size_t nlen,
                           const char *value, size_t vlen) {
    gust_buf_reserve(b, nlen + vlen + 4);
    char *p = b->p + b->len;
    memcpy(p, name, nlen);
    p[nlen] = ':';
    p[nlen + 1] = ' ';
    memcpy(p + nlen + 2, value, vlen);
    p[nlen + 2 + vlen] = '\r';
    p[nlen + 3 + vlen] = '\n';
    b->len += nlen + vlen + 4;
}

void gust_http_date(time_t t, char *out) {
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        gmtime_r(&(time_t){0}, &tm); /* unrepresentable: the epoch, not garbage */
    /* Written by hand: locale-free, and snprintf cannot prove the width. */
    int year = (tm.tm_year + 1900) % 10000;
    memcpy(out, days[tm.tm_wday], 3);
    memcpy(out + 3, ", ", 2);
    out[5] = '0' + tm.tm_mday / 10;
    out[6] = '0' + tm.tm_mday % 10;
    out[7] = ' ';
    memcpy(out + 8, months[tm.tm_mon], 3);
    out[11] = ' ';
    out[12] = '0' + year / 1000;
    out[13] = '0' + year / 100 % 10;
    out[14] = '0' + year / 10 % 10;
    out[15] = '0' + year % 10;
    out[16] = ' ';
    out[17] = '0' + tm.tm_hour / 10;
    out[18] = '0' + tm.tm_hour % 10;
    out[19] = ':';
    out[20] = '0' + tm.tm_min / 10;
    out[21] = '0' + tm.tm_min % 10;
    out[22] = ':';
    out[23] = '0' + tm.tm_sec / 10;
    out[24] = '0' + tm.tm_sec % 10;
    memcpy(out + 25, " GMT", 5);
}

void gust_http_etag(const void *body, size_t len, char out[GUST_ETAG_LEN]) {
    XXH128_hash_t h = XXH3_128bits(body, len);
    gust_http_etag_from_hash(h.high64, h.low64, out);
}

void gust_http_etag_from_hash(uint64_t high, uint64_t low, char out[GUST_ETAG_LEN]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char bytes[16];
    for (int i = 0; i < 8; i++) {
        bytes[i] = (unsigned char)(high >> (56 - 8 * i));
        bytes[8 + i] = (unsigned char)(low >> (56 - 8 * i));
    }
    out[0] = '"';
    for (int i = 0; i < 16; i++) {
        out[1 + 2 * i] = hex[bytes[i] >> 4];
        out[2 + 2 * i] = hex[bytes[i] & 15];
    }
    out[GUST_ETAG_LEN - 1] = '"';
}

static const char *strip_weak(const char *s, size_t *n) {
    if (*n >= 2 && s[0] == 'W' && s[1] == '/') {
        *n -= 2;
        return s + 2;
    }
    return s;
}

int gust_http_etag_matches(const char *inm, size_t inm_len, const char *etag,
                           size_t etag_len) {
    etag = strip_weak(etag, &etag_len);
    size_t i = 0;
    while (i < inm_len) {
        while (i < inm_len && (inm[i] == ' ' || inm[i] == '\t' || inm[i] == ','))
            i++;
        size_t start = i;
        if (i < inm_len && inm[i] == '*')
            return 1;
        if (i + 1 < inm_len && inm[i] == 'W' && inm[i + 1] == '/')
            i += 2;
        if (i < inm_len && inm[i] == '"') {
            const char *q = memchr(inm + i + 1, '"', inm_len - i - 1);
            if (!q)
                return 0;
            size_t n = (size_t)(q - inm) + 1 - start;
            const char *tag = strip_weak(inm + start, &n);
            if (n == etag_len && memcmp(tag, etag, n) == 0)
                return 1;
            i = (size_t)(q - inm) + 1;
        } else {
            while (i < inm_len && inm[i] != ',')
                i++; /* not an entity tag: skip it */
        }
    }
    return 0;
}

size_t gust_http_chunk_header(size_t len, char *out) {
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[len & 15];
        len >>= 4;
    } while (len);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}
