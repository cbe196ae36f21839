/*
 * http_reply.h -- the HTTP/1.1 client's response parser (http_reply.c):
 * llhttp in response mode, limits, gzip decoding. Pure protocol code: bytes
 * in, one parsed response out.
 */
#ifndef GUST_HTTP_REPLY_H
#define GUST_HTTP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <zlib.h>

#include "http_parser.h" /* gust_http_header_t, GUST_MAX_HEADERS */

/* Gets each piece of the (decoded) body; returns 0, or -1 to stop parsing
 * with r->error set by the callee. */
typedef int (*gust_http_reply_body_cb)(void *arg, const char *data, size_t len);

typedef struct gust_http_reply {
    llhttp_t parser;
    size_t max_header_size; /* status line + header section */
    size_t max_body_size;   /* body bytes, on the wire and decoded */
    gust_http_reply_body_cb on_body;
    void *arg;

    char *arena; /* reason phrase at offset 0, then names (lower-case) and values */
    size_t arena_len, arena_cap;
    uint32_t reason_len;
    gust_http_header_t *headers;
    unsigned nheaders, headers_cap;

    uint64_t wire_body, body_len; /* body bytes received, and delivered */
    z_stream z;
    char error[160]; /* why it failed, set with r->failed */
    uint16_t status;
    uint8_t http_minor;
    unsigned head : 1, decompress : 1, begun : 1, in_field : 1, headers_done : 1, complete : 1,
        keep_alive : 1, failed : 1, gzip : 1, z_live : 1, z_end : 1;
} gust_http_reply_t;

/* `head`: the request was HEAD, so no body follows whatever the headers
 * say; `decompress`: a gzip Content-Encoding is decoded before on_body. */
void gust_http_reply_init(gust_http_reply_t *r, int head, int decompress, size_t max_header_size,
                          size_t max_body_size, gust_http_reply_body_cb on_body, void *arg);
void gust_http_reply_free(gust_http_reply_t *r);

/*
 * Parses up to `len` bytes. 1xx interim responses are skipped. Parsing
 * stops right after the final response (r->complete); the bytes after it
 * are not consumed.
 * @return bytes consumed; on failure r->failed is set and r->error says why
 *         ("malformed response: <llhttp reason>", "body larger than
 *         max_body_size", ...)
 */
size_t gust_http_reply_feed(gust_http_reply_t *r, const char *data, size_t len);

/* The peer closed. A body delimited by the close is complete now; any
 * other unfinished response fails. Returns 0 when r->complete. */
int gust_http_reply_eof(gust_http_reply_t *r);

/* The last value of header `lname` (lower-case), or NULL. */
const char *gust_http_reply_header(const gust_http_reply_t *r, const char *lname, size_t *len);

#endif
