/*
 * http_client.c -- gust_http_fetch_t: one HTTP/1.1 exchange on the server's
 * loop, and the keep-alive pool it takes connections from and gives them
 * back to.
 *
 * A fetch sends its serialised request on an idle pooled connection for the
 * same (scheme, host, port, TLS settings) or on a new one (gust_stream_
 * connect_ex: evdns, connect, TLS handshake), parses the answer with a
 * gust_http_reply_t, and either keeps the decoded body (the owner takes it
 * whole) or hands it over piece by piece (streaming, with a high-water mark
 * that stops reading until the owner catches up).
 *
 * The pool is a hash table of hosts, each with a LIFO of idle connections
 * (the most recently used is the warmest). An idle connection keeps reading:
 * a close or stray bytes from the peer evict it at once, and a timer evicts
 * it after its idle timeout. A reused connection can still have been closed
 * by the peer just as we sent; an idempotent request that fails that way
 * before any response byte is retried once on a fresh connection.
 *
 * Lifetime: every entry point holds the fetch (in_cb) while it works; a
 * gust_http_fetch_free() meanwhile only marks it, and the last release
 * frees. Callbacks into the owner run last in each path.
 */
#include "http_client.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "core.h"
#include "stream.h"

#define BODY_HIGH_MARK (1024 * 1024) /* streamed bytes the owner has not taken */
#define MAX_IDLE_PER_HOST 256
#define KEY_MAX 600

typedef struct gust_http_host gust_http_host_t;
typedef struct gust_http_conn gust_http_conn_t;

struct gust_http_conn {
    gust_stream_t *st;
    gust_http_host_t *host;
    gust_http_fetch_t *fetch; /* NULL while idle */
    struct event idle_ev;
    int idle; /* in the host's idle list */
    gust_http_conn_t *prev, *next;
};

struct gust_http_host {
    char *key;
    uint32_t hash;
    unsigned refs; /* its connections and the fetches using it */
    unsigned nidle;
    gust_http_conn_t *idle; /* most recently used first */
    gust_http_host_t *next; /* bucket chain */
};

typedef struct tls_ctx_entry {
    int verify;
    char *ca_file;
    SSL_CTX *ctx;
} tls_ctx_entry_t;

struct gust_http_pool {
    gust_core_t *core;
    gust_http_host_t **buckets;
    size_t nbuckets, nhosts;
    unsigned nidle;
    gust_http_fetch_t *fetches; /* live ones, to detach at server free */
    tls_ctx_entry_t *ctxs;
    size_t nctxs;
};

static void conn_on_read(gust_stream_t *st, void *arg);
static void conn_on_close(gust_stream_t *st, void *arg);
static void begin(gust_http_fetch_t *f, int allow_pool);

/* ---- the pool ------------------------------------------------------- */

static gust_http_pool_t *pool_of(gust_core_t *s) {
    if (!s->http_pool) {
        gust_http_pool_t *p = gust_calloc(1, sizeof *p);
        p->core = s;
        p->nbuckets = 16;
        p->buckets = gust_calloc(p->nbuckets, sizeof *p->buckets);
        s->http_pool = p;
    }
    return s->http_pool;
}

static uint32_t fnv1a(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static void pool_grow(gust_http_pool_t *p) {
    size_t n = p->nbuckets * 2;
    gust_http_host_t **b = gust_calloc(n, sizeof *b);
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (gust_http_host_t *h = p->buckets[i], *next; h; h = next) {
            next = h->next;
            h->next = b[h->hash & (n - 1)];
            b[h->hash & (n - 1)] = h;
        }
    }
    gust_free(p->buckets);
    p->buckets = b;
    p->nbuckets = n;
}

/* Finds or makes the host entry for a fetch's key; takes a reference. */
static gust_http_host_t *host_ref(gust_http_pool_t *p, const gust_http_fetch_opts_t *o) {
    char key[KEY_MAX];
    int n = snprintf(key, sizeof key, "%c%d|%s|%d|%s", o->tls ? 's' : 'p', o->tls && o->verify,
                     o->host, o->port, o->tls && o->verify && o->ca_file ? o->ca_file : "");
    if (n < 0 || n >= (int)sizeof key)
        n = sizeof key - 1;
    uint32_t hash = fnv1a(key, (size_t)n);
    gust_http_host_t **slot = &p->buckets[hash & (p->nbuckets - 1)];
    for (gust_http_host_t *h = *slot; h; h = h->next) {
        if (h->hash == hash && strcmp(h->key, key) == 0) {
            h->refs++;
            return h;
        }
    }
    gust_http_host_t *h = gust_calloc(1, sizeof *h);
    h->key = gust_strdup(key);
    h->hash = hash;
    h->refs = 1;
    h->next = *slot;
    *slot = h;
    if (++p->nhosts > p->nbuckets)
        pool_grow(p);
    return h;
}

static void host_unref(gust_http_pool_t *p, gust_http_host_t *h) {
    if (--h->refs > 0)
        return;
    gust_http_host_t **slot = &p->buckets[h->hash & (p->nbuckets - 1)];
    while (*slot != h)
        slot = &(*slot)->next;
    *slot = h->next;
    p->nhosts--;
    gust_free(h->key);
    gust_free(h);
}

static void idle_unlink(gust_http_pool_t *p, gust_http_conn_t *c) {
    gust_http_host_t *h = c->host;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->idle = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->idle = 0;
    h->nidle--;
    p->nidle--;
    event_del(&c->idle_ev);
}

/* Closes and frees a connection that is idle or whose fetch let it go. */
static void conn_destroy(gust_http_pool_t *p, gust_http_conn_t *c) {
    if (c->idle)
        idle_unlink(p, c);
    event_del(&c->idle_ev);
    c->st->on_read = c->st->on_close = NULL;
    c->st->arg = NULL;
    gust_stream_free(c->st);
    host_unref(p, c->host);
    gust_free(c);
}

static void on_idle_timeout(evutil_socket_t fd, short what, void *arg) {
    gust_http_conn_t *c = arg;
    conn_destroy(c->st->core->http_pool, c);
}

static gust_http_conn_t *conn_new(gust_http_pool_t *p, gust_http_host_t *h, gust_stream_t *st) {
    gust_http_conn_t *c = gust_calloc(1, sizeof *c);
    c->st = st;
    c->host = h;
    h->refs++;
    evtimer_assign(&c->idle_ev, p->core->base, on_idle_timeout, c);
    st->on_read = conn_on_read;
    st->on_close = conn_on_close;
    st->on_drain = NULL;
    st->arg = c;
    return c;
}

/* A finished exchange gives its connection back, or closes it. */
static void conn_release(gust_http_pool_t *p, gust_http_conn_t *c, int reusable,
                         double idle_timeout) {
    c->fetch = NULL;
    gust_http_host_t *h = c->host;
    if (!reusable || c->st->closed || p->core->stopping || h->nidle >= MAX_IDLE_PER_HOST) {
        conn_destroy(p, c);
        return;
    }
    c->prev = NULL;
    c->next = h->idle;
    if (h->idle)
        h->idle->prev = c;
    h->idle = c;
    c->idle = 1;
    h->nidle++;
    p->nidle++;
    if (idle_timeout > 0) {
        struct timeval tv = gust_timeval(idle_timeout);
        evtimer_add(&c->idle_ev, &tv);
    }
    gust_stream_read_start(c->st); /* to notice the peer's close */
}

static tls_ctx_entry_t *tls_ctx(gust_http_pool_t *p, int verify, const char *ca_file, char *err,
                                size_t errlen) {
    if (!verify)
        ca_file = NULL;
    for (size_t i = 0; i < p->nctxs; i++) {
        tls_ctx_entry_t *e = &p->ctxs[i];
        if (e->verify == verify &&
            ((!e->ca_file && !ca_file) || (e->ca_file && ca_file && !strcmp(e->ca_file, ca_file))))
            return e;
    }
    SSL_CTX *ctx = gust_tls_client_ctx_new(verify, ca_file, err, errlen);
    if (!ctx)
        return NULL;
    p->ctxs = gust_realloc(p->ctxs, (p->nctxs + 1) * sizeof *p->ctxs);
    tls_ctx_entry_t *e = &p->ctxs[p->nctxs++];
    e->verify = verify;
    e->ca_file = ca_file ? gust_strdup(ca_file) : NULL;
    e->ctx = ctx;
    return e;
}

unsigned gust_http_pool_idle(gust_core_t *s) { return s->http_pool ? s->http_pool->nidle : 0; }

unsigned gust_http_pool_close_idle(gust_core_t *s) {
    gust_http_pool_t *p = s->http_pool;
    unsigned n = 0;
    if (!p)
        return 0;
    for (size_t i = 0; i < p->nbuckets; i++) {
        for (gust_http_host_t *h = p->buckets[i], *next; h; h = next) {
            next = h->next;
            /* The last conn_destroy may free h; hold it meanwhile. */
            h->refs++;
            while (h->idle) {
                conn_destroy(p, h->idle);
                n++;
            }
            host_unref(p, h);
        }
    }
    return n;
}

/* ---- fetches -------------------------------------------------------- */

static void hold(gust_http_fetch_t *f) { f->in_cb++; }

static void really_free(gust_http_fetch_t *f);

static void release(gust_http_fetch_t *f) {
    if (--f->in_cb == 0 && f->free_pending)
        really_free(f);
}

/* Tells the owner; from inside gust_http_fetch_start, from the loop. */
static void notify(gust_http_fetch_t *f) {
    if (!f->cb || !f->core)
        return;
    if (f->starting) {
        if (!f->notify_pending) {
            f->notify_pending = 1;
            event_active(&f->defer, EV_TIMEOUT, 0);
        }
        return;
    }
    f->cb(f, f->arg);
}

static void on_defer(evutil_socket_t fd, short what, void *arg) {
    gust_http_fetch_t *f = arg;
    f->notify_pending = 0;
    hold(f);
    notify(f);
    release(f);
}

/* Drops the fetch's connection: back to the pool when the exchange ended
 * cleanly, closed otherwise. */
static void drop_conn(gust_http_fetch_t *f, int reusable) {
    gust_http_conn_t *c = f->conn;
    if (!c)
        return;
    f->conn = NULL;
    gust_http_pool_t *p = f->core->http_pool;
    if (reusable) {
        conn_release(p, c, 1, f->o.idle_timeout);
    } else {
        c->fetch = NULL;
        conn_destroy(p, c);
    }
}

static void finish(gust_http_fetch_t *f, const char *err) {
    if (f->done)
        return;
    f->done = 1;
    if (err) {
        snprintf(f->errbuf, sizeof f->errbuf, "%s", err);
        f->err = f->errbuf;
    }
    event_del(&f->timer);
    if (f->connecting) {
        gust_stream_connect_cancel(f->connecting);
        f->connecting = NULL;
    }
    if (f->conn) {
        gust_stream_t *st = f->conn->st;
        int reusable = !err && f->reply.keep_alive && !st->closed && !st->eof &&
                       evbuffer_get_length(st->in) == 0 && gust_stream_pending(st) == 0;
        drop_conn(f, reusable);
    }
    notify(f);
}

static int on_body(void *arg, const char *data, size_t len) {
    gust_http_fetch_t *f = arg;
    evbuffer_add(f->body, data, len);
    return 0;
}

/* Feeds what the connection has read. Returns 1 when the fetch ended. */
static int consume(gust_http_fetch_t *f) {
    gust_stream_t *st = f->conn->st;
    size_t before = evbuffer_get_length(f->body);
    int had_headers = f->reply.headers_done;
    struct evbuffer_iovec v[8];
    while (!f->reply.complete && !f->reply.failed && evbuffer_get_length(st->in) > 0) {
        int n = evbuffer_peek(st->in, -1, NULL, v, 8);
        if (n > 8)
            n = 8;
        size_t used = 0;
        for (int i = 0; i < n && !f->reply.complete && !f->reply.failed; i++) {
            size_t k = gust_http_reply_feed(&f->reply, v[i].iov_base, v[i].iov_len);
            used += k;
            if (k < v[i].iov_len)
                break;
        }
        evbuffer_drain(st->in, used);
        if (used == 0)
            break;
    }
    if (f->reply.failed) {
        finish(f, f->reply.error);
        return 1;
    }
    if (f->reply.complete) {
        if (!had_headers)
            f->headers_ready = 1;
        finish(f, NULL);
        return 1;
    }
    int news = 0;
    if (f->reply.headers_done && !had_headers) {
        f->headers_ready = 1;
        news = 1;
    }
    if (f->o.streaming && evbuffer_get_length(f->body) > before) {
        news = 1;
        if (evbuffer_get_length(f->body) > BODY_HIGH_MARK) {
            f->paused = 1;
            gust_stream_read_stop(st);
        }
    }
    if (news && (f->o.streaming || f->o.headers_event))
        notify(f);
    return 0;
}

static int can_retry(gust_http_fetch_t *f) {
    return f->reused && !f->retried && f->o.idempotent && !f->reply.begun;
}

static void retry(gust_http_fetch_t *f) {
    drop_conn(f, 0);
    f->retried = 1;
    f->reused = 0;
    gust_http_reply_free(&f->reply);
    gust_http_reply_init(&f->reply, f->o.head, f->o.decompress, f->o.max_header_size,
                         f->o.max_body_size, on_body, f);
    begin(f, 0);
}

/* The connection closed under the fetch: the body may have been delimited
 * by the close, or the exchange failed (perhaps on a stale pooled one). */
static void on_conn_gone(gust_http_fetch_t *f) {
    gust_stream_t *st = f->conn->st;
    if (consume(f))
        return;
    if (can_retry(f)) {
        retry(f);
        return;
    }
    if (st->eof || st->err == gust_err_closed) {
        if (gust_http_reply_eof(&f->reply) == 0) {
            if (!f->headers_ready)
                f->headers_ready = 1;
            finish(f, NULL);
        } else {
            finish(f, f->reply.error);
        }
        return;
    }
    char msg[GUST_ERR_LEN];
    snprintf(msg, sizeof msg, "connection closed: %s", st->err);
    finish(f, msg);
}

static void conn_on_read(gust_stream_t *st, void *arg) {
    gust_http_conn_t *c = arg;
    gust_http_fetch_t *f = c->fetch;
    if (!f) {
        /* Idle: a close, or bytes nobody asked for. Either way it is done. */
        conn_destroy(st->core->http_pool, c);
        return;
    }
    if (st->closed)
        return; /* conn_on_close has dealt with it */
    hold(f);
    consume(f);
    release(f);
}

static void conn_on_close(gust_stream_t *st, void *arg) {
    gust_http_conn_t *c = arg;
    gust_http_fetch_t *f = c->fetch;
    if (!f) {
        conn_destroy(st->core->http_pool, c);
        return;
    }
    hold(f);
    on_conn_gone(f);
    release(f);
}

static void send_request(gust_http_fetch_t *f) {
    gust_stream_t *st = f->conn->st;
    gust_stream_read_start(st);
    gust_stream_write(st, f->req, f->req_len); /* a failure closes: conn_on_close */
}

static void attach(gust_http_fetch_t *f, gust_http_conn_t *c, int reused) {
    c->fetch = f;
    f->conn = c;
    f->reused = reused != 0;
    send_request(f);
}

static void on_connected(gust_stream_t *st, const char *err, void *arg) {
    gust_http_fetch_t *f = arg;
    f->connecting = NULL;
    hold(f);
    if (!st) {
        finish(f, strcmp(err, "timeout") == 0 ? "timeout while connecting" : err);
    } else {
        gust_http_pool_t *p = f->core->http_pool;
        gust_http_host_t *h = host_ref(p, &f->o);
        gust_http_conn_t *c = conn_new(p, h, st);
        host_unref(p, h); /* the connection holds it now */
        attach(f, c, 0);
    }
    release(f);
}

static void begin(gust_http_fetch_t *f, int allow_pool) {
    gust_http_pool_t *p = f->core->http_pool;
    if (allow_pool) {
        gust_http_host_t *h = host_ref(p, &f->o);
        gust_http_conn_t *c = h->idle;
        if (c)
            idle_unlink(p, c);
        host_unref(p, h);
        if (c) {
            attach(f, c, 1);
            return;
        }
    }
    SSL_CTX *ctx = NULL;
    if (f->o.tls) {
        char err[GUST_ERR_LEN];
        tls_ctx_entry_t *e = tls_ctx(p, f->o.verify, f->o.ca_file, err, sizeof err);
        if (!e) {
            finish(f, err);
            return;
        }
        ctx = e->ctx;
    }
    gust_connect_opts_t co = {f->o.connect_timeout, ctx};
    f->connecting = gust_stream_connect_ex(f->core, f->host, f->o.port, &co, on_connected, f);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    gust_http_fetch_t *f = arg;
    hold(f);
    finish(f, "timeout");
    release(f);
}

static void set_timer(struct event *ev, double secs) {
    struct timeval tv = gust_timeval(secs);
    evtimer_add(ev, &tv);
}

gust_http_fetch_t *gust_http_fetch_start(gust_core_t *s, const gust_http_fetch_opts_t *o, char *req,
                                         size_t req_len, gust_http_fetch_cb cb, void *arg,
                                         char *err, size_t errlen) {
    gust_http_pool_t *p = pool_of(s);
    if (o->tls && !tls_ctx(p, o->verify, o->ca_file, err, errlen)) {
        gust_free(req);
        return NULL;
    }
    gust_http_fetch_t *f = gust_calloc(1, sizeof *f);
    f->core = s;
    f->o = *o;
    f->host = gust_strdup(o->host);
    f->o.host = f->host;
    f->o.ca_file = NULL;
    if (o->tls && o->verify && o->ca_file)
        f->o.ca_file = gust_strdup(o->ca_file);
    f->req = req;
    f->req_len = req_len;
    f->cb = cb;
    f->arg = arg;
    f->body = evbuffer_new();
    gust_http_reply_init(&f->reply, o->head, o->decompress, o->max_header_size, o->max_body_size,
                         on_body, f);
    evtimer_assign(&f->timer, s->base, on_timer, f);
    event_assign(&f->defer, s->base, -1, 0, on_defer, f);
    f->next = p->fetches;
    if (p->fetches)
        p->fetches->prev = f;
    p->fetches = f;
    if (o->request_timeout > 0)
        set_timer(&f->timer, o->request_timeout);
    f->starting = 1;
    hold(f);
    begin(f, 1);
    f->starting = 0;
    release(f);
    return f;
}

void gust_http_fetch_resume(gust_http_fetch_t *f) {
    if (!f || !f->paused || f->done || !f->conn)
        return;
    f->paused = 0;
    gust_stream_read_start(f->conn->st);
}

static void unlink_fetch(gust_http_fetch_t *f) {
    gust_http_pool_t *p = f->core->http_pool;
    if (f->prev)
        f->prev->next = f->next;
    else
        p->fetches = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
}

/* Lets go of the loop: timers, a connect in progress, the connection. */
static void detach(gust_http_fetch_t *f) {
    event_del(&f->timer);
    event_del(&f->defer);
    if (f->connecting) {
        gust_stream_connect_cancel(f->connecting);
        f->connecting = NULL;
    }
    drop_conn(f, 0);
    unlink_fetch(f);
    f->core = NULL;
}

static void really_free(gust_http_fetch_t *f) {
    if (f->core)
        detach(f);
    gust_http_reply_free(&f->reply);
    evbuffer_free(f->body);
    gust_free(f->req);
    gust_free(f->host);
    gust_free((char *)f->o.ca_file);
    gust_free(f);
}

void gust_http_fetch_free(gust_http_fetch_t *f) {
    if (!f)
        return;
    f->cb = NULL;
    if (f->in_cb > 0) {
        f->free_pending = 1;
        return;
    }
    really_free(f);
}

void gust_http_pool_free(gust_core_t *s) {
    gust_http_pool_t *p = s->http_pool;
    if (!p)
        return;
    while (p->fetches) {
        gust_http_fetch_t *f = p->fetches;
        f->cb = NULL;
        detach(f);
    }
    gust_http_pool_close_idle(s);
    for (size_t i = 0; i < p->nctxs; i++) {
        gust_tls_ctx_free(p->ctxs[i].ctx);
        gust_free(p->ctxs[i].ca_file);
    }
    gust_free(p->ctxs);
    gust_free(p->buckets);
    gust_free(p);
    s->http_pool = NULL;
}
