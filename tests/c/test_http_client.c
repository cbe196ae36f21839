/*
 * test_http_client.c -- unit tests for the HTTP client's response parser
 * (gust_http_reply_t, src/core/http_reply.c): framing by Content-Length,
 * chunks and the close; interim 1xx; HEAD, 204 and 304 without bodies;
 * malformed answers; the header and body limits; gzip decoding with its
 * decoded-size limit. Every response is parsed whole and byte by byte, as
 * the result must not depend on how the bytes arrived. Every reply is freed,
 * so ASan catches leaks.
 *
 * Prints "N passed, N failed" and exits non-zero on any failure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "http_client.h"
#include "mem.h"

#include "check.h"

/* ---- harness --------------------------------------------------------- */

typedef struct body {
    char *p;
    size_t len;
} body_t;

static int collect(void *arg, const char *data, size_t len) {
    body_t *b = arg;
    b->p = gust_realloc(b->p, b->len + len + 1);
    memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = 0;
    return 0;
}

typedef struct opts {
    int head, decompress;
    size_t max_header, max_body;
} opts_t;

static const opts_t DEFAULTS = {0, 1, 65536, 1 << 20};

/* Parses `len` bytes in pieces of `step` (0: whole), then the close when
 * `eof`. Returns the bytes consumed; the reply and body are the caller's. */
static size_t parse(gust_http_reply_t *r, body_t *b, const opts_t *o, const char *data, size_t len,
                    size_t step, int eof) {
    memset(b, 0, sizeof *b);
    gust_http_reply_init(r, o->head, o->decompress, o->max_header, o->max_body, collect, b);
    size_t used = 0;
    if (step == 0)
        step = len;
    while (used < len && !r->complete && !r->failed) {
        size_t n = len - used < step ? len - used : step;
        size_t k = gust_http_reply_feed(r, data + used, n);
        used += k;
        if (k < n)
            break;
    }
    if (eof && !r->failed)
        gust_http_reply_eof(r);
    return used;
}

static void done(gust_http_reply_t *r, body_t *b) {
    gust_http_reply_free(r);
    gust_free(b->p);
}

static const char *header(const gust_http_reply_t *r, const char *name, char *buf) {
    size_t n;
    const char *v = gust_http_reply_header(r, name, &n);
    if (!v)
        return NULL;
    memcpy(buf, v, n);
    buf[n] = 0;
    return buf;
}

/* Checks a response parses the same whole and byte by byte. */
#define BOTH(data, o, eof, body_lit, status_)                                                      \
    do {                                                                                           \
        for (size_t step_ = 0; step_ <= 1; step_++) {                                              \
            gust_http_reply_t rr_;                                                                 \
            body_t bb_;                                                                            \
            parse(&rr_, &bb_, (o), (data), strlen(data), step_, (eof));                            \
            CHECK(rr_.complete);                                                                   \
            CHECK(!rr_.failed);                                                                    \
            CHECK_INT(rr_.status, (status_));                                                      \
            CHECK_STR(bb_.p ? bb_.p : "", (body_lit));                                             \
            done(&rr_, &bb_);                                                                      \
        }                                                                                          \
    } while (0)

/* ---- tests ----------------------------------------------------------- */

static void test_content_length(void) {
    const char *resp = "HTTP/1.1 200 Fine Thanks\r\nContent-Length: 5\r\nX-A: 1\r\n"
                       "X-A: 2\r\n\r\nhelloHTTP/1.1 200 OK\r\n";
    for (size_t step = 0; step <= 1; step++) {
        gust_http_reply_t r;
        body_t b;
        char buf[64];
        size_t used = parse(&r, &b, &DEFAULTS, resp, strlen(resp), step, 0);
        CHECK(r.complete);
        CHECK(r.keep_alive);
        CHECK_INT(used, strlen(resp) - strlen("HTTP/1.1 200 OK\r\n"));
        CHECK_INT(r.status, 200);
        CHECK_INT(r.reason_len, 11);
        CHECK(memcmp(r.arena, "Fine Thanks", 11) == 0);
        CHECK_INT(r.nheaders, 3);
        CHECK_STR(header(&r, "x-a", buf), "2");
        CHECK_STR(header(&r, "content-length", buf), "5");
        CHECK_STR(b.p, "hello");
        done(&r, &b);
    }
}

static void test_chunked(void) {
    BOTH("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n",
         &DEFAULTS, 0, "hello, world", 200);
}

static void test_until_close(void) {
    const char *resp = "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nall of it";
    gust_http_reply_t r;
    body_t b;
    parse(&r, &b, &DEFAULTS, resp, strlen(resp), 0, 0);
    CHECK(!r.complete);
    CHECK(!r.failed);
    CHECK_INT(gust_http_reply_eof(&r), 0);
    CHECK(r.complete);
    CHECK(!r.keep_alive);
    CHECK_STR(b.p, "all of it");
    done(&r, &b);
    BOTH("HTTP/1.0 200 OK\r\n\r\nten bytes!", &DEFAULTS, 1, "ten bytes!", 200);
}

static void test_interim(void) {
    const char *resp = "HTTP/1.1 100 Continue\r\n\r\n"
                       "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                       "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    for (size_t step = 0; step <= 1; step++) {
        gust_http_reply_t r;
        body_t b;
        char buf[64];
        parse(&r, &b, &DEFAULTS, resp, strlen(resp), step, 0);
        CHECK(r.complete);
        CHECK_INT(r.status, 201);
        CHECK(header(&r, "link", buf) == NULL);
        CHECK_INT(r.nheaders, 1);
        CHECK(memcmp(r.arena, "Created", 7) == 0 && r.reason_len == 7);
        CHECK_STR(b.p, "ok");
        done(&r, &b);
    }
}

static void test_no_body(void) {
    opts_t head = DEFAULTS;
    head.head = 1;
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1";
    gust_http_reply_t r;
    body_t b;
    size_t used = parse(&r, &b, &head, resp, strlen(resp), 0, 0);
    CHECK(r.complete);
    CHECK(r.keep_alive);
    CHECK_INT(used, strlen(resp) - 8);
    CHECK(b.p == NULL);
    done(&r, &b);
    BOTH("HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n", &DEFAULTS, 0, "", 304);
    BOTH("HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", &DEFAULTS, 0, "", 204);
    /* and a HEAD answer with chunked framing announced */
    BOTH("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &head, 0, "", 200);
}

static void test_keep_alive(void) {
    const char *cases[] = {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                           "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"};
    for (int i = 0; i < 2; i++) {
        gust_http_reply_t r;
        body_t b;
        parse(&r, &b, &DEFAULTS, cases[i], strlen(cases[i]), 0, 0);
        CHECK(r.complete);
        CHECK(!r.keep_alive);
        done(&r, &b);
    }
    const char *ka = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
    gust_http_reply_t r;
    body_t b;
    parse(&r, &b, &DEFAULTS, ka, strlen(ka), 0, 0);
    CHECK(r.keep_alive);
    done(&r, &b);
}

static void expect_error(const char *resp, const opts_t *o, int eof, const char *prefix) {
    for (size_t step = 0; step <= 1; step++) {
        gust_http_reply_t r;
        body_t b;
        parse(&r, &b, o, resp, strlen(resp), step, eof);
        CHECK(r.failed);
        CHECK(!r.complete);
        if (strncmp(r.error, prefix, strlen(prefix)) != 0)
            check_fail(__FILE__, __LINE__, "error '%s' does not start with '%s'", r.error, prefix);
        else
            npass++;
        done(&r, &b);
    }
}

static void test_malformed(void) {
    expect_error("HTTP/1.1 abc\r\n\r\n", &DEFAULTS, 0, "malformed response: ");
    expect_error("HTTX/1.1 200 OK\r\n\r\n", &DEFAULTS, 0, "malformed response: ");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", &DEFAULTS, 0,
                 "malformed response: ");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &DEFAULTS, 0,
                 "malformed response: ");
    expect_error("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", &DEFAULTS, 0, "malformed response: ");
}

static void test_truncated(void) {
    expect_error("", &DEFAULTS, 1, "connection closed");
    expect_error("HTTP/1.1 200 OK\r\nContent-Len", &DEFAULTS, 1,
                 "connection closed before the response was complete");
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", &DEFAULTS, 1,
                 "connection closed before the response was complete");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", &DEFAULTS, 1,
                 "connection closed before the response was complete");
}

static void test_limits(void) {
    opts_t small = DEFAULTS;
    small.max_body = 10;
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", &small, 0,
                 "body larger than max_body_size");
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
                 &small, 0, "body larger than max_body_size");
    expect_error("HTTP/1.1 200 OK\r\n\r\n0123456789abc", &small, 1,
                 "body larger than max_body_size");
    BOTH("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", &small, 0, "0123456789", 200);
    small.max_header = 64;
    expect_error("HTTP/1.1 200 OK\r\nX-Long: "
                 "012345678901234567890123456789012345678901234567890123456789\r\n\r\n",
                 &small, 0, "malformed response: header section larger than max_header_size");
}

/* gzip-compresses `len` bytes (one member) into a new buffer. */
static char *gzip(const char *data, size_t len, size_t *out_len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, len);
    char *out = gust_malloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

/* A response whose body is `gz` (gz_len bytes), with Content-Length. */
static char *gzip_response(const char *gz, size_t gz_len, size_t *len) {
    char head[128];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n",
                     gz_len);
    char *resp = gust_malloc(n + gz_len);
    memcpy(resp, head, n);
    memcpy(resp + n, gz, gz_len);
    *len = n + gz_len;
    return resp;
}

static void test_gzip(void) {
    size_t plen = 100000, gz_len, len;
    char *plain = gust_malloc(plen + 1);
    for (size_t i = 0; i < plen; i++)
        plain[i] = "gust gzip test "[i % 15];
    plain[plen] = 0;
    char *gz = gzip(plain, plen, &gz_len);
    char *resp = gzip_response(gz, gz_len, &len);
    for (size_t step = 0; step <= 1; step++) {
        gust_http_reply_t r;
        body_t b;
        parse(&r, &b, &DEFAULTS, resp, len, step, 0);
        CHECK(r.complete);
        CHECK(r.gzip);
        CHECK_INT(b.len, plen);
        CHECK(b.p && memcmp(b.p, plain, plen) == 0);
        CHECK_INT(r.wire_body, gz_len);
        done(&r, &b);
    }
    /* decompress off: the bytes as sent */
    opts_t raw = DEFAULTS;
    raw.decompress = 0;
    gust_http_reply_t r;
    body_t b;
    parse(&r, &b, &raw, resp, len, 0, 0);
    CHECK(r.complete);
    CHECK_INT(b.len, gz_len);
    done(&r, &b);
    /* the decoded size is bounded: a small body cannot become a big one */
    opts_t small = DEFAULTS;
    small.max_body = 50000;
    CHECK(gz_len < 50000);
    parse(&r, &b, &small, resp, len, 0, 0);
    CHECK(r.failed);
    CHECK_STR(r.error, "body larger than max_body_size");
    done(&r, &b);
    /* truncated gzip data inside a complete HTTP body */
    gust_free(resp);
    resp = gzip_response(gz, gz_len / 2, &len);
    parse(&r, &b, &DEFAULTS, resp, len, 0, 0);
    CHECK(r.failed);
    CHECK_STR(r.error, "malformed response: gzip: truncated body");
    done(&r, &b);
    /* not gzip at all */
    gust_free(resp);
    resp = gzip_response("not gzip data here", 18, &len);
    parse(&r, &b, &DEFAULTS, resp, len, 0, 0);
    CHECK(r.failed);
    CHECK(strncmp(r.error, "malformed response: gzip: ", 26) == 0);
    done(&r, &b);
    /* two members back to back decode as one body */
    gust_free(resp);
    char *two = gust_malloc(2 * gz_len);
    memcpy(two, gz, gz_len);
    memcpy(two + gz_len, gz, gz_len);
    resp = gzip_response(two, 2 * gz_len, &len);
    parse(&r, &b, &DEFAULTS, resp, len, 0, 0);
    CHECK(r.complete);
    CHECK_INT(b.len, 2 * plen);
    done(&r, &b);
    gust_free(two);
    gust_free(resp);
    gust_free(gz);
    gust_free(plain);
}

static int refuse(void *arg, const char *data, size_t len) {
    gust_http_reply_t *r = arg;
    r->failed = 1;
    snprintf(r->error, sizeof r->error, "refused by callback");
    return -1;
}

static void test_callback_stops(void) {
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    gust_http_reply_t r;
    gust_http_reply_init(&r, 0, 1, 65536, 1 << 20, refuse, NULL);
    r.arg = &r;
    gust_http_reply_feed(&r, resp, strlen(resp));
    CHECK(r.failed);
    CHECK_STR(r.error, "refused by callback");
    gust_http_reply_free(&r);
}

int main(void) {
    RUN(test_content_length);
    RUN(test_chunked);
    RUN(test_until_close);
    RUN(test_interim);
    RUN(test_no_body);
    RUN(test_keep_alive);
    RUN(test_malformed);
    RUN(test_truncated);
    RUN(test_limits);
    RUN(test_gzip);
    RUN(test_callback_stops);
    return check_report("test_http_client");
}
