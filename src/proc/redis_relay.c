/*
 * redis_relay.c -- the master's pubsub relay to Redis (--redis, DESIGN §4.9).
 *
 * Why the master and not each worker: the master already receives every
 * message of every worker to relay it to the others (master.c on_bus), so
 * it is the one place that sees a server's whole traffic. Holding Redis
 * there costs two connections per server whatever --workers says, sends
 * each message to Redis once per server and takes it back once per server
 * (then the local bus fans it out, as for a local message), and keeps the
 * subscription through reloads and worker crashes -- no window in which a
 * new generation has not subscribed yet. The master runs no app code, so
 * a busy handler never delays the relay. Workers stay unchanged: for them
 * another server is just another worker on the bus.
 *
 * Channels live in Redis under "gust:" (the app's "room" is "gust:room"),
 * so one Redis can serve other things too; the subscribed connection holds
 * one PSUBSCRIBE gust:*, which is all there is to restore after a restart.
 * A message goes out wrapped as ESC "gust:" <16 hex digits: this master's
 * random id> ESC <message>: the master drops its own when Redis echoes them
 * back (its workers had them at once, over the bus), and hands on the
 * others' unwrapped. A message without the wrapper (PUBLISH gust:room hi
 * from redis-cli or another program) is delivered as it is.
 *
 * Faults: nothing here blocks (hiredis's non-blocking connect and its
 * libevent adapter; a host name is resolved by the system's resolver).
 * A refused, lost or silent (5 s) connection is reported once per outage
 * at warn level, both connections are dropped, and they are tried again
 * after a backoff of 0.1 s doubling up to 1 s -- so delivery resumes within
 * about a second of Redis coming back, whatever the length of the outage.
 * While Redis is away, or while more than MAX_INFLIGHT_BYTES of messages
 * wait for its answer (a stopped or swamped server), a message is not
 * queued: it is dropped and counted in gust_pubsub_dropped_total, as are
 * those a lost connection took with it. Local delivery never waits.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "core/core.h"
#include "redis_relay.h"

#define PREFIX "gust:"
#define PREFIX_LEN (sizeof PREFIX - 1)
#define PATTERN PREFIX "*"
#define WRAP_LEN 23 /* ESC "gust:" 16 hex ESC */
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 1.0
#define CONNECT_TIMEOUT 5.0
#define MAX_INFLIGHT_BYTES (8u << 20)

struct gust_relay {
    struct event_base *base;
    gust_redis_url_t url;
    char where[300];
    redisAsyncContext *pub, *sub;
    unsigned pub_ready : 1, sub_ready : 1, up : 1, warned : 1, ever_up : 1, freeing : 1,
        reset_pending : 1;
    double backoff;
    struct event *retry_ev, *reset_ev, *timeout_ev;
    size_t inflight_bytes;
    uint64_t *dropped;
    int log_info;
    char wrap[WRAP_LEN + 1];
    char *scratch; /* PREFIX channel, then the wrapped message */
    size_t scratch_cap;
    gust_relay_deliver_cb deliver;
    void *arg;
    char why[256];
};

static void count_drop(gust_relay_t *r) { __atomic_fetch_add(r->dropped, 1, __ATOMIC_RELAXED); }

/* Something went wrong: say so once per outage, and start over from the
 * loop (never from inside a hiredis callback, which may not free). */
static void outage(gust_relay_t *r, const char *why) {
    if (r->freeing)
        return;
    if (!r->warned) {
        r->warned = 1;
        fprintf(stderr,
                "gust: [warn] redis: %s %s: %s; pub/sub stays within this server until it is "
                "back\n",
                r->ever_up ? "lost" : "cannot reach", r->where, why);
    }
    r->up = r->pub_ready = r->sub_ready = 0;
    if (!r->reset_pending) {
        r->reset_pending = 1;
        event_active(r->reset_ev, EV_TIMEOUT, 0);
    }
}

static void check_up(gust_relay_t *r) {
    if (r->up || !r->pub_ready || !r->sub_ready)
        return;
    r->up = 1;
    r->ever_up = 1;
    r->warned = 0;
    r->backoff = BACKOFF_MIN;
    evtimer_del(r->timeout_ev);
    if (r->log_info)
        fprintf(stderr, "gust: redis: pub/sub spans servers through %s\n", r->where);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    gust_relay_t *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this call */
        snprintf(r->why, sizeof r->why, "%s", ac->errstr ? ac->errstr : "connect failed");
        if (ac == r->pub)
            r->pub = NULL;
        else if (ac == r->sub)
            r->sub = NULL;
        outage(r, r->why);
        return;
    }
    if (ac == r->pub)
        r->pub_ready = 1;
    check_up(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    gust_relay_t *r = ac->data;
    if (ac == r->pub)
        r->pub = NULL;
    else if (ac == r->sub)
        r->sub = NULL;
    if (r->freeing)
        return;
    snprintf(r->why, sizeof r->why, "%s",
             status == REDIS_OK || !ac->errstr || !ac->errstr[0] ? "connection closed"
                                                                 : ac->errstr);
    outage(r, r->why);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv) {
    gust_relay_t *r = priv;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        snprintf(r->why, sizeof r->why, "AUTH failed: %s", rep->str);
        outage(r, r->why);
    }
}

static void on_publish(redisAsyncContext *ac, void *reply, void *priv) {
    gust_relay_t *r = ac->data;
    redisReply *rep = reply;
    r->inflight_bytes -= (size_t)(uintptr_t)priv;
    if (!rep || rep->type == REDIS_REPLY_ERROR)
        count_drop(r);
}

/* Every reply of the subscribed connection: the PSUBSCRIBE confirmation,
 * then each message. */
static void on_pmessage(redisAsyncContext *ac, void *reply, void *priv) {
    gust_relay_t *r = priv;
    redisReply *rep = reply;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "psubscribe") == 0) {
        r->sub_ready = 1;
        check_up(r);
        return;
    }
    if (strcmp(kind, "pmessage") != 0 || rep->elements != 4)
        return;
    redisReply *ch = rep->element[2], *msg = rep->element[3];
    if (ch->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING || ch->len < PREFIX_LEN ||
        memcmp(ch->str, PREFIX, PREFIX_LEN) != 0)
        return;
    const char *m = msg->str;
    size_t mlen = msg->len;
    if (mlen >= WRAP_LEN && memcmp(m, r->wrap, 6) == 0 && m[WRAP_LEN - 1] == '\x1b') {
        if (memcmp(m, r->wrap, WRAP_LEN) == 0)
            return; /* ours, back from Redis: the workers had it already */
        m += WRAP_LEN;
        mlen -= WRAP_LEN;
    }
    r->deliver(ch->str + PREFIX_LEN, ch->len - PREFIX_LEN, m, mlen, r->arg);
}

static redisAsyncContext *open_ctx(gust_relay_t *r) {
    const gust_redis_url_t *u = &r->url;
    redisAsyncContext *ac =
        u->path[0] ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(u->host, u->port);
    if (!ac) {
        snprintf(r->why, sizeof r->why, "out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(r->why, sizeof r->why, "%s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = r;
    redisLibeventAttach(ac, r->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (u->password[0]) {
        const char *argv[3] = {"AUTH", u->user, u->password};
        size_t lens[3] = {4, strlen(u->user), strlen(u->password)};
        int skip = u->user[0] ? 0 : 1; /* AUTH password, or AUTH user password */
        argv[skip] = "AUTH";
        lens[skip] = 4;
        redisAsyncCommandArgv(ac, on_auth, r, 3 - skip, argv + skip, lens + skip);
    }
    /* No SELECT: pub/sub channels are the same in every database. */
    return ac;
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    gust_relay_t *r = arg;
    r->pub = open_ctx(r);
    r->sub = r->pub ? open_ctx(r) : NULL;
    if (!r->pub || !r->sub) {
        outage(r, r->why);
        return;
    }
    redisAsyncCommand(r->sub, on_pmessage, r, "PSUBSCRIBE %s", PATTERN);
    struct timeval tv = gust_timeval(CONNECT_TIMEOUT);
    evtimer_add(r->timeout_ev, &tv);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
    gust_relay_t *r = arg;
    if (!r->up)
        outage(r, "no answer within 5 s");
}

/* Frees both connections; the messages they still owed a reply for are
 * counted as dropped (on_publish gets no reply). */
static void drop_connections(gust_relay_t *r) {
    unsigned freeing = r->freeing;
    r->freeing = 1; /* their disconnect callbacks are ours */
    redisAsyncContext *ac = r->pub;
    r->pub = NULL;
    if (ac)
        redisAsyncFree(ac);
    ac = r->sub;
    r->sub = NULL;
    if (ac)
        redisAsyncFree(ac);
    r->freeing = freeing;
    r->up = r->pub_ready = r->sub_ready = 0;
    evtimer_del(r->timeout_ev);
}

static void on_reset(evutil_socket_t fd, short what, void *arg) {
    gust_relay_t *r = arg;
    r->reset_pending = 0;
    drop_connections(r);
    struct timeval tv = gust_timeval(r->backoff);
    r->backoff = r->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : r->backoff * 2;
    evtimer_add(r->retry_ev, &tv);
}

gust_relay_t *gust_relay_new(struct event_base *base, const gust_redis_url_t *url,
                             uint64_t *dropped, int log_info, gust_relay_deliver_cb deliver,
                             void *arg) {
    gust_relay_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->base = base;
    r->url = *url;
    gust_redis_url_where(url, r->where, sizeof r->where);
    r->dropped = dropped;
    r->log_info = log_info;
    r->deliver = deliver;
    r->arg = arg;
    r->backoff = BACKOFF_MIN;
    unsigned char id[8];
    if (getrandom(id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20 ^ (uint64_t)getpid() << 40;
        memcpy(id, &x, sizeof id);
    }
    snprintf(r->wrap, sizeof r->wrap, "\x1bgust:%02x%02x%02x%02x%02x%02x%02x%02x\x1b", id[0], id[1],
             id[2], id[3], id[4], id[5], id[6], id[7]);
    r->retry_ev = evtimer_new(base, on_retry, r);
    r->reset_ev = event_new(base, -1, 0, on_reset, r);
    r->timeout_ev = evtimer_new(base, on_timeout, r);
    on_retry(-1, 0, r);
    return r;
}

void gust_relay_publish(gust_relay_t *r, const char *channel, size_t clen, const char *msg,
                        size_t mlen) {
    if (!r->pub || !r->pub_ready || r->inflight_bytes + mlen > MAX_INFLIGHT_BYTES) {
        count_drop(r);
        return;
    }
    size_t need = PREFIX_LEN + clen + WRAP_LEN + mlen;
    if (need > r->scratch_cap) {
        free(r->scratch);
        r->scratch_cap = need;
        r->scratch = malloc(need);
        if (!r->scratch)
            abort();
    }
    char *c = r->scratch, *v = r->scratch + PREFIX_LEN + clen;
    memcpy(c, PREFIX, PREFIX_LEN);
    memcpy(c + PREFIX_LEN, channel, clen);
    memcpy(v, r->wrap, WRAP_LEN);
    memcpy(v + WRAP_LEN, msg, mlen);
    const char *argv[3] = {"PUBLISH", c, v};
    size_t lens[3] = {7, PREFIX_LEN + clen, WRAP_LEN + mlen};
    if (redisAsyncCommandArgv(r->pub, on_publish, (void *)(uintptr_t)mlen, 3, argv, lens) !=
        REDIS_OK) {
        count_drop(r);
        return;
    }
    r->inflight_bytes += mlen;
}

void gust_relay_forget(gust_relay_t *r) {
    if (!r)
        return;
    if (r->pub && r->pub->c.fd >= 0)
        close(r->pub->c.fd);
    if (r->sub && r->sub->c.fd >= 0)
        close(r->sub->c.fd);
}

void gust_relay_free(gust_relay_t *r) {
    if (!r)
        return;
    r->freeing = 1;
    drop_connections(r);
    event_free(r->retry_ev);
    event_free(r->reset_ev);
    event_free(r->timeout_ev);
    free(r->scratch);
    free(r);
}
