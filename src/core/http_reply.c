/*
 * http_reply.c -- gust_http_reply_t: llhttp in response mode turning
 * bytes into one final response (status, reason, headers) and body pieces.
 *
 * Pure protocol code: no sockets, no Lua. It owns what llhttp leaves to its
 * user: interim 1xx responses are dropped and parsing goes on; HEAD, 204
 * and 304 answers have no body whatever their headers say (llhttp is told
 * by on_headers_complete returning 1); a body without Content-Length or
 * chunking runs to the close (gust_http_reply_eof); the header section and
 * the body are bounded; a gzip Content-Encoding is inflated as it arrives,
 * the decoded size bounded too, so a small bomb cannot exhaust memory.
 */
#include "http_reply.h"

#include <stdio.h>
#include <string.h>

#include "mem.h"

#define REPLY(p) ((gust_http_reply_t *)(p)->data)
#define HEADER_OVERHEAD 4 /* ": " and CRLF per header line */
#define INFLATE_CHUNK 16384

static int fail(gust_http_reply_t *r, const char *fmt, const char *detail) {
    if (!r->failed) {
        r->failed = 1;
        snprintf(r->error, sizeof r->error, fmt, detail);
    }
    return -1;
}

static int arena_add(gust_http_reply_t *r, const char *at, size_t len, int lower) {
    if (r->arena_len + len + HEADER_OVERHEAD * (r->nheaders + 1) > r->max_header_size)
        return fail(r, "malformed response: %s", "header section larger than max_header_size");
    gust_arena_append(&r->arena, &r->arena_len, &r->arena_cap, at, len, lower);
    return 0;
}

/* Also the start of each interim response: what it said is forgotten. */
static int on_message_begin(llhttp_t *p) {
    gust_http_reply_t *r = REPLY(p);
    r->begun = 1;
    r->arena_len = r->reason_len = r->nheaders = 0;
    r->in_field = r->headers_done = 0;
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len) {
    gust_http_reply_t *r = REPLY(p);
    if (arena_add(r, at, len, 0))
        return -1;
    r->reason_len += len;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    gust_http_reply_t *r = REPLY(p);
    if (!r->in_field) {
        if (r->nheaders == GUST_MAX_HEADERS)
            return fail(r, "malformed response: %s", "too many headers");
        gust_http_header_new(&r->headers, &r->nheaders, &r->headers_cap, (uint32_t)r->arena_len);
        r->in_field = 1;
    }
    if (arena_add(r, at, len, 1))
        return -1;
    r->headers[r->nheaders - 1].name_len += len;
    return 0;
}

static int on_header_field_complete(llhttp_t *p) {
    gust_http_reply_t *r = REPLY(p);
    r->in_field = 0;
    r->headers[r->nheaders - 1].value = r->arena_len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    gust_http_reply_t *r = REPLY(p);
    if (arena_add(r, at, len, 0))
        return -1;
    r->headers[r->nheaders - 1].value_len += len;
    return 0;
}

static int is_token(const char *v, size_t n, const char *lit) {
    size_t k = strlen(lit);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    if (n != k)
        return 0;
    for (size_t i = 0; i < k; i++)
        if ((v[i] | 0x20) != lit[i])
            return 0;
    return 1;
}

/* Returns 1 ("no body") for HEAD, 204, 304 and interim 1xx responses. */
static int on_headers_complete(llhttp_t *p) {
    gust_http_reply_t *r = REPLY(p);
    unsigned status = llhttp_get_status_code(p);
    r->status = (uint16_t)status;
    r->http_minor = llhttp_get_http_major(p) == 1 ? llhttp_get_http_minor(p) : 0;
    if (status >= 100 && status < 200)
        return 1;
    r->headers_done = 1;
    if (r->head || status == 204 || status == 304)
        return 1;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > r->max_body_size)
        return fail(r, "%s", "body larger than max_body_size");
    if (r->decompress) {
        size_t n;
        const char *ce = gust_http_reply_header(r, "content-encoding", &n);
        r->gzip = ce && (is_token(ce, n, "gzip") || is_token(ce, n, "x-gzip"));
    }
    return 0;
}

static int inflate_some(gust_http_reply_t *r, const char *at, size_t len) {
    if (!r->z_live) {
        memset(&r->z, 0, sizeof r->z);
        if (inflateInit2(&r->z, 15 + 32) != Z_OK) /* gzip or zlib header */
            return fail(r, "malformed response: %s", "gzip: cannot start inflate");
        r->z_live = 1;
    }
    unsigned char out[INFLATE_CHUNK];
    r->z.next_in = (Bytef *)at;
    r->z.avail_in = (uInt)len;
    while (r->z.avail_in > 0) {
        if (r->z_end) {
            /* Another gzip member follows (concatenated members). */
            if (inflateReset(&r->z) != Z_OK)
                return fail(r, "malformed response: %s", "gzip: reset failed");
            r->z_end = 0;
        }
        r->z.next_out = out;
        r->z.avail_out = sizeof out;
        int rc = inflate(&r->z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
            return fail(r, "malformed response: gzip: %s", r->z.msg ? r->z.msg : "bad data");
        size_t got = sizeof out - r->z.avail_out;
        if (rc == Z_STREAM_END)
            r->z_end = 1;
        if (got) {
            if (r->body_len + got > r->max_body_size)
                return fail(r, "%s", "body larger than max_body_size");
            r->body_len += got;
            if (r->on_body && r->on_body(r->arg, (const char *)out, got))
                return -1;
        }
        if (rc == Z_BUF_ERROR && got == 0)
            break; /* needs more input */
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    gust_http_reply_t *r = REPLY(p);
    if (r->wire_body + len > r->max_body_size)
        return fail(r, "%s", "body larger than max_body_size");
    r->wire_body += len;
    if (r->gzip)
        return inflate_some(r, at, len);
    r->body_len += len;
    if (r->on_body && r->on_body(r->arg, at, len))
        return -1;
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    gust_http_reply_t *r = REPLY(p);
    if (!r->headers_done)
        return 0; /* an interim 1xx response: the real one follows */
    if (r->gzip && r->wire_body > 0 && !r->z_end)
        return fail(r, "malformed response: %s", "gzip: truncated body");
    r->complete = 1;
    r->keep_alive = llhttp_should_keep_alive(p);
    return HPE_PAUSED; /* stop here: what follows is not ours */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void gust_http_reply_init(gust_http_reply_t *r, int head, int decompress, size_t max_header_size,
                          size_t max_body_size, gust_http_reply_body_cb on_body_cb, void *arg) {
    memset(r, 0, sizeof *r);
    llhttp_init(&r->parser, HTTP_RESPONSE, &settings);
    r->parser.data = r;
    r->head = head != 0;
    r->decompress = decompress != 0;
    r->max_header_size = max_header_size;
    r->max_body_size = max_body_size;
    r->on_body = on_body_cb;
    r->arg = arg;
}

void gust_http_reply_free(gust_http_reply_t *r) {
    if (r->z_live)
        inflateEnd(&r->z);
    r->z_live = 0;
    gust_free(r->arena);
    gust_free(r->headers);
    r->arena = NULL;
    r->headers = NULL;
    r->arena_cap = r->headers_cap = 0;
}

static void llhttp_failed(gust_http_reply_t *r) {
    const char *why = llhttp_get_error_reason(&r->parser);
    fail(r, "malformed response: %s",
         why && *why ? why : llhttp_errno_name(llhttp_get_errno(&r->parser)));
}

size_t gust_http_reply_feed(gust_http_reply_t *r, const char *data, size_t len) {
    if (r->complete || r->failed || len == 0)
        return 0;
    enum llhttp_errno e = llhttp_execute(&r->parser, data, len);
    if (e == HPE_OK)
        return len;
    if (e == HPE_PAUSED && r->complete)
        return (size_t)(llhttp_get_error_pos(&r->parser) - data);
    if (e == HPE_PAUSED_UPGRADE && r->headers_done) {
        /* 101 Switching Protocols, which we never ask for: the headers are
         * the whole answer and the connection is not HTTP any more. */
        r->complete = 1;
        r->keep_alive = 0;
        return (size_t)(llhttp_get_error_pos(&r->parser) - data);
    }
    if (!r->failed)
        llhttp_failed(r);
    return len;
}

int gust_http_reply_eof(gust_http_reply_t *r) {
    if (r->complete)
        return 0;
    if (r->failed)
        return -1;
    enum llhttp_errno e = llhttp_finish(&r->parser);
    if (r->complete)
        return 0;
    if (r->failed)
        return -1;
    if (e == HPE_OK) /* nothing of a response had arrived */
        return fail(r, "%s", "connection closed");
    return fail(r, "%s", "connection closed before the response was complete");
}

const char *gust_http_reply_header(const gust_http_reply_t *r, const char *lname, size_t *len) {
    return gust_http_header_find(r->arena, r->headers, r->nheaders, lname, len);
}
