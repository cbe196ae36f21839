/*
 * lua_request.c -- the "gust.request" handle: how a Lua handler reads its
 * request and writes its response, and the request handler (request.h)
 * through which the core hands requests to Lua.
 *
 * Each request runs the listener's handler in a coroutine, through a Lua
 * trampoline, with a handle that points at the core's request. The handle
 * is a handle, not the owner: the core's on_end clears it when the request
 * is over (finished, detached, or its client gone), and its methods then
 * answer nil, "closed". While the request is in flight the handle is
 * anchored in the registry, so the core's pointer to it stays valid.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <lauxlib.h>

#include "core/listener.h"
#include "core/request.h"
#include "core/stream.h"
#include "lua_core.h"
#include "lua_request.h"
#include "lua_sched.h"
#include "lua_stream.h"
#include "server.h"

#define REQUEST_MT "gust.request"
#define BODY_PARTS_INLINE 16

static const char request_tag = 'R'; /* lreq_t.tag: see gust_lua_checktag */

typedef struct lreq {
    const void *tag;     /* &request_tag */
    gust_request_t *req; /* NULL once the request is over */
    gust_server_t *server;
    int ref;       /* anchors the handle while the request outlives its first run */
    int slot;      /* else its index on the server thread's stack during that run, or 0 */
    int flush_ref; /* the coroutine waiting in flush() */
    int left;      /* the close hook was called for it during its first run */
} lreq_t;

static const char dispatch_key = 'D'; /* registry: makes a listener's trampoline */
static const char request_mt_key = 'M';

static gust_request_t *check_req(lua_State *L) {
    lreq_t *h = gust_lua_checktag(L, &request_tag, sizeof(lreq_t), REQUEST_MT);
    return h->req;
}

/* Not a binding: the tail of the ones below once the request is over.
 * Pushes nil, "closed"  [-0, +2, m] */
static int closed(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
}

/* ---- the request handler the core calls ----------------------------- */

static void on_request(gust_request_t *r, void *arg) {
    gust_lua_handler_t *lh = arg;
    gust_server_t *s = lh->server;
    if (!s->L) {
        gust_request_fail(r);
        return;
    }
    const gust_http_request_t *m = r->msg;
    lua_State *co = gust_sched_thread(s->sched);
    lua_rawgeti(co, LUA_REGISTRYINDEX, lh->dispatch_ref);
    lreq_t *h = lua_newuserdata(co, sizeof *h);
    lua_rawgeti(co, LUA_REGISTRYINDEX, lh->request_mt_ref);
    lua_setmetatable(co, -2);
    h->tag = &request_tag;
    h->req = r;
    h->server = s;
    h->flush_ref = LUA_NOREF;
    h->left = 0;
    r->ctx = h;
    /* Most requests are over before their first run returns: for that run
     * the handle is anchored on the server thread's stack, and in the
     * registry only if the request goes on after it (a registry ref and
     * its release cost more than the rest of this function). */
    h->ref = LUA_NOREF;
    lua_pushvalue(co, -1);
    lua_xmove(co, s->L, 1);
    h->slot = lua_gettop(s->L);
    /* The method as llhttp's number: the trampoline has its names, so no
     * string is looked up (hashed, interned) here. */
    lua_pushinteger(co, m->method);
    lua_pushlstring(co, r->path, r->path_len);
    lua_pushlstring(co, r->query, r->query_len);
    gust_sched_set_running(s->sched, llhttp_method_name((llhttp_method_t)m->method), m->arena,
                           m->url_len);
    int rc = gust_sched_resume(s, co, 4);
    gust_sched_set_running(s->sched, NULL, NULL, 0);
    if (rc != 0 && rc != LUA_YIELD && r->ctx == h)
        gust_request_fail(r); /* only if the trampoline itself failed (out of memory) */
    if ((h->req || h->left) && s->adopt_hook_ref != LUA_NOREF) {
        lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->adopt_hook_ref);
        lua_pushvalue(s->L, h->slot);
        /* The coroutine only while it waits: one that returned goes back to
         * the pool (gust_sched_release), to run other requests. */
        if (rc == LUA_YIELD) {
            lua_pushthread(co);
            lua_xmove(co, s->L, 1);
        } else {
            lua_pushnil(s->L);
        }
        if (lua_pcall(s->L, 2, 0, 0) != 0) {
            gust_log(&s->core->log, GUST_LOG_ERROR, "adopt hook: %s", lua_tostring(s->L, -1));
            lua_pop(s->L, 1);
        }
    }
    h->slot = 0;
    if (h->req)
        h->ref = luaL_ref(s->L, LUA_REGISTRYINDEX); /* pops the handle */
    else
        lua_pop(s->L, 1);
    gust_sched_release(s->sched, co, rc);
}

static void on_client_left(gust_request_t *r, void *arg) {
    gust_lua_handler_t *lh = arg;
    gust_server_t *s = lh->server;
    lreq_t *h = r->ctx;
    if (!h || !s->L || s->close_hook_ref == LUA_NOREF)
        return;
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->close_hook_ref);
    if (h->slot) {
        h->left = 1;
        lua_pushvalue(s->L, h->slot);
    } else
        lua_rawgeti(s->L, LUA_REGISTRYINDEX, h->ref);
    gust_sched_start(s, s->L, 1);
}

static void on_flushed(gust_request_t *r, int ok, void *arg) {
    lreq_t *h = r->ctx;
    if (!h || h->flush_ref == LUA_NOREF)
        return;
    gust_run_t run = {h->flush_ref, ok ? GUST_RUN_TRUE : GUST_RUN_ERR, 0, "closed"};
    h->flush_ref = LUA_NOREF;
    gust_sched_push(h->server, run);
}

static void on_end(gust_request_t *r, void *arg) {
    lreq_t *h = r->ctx;
    r->ctx = NULL;
    if (!h)
        return;
    h->req = NULL;
    /* Later: this can run inside gust_lua_finish_plain, an FFI call. */
    if (h->server->L)
        gust_sched_unref(h->server->sched, h->ref);
    h->ref = LUA_NOREF;
}

const gust_request_handler_t gust_lua_request_handler = {on_request, on_client_left, on_flushed,
                                                         on_end};

/* ---- reading the request ------------------------------------------- */

/* req:headers() -> {name1, value1, ...}, names lower-cased  [-1, +1|2, e] */
static int req_headers(lua_State *L) {
    gust_request_t *r = check_req(L);
    if (!r)
        return closed(L);
    const gust_http_request_t *m = r->msg;
    lua_createtable(L, (int)m->nheaders * 2, 0);
    for (unsigned i = 0; i < m->nheaders; i++) {
        const gust_http_header_t *hh = &m->headers[i];
        lua_pushlstring(L, m->arena + hh->name, hh->name_len);
        lua_rawseti(L, -2, 2 * (int)i + 1);
        lua_pushlstring(L, m->arena + hh->value, hh->value_len);
        lua_rawseti(L, -2, 2 * (int)i + 2);
    }
    return 1;
}

/* req:body() -> string  [-1, +1|2, e] */
static int req_body(lua_State *L) {
    gust_request_t *r = check_req(L);
    if (!r)
        return closed(L);
    size_t len;
    const char *body = gust_request_body(r, &len);
    lua_pushlstring(L, body, len);
    return 1;
}

/* req:uri() -> the raw request target  [-1, +1|2, e] */
static int req_uri(lua_State *L) {
    gust_request_t *r = check_req(L);
    if (!r)
        return closed(L);
    lua_pushlstring(L, r->msg->arena, r->msg->url_len);
    return 1;
}

/* req:version() -> "HTTP/1.1" | "HTTP/1.0"  [-1, +1|2, e] */
static int req_version(lua_State *L) {
    gust_request_t *r = check_req(L);
    if (!r)
        return closed(L);
    lua_pushstring(L, gust_request_http_minor(r) ? "HTTP/1.1" : "HTTP/1.0");
    return 1;
}

/* req:remote_ip() -> string  [-1, +1|2, e] */
static int req_remote_ip(lua_State *L) {
    gust_request_t *r = check_req(L);
    if (!r)
        return closed(L);
    lua_pushstring(L, gust_request_remote_ip(r));
    return 1;
}

/* req:protocol() -> "http" | "https"  [-1, +1|2, e] */
static int req_protocol(lua_State *L) {
    gust_request_t *r = check_req(L);
    if (!r)
        return closed(L);
    if (gust_request_is_tls(r))
        lua_pushliteral(L, "https");
    else
        lua_pushliteral(L, "http");
    return 1;
}

/* req:closed() -> whether the client is gone  [-1, +1, e] */
static int req_closed(lua_State *L) {
    gust_request_t *r = check_req(L);
    lua_pushboolean(L, !r || gust_request_gone(r));
    return 1;
}

/* ---- writing the response ------------------------------------------ */

/* Adds one header of the handler's table, or returns why it cannot. */
static const char *head_add_value(lua_State *L, gust_http_head_t *hd, const char *name, size_t n,
                                  int idx) {
    size_t vlen;
    int t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return "value must be a string";
    const char *v = lua_tolstring(L, idx, &vlen);
    return gust_http_head_add(hd, name, n, v, vlen) == 0 ? NULL : "invalid name or value";
}

/* Builds the head from status (2), reason (3) and the headers table (4).
 * The strings stay referenced by the Lua stack while the head is used.
 * Returns NULL, or the reason the headers are bad (the head is freed). */
static const char *head_build(lua_State *L, gust_http_head_t *hd, const char **bad_name) {
    int status = luaL_checkint(L, 2);
    if (status < 100 || status > 999)
        luaL_argerror(L, 2, "status must be a 3-digit number");
    size_t rlen = 0;
    const char *reason = luaL_optlstring(L, 3, NULL, &rlen);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    gust_http_head_init(hd, status, reason, rlen);
    if (lua_isnoneornil(L, 4))
        return NULL;
    lua_pushnil(L);
    while (lua_next(L, 4)) {
        size_t n;
        const char *why = NULL;
        if (lua_type(L, -2) != LUA_TSTRING) {
            why = "header names must be strings";
        } else {
            const char *name = lua_tolstring(L, -2, &n);
            *bad_name = name;
            if (lua_type(L, -1) == LUA_TTABLE) {
                int len = (int)lua_objlen(L, -1);
                for (int i = 1; i <= len && !why; i++) {
                    lua_rawgeti(L, -1, i);
                    why = head_add_value(L, hd, name, n, -1);
                    lua_pop(L, 1);
                }
            } else {
                why = head_add_value(L, hd, name, n, -1);
            }
        }
        lua_pop(L, 1);
        if (why) {
            lua_pop(L, 1);
            gust_http_head_free(hd);
            return why;
        }
    }
    return NULL;
}

/* The body at 5: a string, an array of strings, or nil, as iovecs (the
 * strings stay on the Lua stack or in the table). Raises on a bad body,
 * before anything was allocated. Returns the number of pieces. */
static int body_parts(lua_State *L, struct iovec *iov, int max) {
    int t = lua_type(L, 5);
    if (t == LUA_TNONE || t == LUA_TNIL)
        return 0;
    size_t len;
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        iov[0].iov_base = (void *)lua_tolstring(L, 5, &len);
        iov[0].iov_len = len;
        return 1;
    }
    luaL_checktype(L, 5, LUA_TTABLE);
    int n = (int)lua_objlen(L, 5);
    if (n > max)
        return -1;
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 5, i);
        const char *p = lua_tolstring(L, -1, &len);
        lua_pop(L, 1); /* still held by the table */
        if (!p)
            luaL_error(L, "body part %d is not a string", i);
        iov[i - 1].iov_base = (void *)p;
        iov[i - 1].iov_len = len;
    }
    return n;
}

/* A body of more parts than fit the stack array: joined once. */
static int body_joined(lua_State *L, struct iovec *iov) {
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "concat");
    lua_pushvalue(L, 5);
    lua_call(L, 1, 1);
    lua_replace(L, 5);
    lua_pop(L, 1);
    return body_parts(L, iov, 1);
}

/* The head and body of a finish() or flush() call. */
typedef struct resp {
    gust_http_head_t hd;
    int has_head;
    struct iovec iov[BODY_PARTS_INLINE];
    int nbody;
} resp_t;

/* Raises on misuse, with nothing left allocated. */
static void resp_read(lua_State *L, gust_request_t *r, resp_t *rs) {
    rs->nbody = body_parts(L, rs->iov, BODY_PARTS_INLINE);
    if (rs->nbody < 0)
        rs->nbody = body_joined(L, rs->iov);
    rs->has_head = !r->started;
    if (!rs->has_head)
        return; /* after flush() the head is out: status and headers are history */
    const char *name = NULL;
    const char *why = head_build(L, &rs->hd, &name);
    if (why)
        luaL_error(L, "header %s: %s", name ? name : "?", why);
}

/* req:finish(status, reason?, headers?, body?) -> true | nil, "closed"
 * [-(2..5), +1|2, e] */
static int req_finish(lua_State *L) {
    gust_request_t *r = check_req(L);
    if (!r)
        return closed(L);
    resp_t rs;
    resp_read(L, r, &rs);
    int rc = gust_request_finish(r, rs.has_head ? &rs.hd : NULL, rs.iov, rs.nbody);
    if (rs.has_head)
        gust_http_head_free(&rs.hd);
    if (rc < 0)
        return closed(L);
    lua_pushboolean(L, 1);
    return 1;
}

/*
 * req:finish(status, nil, nil, body) for LuaJIT's FFI (gust.web.handler):
 * a call the JIT compiles into the request's trace, where a Lua C
 * function would end it. `body` may be NULL. No Lua API in here or below
 * (on_end defers its unref). Returns 1, 0 for a request that is over
 * ("closed"), or -1 for anything req:finish would refuse (a bad status):
 * the caller then calls req:finish for the error.
 */
int gust_lua_finish_plain(void *handle, int status, const char *body, size_t len) {
    lreq_t *h = handle;
    if (!h || h->tag != &request_tag || status < 100 || status > 999)
        return -1;
    gust_request_t *r = h->req;
    if (!r)
        return 0;
    struct iovec iov = {(void *)body, len};
    gust_http_head_t hd;
    gust_http_head_init(&hd, status, NULL, 0);
    int rc = gust_request_finish(r, r->started ? NULL : &hd, &iov, body ? 1 : 0);
    gust_http_head_free(&hd);
    return rc < 0 ? 0 : 1;
}

int gust_lua_has_body(void *handle) {
    lreq_t *h = handle;
    if (!h || h->tag != &request_tag)
        return -1;
    size_t len = 0;
    if (h->req)
        gust_request_body(h->req, &len);
    return len > 0;
}

/* req:flush(status, reason?, headers?, body?) -> true | nil, "closed";
 * yields until the socket has taken the data  [-(2..5), +1|2, e] */
static int req_flush(lua_State *L) {
    lreq_t *h = gust_lua_checktag(L, &request_tag, sizeof(lreq_t), REQUEST_MT);
    gust_request_t *r = h->req;
    if (!r)
        return closed(L);
    resp_t rs;
    resp_read(L, r, &rs);
    int rc = gust_request_flush(r, rs.has_head ? &rs.hd : NULL, rs.iov, rs.nbody);
    if (rs.has_head)
        gust_http_head_free(&rs.hd);
    if (rc < 0)
        return closed(L);
    if (rc == 0 && h->flush_ref == LUA_NOREF) {
        int ref = gust_sched_anchor(L);
        if (ref != LUA_NOREF) {
            h->flush_ref = ref;
            return lua_yield(L, 0);
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* req:send_file(status, reason?, headers?, path, offset, length)
 * -> true | nil, err  [-(7), +1|2, e] */
static int req_send_file(lua_State *L) {
    gust_request_t *r = check_req(L);
    if (!r)
        return closed(L);
    const char *path = luaL_checkstring(L, 5);
    lua_Number offset = luaL_checknumber(L, 6), length = luaL_checknumber(L, 7);
    if (r->started)
        return luaL_error(L, "send_file after flush");
    gust_http_head_t hd;
    const char *name = NULL;
    const char *why = head_build(L, &hd, &name);
    if (why)
        return luaL_error(L, "header %s: %s", name ? name : "?", why);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        gust_http_head_free(&hd);
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    int rc = gust_request_send_file(r, &hd, fd, (off_t)offset, (off_t)length);
    gust_http_head_free(&hd);
    if (rc < 0)
        return closed(L);
    lua_pushboolean(L, 1);
    return 1;
}

/* req:detach() -> IOStream | nil, err: takes the connection away from
 * HTTP, with the bytes already read past this request (Tornado's
 * request.connection.detach(); the way to a WebSocket or a tunnel)
 * [-1, +1|2, e] */
static int req_detach(lua_State *L) {
    lreq_t *h = gust_lua_checktag(L, &request_tag, sizeof(lreq_t), REQUEST_MT);
    gust_request_t *r = h->req;
    if (!r)
        return closed(L);
    gust_server_t *s = h->server;
    gust_stream_t *st = gust_stream_new(s->core, -1);
    struct ssl_st *ssl = NULL;
    gust_access_t a;
    gust_request_access(r, &a);
    gust_access_t *access = gust_access_copy(&a);
    int fd = gust_request_detach(r, st->in, &ssl);
    if (fd < 0) {
        gust_access_free(access);
        gust_stream_free(st);
        if (fd == GUST_DETACH_CLOSED)
            return closed(L);
        lua_pushnil(L);
        lua_pushliteral(L, "the response has started");
        return 2;
    }
    gust_stream_set_fd(st, fd);
    st->tls.ssl = ssl; /* an HTTPS connection's TLS session goes with it */
    st->access = access;
    gust_lua_stream_push(L, s, st);
    return 1;
}

/* req:abort() -- cuts the connection: the way to end a response that
 * failed after it started (its client then sees a truncated body, not a
 * complete one)  [-1, +0, e] */
static int req_abort(lua_State *L) {
    gust_request_t *r = check_req(L);
    if (r)
        gust_request_abort(r);
    return 0;
}

/* req:_fail(err) -- the dispatch trampoline's error path: log, then a 500
 * or a cut connection  [-2, +0, e] */
static int req_fail(lua_State *L) {
    lreq_t *h = gust_lua_checktag(L, &request_tag, sizeof(lreq_t), REQUEST_MT);
    const char *err = lua_tostring(L, 2);
    gust_log(&h->server->core->log, GUST_LOG_ERROR, "uncaught error in handler: %s",
             err ? err : "(error object is not a string)");
    if (h->req)
        gust_request_fail(h->req);
    if (err && strstr(err, "not enough memory"))
        gust_sched_out_of_memory(h->server);
    return 0;
}

/* __tostring  [-1, +1, e] */
static int req_tostring(lua_State *L) {
    lreq_t *h = gust_lua_checktag(L, &request_tag, sizeof(lreq_t), REQUEST_MT);
    lua_pushfstring(L, "gust.request (%s)", h->req ? "open" : "closed");
    return 1;
}

/* ---- listeners serving Lua ------------------------------------------ */

static void handler_release(void *arg) {
    gust_lua_handler_t *lh = arg;
    lua_State *L = lh->server->L;
    if (lh->handle) {
        lh->handle->l = NULL;
        lh->handle->lh = NULL;
    }
    if (L) {
        /* Later: a listener's last connection can close inside
         * gust_lua_finish_plain, an FFI call. */
        gust_sched_t *sc = lh->server->sched;
        gust_sched_unref(sc, lh->handler_ref);
        gust_sched_unref(sc, lh->dispatch_ref);
        gust_sched_unref(sc, lh->request_mt_ref);
    }
    gust_free(lh);
}

/* A registry ref of registry[key]: integer keys are an array lookup per
 * request, light userdata keys a hash lookup. */
static int ref_of(lua_State *L, const char *key) {
    lua_pushlightuserdata(L, (void *)key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

gust_lua_handler_t *gust_lua_handler_attach(gust_server_t *s, gust_listener_t *l, int handler_ref) {
    gust_lua_handler_t *lh = gust_calloc(1, sizeof *lh);
    lh->server = s;
    lh->handler_ref = handler_ref;
    /* The listener's own trampoline, with its handler bound: one registry
     * look-up per request instead of two. */
    lua_pushlightuserdata(s->L, (void *)&dispatch_key);
    lua_rawget(s->L, LUA_REGISTRYINDEX);
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, handler_ref);
    lua_call(s->L, 1, 1);
    lh->dispatch_ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
    lh->request_mt_ref = ref_of(s->L, &request_mt_key);
    lh->listener = l;
    l->on_release = handler_release;
    l->release_arg = lh;
    return lh;
}

void gust_lua_request_open(lua_State *L) {
    static const luaL_Reg methods[] = {{"headers", req_headers},
                                       {"body", req_body},
                                       {"uri", req_uri},
                                       {"version", req_version},
                                       {"remote_ip", req_remote_ip},
                                       {"protocol", req_protocol},
                                       {"closed", req_closed},
                                       {"finish", req_finish},
                                       {"flush", req_flush},
                                       {"send_file", req_send_file},
                                       {"detach", req_detach},
                                       {"abort", req_abort},
                                       {"_fail", req_fail},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__tostring", req_tostring}, {NULL, NULL}};
    gust_lua_newclass(L, REQUEST_MT, methods, meta);
    lua_pushlightuserdata(L, (void *)&request_mt_key);
    lua_insert(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    /* Every request runs through a trampoline: an error the handler does
     * not catch (a raw handler, a framework bug), even one raised after the
     * handler yielded, still ends its request. Lua, so it can yield; no
     * varargs, which LuaJIT would not compile. The registry keeps what
     * makes one for a handler (gust_lua_handler_attach), with the names of
     * llhttp's methods, which on_request passes by number. */
    static const char trampoline[] =
        "local METHODS = ...\n"
        "local xpcall, traceback = xpcall, debug.traceback\n"
        "return function(handler)\n"
        "  return function(req, m, path, query)\n"
        "    local ok, err = xpcall(handler, traceback, req, METHODS[m], path, query)\n"
        "    if not ok then req:_fail(err) end\n"
        "  end\n"
        "end\n";
    lua_pushlightuserdata(L, (void *)&dispatch_key);
    if (luaL_loadbuffer(L, trampoline, sizeof trampoline - 1, "=gust.dispatch") != 0)
        luaL_error(L, "gust: dispatch trampoline: %s", lua_tostring(L, -1));
    lua_createtable(L, 64, 0);
#define METHOD_NAME(NUM, NAME, STRING)                                                             \
    lua_pushliteral(L, #STRING);                                                                   \
    lua_rawseti(L, -2, NUM);
    HTTP_ALL_METHOD_MAP(METHOD_NAME)
#undef METHOD_NAME
    if (lua_pcall(L, 1, 1, 0) != 0)
        luaL_error(L, "gust: dispatch trampoline: %s", lua_tostring(L, -1));
    lua_rawset(L, LUA_REGISTRYINDEX);
}
