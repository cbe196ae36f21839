/*
 * test_core_serve.c -- the core stands alone: this program links
 * libgust_core.a and no LuaJIT, serves HTTP/1.1 on a loopback port with C
 * handlers (gust_handle's prefixes and a listener's own request handler),
 * and is driven by a real client, curl: keep-alive across requests, a
 * streamed (chunked) response, a response given later from a timer, a
 * request body echoed back, and a 404 from the listener's handler. An HTTP
 * listener defers accept until the client's first bytes.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "core.h"
#include "listener.h"
#include "request.h"

extern char **environ;

static const char *const text_plain[] = {"Content-Type", "text/plain", NULL};

static void hello(gust_request_t *req, void *arg) {
    static const char body[] = "Hello from C";
    CHECK(strcmp(gust_request_method(req), "GET") == 0);
    gust_request_respond(req, 200, text_plain, body, sizeof body - 1);
}

static void stream(gust_request_t *req, void *arg) {
    CHECK(gust_request_start(req, 200, text_plain) == 0);
    for (int i = 0; i < 3; i++) {
        char piece[16];
        int n = snprintf(piece, sizeof piece, "part%d;", i);
        CHECK(gust_request_write(req, piece, (size_t)n) == 0);
    }
    CHECK(gust_request_end(req) == 0);
}

static void echo(gust_request_t *req, void *arg) {
    size_t blen, qlen, hlen;
    const char *body = gust_request_body(req, &blen);
    const char *query = gust_request_query(req, &qlen);
    const char *h = gust_request_header(req, "X-Test", &hlen);
    char out[256];
    int n = snprintf(out, sizeof out, "%s %.*s q=%.*s h=%.*s", gust_request_method(req), (int)blen,
                     body, (int)qlen, query, h ? (int)hlen : 4, h ? h : "none");
    gust_request_respond(req, 201, text_plain, out, (size_t)n);
}

/* Answered from a timer: the request outlives its handler's call. */
static void later_fire(evutil_socket_t fd, short what, void *arg) {
    gust_request_t *req = arg;
    gust_request_respond(req, 200, text_plain, "later", 5);
}

static void later(gust_request_t *req, void *arg) {
    gust_core_t *core = arg;
    static const struct timeval tv = {0, 50000};
    event_base_once(core->base, -1, EV_TIMEOUT, later_fire, req, &tv);
}

/* The listener's own handler: whatever no prefix took. */
static void not_found(gust_request_t *r, void *arg) {
    int *count = arg;
    (*count)++;
    gust_request_respond(r, 404, text_plain, "none", 4);
}

static const gust_request_handler_t fallback = {not_found, NULL, NULL, NULL};

/* Runs argv with its stdout into `out`, while the loop serves. */
typedef struct child {
    pid_t pid;
    int fd;
    char out[4096];
    size_t len;
    gust_core_t *core;
    struct event *ev;
} child_t;

static void on_child_output(evutil_socket_t fd, short what, void *arg) {
    child_t *ch = arg;
    ssize_t n = read(fd, ch->out + ch->len, sizeof ch->out - 1 - ch->len);
    if (n > 0) {
        ch->len += (size_t)n;
        return;
    }
    event_del(ch->ev);
    event_base_loopexit(ch->core->base, NULL);
}

static void run_client(gust_core_t *core, char *const argv[], child_t *ch) {
    int p[2];
    CHECK(pipe(p) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    memset(ch, 0, sizeof *ch);
    ch->core = core;
    CHECK(posix_spawnp(&ch->pid, argv[0], &fa, NULL, argv, environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    ch->fd = p[0];
    ch->ev = event_new(core->base, p[0], EV_READ | EV_PERSIST, on_child_output, ch);
    event_add(ch->ev, NULL);
    struct timeval limit = {20, 0}; /* a hung client fails the test, not CI */
    event_base_loopexit(core->base, &limit);
    event_base_dispatch(core->base);
    event_free(ch->ev);
    close(ch->fd);
    int status;
    CHECK(waitpid(ch->pid, &status, 0) == ch->pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ch->out[ch->len] = 0;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    gust_core_t *core = gust_core_new(NULL, NULL);
    CHECK(core != NULL);
    char err[GUST_ERR_LEN];
    gust_listener_t *l = gust_listener_new(core, "127.0.0.1", 0, err, sizeof err);
    CHECK(l != NULL);
    int fallbacks = 0;
    gust_listener_serve_http(l, &fallback, &fallbacks);
    /* An HTTP listener is handed a connection once its client has spoken. */
    int defer = 0;
    socklen_t dlen = sizeof defer;
    CHECK(getsockopt(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, &dlen) == 0);
    CHECK(defer >= GUST_DEFER_ACCEPT_S && l->deferred);
    CHECK(gust_core_handle(core, "/c/hello", hello, NULL) == 0);
    CHECK(gust_core_handle(core, "/c/stream", stream, NULL) == 0);
    CHECK(gust_core_handle(core, "/c/echo", echo, NULL) == 0);
    CHECK(gust_core_handle(core, "/c/later", later, core) == 0);
    CHECK(gust_core_handle(core, "relative", hello, NULL) == -1);

    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", l->port);
    char u1[96], u2[96], u3[96], u4[96], u5[96];
    snprintf(u1, sizeof u1, "%s/c/hello", base);
    snprintf(u2, sizeof u2, "%s/c/stream", base);
    snprintf(u3, sizeof u3, "%s/c/later", base);
    snprintf(u4, sizeof u4, "%s/elsewhere", base);
    snprintf(u5, sizeof u5, "%s/c/hello/deeper", base);

    /* One curl, five transfers over one keep-alive connection: num_connects
     * is 1 for the first and 0 for every reuse. */
    child_t ch;
    char *const get[] = {"curl", "-sS", "--http1.1", "-w", "|%{http_code}|%{num_connects}\n",
                         u1,     u2,    u3,          u4,   u5,
                         NULL};
    run_client(core, get, &ch);
    CHECK_STR(ch.out, "Hello from C|200|1\n"
                      "part0;part1;part2;|200|0\n"
                      "later|200|0\n"
                      "none|404|0\n"
                      "Hello from C|200|0\n");
    CHECK(fallbacks == 1);

    /* The streamed response is chunked. */
    char *const head[] = {"curl", "-sS", "--http1.1", "-D", "-", "-o", "/dev/null", u2, NULL};
    run_client(core, head, &ch);
    CHECK(strstr(ch.out, "Transfer-Encoding: chunked") != NULL);
    CHECK(strstr(ch.out, "Server: gust/") != NULL);

    /* A request body, a query and a header reach the handler. */
    char u6[96];
    snprintf(u6, sizeof u6, "%s/c/echo?x=1", base);
    char *const post[] = {"curl",    "-sS", "--http1.1",     "-H", "X-Test: yes", "--data-binary",
                          "payload", "-w",  "|%{http_code}", u6,   NULL};
    run_client(core, post, &ch);
    CHECK_STR(ch.out, "POST payload q=x=1 h=yes|201");

    gust_core_free(core);
    return check_report("core_serve");
}
