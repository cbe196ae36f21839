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
void gust_http_status_line(gust_buf_t *b, int http_minor, int status, const char *reason,
                           size_t reason_len);

/* "Name: value\r\n". Inline: a response head has several. */
static inline void gust_http_header_line(gust_buf_t *b, const char *name, size_t nlen,
                                         const char *value, size_t vlen) {
    gust_buf_reserve(b, nlen + vlen + 4);
    char *p = b->p + b->len;
    memcpy(p, name, nlen);
    p[nlen] = ':';
    p[nlen + 1] = ' ';
    memcpy(p + nlen + 2, value, vlen);
    p[nlen + 2 + vlen] = '\r';
    p[nlen + 3 + vlen] = '\n';
    b->len += nlen + vlen + 4;
}

/* Writes the IMF-fixdate for `t` into out (GUST_HTTP_DATE_LEN + NUL). */
void gust_http_date(time_t t, char *out);

/* A strong ETag for `body`: '"' + 32 hex digits + '"' (no NUL), the
 * XXH3-128 of the bytes; _from_hash renders a digest computed elsewhere
 * (in pieces). */
void gust_http_etag(const void *body, size_t len, char out[GUST_ETAG_LEN]);
void gust_http_etag_from_hash(uint64_t high, uint64_t low, char out[GUST_ETAG_LEN]);

/* Whether an If-None-Match header value matches `etag` (weak comparison,
 * "*" matches anything), as RFC 9110 §13.1.2 asks for GET. */
int gust_http_etag_matches(const char *inm, size_t inm_len, const char *etag, size_t etag_len);

/* Statuses that never carry a body: 1xx, 204, 304. */
static inline int gust_http_status_has_body(int status) {
    return status >= 200 && status != 204 && status != 304;
}

/*
 * A response head being built: the status, the handler's headers in order,
 * and what the core must know of them. gust_http_head_add() applies the
 * framing rules: Content-Length and Transfer-Encoding are the core's (a
 * handler's Content-Length is kept only for HEAD), `Connection: close`
 * ends keep-alive, and Server, Date and Content-Type are added later only
 * when the handler set none.
 */
typedef struct gust_http_head {
    int status;
    const char *reason;
    size_t reason_len;
    unsigned close : 1, has_ct : 1, has_server : 1, has_date : 1;
    const char *user_length; /* the handler's Content-Length (HEAD) */
    size_t user_length_len;
    const char *etag; /* the handler's ETag, if any */
    size_t etag_len;
    gust_buf_t hdrs;
    char storage[1024];
} gust_http_head_t;

/* `reason` NULL: the standard phrase, or "Unknown". The strings given to
 * init and add must live until the head is written. */
void gust_http_head_init(gust_http_head_t *h, int status, const char *reason, size_t reason_len);
/* @return 0, or -1 when a name or value is not valid in a header (CR, LF,
 *         NUL, or an empty or non-token name) */
int gust_http_head_add(gust_http_head_t *h, const char *name, size_t nlen, const char *value,
                       size_t vlen);
void gust_http_head_free(gust_http_head_t *h);

typedef struct gust_http_head_frame {
    int http_minor;
    const char *date;         /* GUST_HTTP_DATE_LEN bytes */
    long long content_length; /* -1: unknown (chunked or close-delimited) */
    unsigned chunked : 1, is_head : 1, keep_alive : 1;
} gust_http_head_frame_t;

/* Serialises the head into `out`: status line, Server, Date, Content-Type,
 * framing, Connection, the handler's headers, the blank line. */
void gust_http_head_write(const gust_http_head_t *h, const gust_http_head_frame_t *f,
                          gust_buf_t *out);

/* "<hex len>\r\n" for a chunk of `len` bytes; returns bytes written (<= 18). */
size_t gust_http_chunk_header(size_t len, char *out);

#endif
