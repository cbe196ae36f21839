/*
 * listener.h -- gust_listener_t: a listening socket (TCP over IPv4/IPv6, or
 * a Unix socket) and what its accepted connections go to: an HTTP request
 * handler (the core runs the connection, request.h) or an accept callback
 * that takes the socket (raw TCP servers), with the limits and timeouts
 * that apply to its HTTP connections.
 *
 * A listener is freed when it is closed and its last connection is gone,
 * so connections can always reach their limits and handler; `on_release`
 * then lets the owner drop what it attached.
 */
#ifndef GUST_LISTENER_H
#define GUST_LISTENER_H

#include <sys/socket.h>
#include <sys/time.h>

#include <event2/event_struct.h>

#include "core.h"
#include "http_parser.h"
#include "request.h"

/* Takes ownership of the accepted, non-blocking `fd`. */
typedef void (*gust_accept_fn)(gust_listener_t *l, int fd, const struct sockaddr *sa, int salen,
                               void *arg);

struct gust_listener {
    gust_core_t *core;
    int fd;                 /* the listening socket; -1 once closed */
    struct event accept_ev; /* readable: a connection waits */
    gust_accept_fn on_accept;
    void *accept_arg;
    const gust_request_handler_t *handler; /* HTTP listeners */
    void *handler_arg;
    void (*on_release)(void *arg); /* the struct is going: drop accept/handler args */
    void *release_arg;
    int refs; /* 1 while listening + 1 per open connection */
    gust_http_limits_t limits;
    const struct timeval *idle_tv, *header_tv, *body_tv; /* NULL: no timeout */
    double idle_s, header_s, body_s;                     /* the same in seconds */
    char *unix_path;
    int port;              /* -1 for Unix sockets */
    int deferred;          /* accepted once data came, or after GUST_DEFER_ACCEPT_S */
    struct event pause_ev; /* accepting paused: out of descriptors */
    unsigned pauses;
    gust_listener_t *prev, *next;
};

/* How long the kernel holds back a connection that sends nothing
 * (TCP_DEFER_ACCEPT on HTTP listeners). */
#define GUST_DEFER_ACCEPT_S 1

/* Binds addr:port ("unix:/path" for a Unix socket) and listens; the
 * listener serves nothing until gust_listener_serve_http() or
 * gust_listener_set_accept(). NULL with the reason in err. */
gust_listener_t *gust_listener_new(gust_core_t *c, const char *addr, int port, char *err,
                                   size_t errlen);
/* The same on a socket bound elsewhere (a master's); takes ownership of fd
 * even on failure. */
gust_listener_t *gust_listener_adopt(gust_core_t *c, int fd, char *err, size_t errlen);

/* Accepted connections become HTTP connections whose requests go to `h`. */
void gust_listener_serve_http(gust_listener_t *l, const gust_request_handler_t *h, void *arg);
/* Accepted sockets go to `fn` instead. */
void gust_listener_set_accept(gust_listener_t *l, gust_accept_fn fn, void *arg);

/* Seconds <= 0 mean no timeout. */
void gust_listener_set_limits(gust_listener_t *l, size_t max_body, size_t max_header, double idle,
                              double header, double body);

/* Stops listening; the struct lives on until its connections are gone. */
void gust_listener_close(gust_listener_t *l);
void gust_listener_incref(gust_listener_t *l);
void gust_listener_decref(gust_listener_t *l);

#endif
