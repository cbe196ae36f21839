/*
 * lua_request.c -- the "gust.request" handle: how a Lua handler reads its
 * request and writes its response.
 *
 * Each request runs the listener's handler in a fresh coroutine with a
 * handle that points at the connection. The handle is a handle, not the
 * owner: the connection clears it when the response is finished or the peer
 * leaves, and its methods then answer nil, "closed". The connection anchors
 * the handle in the registry while the request is in flight, so the pointer
 * it keeps can never outlive the userdata.
 *
 * Responses are assembled in one buffer (status line, the handler's headers,
 * Server/Date/Content-Type/Content-Length, the body) and written at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <lauxlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "server.h"
#include "stream.h"

#define REQUEST_MT "gust.request"

/* Bodies up to this size are copied into the head's buffer and leave in a
 * single write; larger ones are added to the output as they are. */
#define INLINE_BODY_MAX (64 * 1024)

static const char server_header[] = "Server: gust/" GUST_VERSION "\r\n";

static gust_conn_t *check_conn(lua_State *L) {
    gust_req_handle_t *h = luaL_checkudata(L, 1, REQUEST_MT);
    return h->conn;
}

static int closed(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
}

/* Ends a request whose handler raised: a 500 when nothing was sent yet,
 * else a cut connection, the only honest end of a half-sent response. */
static void fail_request(gust_conn_t *c) {
    if (c->started) {
        gust_conn_close(c);
        return;
    }
    char body[160];
    size_t blen = gust_error_page(500, body, sizeof body);
    gust_conn_write_simple(c, 500, "text/html; charset=UTF-8", body, blen, 0);
    gust_conn_response_done(c, 0);
    gust_conn_send(c);
}

/* Answers GET --metrics PATH from C: no Lua, so it works when the app is
 * stuck, and costs the app nothing. */
static void serve_metrics(gust_conn_t *c) {
    size_t blen;
    char *body = gust_metrics_render(c->server->metrics, &blen);
    gust_conn_write_simple(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, blen,
                           c->req.keep_alive);
    gust_free(body);
    gust_conn_response_done(c, c->req.keep_alive);
    gust_conn_send(c);
}

void gust_request_dispatch(gust_conn_t *c) {
    gust_server_t *s = c->server;
    gust_http_request_t *r = &c->req;

    /* Split the target into path and query; an absolute-form target
     * ("http://host/p") is reduced to its path. */
    const char *url = r->arena, *end = url + r->url_len;
    if (r->url_len && url[0] != '/') {
        const char *scheme = memchr(url, ':', r->url_len);
        if (scheme && end - scheme > 3 && scheme[1] == '/' && scheme[2] == '/') {
            const char *p = memchr(scheme + 3, '/', end - scheme - 3);
            url = p ? p : end;
        }
    }
    const char *q = memchr(url, '?', end - url);
    size_t path_len = (q ? q : end) - url;
    const char *mp = s->cfg.metrics_path;
    if (mp && (r->method == HTTP_GET || r->method == HTTP_HEAD) && strlen(mp) == path_len &&
        memcmp(mp, url, path_len) == 0) {
        serve_metrics(c);
        return;
    }

    lua_State *co = gust_sched_thread(s);
    lua_rawgeti(co, LUA_REGISTRYINDEX, s->dispatch_ref);
    lua_rawgeti(co, LUA_REGISTRYINDEX, c->listener->handler_ref);
    gust_req_handle_t *h = lua_newuserdata(co, sizeof *h);
    lua_rawgeti(co, LUA_REGISTRYINDEX, s->request_mt_ref);
    lua_setmetatable(co, -2);
    h->conn = c;
    c->handle = h;
    lua_pushvalue(co, -1);
    c->handle_ref = luaL_ref(co, LUA_REGISTRYINDEX);
    lua_pushstring(co, llhttp_method_name(r->method));
    if (url == end)
        lua_pushliteral(co, "/");
    else
        lua_pushlstring(co, url, path_len);
    if (q)
        lua_pushlstring(co, q + 1, end - q - 1);
    else
        lua_pushliteral(co, "");
    /* The body's length lets the framework skip req:body() when it is 0. */
    lua_pushinteger(co, (lua_Integer)r->body_len);

    c->in_dispatch = 1;
    /* Named by the watchdog if this blocks; copied, since a finished
     * response resets the request. */
    const char *m = llhttp_method_name(r->method);
    size_t mlen = strlen(m), ulen = r->url_len;
    if (mlen + 1 + ulen >= sizeof s->running_what)
        ulen = sizeof s->running_what - mlen - 2;
    memcpy(s->running_what, m, mlen);
    s->running_what[mlen] = ' ';
    memcpy(s->running_what + mlen + 1, r->arena, ulen);
    s->running_what[mlen + 1 + ulen] = 0;
    int rc = gust_sched_resume(s, co, 6);
    s->running_what[0] = 0;
    c->in_dispatch = 0;
    gust_sched_release(s, co, rc);
    if (rc != 0 && rc != LUA_YIELD && c->handle == h)
        fail_request(c); /* only if the trampoline itself failed (out of memory) */
}

void gust_request_invalidate(gust_conn_t *c) {
    if (!c->handle)
        return;
    c->handle->conn = NULL;
    c->handle = NULL;
    if (c->server->L)
        luaL_unref(c->server->L, LUA_REGISTRYINDEX, c->handle_ref);
    c->handle_ref = LUA_NOREF;
    c->told_left = 0;
}

void gust_request_client_left(gust_conn_t *c) {
    gust_server_t *s = c->server;
    if (c->told_left || !c->handle || !s->L || s->close_hook_ref == LUA_NOREF)
        return;
    c->told_left = 1;
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->close_hook_ref);
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, c->handle_ref);
    gust_sched_start(s, s->L, 1);
}

/* ---- reading the request ------------------------------------------- */

/* req:headers() -> {name1, value1, ...}, names lower-cased  [-1, +1|2, e] */
static int req_headers(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (!c)
        return closed(L);
    const gust_http_request_t *r = &c->req;
    lua_createtable(L, (int)r->nheaders * 2, 0);
    for (unsigned i = 0; i < r->nheaders; i++) {
        const gust_http_header_t *h = &r->headers[i];
        lua_pushlstring(L, r->arena + h->name, h->name_len);
        lua_rawseti(L, -2, 2 * i + 1);
        lua_pushlstring(L, r->arena + h->value, h->value_len);
        lua_rawseti(L, -2, 2 * i + 2);
    }
    return 1;
}

/* req:body() -> string  [-1, +1|2, e] */
static int req_body(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (!c)
        return closed(L);
    lua_pushlstring(L, c->req.body ? c->req.body : "", c->req.body_len);
    return 1;
}

/* req:uri() -> the raw request target  [-1, +1|2, e] */
static int req_uri(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (!c)
        return closed(L);
    lua_pushlstring(L, c->req.arena, c->req.url_len);
    return 1;
}

static int req_version(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (!c)
        return closed(L);
    lua_pushstring(L, c->req.http_minor ? "HTTP/1.1" : "HTTP/1.0");
    return 1;
}

static int req_remote_ip(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (!c)
        return closed(L);
    lua_pushstring(L, c->remote_ip);
    return 1;
}

static int req_protocol(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (!c)
        return closed(L);
    if (c->ssl)
        lua_pushliteral(L, "https");
    else
        lua_pushliteral(L, "http");
    return 1;
}

static int req_closed(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    lua_pushboolean(L, !c || c->told_left);
    return 1;
}

/* ---- writing the response ------------------------------------------ */

typedef struct head {
    int status;
    size_t reason_len;
    const char *reason;
    int keep_alive;
    int has_ct, has_server, has_date;
    const char *user_length; /* the handler's Content-Length, honoured for HEAD */
    size_t user_length_len;
} head_t;

static void head_begin(lua_State *L, gust_conn_t *c, head_t *hd) {
    if (c->started && lua_isnoneornil(L, 2)) {
        /* After flush() the head is out: status and headers are history. */
        hd->status = c->resp_status;
        hd->reason = "";
        hd->reason_len = 0;
        hd->keep_alive = c->req.keep_alive;
        return;
    }
    hd->status = luaL_checkint(L, 2);
    if (hd->status < 100 || hd->status > 999)
        luaL_argerror(L, 2, "status must be a 3-digit number");
    hd->reason = luaL_optlstring(L, 3, NULL, &hd->reason_len);
    if (!hd->reason) {
        hd->reason = gust_http_reason(hd->status);
        if (!hd->reason)
            hd->reason = "Unknown";
        hd->reason_len = strlen(hd->reason);
    }
    hd->keep_alive = c->req.keep_alive;
    hd->has_ct = hd->has_server = hd->has_date = 0;
    hd->user_length = NULL;
}

static int name_is(const char *name, size_t n, const char *lit, size_t litlen) {
    return n == litlen && strncasecmp(name, lit, n) == 0;
}

/* Raises on a malformed headers table, before the caller takes any
 * reference, buffer or file it would otherwise leak (lua_error longjmps). */
static void check_headers(lua_State *L, int idx) {
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "header names must be strings");
        int t = lua_type(L, -1);
        if (t == LUA_TTABLE) {
            int len = (int)lua_objlen(L, -1);
            for (int i = 1; i <= len; i++) {
                lua_rawgeti(L, -1, i);
                int vt = lua_type(L, -1);
                if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
                    luaL_error(L, "header %s: values must be strings", lua_tostring(L, -4));
                lua_pop(L, 1);
            }
        } else if (t != LUA_TSTRING && t != LUA_TNUMBER) {
            luaL_error(L, "header %s: value must be a string", lua_tostring(L, -2));
        }
        lua_pop(L, 1);
    }
}

/* Appends the handler's headers (table at idx), noting the ones the core
 * would otherwise add and skipping the framing ones it owns. */
static void head_user_headers(lua_State *L, int idx, gust_buf_t *b, head_t *hd) {
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t n, vlen;
        const char *name = lua_tolstring(L, -2, &n);
        if (!name || lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "header names must be strings");
        if (name_is(name, n, "Content-Length", 14) ||
            name_is(name, n, "Transfer-Encoding", 17)) {
            /* Framing is ours: a wrong length would break the stream. A HEAD
             * answer has no body to get wrong, so its handler may say. */
            if (n == 14 && lua_type(L, -1) != LUA_TTABLE)
                hd->user_length = lua_tolstring(L, -1, &hd->user_length_len);
            lua_pop(L, 1);
            continue;
        }
        if (name_is(name, n, "Connection", 10)) {
            const char *v = lua_tostring(L, -1);
            if (v && strcasecmp(v, "close") == 0)
                hd->keep_alive = 0;
            lua_pop(L, 1);
            continue;
        }
        hd->has_ct |= name_is(name, n, "Content-Type", 12);
        hd->has_server |= name_is(name, n, "Server", 6);
        hd->has_date |= name_is(name, n, "Date", 4);
        if (lua_type(L, -1) == LUA_TTABLE) {
            int len = (int)lua_objlen(L, -1);
            for (int i = 1; i <= len; i++) {
                lua_rawgeti(L, -1, i);
                const char *v = lua_tolstring(L, -1, &vlen);
                if (v)
                    gust_http_header_line(b, name, n, v, vlen);
                lua_pop(L, 1);
            }
        } else {
            const char *v = lua_tolstring(L, -1, &vlen);
            if (!v)
                luaL_error(L, "header %s: value must be a string", name);
            gust_http_header_line(b, name, n, v, vlen);
        }
        lua_pop(L, 1);
    }
}

/* The status line goes first but depends on the headers (a 304 decided by
 * ETag), so the head is built as headers first, then prefixed. */
static void head_finish(gust_conn_t *c, head_t *hd, gust_buf_t *hdrs, gust_buf_t *out,
                        long long content_length, int chunked) {
    gust_server_t *s = c->server;
    gust_http_status_line(out, c->req.http_minor, hd->status, hd->reason, hd->reason_len);
    if (!hd->has_server)
        gust_buf_add(out, server_header, sizeof server_header - 1);
    if (!hd->has_date) {
        const char *date;
        gust_server_date(s, &date);
        gust_http_header_line(out, "Date", 4, date, GUST_HTTP_DATE_LEN);
    }
    int has_body = gust_http_status_has_body(hd->status);
    if (!hd->has_ct && has_body)
        gust_buf_addlit(out, "Content-Type: text/html; charset=UTF-8\r\n");
    if (chunked) {
        gust_buf_addlit(out, "Transfer-Encoding: chunked\r\n");
    } else if (hd->user_length && c->req.method == HTTP_HEAD) {
        gust_http_header_line(out, "Content-Length", 14, hd->user_length,
                              hd->user_length_len);
    } else if (content_length >= 0 && has_body) {
        char num[24];
        int n = snprintf(num, sizeof num, "%lld", content_length);
        gust_http_header_line(out, "Content-Length", 14, num, n);
    }
    if (s->stopping)
        hd->keep_alive = 0;
    if (!hd->keep_alive && c->req.http_minor)
        gust_buf_addlit(out, "Connection: close\r\n");
    else if (hd->keep_alive && !c->req.http_minor)
        gust_buf_addlit(out, "Connection: keep-alive\r\n");
    gust_buf_add(out, hdrs->p, hdrs->len);
    gust_buf_addlit(out, "\r\n");
}

/* Body at idx: a string, an array of strings, or nil. Returns its length;
 * `single` is set for a string. */
static size_t body_length(lua_State *L, int idx, const char **single) {
    *single = NULL;
    int t = lua_type(L, idx);
    if (t == LUA_TNONE || t == LUA_TNIL)
        return 0;
    size_t len;
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        *single = lua_tolstring(L, idx, &len);
        return len;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    size_t total = 0;
    int n = (int)lua_objlen(L, idx);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        if (!lua_tolstring(L, -1, &len))
            luaL_error(L, "body part %d is not a string", i);
        total += len;
        lua_pop(L, 1);
    }
    return total;
}

static void body_etag(lua_State *L, int idx, const char *single, size_t len,
                      char etag[GUST_ETAG_LEN]) {
    if (single || len == 0) {
        gust_http_etag(single ? single : "", len, etag);
        return;
    }
    /* Hash the parts as if joined, without joining them. */
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    int n = (int)lua_objlen(L, idx);
    for (int i = 1; i <= n; i++) {
        size_t plen;
        lua_rawgeti(L, idx, i);
        const char *p = lua_tolstring(L, -1, &plen);
        XXH3_128bits_update(&st, p, plen);
        lua_pop(L, 1);
    }
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    gust_http_etag_from_hash(h.high64, h.low64, etag);
}

/* Appends the body at idx: into `b` when small, else straight to the
 * connection's output after `b` has been written. */
static void body_write(lua_State *L, gust_conn_t *c, int idx, const char *single, size_t len,
                       gust_buf_t *b, int chunked) {
    char ch[24];
    if (chunked && len) {
        size_t n = gust_http_chunk_header(len, ch);
        gust_buf_add(b, ch, n);
    }
    if (len <= INLINE_BODY_MAX) {
        if (single) {
            gust_buf_add(b, single, len);
        } else if (len) {
            int n = (int)lua_objlen(L, idx);
            for (int i = 1; i <= n; i++) {
                size_t plen;
                lua_rawgeti(L, idx, i);
                const char *p = lua_tolstring(L, -1, &plen);
                gust_buf_add(b, p, plen);
                lua_pop(L, 1);
            }
        }
        if (chunked && len)
            gust_buf_addlit(b, "\r\n");
        gust_conn_write(c, b->p, b->len);
        return;
    }
    gust_conn_write(c, b->p, b->len);
    if (single) {
        gust_conn_write(c, single, len);
    } else {
        int n = (int)lua_objlen(L, idx);
        for (int i = 1; i <= n; i++) {
            size_t plen;
            lua_rawgeti(L, idx, i);
            const char *p = lua_tolstring(L, -1, &plen);
            gust_conn_write(c, p, plen);
            lua_pop(L, 1);
        }
    }
    if (chunked)
        gust_conn_write(c, "\r\n", 2);
}

static int is_head(const gust_conn_t *c) { return c->req.method == HTTP_HEAD; }

/* req:finish(status, reason?, headers?, body?) -> true | nil, "closed"
 * [-(2..5), +1|2, e] */
static int req_finish(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (!c)
        return closed(L);
    head_t hd;
    head_begin(L, c, &hd);
    check_headers(L, 4);
    const char *single;
    size_t len = body_length(L, 5, &single);
    char storage[4096], hstorage[1024];
    gust_buf_t b, hdrs;
    gust_buf_init(&b, storage, sizeof storage);
    gust_conn_incref(c);

    if (c->started) {
        /* After flush(): the head is out; end the body. */
        hd.keep_alive = c->chunked && c->req.keep_alive;
        if (!is_head(c))
            body_write(L, c, 5, single, len, &b, c->chunked);
        else
            gust_conn_write(c, b.p, b.len);
        if (c->chunked && !is_head(c))
            gust_conn_write(c, "0\r\n\r\n", 5);
    } else {
        gust_buf_init(&hdrs, hstorage, sizeof hstorage);
        head_user_headers(L, 4, &hdrs, &hd);
        int has_body = gust_http_status_has_body(hd.status);
        if (hd.status == 200 && (c->req.method == HTTP_GET || is_head(c))) {
            /* Tornado's default: a strong ETag on every GET answer, and 304
             * without a body when the client already has it. */
            char etag[GUST_ETAG_LEN];
            const char *tag = NULL;
            size_t tag_len = 0;
            if (lua_istable(L, 4)) {
                lua_getfield(L, 4, "Etag");
                tag = lua_tolstring(L, -1, &tag_len); /* still held by the table */
                lua_pop(L, 1);
            }
            if (!tag) {
                body_etag(L, 5, single, len, etag);
                gust_http_header_line(&hdrs, "Etag", 4, etag, GUST_ETAG_LEN);
                tag = etag;
                tag_len = GUST_ETAG_LEN;
            }
            size_t inm_len;
            const char *inm = gust_http_request_header(&c->req, "if-none-match", &inm_len);
            if (inm && gust_http_etag_matches(inm, inm_len, tag, tag_len)) {
                hd.status = 304;
                hd.reason = "Not Modified";
                hd.reason_len = 12;
                has_body = 0;
            }
        }
        head_finish(c, &hd, &hdrs, &b, (long long)len, 0);
        gust_buf_free(&hdrs);
        if (has_body && !is_head(c))
            body_write(L, c, 5, single, len, &b, 0);
        else
            gust_conn_write(c, b.p, b.len);
    }
    gust_buf_free(&b);
    gust_conn_log_access(c, hd.status, len);
    gust_conn_response_done(c, hd.keep_alive);
    gust_conn_send(c);
    gust_conn_decref(c);
    lua_pushboolean(L, 1);
    return 1;
}

/* req:flush(status, reason?, headers?, body?) -> true | nil, "closed";
 * yields until the socket has taken the data  [-(2..5), +1|2, e] */
static int req_flush(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (!c)
        return closed(L);
    if (!c->started)
        check_headers(L, 4);
    const char *single;
    size_t len = body_length(L, 5, &single);
    char storage[4096];
    gust_buf_t b;
    gust_buf_init(&b, storage, sizeof storage);
    int allowed = 1;
    if (!c->started) {
        head_t hd;
        head_begin(L, c, &hd);
        char hstorage[1024];
        gust_buf_t hdrs;
        gust_buf_init(&hdrs, hstorage, sizeof hstorage);
        head_user_headers(L, 4, &hdrs, &hd);
        allowed = gust_http_status_has_body(hd.status) && !is_head(c);
        c->chunked = allowed && c->req.http_minor;
        /* HTTP/1.0 has no chunks: the end of the body is the end of the
         * connection. */
        if (!c->chunked && allowed)
            c->req.keep_alive = 0;
        if (!hd.keep_alive)
            c->req.keep_alive = 0;
        head_finish(c, &hd, &hdrs, &b, -1, c->chunked);
        gust_buf_free(&hdrs);
        c->started = 1;
        c->resp_status = hd.status;
        gust_conn_nodelay(c); /* the chunks that follow are small writes */
    } else {
        allowed = !is_head(c);
    }
    if (allowed && len)
        body_write(L, c, 5, single, len, &b, c->chunked);
    else
        gust_conn_write(c, b.p, b.len);
    gust_buf_free(&b);
    gust_conn_incref(c);
    int drained = gust_conn_send(c);
    int dead = c->state == CONN_CLOSED;
    if (!drained && !dead && c->flush_ref == LUA_NOREF) {
        int ref = gust_sched_anchor(L);
        if (ref != LUA_NOREF) {
            c->flush_ref = ref;
            gust_conn_decref(c);
            return lua_yield(L, 0);
        }
    }
    gust_conn_decref(c);
    if (dead)
        return closed(L);
    lua_pushboolean(L, 1);
    return 1;
}

/* req:send_file(status, reason?, headers?, path, offset, length)
 * -> true | nil, err  [-(7), +1|2, e] */
static int req_send_file(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (!c)
        return closed(L);
    head_t hd;
    head_begin(L, c, &hd);
    const char *path = luaL_checkstring(L, 5);
    lua_Number offset = luaL_checknumber(L, 6), length = luaL_checknumber(L, 7);
    if (c->started)
        return luaL_error(L, "send_file after flush");
    check_headers(L, 4);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    char storage[2048], hstorage[1024];
    gust_buf_t b, hdrs;
    gust_buf_init(&b, storage, sizeof storage);
    gust_buf_init(&hdrs, hstorage, sizeof hstorage);
    head_user_headers(L, 4, &hdrs, &hd);
    head_finish(c, &hd, &hdrs, &b, (long long)length, 0);
    gust_buf_free(&hdrs);
    gust_conn_write(c, b.p, b.len);
    gust_buf_free(&b);
    if (!is_head(c) && length > 0 && gust_http_status_has_body(hd.status)) {
        if (c->ssl) {
            /* TLS encrypts in user space: the file is mapped, not sendfile()d. */
            struct evbuffer_file_segment *seg = evbuffer_file_segment_new(
                fd, (ev_off_t)offset, (ev_off_t)length,
                EVBUF_FS_DISABLE_SENDFILE | EVBUF_FS_CLOSE_ON_FREE);
            if (seg) {
                evbuffer_add_file_segment(c->out, seg, 0, (ev_off_t)length);
                evbuffer_file_segment_free(seg); /* the buffer holds its own ref */
            } else {
                close(fd);
            }
        } else {
            evbuffer_add_file(c->out, fd, (ev_off_t)offset, (ev_off_t)length); /* owns fd */
        }
    } else {
        close(fd);
    }
    gust_conn_incref(c);
    gust_conn_log_access(c, hd.status, (size_t)length);
    gust_conn_response_done(c, hd.keep_alive);
    gust_conn_send(c);
    gust_conn_decref(c);
    lua_pushboolean(L, 1);
    return 1;
}

/* req:detach() -> IOStream | nil, err: takes the connection away from
 * HTTP, with the bytes already read past this request (Tornado's
 * request.connection.detach(); the way to a WebSocket or a tunnel). */
static int req_detach(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (!c || c->tls_dead)
        return closed(L);
    gust_server_t *s = c->server;
    gust_stream_t *st = gust_stream_new(s, -1);
    /* An HTTPS connection's TLS session goes with the socket; the HTTP
     * side's close must neither shut it down nor free it. */
    struct ssl_st *ssl = c->ssl;
    c->ssl = NULL;
    gust_conn_incref(c);
    int fd = gust_conn_detach(c, st->in);
    if (fd < 0)
        c->ssl = ssl;
    gust_conn_decref(c);
    if (fd < 0) {
        gust_stream_free(st);
        lua_pushnil(L);
        lua_pushliteral(L, "the response has started");
        return 2;
    }
    gust_stream_set_fd(st, fd);
    st->ssl = ssl;
    gust_stream_push(L, s, st);
    return 1;
}

/* req:abort() -- cuts the connection: the way to end a response that
 * failed after it started (its client then sees a truncated body, not a
 * complete one)  [-1, +0, -] */
static int req_abort(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    if (c)
        gust_conn_close(c);
    return 0;
}

/* req:_fail(err) -- the dispatch trampoline's error path: log, then a 500
 * or a cut connection  [-2, +0, -] */
static int req_fail(lua_State *L) {
    gust_conn_t *c = check_conn(L);
    gust_server_t *s = gust_server_from_lua(L);
    const char *err = lua_tostring(L, 2);
    if (s)
        gust_log(&s->log, GUST_LOG_ERROR, "uncaught error in handler: %s",
                 err ? err : "(error object is not a string)");
    if (c && c->state == CONN_HANDLING) {
        gust_conn_incref(c);
        fail_request(c);
        gust_conn_decref(c);
    }
    return 0;
}

static int req_tostring(lua_State *L) {
    gust_req_handle_t *h = luaL_checkudata(L, 1, REQUEST_MT);
    lua_pushfstring(L, "gust.request (%s)", h->conn ? "open" : "closed");
    return 1;
}

void gust_request_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg methods[] = {
        {"headers", req_headers},     {"body", req_body},       {"uri", req_uri},
        {"version", req_version},     {"remote_ip", req_remote_ip},
        {"protocol", req_protocol},   {"closed", req_closed},   {"finish", req_finish},
        {"flush", req_flush},         {"send_file", req_send_file},
        {"detach", req_detach},       {"abort", req_abort},      {"_fail", req_fail},
        {NULL, NULL}};
    luaL_newmetatable(L, REQUEST_MT);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, req_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushvalue(L, -1);
    s->request_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);
    /* Every request runs through this trampoline: an error the handler does
     * not catch (a raw handler, a framework bug), even one raised after the
     * handler yielded, still ends its request. Lua, so it can yield. */
    static const char trampoline[] =
        "local xpcall, traceback = xpcall, debug.traceback\n"
        "return function(handler, req, ...)\n"
        "  local ok, err = xpcall(handler, traceback, req, ...)\n"
        "  if not ok then req:_fail(err) end\n"
        "end\n";
    if (luaL_loadbuffer(L, trampoline, sizeof trampoline - 1, "=gust.dispatch") != 0 ||
        lua_pcall(L, 0, 1, 0) != 0)
        luaL_error(L, "gust: dispatch trampoline: %s", lua_tostring(L, -1));
    s->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}
