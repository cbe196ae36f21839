/*
 * test_http_parser.c -- unit tests for the llhttp glue in src/core/http_parser.c.
 *
 * Every request is parsed whole and again in pieces (byte by byte, and cut
 * at every position), because llhttp hands over the URL, names, values and
 * body in as many spans as there were reads, and the result must not depend
 * on how the bytes arrived. The limit tests check the status a request gets
 * and that nothing is buffered past a limit. Run under ASan, every
 * gust_http_request_t is freed so that leaks fail the build.
 *
 * The checks come from check.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parser.h"
#include "log.h"
#include "mem.h"

#include "check.h"

/* ---- helpers ---------------------------------------------------------- */

static const gust_http_limits_t big_limits = {65536, 1 << 20};
static const gust_http_limits_t small_limits = {256, 16};

#define LIT(s) s, sizeof(s) - 1

static const char *header(const gust_http_request_t *r, const char *lname, size_t *n) {
    *n = 0;
    return gust_http_request_header(r, lname, n);
}

/*
 * Feeds data in pieces of `step` bytes (0: all at once) until the request is
 * complete or rejected, checking that feed never claims more than it was
 * given. Returns the bytes consumed.
 */
static size_t feed_steps(gust_http_request_t *r, const char *data, size_t len, size_t step) {
    size_t off = 0;
    while (off < len && !r->complete && !r->status) {
        size_t n = step && step < len - off ? step : len - off;
        size_t used = gust_http_request_feed(r, data + off, n);
        if (used > n) {
            check_fail(__FILE__, __LINE__, "feed consumed %zu of %zu bytes", used, n);
            break;
        }
        off += used;
        if (used < n)
            break; /* stopped at a message boundary */
    }
    return off;
}

/* The same, with the input cut once at `cut`. */
static size_t feed_cut(gust_http_request_t *r, const char *data, size_t len, size_t cut) {
    size_t used = gust_http_request_feed(r, data, cut);
    if (used > cut) {
        check_fail(__FILE__, __LINE__, "feed consumed %zu of %zu bytes", used, cut);
        return used;
    }
    if (used < cut || r->complete || r->status)
        return used;
    return used + feed_steps(r, data + cut, len - cut, 0);
}

static void append(char *out, size_t cap, const char *fmt, ...) {
    size_t n = strlen(out);
    if (n >= cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, cap - n, fmt, ap);
    va_end(ap);
}

/* Everything a handler could see of a request, as one comparable string. */
static void summarize(const gust_http_request_t *r, char *out, size_t cap) {
    out[0] = '\0';
    append(out, cap, "status=%d complete=%d", r->status, r->complete);
    if (r->headers_done)
        append(out, cap, " method=%d minor=%d expect=%d upgrade=%d", r->method, r->http_minor,
               r->expect_continue, r->upgrade);
    if (r->complete)
        append(out, cap, " keep_alive=%d", r->keep_alive);
    append(out, cap, " url=[%.*s]", (int)r->url_len, r->url_len ? r->arena : "");
    for (unsigned i = 0; i < r->nheaders; i++) {
        const gust_http_header_t *h = &r->headers[i];
        append(out, cap, " [%.*s]=[%.*s]", (int)h->name_len, r->arena + h->name, (int)h->value_len,
               r->arena + h->value);
    }
    /* How much of the body was taken before a rejection depends on where
     * the reads fell; only that it stayed within the limit matters. */
    if (!r->status)
        append(out, cap, " body=[%.*s]", (int)r->body_len, r->body_len ? r->body : "");
    else if (r->body_len > r->limits->max_body_size)
        append(out, cap, " body over the limit (%zu)", r->body_len);
}

/* Parses `s` whole, then byte by byte and cut at every position, and checks
 * that every way gives the same request and consumes the same bytes. */
static void check_split_invariant(const char *s, size_t len, const gust_http_limits_t *lim) {
    gust_http_request_t r;
    char want[8192], got[8192];
    gust_http_request_init(&r, lim);
    size_t want_used = feed_steps(&r, s, len, 0);
    summarize(&r, want, sizeof want);
    gust_http_request_free(&r);

    gust_http_request_init(&r, lim);
    size_t used = feed_steps(&r, s, len, 1);
    summarize(&r, got, sizeof got);
    int status = r.status;
    gust_http_request_free(&r);
    CHECK_STR(got, want);
    if (!status) /* after an error the rest counts as consumed anyway */
        CHECK_INT(used, want_used);

    int bad = 0;
    for (size_t cut = 0; cut <= len && !bad; cut++) {
        gust_http_request_init(&r, lim);
        used = feed_cut(&r, s, len, cut);
        summarize(&r, got, sizeof got);
        status = r.status;
        gust_http_request_free(&r);
        if (strcmp(got, want) != 0 || (!status && used != want_used)) {
            check_fail(__FILE__, __LINE__, "cut at %zu:\n  got  %s\n  want %s", cut, got, want);
            bad = 1;
        }
    }
    if (!bad)
        npass++;
}

/*
 * Parses a stream of pipelined requests the way conn.c does: bytes arrive
 * `step` at a time (0: all at once); feed until a request is complete,
 * record it, reset(r, 0) and go on with the unconsumed bytes. Writes one
 * summary per request, separated by newlines, into out.
 */
static void parse_stream(const char *data, size_t len, size_t step, const gust_http_limits_t *lim,
                         char *out, size_t cap) {
    gust_http_request_t r;
    gust_http_request_init(&r, lim);
    out[0] = '\0';
    size_t off = 0, received = 0;
    int guard = 0;
    while (off < len && guard++ < 100000) {
        if (off == received)
            received = step && step < len - received ? received + step : len;
        size_t avail = received - off;
        size_t used = gust_http_request_feed(&r, data + off, avail);
        if (used > avail) {
            check_fail(__FILE__, __LINE__, "feed consumed %zu of %zu bytes", used, avail);
            break;
        }
        off += used;
        if (r.status || r.complete) {
            char one[4096];
            summarize(&r, one, sizeof one);
            append(out, cap, "%s\n", one);
            if (r.status || r.upgrade || !r.keep_alive)
                break;
            gust_http_request_reset(&r, 0);
        } else if (used < avail) {
            check_fail(__FILE__, __LINE__, "feed stopped at %zu of %zu, not complete", used, avail);
            break;
        }
    }
    gust_http_request_free(&r);
}

/* ---- the tests -------------------------------------------------------- */

static void test_simple_get(void) {
    static const char req[] = "GET /path/to?q=1&r=%20 HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "X-Custom-HEADER: Value With Spaces\r\n"
                              "Accept: */*\r\n"
                              "\r\n";
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    size_t used = gust_http_request_feed(&r, LIT(req));
    CHECK_INT(used, sizeof req - 1);
    CHECK_INT(r.status, 0);
    CHECK(r.error == NULL);
    CHECK(r.begun);
    CHECK(r.headers_done);
    CHECK(r.complete);
    CHECK_INT(r.method, HTTP_GET);
    CHECK_INT(r.http_minor, 1);
    CHECK(r.keep_alive);
    CHECK(!r.expect_continue);
    CHECK(!r.upgrade);
    CHECK_SPAN(gust_http_request_url(&r), r.url_len, "/path/to?q=1&r=%20");
    CHECK_INT(r.nheaders, 3);
    if (r.nheaders == 3) {
        static const char *names[] = {"host", "x-custom-header", "accept"};
        static const char *values[] = {"example.com", "Value With Spaces", "*/*"};
        for (int i = 0; i < 3; i++) {
            const gust_http_header_t *h = &r.headers[i];
            CHECK_SPAN(r.arena + h->name, h->name_len, names[i]);
            CHECK_SPAN(r.arena + h->value, h->value_len, values[i]);
        }
    }
    CHECK_INT(r.body_len, 0);
    /* A finished request takes nothing more until it is reset. */
    CHECK_INT(gust_http_request_feed(&r, LIT("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), 0);
    gust_http_request_free(&r);
}

static void test_methods(void) {
    static const struct {
        const char *req;
        int method;
    } cases[] = {
        {"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_HEAD},
        {"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", HTTP_PUT},
        {"DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_DELETE},
        {"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_OPTIONS},
        {"PATCH /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", HTTP_PATCH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gust_http_request_t r;
        gust_http_request_init(&r, &big_limits);
        size_t len = strlen(cases[i].req);
        CHECK_INT(gust_http_request_feed(&r, cases[i].req, len), len);
        CHECK(r.complete);
        CHECK_INT(r.method, cases[i].method);
        gust_http_request_free(&r);
    }
}

static void test_byte_by_byte(void) {
    static const char get[] = "GET /some/long/path?with=query&and=more HTTP/1.1\r\n"
                              "Host: example.com:8080\r\n"
                              "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
                              "ACCEPT-Encoding: gzip, deflate\r\n"
                              "X-Empty:\r\n"
                              "Cookie: a=1; b=2\r\n"
                              "\r\n";
    check_split_invariant(LIT(get), &big_limits);

    /* The byte-by-byte parse sees the same names, lower-cased piecewise. */
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(feed_steps(&r, LIT(get), 1), sizeof get - 1);
    CHECK(r.complete);
    size_t n;
    const char *v = header(&r, "accept-encoding", &n);
    CHECK_SPAN(v, n, "gzip, deflate");
    v = header(&r, "x-empty", &n);
    CHECK(v != NULL);
    CHECK_INT(n, 0);
    v = header(&r, "user-agent", &n);
    CHECK_SPAN(v, n, "Mozilla/5.0 (X11; Linux x86_64)");
    gust_http_request_free(&r);
}

static void test_pipelined(void) {
    static const char two[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /b HTTP/1.1\r\nHost: y\r\n\r\n";
    const size_t first = sizeof "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" - 1;
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    size_t used = gust_http_request_feed(&r, LIT(two));
    CHECK_INT(used, first);
    CHECK(r.complete);
    CHECK_SPAN(gust_http_request_url(&r), r.url_len, "/a");
    size_t n;
    const char *v = header(&r, "host", &n);
    CHECK_SPAN(v, n, "x");
    /* Nothing more until the first is reset. */
    CHECK_INT(gust_http_request_feed(&r, two + used, sizeof two - 1 - used), 0);

    gust_http_request_reset(&r, 0);
    CHECK(!r.complete);
    CHECK_INT(r.nheaders, 0);
    CHECK_INT(r.url_len, 0);
    size_t rest = sizeof two - 1 - used;
    CHECK_INT(gust_http_request_feed(&r, two + used, rest), rest);
    CHECK(r.complete);
    CHECK_INT(r.status, 0);
    CHECK_SPAN(gust_http_request_url(&r), r.url_len, "/b");
    v = header(&r, "host", &n);
    CHECK_SPAN(v, n, "y");
    CHECK_INT(r.nheaders, 1);
    gust_http_request_free(&r);
}

static void test_pipelined_stream(void) {
    /* Three requests, the middle one with a body, one chunked; with a blank
     * line between two of them, which llhttp skips. */
    static const char three[] =
        "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
        "POST /two HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n\r\nhello"
        "\r\n"
        "PUT /three HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\n\r\n";
    char want[8192], got[8192];
    parse_stream(LIT(three), 0, &big_limits, want, sizeof want);
    CHECK(strstr(want, "url=[/one]") != NULL);
    CHECK(strstr(want, "url=[/two] [host]=[b] [content-length]=[5] body=[hello]") != NULL);
    CHECK(strstr(want, "url=[/three] [host]=[c] [transfer-encoding]=[chunked] "
                       "body=[abc]") != NULL);
    int bad = 0;
    for (size_t step = 1; step <= sizeof three && !bad; step++) {
        parse_stream(LIT(three), step, &big_limits, got, sizeof got);
        if (strcmp(got, want) != 0) {
            check_fail(__FILE__, __LINE__, "step %zu:\n got\n%s want\n%s", step, got, want);
            bad = 1;
        }
    }
    if (!bad)
        npass++;
}

static void test_post_content_length(void) {
    static const char req[] = "POST /form HTTP/1.1\r\n"
                              "Host: x\r\n"
                              "Content-Type: application/x-www-form-urlencoded\r\n"
                              "Content-Length: 11\r\n"
                              "\r\n"
                              "hello world";
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(gust_http_request_feed(&r, LIT(req)), sizeof req - 1);
    CHECK(r.complete);
    CHECK_INT(r.method, HTTP_POST);
    CHECK_SPAN(r.body, r.body_len, "hello world");
    gust_http_request_free(&r);

    /* Headers first, the body later: headers_done before complete. */
    gust_http_request_init(&r, &big_limits);
    size_t head = sizeof req - 1 - 11;
    CHECK_INT(gust_http_request_feed(&r, req, head), head);
    CHECK(r.headers_done);
    CHECK(!r.complete);
    CHECK_INT(gust_http_request_feed(&r, req + head, 11), 11);
    CHECK(r.complete);
    CHECK_SPAN(r.body, r.body_len, "hello world");
    gust_http_request_free(&r);

    check_split_invariant(LIT(req), &big_limits);
}

static void test_chunked(void) {
    static const char req[] = "POST /up HTTP/1.1\r\n"
                              "Host: x\r\n"
                              "Transfer-Encoding: chunked\r\n"
                              "\r\n"
                              "5\r\nhello\r\n"
                              "1;ext=1\r\n \r\n"
                              "A\r\n0123456789\r\n"
                              "0\r\n"
                              "\r\n";
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(gust_http_request_feed(&r, LIT(req)), sizeof req - 1);
    CHECK_INT(r.status, 0);
    CHECK(r.complete);
    CHECK(r.keep_alive);
    CHECK_SPAN(r.body, r.body_len, "hello 0123456789");
    gust_http_request_free(&r);

    check_split_invariant(LIT(req), &big_limits);
}

static void test_body_at_limit(void) {
    /* small_limits: 16 body bytes; exactly 16 is fine both ways. */
    static const char cl[] =
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n0123456789abcdef";
    static const char ch[] = "POST / HTTP/1.1\r\nHost: x\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"
                             "8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n";
    gust_http_request_t r;
    gust_http_request_init(&r, &small_limits);
    CHECK_INT(feed_steps(&r, LIT(cl), 0), sizeof cl - 1);
    CHECK_INT(r.status, 0);
    CHECK(r.complete);
    CHECK_INT(r.body_len, 16);
    gust_http_request_free(&r);

    gust_http_request_init(&r, &small_limits);
    CHECK_INT(feed_steps(&r, LIT(ch), 0), sizeof ch - 1);
    CHECK_INT(r.status, 0);
    CHECK(r.complete);
    CHECK_SPAN(r.body, r.body_len, "0123456789abcdef");
    gust_http_request_free(&r);
}

static void test_content_length_over_limit(void) {
    /* Only the headers: the 413 is decided before any body byte arrives. */
    static const char req[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n";
    gust_http_request_t r;
    gust_http_request_init(&r, &small_limits);
    CHECK_INT(gust_http_request_feed(&r, LIT(req)), sizeof req - 1);
    CHECK_INT(r.status, 413);
    CHECK(r.error != NULL);
    CHECK(r.headers_done);
    CHECK(!r.complete);
    CHECK_INT(r.body_len, 0);
    CHECK(r.body == NULL);
    /* A rejected request takes no more bytes. */
    CHECK_INT(gust_http_request_feed(&r, LIT("0123456789abcdefg")), 0);
    CHECK_INT(r.body_len, 0);
    gust_http_request_free(&r);

    /* A huge declared length, with Expect: still 413, no 100 Continue. */
    static const char huge[] = "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                               "Content-Length: 99999999999\r\n\r\n";
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(gust_http_request_feed(&r, LIT(huge)), sizeof huge - 1);
    CHECK_INT(r.status, 413);
    CHECK(!r.expect_continue);
    CHECK(r.body == NULL);
    gust_http_request_free(&r);

    check_split_invariant(LIT(req), &small_limits);
}

static void test_chunked_over_limit(void) {
    static const char req[] = "POST / HTTP/1.1\r\nHost: x\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "8\r\n01234567\r\n9\r\n89abcdefg\r\n0\r\n\r\n";
    gust_http_request_t r;
    gust_http_request_init(&r, &small_limits);
    feed_steps(&r, LIT(req), 0);
    CHECK_INT(r.status, 413);
    CHECK(!r.complete);
    CHECK(r.body_len <= small_limits.max_body_size);
    gust_http_request_free(&r);

    /* One chunk declaring far more than the limit: 413 once bytes pass it,
     * never a buffer of the declared size. */
    static const char one[] = "POST / HTTP/1.1\r\nHost: x\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "FFFFFFFF\r\n0123456789abcdefXYZ";
    gust_http_request_init(&r, &small_limits);
    feed_steps(&r, LIT(one), 0);
    CHECK_INT(r.status, 413);
    CHECK(r.body_len <= small_limits.max_body_size);
    CHECK(r.body_cap <= 4096);
    gust_http_request_free(&r);

    check_split_invariant(LIT(req), &small_limits);
}

static void test_header_section_too_large(void) {
    char buf[4096];
    gust_http_request_t r;

    /* Many small headers: each fits, together they do not (256 bytes). */
    size_t n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "X-%02d: v\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n");
    gust_http_request_init(&r, &small_limits);
    CHECK_INT(gust_http_request_feed(&r, buf, n), n);
    CHECK_INT(r.status, 431);
    CHECK(r.error != NULL);
    CHECK(!r.complete);
    CHECK(r.arena_len <= small_limits.max_header_size);
    CHECK(r.nheaders < 40);
    gust_http_request_free(&r);
    check_split_invariant(buf, n, &small_limits);

    /* One huge value. */
    n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(buf + n, 'v', 300);
    n += 300;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n\r\n");
    gust_http_request_init(&r, &small_limits);
    CHECK_INT(gust_http_request_feed(&r, buf, n), n);
    CHECK_INT(r.status, 431);
    CHECK(r.arena_len <= small_limits.max_header_size);
    gust_http_request_free(&r);
    gust_http_request_init(&r, &small_limits);
    feed_steps(&r, buf, n, 1);
    CHECK_INT(r.status, 431);
    CHECK(r.arena_len <= small_limits.max_header_size);
    gust_http_request_free(&r);

    /* A huge URL. */
    n = (size_t)snprintf(buf, sizeof buf, "GET /");
    memset(buf + n, 'u', 300);
    n += 300;
    n += (size_t)snprintf(buf + n, sizeof buf - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    gust_http_request_init(&r, &small_limits);
    CHECK_INT(gust_http_request_feed(&r, buf, n), n);
    CHECK_INT(r.status, 431);
    CHECK(r.arena_len <= small_limits.max_header_size);
    gust_http_request_free(&r);
    gust_http_request_init(&r, &small_limits);
    feed_steps(&r, buf, n, 1);
    CHECK_INT(r.status, 431);
    gust_http_request_free(&r);

    /* Around the limit, the outcome does not depend on the split: sweep the
     * value length across it. */
    int saw_ok = 0, saw_431 = 0;
    for (size_t vlen = 180; vlen < 260; vlen++) {
        n = (size_t)snprintf(buf, sizeof buf, "GET /abc HTTP/1.1\r\nHost: h\r\nX-V: ");
        memset(buf + n, 'v', vlen);
        n += vlen;
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n\r\n");
        int st[2];
        for (int step = 0; step < 2; step++) {
            gust_http_request_init(&r, &small_limits);
            feed_steps(&r, buf, n, (size_t)step);
            st[step] = r.status;
            if (r.status == 0 && !r.complete)
                check_fail(__FILE__, __LINE__, "vlen %zu: neither complete nor rejected", vlen);
            gust_http_request_free(&r);
        }
        if (st[0] != st[1])
            check_fail(__FILE__, __LINE__, "vlen %zu: whole %d, byte by byte %d", vlen, st[0],
                       st[1]);
        saw_ok |= st[0] == 0;
        saw_431 |= st[0] == 431;
    }
    CHECK(saw_ok);
    CHECK(saw_431);
}

static void test_too_many_headers(void) {
    char buf[8192];
    gust_http_request_t r;
    for (int count = GUST_MAX_HEADERS; count <= GUST_MAX_HEADERS + 1; count++) {
        size_t n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: x\r\n");
        for (int i = 1; i < count; i++) /* Host is the first of `count` */
            n += (size_t)snprintf(buf + n, sizeof buf - n, "H%d: %d\r\n", i, i);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n");
        gust_http_request_init(&r, &big_limits);
        CHECK_INT(gust_http_request_feed(&r, buf, n), n);
        if (count == GUST_MAX_HEADERS) {
            CHECK_INT(r.status, 0);
            CHECK(r.complete);
            CHECK_INT(r.nheaders, GUST_MAX_HEADERS);
            size_t vlen;
            const char *v = header(&r, "h99", &vlen);
            CHECK_SPAN(v, vlen, "99");
        } else {
            CHECK_INT(r.status, 431);
            CHECK(!r.complete);
            CHECK(r.nheaders <= GUST_MAX_HEADERS);
        }
        gust_http_request_free(&r);
    }
}

static void expect_status(const char *req, size_t len, int status, int line) {
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    size_t used = gust_http_request_feed(&r, req, len);
    if (used == len && r.status == status && r.error && !r.complete) {
        npass++;
    } else {
        check_fail(__FILE__, line, "expected %d for \"%.*s\": used %zu/%zu status %d complete %d",
                   status, (int)len, req, used, len, r.status, r.complete);
    }
    gust_http_request_free(&r);
    /* ... and the same when the bytes come one at a time. */
    gust_http_request_init(&r, &big_limits);
    feed_steps(&r, req, len, 1);
    if (r.status == status)
        npass++;
    else
        check_fail(__FILE__, line, "expected %d byte by byte for \"%.*s\": status %d", status,
                   (int)len, req, r.status);
    gust_http_request_free(&r);
}

#define EXPECT_STATUS(s, status) expect_status(s, sizeof(s) - 1, status, __LINE__)

/* expect_status() for each request of a list, and every split of it agrees. */
static void expect_every_way(const char *const *reqs, size_t n, int status, int line) {
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(reqs[i]);
        expect_status(reqs[i], len, status, line);
        check_split_invariant(reqs[i], len, &big_limits);
    }
}
#define EXPECT_EVERY_WAY(list, status)                                                             \
    expect_every_way(list, sizeof list / sizeof list[0], status, __LINE__)
#define EXPECT_400(s) EXPECT_STATUS(s, 400)

/* Parses a request that must be complete and checks that its host header is
 * `want` (NULL: none), and that every split of the bytes agrees. */
static void expect_host(const char *req, const char *want, int line) {
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    size_t len = strlen(req);
    size_t used = gust_http_request_feed(&r, req, len);
    size_t n = 0;
    const char *v = r.complete ? gust_http_request_header(&r, "host", &n) : NULL;
    if (used == len && !r.status && r.complete &&
        (want ? v && n == strlen(want) && memcmp(v, want, n) == 0 : v == NULL))
        npass++;
    else
        check_fail(__FILE__, line, "\"%s\": status %d complete %d host [%.*s], want [%s]", req,
                   r.status, r.complete, v ? (int)n : 6, v ? v : "(none)", want ? want : "(none)");
    gust_http_request_free(&r);
    check_split_invariant(req, len, &big_limits);
}

#define CHECK_HOST(req, want) expect_host(req, want, __LINE__)

static void test_smuggling(void) {
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\n"
               "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n");
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\n"
               "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n");
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\n"
               "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n");
    /* A Transfer-Encoding other than chunked last cannot be framed. */
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc");
}

/* Chunk data must be followed by CRLF; llhttp 8 only skips two bytes, so
 * the parser checks them itself, also when they arrive separately. */
static void test_chunk_crlf(void) {
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\n"
               "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n");
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n5\r\nworldXX0\r\n\r\n");
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\rX5\r\nworld\r\n0\r\n\r\n");
    static const char good[] = "POST / HTTP/1.1\r\nHost: x\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"
                               "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    for (size_t step = 1; step <= sizeof good; step++) {
        gust_http_request_t r;
        gust_http_request_init(&r, &big_limits);
        feed_steps(&r, good, sizeof good - 1, step);
        CHECK_INT(r.status, 0);
        CHECK(r.complete);
        CHECK_SPAN(r.body, r.body_len, "hello world");
        gust_http_request_free(&r);
    }
}

/* Names must be non-empty tokens; versions other than 1.x are refused. */
static void test_names_and_versions(void) {
    EXPECT_400("GET / HTTP/1.1\r\nHost: x\r\n: novalue\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1\r\nHost: x\r\n: novalue\r\n\r\n");
    EXPECT_400("GET /hello\r\n\r\n");
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT("GET / HTTP/2.0\r\nHost: x\r\n\r\n"));
    CHECK_INT(r.status, 505);
    gust_http_request_free(&r);
}

/* RFC 9110 §9.1, §15.6.2: a method that is a token but not one llhttp knows
 * is 501; one with characters a token may not have, or a request line that
 * is not one, stays 400. llhttp stops at the first unknown byte, so the rest
 * of the line may still be on its way. */
static void test_unknown_method(void) {
    static const char *const unknown[] = {
        "FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
        "QUERY /search HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "GETX / HTTP/1.1\r\nHost: x\r\n\r\n", /* a known prefix */
        "POSTAL / HTTP/1.1\r\nHost: x\r\n\r\n",
        "get / HTTP/1.1\r\nHost: x\r\n\r\n",      /* methods are case-sensitive */
        "DESCRIBE / HTTP/1.1\r\nHost: x\r\n\r\n", /* RTSP's, not HTTP's */
        "X!#$%&'*+-.^_`|~09az / HTTP/1.1\r\n\r\n",
        "FOO * HTTP/1.1\r\n\r\n",
        "FOO http://a.example/p?q HTTP/1.0\r\n\r\n",
        "FOO / HTTP/1.1\r\nthe headers are not read\r\n\r\n",
        "\r\n\r\nFOO / HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    EXPECT_EVERY_WAY(unknown, 501);
    static const char *const invalid[] = {
        "G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
        "(FOO) / HTTP/1.1\r\nHost: x\r\n\r\n",
        "FO\"O / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n",
        " FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
        "\x80"
        "FOO / HTTP/1.1\r\n\r\n",
        "FOO\r\n\r\n",
        "FOO /\r\n\r\n", /* HTTP/0.9 */
        "FOO  / HTTP/1.1\r\n\r\n",
        "FOO /a b HTTP/1.1\r\n\r\n",
        "FOO /\ta HTTP/1.1\r\n\r\n",
        "FOO / HTTP/1.1 \r\n\r\n",
        "FOO / HTTX/1.1\r\n\r\n",
        "FOO / http/1.1\r\n\r\n",
        "FOO / HTTP/11\r\n\r\n",
        "FOO / HTTP/1.1\n\n",
        "FOO / HTTP/1.1\rX\n",
        "DESCRIBE / HTTP/x.1\r\n\r\n",
        "\r\n@GET / HTTP/1.1\r\n\r\n",
    };
    EXPECT_EVERY_WAY(invalid, 400);

    /* Until the line is complete the request is neither taken nor refused,
     * and every byte counts as used. */
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(gust_http_request_feed(&r, LIT("FOO / HT")), 8);
    CHECK(r.begun);
    CHECK_INT(r.status, 0);
    CHECK(!r.complete);
    CHECK_INT(gust_http_request_feed(&r, LIT("TP/1.1\r")), 7);
    CHECK_INT(r.status, 0);
    CHECK_INT(gust_http_request_feed(&r, LIT("\nHost: x\r\n\r\n")), 12);
    CHECK_INT(r.status, 501);
    CHECK_STR(r.error, "unknown method");
    CHECK(!r.complete && !r.headers_done);
    CHECK_INT(gust_http_request_feed(&r, LIT("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), 0);
    gust_http_request_free(&r);

    /* A known method of a later request is not taken for an unknown one. */
    static const char two[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nFOO /b HTTP/1.1\r\n\r\n";
    for (size_t step = 0; step <= 2; step++) {
        char out[4096];
        parse_stream(LIT(two), step, &big_limits, out, sizeof out);
        CHECK(strstr(out, "status=0 complete=1") != NULL);
        CHECK(strstr(out, "status=501") != NULL);
    }

    /* The line counts against the header limit while it is read. */
    char buf[512];
    int n = snprintf(buf, sizeof buf, "FOO /%0300d HTTP/1.1\r\n\r\n", 0);
    for (size_t step = 0; step <= 1; step++) {
        gust_http_request_init(&r, &small_limits);
        feed_steps(&r, buf, (size_t)n, step);
        CHECK_INT(r.status, 431);
        gust_http_request_free(&r);
    }

    /* Methods llhttp knows go on to the handler (which may answer 405). */
    CHECK_HOST("PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n", "x");
    CHECK_HOST("M-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n", "x");
}

static void test_bad_content_length(void) {
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n");
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n");
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\n"
               "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nab");
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\n"
               "Content-Length: 99999999999999999999999\r\n\r\n");
}

static void test_garbage(void) {
    EXPECT_400("HELLO\r\n\r\n");
    EXPECT_400("GET\r\n\r\n");
    EXPECT_400("GET / FTP/1.1\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1 junk\r\n\r\n");
    EXPECT_400("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"); /* a TLS hello */
    EXPECT_400("GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n");
    /* RFC 9112 §5.1: whitespace inside a field name or before the colon
     * MUST be rejected with 400 (llhttp only does so for the fields it
     * interprets, so "Host : x" would be a header named "host "). */
    EXPECT_400("GET / HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1\r\nHost : x\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n");
    EXPECT_400("POST / HTTP/1.1\r\nHost: x\r\n"
               "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n"
               "0\r\n\r\n");
    EXPECT_400("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n");
    /* After a 400, nothing more is parsed. */
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT("HELLO\r\n\r\n"));
    CHECK_INT(r.status, 400);
    CHECK_INT(gust_http_request_feed(&r, LIT("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), 0);
    CHECK_INT(r.status, 400);
    gust_http_request_free(&r);
}

/* llhttp 8 also takes RTSP and ICE request lines; only HTTP is served. */
static void test_not_http(void) {
    static const char *const lines[] = {
        "GET / RTSP/1.0\r\nHost: x\r\n\r\n",
        "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        "SOURCE /mount ICE/1.0\r\nHost: x\r\n\r\n",
    };
    EXPECT_EVERY_WAY(lines, 400);
    /* After an HTTP request on the same connection, in pieces of any size:
     * the protocol's bytes may come before the piece that holds the version. */
    static const char two[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /b RTSP/1.0\r\nHost: x\r\n\r\n";
    char got[8192];
    int bad = 0;
    for (size_t step = 0; step <= sizeof two && !bad; step++) {
        parse_stream(LIT(two), step, &big_limits, got, sizeof got);
        if (!strstr(got, "status=0 complete=1") || !strstr(got, "\nstatus=400 complete=0")) {
            check_fail(__FILE__, __LINE__, "step %zu:\n%s", step, got);
            bad = 1;
        }
    }
    if (!bad)
        npass++;
    static const char http[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /b HTTP/1.0\r\n\r\n";
    for (size_t step = 0; step <= sizeof http && !bad; step++) {
        parse_stream(LIT(http), step, &big_limits, got, sizeof got);
        if (strstr(got, "status=400")) {
            check_fail(__FILE__, __LINE__, "step %zu:\n%s", step, got);
            bad = 1;
        }
    }
    if (!bad)
        npass++;
}

static int parse_keep_alive(const char *req, int *minor) {
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    size_t len = strlen(req);
    size_t used = gust_http_request_feed(&r, req, len);
    int ka = r.complete && used == len && !r.status ? r.keep_alive : -1;
    *minor = r.http_minor;
    gust_http_request_free(&r);
    return ka;
}

static void test_keep_alive(void) {
    int minor;
    CHECK_INT(parse_keep_alive("GET / HTTP/1.0\r\n\r\n", &minor), 0);
    CHECK_INT(minor, 0);
    CHECK_INT(parse_keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &minor), 1);
    CHECK_INT(parse_keep_alive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &minor), 1);
    CHECK_INT(parse_keep_alive("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &minor), 1);
    CHECK_INT(minor, 1);
    CHECK_INT(parse_keep_alive("GET / HTTP/1.1\r\nHost: x\r\n"
                               "Connection: close\r\n\r\n",
                               &minor),
              0);
    CHECK_INT(parse_keep_alive("GET / HTTP/1.1\r\nHost: x\r\n"
                               "Connection: Close\r\n\r\n",
                               &minor),
              0);
    CHECK_INT(parse_keep_alive("GET / HTTP/1.1\r\nHost: x\r\n"
                               "Connection: keep-alive, close\r\n\r\n",
                               &minor),
              0);
    /* RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
     * framing; the server closes after it (or rejects it: -1). */
    CHECK(parse_keep_alive("POST / HTTP/1.0\r\nConnection: keep-alive\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
                           &minor) != 1);
}

static void test_expect(void) {
    static const char req[] = "PUT /f HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                              "Content-Length: 3\r\n\r\n";
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(gust_http_request_feed(&r, LIT(req)), sizeof req - 1);
    CHECK_INT(r.status, 0);
    CHECK(r.headers_done);
    CHECK(!r.complete);
    CHECK(r.expect_continue); /* known before the body, to answer 100 */
    CHECK_INT(gust_http_request_feed(&r, LIT("abc")), 3);
    CHECK(r.complete);
    CHECK(r.expect_continue);
    CHECK_SPAN(r.body, r.body_len, "abc");
    gust_http_request_free(&r);

    /* Case does not matter. */
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n"
                                   "Content-Length: 1\r\n\r\n"));
    CHECK_INT(r.status, 0);
    CHECK(r.expect_continue);
    gust_http_request_free(&r);

    /* An HTTP/1.0 client cannot be sent a 100. */
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n"
                                   "Content-Length: 1\r\n\r\n"));
    CHECK_INT(r.status, 0);
    CHECK(!r.expect_continue);
    gust_http_request_free(&r);

    /* Anything else is 417. */
    static const char *unknown[] = {
        "PUT / HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 1\r\n\r\n",
        "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continuex\r\nContent-Length: 1\r\n\r\n",
        "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100\r\nContent-Length: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nExpect:\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        gust_http_request_init(&r, &big_limits);
        size_t len = strlen(unknown[i]);
        CHECK_INT(gust_http_request_feed(&r, unknown[i], len), len);
        CHECK_INT(r.status, 417);
        CHECK(!r.expect_continue);
        CHECK(r.error != NULL);
        gust_http_request_free(&r);
    }
}

/* RFC 9110 §5.5: a field value does not include leading or trailing
 * whitespace. llhttp drops the leading OWS but passes the trailing one. */
static void test_value_whitespace(void) {
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT("GET / HTTP/1.1\r\nHost:   example.com \t \r\n"
                                   "X-A:\t v \r\n\r\n"));
    CHECK(r.complete);
    size_t n;
    const char *v = header(&r, "host", &n);
    CHECK_SPAN(v, n, "example.com");
    v = header(&r, "x-a", &n);
    CHECK_SPAN(v, n, "v");
    gust_http_request_free(&r);

    /* So "Expect: 100-continue " is the 100-continue expectation, not 417. */
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue \r\n"
                                   "Content-Length: 1\r\n\r\n"));
    CHECK_INT(r.status, 0);
    CHECK(r.expect_continue);
    gust_http_request_free(&r);
}

/* RFC 9112 §5.2: obs-fold is refused (llhttp 8 would join the lines), for
 * any field, also the framing ones, and whichever way the bytes arrive. */
static void test_obs_fold(void) {
    static const char *const folded[] = {
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tfolded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: a \r\n  \t folded\r\nX-B: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n folded\r\n\r\n", /* empty first line */
        "GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n \r\n\r\n",       /* folded to nothing */
        "GET / HTTP/1.1\r\nHost:\r\n x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n c\r\n\r\n",
        /* whitespace before the first field line (§2.2) */
        "GET / HTTP/1.1\r\n Host: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\tHost: x\r\n\r\n",
        /* the framing fields: a proxy that does not fold sees other ones */
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\t, identity\r\n"
        "\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n \r\n\r\nabc",
    };
    for (size_t i = 0; i < sizeof folded / sizeof folded[0]; i++) {
        size_t len = strlen(folded[i]);
        expect_status(folded[i], len, 400, __LINE__);
        check_split_invariant(folded[i], len, &big_limits);
        gust_http_request_t r;
        gust_http_request_init(&r, &big_limits);
        gust_http_request_feed(&r, folded[i], len);
        CHECK_STR(r.error, "obs-fold in the header section");
        gust_http_request_free(&r);
    }

    /* Errors before the fold still decide the status. */
    EXPECT_STATUS("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505);
    {
        gust_http_request_t r;
        gust_http_request_init(&r, &small_limits);
        char buf[512];
        int n =
            snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: x\r\nX-A: %0300d\r\n b\r\n\r\n", 0);
        feed_steps(&r, buf, (size_t)n, 0);
        CHECK_INT(r.status, 431);
        gust_http_request_free(&r);
    }

    /* Whitespace inside values, and CRLF + SP in a body, are not folds. */
    CHECK_HOST("GET / HTTP/1.1\r\nHost: x\r\nX-A: a \t b\r\n\r\n", "x");
    static const char body[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n"
                               "a\r\n b\n";
    check_split_invariant(LIT(body), &big_limits);
    static const char chunked[] = "POST / HTTP/1.1\r\nHost: x\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n"
                                  "4\r\n\r\n b\r\n0\r\n\r\n";
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(feed_steps(&r, LIT(chunked), 1), sizeof chunked - 1);
    CHECK(r.complete);
    CHECK_SPAN(r.body, r.body_len, "\r\n b");
    gust_http_request_free(&r);

    /* The scan starts again with each request of a pipeline. */
    static const char two[] = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n\n x"
                              "\r\nGET /b HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n";
    for (size_t step = 0; step <= 3; step++) {
        char out[4096];
        parse_stream(LIT(two), step, &big_limits, out, sizeof out);
        CHECK(strstr(out, "complete=1") != NULL && strstr(out, "body=[\n x]") != NULL);
        CHECK(strstr(out, "status=400") != NULL);
    }
}

static void test_upgrade(void) {
    static const char head[] = "GET /ws HTTP/1.1\r\n"
                               "Host: x\r\n"
                               "Connection: Upgrade\r\n"
                               "Upgrade: websocket\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "\r\n";
    /* ...followed by a WebSocket frame that is not HTTP at all. */
    char buf[256];
    memcpy(buf, head, sizeof head - 1);
    memcpy(buf + sizeof head - 1, "\x81\x85\x01\x02\x03\x04hello", 11);
    size_t len = sizeof head - 1 + 11;

    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    size_t used = gust_http_request_feed(&r, buf, len);
    CHECK_INT(used, sizeof head - 1);
    CHECK_INT(r.status, 0);
    CHECK(r.complete);
    CHECK(r.upgrade);
    CHECK(!r.keep_alive);
    CHECK_SPAN(gust_http_request_url(&r), r.url_len, "/ws");
    size_t n;
    const char *v = header(&r, "upgrade", &n);
    CHECK_SPAN(v, n, "websocket");
    gust_http_request_free(&r);

    /* Byte by byte, it stops at the same place. */
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(feed_steps(&r, buf, len, 1), sizeof head - 1);
    CHECK(r.complete);
    CHECK(r.upgrade);
    CHECK(!r.keep_alive);
    gust_http_request_free(&r);

    /* CONNECT is an upgrade too. */
    gust_http_request_init(&r, &big_limits);
    static const char conn[] = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    CHECK_INT(gust_http_request_feed(&r, LIT(conn)), sizeof conn - 1);
    CHECK(r.complete);
    CHECK(r.upgrade);
    CHECK(!r.keep_alive);
    CHECK_INT(r.method, HTTP_CONNECT);
    gust_http_request_free(&r);
}

/*
 * After an Upgrade the bytes belong to another protocol. A caller that
 * resets and feeds again (a generic pipelining loop, the fuzzer) must not be
 * told it consumed more than it passed, nor be handed a second, empty
 * "complete" request that consumed nothing (which loops forever).
 */
static void test_upgrade_then_reset(void) {
    static const char req[] = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                              "Upgrade: websocket\r\n\r\n";
    char tail1[16] = "\x81\x80zzzzzzzzzzzz", tail2[16] = "\x81\x80yyyyyyyyyyyy";
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(gust_http_request_feed(&r, LIT(req)), sizeof req - 1);
    CHECK(r.complete && r.upgrade);
    gust_http_request_reset(&r, 0);
    size_t used = gust_http_request_feed(&r, tail1, sizeof tail1);
    CHECK(used <= sizeof tail1);
    CHECK(!(r.complete && !r.begun)); /* no phantom request */
    gust_http_request_reset(&r, 0);
    /* A later read lands in another buffer: the count must be relative to it. */
    used = gust_http_request_feed(&r, tail2, sizeof tail2);
    CHECK(used <= sizeof tail2);
    CHECK(!(r.complete && !r.begun));
    gust_http_request_free(&r);
}

/* Trailer fields of a chunked body must not pass for header fields
 * (RFC 9110 §6.5.1): a trailer "Host" must not replace the real one. */
static void test_trailers_not_headers(void) {
    static const char req[] = "POST / HTTP/1.1\r\nHost: good.example\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "1\r\na\r\n0\r\nHost: evil.example\r\nX-Trailer: t\r\n\r\n";
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(gust_http_request_feed(&r, LIT(req)), sizeof req - 1);
    CHECK(r.complete);
    CHECK_INT(r.status, 0);
    CHECK_SPAN(r.body, r.body_len, "a");
    size_t n;
    const char *v = header(&r, "host", &n);
    CHECK_SPAN(v, n, "good.example");
    gust_http_request_free(&r);
}

/* RFC 9112 §3.2: one Host header in HTTP/1.1, never two; an absolute-form
 * target's authority is the host (§3.2.2), whatever the header says. */
static void test_host(void) {
    CHECK_HOST("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example");
    CHECK_HOST("GET / HTTP/1.0\r\n\r\n", NULL);        /* HTTP/1.0 may omit it */
    CHECK_HOST("GET / HTTP/1.1\r\nHost:\r\n\r\n", ""); /* empty is allowed */

    EXPECT_400("GET / HTTP/1.1\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1\r\nX-Host: a\r\nHostname: b\r\n\r\n");
    EXPECT_400("OPTIONS * HTTP/1.1\r\n\r\n");
    EXPECT_400("CONNECT a.example:443 HTTP/1.1\r\n\r\n");
    EXPECT_400("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    EXPECT_400("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\nhOST: a\r\n\r\n");
    EXPECT_400("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
    /* A value that is no host (§3.2): 400, whatever the target says. */
    CHECK_HOST("GET / HTTP/1.1\r\nHost: a-b_c.example~1:8080\r\n\r\n", "a-b_c.example~1:8080");
    CHECK_HOST("GET / HTTP/1.1\r\nHost: [2001:db8::1]:81\r\n\r\n", "[2001:db8::1]:81");
    CHECK_HOST("GET / HTTP/1.1\r\nHost: xn--bcher-kva.example\r\n\r\n", "xn--bcher-kva.example");
    /* Every byte host_bytes lets through, and each other printable one refused. */
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                  "-._~%!$&'()*+,;=:[]";
    char req[256], bad[128];
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", allowed);
    CHECK_HOST(req, allowed);
    for (int c = '!'; c <= '~'; c++) {
        if (strchr(allowed, c))
            continue;
        snprintf(bad, sizeof bad, "GET / HTTP/1.1\r\nHost: a%cb\r\n\r\n", c);
        expect_status(bad, strlen(bad), 400, __LINE__);
    }
    EXPECT_400("GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n");
    EXPECT_400("GET / HTTP/1.1\r\nHost: b\xc3\xbc"
               "cher.example\r\n\r\n");
    EXPECT_400("GET http://a.example/ HTTP/1.1\r\nHost: a b\r\n\r\n");
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
    CHECK_INT(r.status, 400);
    CHECK_STR(r.error, "no Host header");
    gust_http_request_free(&r);

    /* Absolute form: the authority (host and port) wins over the header,
     * and stands in for it in HTTP/1.0, which may omit it (HTTP/1.1 may
     * not, §3.2). The target stays as sent. */
    CHECK_HOST("GET http://a.example:81/p?q=1 HTTP/1.1\r\nHost: b.example\r\n\r\n", "a.example:81");
    CHECK_HOST("GET http://a.example/p HTTP/1.1\r\nHost: b.example\r\n\r\n", "a.example");
    CHECK_HOST("GET http://a.example:81/p HTTP/1.1\r\nHost: a.example:81\r\n\r\n", "a.example:81");
    CHECK_HOST("GET http://a.example HTTP/1.0\r\n\r\n", "a.example");
    CHECK_HOST("GET https://a.example?x=1 HTTP/1.1\r\nHost: b\r\n\r\n", "a.example");
    CHECK_HOST("GET http://[::1]:8080/x HTTP/1.0\r\nX-A: b\r\n\r\n", "[::1]:8080");
    EXPECT_400("GET http://a.example/p HTTP/1.1\r\n\r\n");
    CHECK_HOST("GET http://a.example/p HTTP/1.0\r\nHost: b.example\r\n\r\n", "a.example");
    CHECK_HOST("GET http://a.example/p HTTP/1.0\r\n\r\n", "a.example");
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT("GET http://a.example:81/p?q HTTP/1.1\r\n"
                                   "X-A: 1\r\nHost: b.example\r\nX-B: 2\r\n\r\n"));
    CHECK(r.complete);
    CHECK_SPAN(gust_http_request_url(&r), r.url_len, "http://a.example:81/p?q");
    CHECK_INT(r.nheaders, 3);
    CHECK_SPAN(r.arena + r.headers[1].name, r.headers[1].name_len, "host");
    CHECK_SPAN(r.arena + r.headers[1].value, r.headers[1].value_len, "a.example:81");
    size_t n;
    CHECK_SPAN(header(&r, "x-b", &n), n, "2");
    gust_http_request_free(&r);
    /* With none sent, "host" comes last. */
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT("GET http://a.example/ HTTP/1.0\r\nX-A: 1\r\n\r\n"));
    CHECK(r.complete);
    CHECK_INT(r.nheaders, 2);
    CHECK_SPAN(r.arena + r.headers[1].name, r.headers[1].name_len, "host");
    CHECK_SPAN(r.arena + r.headers[1].value, r.headers[1].value_len, "a.example");
    gust_http_request_free(&r);

    /* Still at most one Host header; no userinfo, no empty host. */
    EXPECT_400("GET http://a.example/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n");
    EXPECT_400("GET http://user@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    EXPECT_400("GET http://user:pw@a.example/ HTTP/1.1\r\n\r\n");
    EXPECT_400("GET http:///p HTTP/1.1\r\nHost: a.example\r\n\r\n");
    EXPECT_400("GET http://:80/p HTTP/1.1\r\nHost: a.example\r\n\r\n");

    /* The Host the URI adds counts like one the client sent. */
    char buf[8192];
    size_t len = (size_t)snprintf(buf, sizeof buf, "GET http://a.example/ HTTP/1.0\r\n");
    for (int i = 0; i < GUST_MAX_HEADERS; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "H%d: %d\r\n", i, i);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "\r\n");
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(gust_http_request_feed(&r, buf, len), len);
    CHECK_INT(r.status, 431);
    CHECK(r.nheaders <= GUST_MAX_HEADERS);
    gust_http_request_free(&r);
}

static void test_header_lookup(void) {
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n"
                              "X-Dup: first\r\n"
                              "Other: o\r\n"
                              "x-DUP: second\r\n"
                              "Empty:\r\n"
                              "\r\n";
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT(req));
    CHECK(r.complete);
    size_t n;
    const char *v = header(&r, "x-dup", &n);
    CHECK_SPAN(v, n, "second"); /* the last one wins */
    v = header(&r, "other", &n);
    CHECK_SPAN(v, n, "o");
    v = header(&r, "empty", &n);
    CHECK(v != NULL);
    CHECK_INT(n, 0);
    CHECK(header(&r, "missing", &n) == NULL);
    CHECK(header(&r, "x-du", &n) == NULL);   /* a prefix is not a match */
    CHECK(header(&r, "x-dupe", &n) == NULL); /* nor a longer name */
    CHECK(header(&r, "", &n) == NULL);
    gust_http_request_free(&r);

    /* No headers at all. */
    gust_http_request_init(&r, &big_limits);
    CHECK(header(&r, "host", &n) == NULL);
    gust_http_request_feed(&r, LIT("GET / HTTP/1.0\r\n\r\n"));
    CHECK(r.complete);
    CHECK(header(&r, "host", &n) == NULL);
    gust_http_request_free(&r);
}

static void test_reset(void) {
    static const char req[] = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody";
    gust_http_request_t r;
    gust_http_request_init(&r, &big_limits);
    gust_http_request_feed(&r, LIT(req));
    CHECK(r.complete);
    CHECK(r.arena && r.headers && r.body);

    /* reset(r, 0) keeps small buffers for the next request. */
    gust_http_request_reset(&r, 0);
    CHECK(r.arena != NULL && r.arena_cap > 0);
    CHECK(r.headers != NULL && r.headers_cap > 0);
    CHECK(r.body != NULL && r.body_cap > 0);
    CHECK_INT(r.arena_len, 0);
    CHECK_INT(r.url_len, 0);
    CHECK_INT(r.nheaders, 0);
    CHECK_INT(r.body_len, 0);
    CHECK(!r.complete && !r.begun && !r.headers_done && !r.keep_alive);

    gust_http_request_feed(&r, LIT(req));
    CHECK(r.complete);
    CHECK_SPAN(r.body, r.body_len, "body");

    /* reset(r, 1) releases everything. */
    gust_http_request_reset(&r, 1);
    CHECK(r.arena == NULL);
    CHECK(r.headers == NULL);
    CHECK(r.body == NULL);
    CHECK_INT(r.arena_cap, 0);
    CHECK_INT(r.headers_cap, 0);
    CHECK_INT(r.body_cap, 0);
    CHECK_INT(r.arena_len + r.body_len + r.nheaders + r.url_len, 0);

    /* ... and the parser still works afterwards. */
    gust_http_request_feed(&r, LIT(req));
    CHECK(r.complete);
    CHECK_SPAN(gust_http_request_url(&r), r.url_len, "/x");
    CHECK_SPAN(r.body, r.body_len, "body");
    gust_http_request_free(&r);

    /* reset(r, 0) drops buffers that grew large. */
    size_t blen = 20000;
    char *big = malloc(64 + blen);
    int n = snprintf(big, 64,
                     "POST / HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     blen);
    memset(big + n, 'b', blen);
    gust_http_request_init(&r, &big_limits);
    CHECK_INT(gust_http_request_feed(&r, big, (size_t)n + blen), (size_t)n + blen);
    CHECK(r.complete);
    CHECK_INT(r.body_len, blen);
    gust_http_request_reset(&r, 0);
    CHECK(r.body == NULL);
    CHECK_INT(r.body_cap, 0);
    gust_http_request_free(&r);
    free(big);
}

static void test_free(void) {
    /* Free in every state: fresh, mid-headers, mid-body, rejected, done. */
    static const char *inputs[] = {
        "",
        "GET /partial HTTP/1.1\r\nHost: ",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "BAD\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        gust_http_request_t r;
        gust_http_request_init(&r, &big_limits);
        gust_http_request_feed(&r, inputs[i], strlen(inputs[i]));
        gust_http_request_free(&r);
        CHECK(r.arena == NULL && r.headers == NULL && r.body == NULL);
        gust_http_request_free(&r); /* twice is harmless */
    }
}

static void test_recycle(void) {
    /* A parser left in any state (as a connection that closed leaves it)
     * parses the next connection's request as a fresh one would, under the
     * new limits, keeping its small buffers. */
    static const char *inputs[] = {
        "",
        "GET /partial HTTP/1.1\r\nHost: ",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "BAD\r\n\r\n",
        "FOO / HTTP/1.1\r\n", /* an unknown method: 501 */
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nxx",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    static const char next[] = "POST /next HTTP/1.0\r\nContent-Length: 20\r\n\r\n"
                               "01234567890123456789";
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        gust_http_request_t r;
        gust_http_request_init(&r, &big_limits);
        gust_http_request_feed(&r, inputs[i], strlen(inputs[i]));
        char *arena = r.arena;
        gust_http_request_recycle(&r, &small_limits);
        CHECK(r.arena == arena); /* kept for reuse */
        CHECK(r.limits == &small_limits);
        CHECK_INT(gust_http_request_feed(&r, LIT(next)), sizeof next - 1);
        CHECK_INT(r.status, 413); /* small_limits: 16 body bytes */
        gust_http_request_recycle(&r, &big_limits);
        CHECK_INT(gust_http_request_feed(&r, LIT(next)), sizeof next - 1);
        CHECK_INT(r.status, 0);
        CHECK(r.complete && !r.keep_alive && r.http_minor == 0 && r.method == HTTP_POST);
        CHECK_SPAN(gust_http_request_url(&r), r.url_len, "/next");
        CHECK_SPAN(r.body, r.body_len, "01234567890123456789");
        gust_http_request_free(&r);
    }
}

/* ---- log escaping (log.c) ---------------------------------------------
 * Here until log.c has a test program of its own (tests/c/test_log.c needs
 * a line in CMakeLists.txt): it is what request text goes through on its
 * way into a log line. */

#define ESCAPED(in, want) check_escaped(in, sizeof(in) - 1, want, __LINE__)

static void check_escaped(const char *in, size_t n, const char *want, int line) {
    char out[512];
    memset(out, '#', sizeof out);
    size_t len = gust_log_escape(in, n, out, sizeof out);
    if (len == strlen(want) && strcmp(out, want) == 0)
        npass++;
    else
        check_fail(__FILE__, line, "escaped to \"%s\" (%zu), want \"%s\"", out, len, want);
}

/* Undoes the escaping; returns the length, or -1 for a byte that should
 * have been escaped or a broken escape. */
static int unescape(const char *s, char *out) {
    int n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == '"')
            return -1;
        if (c == '\\') {
            unsigned v;
            if (s[1] != 'x' || !s[2] || !s[3] || sscanf(s + 2, "%2x", &v) != 1)
                return -1;
            out[n++] = (char)v;
            s += 3;
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

static void test_log_escape(void) {
    ESCAPED("/a/b?c=d&e=%20", "/a/b?c=d&e=%20"); /* printable ASCII as it is */
    ESCAPED("", "");
    ESCAPED("a b", "a b");
    ESCAPED("\r\n\t\x1b[31mred\x7f", "\\x0d\\x0a\\x09\\x1b[31mred\\x7f");
    ESCAPED("a\"b\\c", "a\\x22b\\x5cc"); /* cannot close a quoted field */
    ESCAPED("\xc3\xa9", "\xc3\xa9");     /* UTF-8 stays readable */
    ESCAPED("a\0b", "a\\x00b");
    /* A request target that tries to forge a second access-log line. */
    ESCAPED("/x HTTP/1.1\" 200 5 0.10ms\n10.0.0.1 \"GET /admin",
            "/x HTTP/1.1\\x22 200 5 0.10ms\\x0a10.0.0.1 \\x22GET /admin");

    /* Every byte value: no control byte, '"' or lone '\\' is left, it
     * decodes back to the input, and GUST_LOG_ESCAPED_MAX is enough. */
    char all[256], out[GUST_LOG_ESCAPED_MAX(256)], back[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)(255 - i);
    size_t len = gust_log_escape(all, sizeof all, out, sizeof out);
    CHECK_INT(len, strlen(out));
    CHECK(strstr(out, "...") == NULL);
    CHECK_INT(unescape(out, back), 256);
    CHECK(memcmp(back, all, sizeof all) == 0);

    /* Too long: cut between escapes, never inside one, and marked. */
    char small[8];
    CHECK_INT(gust_log_escape(LIT("abcdefgh"), small, sizeof small), 7);
    CHECK_STR(small, "abcd...");
    CHECK_INT(gust_log_escape(LIT("abcdefg"), small, sizeof small), 7); /* fits exactly */
    CHECK_STR(small, "abcdefg");
    CHECK_INT(gust_log_escape(LIT("\x01\x02\x03"), small, sizeof small), 7);
    CHECK_STR(small, "\\x01...");
    CHECK_INT(gust_log_escape(LIT("a\x01\x02"), small, sizeof small), 4);
    CHECK_STR(small, "a...");
    for (size_t cap = 1; cap <= 24; cap++) {
        char buf[24];
        memset(buf, '#', sizeof buf);
        size_t n = gust_log_escape(LIT("ab\ncd\"ef\x7fgh"), buf, cap);
        CHECK(n < cap && buf[n] == '\0');
        CHECK(memchr(buf, '#', n) == NULL);
        if (cap < sizeof buf)
            CHECK(buf[cap] == '#'); /* nothing written past outlen */
        char copy[24];
        strcpy(copy, buf);
        char *dots = strstr(copy, "...");
        if (dots)
            *dots = '\0';
        else
            CHECK(strcmp(copy, "ab\\x0acd\\x22ef\\x7fgh") == 0 || n < 3);
        CHECK(unescape(copy, back) >= 0 || n < 3); /* no escape left half */
    }
    char one = '#';
    CHECK_INT(gust_log_escape(LIT("abc"), &one, 0), 0);
    CHECK(one == '#'); /* outlen 0: nothing written */
    CHECK_INT(gust_log_escape(LIT("abc"), &one, 1), 0);
    CHECK(one == '\0');
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0); /* keep the order with stderr */
    RUN(test_simple_get);
    RUN(test_methods);
    RUN(test_byte_by_byte);
    RUN(test_pipelined);
    RUN(test_pipelined_stream);
    RUN(test_post_content_length);
    RUN(test_chunked);
    RUN(test_body_at_limit);
    RUN(test_content_length_over_limit);
    RUN(test_chunked_over_limit);
    RUN(test_header_section_too_large);
    RUN(test_too_many_headers);
    RUN(test_smuggling);
    RUN(test_unknown_method);
    RUN(test_bad_content_length);
    RUN(test_not_http);
    RUN(test_garbage);
    RUN(test_keep_alive);
    RUN(test_expect);
    RUN(test_value_whitespace);
    RUN(test_obs_fold);
    RUN(test_chunk_crlf);
    RUN(test_names_and_versions);
    RUN(test_upgrade);
    RUN(test_upgrade_then_reset);
    RUN(test_trailers_not_headers);
    RUN(test_host);
    RUN(test_header_lookup);
    RUN(test_reset);
    RUN(test_free);
    RUN(test_recycle);
    RUN(test_log_escape);
    return check_report("test_http_parser");
}
