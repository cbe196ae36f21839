/*
 * request.c -- gust_request_t (request.h): routing a parsed request to its
 * handler (the --metrics path, C handlers by prefix, else the listener's
 * handler), writing its response, and the public C request API of gust.h.
 *
 * A response goes out in one write when it can: the head and a small body
 * are assembled in one buffer; larger bodies follow as they are.
 */
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "conn.h"
#include "listener.h"
#include "mem.h"
#include "request.h"

/* Bodies up to this size are copied into the head's buffer and leave in a
 * single write; larger ones are added to the output as they are. */
#define INLINE_BODY_MAX (64 * 1024)

static const gust_request_handler_t c_handler;

/* ---- routing --------------------------------------------------------- */

/* Splits the target into path and query; an absolute-form target
 * ("http://host/p") is reduced to its path. */
static void split_target(gust_request_t *r, const gust_http_request_t *m) {
    const char *url = m->arena, *end = url + m->url_len;
    if (m->url_len && url[0] != '/') {
        const char *scheme = memchr(url, ':', m->url_len);
        if (scheme && end - scheme > 3 && scheme[1] == '/' && scheme[2] == '/') {
            const char *p = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
            url = p ? p : end;
        }
    }
    const char *q = memchr(url, '?', (size_t)(end - url));
    if (url == end) {
        r->path = "/";
        r->path_len = 1;
    } else {
        r->path = url;
        r->path_len = (size_t)((q ? q : end) - url);
    }
    r->query = q ? q + 1 : "";
    r->query_len = q ? (size_t)(end - q - 1) : 0;
}

/* Answers GET --metrics PATH in the core: it works when the app is stuck,
 * and costs the app nothing. */
static void serve_metrics(gust_conn_t *c, int keep_alive) {
    size_t blen;
    char *body = gust_metrics_render(c->core->metrics, &blen);
    gust_conn_write_simple(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, blen,
                           keep_alive);
    gust_free(body);
    gust_conn_response_done(c, keep_alive);
    gust_conn_send(c);
}

void gust_request_begin(gust_request_t *r, gust_conn_t *c, const gust_http_request_t *msg) {
    memset(r, 0, sizeof *r);
    r->conn = c;
    r->msg = msg;
    r->keep_alive = msg->keep_alive;
    split_target(r, msg);
    gust_core_t *core = c->core;
    const char *mp = core->cfg.metrics_path;
    if (mp && (msg->method == HTTP_GET || msg->method == HTTP_HEAD) && strlen(mp) == r->path_len &&
        memcmp(mp, r->path, r->path_len) == 0) {
        r->conn = NULL;
        serve_metrics(c, msg->keep_alive);
        return;
    }
    void *arg;
    gust_handler_fn fn =
        core->prefixes ? gust_core_find_handler(core, r->path, r->path_len, &arg) : NULL;
    if (fn) {
        r->handler = &c_handler;
        r->handler_arg = NULL;
        gust_conn_incref(c);
        fn(r, arg);
        gust_conn_decref(c);
        return;
    }
    r->handler = c->listener->handler;
    r->handler_arg = c->listener->handler_arg;
    r->handler->on_request(r, r->handler_arg);
}

void gust_request_client_left(gust_request_t *r) {
    if (r->told_left || !r->conn)
        return;
    r->told_left = 1;
    if (r->handler->on_client_left)
        r->handler->on_client_left(r, r->handler_arg);
}

void gust_request_flushed(gust_request_t *r, int ok) {
    if (!r->flushing)
        return;
    r->flushing = 0;
    if (r->handler->on_flushed)
        r->handler->on_flushed(r, ok, r->handler_arg);
}

void gust_request_over(gust_request_t *r) {
    if (!r->conn)
        return;
    gust_request_flushed(r, 0);
    r->conn = NULL;
    if (r->handler && r->handler->on_end)
        r->handler->on_end(r, r->handler_arg);
}

int gust_request_is_tls(const gust_request_t *r) { return r->conn && r->conn->tls.ssl; }

int gust_request_http_minor(const gust_request_t *r) { return r->msg->http_minor; }

void gust_request_access(const gust_request_t *r, gust_access_t *a) {
    gust_conn_access(r->conn, a);
}

/* ---- writing the response ------------------------------------------ */

static int is_head(const gust_request_t *r) { return r->msg->method == HTTP_HEAD; }

/* The status the access log records: a client that closed its side before
 * the answer is a 499, as nginx logs it, whatever the handler then sent. */
static int logged_status(const gust_request_t *r, int status) {
    return r->told_left ? 499 : status;
}

static size_t body_length(const struct iovec *body, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += body[i].iov_len;
    return len;
}

/* Appends the body: into `b` when small, else straight to the output after
 * `b` has been written. */
static void body_write(gust_conn_t *c, const struct iovec *body, int n, size_t len, gust_buf_t *b,
                       int chunked) {
    char ch[24];
    if (chunked && len) {
        size_t hn = gust_http_chunk_header(len, ch);
        gust_buf_add(b, ch, hn);
    }
    if (len <= INLINE_BODY_MAX) {
        for (int i = 0; i < n; i++)
            gust_buf_add(b, body[i].iov_base, body[i].iov_len);
        if (chunked && len)
            gust_buf_addlit(b, "\r\n");
        gust_conn_write(c, b->p, b->len);
        return;
    }
    gust_conn_write(c, b->p, b->len);
    for (int i = 0; i < n; i++)
        gust_conn_write(c, body[i].iov_base, body[i].iov_len);
    if (chunked)
        gust_conn_write(c, "\r\n", 2);
}

static void head_out(gust_request_t *r, gust_http_head_t *hd, long long content_length, int chunked,
                     gust_buf_t *out) {
    gust_conn_t *c = r->conn;
    if (hd->close || c->core->stopping)
        r->keep_alive = 0;
    gust_http_head_frame_t f = {r->msg->http_minor, gust_core_date(c->core),
                                content_length,     chunked,
                                is_head(r),         r->keep_alive};
    gust_http_head_write(hd, &f, out);
}

/* A strong ETag for the body pieces, as if joined (Tornado's compute_etag). */
static void body_etag(const struct iovec *body, int n, size_t len, char etag[GUST_ETAG_LEN]) {
    if (n <= 1) {
        gust_http_etag(n ? body[0].iov_base : "", n ? len : 0, etag);
        return;
    }
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    for (int i = 0; i < n; i++)
        XXH3_128bits_update(&st, body[i].iov_base, body[i].iov_len);
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    gust_http_etag_from_hash(h.high64, h.low64, etag);
}

int gust_request_finish(gust_request_t *r, gust_http_head_t *hd, const struct iovec *body,
                        int nbody) {
    gust_conn_t *c = r->conn;
    if (!c)
        return -1;
    size_t len = body_length(body, nbody);
    char storage[4096];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    gust_conn_incref(c);
    int status;
    if (r->started) {
        /* After flush(): the head is out; end the body. */
        status = r->resp_status;
        r->keep_alive = r->chunked && r->keep_alive;
        if (!is_head(r))
            body_write(c, body, nbody, len, &b, r->chunked);
        if (r->chunked && !is_head(r))
            gust_conn_write(c, "0\r\n\r\n", 5);
    } else {
        int has_body = gust_http_status_has_body(hd->status);
        if (hd->status == 200 && (r->msg->method == HTTP_GET || is_head(r))) {
            /* Tornado's default: a strong ETag on every GET answer, and 304
             * without a body when the client already has it. */
            char etag[GUST_ETAG_LEN];
            const char *tag = hd->etag;
            size_t tag_len = hd->etag_len;
            if (!tag) {
                body_etag(body, nbody, len, etag);
                gust_http_header_line(&hd->hdrs, "Etag", 4, etag, GUST_ETAG_LEN);
                tag = etag;
                tag_len = GUST_ETAG_LEN;
            }
            size_t inm_len;
            const char *inm = r->msg->has_inm
                                  ? gust_http_request_header(r->msg, "if-none-match", &inm_len)
                                  : NULL;
            if (inm && gust_http_etag_matches(inm, inm_len, tag, tag_len)) {
                hd->status = 304;
                hd->reason = "Not Modified";
                hd->reason_len = 12;
                has_body = 0;
            }
        }
        status = hd->status;
        head_out(r, hd, (long long)len, 0, &b);
        if (has_body && !is_head(r))
            body_write(c, body, nbody, len, &b, 0);
        else
            gust_conn_write(c, b.p, b.len);
    }
    gust_buf_free(&b);
    int keep_alive = r->keep_alive;
    gust_conn_log_access(c, logged_status(r, status), r->told_left ? 0 : len);
    gust_conn_response_done(c, keep_alive);
    gust_conn_send(c);
    gust_conn_decref(c);
    return 0;
}

int gust_request_flush(gust_request_t *r, gust_http_head_t *hd, const struct iovec *body,
                       int nbody) {
    gust_conn_t *c = r->conn;
    if (!c)
        return -1;
    size_t len = body_length(body, nbody);
    char storage[4096];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    int allowed;
    if (!r->started) {
        allowed = gust_http_status_has_body(hd->status) && !is_head(r);
        r->chunked = allowed && r->msg->http_minor;
        /* HTTP/1.0 has no chunks: the end of the body is the end of the
         * connection. */
        if (!r->chunked && allowed)
            r->keep_alive = 0;
        head_out(r, hd, -1, r->chunked, &b);
        r->started = 1;
        r->resp_status = hd->status;
        gust_conn_nodelay(c); /* the chunks that follow are small writes */
    } else {
        allowed = !is_head(r);
    }
    if (allowed && len)
        body_write(c, body, nbody, len, &b, r->chunked);
    else
        gust_conn_write(c, b.p, b.len);
    gust_buf_free(&b);
    gust_conn_incref(c);
    int drained = gust_conn_send(c);
    int dead = c->state == CONN_CLOSED;
    gust_conn_decref(c);
    if (dead)
        return -1;
    if (!drained)
        r->flushing = 1;
    return drained;
}

int gust_request_send_file(gust_request_t *r, gust_http_head_t *hd, int fd, off_t offset,
                           off_t length) {
    gust_conn_t *c = r->conn;
    if (!c || r->started) {
        close(fd);
        return -1;
    }
    char storage[2048];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    head_out(r, hd, (long long)length, 0, &b);
    gust_conn_write(c, b.p, b.len);
    gust_buf_free(&b);
    if (!is_head(r) && length > 0 && gust_http_status_has_body(hd->status))
        gust_conn_write_file(c, fd, offset, length);
    else
        close(fd);
    gust_conn_incref(c);
    gust_conn_log_access(c, logged_status(r, hd->status), r->told_left ? 0 : (size_t)length);
    gust_conn_response_done(c, r->keep_alive);
    gust_conn_send(c);
    gust_conn_decref(c);
    return 0;
}

int gust_request_detach(gust_request_t *r, struct evbuffer *rest, struct ssl_st **ssl) {
    gust_conn_t *c = r->conn;
    if (!c)
        return GUST_DETACH_CLOSED;
    gust_conn_incref(c);
    int fd = gust_conn_detach(c, rest, ssl);
    gust_conn_decref(c);
    return fd;
}

void gust_request_abort(gust_request_t *r) {
    if (r->conn)
        gust_conn_close(r->conn);
}

void gust_request_fail(gust_request_t *r) {
    gust_conn_t *c = r->conn;
    if (!c || c->state != CONN_HANDLING)
        return;
    if (r->started) {
        gust_conn_close(c);
        return;
    }
    gust_conn_incref(c);
    char body[160];
    size_t blen = gust_error_page(500, body, sizeof body);
    gust_conn_write_simple(c, 500, "text/html; charset=UTF-8", body, blen, 0);
    gust_conn_response_done(c, 0);
    gust_conn_send(c);
    gust_conn_decref(c);
}

/* ---- the public C API (gust.h) -------------------------------------- */

static void c_on_end(gust_request_t *r, void *arg) {
    if (r->on_close) {
        void (*fn)(gust_request_t *, void *) = r->on_close;
        r->on_close = NULL;
        fn(r, r->on_close_arg);
    }
}

/* C handlers hear of the end only when they did not cause it themselves:
 * gust_request_respond/end clear on_close before they finish. */
static const gust_request_handler_t c_handler = {NULL, NULL, NULL, c_on_end};

const char *gust_request_method(const gust_request_t *r) {
    return llhttp_method_name((llhttp_method_t)r->msg->method);
}

const char *gust_request_path(const gust_request_t *r, size_t *len) {
    *len = r->path_len;
    return r->path;
}

const char *gust_request_query(const gust_request_t *r, size_t *len) {
    *len = r->query_len;
    return r->query;
}

const char *gust_request_header(const gust_request_t *r, const char *name, size_t *len) {
    char lname[128];
    size_t n = strlen(name);
    if (n >= sizeof lname)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        lname[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    return gust_http_request_header(r->msg, lname, len);
}

const char *gust_request_body(const gust_request_t *r, size_t *len) {
    *len = r->msg->body_len;
    return r->msg->body ? r->msg->body : "";
}

const char *gust_request_remote_ip(const gust_request_t *r) {
    return r->conn ? r->conn->remote_ip : "";
}

void gust_request_on_close(gust_request_t *r, void (*fn)(gust_request_t *, void *), void *arg) {
    r->on_close = fn;
    r->on_close_arg = arg;
}

/* A head from a NULL-terminated name, value list; -1 on an invalid one. */
static int head_from(gust_http_head_t *hd, int status, const char *const *headers) {
    gust_http_head_init(hd, status, NULL, 0);
    for (size_t i = 0; headers && headers[i]; i += 2) {
        if (!headers[i + 1] || gust_http_head_add(hd, headers[i], strlen(headers[i]),
                                                  headers[i + 1], strlen(headers[i + 1])) != 0) {
            gust_http_head_free(hd);
            return -1;
        }
    }
    return 0;
}

int gust_request_respond(gust_request_t *r, int status, const char *const *headers,
                         const void *body, size_t len) {
    gust_http_head_t hd;
    if (!r->conn || r->started)
        return -1;
    if (status < 100 || status > 999 || head_from(&hd, status, headers) != 0) {
        gust_request_abort(r);
        return -1;
    }
    r->on_close = NULL;
    struct iovec iov = {(void *)body, len};
    int rc = gust_request_finish(r, &hd, &iov, len ? 1 : 0);
    gust_http_head_free(&hd);
    return rc;
}

int gust_request_start(gust_request_t *r, int status, const char *const *headers) {
    gust_http_head_t hd;
    if (!r->conn || r->started)
        return -1;
    if (status < 100 || status > 999 || head_from(&hd, status, headers) != 0) {
        gust_request_abort(r);
        return -1;
    }
    int rc = gust_request_flush(r, &hd, NULL, 0);
    gust_http_head_free(&hd);
    return rc < 0 ? -1 : 0;
}

int gust_request_write(gust_request_t *r, const void *data, size_t len) {
    if (!r->conn || !r->started)
        return -1;
    struct iovec iov = {(void *)data, len};
    /* The output is bounded by the socket's pace only through the caller;
     * a C handler that streams much should watch its client (on_close). */
    r->flushing = 0;
    return gust_request_flush(r, NULL, &iov, 1) < 0 ? -1 : 0;
}

int gust_request_end(gust_request_t *r) {
    if (!r->conn || !r->started)
        return -1;
    r->on_close = NULL;
    r->flushing = 0;
    return gust_request_finish(r, NULL, NULL, 0);
}
