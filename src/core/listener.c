/*
 * listener.c -- gust_listener_t: a listening socket (TCP over IPv4/IPv6, or
 * a Unix socket) and the Lua callable its requests go to, with the limits
 * and timeouts that apply to its connections.
 *
 * A listener is freed when it is closed and its last connection is gone, so
 * connections can always reach their limits and handler.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/listener.h>
#include <lauxlib.h>

#include "server.h"

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg) {
    gust_listener_t *l = arg;
    if (l->raw)
        gust_conn_accept_stream(l, fd, sa);
    else
        gust_conn_accept(l, fd, sa, salen);
}

static void on_accept_error(struct evconnlistener *lev, void *arg) {
    gust_listener_t *l = arg;
    int e = EVUTIL_SOCKET_ERROR();
    /* EMFILE and friends: keep listening; the backlog waits for a free fd. */
    gust_log(&l->server->log, GUST_LOG_ERROR, "accept: %s", evutil_socket_error_to_string(e));
}

static const struct timeval *common_timeout(gust_server_t *s, double seconds) {
    if (seconds <= 0)
        return NULL;
    struct timeval tv;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    /* Connections share a handful of durations: libevent keeps each in an
     * O(1) queue instead of the timer heap. */
    const struct timeval *ct = event_base_init_common_timeout(s->base, &tv);
    return ct ? ct : NULL;
}

static void set_limits(gust_listener_t *l, size_t max_body, size_t max_header,
                       double idle, double header, double body) {
    gust_server_t *s = l->server;
    l->limits.max_body_size = max_body;
    l->limits.max_header_size = max_header;
    l->idle_tv = common_timeout(s, idle);
    l->header_tv = common_timeout(s, header);
    l->body_tv = common_timeout(s, body);
}

static double opt_number(lua_State *L, int idx, const char *name, double dflt) {
    lua_getfield(L, idx, name);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

void gust_listener_apply_settings(gust_listener_t *l, lua_State *L, int idx) {
    const gust_config_t *cfg = &l->server->cfg;
    if (!lua_istable(L, idx)) {
        set_limits(l, cfg->max_body_size, cfg->max_header_size,
                   cfg->idle_connection_timeout, cfg->header_timeout, cfg->body_timeout);
        return;
    }
    set_limits(l, (size_t)opt_number(L, idx, "max_body_size", (double)cfg->max_body_size),
               (size_t)opt_number(L, idx, "max_header_size", (double)cfg->max_header_size),
               opt_number(L, idx, "idle_connection_timeout", cfg->idle_connection_timeout),
               opt_number(L, idx, "header_timeout", cfg->header_timeout),
               opt_number(L, idx, "body_timeout", cfg->body_timeout));
}

static int bind_unix(const char *path, char *err, size_t errlen) {
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "unix socket path too long: %s", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path); /* a stale socket from an earlier run */
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int bind_tcp(const char *addr, int port, int *bound_port, char *err, size_t errlen) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(addr, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", addr ? addr : "*", gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        snprintf(err, errlen, "bind %s:%d: %s", addr ? addr : "*", port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* Binds addr:port ("unix:/path" for a Unix socket) without listening yet;
 * the master does this once and its workers listen on the inherited fd. */
int gust_bind(const char *addr, int port, int *bound_port, char *err, size_t errlen) {
    if (addr && strncmp(addr, "unix:", 5) == 0) {
        *bound_port = -1;
        return bind_unix(addr + 5, err, errlen);
    }
    return bind_tcp(addr, port, bound_port, err, errlen);
}

gust_listener_t *gust_listener_adopt(gust_server_t *s, int fd, int handler_ref, char *err,
                                     size_t errlen) {
    gust_listener_t *l = gust_calloc(1, sizeof *l);
    l->server = s;
    l->handler_ref = handler_ref;
    l->refs = 1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    l->port = -1;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            l->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    evutil_make_socket_nonblocking(fd);
    l->lev = evconnlistener_new(s->base, on_accept, l,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024, fd);
    if (!l->lev) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        gust_free(l);
        return NULL;
    }
    evconnlistener_set_error_cb(l->lev, on_accept_error);
    set_limits(l, s->cfg.max_body_size, s->cfg.max_header_size,
               s->cfg.idle_connection_timeout, s->cfg.header_timeout, s->cfg.body_timeout);
    l->next = s->listeners;
    if (s->listeners)
        s->listeners->prev = l;
    s->listeners = l;
    return l;
}

gust_listener_t *gust_listener_new(gust_server_t *s, const char *addr, int port,
                                   int handler_ref, char *err, size_t errlen) {
    int bound;
    int fd = gust_bind(addr, port, &bound, err, errlen);
    if (fd < 0)
        return NULL;
    gust_listener_t *l = gust_listener_adopt(s, fd, handler_ref, err, errlen);
    if (!l) {
        close(fd);
        return NULL;
    }
    if (addr && strncmp(addr, "unix:", 5) == 0)
        l->unix_path = gust_strdup(addr + 5); /* ours to unlink on close */
    return l;
}

/* Stops listening; the struct lives on until its connections are gone. */
void gust_listener_free(gust_listener_t *l) {
    if (!l || !l->lev)
        return;
    gust_server_t *s = l->server;
    evconnlistener_free(l->lev);
    l->lev = NULL;
    if (l->handle)
        l->handle->l = NULL;
    if (l->unix_path)
        unlink(l->unix_path);
    if (l->prev)
        l->prev->next = l->next;
    else
        s->listeners = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    gust_listener_decref(l);
}

void gust_listener_decref(gust_listener_t *l) {
    if (--l->refs > 0)
        return;
    gust_server_t *s = l->server;
    if (s->L && l->handler_ref != LUA_NOREF)
        luaL_unref(s->L, LUA_REGISTRYINDEX, l->handler_ref);
    gust_free(l->unix_path);
    gust_free(l);
}
