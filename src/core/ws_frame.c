/*
 * ws_frame.c -- gust_ws_codec_t: the RFC 6455 framing and RFC 7692
 * permessage-deflate of one WebSocket endpoint, as pure code (see
 * ws_frame.h). It owns the buffer of the message being assembled, a small
 * buffer for control frames and, with deflate, the two zlib streams and the
 * inflated message.
 *
 * Every length the peer chooses is checked against max_message_size before
 * a byte of it is buffered, and buffers grow as bytes arrive, not as a
 * header announces them: a header that promises 10 MiB costs nothing until
 * the megabytes come.
 */
#include <string.h>

#include <openssl/rand.h>
#include <zlib.h>

#include "ws_frame.h"

enum { ST_HEADER, ST_PAYLOAD, ST_DONE };

/* ---- UTF-8 -------------------------------------------------------------- */

/*
 * States: 0 accept; 1, 2, 3: that many continuation bytes (80..BF) to go;
 * 4: after E0 (next A0..BF, then 1); 5: after ED (next 80..9F, then 1);
 * 6: after F0 (next 90..BF, then 2); 7: after F4 (next 80..8F, then 2);
 * 8 reject. This refuses overlongs, surrogates and code points past U+10FFFF.
 */
static uint32_t utf8_byte(uint32_t st, uint8_t b) {
    switch (st) {
    case 0:
        if (b < 0x80)
            return 0;
        if (b >= 0xC2 && b <= 0xDF)
            return 1;
        if (b == 0xE0)
            return 4;
        if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
            return 2;
        if (b == 0xED)
            return 5;
        if (b == 0xF0)
            return 6;
        if (b >= 0xF1 && b <= 0xF3)
            return 3;
        if (b == 0xF4)
            return 7;
        return GUST_WS_UTF8_REJECT;
    case 1:
    case 2:
    case 3: return (b >= 0x80 && b <= 0xBF) ? st - 1 : GUST_WS_UTF8_REJECT;
    case 4: return (b >= 0xA0 && b <= 0xBF) ? 1 : GUST_WS_UTF8_REJECT;
    case 5: return (b >= 0x80 && b <= 0x9F) ? 1 : GUST_WS_UTF8_REJECT;
    case 6: return (b >= 0x90 && b <= 0xBF) ? 2 : GUST_WS_UTF8_REJECT;
    case 7: return (b >= 0x80 && b <= 0x8F) ? 2 : GUST_WS_UTF8_REJECT;
    default: return GUST_WS_UTF8_REJECT;
    }
}

uint32_t gust_ws_utf8_step(uint32_t st, const void *data, size_t len) {
    const uint8_t *s = data, *end = s + len;
    while (s < end) {
        if (st == GUST_WS_UTF8_REJECT)
            return st;
        /* Text is mostly ASCII: skip it eight bytes at a time. */
        if (st == 0) {
            while (end - s >= 8) {
                uint64_t w;
                memcpy(&w, s, 8);
                if (w & 0x8080808080808080ULL)
                    break;
                s += 8;
            }
            if (s == end)
                break;
        }
        st = utf8_byte(st, *s++);
    }
    return st;
}

int gust_ws_utf8_valid(const void *s, size_t len) {
    return gust_ws_utf8_step(GUST_WS_UTF8_ACCEPT, s, len) == GUST_WS_UTF8_ACCEPT;
}

int gust_ws_close_code_valid(int code) {
    if (code >= 3000 && code <= 4999)
        return 1;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011);
}

/* ---- masking and headers -------------------------------------------------- */

void gust_ws_mask(void *data, size_t len, const uint8_t mask[4], size_t offset) {
    uint8_t *p = data;
    size_t i = 0;
    /* Align the key stream to the offset, then go eight bytes at a time. */
    while (i < len && ((offset + i) & 3) != 0) {
        p[i] ^= mask[(offset + i) & 3];
        i++;
    }
    if (len - i >= 8) {
        uint8_t k8[8] = {mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]};
        uint64_t k;
        memcpy(&k, k8, 8);
        for (; len - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            w ^= k;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < len; i++)
        p[i] ^= mask[(offset + i) & 3];
}

size_t gust_ws_frame_header(uint8_t *out, int fin, int rsv1, int opcode, uint64_t len,
                            const uint8_t *mask) {
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        out[n++] = m | (uint8_t)len;
    } else if (len <= 0xFFFF) {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

/* ---- the codec ------------------------------------------------------------ */

void gust_ws_codec_init(gust_ws_codec_t *c, int client, size_t max_message_size) {
    memset(c, 0, sizeof *c);
    c->client = client;
    c->max_message_size = max_message_size ? max_message_size : GUST_WS_DEFAULT_MAX_MESSAGE;
    c->state = ST_HEADER;
    c->hdr_need = 2;
    c->level = Z_DEFAULT_COMPRESSION;
    c->mem_level = 8;
}

static void free_zlib(gust_ws_codec_t *c) {
    if (c->zin) {
        inflateEnd(c->zin);
        gust_free(c->zin);
        c->zin = NULL;
    }
    if (c->zout) {
        deflateEnd(c->zout);
        gust_free(c->zout);
        c->zout = NULL;
    }
}

void gust_ws_codec_free(gust_ws_codec_t *c) {
    free_zlib(c);
    gust_free(c->msg);
    gust_free(c->inflated);
    c->msg = c->inflated = NULL;
    c->msg_len = c->msg_cap = c->inflated_cap = 0;
    c->deflate.enabled = 0;
}

/* Our window and the peer's "no context takeover", by side. */
static int own_window(const gust_ws_codec_t *c) {
    return c->client ? c->deflate.client_max_window_bits : c->deflate.server_max_window_bits;
}
static int own_no_takeover(const gust_ws_codec_t *c) {
    return c->client ? c->deflate.client_no_context_takeover
                     : c->deflate.server_no_context_takeover;
}
static int peer_no_takeover(const gust_ws_codec_t *c) {
    return c->client ? c->deflate.server_no_context_takeover
                     : c->deflate.client_no_context_takeover;
}

int gust_ws_codec_set_deflate(gust_ws_codec_t *c, const gust_ws_deflate_params_t *p, int level,
                              int mem_level) {
    free_zlib(c);
    c->deflate = *p;
    if (!p->enabled)
        return 0;
    c->level = level < -1 || level > 9 ? Z_DEFAULT_COMPRESSION : level;
    c->mem_level = mem_level < 1 || mem_level > 9 ? 8 : mem_level;
    int wbits = own_window(c);
    if (wbits < 9 || wbits > 15)
        goto err;
    c->zin = gust_calloc(1, sizeof *c->zin);
    c->zout = gust_calloc(1, sizeof *c->zout);
    /* The peer's window is at most 15 bits; inflating with 15 takes any. */
    if (inflateInit2(c->zin, -15) != Z_OK) {
        gust_free(c->zin);
        c->zin = NULL;
        goto err;
    }
    if (deflateInit2(c->zout, c->level, Z_DEFLATED, -wbits, c->mem_level, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        gust_free(c->zout);
        c->zout = NULL;
        goto err;
    }
    return 0;
err:
    free_zlib(c);
    c->deflate.enabled = 0;
    return -1;
}

int gust_ws_codec_done(const gust_ws_codec_t *c) { return c->state == ST_DONE; }

static int fail(gust_ws_codec_t *c, gust_ws_event_t *ev, int code, const char *why) {
    c->state = ST_DONE;
    ev->type = GUST_WS_EV_ERROR;
    ev->code = code;
    ev->err = why;
    ev->data = NULL;
    ev->len = 0;
    return 1;
}

/* The first two bytes are in: everything they alone decide. */
static int check_start(gust_ws_codec_t *c, gust_ws_event_t *ev) {
    uint8_t b0 = c->hdr[0], b1 = c->hdr[1];
    c->fin = (b0 & 0x80) != 0;
    c->rsv1 = (b0 & 0x40) != 0;
    c->opcode = b0 & 0x0F;
    c->masked = (b1 & 0x80) != 0;
    unsigned len7 = b1 & 0x7F;
    int control = c->opcode >= 0x8;
    if (b0 & 0x30)
        return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "reserved bits set");
    if (c->opcode != GUST_WS_OP_CONT && c->opcode != GUST_WS_OP_TEXT &&
        c->opcode != GUST_WS_OP_BINARY && c->opcode != GUST_WS_OP_CLOSE &&
        c->opcode != GUST_WS_OP_PING && c->opcode != GUST_WS_OP_PONG)
        return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "reserved opcode");
    if (c->masked == c->client)
        return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR,
                    c->client ? "masked frame from server" : "unmasked frame from client");
    if (control) {
        if (!c->fin)
            return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame");
        if (len7 > GUST_WS_MAX_CONTROL)
            return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "control frame too long");
        if (c->rsv1)
            return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "reserved bits set");
    } else if (c->opcode == GUST_WS_OP_CONT) {
        if (!c->msg_opcode)
            return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "continuation without a message");
        if (c->rsv1)
            return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "reserved bits set");
    } else {
        if (c->msg_opcode)
            return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one");
        if (c->rsv1 && !c->deflate.enabled)
            return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "reserved bits set");
    }
    c->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (c->masked ? 4 : 0);
    return 0;
}

/* The whole header is in: the length and the key. */
static int check_header(gust_ws_codec_t *c, gust_ws_event_t *ev) {
    unsigned len7 = c->hdr[1] & 0x7F;
    size_t n = 2;
    uint64_t len = len7;
    if (len7 == 126) {
        len = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
        n = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | c->hdr[2 + i];
        n = 10;
        if (len >> 63)
            return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "frame length over 2^63");
    }
    if (c->masked)
        memcpy(c->mask, c->hdr + n, 4);
    c->payload_len = len;
    c->payload_got = 0;
    if (c->opcode < 0x8) {
        /* msg_len <= max here, so the subtraction cannot wrap. */
        if (len > c->max_message_size - c->msg_len)
            return fail(c, ev, GUST_WS_CLOSE_TOO_BIG, "message too big");
        if (c->opcode != GUST_WS_OP_CONT) {
            c->msg_opcode = c->opcode;
            c->msg_compressed = c->rsv1;
            c->utf8 = GUST_WS_UTF8_ACCEPT;
        }
    } else {
        c->ctl_len = 0;
    }
    return 0;
}

/* Room for `extra` more payload bytes in msg, growing geometrically but
 * never past the end of the current frame. */
static void msg_reserve(gust_ws_codec_t *c, size_t extra, size_t frame_end) {
    size_t need = c->msg_len + extra;
    if (need <= c->msg_cap)
        return;
    size_t cap = c->msg_cap ? c->msg_cap * 2 : 4096;
    if (cap < need)
        cap = need;
    if (cap > frame_end)
        cap = frame_end;
    c->msg = gust_realloc(c->msg, cap);
    c->msg_cap = cap;
}

/* Inflates the open message (RFC 7692 7.2.2: append 00 00 ff ff). */
static int inflate_msg(gust_ws_codec_t *c, gust_ws_event_t *ev, size_t *outlen) {
    static const char tail[4] = {0x00, 0x00, (char)0xff, (char)0xff};
    if (!c->zin)
        return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "compressed message without deflate");
    if (c->msg_cap < c->msg_len + 4) {
        c->msg = gust_realloc(c->msg, c->msg_len + 4);
        c->msg_cap = c->msg_len + 4;
    }
    memcpy(c->msg + c->msg_len, tail, 4);
    z_stream *z = c->zin;
    z->next_in = (Bytef *)c->msg;
    z->avail_in = (uInt)(c->msg_len + 4);
    size_t max = c->max_message_size, out = 0;
    int ended = 0;
    for (;;) {
        if (out == c->inflated_cap) {
            if (c->inflated_cap > max)
                return fail(c, ev, GUST_WS_CLOSE_TOO_BIG, "message too big");
            size_t cap = c->inflated_cap ? c->inflated_cap * 2 : 16384;
            if (cap > max + 1)
                cap = max + 1; /* one byte over the limit tells "too big" */
            c->inflated = gust_realloc(c->inflated, cap);
            c->inflated_cap = cap;
        }
        z->next_out = (Bytef *)c->inflated + out;
        z->avail_out = (uInt)(c->inflated_cap - out);
        int rc = inflate(z, Z_SYNC_FLUSH);
        out = c->inflated_cap - z->avail_out;
        if (out > max)
            return fail(c, ev, GUST_WS_CLOSE_TOO_BIG, "message too big");
        if (rc == Z_STREAM_END) {
            ended = 1; /* a final block: the next message starts afresh */
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return fail(c, ev, GUST_WS_CLOSE_INVALID_DATA, "invalid compressed data");
        if (z->avail_in == 0 && z->avail_out > 0)
            break;
        if (rc == Z_BUF_ERROR && z->avail_out > 0)
            return fail(c, ev, GUST_WS_CLOSE_INVALID_DATA, "invalid compressed data");
    }
    if (ended || peer_no_takeover(c))
        inflateReset(z);
    *outlen = out;
    return 0;
}

/* A data frame ended; with FIN the message is complete. */
static int data_frame_done(gust_ws_codec_t *c, gust_ws_event_t *ev) {
    if (!c->fin)
        return 0;
    int binary = c->msg_opcode == GUST_WS_OP_BINARY;
    const char *data = c->msg;
    size_t len = c->msg_len;
    if (c->msg_compressed) {
        if (inflate_msg(c, ev, &len))
            return 1;
        data = c->inflated;
        if (!binary && !gust_ws_utf8_valid(data, len))
            return fail(c, ev, GUST_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
    } else if (!binary && c->utf8 != GUST_WS_UTF8_ACCEPT) {
        return fail(c, ev, GUST_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
    }
    ev->type = GUST_WS_EV_MESSAGE;
    ev->binary = binary;
    ev->data = len ? data : "";
    ev->len = len;
    c->msg_opcode = 0;
    c->reset_msg = 1;
    return 1;
}

static int control_frame_done(gust_ws_codec_t *c, gust_ws_event_t *ev) {
    ev->data = c->ctl;
    ev->len = c->ctl_len;
    if (c->opcode == GUST_WS_OP_PING) {
        ev->type = GUST_WS_EV_PING;
        return 1;
    }
    if (c->opcode == GUST_WS_OP_PONG) {
        ev->type = GUST_WS_EV_PONG;
        return 1;
    }
    /* close */
    if (c->ctl_len == 1)
        return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload");
    int code = GUST_WS_CLOSE_NO_STATUS;
    if (c->ctl_len >= 2) {
        code = ((uint8_t)c->ctl[0] << 8) | (uint8_t)c->ctl[1];
        if (!gust_ws_close_code_valid(code))
            return fail(c, ev, GUST_WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
        if (!gust_ws_utf8_valid(c->ctl + 2, c->ctl_len - 2))
            return fail(c, ev, GUST_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
        ev->data = c->ctl + 2;
        ev->len = c->ctl_len - 2;
    }
    ev->type = GUST_WS_EV_CLOSE;
    ev->code = code;
    c->state = ST_DONE;
    return 1;
}

static int frame_done(gust_ws_codec_t *c, gust_ws_event_t *ev) {
    c->state = ST_HEADER;
    c->hdr_len = 0;
    c->hdr_need = 2;
    return c->opcode >= 0x8 ? control_frame_done(c, ev) : data_frame_done(c, ev);
}

/* Takes payload bytes; returns how many. */
static size_t take_payload(gust_ws_codec_t *c, const uint8_t *p, size_t avail, gust_ws_event_t *ev,
                           int *event) {
    uint64_t left = c->payload_len - c->payload_got;
    size_t take = avail < left ? avail : (size_t)left;
    char *dst;
    if (c->opcode >= 0x8) {
        dst = c->ctl + c->ctl_len;
        c->ctl_len += take;
    } else {
        msg_reserve(c, take, c->msg_len + (size_t)left);
        dst = c->msg + c->msg_len;
        c->msg_len += take;
    }
    memcpy(dst, p, take);
    if (c->masked)
        gust_ws_mask(dst, take, c->mask, (size_t)(c->payload_got & 3));
    c->payload_got += take;
    /* Fail fast on bad UTF-8 in plain text, even mid-frame. */
    if (c->opcode < 0x8 && c->msg_opcode == GUST_WS_OP_TEXT && !c->msg_compressed) {
        c->utf8 = gust_ws_utf8_step(c->utf8, dst, take);
        if (c->utf8 == GUST_WS_UTF8_REJECT) {
            *event = fail(c, ev, GUST_WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
            return take;
        }
    }
    return take;
}

size_t gust_ws_codec_feed(gust_ws_codec_t *c, const void *data, size_t len, gust_ws_event_t *ev) {
    const uint8_t *p = data;
    size_t off = 0;
    ev->type = GUST_WS_EV_NONE;
    ev->data = NULL;
    ev->len = 0;
    ev->code = 0;
    ev->err = NULL;
    ev->binary = 0;
    if (c->state == ST_DONE)
        return len;
    if (c->reset_msg) {
        c->reset_msg = 0;
        c->msg_len = 0;
        /* A big message's buffers are not kept for the next one. */
        if (c->msg_cap > 65536) {
            gust_free(c->msg);
            c->msg = NULL;
            c->msg_cap = 0;
        }
        if (c->inflated_cap > 65536) {
            gust_free(c->inflated);
            c->inflated = NULL;
            c->inflated_cap = 0;
        }
    }
    while (off < len || (c->state == ST_PAYLOAD && c->payload_got == c->payload_len)) {
        if (c->state == ST_HEADER) {
            size_t take = c->hdr_need - c->hdr_len;
            if (take > len - off)
                take = len - off;
            memcpy(c->hdr + c->hdr_len, p + off, take);
            c->hdr_len += take;
            off += take;
            if (c->hdr_len < c->hdr_need)
                break;
            if (c->hdr_len == 2) {
                if (check_start(c, ev))
                    return off;
                if (c->hdr_need > 2)
                    continue;
            }
            if (check_header(c, ev))
                return off;
            c->state = ST_PAYLOAD;
            continue; /* a zero-length payload completes the frame at once */
        }
        /* ST_PAYLOAD */
        if (c->payload_got < c->payload_len) {
            int event = 0;
            off += take_payload(c, p + off, len - off, ev, &event);
            if (event)
                return off;
            if (c->payload_got < c->payload_len)
                break;
        }
        if (frame_done(c, ev))
            return off;
    }
    return off;
}

/* ---- encoding --------------------------------------------------------------- */

static void new_mask(const gust_ws_codec_t *c, uint8_t mask[4]) {
    if (c->fixed_mask) {
        memcpy(mask, c->fixed_mask, 4);
        return;
    }
    if (RAND_bytes(mask, 4) != 1) {
        /* The CSPRNG failing is not something to paper over. */
        abort();
    }
}

/* Appends header + payload (masked for a client). */
static void put_frame(gust_ws_codec_t *c, gust_buf_t *out, int rsv1, int opcode, const void *data,
                      size_t len) {
    uint8_t hdr[GUST_WS_MAX_HEADER], mask[4];
    if (c->client)
        new_mask(c, mask);
    size_t n = gust_ws_frame_header(hdr, 1, rsv1, opcode, len, c->client ? mask : NULL);
    gust_buf_reserve(out, n + len);
    memcpy(out->p + out->len, hdr, n);
    out->len += n;
    if (len) {
        memcpy(out->p + out->len, data, len);
        if (c->client)
            gust_ws_mask(out->p + out->len, len, mask, 0);
        out->len += len;
    }
}

/* Compresses one message into out, after `start` bytes kept free for the
 * header; returns the compressed length or -1. */
static long deflate_into(gust_ws_codec_t *c, gust_buf_t *out, size_t start, const void *data,
                         size_t len) {
    z_stream *z = c->zout;
    size_t base = out->len + start;
    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)len; /* messages are capped well below 4 GiB by callers */
    size_t produced = 0;
    gust_buf_reserve(out, start + deflateBound(z, len) + 16);
    for (;;) {
        size_t room = out->cap - base - produced;
        if (room < 64) {
            gust_buf_reserve(out, start + produced + 65536);
            room = out->cap - base - produced;
        }
        z->next_out = (Bytef *)out->p + base + produced;
        z->avail_out = (uInt)(room > 0x40000000 ? 0x40000000 : room);
        uInt before = z->avail_out;
        int rc = deflate(z, Z_SYNC_FLUSH);
        produced += before - z->avail_out;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -1;
        if (z->avail_in == 0 && z->avail_out > 0)
            break;
    }
    /* RFC 7692 7.2.1: drop the 00 00 ff ff of the sync flush. */
    if (produced >= 4 && memcmp(out->p + base + produced - 4, "\x00\x00\xff\xff", 4) == 0)
        produced -= 4;
    if (own_no_takeover(c))
        deflateReset(z);
    return (long)produced;
}

int gust_ws_encode_message(gust_ws_codec_t *c, gust_buf_t *out, int binary, const void *data,
                           size_t len) {
    int opcode = binary ? GUST_WS_OP_BINARY : GUST_WS_OP_TEXT;
    if (!c->deflate.enabled || !c->zout) {
        put_frame(c, out, 0, opcode, data, len);
        return 0;
    }
    size_t at = out->len;
    long n = deflate_into(c, out, GUST_WS_MAX_HEADER, data, len);
    if (n < 0) {
        out->len = at;
        return -1;
    }
    /* An empty compressed payload is sent as one 0x00 byte (7.2.3.6). */
    if (n == 0) {
        out->p[at + GUST_WS_MAX_HEADER] = 0;
        n = 1;
    }
    uint8_t hdr[GUST_WS_MAX_HEADER], mask[4];
    if (c->client)
        new_mask(c, mask);
    size_t h = gust_ws_frame_header(hdr, 1, 1, opcode, (uint64_t)n, c->client ? mask : NULL);
    memmove(out->p + at + h, out->p + at + GUST_WS_MAX_HEADER, (size_t)n);
    memcpy(out->p + at, hdr, h);
    if (c->client)
        gust_ws_mask(out->p + at + h, (size_t)n, mask, 0);
    out->len = at + h + (size_t)n;
    return 0;
}

void gust_ws_encode_control(gust_ws_codec_t *c, gust_buf_t *out, int opcode, const void *data,
                            size_t len) {
    if (len > GUST_WS_MAX_CONTROL)
        len = GUST_WS_MAX_CONTROL;
    put_frame(c, out, 0, opcode, data, len);
}

void gust_ws_encode_close(gust_ws_codec_t *c, gust_buf_t *out, int code, const char *reason,
                          size_t len) {
    char payload[GUST_WS_MAX_CONTROL];
    size_t n = 0;
    if (code) {
        if (len > GUST_WS_MAX_CLOSE_REASON)
            len = GUST_WS_MAX_CLOSE_REASON;
        payload[0] = (char)(code >> 8);
        payload[1] = (char)code;
        if (len)
            memcpy(payload + 2, reason, len);
        n = 2 + len;
    }
    put_frame(c, out, 0, GUST_WS_OP_CLOSE, payload, n);
}

/* ---- permessage-deflate negotiation ------------------------------------- */

/* One parsed offer or response. -1 in a window field: absent; 0 for
 * client_max_window_bits: present without a value. */
typedef struct pmd {
    int snct, cnct, smwb, cmwb;
} pmd_t;

static int is_space(char ch) { return ch == ' ' || ch == '\t'; }

static int ieq(const char *a, size_t alen, const char *lit) {
    size_t n = strlen(lit);
    if (alen != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char x = a[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (x != lit[i])
            return 0;
    }
    return 1;
}

/* The end of the element starting at s (a ',' or ';' outside quotes, or
 * end). */
static const char *scan(const char *s, const char *end, char stop1, char stop2) {
    int quoted = 0;
    for (; s < end; s++) {
        if (quoted) {
            if (*s == '\\' && s + 1 < end)
                s++;
            else if (*s == '"')
                quoted = 0;
        } else if (*s == '"') {
            quoted = 1;
        } else if (*s == stop1 || *s == stop2) {
            break;
        }
    }
    return s;
}

static void trim(const char **s, const char **e) {
    while (*s < *e && is_space(**s))
        (*s)++;
    while (*e > *s && is_space((*e)[-1]))
        (*e)--;
}

/* A window-bits value: 8..15, possibly quoted. */
static int window_value(const char *v, const char *e) {
    if (e - v >= 2 && v[0] == '"' && e[-1] == '"') {
        v++;
        e--;
    }
    if (e - v == 1 && v[0] >= '8' && v[0] <= '9')
        return v[0] - '0';
    if (e - v == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + v[1] - '0';
    return -2;
}

/* Parses the parameters of one permessage-deflate element [s, e) after the
 * name. Returns 0, or -1 for anything unknown, duplicated or malformed. */
static int parse_params(const char *s, const char *e, pmd_t *o) {
    o->snct = o->cnct = 0;
    o->smwb = o->cmwb = -1;
    while (s < e) {
        /* s is at a ';' */
        s++;
        const char *pe = scan(s, e, ';', ';');
        const char *ns = s, *ne = pe;
        const char *eq = memchr(s, '=', (size_t)(pe - s));
        const char *vs = NULL, *ve = NULL;
        if (eq) {
            ne = eq;
            vs = eq + 1;
            ve = pe;
            trim(&vs, &ve);
        }
        trim(&ns, &ne);
        if (ieq(ns, (size_t)(ne - ns), "server_no_context_takeover")) {
            if (o->snct || eq)
                return -1;
            o->snct = 1;
        } else if (ieq(ns, (size_t)(ne - ns), "client_no_context_takeover")) {
            if (o->cnct || eq)
                return -1;
            o->cnct = 1;
        } else if (ieq(ns, (size_t)(ne - ns), "server_max_window_bits")) {
            if (o->smwb != -1 || !eq)
                return -1;
            o->smwb = window_value(vs, ve);
            if (o->smwb < 0)
                return -1;
        } else if (ieq(ns, (size_t)(ne - ns), "client_max_window_bits")) {
            if (o->cmwb != -1)
                return -1;
            o->cmwb = eq ? window_value(vs, ve) : 0;
            if (o->cmwb < 0)
                return -1;
        } else {
            return -1;
        }
        s = pe;
    }
    return 0;
}

static int clamp_window(int w) { return w <= 0 || w > 15 ? 15 : w < 9 ? 9 : w; }

int gust_ws_deflate_negotiate(const char *offer, size_t len, const gust_ws_deflate_opts_t *opts,
                              char *resp, size_t resplen) {
    const char *s = offer, *end = offer + len;
    while (s < end) {
        const char *ee = scan(s, end, ',', ',');
        const char *ns = s, *ne = scan(s, ee, ';', ';');
        const char *params = ne;
        trim(&ns, &ne);
        pmd_t o;
        if (ieq(ns, (size_t)(ne - ns), "permessage-deflate") && parse_params(params, ee, &o) == 0) {
            int own = clamp_window(opts->server_max_window_bits);
            int smwb = -1, cmwb = -1;
            if (o.smwb > 0) {
                smwb = o.smwb < own ? o.smwb : own;
                if (smwb < 9)
                    goto next; /* zlib cannot keep to a window of 8 */
            } else if (own < 15) {
                smwb = own;
            }
            if (o.cmwb >= 0 && opts->client_max_window_bits > 0) {
                int want = clamp_window(opts->client_max_window_bits);
                int limit = o.cmwb > 0 ? o.cmwb : 15;
                cmwb = want < limit ? want : limit;
            }
            int n = snprintf(
                resp, resplen, "permessage-deflate%s%s",
                (o.snct || opts->server_no_context_takeover) ? "; server_no_context_takeover" : "",
                (o.cnct || opts->client_no_context_takeover) ? "; client_no_context_takeover" : "");
            if (n < 0 || (size_t)n >= resplen)
                return -1;
            if (smwb > 0)
                n += snprintf(resp + n, resplen - n, "; server_max_window_bits=%d", smwb);
            if ((size_t)n >= resplen)
                return -1;
            if (cmwb > 0)
                n += snprintf(resp + n, resplen - n, "; client_max_window_bits=%d", cmwb);
            if ((size_t)n >= resplen)
                return -1;
            return 1;
        }
    next:
        s = ee < end ? ee + 1 : end;
    }
    return 0;
}

int gust_ws_deflate_offer(const gust_ws_deflate_opts_t *opts, char *out, size_t outlen) {
    char cm[32] = "; client_max_window_bits", sm[32] = "";
    if (opts->client_max_window_bits > 0)
        snprintf(cm, sizeof cm, "; client_max_window_bits=%d",
                 clamp_window(opts->client_max_window_bits));
    if (opts->server_max_window_bits > 0)
        snprintf(sm, sizeof sm, "; server_max_window_bits=%d",
                 clamp_window(opts->server_max_window_bits));
    int n =
        snprintf(out, outlen, "permessage-deflate%s%s%s%s",
                 opts->client_no_context_takeover ? "; client_no_context_takeover" : "",
                 opts->server_no_context_takeover ? "; server_no_context_takeover" : "", sm, cm);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int gust_ws_deflate_parse(const char *agreed, size_t len, int client, gust_ws_deflate_params_t *p,
                          char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    const char *s = agreed, *end = agreed + len;
    const char *ee = scan(s, end, ',', ',');
    if (ee != end) {
        snprintf(err, errlen, "more than one extension agreed");
        return -1;
    }
    const char *ns = s, *ne = scan(s, end, ';', ';');
    const char *params = ne;
    trim(&ns, &ne);
    if (!ieq(ns, (size_t)(ne - ns), "permessage-deflate")) {
        snprintf(err, errlen, "unsupported extension: %.*s", (int)(ne - ns), ns);
        return -1;
    }
    pmd_t o;
    if (parse_params(params, end, &o) < 0) {
        snprintf(err, errlen, "invalid permessage-deflate parameters");
        return -1;
    }
    if (o.cmwb == 0) {
        /* A response must give client_max_window_bits a value. */
        snprintf(err, errlen, "client_max_window_bits without a value");
        return -1;
    }
    int own = client ? o.cmwb : o.smwb;
    if (own == 8) {
        snprintf(err, errlen, "a window of 8 bits is not supported");
        return -1;
    }
    p->enabled = 1;
    p->server_no_context_takeover = o.snct;
    p->client_no_context_takeover = o.cnct;
    p->server_max_window_bits = o.smwb > 0 ? o.smwb : 15;
    p->client_max_window_bits = o.cmwb > 0 ? o.cmwb : 15;
    return 0;
}
