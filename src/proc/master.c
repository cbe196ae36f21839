/*
 * master.c -- the gust process model (DESIGN.md §2): a master that binds
 * the listening socket once, forks the workers that serve it, restarts a
 * worker that dies, reloads on SIGHUP (or a file change with --reload) and
 * stops gracefully on SIGTERM/SIGINT.
 *
 * The master never runs application code. Each worker makes its own event
 * loop and Lua state after the fork, loads the app and only then reports
 * ready through a pipe; a reload swaps generations only once every new
 * worker is ready, and old workers then drain (gust_stop) while the new
 * ones accept from the same socket, so no accepted connection is reset.
 * A worker whose app does not load says why on the same pipe, so that the
 * master reports it once: as the start-up error, or "reload failed: REASON".
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "master.h"
#include "core/core.h"
#include "core/log.h"
#include "core/shdict.h"
#include "lua/lua_pubsub.h"
#include "lua/server.h"
#include "redis_relay.h"

enum { W_STARTING, W_READY, W_DRAINING };

/* Seconds past --drain-timeout a draining worker gets before SIGKILL: room
 * for the WebSockets' close handshake that the drain timeout starts. */
#define DRAIN_GRACE (GUST_CLOSE_TIMEOUT + 1.0) /* <= 5 s: DESIGN §2 */
/* How often the master looks at its workers' watchdog slots. */
#define WATCH_MS 100

/* What a worker that cannot load the app writes on its ready pipe: 'E' and
 * the error, in one write no longer than PIPE_BUF, so it arrives whole. */
#define REPORT_MAX 4000

typedef struct worker {
    pid_t pid;
    int gen, state, ready_fd, slot;
    int bus_fd; /* the master's end of the worker's pubsub socket */
    struct event *ready_ev, *bus_ev;
    double deadline;   /* draining: SIGKILL after this (monotonic seconds) */
    uint64_t reported; /* the hold (busy_since_us) the master warned about */
    int killed;        /* the master killed it and said why */
    char *report;      /* why it did not load the app (malloc'd), or NULL */
} worker_t;

typedef struct master {
    const gust_master_opts_t *o;
    struct event_base *base;
    int listen_fd, port;
    worker_t *w;
    int nw, capw;
    int gen;            /* the generation serving (or starting, at boot) */
    int reloading;      /* the generation being started by a reload, or 0 */
    int reload_pending; /* a reload asked for while one was under way */
    int stopping, started, failed, forced, serves_app;
    struct event *sig[5], *respawn_ev, *reload_ev, *watch_ev, *load_ev, *dog_ev;
    int inotify_fd;
    gust_metrics_t *metrics; /* shared by every worker, across reloads */
    gust_relay_t *relay;     /* --redis: to the other servers, or NULL */
} master_t;

static master_t *the_master; /* for the forked child to release */

static void spawn(master_t *m, int gen);

static int count(master_t *m, int gen, int state) {
    int n = 0;
    for (int i = 0; i < m->nw; i++)
        if (m->w[i].gen == gen && (state < 0 || m->w[i].state == state))
            n++;
    return n;
}

static void drop(master_t *m, int i) {
    free(m->w[i].report);
    if (m->w[i].bus_ev)
        event_free(m->w[i].bus_ev);
    if (m->w[i].bus_fd >= 0)
        close(m->w[i].bus_fd);
    if (m->w[i].ready_ev)
        event_free(m->w[i].ready_ev);
    if (m->w[i].ready_fd >= 0)
        close(m->w[i].ready_fd);
    m->w[i] = m->w[--m->nw];
}

static void signal_gen(master_t *m, int gen, int sig) {
    for (int i = 0; i < m->nw; i++)
        if (gen < 0 || m->w[i].gen == gen)
            kill(m->w[i].pid, sig);
}

static const struct timeval now_tv = {0, 0};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Asks a worker to drain, and bounds how long it may take. */
static void drain_worker(master_t *m, worker_t *w) {
    w->state = W_DRAINING;
    w->deadline = now() + m->o->cfg.drain_timeout + DRAIN_GRACE;
    kill(w->pid, SIGTERM);
}

static void reload(master_t *m);

/* A reload attempt ended (in success or not): one asked for meanwhile
 * starts now, with the files as they are now. */
static void reload_ended(master_t *m) {
    m->reloading = 0;
    evtimer_del(m->load_ev);
    if (m->reload_pending) {
        m->reload_pending = 0;
        reload(m);
    }
}

/* Ends a reload attempt that failed: its loaders go, the running workers
 * carry on. One line says why, at error level: the load error the loader
 * reported, or how it ended. */
static void reload_failed(master_t *m, const char *why) {
    fprintf(stderr, "gust: [error] reload failed: %s\n", why);
    for (int j = 0; j < m->nw; j++) {
        worker_t *w = &m->w[j];
        if (w->gen == m->reloading && !w->killed) {
            w->killed = 1;
            kill(w->pid, SIGKILL);
        }
    }
    reload_ended(m);
}

static void print_start_line(master_t *m) {
    const gust_config_t *c = &m->o->cfg;
    int n = m->o->workers;
    const char *s = n == 1 ? "" : "s";
    if (!m->serves_app)
        printf("gust %s running %s (%d worker%s)\n", GUST_VERSION, m->o->app, n, s);
    else if (strncmp(c->bind, "unix:", 5) == 0)
        printf("gust %s listening on %s (%d worker%s)\n", GUST_VERSION, c->bind, n, s);
    else if (strchr(c->bind, ':'))
        printf("gust %s listening on %s://[%s]:%d (%d worker%s)\n", GUST_VERSION,
               c->tls_cert ? "https" : "http", c->bind, m->port, n, s);
    else
        printf("gust %s listening on %s://%s:%d (%d worker%s)\n", GUST_VERSION,
               c->tls_cert ? "https" : "http", c->bind, m->port, n, s);
    fflush(stdout);
}

/* Reads what a worker said on its ready pipe and closes it: 'A' (serving
 * the app) or 'S' (the script runs its own listeners), returned; or 'E' and
 * why the app did not load, kept in w->report; or nothing (0). */
static char read_ready(worker_t *w) {
    char buf[REPORT_MAX + 1];
    ssize_t n = read(w->ready_fd, buf, sizeof buf - 1);
    if (w->ready_ev)
        event_free(w->ready_ev);
    w->ready_ev = NULL;
    close(w->ready_fd);
    w->ready_fd = -1;
    if (n > 1 && buf[0] == 'E' && !w->report) {
        while (n > 1 && buf[n - 1] == '\n')
            n--;
        buf[n] = '\0';
        w->report = strdup(buf + 1);
        return 0;
    }
    return n == 1 && (buf[0] == 'A' || buf[0] == 'S') ? buf[0] : 0;
}

/* A worker reported ready, or why it cannot be, or closed its pipe. */
static void on_ready(evutil_socket_t fd, short what, void *arg) {
    master_t *m = arg;
    for (int i = 0; i < m->nw; i++) {
        worker_t *w = &m->w[i];
        if (w->ready_fd != fd)
            continue;
        char c = read_ready(w);
        if (!c || w->killed)
            return; /* did not load, or killed meanwhile: on_child says so */
        w->state = W_READY;
        m->serves_app = c == 'A';
        break;
    }
    int target = m->reloading ? m->reloading : m->gen;
    if (count(m, target, W_READY) < m->o->workers)
        return;
    if (!m->started) {
        m->started = 1;
        print_start_line(m);
    } else if (m->reloading) {
        /* Every new worker is up: the old ones finish and go. */
        for (int i = 0; i < m->nw; i++)
            if (m->w[i].gen == m->gen && m->w[i].state != W_DRAINING)
                drain_worker(m, &m->w[i]);
        m->gen = m->reloading;
        fprintf(stderr, "gust: reloaded %s (%d worker%s)\n", m->o->app, m->o->workers,
                m->o->workers == 1 ? "" : "s");
        reload_ended(m);
    }
}

static void describe(int status, char *buf, size_t len) {
    if (WIFEXITED(status))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "status %d", status);
}

static void on_child(evutil_socket_t sig, short what, void *arg) {
    master_t *m = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i;
        for (i = 0; i < m->nw && m->w[i].pid != pid; i++)
            ;
        if (i == m->nw)
            continue;
        if (m->w[i].ready_fd >= 0) /* what it wrote before it went */
            read_ready(&m->w[i]);
        worker_t w = m->w[i];
        m->w[i].report = NULL; /* w's now */
        drop(m, i);
        gust_metrics_slot_t *slot = &m->metrics->slot[w.slot];
        __atomic_store_n(&slot->busy_since_us, 0, __ATOMIC_RELAXED);
        /* What it held went with it (a crash decrements nothing). */
        __atomic_store_n(&slot->connections_open, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&slot->websockets_open, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&slot->pid, 0, __ATOMIC_RELAXED); /* its gauges */
        char why[96];
        describe(status, why, sizeof why);
        if (w.killed) {
            /* The master ended it and already said why. */
            if (!m->stopping && w.state == W_READY)
                evtimer_add(m->respawn_ev, &now_tv);
        } else if (m->stopping || w.state == W_DRAINING) {
            /* on its way out: nothing to say */
        } else if (w.state == W_STARTING && !m->started) {
            /* The app does not load: nothing to serve. The load error is
             * the one line to say; without one, how the worker ended. */
            if (w.report)
                fprintf(stderr, "gust: %s\n", w.report);
            if (!w.report || !WIFEXITED(status) || WEXITSTATUS(status) != 1)
                fprintf(stderr, "gust: worker %d failed to start (%s)\n", (int)pid, why);
            m->failed = 1;
            m->stopping = 1;
            signal_gen(m, -1, SIGKILL);
        } else if (m->reloading && w.gen == m->reloading) {
            /* A new worker is gone before they all were ready: nothing of
             * this generation gets restarted. */
            char reason[160];
            if (w.state == W_READY)
                snprintf(reason, sizeof reason, "new worker %d exited (%s)", (int)pid, why);
            else if (WIFEXITED(status))
                snprintf(reason, sizeof reason, "loader exited with status %d",
                         WEXITSTATUS(status));
            else
                snprintf(reason, sizeof reason, "loader ended by %s", why);
            reload_failed(m, w.report ? w.report : reason);
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == GUST_EXIT_REPLACE) {
            fprintf(stderr, "gust: worker %d retired; starting another\n", (int)pid);
            evtimer_add(m->respawn_ev, &now_tv);
        } else {
            fprintf(stderr, "gust: worker %d died (%s); starting another\n", (int)pid,
                    w.report ? w.report : why);
            struct timeval tv = {0, 100000}; /* no tight loop if it keeps dying */
            evtimer_add(m->respawn_ev, &tv);
        }
        free(w.report);
    }
    if (m->stopping && m->nw == 0)
        event_base_loopexit(m->base, NULL);
}

static void on_respawn(evutil_socket_t fd, short what, void *arg) {
    master_t *m = arg;
    if (m->stopping)
        return;
    /* Top up the serving generation (and one being started, if any). */
    while (count(m, m->gen, -1) - count(m, m->gen, W_DRAINING) < m->o->workers)
        spawn(m, m->gen);
}

/* Starts a new generation; one asked for while another loads waits for it
 * to end (coalesced: the newest files win), and one that does not load
 * within --drain-timeout fails. */
static void reload(master_t *m) {
    if (m->stopping || !m->started)
        return;
    if (m->reloading) {
        m->reload_pending = 1;
        return;
    }
    m->reloading = m->gen + 1;
    for (int i = 0; i < m->o->workers; i++)
        spawn(m, m->reloading);
    struct timeval tv = gust_timeval(m->o->cfg.drain_timeout);
    evtimer_add(m->load_ev, &tv);
}

static void on_load_timeout(evutil_socket_t fd, short what, void *arg) {
    master_t *m = arg;
    if (!m->reloading)
        return;
    char reason[96];
    snprintf(reason, sizeof reason, "the app did not load within %g s", m->o->cfg.drain_timeout);
    reload_failed(m, reason);
}

/* The watchdog's master half: every WATCH_MS, each worker's slot says
 * whether its loop is held. A hold past --block-warn that the worker could
 * not report itself (blocked outside Lua code) is reported here; one past
 * --block-kill, or a drain past its deadline, ends the worker. */
/* What the slot says the worker is handling ("GET /path"), for a log line:
 * the target comes from the peer, and the worker may be rewriting it. */
static void slot_what(const gust_metrics_slot_t *slot, char *out, size_t outlen) {
    gust_log_escape(slot->what, strnlen(slot->what, sizeof slot->what), out, outlen);
}

static void kill_worker(master_t *m, worker_t *w, const char *why) {
    gust_metrics_slot_t *slot = &m->metrics->slot[w->slot];
    char doing[GUST_LOG_ESCAPED_MAX(sizeof slot->what)];
    slot_what(slot, doing, sizeof doing);
    fprintf(stderr, "gust: [error] worker %d %s%s%s; killing it%s\n%s\n", (int)w->pid, why,
            doing[0] ? " handling " : "", doing,
            m->stopping || w->state == W_DRAINING ? "" : " and starting another",
            slot->trace[0] ? slot->trace : "stack traceback:\n\t(no Lua sample taken)");
    w->killed = 1;
    kill(w->pid, SIGKILL);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg) {
    master_t *m = arg;
    double t = now();
    const gust_config_t *c = &m->o->cfg;
    for (int i = 0; i < m->nw; i++) {
        worker_t *w = &m->w[i];
        if (w->killed)
            continue;
        if (w->state == W_DRAINING && t > w->deadline) {
            m->forced = 1;
            kill_worker(m, w, "did not finish draining in time");
            continue;
        }
        gust_metrics_slot_t *slot = &m->metrics->slot[w->slot];
        uint64_t since = __atomic_load_n(&slot->busy_since_us, __ATOMIC_ACQUIRE);
        if (!since || w->state == W_STARTING)
            continue;
        double held = t - (double)since / 1e6;
        if (c->block_kill > 0 && held >= c->block_kill) {
            char why[96];
            snprintf(why, sizeof why, "held its loop for %.1f s", held);
            __atomic_fetch_add(&m->metrics->replaced[GUST_REPLACED_BLOCKED], 1, __ATOMIC_RELAXED);
            kill_worker(m, w, why);
        } else if (c->block_warn_ms > 0 && held * 1000 >= c->block_warn_ms + 1000 &&
                   !slot->warned && w->reported != since) {
            w->reported = since;
            char doing[GUST_LOG_ESCAPED_MAX(sizeof slot->what)];
            slot_what(slot, doing, sizeof doing);
            fprintf(stderr,
                    "gust: [warn] worker %d blocked the loop for %.0f ms%s%s "
                    "(outside Lua code: no traceback)\n",
                    (int)w->pid, held * 1000, doing[0] ? " handling " : "", doing);
        }
    }
}

static void on_reload_timer(evutil_socket_t fd, short what, void *arg) { reload(arg); }

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    master_t *m = arg;
    if (sig == SIGHUP) {
        reload(m);
        return;
    }
    if (m->stopping) {
        /* A second signal: every worker stops at once (SIGQUIT); one that
         * cannot, its loop held, is killed a moment later. */
        signal_gen(m, -1, SIGQUIT);
        double soon = now() + 1.0;
        for (int i = 0; i < m->nw; i++)
            if (m->w[i].deadline == 0 || m->w[i].deadline > soon)
                m->w[i].deadline = soon;
        return;
    }
    m->stopping = 1;
    /* Refuse new connections now; the workers close their copies as they
     * start draining. */
    close(m->listen_fd);
    m->listen_fd = -1;
    evtimer_del(m->load_ev);
    for (int i = 0; i < m->nw; i++) {
        worker_t *w = &m->w[i];
        if (w->state == W_STARTING) { /* a loader: nothing to drain */
            w->killed = 1;
            kill(w->pid, SIGKILL);
        } else if (w->state != W_DRAINING) {
            drain_worker(m, w);
        }
    }
    if (m->nw == 0)
        event_base_loopexit(m->base, NULL);
}

/* --reload: a change under the app's directory reloads after a short quiet
 * spell, so an editor's burst of writes makes one reload. */
static void on_watch(evutil_socket_t fd, short what, void *arg) {
    master_t *m = arg;
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0)
        ;
    struct timeval tv = {0, 150000};
    evtimer_add(m->reload_ev, &tv);
}

static void worker_main(master_t *m, int ready_fd, int slot, int bus_fd) {
    /* The master's loop does not survive the fork: free it (its events stay
     * reachable through the_master) and let the worker make its own. Its
     * epoll instance is shared with the master, so freeing it as it is
     * would unregister the master's own events. Ctrl-C
     * reaches the whole process group; the master decides what it means. */
    event_reinit(m->base); /* a private epoll first: the inherited one is shared */
    event_base_free(m->base);
    m->base = NULL;
    if (m->inotify_fd >= 0)
        close(m->inotify_fd);
    for (int i = 0; i < m->nw; i++)
        if (m->w[i].ready_fd >= 0)
            close(m->w[i].ready_fd);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    for (int i = 0; i < m->nw; i++)
        if (m->w[i].bus_fd >= 0)
            close(m->w[i].bus_fd);
    gust_relay_forget(m->relay); /* Redis talks to the master only */
    exit(gust_worker_run(m->o, m->listen_fd, ready_fd, m->metrics, slot, bus_fd));
}

/* Hands a bus packet to every worker but the one on `except_fd`. A worker
 * too busy to take it loses it (counted) rather than stall the master. */
static void send_to_workers(master_t *m, const struct iovec *iov, int iovcnt, int except_fd) {
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = (struct iovec *)iov;
    mh.msg_iovlen = (size_t)iovcnt;
    for (int i = 0; i < m->nw; i++) {
        worker_t *w = &m->w[i];
        if (w->bus_fd < 0 || w->bus_fd == except_fd)
            continue;
        if (sendmsg(w->bus_fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            __atomic_fetch_add(&m->metrics->pubsub_dropped, 1, __ATOMIC_RELAXED);
            fprintf(stderr, "gust: pubsub: worker %d missed a message: %s\n", (int)w->pid,
                    strerror(errno));
        }
    }
}

/* A pubsub message from a worker goes to every other worker (DESIGN §4.9)
 * and, with --redis, to the other servers: the master relays, it never
 * looks inside beyond the channel. */
static void on_bus(evutil_socket_t fd, short what, void *arg) {
    master_t *m = arg;
    char msg[GUST_BUS_MAX];
    ssize_t n = recv(fd, msg, sizeof msg, MSG_DONTWAIT);
    if (n <= 0)
        return; /* EOF: the worker is exiting; on_child cleans up */
    struct iovec iov = {msg, (size_t)n};
    send_to_workers(m, &iov, 1, fd);
    size_t clen = (unsigned char)msg[0] | (size_t)(unsigned char)msg[1] << 8;
    if (m->relay && n >= 2 && (size_t)n >= 2 + clen)
        gust_relay_publish(m->relay, msg + 2, clen, msg + 2 + clen, (size_t)n - 2 - clen);
}

/* A message from another server, through Redis: to every worker, in the
 * bus's packet form ([u16 channel length][channel][message]). */
static void on_redis_message(const char *channel, size_t clen, const char *msg, size_t mlen,
                             void *arg) {
    master_t *m = arg;
    if (clen > 0xffff || 2 + clen + mlen > GUST_BUS_MAX) {
        __atomic_fetch_add(&m->metrics->pubsub_dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    unsigned char head[2] = {(unsigned char)(clen & 0xff), (unsigned char)(clen >> 8)};
    struct iovec iov[3] = {{head, 2}, {(void *)channel, clen}, {(void *)msg, mlen}};
    send_to_workers(m, iov, 3, -1);
}

/* The lowest metrics slot no live worker holds. */
static int free_slot(master_t *m) {
    for (int slot = 0; slot < GUST_METRICS_SLOTS; slot++) {
        int used = 0;
        for (int i = 0; i < m->nw && !used; i++)
            used = m->w[i].slot == slot;
        if (!used)
            return slot;
    }
    return GUST_METRICS_SLOTS - 1;
}

static void spawn(master_t *m, int gen) {
    int p[2], bus[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        fprintf(stderr, "gust: pipe: %s\n", strerror(errno));
        return;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, bus) < 0) {
        fprintf(stderr, "gust: socketpair: %s\n", strerror(errno));
        close(p[0]);
        close(p[1]);
        return;
    }
    fflush(stdout);
    fflush(stderr);
    int slot = free_slot(m);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "gust: fork: %s\n", strerror(errno));
        close(p[0]);
        close(p[1]);
        close(bus[0]);
        close(bus[1]);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        close(bus[0]);
        worker_main(m, p[1], slot, bus[1]);
    }
    close(p[1]);
    close(bus[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK); /* on_child reads what a dead one left */
    if (m->nw == m->capw) {
        m->capw = m->capw ? m->capw * 2 : 8;
        m->w = realloc(m->w, m->capw * sizeof *m->w);
        if (!m->w)
            abort();
    }
    worker_t *w = &m->w[m->nw++];
    memset(w, 0, sizeof *w);
    w->pid = pid;
    w->gen = gen;
    w->state = W_STARTING;
    w->ready_fd = p[0];
    w->slot = slot;
    w->ready_ev = event_new(m->base, p[0], EV_READ, on_ready, m);
    event_add(w->ready_ev, NULL);
    w->bus_fd = bus[0];
    w->bus_ev = event_new(m->base, bus[0], EV_READ | EV_PERSIST, on_bus, m);
    event_add(w->bus_ev, NULL);
}

int gust_master_run(const gust_master_opts_t *o) {
    master_t m;
    memset(&m, 0, sizeof m);
    m.o = o;
    m.inotify_fd = -1;
    the_master = &m;
    char err[GUST_ERR_LEN];
    const gust_config_t *c = &o->cfg;
    int port = c->port == GUST_PORT_ANY ? 0 : c->port;
    m.listen_fd = gust_bind(c->bind, port, &m.port, err, sizeof err);
    if (m.listen_fd < 0 || listen(m.listen_fd, 1024) < 0) {
        fprintf(stderr, "gust: %s\n", m.listen_fd < 0 ? err : strerror(errno));
        return 1;
    }
    m.base = event_base_new();
    if (!m.base)
        return 1;
    /* Signals that mean nothing here must not end the master: its workers
     * would serve on with nobody to replace them (SIGUSR1 is nginx's "reopen
     * the logs"; here a reload, SIGHUP, does that). Its workers inherit it. */
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    for (int i = 0; i < 4; i++) {
        m.sig[i] = evsignal_new(m.base, sigs[i], sigs[i] == SIGCHLD ? on_child : on_signal, &m);
        event_add(m.sig[i], NULL);
    }
    m.respawn_ev = evtimer_new(m.base, on_respawn, &m);
    m.reload_ev = evtimer_new(m.base, on_reload_timer, &m);
    m.load_ev = evtimer_new(m.base, on_load_timeout, &m);
    m.dog_ev = event_new(m.base, -1, EV_PERSIST, on_watchdog, &m);
    static const struct timeval watch_tv = {0, WATCH_MS * 1000};
    event_add(m.dog_ev, &watch_tv);
    if (o->reload) {
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", o->app);
        m.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (m.inotify_fd < 0 ||
            inotify_add_watch(m.inotify_fd, dirname(copy),
                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0) {
            fprintf(stderr, "gust: --reload: %s\n", strerror(errno));
        } else {
            m.watch_ev = event_new(m.base, m.inotify_fd, EV_READ | EV_PERSIST, on_watch, &m);
            event_add(m.watch_ev, NULL);
        }
    }
    m.metrics = gust_metrics_new(1);
    if (o->redis) {
        const char *lvl = c->log_level ? c->log_level : "info";
        int info = strcmp(lvl, "info") == 0 || strcmp(lvl, "debug") == 0;
        m.relay = gust_relay_new(m.base, o->redis, &m.metrics->pubsub_dropped, info,
                                 on_redis_message, &m);
    }
    m.gen = 1;
    gust_shdict_set_owner_env(getpid()); /* workers open the shared dicts by it */
    for (int i = 0; i < o->workers; i++)
        spawn(&m, 1);
    event_base_dispatch(m.base);

    /* Freeing a signal event restores the disposition libevent found (the
     * default: terminate), so a late signal could kill a master that is on
     * its way out with a clean status. Block them first, free the events,
     * then ignore them: a pending one is discarded. */
    sigset_t late;
    sigemptyset(&late);
    sigaddset(&late, SIGTERM);
    sigaddset(&late, SIGINT);
    sigaddset(&late, SIGHUP);
    sigprocmask(SIG_BLOCK, &late, NULL);
    for (int i = 0; i < 4; i++)
        event_free(m.sig[i]);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    event_free(m.respawn_ev);
    event_free(m.reload_ev);
    event_free(m.load_ev);
    event_free(m.dog_ev);
    if (m.watch_ev)
        event_free(m.watch_ev);
    if (m.inotify_fd >= 0)
        close(m.inotify_fd);
    while (m.nw)
        drop(&m, 0);
    free(m.w);
    gust_relay_free(m.relay);
    if (m.listen_fd >= 0)
        close(m.listen_fd);
    if (strncmp(c->bind, "unix:", 5) == 0)
        unlink(c->bind + 5);
    event_base_free(m.base);
    gust_metrics_free(m.metrics, 1);
    gust_shdict_cleanup_all(getpid()); /* every worker is gone */
    the_master = NULL;
    return m.failed || m.forced ? 1 : 0;
}

static void on_worker_signal(evutil_socket_t sig, short what, void *arg) {
    gust_stop(arg);
    if (sig == SIGQUIT)
        gust_stop(arg); /* the second call stops at once */
}

/* Tells the master why the app did not load; says it on stderr itself when
 * the master cannot be told. */
static void report_load_error(int ready_fd, const char *err) {
    char msg[REPORT_MAX];
    int n = snprintf(msg, sizeof msg, "E%s", err);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    if (len < 2 || write(ready_fd, msg, len) != (ssize_t)len)
        fprintf(stderr, "gust: %s\n", err);
}

int gust_worker_run(const gust_master_opts_t *o, int listen_fd, int ready_fd,
                    gust_metrics_t *metrics, int slot, int bus_fd) {
    struct event_base *base = gust_event_base_new();
    gust_server_t *s = base ? gust_server_new(&o->cfg, base) : NULL;
    if (!s)
        return 1;
    gust_server_attach_bus(s, bus_fd);
    if (metrics)
        gust_core_attach_metrics(s->core, metrics, slot);
    int rc = 1;
    struct event *sigs[2] = {NULL, NULL};
    char err[4096];
    if (gust_load_app(s, o->app, err, sizeof err) != 0) {
        report_load_error(ready_fd, err);
        close(listen_fd);
        goto done;
    }
    fflush(stdout); /* what the script printed comes before the start line */
    char ready = 'S';
    if (gust_has_app(s)) {
        if (gust_listen_fd(s, listen_fd) != 0)
            goto done;
        ready = 'A';
    } else {
        close(listen_fd);
    }
    static const int signums[2] = {SIGTERM, SIGQUIT};
    for (int i = 0; i < 2; i++) {
        sigs[i] = evsignal_new(base, signums[i], on_worker_signal, s);
        event_add(sigs[i], NULL);
    }
    if (write(ready_fd, &ready, 1) != 1)
        goto done;
    close(ready_fd);
    ready_fd = -1;
    rc = gust_run(s) == 0 ? s->core->exit_status : 1;
done:
    if (ready_fd >= 0)
        close(ready_fd);
    sigset_t late; /* see gust_master_run */
    sigemptyset(&late);
    sigaddset(&late, SIGTERM);
    sigaddset(&late, SIGQUIT);
    sigprocmask(SIG_BLOCK, &late, NULL);
    for (int i = 0; i < 2; i++)
        if (sigs[i])
            event_free(sigs[i]);
    signal(SIGTERM, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    gust_server_free(s);
    event_base_free(base);
    return rc;
}
