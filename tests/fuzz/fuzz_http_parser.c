/*
 * fuzz_http_parser.c -- libFuzzer target for src/core/http_parser.c.
 *
 * The first input byte picks where the rest is cut in two; both parts are
 * fed to a gust_http_request_t with small limits (so that 413 and 431 are
 * within reach), taking pipelined requests one after the other the way
 * conn.c does: feed, and after a complete request reset and go on with the
 * unconsumed bytes. After every feed the structural invariants are checked
 * (consumed <= given, offsets inside the arena, limits kept), and the same
 * input parsed whole, cut, and (when short) byte by byte must give the same
 * requests. A broken invariant aborts, which libFuzzer reports as a crash.
 *
 * As conn.c does, parsing stops after an Upgrade request (the bytes after it
 * are not HTTP). Build with -DFUZZ_FEED_AFTER_UPGRADE to reset and feed once
 * more anyway, which checks reset() and feed() on an upgraded parser.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parser.h"

static const gust_http_limits_t limits = {
    .max_header_size = 384,
    .max_body_size = 96,
};

#define FAIL_IF(cond)                                                                              \
    do {                                                                                           \
        if (cond) {                                                                                \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* What a run saw: per complete request a digest of everything a handler
 * could read, and whether the stream ended in a rejection. */
typedef struct outcome {
    uint64_t digest;
    unsigned nrequests;
    int rejected;
    size_t consumed;
} outcome_t;

static uint64_t mix(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL; /* FNV-1a */
    return h;
}

static uint64_t mix_int(uint64_t h, uint64_t v) { return mix(h, &v, sizeof v); }

static void check_invariants(const gust_http_request_t *r) {
    FAIL_IF(r->arena_len > r->arena_cap);
    FAIL_IF(r->url_len > r->arena_len);
    FAIL_IF(r->arena_len > limits.max_header_size);
    FAIL_IF(r->nheaders > GUST_MAX_HEADERS);
    FAIL_IF(r->nheaders > r->headers_cap);
    FAIL_IF(r->body_len > r->body_cap);
    FAIL_IF(r->body_len > limits.max_body_size);
    for (unsigned i = 0; i < r->nheaders; i++) {
        const gust_http_header_t *h = &r->headers[i];
        FAIL_IF(h->name < r->url_len);
        FAIL_IF((size_t)h->name + h->name_len > r->arena_len);
        FAIL_IF((size_t)h->value + h->value_len > r->arena_len);
        for (uint32_t k = 0; k < h->name_len; k++) {
            char c = r->arena[h->name + k];
            FAIL_IF(c >= 'A' && c <= 'Z'); /* names are lower-cased */
        }
    }
    FAIL_IF(r->status != 0 && r->status != 400 && r->status != 413 && r->status != 417 &&
            r->status != 431 && r->status != 501 && r->status != 505);
    FAIL_IF(r->status == 501 && (r->headers_done || r->nheaders)); /* the request line only */
    FAIL_IF(r->status && !r->error);
    FAIL_IF(r->complete && r->status);
    FAIL_IF(r->expect_continue && !r->headers_done);
}

/* A complete request: more invariants, then its digest. */
static uint64_t digest_request(const gust_http_request_t *r, uint64_t h) {
    FAIL_IF(!r->begun || !r->headers_done);
    FAIL_IF(r->upgrade && r->keep_alive);
    FAIL_IF(r->expect_continue && r->http_minor < 1);
    /* Every header is found by name, and the lookup gives the last one. */
    for (unsigned i = 0; i < r->nheaders; i++) {
        const gust_http_header_t *hd = &r->headers[i];
        char name[400];
        if (hd->name_len >= sizeof name)
            continue;
        memcpy(name, r->arena + hd->name, hd->name_len);
        name[hd->name_len] = '\0';
        if (strlen(name) != hd->name_len)
            continue; /* a NUL in the name: not reachable by lookup */
        size_t vlen = 0;
        const char *v = gust_http_request_header(r, name, &vlen);
        FAIL_IF(v == NULL);
        unsigned last = i;
        for (unsigned k = i + 1; k < r->nheaders; k++)
            if (r->headers[k].name_len == hd->name_len &&
                memcmp(r->arena + r->headers[k].name, name, hd->name_len) == 0)
                last = k;
        FAIL_IF(v != r->arena + r->headers[last].value);
        FAIL_IF(vlen != r->headers[last].value_len);
    }
    h = mix_int(h, r->method);
    h = mix_int(h, r->http_minor);
    h = mix_int(h, r->keep_alive);
    h = mix_int(h, r->expect_continue);
    h = mix_int(h, r->upgrade);
    h = mix(h, r->arena, r->arena_len); /* URL, names and values */
    h = mix_int(h, r->url_len);
    for (unsigned i = 0; i < r->nheaders; i++)
        h = mix(h, &r->headers[i], sizeof r->headers[i]);
    h = mix_int(h, r->body_len);
    if (r->body_len)
        h = mix(h, r->body, r->body_len);
    return h;
}

/*
 * Parses data[0..len) as a pipelined stream whose bytes arrive at the
 * offsets in cuts[] (ascending, the last one == len).
 */
static outcome_t parse(const char *data, size_t len, const size_t *cuts, size_t ncuts,
                       int release) {
    outcome_t o = {.digest = 0xcbf29ce484222325ULL};
    gust_http_request_t r;
    gust_http_request_init(&r, &limits);
    size_t off = 0, received = 0, next_cut = 0;
    for (;;) {
        if (off == received) {
            if (next_cut == ncuts)
                break;
            received = cuts[next_cut++];
            continue;
        }
        size_t avail = received - off;
        size_t used = gust_http_request_feed(&r, data + off, avail);
        FAIL_IF(used > avail);
        check_invariants(&r);
        off += used;
        if (r.status) {
            o.rejected = 1;
            FAIL_IF(used != avail); /* a rejection takes the rest */
            FAIL_IF(gust_http_request_feed(&r, data, len) != 0);
            break;
        }
        if (r.complete) {
            o.digest = digest_request(&r, o.digest);
            o.nrequests++;
            FAIL_IF(gust_http_request_feed(&r, data + off, received - off) != 0);
            if (r.upgrade) {
#ifdef FUZZ_FEED_AFTER_UPGRADE
                /* Not what conn.c does: reset and feed the rest anyway. */
                gust_http_request_reset(&r, release);
                size_t more = gust_http_request_feed(&r, data + off, received - off);
                FAIL_IF(more > received - off);
                FAIL_IF(r.complete && !r.begun); /* no phantom request */
#endif
                break;
            }
            gust_http_request_reset(&r, release);
            FAIL_IF(r.complete || r.nheaders || r.arena_len || r.body_len);
            continue;
        }
        FAIL_IF(used != avail); /* stopped short of a message boundary */
    }
    o.consumed = off;
    gust_http_request_free(&r);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size) {
    if (size < 1)
        return 0;
    const char *data = (const char *)input + 1;
    size_t len = size - 1;
    size_t cut = len * input[0] / 255; /* 0 .. len */
    int release = input[0] & 1;

    size_t whole[] = {len};
    size_t two[] = {cut, len};
    outcome_t a = parse(data, len, whole, 1, release);
    outcome_t b = parse(data, len, two, 2, !release);
    FAIL_IF(a.nrequests != b.nrequests);
    FAIL_IF(a.digest != b.digest);
    FAIL_IF(a.rejected != b.rejected);
    FAIL_IF(!a.rejected && a.consumed != b.consumed); /* a rejection takes what came */

    if (len <= 1024) {
        size_t *bytes = malloc((len ? len : 1) * sizeof *bytes);
        for (size_t i = 0; i < len; i++)
            bytes[i] = i + 1;
        outcome_t c = parse(data, len, bytes, len, release);
        free(bytes);
        FAIL_IF(a.nrequests != c.nrequests);
        FAIL_IF(a.digest != c.digest);
        FAIL_IF(a.rejected != c.rejected);
        FAIL_IF(!a.rejected && a.consumed != c.consumed);
    }
    return 0;
}
