/*
 * http_response.c -- reason phrases, status lines, dates, ETags, chunks.
 */
#include "http_response.h"

#include <string.h>
#include <strings.h>

#include "gust.h"

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
    case 208: return "Already Reported";
    case 226: return "IM Used";
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
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return NULL;
    }
}

void gust_http_status_line(gust_buf_t *b, int http_minor, int status, const char *reason,
                           size_t reason_len) {
    if (status == 200 && http_minor && reason_len == 2 && memcmp(reason, "OK", 2) == 0) {
        gust_buf_addlit(b, "HTTP/1.1 200 OK\r\n"); /* most of them */
        return;
    }
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

/* The two hex digits of every byte value: one copy per byte of a digest
 * (every GET answer carries an ETag). */
static const char hex_pairs[513] = "000102030405060708090a0b0c0d0e0f"
                                   "101112131415161718191a1b1c1d1e1f"
                                   "202122232425262728292a2b2c2d2e2f"
                                   "303132333435363738393a3b3c3d3e3f"
                                   "404142434445464748494a4b4c4d4e4f"
                                   "505152535455565758595a5b5c5d5e5f"
                                   "606162636465666768696a6b6c6d6e6f"
                                   "707172737475767778797a7b7c7d7e7f"
                                   "808182838485868788898a8b8c8d8e8f"
                                   "909192939495969798999a9b9c9d9e9f"
                                   "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
                                   "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
                                   "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
                                   "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                                   "e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
                                   "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

void gust_http_etag_from_hash(uint64_t high, uint64_t low, char out[GUST_ETAG_LEN]) {
    out[0] = '"';
    for (int i = 0; i < 8; i++) {
        memcpy(out + 1 + 2 * i, hex_pairs + 2 * ((high >> (56 - 8 * i)) & 0xff), 2);
        memcpy(out + 17 + 2 * i, hex_pairs + 2 * ((low >> (56 - 8 * i)) & 0xff), 2);
    }
    out[GUST_ETAG_LEN - 1] = '"';
}

/* The decimal digits of n into out (room for 20); returns how many. What
 * snprintf("%llu") writes, without its format parsing on every response. */
static size_t put_decimal(unsigned long long n, char *out) {
    char tmp[20];
    size_t len = 0;
    do {
        tmp[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (size_t i = 0; i < len; i++)
        out[i] = tmp[len - 1 - i];
    return len;
}

static const char *strip_weak(const char *s, size_t *n) {
    if (*n >= 2 && s[0] == 'W' && s[1] == '/') {
        *n -= 2;
        return s + 2;
    }
    return s;
}

int gust_http_etag_matches(const char *inm, size_t inm_len, const char *etag, size_t etag_len) {
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

/* ---- response heads ------------------------------------------------- */

static const char server_header[] = "Server: gust/" GUST_VERSION "\r\n";

void gust_http_head_init(gust_http_head_t *h, int status, const char *reason, size_t reason_len) {
    h->status = status;
    if (!reason) {
        reason = gust_http_reason(status);
        if (!reason)
            reason = "Unknown";
        reason_len = strlen(reason);
    }
    h->reason = reason;
    h->reason_len = reason_len;
    h->close = h->has_ct = h->has_server = h->has_date = 0;
    h->user_length = h->etag = NULL;
    h->user_length_len = h->etag_len = 0;
    gust_buf_init(&h->hdrs, h->storage, sizeof h->storage);
}

void gust_http_head_free(gust_http_head_t *h) { gust_buf_free(&h->hdrs); }

static int name_is(const char *name, size_t n, const char *lit, size_t litlen) {
    return n == litlen && strncasecmp(name, lit, n) == 0;
}

/* Bytes allowed in a header name (RFC 9110 tchar: 1) and value (all but
 * CR, LF and NUL: 2), one table lookup per byte on the response path. */
static const unsigned char header_byte[256] = {
    [' '] = 2,         ['!'] = 3,         ['"'] = 2,         ['#'] = 3,         ['$'] = 3,
    ['%'] = 3,         ['&'] = 3,         ['\''] = 3,        ['('] = 2,         [')'] = 2,
    ['*'] = 3,         ['+'] = 3,         [','] = 2,         ['-'] = 3,         ['.'] = 3,
    ['/'] = 2,         ['0' ... '9'] = 3, [':' ... '@'] = 2, ['A' ... 'Z'] = 3, ['['] = 2,
    ['\\'] = 2,        [']'] = 2,         ['^'] = 3,         ['_'] = 3,         ['`'] = 3,
    ['a' ... 'z'] = 3, ['{'] = 2,         ['|'] = 3,         ['}'] = 2,         ['~'] = 3,
    [1 ... 9] = 2,     [11 ... 12] = 2,   [14 ... 31] = 2,   [127 ... 255] = 2};

int gust_http_head_add(gust_http_head_t *h, const char *name, size_t n, const char *v,
                       size_t vlen) {
    unsigned char ok = n ? 1 : 0;
    for (size_t i = 0; i < n; i++)
        ok &= header_byte[(unsigned char)name[i]];
    for (size_t i = 0; i < vlen; i++)
        ok &= header_byte[(unsigned char)v[i]] >> 1;
    if (!ok)
        return -1;
    switch (n) {
    case 4:
        if (name_is(name, n, "Date", 4))
            h->has_date = 1;
        else if (name_is(name, n, "Etag", 4)) {
            h->etag = v;
            h->etag_len = vlen;
        }
        break;
    case 6: h->has_server |= name_is(name, n, "Server", 6); break;
    case 10:
        if (name_is(name, n, "Connection", 10)) {
            if (vlen == 5 && strncasecmp(v, "close", 5) == 0)
                h->close = 1;
            return 0; /* connection management is the core's */
        }
        break;
    case 12: h->has_ct |= name_is(name, n, "Content-Type", 12); break;
    case 14:
        if (name_is(name, n, "Content-Length", 14)) {
            /* Framing is ours: a wrong length would break the stream. A
             * HEAD answer has no body to get wrong, so its handler may say. */
            h->user_length = v;
            h->user_length_len = vlen;
            return 0;
        }
        break;
    case 17:
        if (name_is(name, n, "Transfer-Encoding", 17))
            return 0;
        break;
    }
    gust_http_header_line(&h->hdrs, name, n, v, vlen);
    return 0;
}

void gust_http_head_write(const gust_http_head_t *h, const gust_http_head_frame_t *f,
                          gust_buf_t *out) {
    gust_http_status_line(out, f->http_minor, h->status, h->reason, h->reason_len);
    if (!h->has_server)
        gust_buf_add(out, server_header, sizeof server_header - 1);
    if (!h->has_date)
        gust_http_header_line(out, "Date", 4, f->date, GUST_HTTP_DATE_LEN);
    int has_body = gust_http_status_has_body(h->status);
    if (!h->has_ct && has_body)
        gust_buf_addlit(out, "Content-Type: text/html; charset=UTF-8\r\n");
    if (f->chunked) {
        gust_buf_addlit(out, "Transfer-Encoding: chunked\r\n");
    } else if (h->user_length && f->is_head) {
        gust_http_header_line(out, "Content-Length", 14, h->user_length, h->user_length_len);
    } else if (f->content_length >= 0 && has_body) {
        char num[24];
        size_t n = put_decimal((unsigned long long)f->content_length, num);
        gust_http_header_line(out, "Content-Length", 14, num, n);
    }
    if (!f->keep_alive && f->http_minor)
        gust_buf_addlit(out, "Connection: close\r\n");
    else if (f->keep_alive && !f->http_minor)
        gust_buf_addlit(out, "Connection: keep-alive\r\n");
    gust_buf_add(out, h->hdrs.p, h->hdrs.len);
    gust_buf_addlit(out, "\r\n");
}
