/*
 * fuzz_ws_frame.c -- libFuzzer target for src/core/ws_frame.c.
 *
 * The first input byte picks the codec: bit 0 the side (client or server),
 * bit 1 permessage-deflate (bit 2 with no context takeover), bit 3 a small
 * message limit (so 1009 is within reach). The second picks where the rest
 * is cut in two. The rest is parsed whole, cut, and (when short) byte by
 * byte; the three must give the same events. Every event is checked: text
 * is valid UTF-8, no message is over the limit, a close code is one a peer
 * may send (or 1005), an error names 1002, 1007 or 1009, and a codec that is
 * done takes everything and reports nothing. Each message is then encoded
 * by the other side's codec and parsed back, which must give it unchanged.
 * A broken invariant aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

#define FAIL_IF(cond)                                                                              \
    do {                                                                                           \
        if (cond) {                                                                                \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct outcome {
    uint64_t digest;
    unsigned events;
    int last_type, last_code;
} outcome_t;

static uint64_t mix(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t mix_int(uint64_t h, uint64_t v) { return mix(h, &v, sizeof v); }

typedef struct setup {
    int client, deflate, no_takeover;
    size_t max;
} setup_t;

static void make_codec(gust_ws_codec_t *c, const setup_t *s, int client) {
    gust_ws_codec_init(c, client, s->max);
    if (s->deflate) {
        gust_ws_deflate_params_t p = {1, s->no_takeover, s->no_takeover, 15, 15};
        FAIL_IF(gust_ws_codec_set_deflate(c, &p, -1, 0) != 0);
    }
}

/* The other side encodes the message; parsing it back must give it. */
static void roundtrip(const setup_t *s, const gust_ws_event_t *ev) {
    gust_ws_codec_t enc, dec;
    make_codec(&enc, s, !s->client);
    make_codec(&dec, s, s->client);
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    FAIL_IF(gust_ws_encode_message(&enc, &b, ev->binary, ev->data, ev->len) != 0);
    gust_ws_event_t back;
    size_t used = gust_ws_codec_feed(&dec, b.p, b.len, &back);
    FAIL_IF(used != b.len);
    FAIL_IF(back.type != GUST_WS_EV_MESSAGE);
    FAIL_IF(back.binary != ev->binary);
    FAIL_IF(back.len != ev->len);
    FAIL_IF(ev->len && memcmp(back.data, ev->data, ev->len) != 0);
    gust_buf_free(&b);
    gust_ws_codec_free(&enc);
    gust_ws_codec_free(&dec);
}

static void check_event(const setup_t *s, const gust_ws_codec_t *c, const gust_ws_event_t *ev,
                        int check_roundtrip) {
    switch (ev->type) {
    case GUST_WS_EV_MESSAGE:
        FAIL_IF(ev->len > c->max_message_size);
        FAIL_IF(!ev->binary && !gust_ws_utf8_valid(ev->data, ev->len));
        if (check_roundtrip)
            roundtrip(s, ev);
        break;
    case GUST_WS_EV_PING:
    case GUST_WS_EV_PONG: FAIL_IF(ev->len > GUST_WS_MAX_CONTROL); break;
    case GUST_WS_EV_CLOSE:
        FAIL_IF(ev->code != GUST_WS_CLOSE_NO_STATUS && !gust_ws_close_code_valid(ev->code));
        FAIL_IF(ev->len > GUST_WS_MAX_CLOSE_REASON);
        FAIL_IF(!gust_ws_utf8_valid(ev->data, ev->len));
        FAIL_IF(!gust_ws_codec_done(c));
        break;
    case GUST_WS_EV_ERROR:
        FAIL_IF(ev->code != GUST_WS_CLOSE_PROTOCOL_ERROR &&
                ev->code != GUST_WS_CLOSE_INVALID_DATA && ev->code != GUST_WS_CLOSE_TOO_BIG);
        FAIL_IF(ev->err == NULL || !gust_ws_codec_done(c));
        break;
    default: FAIL_IF(1);
    }
    FAIL_IF(c->msg_len > c->max_message_size);
    FAIL_IF(c->ctl_len > GUST_WS_MAX_CONTROL);
}

/* Parses data, delivered at the offsets in cuts[] (the last == len). */
static outcome_t parse(const setup_t *s, const uint8_t *data, size_t len, const size_t *cuts,
                       size_t ncuts, int check_roundtrip) {
    outcome_t o = {0xcbf29ce484222325ULL, 0, GUST_WS_EV_NONE, 0};
    gust_ws_codec_t c;
    make_codec(&c, s, s->client);
    size_t off = 0;
    for (size_t k = 0; k < ncuts; k++) {
        size_t end = cuts[k];
        while (off < end) {
            gust_ws_event_t ev;
            int was_done = gust_ws_codec_done(&c);
            size_t used = gust_ws_codec_feed(&c, data + off, end - off, &ev);
            FAIL_IF(used > end - off);
            FAIL_IF(ev.type == GUST_WS_EV_NONE && used != end - off);
            FAIL_IF(was_done && (ev.type != GUST_WS_EV_NONE || used != end - off));
            off += used;
            if (ev.type == GUST_WS_EV_NONE)
                break;
            check_event(s, &c, &ev, check_roundtrip);
            o.events++;
            o.last_type = ev.type;
            o.last_code = ev.code;
            o.digest = mix_int(o.digest, (uint64_t)ev.type);
            o.digest = mix_int(o.digest, (uint64_t)ev.binary);
            o.digest = mix_int(o.digest, (uint64_t)ev.code);
            o.digest = mix_int(o.digest, ev.len);
            if (ev.len)
                o.digest = mix(o.digest, ev.data, ev.len);
        }
    }
    gust_ws_codec_free(&c);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size) {
    if (size < 2)
        return 0;
    setup_t s;
    s.client = input[0] & 1;
    s.deflate = (input[0] >> 1) & 1;
    s.no_takeover = (input[0] >> 2) & 1;
    s.max = (input[0] & 8) ? 64 : 65536;
    const uint8_t *data = input + 2;
    size_t len = size - 2;
    size_t cut = len * input[1] / 255;

    size_t whole[] = {len};
    size_t two[] = {cut, len};
    outcome_t a = parse(&s, data, len, whole, 1, 1);
    outcome_t b = parse(&s, data, len, two, 2, 0);
    FAIL_IF(a.events != b.events || a.digest != b.digest);
    FAIL_IF(a.last_type != b.last_type || a.last_code != b.last_code);
    if (len <= 512) {
        size_t *bytes = malloc((len ? len : 1) * sizeof *bytes);
        for (size_t i = 0; i < len; i++)
            bytes[i] = i + 1;
        outcome_t c = parse(&s, data, len, bytes, len, 0);
        free(bytes);
        FAIL_IF(a.events != c.events || a.digest != c.digest);
    }
    return 0;
}
