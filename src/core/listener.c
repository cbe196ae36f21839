/*
 * listener.c -- gust_listener_t (listener.h): binding, listening, and
 * handing accepted sockets to the HTTP connection code or an accept
 * callback.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "conn.h"
#include "listener.h"
#include "mem.h"

/* After EMFILE/ENFILE, accepting pauses this long (as nginx): the backlog
 * waits for descriptors instead of the loop spinning on a failing accept. */
#define ACCEPT_PAUSE_MS 500

/* Out of descriptors (or memory), a level-triggered listener would fail
 * the same accept forever: pause it, one log line per pause. */
static void accept_failed(gust_listener_t *l, int e) {
    if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
        gust_log(&l->core->log, GUST_LOG_ERROR, "accept: %s", strerror(e));
        return;
    }
    l->pauses++;
    gust_log(&l->core->log, GUST_LOG_ERROR,
             "accept: %s; accepting paused for %d ms (%u pause%s so far)", strerror(e),
             ACCEPT_PAUSE_MS, l->pauses, l->pauses == 1 ? "" : "s");
    event_del(&l->accept_ev);
    static const struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    evtimer_add(&l->pause_ev, &tv);
}

/* One connection per readiness, as nginx without multi_accept: the
 * socket stays readable while more wait, and accepting until EAGAIN
 * would cost a failing accept4 on every wake-up. */
static void on_acceptable(evutil_socket_t lfd, short what, void *arg) {
    gust_listener_t *l = arg;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            accept_failed(l, errno);
        return;
    }
    if (l->on_accept)
        l->on_accept(l, fd, (struct sockaddr *)&ss, (int)sl, l->accept_arg);
    else
        close(fd);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg) {
    gust_listener_t *l = arg;
    if (l->fd >= 0)
        event_add(&l->accept_ev, NULL);
}

static const struct timeval *common_timeout(gust_core_t *c, double seconds) {
    if (seconds <= 0)
        return NULL;
    struct timeval tv = gust_timeval(seconds);
    /* Connections share a handful of durations: libevent keeps each in an
     * O(1) queue instead of the timer heap. */
    return event_base_init_common_timeout(c->base, &tv);
}

void gust_listener_set_limits(gust_listener_t *l, size_t max_body, size_t max_header, double idle,
                              double header, double body) {
    gust_core_t *c = l->core;
    l->limits.max_body_size = max_body;
    l->limits.max_header_size = max_header;
    l->idle_tv = common_timeout(c, idle);
    l->header_tv = common_timeout(c, header);
    l->body_tv = common_timeout(c, body);
    l->idle_s = idle;
    l->header_s = header;
    l->body_s = body;
}

static void accept_http(gust_listener_t *l, int fd, const struct sockaddr *sa, int salen,
                        void *arg) {
    gust_conn_accept(l, fd, sa, salen);
}

void gust_listener_serve_http(gust_listener_t *l, const gust_request_handler_t *h, void *arg) {
    /* An HTTP client speaks first: the kernel hands a connection over once
     * its first bytes are in (as Apache's default accept filter does), which
     * spares the worker a wake-up per connection; one that stays silent is
     * handed over after a second all the same. */
    if (l->port >= 0) {
        int secs = GUST_DEFER_ACCEPT_S;
        l->deferred = setsockopt(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof secs) == 0;
    }
    l->handler = h;
    l->handler_arg = arg;
    l->on_accept = accept_http;
}

void gust_listener_set_accept(gust_listener_t *l, gust_accept_fn fn, void *arg) {
    l->on_accept = fn;
    l->accept_arg = arg;
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

gust_listener_t *gust_listener_adopt(gust_core_t *c, int fd, char *err, size_t errlen) {
    gust_listener_t *l = gust_calloc(1, sizeof *l);
    l->core = c;
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
    evutil_make_socket_closeonexec(fd);
    /* Listening already (a master's socket) or not: this sets the backlog. */
    if (listen(fd, 1024) < 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        close(fd);
        gust_free(l);
        return NULL;
    }
    l->fd = fd;
    event_assign(&l->accept_ev, c->base, fd, EV_READ | EV_PERSIST, on_acceptable, l);
    event_add(&l->accept_ev, NULL);
    evtimer_assign(&l->pause_ev, c->base, on_accept_resume, l);
    gust_listener_set_limits(l, c->cfg.max_body_size, c->cfg.max_header_size,
                             c->cfg.idle_connection_timeout, c->cfg.header_timeout,
                             c->cfg.body_timeout);
    l->next = c->listeners;
    if (c->listeners)
        c->listeners->prev = l;
    c->listeners = l;
    return l;
}

gust_listener_t *gust_listener_new(gust_core_t *c, const char *addr, int port, char *err,
                                   size_t errlen) {
    int bound;
    int fd = gust_bind(addr, port, &bound, err, errlen);
    if (fd < 0)
        return NULL;
    gust_listener_t *l = gust_listener_adopt(c, fd, err, errlen);
    if (l && addr && strncmp(addr, "unix:", 5) == 0)
        l->unix_path = gust_strdup(addr + 5); /* ours to unlink on close */
    return l;
}

void gust_listener_close(gust_listener_t *l) {
    if (!l || l->fd < 0)
        return;
    gust_core_t *c = l->core;
    event_del(&l->accept_ev);
    close(l->fd);
    l->fd = -1;
    evtimer_del(&l->pause_ev);
    if (l->unix_path)
        unlink(l->unix_path);
    if (l->prev)
        l->prev->next = l->next;
    else
        c->listeners = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    gust_listener_decref(l);
}

void gust_listener_incref(gust_listener_t *l) { l->refs++; }

void gust_listener_decref(gust_listener_t *l) {
    if (--l->refs > 0)
        return;
    if (l->on_release)
        l->on_release(l->release_arg);
    gust_free(l->unix_path);
    gust_free(l);
}
