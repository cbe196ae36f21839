/*
 * lua_socket.c -- raw sockets and fd handlers for the Lua IOLoop.
 *
 * "gust.socket" is a thin, non-blocking wrapper over a socket fd: enough to
 * write Tornado's raw accept loop (bind_sockets + add_handler + accept +
 * recv/send) in Lua. Results follow Python's socket module turned into Lua
 * conventions: would-block is nil, "EAGAIN"; end of stream is nil, "closed".
 *
 * core.add_handler(fd, fn, events) watches any fd level-triggered, as
 * Tornado's IOLoop does: fn(fd, events) runs in a coroutine of its own for
 * as long as the fd stays ready. Watchers live in a registry table keyed by
 * fd; the server detaches them all before it frees its loop.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>

#include "core/mem.h"
#include "lua_core.h"
#include "lua_sched.h"
#include "lua_socket.h"

#define SOCKET_MT "gust.socket"
#define WATCHER_MT "gust.watcher"

/* Tornado's IOLoop event bits. */
enum { IO_READ = 1, IO_WRITE = 4, IO_ERROR = 8 };

typedef struct gust_socket {
    int fd; /* -1 once closed or handed to a stream */
    int blocking;
} gust_socket_t;

static gust_socket_t *check_socket(lua_State *L) { return gust_lua_checkself(L, SOCKET_MT); }

static int push_errno(lua_State *L, int e) {
    lua_pushnil(L);
    if (e == EAGAIN || e == EWOULDBLOCK)
        lua_pushliteral(L, "EAGAIN");
    else
        lua_pushstring(L, strerror(e));
    return 2;
}

static void set_nonblocking(int fd, int on) {
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

gust_socket_t *gust_socket_push(lua_State *L, int fd) {
    gust_socket_t *sk = lua_newuserdata(L, sizeof *sk);
    sk->fd = fd;
    sk->blocking = 0;
    luaL_getmetatable(L, SOCKET_MT);
    lua_setmetatable(L, -2);
    return sk;
}

/* Takes the fd out of a socket object (an IOStream adopts it). */
int gust_socket_take(lua_State *L, int idx) {
    gust_socket_t *sk = luaL_testudata(L, idx, SOCKET_MT);
    if (!sk)
        return -1;
    int fd = sk->fd;
    sk->fd = -1;
    return fd;
}

void gust_push_address(lua_State *L, const struct sockaddr *sa) {
    char ip[INET6_ADDRSTRLEN] = "";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
    } else {
        strcpy(ip, "unix");
    }
    lua_createtable(L, 2, 0);
    lua_pushstring(L, ip);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, port);
    lua_rawseti(L, -2, 2);
}

/* core.bind_socket(port, address?, backlog?) -> socket | nil, err
 * [-(1..3), +1|2, e] */
static int core_bind_socket(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    int port = luaL_checkint(L, 1);
    const char *addr = luaL_optstring(L, 2, s->core->cfg.bind);
    int backlog = luaL_optint(L, 3, 128);
    char err[GUST_ERR_LEN];
    int bound;
    int fd = gust_bind(addr, port, &bound, err, sizeof err);
    if (fd < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    if (listen(fd, backlog) < 0) {
        int e = errno;
        close(fd);
        return push_errno(L, e);
    }
    gust_socket_push(L, fd);
    return 1;
}

/* sock:fileno() -> fd | -1  [-1, +1, e] */
static int sock_fileno(lua_State *L) {
    lua_pushinteger(L, check_socket(L)->fd);
    return 1;
}

/* sock:setblocking(flag)  [-(1..2), +0, e] */
static int sock_setblocking(lua_State *L) {
    gust_socket_t *sk = check_socket(L);
    sk->blocking = lua_toboolean(L, 2);
    if (sk->fd >= 0)
        set_nonblocking(sk->fd, !sk->blocking);
    return 0;
}

/* sock:accept() -> conn, {ip, port} | nil, "EAGAIN" | nil, err
 * [-1, +2, e] */
static int sock_accept(lua_State *L) {
    gust_socket_t *sk = check_socket(L);
    if (sk->fd < 0)
        return push_errno(L, EBADF);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(sk->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return push_errno(L, errno);
    if (ss.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    gust_socket_push(L, fd);
    gust_push_address(L, (struct sockaddr *)&ss);
    return 2;
}

/* sock:recv(n) -> 1..n bytes | nil, "EAGAIN" | nil, "closed" | nil, err
 * [-2, +1|2, e] */
static int sock_recv(lua_State *L) {
    gust_socket_t *sk = check_socket(L);
    int n = luaL_checkint(L, 2);
    luaL_argcheck(L, n > 0, 2, "positive byte count expected");
    if (sk->fd < 0)
        return push_errno(L, EBADF);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    char *p = n <= LUAL_BUFFERSIZE ? luaL_prepbuffer(&b) : lua_newuserdata(L, n);
    ssize_t got;
    do
        got = recv(sk->fd, p, n, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return push_errno(L, errno);
    if (got == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    lua_pushlstring(L, p, got);
    return 1;
}

/* sock:send(s) -> bytes sent | nil, "EAGAIN" | nil, err  [-2, +1|2, e] */
static int sock_send(lua_State *L) {
    gust_socket_t *sk = check_socket(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    if (sk->fd < 0)
        return push_errno(L, EBADF);
    ssize_t n;
    do
        n = send(sk->fd, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return push_errno(L, errno);
    lua_pushinteger(L, n);
    return 1;
}

/* sock:getsockname() -> {ip, port} | nil, err  [-1, +1|2, e] */
static int sock_getsockname(lua_State *L) {
    gust_socket_t *sk = check_socket(L);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (sk->fd < 0 || getsockname(sk->fd, (struct sockaddr *)&ss, &sl) < 0)
        return push_errno(L, sk->fd < 0 ? EBADF : errno);
    gust_push_address(L, (struct sockaddr *)&ss);
    return 1;
}

/* sock:close(), also its __gc -- closes the fd once  [-1, +0, e] */
static int sock_close(lua_State *L) {
    gust_socket_t *sk = check_socket(L);
    if (sk->fd >= 0)
        close(sk->fd);
    sk->fd = -1;
    return 0;
}

/* sock __tostring -> "gust.socket (fd N)"  [-1, +1, e] */
static int sock_tostring(lua_State *L) {
    lua_pushfstring(L, "gust.socket (fd %d)", check_socket(L)->fd);
    return 1;
}

/* ---- fd handlers ---------------------------------------------------- */

typedef struct gust_watcher {
    struct event ev;
    gust_server_t *server; /* NULL once removed */
    int fd, events, fn_ref;
    struct gust_watcher *prev, *next;
} gust_watcher_t;

static short to_libevent(int events) {
    short ev = EV_PERSIST;
    if (events & (IO_READ | IO_ERROR))
        ev |= EV_READ; /* errors and hang-ups show up as readable */
    if (events & IO_WRITE)
        ev |= EV_WRITE;
    return ev;
}

static void on_fd(evutil_socket_t fd, short what, void *arg) {
    gust_watcher_t *w = arg;
    gust_server_t *s = w->server;
    int events = (what & EV_READ ? IO_READ : 0) | (what & EV_WRITE ? IO_WRITE : 0);
    lua_State *co = gust_sched_thread(s->sched);
    lua_rawgeti(co, LUA_REGISTRYINDEX, w->fn_ref);
    lua_pushinteger(co, fd);
    lua_pushinteger(co, events);
    int rc = gust_sched_resume(s, co, 2);
    gust_sched_release(s->sched, co, rc);
}

static void watcher_stop(gust_server_t *s, gust_watcher_t *w) {
    event_del(&w->ev);
    if (w->prev)
        w->prev->next = w->next;
    else
        s->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->server = NULL;
}

/* registry[&watchers_key][fd] = watcher userdata */
static const char watchers_key = 'W';

static void push_watchers(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&watchers_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushlightuserdata(L, (void *)&watchers_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
}

static int fd_arg(lua_State *L, int idx) {
    gust_socket_t *sk = luaL_testudata(L, idx, SOCKET_MT);
    if (sk)
        return sk->fd;
    if (lua_type(L, idx) == LUA_TTABLE || lua_type(L, idx) == LUA_TUSERDATA) {
        /* any object with fileno(), as Tornado accepts */
        lua_getfield(L, idx, "fileno");
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        int fd = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        return fd;
    }
    return luaL_checkint(L, idx);
}

/* core.add_handler(fd, fn, events)  [-3, +0, e] */
static int core_add_handler(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    int fd = fd_arg(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int events = luaL_checkint(L, 3);
    luaL_argcheck(L, fd >= 0, 1, "open file descriptor expected");
    push_watchers(L);
    lua_rawgeti(L, -1, fd);
    if (!lua_isnil(L, -1))
        return luaL_error(L, "fd %d already has a handler", fd);
    lua_pop(L, 1);
    gust_watcher_t *w = lua_newuserdata(L, sizeof *w);
    memset(w, 0, sizeof *w);
    luaL_getmetatable(L, WATCHER_MT);
    lua_setmetatable(L, -2);
    w->server = s;
    w->fd = fd;
    w->events = events;
    lua_pushvalue(L, 2);
    w->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    event_assign(&w->ev, s->core->base, fd, to_libevent(events), on_fd, w);
    event_add(&w->ev, NULL);
    w->next = s->watchers;
    if (s->watchers)
        s->watchers->prev = w;
    s->watchers = w;
    lua_rawseti(L, -2, fd);
    return 0;
}

static gust_watcher_t *find_watcher(lua_State *L, int fd) {
    push_watchers(L);
    lua_rawgeti(L, -1, fd);
    gust_watcher_t *w = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return w;
}

/* core.update_handler(fd, events)  [-2, +0, e] */
static int core_update_handler(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    int fd = fd_arg(L, 1);
    int events = luaL_checkint(L, 2);
    gust_watcher_t *w = find_watcher(L, fd);
    if (!w || !w->server)
        return luaL_error(L, "fd %d has no handler", fd);
    event_del(&w->ev);
    w->events = events;
    event_assign(&w->ev, s->core->base, fd, to_libevent(events), on_fd, w);
    event_add(&w->ev, NULL);
    return 0;
}

/* core.remove_handler(fd) -> true if there was one  [-1, +1, e] */
static int core_remove_handler(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    int fd = fd_arg(L, 1);
    gust_watcher_t *w = find_watcher(L, fd);
    if (w && w->server) {
        watcher_stop(s, w);
        luaL_unref(L, LUA_REGISTRYINDEX, w->fn_ref);
        w->fn_ref = LUA_NOREF;
    }
    push_watchers(L);
    lua_pushnil(L);
    lua_rawseti(L, -2, fd);
    lua_pop(L, 1);
    lua_pushboolean(L, w != NULL);
    return 1;
}

void gust_socket_forget_server(gust_server_t *s) {
    while (s->watchers)
        watcher_stop(s, s->watchers);
}

void gust_socket_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg methods[] = {{"fileno", sock_fileno}, {"setblocking", sock_setblocking},
                                       {"accept", sock_accept}, {"recv", sock_recv},
                                       {"send", sock_send},     {"getsockname", sock_getsockname},
                                       {"close", sock_close},   {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"bind_socket", core_bind_socket},
                                     {"add_handler", core_add_handler},
                                     {"update_handler", core_update_handler},
                                     {"remove_handler", core_remove_handler},
                                     {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", sock_close}, {"__tostring", sock_tostring}, {NULL, NULL}};
    gust_lua_newclass(L, SOCKET_MT, methods, meta);
    lua_pop(L, 1);
    luaL_newmetatable(L, WATCHER_MT);
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
}
