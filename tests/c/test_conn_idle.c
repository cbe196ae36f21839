/*
 * test_conn_idle.c -- what an idle keep-alive connection holds (conn.h):
 * nothing but its struct. The parser and the request come from the core's
 * free list while a request arrives or is handled and go back after it;
 * the input and output buffers and the write event exist only while bytes
 * wait in them. Driven over loopback by non-blocking client sockets in
 * this process, the loop run a step at a time: a request whole or in
 * pieces, pipelined, answered later, a response too big for the socket,
 * empty lines, many connections at once; then the heap cost of an idle
 * connection, which must stay under the 640 bytes of issue 9.
 */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "conn.h"
#include "core.h"
#include "listener.h"
#include "request.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifdef UNDER_ASAN
size_t __sanitizer_get_current_allocated_bytes(void); /* the heap in use, as ASan counts it */
#endif

#define BIG_BODY (8 * 1024 * 1024) /* more than loopback's socket buffers take */
#define MANY 200
#define HEAP_CONNS 1000
#define IDLE_BYTES_MAX 640

static const char *const text_plain[] = {"Content-Type", "text/plain", NULL};
static gust_core_t *core;
static int port;

static void hello(gust_request_t *req, void *arg) {
    gust_request_respond(req, 200, text_plain, "hi", 2);
}

/* Answered from a timer: the request stays in flight across loop turns. */
static void later_fire(evutil_socket_t fd, short what, void *arg) {
    gust_request_respond(arg, 200, text_plain, "later", 5);
}

static void later(gust_request_t *req, void *arg) {
    static const struct timeval tv = {0, 20000};
    event_base_once(core->base, -1, EV_TIMEOUT, later_fire, req, &tv);
}

static void not_found(gust_request_t *r, void *arg) {
    gust_request_respond(r, 404, text_plain, "none", 4);
}

static const gust_request_handler_t fallback = {not_found, NULL, NULL, NULL};

static void big(gust_request_t *req, void *arg) {
    char *body = malloc(BIG_BODY);
    memset(body, 'x', BIG_BODY);
    gust_request_respond(req, 200, text_plain, body, BIG_BODY);
    free(body);
}

/* One turn of the loop, without blocking. */
static void turn(void) {
    event_base_loop(core->base, EVLOOP_NONBLOCK);
    usleep(200);
}

static void send_all(int fd, const char *s) {
    size_t len = strlen(s);
    CHECK(send(fd, s, len, MSG_NOSIGNAL) == (ssize_t)len);
}

/* A connection that sends `first` ("": nothing) once connected. The
 * listener defers accept until a client speaks (a silent one is handed
 * over after GUST_DEFER_ACCEPT_S). */
static int client(const char *first) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0); /* the backlog takes it */
    if (*first)
        send_all(fd, first);
    unsigned n = core->nconns;
    for (int i = 0; i < 20000 && core->nconns == n; i++)
        turn(); /* accepted before the next: the backlog never fills */
    return fd;
}

/* Reads `n` whole responses (Content-Length bodies) while the loop turns;
 * returns the body bytes of the last, or -1 if they do not come. */
static long responses(int fd, int n) {
    static char buf[BIG_BODY + 4096];
    size_t have = 0;
    long body = -1;
    for (int turns = 0; turns < 20000 && n > 0; turns++) {
        turn();
        ssize_t got = recv(fd, buf + have, sizeof buf - 1 - have, MSG_DONTWAIT);
        if (got == 0)
            return -1;
        if (got > 0)
            have += (size_t)got;
        buf[have] = 0;
        char *end;
        while (n > 0 && (end = strstr(buf, "\r\n\r\n"))) {
            char *cl = strstr(buf, "Content-Length: ");
            if (!cl || cl > end)
                return -1;
            size_t total = (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10);
            if (have < total)
                break;
            body = (long)(total - (size_t)(end + 4 - buf));
            memmove(buf, buf + total, have - total + 1);
            have -= total;
            n--;
        }
    }
    return n == 0 ? body : -1;
}

/* Turns the loop until the server has `n` connections open. */
static void until_conns(unsigned n) {
    for (int i = 0; i < 20000 && core->nconns != n; i++)
        turn();
    CHECK_INT(core->nconns, n);
}

/* Connections holding request state, a buffer or a write event. */
static int busy_conns(void) {
    int n = 0;
    for (gust_conn_t *c = core->conns; c; c = c->next)
        n += c->rq || c->in || c->out || c->wev;
    return n;
}

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++)
        close(fds[i]);
    until_conns(0);
}

static void test_accepted(void) {
    int fd = client("");
    until_conns(1);
    CHECK_INT(busy_conns(), 0);
    close_all(&fd, 1);
}

static void test_keep_alive(void) {
    static const char get[] = "GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = client(get);
    for (int i = 0; i < 3; i++) {
        if (i > 0)
            send_all(fd, get);
        CHECK_INT(responses(fd, 1), 2);
        CHECK_INT(busy_conns(), 0);
    }
    CHECK(core->nfree_reqs >= 1); /* given back, for the next request */
    close_all(&fd, 1);
}

static void test_in_pieces(void) {
    int fd = client("GET /c/hello HTTP/1.1\r\nHo");
    for (int i = 0; i < 50; i++)
        turn();
    until_conns(1);
    CHECK(core->conns->rq != NULL); /* a request is arriving */
    CHECK_INT(core->conns->state, CONN_READING);
    send_all(fd, "st: x\r\n\r\n");
    CHECK_INT(responses(fd, 1), 2);
    CHECK_INT(busy_conns(), 0);
    close_all(&fd, 1);
}

static void test_pipelined(void) {
    int fd = client("GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /c/later HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_INT(responses(fd, 3), 2);
    CHECK_INT(busy_conns(), 0);
    close_all(&fd, 1);
}

static void test_later(void) {
    int fd = client("GET /c/later HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 20 && !(core->conns && core->conns->state == CONN_HANDLING); i++)
        turn();
    CHECK(core->conns && core->conns->rq != NULL); /* in flight */
    CHECK_INT(responses(fd, 1), 5);
    CHECK_INT(busy_conns(), 0);
    close_all(&fd, 1);
}

static void test_big_response(void) {
    int fd = client("GET /c/big HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < 20000 && !(core->conns && core->conns->writing); i++)
        turn();
    gust_conn_t *c = core->conns;
    CHECK(c && c->writing && c->out != NULL && c->wev != NULL); /* output waits */
    CHECK(c && c->rq == NULL); /* the request is over: only the output is left */
    CHECK_INT(responses(fd, 1), BIG_BODY);
    for (int i = 0; i < 10; i++)
        turn();
    CHECK_INT(busy_conns(), 0);
    send_all(fd, "GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n"); /* still keep-alive */
    CHECK_INT(responses(fd, 1), 2);
    CHECK_INT(busy_conns(), 0);
    close_all(&fd, 1);
}

static void test_empty_lines(void) {
    int fd = client("GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_INT(responses(fd, 1), 2);
    send_all(fd, "\r\n\r\n"); /* what some clients send after a body */
    for (int i = 0; i < 50; i++)
        turn();
    CHECK_INT(core->nconns, 1);
    CHECK_INT(busy_conns(), 0);
    close_all(&fd, 1);
}

/* Many requests in flight at once: each has its own state; afterwards the
 * free list keeps at most GUST_CONN_REQ_FREE_MAX of them. */
static void test_many(void) {
    int fds[MANY];
    for (int i = 0; i < MANY; i++)
        fds[i] = client("GET /c/later HTTP/1.1\r\n"); /* the rest once all are in */
    until_conns(MANY);
    for (int i = 0; i < MANY; i++)
        send_all(fds[i], "Host: x\r\n\r\n");
    int handling = 0;
    for (int t = 0; t < 20000 && handling < MANY; t++) {
        turn();
        handling = 0;
        for (gust_conn_t *c = core->conns; c; c = c->next)
            handling += c->state == CONN_HANDLING;
    }
    CHECK_INT(busy_conns(), MANY);
    for (int i = 0; i < MANY; i++)
        CHECK_INT(responses(fds[i], 1), 5);
    CHECK_INT(busy_conns(), 0);
    CHECK_INT(core->nfree_reqs, GUST_CONN_REQ_FREE_MAX);
    close_all(fds, MANY);
}

static size_t heap_in_use(void) {
#ifdef UNDER_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

/* The heap an idle keep-alive connection costs, after one request each:
 * the connection, libevent's record of its descriptor, nothing else. */
static void test_heap_per_idle_conn(void) {
    static int fds[HEAP_CONNS];
    /* Warm up: the loop's and libevent's tables for this many descriptors
     * exist before counting. */
    for (int i = 0; i < HEAP_CONNS; i++)
        fds[i] = client("GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n");
    for (int i = 0; i < HEAP_CONNS; i++)
        CHECK_INT(responses(fds[i], 1), 2);
    close_all(fds, HEAP_CONNS);
    size_t before = heap_in_use();
    for (int i = 0; i < HEAP_CONNS; i++) {
        fds[i] = client("GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK_INT(responses(fds[i], 1), 2);
    }
    until_conns(HEAP_CONNS);
    CHECK_INT(busy_conns(), 0);
    size_t per = (heap_in_use() - before) / HEAP_CONNS;
    printf("heap per idle connection: %zu bytes\n", per);
    CHECK(per <= IDLE_BYTES_MAX);
    close_all(fds, HEAP_CONNS);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    core = gust_core_new(NULL, NULL);
    CHECK(core != NULL);
    char err[GUST_ERR_LEN];
    gust_listener_t *l = gust_listener_new(core, "127.0.0.1", 0, err, sizeof err);
    CHECK(l != NULL);
    port = l->port;
    gust_listener_serve_http(l, &fallback, NULL);
    CHECK(gust_core_handle(core, "/c/hello", hello, NULL) == 0);
    CHECK(gust_core_handle(core, "/c/later", later, NULL) == 0);
    CHECK(gust_core_handle(core, "/c/big", big, NULL) == 0);
    RUN(test_accepted);
    RUN(test_keep_alive);
    RUN(test_in_pieces);
    RUN(test_pipelined);
    RUN(test_later);
    RUN(test_big_response);
    RUN(test_empty_lines);
    RUN(test_many);
    RUN(test_heap_per_idle_conn);
    gust_core_free(core);
    return check_report("conn_idle");
}
