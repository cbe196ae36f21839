/*
 * http_response.h -- the pure pieces of writing an HTTP/1.1 response:
 * reason phrases, the status line, dates, ETags and chunk framing. The
 * connection code (conn.c) and the Lua binding (lua_request.c) assemble a
 * response from these into the connection's output buffer.
 */
#ifndef GUST_HTTP_RESPONSE_H
#define GUST_HTTP_RESPONSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mem.h"

#define GUST_HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */
#define GUST_ETAG_LEN 34      /* a quoted 128-bit hash in hex */

/* The standard reason phrase for `status`, or NULL when it has none. */
const char *gust_http_reason(int status);

/* "HTTP/1.x NNN Reason\r\n" */
void gust_http_status_line(gust_buf_t *b, int http_minor, int status,
                           const char *reason, size_t reason_len);

/* "Name: value\r\n" */
void gust_http_header_line(gust_buf_t *b, const char *name, size_t nlen,
                           const char *value, size_t vlen);

/* Writes the IMF-fixdate for `t` into out (GUST_HTTP_DATE_LEN + NUL). */
void gust_http_date(time_t t, char *out);

/* A strong ETag for `body`: '"' + 32 hex digits + '"' (no NUL), the
 * XXH3-128 of the bytes; _from_hash renders a digest computed elsewhere
 * (in pieces). */
void gust_http_etag(const void *body, size_t len, char out[GUST_ETAG_LEN]);
void gust_http_etag_from_hash(uint64_t high, uint64_t low, char out[GUST_ETAG_LEN]);

/* Whether an If-None-Match header value matches `etag` (weak comparison,
 * "*" matches anything), as RFC 9110 §13.1.2 asks for GET. */
int gust_http_etag_matches(const char *inm, size_t inm_len, const char *etag,
                           size_t etag_len);

/* Statuses that never carry a body: 1xx, 204, 304. */
static inline int gust_http_status_has_body(int status) {
    return status >= 200 && status != 204 && status != 304;
}

/* "<hex len>\r\n" for a chunk of `len` bytes; returns bytes written (<= 18). */
size_t gust_http_chunk_header(size_t len, char *out);

#endif
