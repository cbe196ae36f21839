/*
 * test_http_response.c -- unit tests for src/core/http_response.c and the
 * gust_buf_t it writes into (src/core/mem.c).
 *
 * The pieces a response is assembled from are checked byte for byte: reason
 * phrases, status and header lines, IMF-fixdates (against the C library's
 * own formatting for a spread of instants), ETags (against xxHash's
 * canonical form), If-None-Match matching and chunk-size lines. Writers are
 * checked not to touch bytes past what they report.
 *
 * The checks come from check.h.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XXH_INLINE_ALL /* as http_response.c does; also exposes XXH3_state_t */
#include <xxhash.h>

#include "http_response.h"
#include "mem.h"

#include "check.h"

/* ---- the tests -------------------------------------------------------- */

static void test_reasons(void) {
    static const struct {
        int status;
        const char *reason;
    } known[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {206, "Partial Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"},
        {422, "Unprocessable Content"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const char *got = gust_http_reason(known[i].status);
        if (got && strcmp(got, known[i].reason) == 0)
            npass++;
        else
            check_fail(__FILE__, __LINE__, "reason %d: \"%s\" != \"%s\"", known[i].status,
                       got ? got : "(null)", known[i].reason);
    }
    static const int unknown[] = {-1,  0,   1,   99,  199, 209, 299,  306,
                                  399, 419, 499, 599, 600, 999, 1000, 20000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        if (gust_http_reason(unknown[i]) == NULL)
            npass++;
        else
            check_fail(__FILE__, __LINE__, "reason %d: \"%s\", want NULL", unknown[i],
                       gust_http_reason(unknown[i]));
    }
    /* Every 1xx-5xx phrase there is: non-empty printable text, no CR/LF. */
    int bad = 0;
    for (int s = 100; s < 600; s++) {
        const char *r = gust_http_reason(s);
        if (!r)
            continue;
        if (!*r || strpbrk(r, "\r\n"))
            bad++;
    }
    CHECK_INT(bad, 0);
}

static void test_status_has_body(void) {
    CHECK(!gust_http_status_has_body(100));
    CHECK(!gust_http_status_has_body(101));
    CHECK(!gust_http_status_has_body(199));
    CHECK(gust_http_status_has_body(200));
    CHECK(!gust_http_status_has_body(204));
    CHECK(gust_http_status_has_body(206));
    CHECK(!gust_http_status_has_body(304));
    CHECK(gust_http_status_has_body(404));
    CHECK(gust_http_status_has_body(500));
}

static void test_status_line(void) {
    char storage[64];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);

    gust_http_status_line(&b, 1, 200, "OK", 2);
    CHECK_SPAN(b.p, b.len, "HTTP/1.1 200 OK\r\n");
    CHECK(b.p == storage);

    b.len = 0;
    gust_http_status_line(&b, 0, 404, "Not Found", 9);
    CHECK_SPAN(b.p, b.len, "HTTP/1.0 404 Not Found\r\n");

    b.len = 0;
    gust_http_status_line(&b, 1, 599, "Custom Thing", 12);
    CHECK_SPAN(b.p, b.len, "HTTP/1.1 599 Custom Thing\r\n");

    b.len = 0; /* an empty reason is allowed: "HTTP/1.1 299 \r\n" */
    gust_http_status_line(&b, 1, 299, "", 0);
    CHECK_SPAN(b.p, b.len, "HTTP/1.1 299 \r\n");

    b.len = 0;
    gust_http_status_line(&b, 1, 100, "Continue", 8);
    CHECK_SPAN(b.p, b.len, "HTTP/1.1 100 Continue\r\n");

    /* Appends: a status line after some bytes, and the reason is taken by
     * length, not up to a NUL. */
    b.len = 0;
    gust_buf_addlit(&b, "xx");
    gust_http_status_line(&b, 1, 201, "Created and more", 7);
    CHECK_SPAN(b.p, b.len, "xxHTTP/1.1 201 Created\r\n");
    gust_buf_free(&b);

    /* A long reason grows the buffer past its fixed storage. */
    char small[8];
    char reason[300];
    memset(reason, 'r', sizeof reason);
    gust_buf_init(&b, small, sizeof small);
    gust_http_status_line(&b, 1, 500, reason, sizeof reason);
    CHECK(b.p != small);
    CHECK_INT(b.len, 15 + sizeof reason);
    CHECK(memcmp(b.p, "HTTP/1.1 500 ", 13) == 0);
    CHECK(memcmp(b.p + 13, reason, sizeof reason) == 0);
    CHECK(memcmp(b.p + 13 + sizeof reason, "\r\n", 2) == 0);
    gust_buf_free(&b);

    /* Every reason phrase through the writer. */
    int bad = 0;
    for (int s = 100; s < 600; s++) {
        const char *r = gust_http_reason(s);
        if (!r)
            continue;
        char want[128];
        int n = snprintf(want, sizeof want, "HTTP/1.1 %d %s\r\n", s, r);
        gust_buf_init(&b, NULL, 0);
        gust_http_status_line(&b, 1, s, r, strlen(r));
        if (b.len != (size_t)n || memcmp(b.p, want, (size_t)n) != 0)
            bad++;
        gust_buf_free(&b);
    }
    CHECK_INT(bad, 0);
}

static void test_header_line(void) {
    char storage[256];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    gust_http_header_line(&b, "Content-Type", 12, "text/html", 9);
    CHECK_SPAN(b.p, b.len, "Content-Type: text/html\r\n");
    gust_http_header_line(&b, "X-Empty", 7, "", 0);
    CHECK_SPAN(b.p, b.len, "Content-Type: text/html\r\nX-Empty: \r\n");
    gust_http_header_line(&b, "Content-Length", 14, "12345", 3);
    CHECK_SPAN(b.p, b.len, "Content-Type: text/html\r\nX-Empty: \r\nContent-Length: 123\r\n");
    gust_buf_free(&b);

    /* Many header lines: the buffer grows and keeps every byte. */
    gust_buf_init(&b, storage, 16);
    for (int i = 0; i < 200; i++)
        gust_http_header_line(&b, "X-Header", 8, "value", 5);
    CHECK(b.p != storage);
    CHECK_INT(b.len, 200 * sizeof("X-Header: value\r\n") - 200);
    int bad = 0;
    for (int i = 0; i < 200; i++)
        bad += memcmp(b.p + i * 17, "X-Header: value\r\n", 17) != 0;
    CHECK_INT(bad, 0);
    gust_buf_free(&b);
}

static void check_date(time_t t, const char *want, int line) {
    char out[GUST_HTTP_DATE_LEN + 8];
    memset(out, '#', sizeof out);
    gust_http_date(t, out);
    if (memcmp(out, want, GUST_HTTP_DATE_LEN) == 0 && out[GUST_HTTP_DATE_LEN] == '\0' &&
        out[GUST_HTTP_DATE_LEN + 1] == '#')
        npass++;
    else
        check_fail(__FILE__, line, "date %lld: \"%.*s\" != \"%s\"", (long long)t,
                   GUST_HTTP_DATE_LEN, out, want);
}

static void test_date(void) {
    CHECK_INT(strlen("Sun, 06 Nov 1994 08:49:37 GMT"), GUST_HTTP_DATE_LEN);
    check_date(784111777, "Sun, 06 Nov 1994 08:49:37 GMT", __LINE__);
    check_date(0, "Thu, 01 Jan 1970 00:00:00 GMT", __LINE__);
    check_date(-1, "Wed, 31 Dec 1969 23:59:59 GMT", __LINE__);
    check_date(951782400, "Tue, 29 Feb 2000 00:00:00 GMT", __LINE__);
    check_date(1234567890, "Fri, 13 Feb 2009 23:31:30 GMT", __LINE__);
    check_date(1709251199, "Thu, 29 Feb 2024 23:59:59 GMT", __LINE__);
    check_date(2147483647, "Tue, 19 Jan 2038 03:14:07 GMT", __LINE__);
    check_date(4102444800, "Fri, 01 Jan 2100 00:00:00 GMT", __LINE__);
    check_date(253402300799, "Fri, 31 Dec 9999 23:59:59 GMT", __LINE__);

    /* A spread of instants across years, months, days and times, against
     * strftime (the "C" locale, which a test program starts in). */
    int bad = 0;
    for (long long t = 0; t < 4200000000LL && bad < 5; t += 86400LL * 13 + 3607) {
        char want[64], got[GUST_HTTP_DATE_LEN + 1];
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        gust_http_date(tt, got);
        if (strcmp(got, want) != 0) {
            check_fail(__FILE__, __LINE__, "date %lld: \"%s\" != \"%s\"", t, got, want);
            bad++;
        }
    }
    if (!bad)
        npass++;
    /* The first and last second of every month of a leap and a plain year. */
    bad = 0;
    for (int year = 2023; year <= 2024; year++) {
        for (int mon = 0; mon < 12; mon++) {
            struct tm tm = {.tm_year = year - 1900, .tm_mon = mon, .tm_mday = 1};
            time_t first = timegm(&tm);
            tm = (struct tm){.tm_year = year - 1900, .tm_mon = mon + 1, .tm_mday = 1};
            time_t last = timegm(&tm) - 1;
            time_t ts[2] = {first, last};
            for (int k = 0; k < 2; k++) {
                char want[64], got[GUST_HTTP_DATE_LEN + 1];
                struct tm g;
                gmtime_r(&ts[k], &g);
                strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &g);
                gust_http_date(ts[k], got);
                if (strcmp(got, want) != 0) {
                    check_fail(__FILE__, __LINE__, "\"%s\" != \"%s\"", got, want);
                    bad++;
                }
            }
        }
    }
    CHECK_INT(bad, 0);
}

static int is_etag(const char *e) {
    if (e[0] != '"' || e[GUST_ETAG_LEN - 1] != '"')
        return 0;
    for (int i = 1; i < GUST_ETAG_LEN - 1; i++)
        if (!((e[i] >= '0' && e[i] <= '9') || (e[i] >= 'a' && e[i] <= 'f')))
            return 0;
    return 1;
}

static void test_etag(void) {
    CHECK_INT(GUST_ETAG_LEN, 34);
    char a[GUST_ETAG_LEN + 1], b[GUST_ETAG_LEN + 1], c[GUST_ETAG_LEN + 1];
    memset(a, '#', sizeof a);
    gust_http_etag("hello world", 11, a);
    CHECK(is_etag(a));
    CHECK(a[GUST_ETAG_LEN] == '#'); /* no NUL written */

    gust_http_etag("hello world", 11, b);
    CHECK(memcmp(a, b, GUST_ETAG_LEN) == 0);
    gust_http_etag("hello worle", 11, c);
    CHECK(is_etag(c));
    CHECK(memcmp(a, c, GUST_ETAG_LEN) != 0);
    gust_http_etag("hello world", 10, c); /* a prefix */
    CHECK(memcmp(a, c, GUST_ETAG_LEN) != 0);

    /* The empty body: XXH3-128 of "" is 99aa06d3014798d86001c324468d497f. */
    gust_http_etag("", 0, c);
    CHECK_SPAN(c, GUST_ETAG_LEN, "\"99aa06d3014798d86001c324468d497f\"");

    /* The digits are xxHash's canonical (big-endian) form of the hash. */
    static const char *bodies[] = {"", "a", "hello world",
                                   "The quick brown fox jumps over the lazy dog"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        size_t len = strlen(bodies[i]);
        XXH128_hash_t h = XXH3_128bits(bodies[i], len);
        XXH128_canonical_t canon;
        XXH128_canonicalFromHash(&canon, h);
        char want[GUST_ETAG_LEN + 1];
        want[0] = '"';
        for (int k = 0; k < 16; k++)
            snprintf(want + 1 + 2 * k, 3, "%02x", canon.digest[k]);
        want[GUST_ETAG_LEN - 1] = '"';
        want[GUST_ETAG_LEN] = '\0';
        gust_http_etag(bodies[i], len, a);
        CHECK_SPAN(a, GUST_ETAG_LEN, want);
        /* _from_hash renders a digest computed in pieces the same way. */
        XXH3_state_t st;
        XXH3_128bits_reset(&st);
        XXH3_128bits_update(&st, bodies[i], len / 2);
        XXH3_128bits_update(&st, bodies[i] + len / 2, len - len / 2);
        XXH128_hash_t hp = XXH3_128bits_digest(&st);
        gust_http_etag_from_hash(hp.high64, hp.low64, b);
        CHECK(memcmp(a, b, GUST_ETAG_LEN) == 0);
    }

    gust_http_etag_from_hash(0x0123456789abcdefULL, 0xfedcba9876543210ULL, a);
    CHECK_SPAN(a, GUST_ETAG_LEN, "\"0123456789abcdeffedcba9876543210\"");
    gust_http_etag_from_hash(0, 0, a);
    CHECK_SPAN(a, GUST_ETAG_LEN, "\"00000000000000000000000000000000\"");
    gust_http_etag_from_hash(UINT64_MAX, UINT64_MAX, a);
    CHECK_SPAN(a, GUST_ETAG_LEN, "\"ffffffffffffffffffffffffffffffff\"");

    /* A large body. */
    size_t n = 1 << 20;
    char *big = malloc(n);
    memset(big, 'x', n);
    gust_http_etag(big, n, a);
    big[n / 2] = 'y';
    gust_http_etag(big, n, b);
    CHECK(is_etag(a) && is_etag(b));
    CHECK(memcmp(a, b, GUST_ETAG_LEN) != 0);
    free(big);
}

static int matches(const char *inm, const char *etag) {
    return gust_http_etag_matches(inm, strlen(inm), etag, strlen(etag));
}

static void test_etag_matches(void) {
    const char *t = "\"abc\"";
    CHECK_INT(matches("\"abc\"", t), 1);
    CHECK_INT(matches("\"xyz\"", t), 0);
    CHECK_INT(matches("*", t), 1);
    CHECK_INT(matches("  *  ", t), 1);
    CHECK_INT(matches("", t), 0);
    CHECK_INT(matches("   ", t), 0);

    /* Lists, with and without spaces, tabs, empty elements. */
    CHECK_INT(matches("\"xyz\", \"abc\"", t), 1);
    CHECK_INT(matches("\"xyz\",\"abc\"", t), 1);
    CHECK_INT(matches("\"abc\", \"xyz\"", t), 1);
    CHECK_INT(matches("\"x\", \"y\", \"z\"", t), 0);
    CHECK_INT(matches("  \"abc\"  ", t), 1);
    CHECK_INT(matches("\t\"abc\"\t", t), 1);
    CHECK_INT(matches(",, \"abc\" ,,", t), 1);
    CHECK_INT(matches("\"xyz\" , \"abc\"", t), 1);

    /* Weak comparison: W/ on either side, or both. */
    CHECK_INT(matches("W/\"abc\"", t), 1);
    CHECK_INT(matches("W/\"abc\"", "W/\"abc\""), 1);
    CHECK_INT(matches("\"abc\"", "W/\"abc\""), 1);
    CHECK_INT(matches("\"xyz\", W/\"abc\"", t), 1);
    CHECK_INT(matches("W/\"xyz\"", t), 0);
    CHECK_INT(matches("w/\"abc\"", t), 0); /* W/ is case-sensitive */

    /* Not the same tag. */
    CHECK_INT(matches("\"ab\"", t), 0);
    CHECK_INT(matches("\"abcd\"", t), 0);
    CHECK_INT(matches("\"ABC\"", t), 0);
    CHECK_INT(matches("abc", t), 0); /* unquoted */
    CHECK_INT(matches("\"\"", t), 0);

    /* Malformed: unterminated quotes, stray W/, junk between. */
    CHECK_INT(matches("\"abc", t), 0);
    CHECK_INT(matches("\"xyz\", \"abc", t), 0);
    CHECK_INT(matches("\"", t), 0);
    CHECK_INT(matches("W/", t), 0);
    CHECK_INT(matches("W", t), 0);
    CHECK_INT(matches("W/abc", t), 0);
    CHECK_INT(matches("junk, \"abc\"", t), 1);
    CHECK_INT(matches("junk \"abc\"", t), 0); /* one malformed element */
    CHECK_INT(matches("\"xyz\"junk, \"abc\"", t), 1);

    /* A comma inside a tag is part of it. */
    CHECK_INT(matches("\"a,b\"", "\"a,b\""), 1);
    CHECK_INT(matches("\"a,b\"", "\"a\""), 0);

    /* Only inm_len bytes are read. */
    CHECK_INT(gust_http_etag_matches("\"abc\"XYZ", 5, t, 5), 1);
    CHECK_INT(gust_http_etag_matches("\"abc\"", 4, t, 5), 0);
    CHECK_INT(gust_http_etag_matches("*", 0, t, 5), 0);
    CHECK_INT(gust_http_etag_matches("\"xyz\", \"abc\"", 6, t, 5), 0);

    /* With a real tag. */
    char e[GUST_ETAG_LEN], inm[128];
    gust_http_etag("body", 4, e);
    int n = snprintf(inm, sizeof inm, "W/\"0000\", %.*s", GUST_ETAG_LEN, e);
    CHECK_INT(gust_http_etag_matches(inm, (size_t)n, e, GUST_ETAG_LEN), 1);
    e[5] ^= 1;
    CHECK_INT(gust_http_etag_matches(inm, (size_t)n, e, GUST_ETAG_LEN), 0);
}

static void check_chunk(size_t len, const char *want, int line) {
    char out[32];
    memset(out, '#', sizeof out);
    size_t n = gust_http_chunk_header(len, out);
    size_t m = strlen(want);
    if (n == m && memcmp(out, want, m) == 0 && out[n] == '#' && n <= 18)
        npass++;
    else
        check_fail(__FILE__, line, "chunk %zu: %zu \"%.*s\" != \"%s\"", len, n,
                   (int)(n < 32 ? n : 32), out, want);
}

static void test_chunk_header(void) {
    check_chunk(0, "0\r\n", __LINE__);
    check_chunk(1, "1\r\n", __LINE__);
    check_chunk(9, "9\r\n", __LINE__);
    check_chunk(10, "a\r\n", __LINE__);
    check_chunk(15, "f\r\n", __LINE__);
    check_chunk(16, "10\r\n", __LINE__);
    check_chunk(255, "ff\r\n", __LINE__);
    check_chunk(256, "100\r\n", __LINE__);
    check_chunk(4096, "1000\r\n", __LINE__);
    check_chunk(65535, "ffff\r\n", __LINE__);
    check_chunk(0xdeadbeef, "deadbeef\r\n", __LINE__);
    if (sizeof(size_t) == 8) {
        check_chunk(SIZE_MAX, "ffffffffffffffff\r\n", __LINE__);
        check_chunk(SIZE_MAX / 2, "7fffffffffffffff\r\n", __LINE__);
        check_chunk(SIZE_MAX - 1, "fffffffffffffffe\r\n", __LINE__);
        check_chunk((size_t)1 << 60, "1000000000000000\r\n", __LINE__);
    }
    /* Against printf for a sweep of sizes. */
    int bad = 0;
    for (size_t len = 0; len < 100000; len += 37) {
        char want[32], out[32];
        int m = snprintf(want, sizeof want, "%zx\r\n", len);
        size_t n = gust_http_chunk_header(len, out);
        bad += n != (size_t)m || memcmp(out, want, n) != 0;
    }
    CHECK_INT(bad, 0);
}

static void test_buf(void) {
    char storage[8];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    CHECK(b.p == storage);
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, sizeof storage);

    gust_buf_add(&b, "abcde", 5);
    CHECK(b.p == storage); /* fits */
    gust_buf_addc(&b, 'f');
    gust_buf_addlit(&b, "gh");
    CHECK(b.p == storage); /* exactly full */
    CHECK_INT(b.len, 8);
    gust_buf_addc(&b, 'i'); /* one past: moves to the heap */
    CHECK(b.p != storage);
    CHECK(b.cap >= 9);
    CHECK_SPAN(b.p, b.len, "abcdefghi");
    gust_buf_add(&b, "0123456789", 10);
    CHECK_SPAN(b.p, b.len, "abcdefghi0123456789");

    /* Keeps growing on the heap. */
    for (int i = 0; i < 10000; i++)
        gust_buf_addc(&b, (char)('a' + i % 26));
    CHECK_INT(b.len, 19 + 10000);
    int bad = 0;
    for (int i = 0; i < 10000; i++)
        bad += b.p[19 + i] != (char)('a' + i % 26);
    CHECK_INT(bad, 0);
    CHECK(memcmp(b.p, "abcdefghi0123456789", 19) == 0);

    gust_buf_reserve(&b, 1 << 20);
    CHECK(b.cap - b.len >= (size_t)1 << 20);
    CHECK_INT(b.len, 19 + 10000);

    /* free goes back to the fixed storage, ready for reuse. */
    gust_buf_free(&b);
    CHECK(b.p == storage);
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, sizeof storage);
    gust_buf_addlit(&b, "again");
    CHECK(b.p == storage);
    CHECK_SPAN(b.p, b.len, "again");
    gust_buf_free(&b);
    gust_buf_free(&b); /* twice is harmless */

    /* No storage at all: heap from the first byte. */
    gust_buf_init(&b, NULL, 0);
    CHECK(b.p == NULL);
    CHECK_INT(b.cap, 0);
    gust_buf_free(&b); /* nothing to free */
    gust_buf_addc(&b, 'x');
    CHECK(b.p != NULL);
    CHECK_SPAN(b.p, b.len, "x");
    gust_buf_add(&b, "", 0);
    CHECK_INT(b.len, 1);
    gust_buf_free(&b);
    CHECK(b.p == NULL);

    /* A reserve that fits does not move the buffer. */
    gust_buf_init(&b, storage, sizeof storage);
    gust_buf_reserve(&b, sizeof storage);
    CHECK(b.p == storage);
    gust_buf_reserve(&b, 0);
    CHECK(b.p == storage);
    gust_buf_free(&b);
}

/* A whole response head, the way conn.c assembles one. */
static void test_response_head(void) {
    char storage[512], date[GUST_HTTP_DATE_LEN + 1];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    gust_http_date(784111777, date);
    const char *reason = gust_http_reason(404);
    gust_http_status_line(&b, 1, 404, reason, strlen(reason));
    gust_http_header_line(&b, "Date", 4, date, GUST_HTTP_DATE_LEN);
    gust_http_header_line(&b, "Content-Length", 14, "0", 1);
    gust_buf_addlit(&b, "\r\n");
    CHECK_SPAN(b.p, b.len,
               "HTTP/1.1 404 Not Found\r\n"
               "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
               "Content-Length: 0\r\n"
               "\r\n");
    gust_buf_free(&b);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0); /* keep the order with stderr */
    RUN(test_reasons);
    RUN(test_status_has_body);
    RUN(test_status_line);
    RUN(test_header_line);
    RUN(test_date);
    RUN(test_etag);
    RUN(test_etag_matches);
    RUN(test_chunk_header);
    RUN(test_buf);
    RUN(test_response_head);
    return check_report("test_http_response");
}
