/*
 * http_parser.h -- HTTP/1.x request parsing on top of llhttp.
 *
 * Pure protocol code: bytes in, one parsed request out, no sockets and no
 * Lua. It enforces the peer-controlled limits of DESIGN.md §6 while parsing
 * and says which status a bad request deserves. The request's URL, header
 * names (lower-cased) and values are copied into one arena so they outlive
 * the read buffer they came from.
 */
#ifndef GUST_HTTP_PARSER_H
#define GUST_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#define GUST_MAX_HEADERS 100

typedef struct gust_http_limits {
    size_t max_header_size; /* request line + header section, bytes */
    size_t max_body_size;
} gust_http_limits_t;

typedef struct gust_http_header {
    uint32_t name, name_len, value, value_len; /* offsets into the arena */
} gust_http_header_t;

/* The header table both parsers keep (a request's, a reply's): entries
 * *n of *cap in *headers, names and values in an arena. A new empty entry
 * whose name starts at arena offset `name`, the array grown as needed. */
gust_http_header_t *gust_http_header_new(gust_http_header_t **headers, unsigned *n, unsigned *cap,
                                         uint32_t name);
/* The value of the last entry named `lname` (lower-case), or NULL. */
const char *gust_http_header_find(const char *arena, const gust_http_header_t *headers, unsigned n,
                                  const char *lname, size_t *len);

typedef struct gust_http_request {
    llhttp_t parser;
    const gust_http_limits_t *limits;

    char *arena; /* URL at offset 0, then header names and values */
    size_t arena_len, arena_cap;
    uint32_t url_len;
    gust_http_header_t *headers;
    unsigned nheaders, headers_cap;

    char *body;
    size_t body_len, body_cap;
    size_t trailer_len;  /* trailer bytes seen, counted but not kept */
    const char *crlf_at; /* where the CRLF owed after chunk data starts */
    int crlf_need;       /* bytes of it not yet checked */

    int status;        /* the error status to answer with, 0 while fine */
    const char *error; /* why, for the log */
    uint8_t method;    /* llhttp_method_t */
    uint8_t http_minor;
    uint8_t line_scan; /* where the obs-fold scan is in the header section */
    uint8_t rl_state;  /* after an unknown method: where its request line is */
    uint8_t rl_index;  /* bytes of "HTTP/x.y" seen */
    uint32_t rl_len;   /* bytes of the request line checked */
    const char *fed;   /* the first byte of what is being parsed */
    char tail[5];      /* the five bytes fed before it, while the version is to come */
    unsigned in_field : 1, in_value : 1, begun : 1, headers_done : 1, complete : 1, keep_alive : 1,
        expect_continue : 1, upgrade : 1, te_http10 : 1, method_seen : 1, has_expect : 1,
        has_inm : 1,      /* an Expect, an If-None-Match header came: worth a look-up */
        name_ws : 1,      /* whitespace in the header name being read */
        version_seen : 1; /* the request line's protocol was checked */
} gust_http_request_t;

void gust_http_request_init(gust_http_request_t *r, const gust_http_limits_t *limits);

/* Forgets the finished request so the next one can be parsed; keeps small
 * buffers for reuse unless `release` is set. */
void gust_http_request_reset(gust_http_request_t *r, int release);

void gust_http_request_free(gust_http_request_t *r);

/* Makes `r` ready for the first request of another connection, with
 * `limits`: forgets whatever it was in the middle of (half a request, an
 * error) and keeps small buffers, as gust_http_request_reset() does. */
void gust_http_request_recycle(gust_http_request_t *r, const gust_http_limits_t *limits);

/*
 * Parses up to `len` bytes. Parsing stops right after a complete message
 * (r->complete) so pipelined requests are taken one at a time.
 * @return the number of bytes consumed; on a bad request r->status is set
 *         (400, 413, 417, 431, 501 for a method that is a token llhttp does
 *         not know, 505) and the connection must answer and close;
 *         the header section is refused with 400 when a line is folded
 *         (obs-fold, RFC 9112 §5.2)
 */
size_t gust_http_request_feed(gust_http_request_t *r, const char *data, size_t len);

/* The value of the last header named `lname` (lower-case), or NULL. For a
 * request whose target is in absolute form ("http://a.example:81/p"), the
 * "host" header is the target's authority ("a.example:81", RFC 9112 §3.2.2),
 * added when the request had none. */
const char *gust_http_request_header(const gust_http_request_t *r, const char *lname, size_t *len);

static inline const char *gust_http_request_url(const gust_http_request_t *r) { return r->arena; }

#endif
