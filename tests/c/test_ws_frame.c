/*
 * test_ws_frame.c -- unit tests for the WebSocket codec in src/core/ws_frame.c.
 *
 * Every input is parsed whole, byte by byte and cut at every position (up to
 * a size), and the events must not depend on how the bytes arrived. The
 * RFC 6455 5.7 and RFC 7692 7.2.3 examples are checked byte for byte; every
 * close-code path (1002 protocol errors, 1007 bad UTF-8, 1009 too big, the
 * valid and invalid codes of a peer's close frame) has a case. Run under
 * ASan, every codec is freed so leaks fail the build.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mem.h"
#include "ws_frame.h"

/* ---- collecting events ---------------------------------------------------- */

#define MAX_EVENTS 64

typedef struct got {
    int type, binary, code;
    char *data;
    size_t len;
    const char *err;
} got_t;

typedef struct run {
    got_t ev[MAX_EVENTS];
    int n;
    size_t consumed; /* bytes taken before the codec was done */
} run_t;

static void run_free(run_t *r) {
    for (int i = 0; i < r->n; i++)
        free(r->ev[i].data);
    r->n = 0;
}

static void record(run_t *r, const gust_ws_event_t *ev) {
    if (r->n == MAX_EVENTS)
        return;
    got_t *g = &r->ev[r->n++];
    g->type = ev->type;
    g->binary = ev->binary;
    g->code = ev->code;
    g->err = ev->err;
    g->len = ev->len;
    g->data = malloc(ev->len + 1);
    if (ev->len)
        memcpy(g->data, ev->data, ev->len);
    g->data[ev->len] = 0;
}

/* Feeds data[0..len) in pieces: a first one of `first` bytes (0: all),
 * then pieces of `step` bytes (0: the rest at once). */
static void feed(gust_ws_codec_t *c, const void *data, size_t len, size_t first, size_t step,
                 run_t *r) {
    const uint8_t *p = data;
    size_t off = 0;
    r->n = 0;
    r->consumed = 0;
    while (off < len) {
        size_t piece = len - off;
        if (off == 0 && first && first < piece)
            piece = first;
        else if (off > 0 && step && step < piece)
            piece = step;
        size_t at = 0;
        while (at < piece) {
            gust_ws_event_t ev;
            size_t avail = piece - at;
            int was_done = gust_ws_codec_done(c);
            size_t used = gust_ws_codec_feed(c, p + off + at, avail, &ev);
            if (used > avail || (ev.type == GUST_WS_EV_NONE && used != avail)) {
                check_fail(__FILE__, __LINE__, "feed took %zu of %zu (event %d)", used, avail,
                           ev.type);
                return;
            }
            if (!was_done)
                r->consumed += used;
            at += used;
            if (ev.type != GUST_WS_EV_NONE)
                record(r, &ev);
            else
                break;
        }
        off += piece;
    }
}

static int same_runs(const run_t *a, const run_t *b) {
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++) {
        const got_t *x = &a->ev[i], *y = &b->ev[i];
        if (x->type != y->type || x->binary != y->binary || x->code != y->code ||
            x->len != y->len || memcmp(x->data, y->data, x->len) != 0)
            return 0;
    }
    return 1;
}

typedef struct side {
    int client;
    size_t max;
    const gust_ws_deflate_params_t *deflate;
} side_t;

static void codec_for(gust_ws_codec_t *c, const side_t *s) {
    gust_ws_codec_init(c, s->client, s->max);
    if (s->deflate)
        CHECK_INT(gust_ws_codec_set_deflate(c, s->deflate, -1, 0), 0);
}

/* Parses whole into `out`, and checks byte by byte and at every cut (for
 * inputs up to 2 KiB) against it. */
static void parse_all_ways(const side_t *s, const void *data, size_t len, run_t *out) {
    gust_ws_codec_t c;
    codec_for(&c, s);
    feed(&c, data, len, 0, 0, out);
    gust_ws_codec_free(&c);

    run_t other;
    codec_for(&c, s);
    feed(&c, data, len, 1, 1, &other);
    gust_ws_codec_free(&c);
    CHECK(same_runs(out, &other));
    run_free(&other);
    if (len > 2048)
        return;
    for (size_t cut = 1; cut < len; cut++) {
        codec_for(&c, s);
        feed(&c, data, len, cut, 0, &other);
        gust_ws_codec_free(&c);
        if (!same_runs(out, &other)) {
            check_fail(__FILE__, __LINE__, "different events when cut at %zu", cut);
            run_free(&other);
            return;
        }
        run_free(&other);
    }
    npass++;
}

static const side_t SERVER = {0, 0, NULL};
static const side_t CLIENT = {1, 0, NULL};

/* ---- building frames -------------------------------------------------------- */

typedef struct frame_buf {
    uint8_t b[1 << 17];
    size_t len;
} frame_buf_t;

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends a raw frame: b0 (FIN/RSV/opcode byte as given), masked or not. */
static void add_frame(frame_buf_t *f, uint8_t b0, int masked, const void *payload, size_t len) {
    uint8_t hdr[GUST_WS_MAX_HEADER];
    size_t n = gust_ws_frame_header(hdr, 0, 0, 0, len, masked ? MASK : NULL);
    hdr[0] = b0;
    memcpy(f->b + f->len, hdr, n);
    f->len += n;
    memcpy(f->b + f->len, payload, len);
    if (masked)
        gust_ws_mask(f->b + f->len, len, MASK, 0);
    f->len += len;
}

static void expect_error(const side_t *s, const frame_buf_t *f, int code) {
    run_t r;
    parse_all_ways(s, f->b, f->len, &r);
    CHECK(r.n >= 1);
    if (r.n >= 1) {
        CHECK_INT(r.ev[r.n - 1].type, GUST_WS_EV_ERROR);
        CHECK_INT(r.ev[r.n - 1].code, code);
    }
    run_free(&r);
}

/* ---- the tests --------------------------------------------------------------- */

static void test_rfc6455_examples(void) {
    /* 5.7: a single-frame unmasked text message, to a client. */
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    run_t r;
    parse_all_ways(&CLIENT, hello, sizeof hello, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_MESSAGE);
    CHECK_INT(r.ev[0].binary, 0);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "Hello");
    run_free(&r);

    /* A single-frame masked text message, to a server. */
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    parse_all_ways(&SERVER, masked, sizeof masked, &r);
    CHECK_INT(r.n, 1);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "Hello");
    run_free(&r);

    /* A fragmented unmasked text message. */
    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    parse_all_ways(&CLIENT, frag, sizeof frag, &r);
    CHECK_INT(r.n, 1);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "Hello");
    run_free(&r);

    /* Unmasked ping; masked pong. */
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    parse_all_ways(&CLIENT, ping, sizeof ping, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_PING);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "Hello");
    run_free(&r);
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    parse_all_ways(&SERVER, pong, sizeof pong, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_PONG);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "Hello");
    run_free(&r);
}

static void test_header_lengths(void) {
    uint8_t h[GUST_WS_MAX_HEADER];
    /* 7-bit, 16-bit and 64-bit lengths, each at its edges. */
    CHECK_INT(gust_ws_frame_header(h, 1, 0, GUST_WS_OP_BINARY, 125, NULL), 2);
    CHECK_INT(h[0], 0x82);
    CHECK_INT(h[1], 125);
    CHECK_INT(gust_ws_frame_header(h, 1, 0, GUST_WS_OP_BINARY, 126, NULL), 4);
    CHECK_INT(h[1], 126);
    CHECK_INT(h[2], 0);
    CHECK_INT(h[3], 126);
    CHECK_INT(gust_ws_frame_header(h, 1, 0, GUST_WS_OP_BINARY, 256, NULL), 4);
    CHECK_INT(h[2], 1); /* RFC 6455 5.7: 0x7E 0x0100 */
    CHECK_INT(h[3], 0);
    CHECK_INT(gust_ws_frame_header(h, 1, 0, GUST_WS_OP_BINARY, 65535, NULL), 4);
    CHECK_INT(gust_ws_frame_header(h, 1, 0, GUST_WS_OP_BINARY, 65536, NULL), 10);
    static const uint8_t l64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK(memcmp(h, l64, 10) == 0);
    CHECK_INT(gust_ws_frame_header(h, 0, 1, GUST_WS_OP_TEXT, 3, MASK), 6);
    CHECK_INT(h[0], 0x41);
    CHECK_INT(h[1], 0x83);
    CHECK(memcmp(h + 2, MASK, 4) == 0);

    /* Payloads of those sizes parse, whole and in pieces. */
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    static uint8_t payload[70000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        static frame_buf_t f;
        f.len = 0;
        add_frame(&f, 0x82, 1, payload, sizes[k]);
        run_t r;
        parse_all_ways(&SERVER, f.b, f.len, &r);
        CHECK_INT(r.n, 1);
        CHECK_INT(r.ev[0].type, GUST_WS_EV_MESSAGE);
        CHECK_INT(r.ev[0].binary, 1);
        CHECK_INT(r.ev[0].len, sizes[k]);
        CHECK(sizes[k] == 0 || memcmp(r.ev[0].data, payload, sizes[k]) == 0);
        run_free(&r);
    }

    /* A 64-bit length with the top bit set is a protocol error. */
    static const uint8_t huge[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    frame_buf_t *f = malloc(sizeof *f);
    memcpy(f->b, huge, sizeof huge);
    f->len = sizeof huge;
    expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    free(f);
}

static void test_masking(void) {
    uint8_t data[100], orig[100];
    for (int i = 0; i < 100; i++)
        data[i] = orig[i] = (uint8_t)i;
    for (size_t off = 0; off < 8; off++) {
        gust_ws_mask(data, sizeof data, MASK, off);
        CHECK(data[0] == (orig[0] ^ MASK[off & 3]));
        CHECK(data[99] == (orig[99] ^ MASK[(off + 99) & 3]));
        gust_ws_mask(data, sizeof data, MASK, off);
        CHECK(memcmp(data, orig, sizeof data) == 0);
    }
    /* Masking in two pieces equals masking at once. */
    uint8_t a[37], b[37];
    for (int i = 0; i < 37; i++)
        a[i] = b[i] = (uint8_t)(i * 13);
    gust_ws_mask(a, 37, MASK, 0);
    gust_ws_mask(b, 11, MASK, 0);
    gust_ws_mask(b + 11, 26, MASK, 11);
    CHECK(memcmp(a, b, 37) == 0);
}

static void test_fragments_and_interleaved_control(void) {
    frame_buf_t *f = malloc(sizeof *f);
    f->len = 0;
    add_frame(f, 0x01, 1, "Hel", 3);      /* text, no FIN */
    add_frame(f, 0x89, 1, "p1", 2);       /* ping between fragments */
    add_frame(f, 0x00, 1, "lo, ", 4);     /* continuation */
    add_frame(f, 0x8A, 1, "", 0);         /* empty pong */
    add_frame(f, 0x80, 1, "world", 5);    /* final continuation */
    add_frame(f, 0x02, 1, "\x00\x01", 2); /* binary in two */
    add_frame(f, 0x80, 1, "\x02", 1);
    add_frame(f, 0x81, 1, "", 0); /* empty text */
    run_t r;
    parse_all_ways(&SERVER, f->b, f->len, &r);
    CHECK_INT(r.n, 5);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_PING);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "p1");
    CHECK_INT(r.ev[1].type, GUST_WS_EV_PONG);
    CHECK_INT(r.ev[1].len, 0);
    CHECK_INT(r.ev[2].type, GUST_WS_EV_MESSAGE);
    CHECK_SPAN(r.ev[2].data, r.ev[2].len, "Hello, world");
    CHECK_INT(r.ev[3].binary, 1);
    CHECK_INT(r.ev[3].len, 3);
    CHECK(memcmp(r.ev[3].data, "\x00\x01\x02", 3) == 0);
    CHECK_INT(r.ev[4].type, GUST_WS_EV_MESSAGE);
    CHECK_INT(r.ev[4].len, 0);
    run_free(&r);

    /* Empty fragments are fine too. */
    f->len = 0;
    add_frame(f, 0x01, 1, "", 0);
    add_frame(f, 0x00, 1, "", 0);
    add_frame(f, 0x80, 1, "x", 1);
    parse_all_ways(&SERVER, f->b, f->len, &r);
    CHECK_INT(r.n, 1);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "x");
    run_free(&r);
    free(f);
}

static void test_protocol_errors(void) {
    frame_buf_t *f = malloc(sizeof *f);
    /* Reserved bits without an extension. */
    static const uint8_t rsv[] = {0xC1, 0xA1, 0x91};
    for (size_t i = 0; i < sizeof rsv; i++) {
        f->len = 0;
        add_frame(f, rsv[i], 1, "x", 1);
        expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    }
    /* Every reserved opcode. */
    static const uint8_t ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof ops; i++) {
        f->len = 0;
        add_frame(f, (uint8_t)(0x80 | ops[i]), 1, "x", 1);
        expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    }
    /* Unmasked frame to a server; masked frame to a client. */
    f->len = 0;
    add_frame(f, 0x81, 0, "hi", 2);
    expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    f->len = 0;
    add_frame(f, 0x81, 1, "hi", 2);
    expect_error(&CLIENT, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    /* Fragmented control frames (ping, pong, close without FIN). */
    static const uint8_t fctl[] = {0x09, 0x0A, 0x08};
    for (size_t i = 0; i < sizeof fctl; i++) {
        f->len = 0;
        add_frame(f, fctl[i], 1, "x", 1);
        expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    }
    /* Control frames over 125 bytes. */
    char big[126];
    memset(big, 'a', sizeof big);
    f->len = 0;
    add_frame(f, 0x89, 1, big, 126);
    expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    f->len = 0;
    add_frame(f, 0x89, 1, big, 125); /* 125 is fine */
    run_t r;
    parse_all_ways(&SERVER, f->b, f->len, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_PING);
    CHECK_INT(r.ev[0].len, 125);
    run_free(&r);
    /* A continuation with no message; a new message inside a fragmented one. */
    f->len = 0;
    add_frame(f, 0x80, 1, "x", 1);
    expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    f->len = 0;
    add_frame(f, 0x01, 1, "a", 1);
    add_frame(f, 0x81, 1, "b", 1);
    expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    f->len = 0;
    add_frame(f, 0x02, 1, "a", 1);
    add_frame(f, 0x02, 1, "b", 1);
    expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    /* RSV1 on a control frame or a continuation, even with deflate on. */
    gust_ws_deflate_params_t dp = {1, 0, 0, 15, 15};
    side_t deflating = {0, 0, &dp};
    f->len = 0;
    add_frame(f, 0xC9, 1, "", 0);
    expect_error(&deflating, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    f->len = 0;
    add_frame(f, 0x41, 1, "", 0); /* compressed start (empty deflate data) */
    add_frame(f, 0xC0, 1, "", 0);
    expect_error(&deflating, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    /* Events before the error are still reported, and nothing after it. */
    f->len = 0;
    add_frame(f, 0x81, 1, "ok", 2);
    add_frame(f, 0x83, 1, "x", 1);
    add_frame(f, 0x81, 1, "never", 5);
    parse_all_ways(&SERVER, f->b, f->len, &r);
    CHECK_INT(r.n, 2);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_MESSAGE);
    CHECK_INT(r.ev[1].type, GUST_WS_EV_ERROR);
    CHECK_STR(r.ev[1].err, "reserved opcode");
    run_free(&r);
    free(f);
}

static void test_utf8(void) {
    /* Valid: ASCII, 2-, 3- and 4-byte sequences, the edges of the ranges. */
    static const char *valid[] = {
        "",
        "plain ascii text, longer than eight bytes",
        "\xc2\x80",
        "\xdf\xbf",
        "\xe0\xa0\x80",
        "\xed\x9f\xbf",
        "\xee\x80\x80",
        "\xef\xbf\xbf",
        "\xf0\x90\x80\x80",
        "\xf4\x8f\xbf\xbf",
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
    };
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
        CHECK(gust_ws_utf8_valid(valid[i], strlen(valid[i])));
    /* Invalid: overlongs, surrogates, past U+10FFFF, stray continuation,
     * truncated sequences, bytes that never appear. */
    static const char *invalid[] = {
        "\xc0\x80",
        "\xc1\xbf",
        "\xe0\x80\x80",
        "\xe0\x9f\xbf",
        "\xed\xa0\x80",
        "\xed\xbf\xbf",
        "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf",
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\x80",
        "abc\xbf",
        "\xc2",
        "\xe1\x80",
        "\xf0\x90\x80",
        "\xfe",
        "\xff",
        "ok so far...\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
        "edited",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        CHECK(!gust_ws_utf8_valid(invalid[i], strlen(invalid[i])));
    /* Incremental: a 4-byte character split at every place. */
    const char *s = "a\xf0\x9f\x98\x80z";
    for (size_t cut = 0; cut <= strlen(s); cut++) {
        uint32_t st = gust_ws_utf8_step(GUST_WS_UTF8_ACCEPT, s, cut);
        st = gust_ws_utf8_step(st, s + cut, strlen(s) - cut);
        CHECK_INT(st, GUST_WS_UTF8_ACCEPT);
    }
    CHECK(gust_ws_utf8_step(0, "\xf0\x9f", 2) != GUST_WS_UTF8_ACCEPT);
    CHECK(gust_ws_utf8_step(0, "\xf0\x9f", 2) != GUST_WS_UTF8_REJECT);
    /* Exhaustively against a reference decoder, over all 1- and 2-byte and
     * a sample of 3- and 4-byte inputs. */
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            uint8_t in[2] = {(uint8_t)a, (uint8_t)b};
            int ok2 = (a < 0x80 && b < 0x80) || (a >= 0xC2 && a <= 0xDF && b >= 0x80 && b <= 0xBF);
            if (gust_ws_utf8_valid(in, 2) != ok2) {
                check_fail(__FILE__, __LINE__, "utf8 %02x %02x", a, b);
                return;
            }
        }
    }
    npass++;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp += 7) {
        uint8_t in[4];
        size_t n;
        if (cp < 0x80) {
            in[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            in[0] = (uint8_t)(0xC0 | (cp >> 6));
            in[1] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            in[0] = (uint8_t)(0xE0 | (cp >> 12));
            in[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            in[2] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            in[0] = (uint8_t)(0xF0 | (cp >> 18));
            in[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            in[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            in[3] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 4;
        }
        int surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (gust_ws_utf8_valid(in, n) == surrogate) {
            check_fail(__FILE__, __LINE__, "utf8 U+%04X", cp);
            return;
        }
    }
    npass++;
}

static void test_utf8_in_frames(void) {
    frame_buf_t *f = malloc(sizeof *f);
    run_t r;
    /* A character split across fragments is valid. */
    f->len = 0;
    add_frame(f, 0x01, 1, "\xce\xba\xe1", 3);
    add_frame(f, 0x00, 1, "\xbd", 1);
    add_frame(f, 0x80, 1, "\xb9", 1);
    parse_all_ways(&SERVER, f->b, f->len, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_MESSAGE);
    run_free(&r);
    /* Invalid text: 1007. */
    f->len = 0;
    add_frame(f, 0x81, 1, "\xce\xba\xed\xa0\x80", 5);
    expect_error(&SERVER, f, GUST_WS_CLOSE_INVALID_DATA);
    /* Fail fast: the error comes in the first fragment, before the rest. */
    f->len = 0;
    add_frame(f, 0x01, 1, "ab\xff", 3);
    size_t first = f->len;
    add_frame(f, 0x80, 1, "cd", 2);
    gust_ws_codec_t c;
    gust_ws_codec_init(&c, 0, 0);
    feed(&c, f->b, first, 0, 0, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].code, GUST_WS_CLOSE_INVALID_DATA);
    run_free(&r);
    gust_ws_codec_free(&c);
    /* A message that ends inside a character. */
    f->len = 0;
    add_frame(f, 0x01, 1, "ok\xe2\x82", 4);
    add_frame(f, 0x80, 1, "", 0);
    expect_error(&SERVER, f, GUST_WS_CLOSE_INVALID_DATA);
    /* Binary messages are not checked. */
    f->len = 0;
    add_frame(f, 0x82, 1, "\xff\xfe", 2);
    parse_all_ways(&SERVER, f->b, f->len, &r);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_MESSAGE);
    run_free(&r);
    free(f);
}

static void test_close_frames(void) {
    frame_buf_t *f = malloc(sizeof *f);
    run_t r;
    /* Codes the peer may send come through with the reason. */
    static const int good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                               1010, 1011, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        uint8_t p[8] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i], 'b', 'y', 'e'};
        f->len = 0;
        add_frame(f, 0x88, 1, p, 5);
        parse_all_ways(&SERVER, f->b, f->len, &r);
        CHECK_INT(r.n, 1);
        CHECK_INT(r.ev[0].type, GUST_WS_EV_CLOSE);
        CHECK_INT(r.ev[0].code, good[i]);
        CHECK_SPAN(r.ev[0].data, r.ev[0].len, "bye");
        run_free(&r);
    }
    /* Codes that are never on the wire, unassigned or out of range: 1002. */
    static const int bad[] = {0,    999,  1004, 1005, 1006, 1012, 1013, 1014,
                              1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        f->len = 0;
        add_frame(f, 0x88, 1, p, 2);
        expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    }
    /* An empty close: 1005 (no status). */
    f->len = 0;
    add_frame(f, 0x88, 1, "", 0);
    parse_all_ways(&SERVER, f->b, f->len, &r);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_CLOSE);
    CHECK_INT(r.ev[0].code, GUST_WS_CLOSE_NO_STATUS);
    run_free(&r);
    /* A 1-byte payload: 1002. A reason that is not UTF-8: 1007. */
    f->len = 0;
    add_frame(f, 0x88, 1, "\x03", 1);
    expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    f->len = 0;
    add_frame(f, 0x88, 1, "\x03\xe8\xce\xba\xed\xa0\x80", 7);
    expect_error(&SERVER, f, GUST_WS_CLOSE_INVALID_DATA);
    /* Nothing is parsed after a close. */
    f->len = 0;
    add_frame(f, 0x88, 1, "\x03\xe8", 2);
    add_frame(f, 0x81, 1, "late", 4);
    add_frame(f, 0xFF, 0, "garbage", 7);
    parse_all_ways(&SERVER, f->b, f->len, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].code, 1000);
    run_free(&r);
    /* The validity function over its whole range. */
    int wrong = 0;
    for (int code = 0; code < 70000; code++) {
        int want = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                   (code >= 3000 && code <= 4999);
        if (gust_ws_close_code_valid(code) != want)
            wrong++;
    }
    CHECK_INT(wrong, 0);
    free(f);
}

static void test_limits(void) {
    frame_buf_t *f = malloc(sizeof *f);
    side_t small = {0, 100, NULL};
    char data[200];
    memset(data, 'x', sizeof data);
    run_t r;
    /* Exactly the limit is fine. */
    f->len = 0;
    add_frame(f, 0x81, 1, data, 100);
    parse_all_ways(&small, f->b, f->len, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_MESSAGE);
    CHECK_INT(r.ev[0].len, 100);
    run_free(&r);
    /* One byte over in a single frame: 1009 from the header alone. */
    f->len = 0;
    add_frame(f, 0x81, 1, data, 101);
    expect_error(&small, f, GUST_WS_CLOSE_TOO_BIG);
    gust_ws_codec_t c;
    gust_ws_codec_init(&c, 0, 100);
    feed(&c, f->b, 2 + 4, 0, 0, &r); /* header only */
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].code, GUST_WS_CLOSE_TOO_BIG);
    CHECK(c.msg_cap == 0); /* nothing was buffered */
    run_free(&r);
    gust_ws_codec_free(&c);
    /* Over the limit across fragments. */
    f->len = 0;
    add_frame(f, 0x01, 1, data, 60);
    add_frame(f, 0x00, 1, data, 30);
    add_frame(f, 0x80, 1, data, 11);
    expect_error(&small, f, GUST_WS_CLOSE_TOO_BIG);
    /* A header announcing 2^62 bytes. */
    static const uint8_t huge[] = {0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    memcpy(f->b, huge, sizeof huge);
    f->len = sizeof huge;
    expect_error(&SERVER, f, GUST_WS_CLOSE_TOO_BIG);
    /* Control frames do not count against the message. */
    f->len = 0;
    add_frame(f, 0x01, 1, data, 90);
    add_frame(f, 0x89, 1, data, 50);
    add_frame(f, 0x80, 1, data, 10);
    parse_all_ways(&small, f->b, f->len, &r);
    CHECK_INT(r.n, 2);
    CHECK_INT(r.ev[1].len, 100);
    run_free(&r);
    free(f);
}

/* ---- encoding ------------------------------------------------------------------- */

static void test_encode_roundtrip(void) {
    gust_ws_codec_t server, client;
    gust_ws_codec_init(&server, 0, 0);
    gust_ws_codec_init(&client, 1, 0);
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    static char big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    /* Server frames are unmasked; a client reads them. */
    gust_ws_encode_message(&server, &b, 0, "hi", 2);
    static const uint8_t want[] = {0x81, 0x02, 'h', 'i'};
    CHECK_INT(b.len, 4);
    CHECK(memcmp(b.p, want, 4) == 0);
    gust_ws_encode_message(&server, &b, 1, big, sizeof big);
    gust_ws_encode_control(&server, &b, GUST_WS_OP_PING, "p", 1);
    gust_ws_encode_close(&server, &b, 1001, "away", 4);
    run_t r;
    feed(&client, b.p, b.len, 0, 0, &r);
    CHECK_INT(r.n, 4);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "hi");
    CHECK_INT(r.ev[1].len, sizeof big);
    CHECK(memcmp(r.ev[1].data, big, sizeof big) == 0);
    CHECK_INT(r.ev[2].type, GUST_WS_EV_PING);
    CHECK_INT(r.ev[3].type, GUST_WS_EV_CLOSE);
    CHECK_INT(r.ev[3].code, 1001);
    CHECK_SPAN(r.ev[3].data, r.ev[3].len, "away");
    run_free(&r);

    /* Client frames are masked (random keys); a server reads them. */
    gust_buf_free(&b);
    gust_ws_encode_message(&client, &b, 0, "hello", 5);
    CHECK(b.p[1] & 0x80);
    CHECK_INT(b.len, 2 + 4 + 5);
    gust_ws_encode_message(&client, &b, 1, big, sizeof big);
    gust_ws_encode_close(&client, &b, 0, NULL, 0);
    feed(&server, b.p, b.len, 0, 0, &r);
    CHECK_INT(r.n, 3);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "hello");
    CHECK(memcmp(r.ev[1].data, big, sizeof big) == 0);
    CHECK_INT(r.ev[2].code, GUST_WS_CLOSE_NO_STATUS);
    run_free(&r);
    /* Two masked frames of the same text differ: a fresh key each. */
    gust_buf_free(&b);
    gust_ws_encode_message(&client, &b, 0, "same", 4);
    gust_ws_encode_message(&client, &b, 0, "same", 4);
    CHECK(memcmp(b.p, b.p + 10, 10) != 0);
    /* A fixed key gives the RFC's bytes. */
    gust_buf_free(&b);
    client.fixed_mask = MASK;
    gust_ws_encode_message(&client, &b, 0, "Hello", 5);
    static const uint8_t rfc[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    CHECK_INT(b.len, sizeof rfc);
    CHECK(memcmp(b.p, rfc, sizeof rfc) == 0);
    /* Control payloads are cut at 125 bytes, close reasons at 123. */
    gust_buf_free(&b);
    gust_ws_encode_control(&server, &b, GUST_WS_OP_PONG, big, 300);
    CHECK_INT(b.len, 2 + 125);
    gust_buf_free(&b);
    gust_ws_encode_close(&server, &b, 1000, big, 300);
    CHECK_INT(b.len, 2 + 125);
    gust_buf_free(&b);
    gust_ws_codec_free(&server);
    gust_ws_codec_free(&client);
}

/* ---- permessage-deflate ------------------------------------------------------------- */

static void test_deflate_rfc7692_examples(void) {
    gust_ws_deflate_params_t dp = {1, 0, 0, 15, 15};
    side_t client = {1, 0, &dp};
    /* 7.2.3.1: "Hello" compressed, one frame. */
    static const uint8_t one[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    run_t r;
    parse_all_ways(&client, one, sizeof one, &r);
    CHECK_INT(r.n, 1);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "Hello");
    run_free(&r);
    /* 7.2.3.1: the same, fragmented. */
    static const uint8_t frag[] = {0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80,
                                   0x04, 0xc9, 0xc9, 0x07, 0x00};
    parse_all_ways(&client, frag, sizeof frag, &r);
    CHECK_INT(r.n, 1);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "Hello");
    run_free(&r);
    /* 7.2.3.2: a second "Hello" using the first's context. */
    static const uint8_t two[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07,
                                  0x00, 0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00};
    parse_all_ways(&client, two, sizeof two, &r);
    CHECK_INT(r.n, 2);
    CHECK_SPAN(r.ev[1].data, r.ev[1].len, "Hello");
    run_free(&r);
    /* 7.2.3.3: a stored (uncompressed) block. */
    static const uint8_t stored[] = {0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff,
                                     0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
    parse_all_ways(&client, stored, sizeof stored, &r);
    CHECK_INT(r.n, 1);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "Hello");
    run_free(&r);
    /* An uncompressed message (no RSV1) on a deflate connection. */
    static const uint8_t plain[] = {0x81, 0x02, 'o', 'k'};
    parse_all_ways(&client, plain, sizeof plain, &r);
    CHECK_SPAN(r.ev[0].data, r.ev[0].len, "ok");
    run_free(&r);
    /* Our encoder gives the RFC's bytes for "Hello" at the default level,
     * then the shorter form with context takeover. */
    gust_ws_codec_t server;
    gust_ws_codec_init(&server, 0, 0);
    CHECK_INT(gust_ws_codec_set_deflate(&server, &dp, -1, 0), 0);
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    CHECK_INT(gust_ws_encode_message(&server, &b, 0, "Hello", 5), 0);
    CHECK_INT(b.len, sizeof one);
    CHECK(memcmp(b.p, one, sizeof one) == 0);
    b.len = 0;
    CHECK_INT(gust_ws_encode_message(&server, &b, 0, "Hello", 5), 0);
    CHECK_INT(b.len, 7);
    CHECK(memcmp(b.p, two + 9, 7) == 0);
    gust_buf_free(&b);
    gust_ws_codec_free(&server);
}

static void deflate_roundtrip(int snct, int cnct, int swb, int cwb) {
    gust_ws_deflate_params_t dp = {1, snct, cnct, swb, cwb};
    gust_ws_codec_t server, client;
    gust_ws_codec_init(&server, 0, 0);
    gust_ws_codec_init(&client, 1, 0);
    CHECK_INT(gust_ws_codec_set_deflate(&server, &dp, -1, 0), 0);
    CHECK_INT(gust_ws_codec_set_deflate(&client, &dp, 1, 4), 0);
    static char text[50000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "the quick brown fox "[i % 20];
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    for (int round = 0; round < 3; round++) {
        /* client -> server: several messages, one of them empty */
        b.len = 0;
        gust_ws_encode_message(&client, &b, 0, text, sizeof text);
        CHECK(b.len < sizeof text / 10);
        CHECK(b.p[0] & 0x40); /* RSV1 */
        gust_ws_encode_message(&client, &b, 1, "", 0);
        gust_ws_encode_message(&client, &b, 0, "short", 5);
        run_t r;
        feed(&server, b.p, b.len, 0, 0, &r);
        CHECK_INT(r.n, 3);
        CHECK_INT(r.ev[0].len, sizeof text);
        CHECK(r.ev[0].len == sizeof text && memcmp(r.ev[0].data, text, sizeof text) == 0);
        CHECK_INT(r.ev[1].len, 0);
        CHECK_INT(r.ev[1].binary, 1);
        CHECK_SPAN(r.ev[2].data, r.ev[2].len, "short");
        run_free(&r);
        /* server -> client, fed byte by byte */
        b.len = 0;
        gust_ws_encode_message(&server, &b, 1, text, 1000);
        gust_ws_encode_message(&server, &b, 0, "short", 5);
        feed(&client, b.p, b.len, 1, 1, &r);
        CHECK_INT(r.n, 2);
        CHECK(r.ev[0].len == 1000 && memcmp(r.ev[0].data, text, 1000) == 0);
        CHECK_SPAN(r.ev[1].data, r.ev[1].len, "short");
        run_free(&r);
    }
    gust_buf_free(&b);
    gust_ws_codec_free(&server);
    gust_ws_codec_free(&client);
}

static void test_deflate_roundtrips(void) {
    deflate_roundtrip(0, 0, 15, 15);
    deflate_roundtrip(1, 1, 15, 15);
    deflate_roundtrip(0, 1, 9, 10);
    deflate_roundtrip(1, 0, 12, 9);
}

static void test_deflate_limits_and_errors(void) {
    gust_ws_deflate_params_t dp = {1, 0, 0, 15, 15};
    /* A zip bomb: 1 MB of zeros in ~1 KB is refused at the limit (1009). */
    gust_ws_codec_t client;
    gust_ws_codec_init(&client, 1, 0);
    gust_ws_codec_set_deflate(&client, &dp, 9, 0);
    char *zeros = calloc(1, 1000000);
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    gust_ws_encode_message(&client, &b, 1, zeros, 1000000);
    free(zeros);
    CHECK(b.len < 2000);
    side_t small = {0, 100000, &dp};
    gust_ws_codec_t server;
    codec_for(&server, &small);
    run_t r;
    feed(&server, b.p, b.len, 0, 0, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_ERROR);
    CHECK_INT(r.ev[0].code, GUST_WS_CLOSE_TOO_BIG);
    CHECK(server.inflated_cap <= 100001);
    run_free(&r);
    gust_ws_codec_free(&server);
    /* The same within the limit is fine. */
    side_t roomy = {0, 1000000, &dp};
    codec_for(&server, &roomy);
    feed(&server, b.p, b.len, 0, 0, &r);
    CHECK_INT(r.n, 1);
    CHECK_INT(r.ev[0].type, GUST_WS_EV_MESSAGE);
    CHECK_INT(r.ev[0].len, 1000000);
    run_free(&r);
    gust_ws_codec_free(&server);
    gust_buf_free(&b);
    gust_ws_codec_free(&client);

    frame_buf_t *f = malloc(sizeof *f);
    side_t srv = {0, 0, &dp};
    /* Not a deflate stream: 1007. */
    f->len = 0;
    add_frame(f, 0xC1, 1, "\xff\xff\xff\xff\xff", 5);
    expect_error(&srv, f, GUST_WS_CLOSE_INVALID_DATA);
    /* Compressed text that inflates to bad UTF-8: 1007. */
    gust_ws_codec_init(&client, 1, 0);
    gust_ws_codec_set_deflate(&client, &dp, -1, 0);
    client.fixed_mask = MASK;
    gust_buf_init(&b, NULL, 0);
    gust_ws_encode_message(&client, &b, 0, "bad \xc0\xaf", 6);
    memcpy(f->b, b.p, b.len);
    f->len = b.len;
    expect_error(&srv, f, GUST_WS_CLOSE_INVALID_DATA);
    gust_buf_free(&b);
    gust_ws_codec_free(&client);
    /* RSV1 without deflate: 1002. */
    f->len = 0;
    add_frame(f, 0xC1, 1, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7);
    expect_error(&SERVER, f, GUST_WS_CLOSE_PROTOCOL_ERROR);
    free(f);
}

static void test_negotiation(void) {
    gust_ws_deflate_opts_t o;
    memset(&o, 0, sizeof o);
    char resp[256];
    /* A browser's offer. */
    const char *offer = "permessage-deflate; client_max_window_bits";
    CHECK_INT(gust_ws_deflate_negotiate(offer, strlen(offer), &o, resp, sizeof resp), 1);
    CHECK_STR(resp, "permessage-deflate");
    /* The client's requests are honoured. */
    offer = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
    CHECK_INT(gust_ws_deflate_negotiate(offer, strlen(offer), &o, resp, sizeof resp), 1);
    CHECK_STR(resp, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10");
    /* The server's own wishes, where the client allowed them. */
    o.client_no_context_takeover = 1;
    o.server_max_window_bits = 12;
    o.client_max_window_bits = 11;
    offer = "permessage-deflate; client_max_window_bits=\"13\"";
    CHECK_INT(gust_ws_deflate_negotiate(offer, strlen(offer), &o, resp, sizeof resp), 1);
    CHECK_STR(resp, "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; "
                    "client_max_window_bits=11");
    memset(&o, 0, sizeof o);
    /* Unknown, duplicated or malformed parameters skip that offer; a
     * window of 8 cannot be kept; the next acceptable offer wins. */
    offer = "permessage-deflate; foo, permessage-deflate; server_max_window_bits=8, "
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover, "
            "permessage-deflate; server_max_window_bits=16, x-webkit-deflate-frame, "
            "permessage-deflate; client_no_context_takeover";
    CHECK_INT(gust_ws_deflate_negotiate(offer, strlen(offer), &o, resp, sizeof resp), 1);
    CHECK_STR(resp, "permessage-deflate; client_no_context_takeover");
    offer = "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits";
    CHECK_INT(gust_ws_deflate_negotiate(offer, strlen(offer), &o, resp, sizeof resp), 0);
    CHECK_INT(gust_ws_deflate_negotiate("", 0, &o, resp, sizeof resp), 0);

    /* Parsing what was agreed, from both sides. */
    gust_ws_deflate_params_t p;
    char err[128];
    const char *agreed = "permessage-deflate; server_no_context_takeover; client_max_window_bits=9";
    CHECK_INT(gust_ws_deflate_parse(agreed, strlen(agreed), 1, &p, err, sizeof err), 0);
    CHECK_INT(p.enabled, 1);
    CHECK_INT(p.server_no_context_takeover, 1);
    CHECK_INT(p.client_no_context_takeover, 0);
    CHECK_INT(p.server_max_window_bits, 15);
    CHECK_INT(p.client_max_window_bits, 9);
    agreed = "permessage-deflate; client_max_window_bits=8";
    CHECK_INT(gust_ws_deflate_parse(agreed, strlen(agreed), 1, &p, err, sizeof err), -1);
    CHECK_INT(gust_ws_deflate_parse(agreed, strlen(agreed), 0, &p, err, sizeof err), 0);
    agreed = "permessage-deflate; client_max_window_bits";
    CHECK_INT(gust_ws_deflate_parse(agreed, strlen(agreed), 1, &p, err, sizeof err), -1);
    agreed = "permessage-deflate, permessage-deflate";
    CHECK_INT(gust_ws_deflate_parse(agreed, strlen(agreed), 1, &p, err, sizeof err), -1);
    agreed = "x-foo";
    CHECK_INT(gust_ws_deflate_parse(agreed, strlen(agreed), 1, &p, err, sizeof err), -1);
    agreed = "permessage-deflate; bogus=1";
    CHECK_INT(gust_ws_deflate_parse(agreed, strlen(agreed), 1, &p, err, sizeof err), -1);

    /* A client's offer, and a server's answer to it parses on both sides. */
    memset(&o, 0, sizeof o);
    char off[256];
    CHECK_INT(gust_ws_deflate_offer(&o, off, sizeof off), 0);
    CHECK_STR(off, "permessage-deflate; client_max_window_bits");
    o.client_no_context_takeover = 1;
    o.server_max_window_bits = 10;
    CHECK_INT(gust_ws_deflate_offer(&o, off, sizeof off), 0);
    CHECK_STR(off, "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; "
                   "client_max_window_bits");
    memset(&o, 0, sizeof o);
    CHECK_INT(gust_ws_deflate_negotiate(off, strlen(off), &o, resp, sizeof resp), 1);
    CHECK_INT(gust_ws_deflate_parse(resp, strlen(resp), 1, &p, err, sizeof err), 0);
    CHECK_INT(p.client_no_context_takeover, 1);
    CHECK_INT(p.server_max_window_bits, 10);
    CHECK_INT(gust_ws_deflate_parse(resp, strlen(resp), 0, &p, err, sizeof err), 0);
    /* A response that does not fit. */
    CHECK_INT(gust_ws_deflate_negotiate(off, strlen(off), &o, resp, 8), -1);
}

int main(void) {
    RUN(test_rfc6455_examples);
    RUN(test_header_lengths);
    RUN(test_masking);
    RUN(test_fragments_and_interleaved_control);
    RUN(test_protocol_errors);
    RUN(test_utf8);
    RUN(test_utf8_in_frames);
    RUN(test_close_frames);
    RUN(test_limits);
    RUN(test_encode_roundtrip);
    RUN(test_deflate_rfc7692_examples);
    RUN(test_deflate_roundtrips);
    RUN(test_deflate_limits_and_errors);
    RUN(test_negotiation);
    return check_report("test_ws_frame");
}
