/*
 * ws_frame.h -- the WebSocket wire protocol (RFC 6455) and permessage-deflate
 * (RFC 7692) as pure code: bytes in, events out; messages in, bytes out. No
 * sockets, no Lua, no logging, so unit tests and the fuzzer drive it
 * directly. lua_ws.c puts it on a gust_stream_t.
 *
 * A gust_ws_codec_t is one endpoint of one connection. Its parser checks
 * everything a peer controls: reserved bits and opcodes, masking (a server
 * takes only masked frames, a client only unmasked ones), fragmentation
 * (continuations, control frames between fragments, control frames at most
 * 125 bytes and never fragmented), the message size limit (before any byte
 * is buffered, and again after inflating), UTF-8 of text messages (checked
 * as the bytes arrive, across fragments) and of close reasons, and close
 * codes. A violation ends parsing with an event that names the close code to
 * send: 1002 protocol error, 1007 invalid data, 1009 too big.
 */
#ifndef GUST_WS_FRAME_H
#define GUST_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

/* Opcodes. */
enum {
    GUST_WS_OP_CONT = 0x0,
    GUST_WS_OP_TEXT = 0x1,
    GUST_WS_OP_BINARY = 0x2,
    GUST_WS_OP_CLOSE = 0x8,
    GUST_WS_OP_PING = 0x9,
    GUST_WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 7.4.1). 1005 and 1006 are never sent: they stand
 * for "no code in the close frame" and "no close frame at all". */
enum {
    GUST_WS_CLOSE_NORMAL = 1000,
    GUST_WS_CLOSE_GOING_AWAY = 1001,
    GUST_WS_CLOSE_PROTOCOL_ERROR = 1002,
    GUST_WS_CLOSE_UNSUPPORTED = 1003,
    GUST_WS_CLOSE_NO_STATUS = 1005,
    GUST_WS_CLOSE_ABNORMAL = 1006,
    GUST_WS_CLOSE_INVALID_DATA = 1007,
    GUST_WS_CLOSE_POLICY = 1008,
    GUST_WS_CLOSE_TOO_BIG = 1009,
    GUST_WS_CLOSE_EXTENSION = 1010,
    GUST_WS_CLOSE_INTERNAL = 1011,
};

#define GUST_WS_MAX_CONTROL 125      /* payload of a control frame */
#define GUST_WS_MAX_CLOSE_REASON 123 /* 125 minus the code */
#define GUST_WS_MAX_HEADER 14        /* 2 + 8 length + 4 mask */
#define GUST_WS_DEFAULT_MAX_MESSAGE (10 * 1024 * 1024)

/* What one call of gust_ws_codec_feed found. */
enum {
    GUST_WS_EV_NONE,    /* nothing complete yet: all input was taken */
    GUST_WS_EV_MESSAGE, /* a whole text or binary message */
    GUST_WS_EV_PING,
    GUST_WS_EV_PONG,
    GUST_WS_EV_CLOSE, /* the peer's close frame; parsing is over */
    GUST_WS_EV_ERROR, /* the peer broke the protocol; parsing is over */
};

typedef struct gust_ws_event {
    int type;
    int binary;       /* MESSAGE: 1 binary, 0 text (valid UTF-8) */
    const char *data; /* MESSAGE, PING, PONG; CLOSE: the reason. Owned by the
                         codec, valid until the next feed */
    size_t len;
    int code;        /* CLOSE: the peer's code, 1005 when it sent none;
                        ERROR: the code to close with */
    const char *err; /* ERROR: why, a static string fit for a close reason */
} gust_ws_event_t;

/* permessage-deflate parameters as agreed by the handshake. Window bits are
 * 9..15 (zlib cannot compress with a window of 8, so 8 is never agreed). */
typedef struct gust_ws_deflate_params {
    int enabled;
    int server_no_context_takeover, client_no_context_takeover;
    int server_max_window_bits, client_max_window_bits;
} gust_ws_deflate_params_t;

/* What a server is willing to do, for gust_ws_deflate_negotiate. A window
 * of 0 means 15; level -1 is zlib's default; mem_level 0 means 8. */
typedef struct gust_ws_deflate_opts {
    int server_no_context_takeover, client_no_context_takeover;
    int server_max_window_bits, client_max_window_bits;
    int level, mem_level;
} gust_ws_deflate_opts_t;

struct z_stream_s;

typedef struct gust_ws_codec {
    /* settings */
    int client;                /* 1: we are the client (send masked, take unmasked) */
    size_t max_message_size;   /* a bigger message fails with 1009 */
    const uint8_t *fixed_mask; /* tests only: mask with these 4 bytes, not random ones */

    /* parser */
    int state; /* internal */
    uint8_t hdr[GUST_WS_MAX_HEADER];
    size_t hdr_len, hdr_need;
    int fin, rsv1, opcode, masked;
    uint8_t mask[4];
    uint64_t payload_len, payload_got;
    int msg_opcode;     /* TEXT or BINARY while a message is open, else 0 */
    int msg_compressed; /* the open message had RSV1 */
    uint32_t utf8;      /* UTF-8 validator state over the open text message */
    char *msg;          /* the open message's payload so far */
    size_t msg_len, msg_cap;
    char ctl[GUST_WS_MAX_CONTROL];
    size_t ctl_len;
    int reset_msg; /* the last event pointed into msg: empty it first */

    /* permessage-deflate */
    gust_ws_deflate_params_t deflate;
    int level, mem_level;
    struct z_stream_s *zin, *zout;
    char *inflated;
    size_t inflated_cap;
} gust_ws_codec_t;

/* Sets up a codec for one side of a connection; max_message_size 0 means
 * GUST_WS_DEFAULT_MAX_MESSAGE. Owns no memory until data arrives. */
void gust_ws_codec_init(gust_ws_codec_t *c, int client, size_t max_message_size);

/* Turns on permessage-deflate with agreed parameters (p->enabled set).
 * level: zlib level, -1 default; mem_level 0: 8. Returns 0, or -1 when zlib
 * cannot be set up with them. */
int gust_ws_codec_set_deflate(gust_ws_codec_t *c, const gust_ws_deflate_params_t *p, int level,
                              int mem_level);

/* Frees what the codec holds; it may be initialised again. */
void gust_ws_codec_free(gust_ws_codec_t *c);

/*
 * Parses up to `len` bytes and stops after the first event. Returns the
 * bytes taken: all of them when ev->type is GUST_WS_EV_NONE, maybe fewer
 * otherwise (call again with the rest). ev->data stays valid until the next
 * call. After a CLOSE or ERROR event the codec parses nothing more: later
 * calls take all input and report NONE.
 */
size_t gust_ws_codec_feed(gust_ws_codec_t *c, const void *data, size_t len, gust_ws_event_t *ev);

/* 1 once parsing is over (a CLOSE or ERROR event was reported). */
int gust_ws_codec_done(const gust_ws_codec_t *c);

/*
 * Encoders append one frame to `out`. A client's frames are masked with a
 * fresh key from OpenSSL's CSPRNG. A message is sent as one frame, compressed
 * (RSV1) when deflate is on. Returns 0, or -1 if compression failed (nothing
 * is appended then).
 */
int gust_ws_encode_message(gust_ws_codec_t *c, gust_buf_t *out, int binary, const void *data,
                           size_t len);
/* A ping or pong; len <= 125 (longer payloads are cut there). */
void gust_ws_encode_control(gust_ws_codec_t *c, gust_buf_t *out, int opcode, const void *data,
                            size_t len);
/* A close frame: code 0 sends an empty one; the reason is cut at 123 bytes
 * (callers check its UTF-8). */
void gust_ws_encode_close(gust_ws_codec_t *c, gust_buf_t *out, int code, const char *reason,
                          size_t len);

/* A frame header for `len` payload bytes into out (>= GUST_WS_MAX_HEADER
 * bytes); mask NULL for an unmasked frame. Returns its length. */
size_t gust_ws_frame_header(uint8_t *out, int fin, int rsv1, int opcode, uint64_t len,
                            const uint8_t *mask);

/* XORs data with the mask, starting at byte `offset` of the masking key
 * stream (masking and unmasking are the same operation). */
void gust_ws_mask(void *data, size_t len, const uint8_t mask[4], size_t offset);

/* 1 for codes an endpoint may send (1000-1003, 1007-1011, 3000-4999). */
int gust_ws_close_code_valid(int code);

/* 1 when s[0..len) is valid UTF-8 (no surrogates, no overlongs, <= U+10FFFF). */
int gust_ws_utf8_valid(const void *s, size_t len);

/* Incremental UTF-8: feed bytes through the state (start at
 * GUST_WS_UTF8_ACCEPT); GUST_WS_UTF8_REJECT is final. A text is valid when
 * it ends in ACCEPT. */
#define GUST_WS_UTF8_ACCEPT 0
#define GUST_WS_UTF8_REJECT 8
uint32_t gust_ws_utf8_step(uint32_t state, const void *s, size_t len);

/*
 * permessage-deflate negotiation (RFC 7692 section 7).
 *
 * Server: given a client's Sec-WebSocket-Extensions value(s), picks the
 * first permessage-deflate offer it can honour under `opts` and writes the
 * response value into resp. Returns 1 (resp is set), 0 (no acceptable
 * offer: answer without the extension) or -1 (resp too small).
 *
 * Client: gust_ws_deflate_offer writes what to send.
 *
 * Both: gust_ws_deflate_parse reads an agreed value (the server's response)
 * into parameters; the client side also checks it against what it may
 * accept. Returns 0, or -1 with the reason in err.
 */
int gust_ws_deflate_negotiate(const char *offer, size_t len, const gust_ws_deflate_opts_t *opts,
                              char *resp, size_t resplen);
int gust_ws_deflate_offer(const gust_ws_deflate_opts_t *opts, char *out, size_t outlen);
int gust_ws_deflate_parse(const char *agreed, size_t len, int client, gust_ws_deflate_params_t *p,
                          char *err, size_t errlen);

#endif
