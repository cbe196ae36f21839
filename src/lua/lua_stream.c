/*
 * lua_stream.c -- "gust.stream": Tornado's IOStream for Lua over a
 * gust_stream_t, plus the calls that make streams: core.stream(fd|socket),
 * core.connect(host, port, timeout) and core.listen_stream(fn, port, addr)
 * for TCPServer.
 *
 * Reads (read_until, read_bytes, read_until_close) and writes above the
 * high-water mark yield the calling coroutine; the stream's callbacks put
 * the results on the waiting coroutine's stack and queue it to run.  One
 * read and one write may wait at a time, as in Tornado.
 *
 * While it has a waiter, unsent output or a close callback, the userdata is
 * anchored in the registry, so an abandoned stream still finishes its work
 * and then becomes garbage (its __gc closes the socket).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <lauxlib.h>

#include "core/mem.h"
#include "core/stream.h"
#include "lua_core.h"
#include "lua_request.h"
#include "lua_sched.h"
#include "lua_socket.h"
#include "lua_stream.h"

#define STREAM_MT "gust.stream"
#define HIGH_MARK (64 * 1024)

enum { READ_NONE, READ_UNTIL, READ_BYTES, READ_CLOSE };

typedef struct lstream {
    gust_stream_t *st;
    gust_server_t *server;
    int self_ref, read_ref, write_ref, close_ref;
    int kind, partial;
    size_t n, max;
    char *delim;
    size_t dlen;
} lstream_t;

static void update_anchor(lua_State *L, lstream_t *ls, int idx) {
    int need = ls->st && !ls->st->closed &&
               (ls->read_ref != LUA_NOREF || ls->write_ref != LUA_NOREF ||
                ls->close_ref != LUA_NOREF || gust_stream_pending(ls->st) > 0);
    if (need && ls->self_ref == LUA_NOREF) {
        lua_pushvalue(L, idx);
        ls->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else if (!need && ls->self_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, ls->self_ref);
        ls->self_ref = LUA_NOREF;
    }
}

/* Pushes the read result onto `to` if the pending read can complete now:
 * data, or nil + error. Returns the number of values pushed (0: wait). */
static int try_read(lstream_t *ls, lua_State *to) {
    gust_stream_t *st = ls->st;
    struct evbuffer *in = st->in;
    size_t have = evbuffer_get_length(in), take = 0;
    int done = 0;
    switch (ls->kind) {
    case READ_UNTIL: {
        struct evbuffer_ptr p = evbuffer_search(in, ls->delim, ls->dlen, NULL);
        if (p.pos >= 0) {
            take = (size_t)p.pos + ls->dlen;
            if (ls->max && take > ls->max) {
                lua_pushnil(to);
                lua_pushliteral(to, "delimiter not found within max_bytes");
                return 2;
            }
            done = 1;
        } else if (ls->max && have > ls->max) {
            lua_pushnil(to);
            lua_pushliteral(to, "delimiter not found within max_bytes");
            return 2;
        }
        break;
    }
    case READ_BYTES:
        if (have >= ls->n) {
            take = ls->n;
            done = 1;
        } else if (ls->partial && have > 0) {
            take = have;
            done = 1;
        }
        break;
    case READ_CLOSE:
        if (st->eof || st->closed) {
            take = have;
            done = 1;
        }
        break;
    }
    if (!done) {
        if (!st->eof && !st->closed)
            return 0;
        lua_pushnil(to);
        lua_pushstring(to, st->err ? st->err : "closed");
        return 2;
    }
    lua_pushlstring(to, take ? (const char *)evbuffer_pullup(in, take) : "", take);
    evbuffer_drain(in, take);
    return 1;
}

/* Queues the coroutine `ref` with the `n` values already on its stack. */
static void wake(gust_server_t *s, int *ref, int n) {
    gust_run_t run = {*ref, GUST_RUN_STACK, n, NULL};
    *ref = LUA_NOREF;
    gust_sched_push(s, run);
}

static lua_State *waiter(gust_server_t *s, int ref) {
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, ref);
    lua_State *co = lua_tothread(s->L, -1);
    lua_pop(s->L, 1); /* still anchored by ref */
    return co;
}

static void on_read(gust_stream_t *st, void *arg) {
    lstream_t *ls = arg;
    gust_server_t *s = ls->server;
    if (ls->read_ref == LUA_NOREF || !s->L)
        return;
    lua_State *co = waiter(s, ls->read_ref);
    int n = try_read(ls, co);
    if (n) {
        ls->kind = READ_NONE;
        if (ls->close_ref == LUA_NOREF)
            gust_stream_read_stop(st);
        wake(s, &ls->read_ref, n);
    }
}

/* The stream's read callback: the reader it wakes runs right after, from
 * here, not on the deferred callbacks' next pass (as a WebSocket's). */
static void on_readable(gust_stream_t *st, void *arg) {
    gust_sched_t *sc = ((lstream_t *)arg)->server->sched;
    gust_sched_batch_begin(sc);
    on_read(st, arg);
    gust_sched_batch_end(sc); /* last: the reader may let go of the stream */
}

static void on_drain(gust_stream_t *st, void *arg) {
    lstream_t *ls = arg;
    gust_server_t *s = ls->server;
    if (ls->write_ref == LUA_NOREF || !s->L)
        return;
    lua_pushboolean(waiter(s, ls->write_ref), 1);
    wake(s, &ls->write_ref, 1);
}

static void on_close(gust_stream_t *st, void *arg) {
    lstream_t *ls = arg;
    gust_server_t *s = ls->server;
    if (!s->L)
        return;
    on_read(st, arg); /* a pending read completes or fails */
    if (ls->write_ref != LUA_NOREF) {
        lua_State *co = waiter(s, ls->write_ref);
        lua_pushnil(co);
        lua_pushstring(co, st->err ? st->err : "closed");
        wake(s, &ls->write_ref, 2);
    }
    if (ls->close_ref != LUA_NOREF) {
        lua_rawgeti(s->L, LUA_REGISTRYINDEX, ls->close_ref);
        luaL_unref(s->L, LUA_REGISTRYINDEX, ls->close_ref);
        ls->close_ref = LUA_NOREF;
        gust_sched_start(s, s->L, 0);
    }
    if (ls->self_ref != LUA_NOREF) {
        /* Unanchored once the queued wake-ups hold what they need. */
        luaL_unref(s->L, LUA_REGISTRYINDEX, ls->self_ref);
        ls->self_ref = LUA_NOREF;
    }
}

/* Wraps `st` in a new userdata on L's stack. */
static lstream_t *push_stream(lua_State *L, gust_server_t *s, gust_stream_t *st);

void gust_lua_stream_push(lua_State *L, gust_server_t *s, gust_stream_t *st) {
    push_stream(L, s, st);
}

/* Takes the gust_stream_t, with the IOStream's reference, out of the
 * IOStream at idx, which is closed from then on (the way from an upgraded
 * HTTP connection to a WebSocket). NULL when idx is not an IOStream, has
 * lost its stream, or has a read or write waiting. */
gust_stream_t *gust_lua_stream_take(lua_State *L, int idx) {
    lstream_t *ls = luaL_testudata(L, idx, STREAM_MT);
    if (!ls || !ls->st || ls->read_ref != LUA_NOREF || ls->write_ref != LUA_NOREF)
        return NULL;
    gust_stream_t *st = ls->st;
    st->on_read = st->on_drain = st->on_close = NULL;
    st->arg = NULL;
    ls->st = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, ls->close_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, ls->self_ref);
    ls->close_ref = ls->self_ref = LUA_NOREF;
    return st;
}

static lstream_t *push_stream(lua_State *L, gust_server_t *s, gust_stream_t *st) {
    lstream_t *ls = lua_newuserdata(L, sizeof *ls);
    memset(ls, 0, sizeof *ls);
    ls->st = st;
    ls->server = s;
    ls->self_ref = ls->read_ref = ls->write_ref = ls->close_ref = LUA_NOREF;
    luaL_getmetatable(L, STREAM_MT);
    lua_setmetatable(L, -2);
    st->on_read = on_readable;
    st->on_drain = on_drain;
    st->on_close = on_close;
    st->arg = ls;
    return ls;
}

static lstream_t *check_stream(lua_State *L) { return gust_lua_checkself(L, STREAM_MT); }

static int closed_result(lua_State *L, lstream_t *ls) {
    lua_pushnil(L);
    lua_pushstring(L, ls->st && ls->st->err ? ls->st->err : "closed");
    return 2;
}

static int start_read(lua_State *L, lstream_t *ls) {
    if (!ls->st)
        return closed_result(L, ls);
    if (ls->read_ref != LUA_NOREF)
        return luaL_error(L, "already reading");
    int n = try_read(ls, L);
    if (n) {
        ls->kind = READ_NONE;
        return n;
    }
    int ref = gust_sched_anchor(L);
    if (ref == LUA_NOREF)
        return luaL_error(L, "stream reads must be called from a task");
    ls->read_ref = ref;
    gust_stream_read_start(ls->st);
    update_anchor(L, ls, 1);
    return lua_yield(L, 0);
}

/* stream:read_until(delim, max_bytes?) -> data ending with delim | nil, err
 * (yields until then)  [-(2..3), +1|2, e] */
static int ls_read_until(lua_State *L) {
    lstream_t *ls = check_stream(L);
    size_t dlen;
    const char *delim = luaL_checklstring(L, 2, &dlen);
    luaL_argcheck(L, dlen > 0, 2, "empty delimiter");
    ls->max = (size_t)luaL_optnumber(L, 3, 0);
    gust_free(ls->delim);
    ls->delim = gust_malloc(dlen);
    memcpy(ls->delim, delim, dlen);
    ls->dlen = dlen;
    ls->kind = READ_UNTIL;
    return start_read(L, ls);
}

/* stream:read_bytes(n, partial?) -> data | nil, err (yields until then)
 * [-(2..3), +1|2, e] */
static int ls_read_bytes(lua_State *L) {
    lstream_t *ls = check_stream(L);
    lua_Number n = luaL_checknumber(L, 2);
    luaL_argcheck(L, n >= 0, 2, "byte count must be >= 0");
    ls->n = (size_t)n;
    ls->partial = lua_toboolean(L, 3);
    ls->kind = READ_BYTES;
    return start_read(L, ls);
}

/* stream:read_until_close() -> everything until EOF | nil, err (yields
 * until then)  [-1, +1|2, e] */
static int ls_read_until_close(lua_State *L) {
    lstream_t *ls = check_stream(L);
    ls->kind = READ_CLOSE;
    return start_read(L, ls);
}

/* stream:write(data) -> true | nil, err; yields above the high-water mark
 * [-2, +1|2, e] */
static int ls_write(lua_State *L) {
    lstream_t *ls = check_stream(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (!ls->st || ls->st->closed)
        return closed_result(L, ls);
    size_t left = gust_stream_write(ls->st, data, len);
    if (ls->st->closed)
        return closed_result(L, ls);
    if (left > HIGH_MARK && ls->write_ref == LUA_NOREF) {
        int ref = gust_sched_anchor(L);
        if (ref != LUA_NOREF) {
            ls->write_ref = ref;
            update_anchor(L, ls, 1);
            return lua_yield(L, 0);
        }
    }
    update_anchor(L, ls, 1);
    lua_pushboolean(L, 1);
    return 1;
}

/* stream:close() -- closes the connection; a no-op once closed  [-1, +0, e] */
static int ls_close(lua_State *L) {
    lstream_t *ls = check_stream(L);
    if (ls->st)
        gust_stream_close(ls->st, NULL);
    return 0;
}

/* stream:closed() -> true once closed  [-1, +1, e] */
static int ls_closed(lua_State *L) {
    lstream_t *ls = check_stream(L);
    lua_pushboolean(L, !ls->st || ls->st->closed);
    return 1;
}

/* stream:fileno() -> fd | -1  [-1, +1, e] */
static int ls_fileno(lua_State *L) {
    lstream_t *ls = check_stream(L);
    lua_pushinteger(L, ls->st ? ls->st->fd : -1);
    return 1;
}

/* stream:set_close_callback(fn|nil): fn() runs once the stream closes; the
 * stream watches the socket meanwhile, so a peer's close is noticed.
 * [-(1..2), +0, e] */
static int ls_set_close_callback(lua_State *L) {
    lstream_t *ls = check_stream(L);
    luaL_unref(L, LUA_REGISTRYINDEX, ls->close_ref);
    ls->close_ref = LUA_NOREF;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_pushvalue(L, 2);
        ls->close_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        if (ls->st)
            gust_stream_read_start(ls->st);
    }
    update_anchor(L, ls, 1);
    return 0;
}

/* stream:set_max_buffer_size(n)  [-2, +0, e] */
static int ls_set_max_buffer_size(lua_State *L) {
    lstream_t *ls = check_stream(L);
    lua_Number n = luaL_checknumber(L, 2);
    luaL_argcheck(L, n > 0, 2, "positive size expected");
    if (ls->st)
        ls->st->max_buffer = (size_t)n;
    return 0;
}

/* stream __gc -- frees the stream (closing its socket)  [-1, +0, e] */
static int ls_gc(lua_State *L) {
    lstream_t *ls = check_stream(L);
    if (ls->st) {
        ls->st->on_read = ls->st->on_drain = ls->st->on_close = NULL;
        gust_stream_free(ls->st);
        ls->st = NULL;
    }
    gust_free(ls->delim);
    ls->delim = NULL;
    return 0;
}

/* stream __tostring -> "gust.stream (fd N)"  [-1, +1, e] */
static int ls_tostring(lua_State *L) {
    lstream_t *ls = check_stream(L);
    lua_pushfstring(L, "gust.stream (fd %d)", ls->st ? ls->st->fd : -1);
    return 1;
}

/* core.stream(fd | socket) -> stream: adopts the descriptor  [-1, +1, e] */
static int core_stream(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    int fd = gust_socket_take(L, 1);
    if (fd < 0 && lua_type(L, 1) == LUA_TNUMBER)
        fd = (int)lua_tointeger(L, 1);
    luaL_argcheck(L, fd >= 0, 1, "open fd or gust.socket expected");
    evutil_make_socket_nonblocking(fd); /* a pipe made by the caller, say */
    gust_stream_t *st = gust_stream_new(s->core, fd);
    push_stream(L, s, st);
    return 1;
}

/* A connect in progress: who waits for it, and what the stream becomes. */
typedef struct pending_connect {
    gust_server_t *server;
    int co_ref;
    gust_lua_stream_wrap_fn wrap;
} pending_connect_t;

static void on_connect_done(gust_stream_t *st, const char *err, void *arg) {
    pending_connect_t *pc = arg;
    gust_server_t *s = pc->server;
    if (!s->L) {
        gust_stream_free(st);
        gust_free(pc);
        return;
    }
    lua_State *co = waiter(s, pc->co_ref);
    int n = 1;
    if (st) {
        pc->wrap(co, s, st);
    } else {
        lua_pushnil(co);
        lua_pushstring(co, err);
        n = 2;
    }
    wake(s, &pc->co_ref, n);
    gust_free(pc);
}

int gust_lua_connect(lua_State *L, gust_server_t *s, const char *what,
                     gust_lua_stream_wrap_fn wrap) {
    const char *host = luaL_checkstring(L, 1);
    int port = luaL_checkint(L, 2);
    double timeout = luaL_optnumber(L, 3, 0);
    luaL_argcheck(L, port > 0 && port < 65536, 2, "port out of range");
    int ref = gust_sched_anchor(L);
    if (ref == LUA_NOREF)
        return luaL_error(L, "%s must be called from a task", what);
    pending_connect_t *pc = gust_malloc(sizeof *pc);
    pc->server = s;
    pc->co_ref = ref;
    pc->wrap = wrap;
    gust_stream_connect(s->core, host, port, timeout, on_connect_done, pc);
    return lua_yield(L, 0);
}

/* core.connect(host, port, timeout?) -> stream | nil, err (yields)
 * [-(2..3), +1|2, e] */
static int core_connect(lua_State *L) {
    return gust_lua_connect(L, lua_touserdata(L, lua_upvalueindex(1)), "connect()",
                            gust_lua_stream_push);
}

void gust_lua_stream_accept(gust_listener_t *l, int fd, const struct sockaddr *sa, int salen,
                            void *arg) {
    gust_lua_handler_t *lh = arg;
    gust_server_t *s = lh->server;
    lua_State *L = s->L;
    if (!L) {
        close(fd);
        return;
    }
    lua_State *co = lua_newthread(L);
    lua_rawgeti(co, LUA_REGISTRYINDEX, lh->handler_ref);
    push_stream(co, s, gust_stream_new(s->core, fd));
    gust_push_address(co, sa);
    gust_sched_resume(s, co, 2);
    lua_pop(L, 1);
}

/* core.listen_stream(fn, port, address?) -> listener | nil, err:
 * fn(stream, {ip, port}) runs in a task per accepted connection
 * [-(2..3), +1|2, e] */
static int core_listen_stream(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    return gust_listen_lua(L, lua_touserdata(L, lua_upvalueindex(1)), 1);
}

void gust_stream_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg methods[] = {{"read_until", ls_read_until},
                                       {"read_bytes", ls_read_bytes},
                                       {"read_until_close", ls_read_until_close},
                                       {"write", ls_write},
                                       {"close", ls_close},
                                       {"closed", ls_closed},
                                       {"fileno", ls_fileno},
                                       {"set_close_callback", ls_set_close_callback},
                                       {"set_max_buffer_size", ls_set_max_buffer_size},
                                       {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"stream", core_stream},
                                     {"connect", core_connect},
                                     {"listen_stream", core_listen_stream},
                                     {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", ls_gc}, {"__tostring", ls_tostring}, {NULL, NULL}};
    gust_lua_newclass(L, STREAM_MT, methods, meta);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
}
