/*
 * lua_httpclient.c -- "gust.httpfetch": the Lua handle of one HTTP client
 * exchange (gust_http_fetch_t), and core.http_fetch() that starts one.
 *
 * gust.httpclient (Lua) owns the policy -- URLs, default headers, redirects,
 * max_clients, callbacks -- and drives a handle with h:next(), which yields
 * until the next event and returns it:
 *
 *   "headers", code, reason, flat   the header section (when asked for)
 *   "chunk", data                   streamed body bytes (when streaming)
 *   "done", code, reason, flat|nil, body   the end (flat is nil when the
 *                                   headers were given already; body is ""
 *                                   when it was streamed)
 *   "error", msg                    the end, failed
 *
 * flat is {name1, value1, ...} with lower-case names, for
 * httputil.HTTPHeaders.from_list. Events are taken from the fetch's state,
 * so any number of them that happen between two next() calls cost one
 * resume, and a waiting coroutine is woken through the run queue with the
 * event on its stack (as lua_stream.c does).
 */
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <lauxlib.h>

#include "core/http_client.h"
#include "core/mem.h"
#include "lua_core.h"
#include "lua_httpclient.h"
#include "lua_sched.h"

#define FETCH_MT "gust.httpfetch"

typedef struct lfetch {
    gust_http_fetch_t *f; /* NULL once ended and taken, or closed */
    gust_server_t *server;
    int co_ref; /* the coroutine waiting in next() */
    unsigned want_headers : 1, streaming : 1, headers_given : 1;
} lfetch_t;

static void push_headers(lua_State *L, const gust_http_fetch_t *f) {
    const gust_http_reply_t *r = &f->reply;
    lua_createtable(L, (int)r->nheaders * 2, 0);
    for (unsigned i = 0; i < r->nheaders; i++) {
        const gust_http_header_t *h = &r->headers[i];
        const char *name = r->arena + h->name;
        size_t nlen = h->name_len;
        /* As Tornado: a decoded body no longer has that encoding. */
        if (r->gzip && nlen == 16 && memcmp(name, "content-encoding", 16) == 0) {
            name = "x-consumed-content-encoding";
            nlen = 27;
        }
        lua_pushlstring(L, name, nlen);
        lua_rawseti(L, -2, (int)(2 * i + 1));
        lua_pushlstring(L, r->arena + h->value, h->value_len);
        lua_rawseti(L, -2, (int)(2 * i + 2));
    }
}

static void push_status(lua_State *L, const gust_http_fetch_t *f) {
    lua_pushinteger(L, f->reply.status);
    lua_pushlstring(L, f->reply.arena ? f->reply.arena : "", f->reply.reason_len);
}

/* Pushes the next event onto L; returns how many values (0: none yet). */
static int take_event(lfetch_t *lf, lua_State *L) {
    gust_http_fetch_t *f = lf->f;
    luaL_checkstack(L, 6, "httpfetch");
    if (!f) {
        lua_pushliteral(L, "error");
        lua_pushliteral(L, "closed");
        return 2;
    }
    if (f->done && f->err) {
        lua_pushliteral(L, "error");
        lua_pushstring(L, f->err);
        lf->f = NULL;
        gust_http_fetch_free(f);
        return 2;
    }
    if (lf->want_headers && f->headers_ready && !lf->headers_given) {
        lf->headers_given = 1;
        lua_pushliteral(L, "headers");
        push_status(L, f);
        push_headers(L, f);
        return 4;
    }
    size_t blen = evbuffer_get_length(f->body);
    if (lf->streaming && blen > 0) {
        lua_pushliteral(L, "chunk");
        lua_pushlstring(L, (const char *)evbuffer_pullup(f->body, -1), blen);
        evbuffer_drain(f->body, blen);
        gust_http_fetch_resume(f);
        return 2;
    }
    if (!f->done)
        return 0;
    lua_pushliteral(L, "done");
    push_status(L, f);
    if (lf->headers_given)
        lua_pushnil(L);
    else
        push_headers(L, f);
    if (blen)
        lua_pushlstring(L, (const char *)evbuffer_pullup(f->body, -1), blen);
    else
        lua_pushliteral(L, "");
    lf->f = NULL;
    gust_http_fetch_free(f);
    return 5;
}

static void on_progress(gust_http_fetch_t *f, void *arg) {
    lfetch_t *lf = arg;
    gust_server_t *s = lf->server;
    if (lf->co_ref == LUA_NOREF || !s->L)
        return;
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, lf->co_ref);
    lua_State *co = lua_tothread(s->L, -1);
    lua_pop(s->L, 1); /* still anchored by co_ref */
    int n = take_event(lf, co);
    if (n) {
        gust_run_t run = {lf->co_ref, GUST_RUN_STACK, n, NULL};
        lf->co_ref = LUA_NOREF;
        gust_sched_push(s, run);
    }
}

static lfetch_t *check_fetch(lua_State *L) { return gust_lua_checkself(L, FETCH_MT); }

/* h:next() -> event...  (yields until there is one)  [-1, +(2..5), e] */
static int lf_next(lua_State *L) {
    lfetch_t *lf = check_fetch(L);
    if (lf->co_ref != LUA_NOREF)
        return luaL_error(L, "httpfetch: another task is already waiting on this fetch");
    int n = take_event(lf, L);
    if (n)
        return n;
    int ref = gust_sched_anchor(L);
    if (ref == LUA_NOREF)
        return luaL_error(L, "httpfetch: next() must be called from a task");
    lf->co_ref = ref;
    return lua_yield(L, 0);
}

/* h:close() -- abandons the exchange (its connection is closed)  [-1, +0, e] */
static int lf_close(lua_State *L) {
    lfetch_t *lf = check_fetch(L);
    gust_http_fetch_t *f = lf->f;
    lf->f = NULL;
    gust_http_fetch_free(f);
    if (lf->co_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lf->co_ref);
        lua_State *co = lua_tothread(L, -1);
        lua_pop(L, 1);
        int n = take_event(lf, co);
        gust_run_t run = {lf->co_ref, GUST_RUN_STACK, n, NULL};
        lf->co_ref = LUA_NOREF;
        gust_sched_push(lf->server, run);
    }
    return 0;
}

/* h __gc -- frees the exchange if it is still going  [-1, +0, e] */
static int lf_gc(lua_State *L) {
    lfetch_t *lf = check_fetch(L);
    gust_http_fetch_free(lf->f);
    lf->f = NULL;
    return 0;
}

/* h __tostring -> "gust.httpfetch (host:port)" | "... (ended)"  [-1, +1, e] */
static int lf_tostring(lua_State *L) {
    lfetch_t *lf = check_fetch(L);
    if (lf->f)
        lua_pushfstring(L, "gust.httpfetch (%s:%d)", lf->f->host, lf->f->o.port);
    else
        lua_pushliteral(L, "gust.httpfetch (ended)");
    return 1;
}

/* ---- serialising the request ---------------------------------------- */

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int bad_token(const char *s, size_t n) {
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 1;
    return 0;
}

/* No CR, LF or NUL: nothing can end a line early (header injection). */
static int bad_value(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == 0)
            return 1;
    return 0;
}

static int bad_target(const char *s, size_t n) {
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return 1;
    return 0;
}

static int has_field(lua_State *L, int t, const char *k) {
    lua_getfield(L, t, k);
    int v = !lua_isnil(L, -1);
    lua_pop(L, 1);
    return v;
}

static int is_idempotent(const char *m) {
    static const char *const idem[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof idem / sizeof *idem; i++)
        if (strcmp(m, idem[i]) == 0)
            return 1;
    return 0;
}

/*
 * core.http_fetch(req, method, body, tls, host, port, target, flat_headers,
 *                 idle_timeout?) -> handle | nil, err        [-(8..9), +1|2, e]
 * req gives the settings: connect_timeout, request_timeout, max_body_size,
 * max_header_size?, decompress_response, validate_cert, ca_certs?,
 * streaming_callback?, header_callback?. The method and body change along
 * redirects, so they come apart. The request is serialised into one buffer:
 * request line, the headers as given (the caller adds Host, Content-Length,
 * ...), the body.
 */
static int core_http_fetch(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checktype(L, 1, LUA_TTABLE);
    size_t mlen, blen = 0, tlen;
    const char *method = luaL_checklstring(L, 2, &mlen);
    const char *body = lua_isnoneornil(L, 3) ? NULL : luaL_checklstring(L, 3, &blen);
    int tls = lua_toboolean(L, 4);
    const char *host = luaL_checkstring(L, 5);
    int port = luaL_checkint(L, 6);
    const char *target = luaL_checklstring(L, 7, &tlen);
    luaL_checktype(L, 8, LUA_TTABLE);
    double idle_timeout = luaL_optnumber(L, 9, 60);
    luaL_argcheck(L, !bad_token(method, mlen), 2, "invalid method");
    luaL_argcheck(L, port > 0 && port < 65536, 6, "port out of range");
    luaL_argcheck(L, !bad_target(target, tlen), 7, "invalid request target");
    lua_getfield(L, 1, "ca_certs");
    const char *ca = lua_tostring(L, -1); /* stays on the stack */

    gust_http_fetch_opts_t o;
    memset(&o, 0, sizeof o);
    o.host = host;
    o.port = port;
    o.tls = tls != 0;
    o.connect_timeout = gust_lua_opt_number(L, 1, "connect_timeout", 20);
    o.request_timeout = gust_lua_opt_number(L, 1, "request_timeout", 20);
    o.idle_timeout = idle_timeout;
    o.max_body_size = (size_t)gust_lua_opt_number(L, 1, "max_body_size", 100 * 1024 * 1024);
    o.max_header_size = (size_t)gust_lua_opt_number(L, 1, "max_header_size", 64 * 1024);
    o.decompress = gust_lua_opt_bool(L, 1, "decompress_response", 1);
    o.verify = gust_lua_opt_bool(L, 1, "validate_cert", 1);
    o.ca_file = ca;
    o.head = mlen == 4 && memcmp(method, "HEAD", 4) == 0;
    o.streaming = has_field(L, 1, "streaming_callback");
    o.headers_event = has_field(L, 1, "header_callback");
    o.idempotent = is_idempotent(method);

    /* Sizes first, so the buffer is allocated once. */
    int nflat = (int)lua_objlen(L, 8);
    size_t need = mlen + tlen + 16 + blen;
    for (int i = 1; i <= nflat; i++) {
        lua_rawgeti(L, 8, i);
        size_t n;
        const char *v = lua_tolstring(L, -1, &n);
        if (!v || ((i & 1) ? bad_token(v, n) : bad_value(v, n)))
            return luaL_error(L, "http_fetch: invalid header %s #%d", (i & 1) ? "name" : "value",
                              (i + 1) / 2);
        need += n + 2;
        lua_pop(L, 1);
    }
    char *buf = gust_malloc(need);
    size_t len = 0;
#define PUT(p, n) (memcpy(buf + len, (p), (n)), len += (n))
    PUT(method, mlen);
    PUT(" ", 1);
    PUT(target, tlen);
    PUT(" HTTP/1.1\r\n", 11);
    for (int i = 1; i + 1 <= nflat; i += 2) {
        size_t n;
        lua_rawgeti(L, 8, i);
        const char *v = lua_tolstring(L, -1, &n);
        PUT(v, n);
        PUT(": ", 2);
        lua_rawgeti(L, 8, i + 1);
        v = lua_tolstring(L, -1, &n);
        PUT(v, n);
        PUT("\r\n", 2);
        lua_pop(L, 2);
    }
    PUT("\r\n", 2);
    if (blen)
        PUT(body, blen);
#undef PUT

    lfetch_t *lf = lua_newuserdata(L, sizeof *lf);
    memset(lf, 0, sizeof *lf);
    lf->server = s;
    lf->co_ref = LUA_NOREF;
    lf->want_headers = o.headers_event || o.streaming;
    lf->streaming = o.streaming;
    luaL_getmetatable(L, FETCH_MT);
    lua_setmetatable(L, -2);
    char err[GUST_ERR_LEN];
    lf->f = gust_http_fetch_start(s->core, &o, buf, len, on_progress, lf, err, sizeof err);
    if (!lf->f) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* core.http_pool_idle() -> idle pooled connections  [-0, +1, -] */
static int core_http_pool_idle(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    lua_pushinteger(L, gust_http_pool_idle(s->core));
    return 1;
}

/* core.http_close_idle() -> how many were closed  [-0, +1, -] */
static int core_http_close_idle(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    lua_pushinteger(L, gust_http_pool_close_idle(s->core));
    return 1;
}

void gust_httpclient_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg methods[] = {{"next", lf_next}, {"close", lf_close}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"http_fetch", core_http_fetch},
                                     {"http_pool_idle", core_http_pool_idle},
                                     {"http_close_idle", core_http_close_idle},
                                     {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", lf_gc}, {"__tostring", lf_tostring}, {NULL, NULL}};
    gust_lua_newclass(L, FETCH_MT, methods, meta);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1); /* into the module table below */
}
