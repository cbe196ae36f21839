/*
 * lua_redis.c -- "gust.redis.conn": one connection to a Redis server for
 * lua/gust/redis.lua, which adds the commands as methods, the pool, AUTH
 * and SELECT, pipelines and subscriptions (DESIGN §4.9).
 *
 * The connection is a gust_stream_t on the worker's loop, so a slow Redis
 * only holds the coroutine waiting for it. A command is written in RESP at
 * once (commands of a pipeline in one write); the replies are parsed by
 * hiredis's reader as they arrive and converted for Lua on the waiting
 * coroutine's stack: bulk and status -> string, integer -> number, nil ->
 * redis.null (the NULL light userdata, as cjson.null), array -> table,
 * error -> nil, "ERR ..." (inside an array or a pipeline: {false, "ERR
 * ..."}). A broken connection answers nil, "closed"; one whose reply does
 * not come within its timeout is closed (its next reply could not be told
 * from a later command's) and answers nil, "timeout".
 *
 * One coroutine waits on a connection at a time. After SUBSCRIBE a handler
 * set with set_push() gets each message as a task of its own. The stream
 * reads all the time, so a pooled connection that Redis closed is known to
 * be closed before it is handed out again.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <lauxlib.h>

#include "core/mem.h"
#include "core/redis_url.h"
#include "core/stream.h"
#include "lua_core.h"
#include "lua_redis.h"
#include "lua_sched.h"
#include "lua_stream.h"

#define CONN_MT "gust.redis.conn"

typedef struct rconn {
    gust_stream_t *st;
    gust_server_t *server;
    redisReader *reader;
    int self_ref;    /* anchored while a coroutine waits or it is subscribed */
    int co_ref;      /* the waiting coroutine */
    int results_ref; /* a pipeline's replies so far */
    int push_ref;    /* set_push's handler */
    int want, got;   /* replies the waiter expects, and has */
    unsigned pipeline : 1, timer_on : 1;
    double timeout; /* seconds for each reply; 0: none */
    struct event tev;
} rconn_t;

static void update_anchor(lua_State *L, rconn_t *c, int idx) {
    int need = c->st && !c->st->closed && (c->co_ref != LUA_NOREF || c->push_ref != LUA_NOREF);
    if (need && c->self_ref == LUA_NOREF) {
        lua_pushvalue(L, idx);
        c->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else if (!need && c->self_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, c->self_ref);
        c->self_ref = LUA_NOREF;
    }
}

static void unanchor(rconn_t *c) {
    if (c->self_ref != LUA_NOREF && c->server->L) {
        luaL_unref(c->server->L, LUA_REGISTRYINDEX, c->self_ref);
        c->self_ref = LUA_NOREF;
    }
}

static lua_State *waiter(gust_server_t *s, int ref) {
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, ref);
    lua_State *co = lua_tothread(s->L, -1);
    lua_pop(s->L, 1); /* still anchored by ref */
    return co;
}

/* Pushes a reply; at the top level an error is nil, message (2 values),
 * inside an array it is {false, message}. */
static int push_reply(lua_State *L, const redisReply *r, int top) {
    luaL_checkstack(L, 4, "redis reply too deep");
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: lua_pushlstring(L, r->str, r->len); return 1;
    case REDIS_REPLY_INTEGER: lua_pushnumber(L, (lua_Number)r->integer); return 1;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, (int)r->elements, 0);
        for (size_t i = 0; i < r->elements; i++) {
            push_reply(L, r->element[i], 0);
            lua_rawseti(L, -2, (int)i + 1);
        }
        return 1;
    case REDIS_REPLY_ERROR:
        if (top) {
            lua_pushnil(L);
            lua_pushlstring(L, r->str, r->len);
            return 2;
        }
        lua_createtable(L, 2, 0);
        lua_pushboolean(L, 0);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, r->str, r->len);
        lua_rawseti(L, -2, 2);
        return 1;
    default: lua_pushlightuserdata(L, NULL); return 1; /* nil: redis.null */
    }
}

/* The waiter has what it waited for (n values on its stack): queue it. */
static void finish_wait(rconn_t *c, int n) {
    if (c->timer_on) {
        event_del(&c->tev);
        c->timer_on = 0;
    }
    c->want = c->got = 0;
    c->pipeline = 0;
    if (c->results_ref != LUA_NOREF) {
        luaL_unref(c->server->L, LUA_REGISTRYINDEX, c->results_ref);
        c->results_ref = LUA_NOREF;
    }
    gust_run_t run = {c->co_ref, GUST_RUN_STACK, n, NULL};
    c->co_ref = LUA_NOREF;
    gust_sched_push(c->server, run);
    if (c->push_ref == LUA_NOREF)
        unanchor(c);
}

static void fail_waiter(rconn_t *c, const char *err) {
    if (c->co_ref == LUA_NOREF)
        return;
    lua_State *co = waiter(c->server, c->co_ref);
    lua_pushnil(co);
    lua_pushstring(co, err);
    finish_wait(c, 2);
}

/* A message of a subscribed connection: its handler runs as a task with
 * ("message", channel, payload) or ("pmessage", pattern, channel, payload). */
static int dispatch_push(rconn_t *c, const redisReply *r) {
    if (c->push_ref == LUA_NOREF || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    const char *kind = r->element[0]->str;
    if (!((strcmp(kind, "message") == 0 && r->elements == 3) ||
          (strcmp(kind, "pmessage") == 0 && r->elements == 4)))
        return 0;
    lua_State *L = c->server->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->push_ref);
    for (size_t i = 0; i < r->elements; i++)
        push_reply(L, r->element[i], 0);
    gust_sched_start(c->server, L, (int)r->elements);
    return 1;
}

static void handle_reply(rconn_t *c, const redisReply *r) {
    if (dispatch_push(c, r))
        return;
    if (c->co_ref == LUA_NOREF) { /* nobody asked: out of step */
        gust_stream_close(c->st, "protocol error");
        return;
    }
    lua_State *co = waiter(c->server, c->co_ref);
    if (!c->pipeline) {
        finish_wait(c, push_reply(co, r, 1));
        return;
    }
    lua_rawgeti(co, LUA_REGISTRYINDEX, c->results_ref);
    push_reply(co, r, 0);
    lua_rawseti(co, -2, ++c->got);
    if (c->got < c->want) {
        lua_pop(co, 1);
        return;
    }
    finish_wait(c, 1); /* the results table, left on co's stack */
}

/* Parses what arrived; each whole reply goes to its waiter or handler. */
static void drain_input(rconn_t *c) {
    gust_stream_t *st = c->st;
    size_t len = evbuffer_get_length(st->in);
    if (len) {
        redisReaderFeed(c->reader, (const char *)evbuffer_pullup(st->in, -1), len);
        evbuffer_drain(st->in, len);
    }
    gust_stream_incref(st); /* a reply may close it */
    while (c->st == st) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            gust_stream_close(st, "protocol error");
            break;
        }
        if (!reply)
            break;
        handle_reply(c, reply);
        freeReplyObject(reply);
        if (st->closed && c->co_ref == LUA_NOREF)
            break;
    }
    gust_stream_free(st);
}

static void on_read(gust_stream_t *st, void *arg) {
    rconn_t *c = arg;
    if (c->server->L)
        drain_input(c);
}

static void on_close(gust_stream_t *st, void *arg) {
    rconn_t *c = arg;
    if (!c->server->L)
        return;
    drain_input(c); /* what came before the close is still an answer */
    fail_waiter(c, strcmp(st->err, "timeout") == 0 ? "timeout" : "closed");
    unanchor(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
    rconn_t *c = arg;
    c->timer_on = 0;
    fail_waiter(c, "timeout");
    if (c->st)
        gust_stream_close(c->st, "timeout");
}

static rconn_t *check_conn(lua_State *L) { return luaL_checkudata(L, 1, CONN_MT); }

/* Pushes nil, "closed"  [-0, +2, m] */
static int closed_result(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
}

/* Checks that the values at first..last are strings or numbers. */
static void check_args(lua_State *L, int first, int last) {
    for (int i = first; i <= last; i++) {
        int t = lua_type(L, i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_argerror(
                L, i, lua_pushfstring(L, "string or number expected, got %s", luaL_typename(L, i)));
    }
}

/* Appends one command, its words at first..last (checked), in RESP. */
static void append_command(lua_State *L, struct evbuffer *out, int first, int last) {
    char head[32];
    int n = snprintf(head, sizeof head, "*%d\r\n", last - first + 1);
    evbuffer_add(out, head, (size_t)n);
    for (int i = first; i <= last; i++) {
        size_t len;
        const char *p = lua_tolstring(L, i, &len);
        n = snprintf(head, sizeof head, "$%zu\r\n", len);
        evbuffer_add(out, head, (size_t)n);
        evbuffer_add(out, p, len);
        evbuffer_add(out, "\r\n", 2);
    }
}

/* Sends what was appended and yields until `want` replies came; a write
 * that fails answers nil, "closed" at once. */
static int start_wait(lua_State *L, rconn_t *c, int co_ref, int want, int pipeline) {
    gust_stream_write(c->st, "", 0);
    if (c->st->closed) {
        luaL_unref(L, LUA_REGISTRYINDEX, co_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, c->results_ref);
        c->results_ref = LUA_NOREF;
        return closed_result(L);
    }
    c->co_ref = co_ref;
    c->want = want;
    c->got = 0;
    c->pipeline = pipeline;
    update_anchor(L, c, 1);
    if (c->timeout > 0) {
        struct timeval tv = gust_timeval(c->timeout);
        evtimer_add(&c->tev, &tv);
        c->timer_on = 1;
    }
    return lua_yield(L, 0);
}

static int anchor_caller(lua_State *L, rconn_t *c) {
    if (c->co_ref != LUA_NOREF)
        return luaL_error(L, "redis connection busy: another coroutine waits on it");
    int ref = gust_sched_anchor(L);
    if (ref == LUA_NOREF)
        return luaL_error(L, "redis commands must be called from a task");
    return ref;
}

/* conn:command(word, ...) -> reply | nil, err (yields for the reply)
 * [-(2+n), +1|2, e] */
static int rc_command(lua_State *L) {
    rconn_t *c = check_conn(L);
    int top = lua_gettop(L);
    luaL_checkstring(L, 2);
    check_args(L, 3, top);
    if (!c->st || c->st->closed)
        return closed_result(L);
    int ref = anchor_caller(L, c);
    append_command(L, c->st->out, 2, top);
    return start_wait(L, c, ref, 1, 0);
}

/* conn:pipeline({{word, ...}, ...}) -> {reply, ...} | nil, err: every
 * command in one write (yields for all the replies)  [-2, +1|2, e] */
static int rc_pipeline(lua_State *L) {
    rconn_t *c = check_conn(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = (int)lua_objlen(L, 2);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        if (!lua_istable(L, -1) || lua_objlen(L, -1) < 1)
            return luaL_error(L, "pipeline: command %d is not a list of words", i);
        lua_pop(L, 1);
    }
    if (!c->st || c->st->closed)
        return closed_result(L);
    if (n == 0) {
        lua_newtable(L);
        return 1;
    }
    /* Check every word before anything is sent. */
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        int ci = lua_gettop(L), m = (int)lua_objlen(L, ci);
        for (int j = 1; j <= m; j++) {
            lua_rawgeti(L, ci, j);
            int t = lua_type(L, -1);
            if (t != LUA_TSTRING && t != LUA_TNUMBER)
                return luaL_error(L, "pipeline: command %d, word %d: string or number expected", i,
                                  j);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    int ref = anchor_caller(L, c);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        int m = (int)lua_objlen(L, -1), base = lua_gettop(L);
        luaL_checkstack(L, m, "pipeline: too many words");
        for (int j = 1; j <= m; j++)
            lua_rawgeti(L, base, j);
        append_command(L, c->st->out, base + 1, base + m);
        lua_settop(L, base - 1);
    }
    lua_createtable(L, n, 0);
    c->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return start_wait(L, c, ref, n, 1);
}

/* conn:set_push(fn | nil): fn(kind, ...) runs as a task for each message
 * of a subscribed connection  [-2, +0, e] */
static int rc_set_push(lua_State *L) {
    rconn_t *c = check_conn(L);
    luaL_unref(L, LUA_REGISTRYINDEX, c->push_ref);
    c->push_ref = LUA_NOREF;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_pushvalue(L, 2);
        c->push_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    update_anchor(L, c, 1);
    return 0;
}

/* conn:set_timeout(seconds): for each reply; 0 waits for ever
 * [-2, +0, e] */
static int rc_set_timeout(lua_State *L) {
    rconn_t *c = check_conn(L);
    double t = luaL_checknumber(L, 2);
    luaL_argcheck(L, t >= 0, 2, "seconds >= 0 expected");
    c->timeout = t;
    return 0;
}

/* conn:idle() -> true when open and nobody waits on it (fit for the
 * pool)  [-1, +1, e] */
static int rc_idle(lua_State *L) {
    rconn_t *c = check_conn(L);
    lua_pushboolean(L,
                    c->st && !c->st->closed && c->co_ref == LUA_NOREF && c->push_ref == LUA_NOREF);
    return 1;
}

/* conn:closed() -> true once closed  [-1, +1, e] */
static int rc_closed(lua_State *L) {
    rconn_t *c = check_conn(L);
    lua_pushboolean(L, !c->st || c->st->closed);
    return 1;
}

/* conn:close() -- closes the socket; a waiter gets nil, "closed"
 * [-1, +0, e] */
static int rc_close(lua_State *L) {
    rconn_t *c = check_conn(L);
    if (c->st)
        gust_stream_close(c->st, NULL);
    return 0;
}

/* conn __gc -- frees the socket and the reader  [-1, +0, e] */
static int rc_gc(lua_State *L) {
    rconn_t *c = check_conn(L);
    if (c->timer_on) {
        event_del(&c->tev);
        c->timer_on = 0;
    }
    if (c->st) {
        c->st->on_read = c->st->on_close = NULL;
        gust_stream_free(c->st);
        c->st = NULL;
    }
    if (c->reader) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, c->push_ref);
    c->push_ref = LUA_NOREF;
    return 0;
}

/* conn __tostring -> "gust.redis.conn (fd N)"  [-1, +1, e] */
static int rc_tostring(lua_State *L) {
    rconn_t *c = check_conn(L);
    lua_pushfstring(L, "gust.redis.conn (fd %d)", c->st ? c->st->fd : -1);
    return 1;
}

static void push_conn(lua_State *L, gust_server_t *s, gust_stream_t *st) {
    rconn_t *c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    c->server = s;
    c->self_ref = c->co_ref = c->results_ref = c->push_ref = LUA_NOREF;
    c->reader = redisReaderCreate();
    if (!c->reader)
        abort();
    evtimer_assign(&c->tev, s->core->base, on_timeout, c);
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    c->st = st;
    st->on_read = on_read;
    st->on_close = on_close;
    st->on_drain = NULL;
    st->arg = c;
    gust_stream_read_start(st);
}

/* core.redis_connect(host, port, timeout?) -> conn | nil, err (yields)
 * [-(2..3), +1|2, e] */
static int core_redis_connect(lua_State *L) {
    return gust_lua_connect(L, lua_touserdata(L, lua_upvalueindex(1)), "redis.connect()",
                            push_conn);
}

/* core.redis_connect_unix(path) -> conn | nil, err: a local socket
 * connects at once or not at all  [-1, +1|2, e] */
static int core_redis_connect_unix(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    struct sockaddr_un sa;
    luaL_argcheck(L, len > 0 && len < sizeof sa.sun_path, 1, "bad socket path");
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        lua_pushnil(L);
        lua_pushstring(L, e == ECONNREFUSED ? "connection refused" : strerror(e));
        return 2;
    }
    push_conn(L, s, gust_stream_new(s->core, fd));
    return 1;
}

/* core.redis_parse_url(url) -> {host=, port=, path=, user=, password=,
 * db=} | nil, err  [-1, +1|2, e] */
static int core_redis_parse_url(lua_State *L) {
    const char *url = luaL_checkstring(L, 1);
    gust_redis_url_t u;
    char err[GUST_ERR_LEN];
    if (gust_redis_url_parse(url, &u, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "invalid redis URL: %s", err);
        return 2;
    }
    lua_createtable(L, 0, 6);
    if (u.path[0]) {
        lua_pushstring(L, u.path);
        lua_setfield(L, -2, "path");
    } else {
        lua_pushstring(L, u.host);
        lua_setfield(L, -2, "host");
        lua_pushinteger(L, u.port);
        lua_setfield(L, -2, "port");
    }
    if (u.user[0]) {
        lua_pushstring(L, u.user);
        lua_setfield(L, -2, "user");
    }
    if (u.password[0]) {
        lua_pushstring(L, u.password);
        lua_setfield(L, -2, "password");
    }
    lua_pushinteger(L, u.db);
    lua_setfield(L, -2, "db");
    return 1;
}

void gust_redis_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg methods[] = {{"command", rc_command},   {"pipeline", rc_pipeline},
                                       {"set_push", rc_set_push}, {"set_timeout", rc_set_timeout},
                                       {"idle", rc_idle},         {"closed", rc_closed},
                                       {"close", rc_close},       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", rc_gc}, {"__tostring", rc_tostring}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"redis_connect", core_redis_connect},
                                     {"redis_connect_unix", core_redis_connect_unix},
                                     {"redis_parse_url", core_redis_parse_url},
                                     {NULL, NULL}};
    gust_lua_newclass(L, CONN_MT, methods, meta);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "redis_null");
}
