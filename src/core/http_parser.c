/*
 * http_parser.c -- llhttp callbacks filling a gust_http_request_t.
 *
 * llhttp may deliver the URL, a header name or value in several pieces (one
 * per read), so every span is appended to the arena, and where a name or a
 * value ends is told by the span that follows it. Limits are checked as
 * bytes arrive, before anything is buffered past them. What llhttp 8 does
 * not check (the Host rules), lets through (obs-fold) or lumps together (an
 * unknown method and a malformed one) is checked here, and the outcome
 * never depends on how the bytes were split into reads.
 */
#include "http_parser.h"

#include <string.h>

#include "mem.h"

#define REQ(p) ((gust_http_request_t *)(p)->data)

/* Rough bytes of framing a header line costs beyond its name and value
 * (": " and CRLF), so that many tiny headers count against the limit. */
#define HEADER_OVERHEAD 4

static int fail(gust_http_request_t *r, int status, const char *why) {
    r->status = status;
    r->error = why;
    return -1;
}

/* Appends a span, lower-cased for a header name (noting whitespace in it
 * for name_done()), within the header section's limit. */
static int arena_add(gust_http_request_t *r, const char *at, size_t len, int lower) {
    if (r->arena_len + len + HEADER_OVERHEAD * (r->nheaders + 1) > r->limits->max_header_size)
        return fail(r, 431, "header section too large");
    if (gust_arena_append(&r->arena, &r->arena_len, &r->arena_cap, at, len, lower))
        r->name_ws = 1;
    return 0;
}

/* Trailer fields are not kept (RFC 9110 §6.5.1) but count against the
 * header limit so that a trailer section cannot grow without bound. */
static int trailer_add(gust_http_request_t *r, size_t len) {
    r->trailer_len += len;
    if (r->arena_len + r->trailer_len > r->limits->max_header_size)
        return fail(r, 431, "trailer section too large");
    return 0;
}

static int on_message_begin(llhttp_t *p) {
    REQ(p)->begun = 1;
    return 0;
}

/* Only whether a method had begun when a read ended: see unknown_method(). */
static int on_method(llhttp_t *p, const char *at, size_t len) {
    if (len)
        REQ(p)->method_seen = 1;
    return 0;
}

/* llhttp 8 takes "RTSP/x.y" and "ICE/x.y" for a request's protocol as well
 * as "HTTP/x.y", and does not say which it saw; only HTTP is served here.
 * The version's span starts right after the protocol's slash, so the byte
 * five before it is the 'H' of "HTTP/" or not; when the bytes came in
 * pieces, it may be in an earlier one (tail). */
static int on_version(llhttp_t *p, const char *at, size_t len) {
    gust_http_request_t *r = REQ(p);
    if (r->version_seen) /* the rest of a version that came in pieces */
        return 0;
    r->version_seen = 1;
    size_t k = (size_t)(at - r->fed);
    char c = k >= sizeof r->tail ? at[-5] : r->tail[k];
    return c == 'H' ? 0 : fail(r, 400, "not an HTTP request line");
}

/* Keeps the last five bytes fed, for on_version(). */
static void keep_tail(gust_http_request_t *r, const char *data, size_t n) {
    size_t t = sizeof r->tail;
    if (n >= t) {
        memcpy(r->tail, data + n - t, t);
    } else {
        memmove(r->tail, r->tail + n, t - n);
        memcpy(r->tail + t - n, data, n);
    }
}

gust_http_header_t *gust_http_header_new(gust_http_header_t **headers, unsigned *n, unsigned *cap,
                                         uint32_t name) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *headers = gust_realloc(*headers, *cap * sizeof **headers);
    }
    gust_http_header_t *h = &(*headers)[(*n)++];
    h->name = name;
    h->name_len = h->value = h->value_len = 0;
    return h;
}

const char *gust_http_header_find(const char *arena, const gust_http_header_t *headers, unsigned n,
                                  const char *lname, size_t *len) {
    size_t ln = strlen(lname);
    for (unsigned i = n; i-- > 0;) {
        const gust_http_header_t *h = &headers[i];
        if (h->name_len == ln && memcmp(arena + h->name, lname, ln) == 0) {
            *len = h->value_len;
            return arena + h->value;
        }
    }
    return NULL;
}

static gust_http_header_t *new_header(gust_http_request_t *r) {
    return gust_http_header_new(&r->headers, &r->nheaders, &r->headers_cap, (uint32_t)r->arena_len);
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
    gust_http_request_t *r = REQ(p);
    if (arena_add(r, at, len, 0))
        return -1;
    r->url_len += len;
    return 0;
}

/*
 * llhttp reports a header as spans -- name pieces, then value pieces, at
 * least one even for an empty value -- and can also say where each name
 * and value ends (the *_complete callbacks). Those are not asked for: a
 * name ends where its first value span comes, a value where the next name
 * or the end of the section comes, which saves two calls per header.
 */

static int name_done(gust_http_request_t *r) {
    gust_http_header_t *h = &r->headers[r->nheaders - 1];
    if (h->name_len == 0) /* ": value" */
        return fail(r, 400, "empty header name");
    if (r->name_ws)
        return fail(r, 400, "whitespace in header name");
    const char *name = r->arena + h->name;
    if (h->name_len == 6 && memcmp(name, "expect", 6) == 0)
        r->has_expect = 1;
    else if (h->name_len == 13 && memcmp(name, "if-none-match", 13) == 0)
        r->has_inm = 1;
    h->value = r->arena_len;
    r->in_field = 0;
    r->in_value = 1;
    return 0;
}

/* llhttp drops a value's leading whitespace but not its trailing one
 * (RFC 9110 §5.5: neither is part of the value). */
static void value_done(gust_http_request_t *r) {
    gust_http_header_t *h = &r->headers[r->nheaders - 1];
    while (h->value_len && (r->arena[h->value + h->value_len - 1] == ' ' ||
                            r->arena[h->value + h->value_len - 1] == '\t'))
        h->value_len--;
    r->arena_len = h->value + h->value_len; /* the value is the arena's tail */
    r->in_value = 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    gust_http_request_t *r = REQ(p);
    if (r->headers_done) { /* a trailer field: never merged into the headers */
        size_t framing = r->in_field ? 0 : HEADER_OVERHEAD; /* once per field */
        r->in_field = 1;
        return trailer_add(r, framing + len);
    }
    if (r->in_value)
        value_done(r);
    if (!r->in_field) {
        if (r->nheaders == GUST_MAX_HEADERS)
            return fail(r, 431, "too many headers");
        new_header(r);
        r->in_field = 1;
        r->name_ws = 0;
    }
    if (arena_add(r, at, len, 1))
        return -1;
    r->headers[r->nheaders - 1].name_len += len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    gust_http_request_t *r = REQ(p);
    if (r->headers_done) {
        r->in_field = 0;
        return trailer_add(r, len);
    }
    if (r->in_field) {
        if (name_done(r))
            return -1;
    } else if (!r->in_value) {
        return fail(r, 400, "empty header name");
    }
    if (arena_add(r, at, len, 0))
        return -1;
    r->headers[r->nheaders - 1].value_len += len;
    return 0;
}

static int equals_nocase(const char *a, size_t alen, const char *lit) {
    size_t n = strlen(lit);
    if (alen != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((a[i] | 0x20) != lit[i])
            return 0;
    return 1;
}

/*
 * The authority of an absolute-form target ("http://a.example:81/p" gives
 * "a.example:81") as an offset and length into the arena.
 * @return 1 for an absolute-form target, 0 for any other form, -1 for an
 *         authority that must be refused: no host (RFC 9110 §4.2.1) or
 *         userinfo (§4.2.4)
 */
static int target_authority(const gust_http_request_t *r, uint32_t *off, uint32_t *len) {
    const char *u = r->arena, *end = u + r->url_len;
    if (r->url_len == 0 || u[0] == '/' || u[0] == '*' || r->method == HTTP_CONNECT)
        return 0;
    /* llhttp only lets "scheme://" through here; check anyway. */
    const char *colon = memchr(u, ':', r->url_len);
    if (!colon || end - colon < 3 || colon[1] != '/' || colon[2] != '/')
        return 0;
    const char *a = colon + 3, *e = a;
    while (e < end && *e != '/' && *e != '?' && *e != '#')
        e++;
    if (e == a || *a == ':' || memchr(a, '@', e - a))
        return -1;
    *off = (uint32_t)(a - u);
    *len = (uint32_t)(e - a);
    return 1;
}

/* The bytes a Host value may hold (RFC 9112 §3.2, RFC 3986 §3.2.2): a
 * reg-name's unreserved, pct-encoded and sub-delims, the brackets of an
 * IP literal, and the colons of one and of a port. */
static const uint64_t host_bytes[4] = {0x2fff7ff200000000ull, 0x47fffffeaffffffeull, 0, 0};

static int valid_host(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(host_bytes[c >> 6] >> (c & 63) & 1))
            return 0;
    }
    return 1;
}

/*
 * RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host header, any
 * request at most one, and its value must be a host. For an
 * absolute-form target the target's authority wins (§3.2.2): the host
 * header's value becomes that span of the URL, and an HTTP/1.0 request
 * without one gets one, so whoever reads "host" sees the authority.
 */
static int check_host(gust_http_request_t *r) {
    gust_http_header_t *host = NULL;
    for (unsigned i = 0; i < r->nheaders; i++) {
        gust_http_header_t *h = &r->headers[i];
        if (h->name_len == 4 && memcmp(r->arena + h->name, "host", 4) == 0) {
            if (host)
                return fail(r, 400, "more than one Host header");
            host = h;
        }
    }
    if (host && !valid_host(r->arena + host->value, host->value_len))
        return fail(r, 400, "bad Host header");
    if (!host && r->http_minor != 0)
        return fail(r, 400, "no Host header");
    uint32_t off, len;
    int absolute = target_authority(r, &off, &len);
    if (absolute < 0)
        return fail(r, 400, "bad authority in the request target");
    if (!absolute)
        return 0;
    if (!host) { /* counts like a header the client sent */
        if (r->nheaders == GUST_MAX_HEADERS)
            return fail(r, 431, "too many headers");
        uint32_t name = r->arena_len;
        if (arena_add(r, "host", 4, 0))
            return -1;
        host = new_header(r);
        host->name = name;
        host->name_len = 4;
    }
    host->value = off;
    host->value_len = len;
    return 0;
}

static int on_headers_complete(llhttp_t *p) {
    gust_http_request_t *r = REQ(p);
    if (r->in_value)
        value_done(r);
    r->headers_done = 1;
    r->method = llhttp_get_method(p);
    r->http_minor = llhttp_get_http_major(p) == 1 ? llhttp_get_http_minor(p) : 0;
    r->upgrade = llhttp_get_upgrade(p);
    if (llhttp_get_http_major(p) == 0)
        return fail(r, 400, "HTTP/0.9 request line");
    if (llhttp_get_http_major(p) != 1)
        return fail(r, 505, "unsupported HTTP version");
    if (check_host(r))
        return -1;
    /* RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing. */
    if ((p->flags & F_TRANSFER_ENCODING) && r->http_minor == 0)
        r->te_http10 = 1;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > r->limits->max_body_size)
        return fail(r, 413, "body larger than max_body_size");
    size_t n;
    const char *expect = r->has_expect ? gust_http_request_header(r, "expect", &n) : NULL;
    if (expect) {
        if (!equals_nocase(expect, n, "100-continue"))
            return fail(r, 417, "unsupported Expect");
        r->expect_continue = r->http_minor >= 1;
    }
    return 0;
}

/* Checks the CRLF owed after chunk data against the bytes [data, end). */
static int check_chunk_crlf(gust_http_request_t *r, const char *data, const char *end) {
    while (r->crlf_need && r->crlf_at >= data && r->crlf_at < end) {
        if (*r->crlf_at != (r->crlf_need == 2 ? '\r' : '\n'))
            return fail(r, 400, "chunk data not followed by CRLF");
        r->crlf_at++;
        r->crlf_need--;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    gust_http_request_t *r = REQ(p);
    /* The previous chunk's CRLF lies between it and this data. */
    if (r->crlf_need && check_chunk_crlf(r, r->crlf_at, at))
        return -1;
    if (r->body_len + len > r->limits->max_body_size)
        return fail(r, 413, "body larger than max_body_size");
    if (r->body_cap - r->body_len < len) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        if ((p->flags & F_CONTENT_LENGTH) && r->body_cap == 0)
            cap = r->body_len + len + p->content_length; /* exact, known up front */
        while (cap - r->body_len < len)
            cap *= 2;
        r->body = gust_realloc(r->body, cap);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    /* llhttp 8 skips the two bytes after a chunk's data without looking at
     * them; feed() checks they are CRLF (no "5\r\nhelloXX" smuggling). */
    if ((p->flags & F_CHUNKED) && p->content_length == 0) {
        r->crlf_need = 2;
        r->crlf_at = at + len;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    gust_http_request_t *r = REQ(p);
    r->complete = 1;
    r->keep_alive = llhttp_should_keep_alive(p) && !r->upgrade && !r->te_http10;
    /* One request at a time: pipelined ones wait. After an Upgrade llhttp
     * pauses by itself (HPE_PAUSED_UPGRADE) and stays paused. */
    return r->upgrade ? 0 : HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_url = on_url,
    .on_version = on_version,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/*
 * RFC 9112 §5.2: a header line continued on the next one, which starts with
 * SP or HTAB (obs-fold), is refused with 400. llhttp 8 joins the lines into
 * one value (even "Transfer-Encoding:\r\n chunked") without telling, so the
 * header section's raw bytes are scanned before llhttp sees them: one
 * memchr per line, from the request line to the empty line that ends the
 * section. A line that starts with whitespace right after the request line
 * is refused the same way (§2.2). The trailer section is not scanned:
 * trailer fields are never kept (on_header_field).
 */
enum { SCAN_START, SCAN_LINE, SCAN_LINE_START, SCAN_CR, SCAN_DONE };

/* The bytes of data[0..len) before a fold, or len if there is none. */
static size_t scan_for_fold(gust_http_request_t *r, const char *data, size_t len) {
    const char *p = data, *end = data + len;
    while (p < end) {
        switch (r->line_scan) {
        case SCAN_START: /* llhttp skips empty lines before a request */
            if (*p != '\r' && *p != '\n')
                r->line_scan = SCAN_LINE;
            else
                p++;
            break;
        case SCAN_LINE:
            p = memchr(p, '\n', end - p);
            if (!p)
                return len;
            p++;
            r->line_scan = SCAN_LINE_START;
            break;
        case SCAN_LINE_START:
            if (*p == ' ' || *p == '\t')
                return p - data;
            r->line_scan = *p == '\r' ? SCAN_CR : *p == '\n' ? SCAN_DONE : SCAN_LINE;
            if (r->line_scan != SCAN_LINE)
                p++;
            break;
        case SCAN_CR: /* llhttp decides what a CR not followed by LF is */
            r->line_scan = *p == '\n' ? SCAN_DONE : SCAN_LINE;
            break;
        default: /* SCAN_DONE, until the next request */ return len;
        }
    }
    return len;
}

/*
 * RFC 9110 §9.1: a method the server does not know is 501 (Not Implemented),
 * but a request line that is not one is 400. llhttp says HPE_INVALID_METHOD
 * for both, at the first byte no method it knows goes on with, and stops
 * there; the rest of the request line is then read here as it arrives:
 * token SP target SP "HTTP/" DIGIT "." DIGIT CRLF gives 501, anything else
 * 400. (An RTSP method with HTTP/x.y, which llhttp refuses after "HTTP/",
 * is an unknown method too.)
 */
enum { RL_NONE, RL_METHOD0, RL_METHOD, RL_TARGET0, RL_TARGET, RL_VERSION, RL_CR, RL_LF };

static const char http_version[] = "HTTP/0.0"; /* '0': any digit */

static int is_tchar(unsigned char c) { /* RFC 9110 §5.6.2 */
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Reads request-line bytes after llhttp refused the method; takes them all. */
static size_t check_request_line(gust_http_request_t *r, const char *data, size_t len) {
    for (size_t i = 0; i < len && !r->status; i++) {
        unsigned char c = (unsigned char)data[i];
        if (++r->rl_len > r->limits->max_header_size) {
            fail(r, 431, "request line too large");
            break;
        }
        int ok;
        switch (r->rl_state) {
        case RL_METHOD0:
        case RL_METHOD:
            ok = is_tchar(c) || (c == ' ' && r->rl_state == RL_METHOD);
            r->rl_state = c == ' ' ? RL_TARGET0 : RL_METHOD;
            break;
        case RL_TARGET0:
        case RL_TARGET: /* what llhttp takes in a target, but no HTAB or FF */
            ok = (c > ' ' && c != 0x7f) || (c == ' ' && r->rl_state == RL_TARGET);
            r->rl_state = c == ' ' ? RL_VERSION : RL_TARGET;
            break;
        case RL_VERSION:
            if (http_version[r->rl_index] == '0')
                ok = c >= '0' && c <= '9';
            else
                ok = c == (unsigned char)http_version[r->rl_index];
            if (++r->rl_index == sizeof http_version - 1)
                r->rl_state = RL_CR;
            break;
        case RL_CR:
            ok = c == '\r';
            r->rl_state = RL_LF;
            break;
        default: /* RL_LF: the whole line is well-formed */
            ok = c == '\n';
            if (ok)
                fail(r, 501, "unknown method");
            break;
        }
        if (!ok)
            fail(r, 400, "invalid method");
    }
    return len;
}

/* Whether llhttp's error at `at` is an unknown method; if so, starts
 * checking the request line from there. */
static int unknown_method(gust_http_request_t *r, enum llhttp_errno e, const char *data,
                          const char *at) {
    if (e == HPE_INVALID_METHOD) {
        /* Before `at`: the method's first bytes, as far as they match one
         * llhttp knows, after any empty lines (skipped by llhttp). */
        const char *p = data;
        while (!r->method_seen && p < at && (*p == '\r' || *p == '\n'))
            p++;
        r->rl_state = r->method_seen || p < at ? RL_METHOD : RL_METHOD0;
        return 1;
    }
    static const char rtsp_method[] = "Invalid method for HTTP/x.x request";
    if (e == HPE_INVALID_CONSTANT &&
        strcmp(llhttp_get_error_reason(&r->parser), rtsp_method) == 0) {
        r->rl_state = RL_VERSION; /* at is right after "HTTP/" */
        r->rl_index = 5;
        return 1;
    }
    return 0;
}

void gust_http_request_init(gust_http_request_t *r, const gust_http_limits_t *limits) {
    memset(r, 0, sizeof *r);
    r->limits = limits;
    llhttp_init(&r->parser, HTTP_REQUEST, &settings);
    r->parser.data = r;
}

void gust_http_request_reset(gust_http_request_t *r, int release) {
    /* Keep buffers that a typical request fits in; release big ones. */
    if (release || r->arena_cap > 4096) {
        gust_free(r->arena);
        r->arena = NULL;
        r->arena_cap = 0;
    }
    if (release || r->headers_cap > 32) {
        gust_free(r->headers);
        r->headers = NULL;
        r->headers_cap = 0;
    }
    if (release || r->body_cap > 16384) {
        gust_free(r->body);
        r->body = NULL;
        r->body_cap = 0;
    }
    r->arena_len = r->url_len = r->nheaders = r->body_len = r->trailer_len = 0;
    r->crlf_need = 0;
    r->in_field = r->in_value = r->begun = r->headers_done = r->complete = 0;
    r->keep_alive = r->expect_continue = r->upgrade = r->te_http10 = 0;
    r->line_scan = SCAN_START;
    r->method_seen = r->has_expect = r->has_inm = r->name_ws = r->version_seen = 0;
    if (llhttp_get_errno(&r->parser) == HPE_PAUSED)
        llhttp_resume(&r->parser);
}

void gust_http_request_free(gust_http_request_t *r) {
    gust_free(r->arena);
    gust_free(r->headers);
    gust_free(r->body);
    r->arena = r->body = NULL;
    r->headers = NULL;
    r->arena_cap = r->body_cap = 0;
    r->headers_cap = 0;
}

void gust_http_request_recycle(gust_http_request_t *r, const gust_http_limits_t *limits) {
    gust_http_request_reset(r, 0);
    gust_http_request_t kept = *r;
    gust_http_request_init(r, limits);
    r->arena = kept.arena;
    r->arena_cap = kept.arena_cap;
    r->headers = kept.headers;
    r->headers_cap = kept.headers_cap;
    r->body = kept.body;
    r->body_cap = kept.body_cap;
}

size_t gust_http_request_feed(gust_http_request_t *r, const char *data, size_t len) {
    if (r->complete || r->status || llhttp_get_errno(&r->parser) == HPE_PAUSED_UPGRADE)
        return 0;    /* after an Upgrade the bytes are not HTTP */
    if (r->rl_state) /* llhttp has stopped at an unknown method */
        return check_request_line(r, data, len);
    if (r->crlf_need) /* owed from the previous buffer */
        r->crlf_at = data;
    /* Up to a fold only, so that whatever llhttp finds wrong before it
     * decides the status, as it would if the bytes came one at a time. */
    size_t n = scan_for_fold(r, data, len);
    r->fed = data;
    enum llhttp_errno e = llhttp_execute(&r->parser, data, n);
    if (!r->version_seen)
        keep_tail(r, data, n);
    if (r->crlf_need && check_chunk_crlf(r, data, data + n)) {
        r->complete = 0;
        return len;
    }
    if (e == HPE_OK) {
        if (n < len)
            fail(r, 400, "obs-fold in the header section");
        return len;
    }
    if (e == HPE_PAUSED && r->complete)
        return (size_t)(llhttp_get_error_pos(&r->parser) - data);
    if (e == HPE_PAUSED_UPGRADE) {
        /* The bytes after an Upgrade request belong to the new protocol;
         * until something takes the connection over, it closes after.
         * on_message_complete has set complete and keep_alive. */
        return (size_t)(llhttp_get_error_pos(&r->parser) - data);
    }
    if (!r->status) {
        const char *at = llhttp_get_error_pos(&r->parser);
        if (unknown_method(r, e, data, at)) {
            check_request_line(r, at, (size_t)(data + len - at));
            return len;
        }
        r->status = 400;
        r->error = llhttp_get_error_reason(&r->parser);
    }
    return len;
}

const char *gust_http_request_header(const gust_http_request_t *r, const char *lname, size_t *len) {
    return gust_http_header_find(r->arena, r->headers, r->nheaders, lname, len);
}
