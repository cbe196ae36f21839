/*
 * lua_pubsub.c -- the worker's end of the pubsub bus (DESIGN §4.9).
 *
 * Under the gust command each worker has a SOCK_SEQPACKET socket to the
 * master; a message published in one worker is sent there once and the
 * master relays it to the other workers, where it is handed to the Lua side
 * (lua/gust/pubsub.lua), which fans it out to the local subscribers. One
 * packet is one message: [u16 channel length][channel][payload].
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <lauxlib.h>

#include "core/mem.h"
#include "lua_pubsub.h"
#include "lua_sched.h"

struct gust_bus {
    int fd; /* to the master; -1 when there is none (one process) */
    int handler_ref;
    struct event ev;
};

gust_bus_t *gust_bus_new(gust_server_t *s) {
    gust_bus_t *b = gust_calloc(1, sizeof *b);
    b->fd = -1;
    b->handler_ref = LUA_NOREF;
    return b;
}

static void on_bus(evutil_socket_t fd, short what, void *arg) {
    gust_server_t *s = arg;
    char msg[GUST_BUS_MAX];
    for (int budget = 64; budget > 0; budget--) { /* then let I/O run */
        ssize_t n = recv(fd, msg, sizeof msg, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            event_del(&s->bus->ev); /* the master is gone */
            return;
        }
        size_t clen = (unsigned char)msg[0] | (size_t)(unsigned char)msg[1] << 8;
        if ((size_t)n < 2 + clen || s->bus->handler_ref == LUA_NOREF || !s->L)
            continue;
        lua_State *co = gust_sched_thread(s->sched);
        lua_rawgeti(co, LUA_REGISTRYINDEX, s->bus->handler_ref);
        lua_pushlstring(co, msg + 2, clen);
        lua_pushlstring(co, msg + 2 + clen, (size_t)n - 2 - clen);
        gust_sched_release(s->sched, co, gust_sched_resume(s, co, 2));
    }
}

void gust_server_attach_bus(gust_server_t *s, int fd) {
    s->bus->fd = fd;
    event_assign(&s->bus->ev, s->core->base, fd, EV_READ | EV_PERSIST, on_bus, s);
    event_add(&s->bus->ev, NULL);
}

void gust_bus_free(gust_bus_t *b) {
    if (!b)
        return;
    if (b->fd >= 0) {
        event_del(&b->ev);
        close(b->fd);
    }
    gust_free(b);
}

/* core.bus_publish(channel, message) -> true | nil, err: to the other
 * workers (true and nothing sent when there are none)  [-2, +1|2, e] */
static int core_bus_publish(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    size_t clen, mlen;
    const char *ch = luaL_checklstring(L, 1, &clen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    if (clen > 0xffff || 2 + clen + mlen > GUST_BUS_MAX) {
        lua_pushnil(L);
        lua_pushliteral(L, "message too large");
        return 2;
    }
    if (s->bus->fd < 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    unsigned char head[2] = {(unsigned char)(clen & 0xff), (unsigned char)(clen >> 8)};
    struct iovec iov[3] = {{head, 2}, {(void *)ch, clen}, {(void *)msg, mlen}};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = iov;
    mh.msg_iovlen = 3;
    if (sendmsg(s->bus->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, errno == EAGAIN ? "bus busy" : strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* core.set_bus_handler(fn): fn(channel, message) for messages from the
 * other workers  [-1, +0, e] */
static int core_set_bus_handler(lua_State *L) {
    gust_server_t *s = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_unref(L, LUA_REGISTRYINDEX, s->bus->handler_ref);
    lua_pushvalue(L, 1);
    s->bus->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

void gust_pubsub_open(lua_State *L, gust_server_t *s) {
    static const luaL_Reg funcs[] = {
        {"bus_publish", core_bus_publish}, {"set_bus_handler", core_set_bus_handler}, {NULL, NULL}};
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
}
