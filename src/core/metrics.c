/*
 * metrics.c -- counting requests and rendering the Prometheus text format.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "mem.h"

static const double bounds[GUST_METRICS_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                    0.25,  0.5,    1,     2.5,  5,     10};

gust_metrics_t *gust_metrics_new(int shared) {
    gust_metrics_t *m;
    if (!shared) {
        m = gust_calloc(1, sizeof(gust_metrics_t));
    } else {
        void *p = mmap(NULL, sizeof(gust_metrics_t), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        m = p; /* zero-filled by the kernel */
    }
    m->slots_used = 1; /* slot 0: a core without a master counts there */
    return m;
}

void gust_metrics_slot_used(gust_metrics_t *m, int slot) {
    int32_t seen = __atomic_load_n(&m->slots_used, __ATOMIC_RELAXED);
    while (seen <= slot && !__atomic_compare_exchange_n(&m->slots_used, &seen, slot + 1, 1,
                                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

void gust_metrics_free(gust_metrics_t *m, int shared) {
    if (!m)
        return;
    if (shared)
        munmap(m, sizeof *m);
    else
        gust_free(m);
}

void gust_metrics_request(gust_metrics_t *m, int slot, int status, double seconds) {
    gust_metrics_counts_t *k = &m->slot[slot].counts;
    if (status >= 100 && status < 600)
        GUST_METRICS_BUMP(k->requests[status], 1);
    int b = 0;
    while (b < GUST_METRICS_BUCKETS && seconds > bounds[b])
        b++;
    GUST_METRICS_BUMP(k->buckets[b], 1);
    GUST_METRICS_BUMP(k->duration_us_sum, (uint64_t)(seconds * 1e6));
    GUST_METRICS_BUMP(k->duration_count, 1);
}

static void put(gust_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(gust_buf_t *b, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        gust_buf_add(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* The workers' numbers, summed over every slot a worker has had. */
typedef struct {
    gust_metrics_counts_t counts;
    long long connections_open, websockets_open;
} totals_t;

static void sum_slots(const gust_metrics_t *m, totals_t *t) {
    memset(t, 0, sizeof *t);
    int used = __atomic_load_n(&m->slots_used, __ATOMIC_RELAXED);
    for (int i = 0; i < used && i < GUST_METRICS_SLOTS; i++) {
        const gust_metrics_slot_t *sl = &m->slot[i];
        const gust_metrics_counts_t *k = &sl->counts;
        for (int code = 100; code < 600; code++)
            t->counts.requests[code] += LOAD(k->requests[code]);
        for (int j = 0; j <= GUST_METRICS_BUCKETS; j++)
            t->counts.buckets[j] += LOAD(k->buckets[j]);
        t->counts.duration_us_sum += LOAD(k->duration_us_sum);
        t->counts.duration_count += LOAD(k->duration_count);
        t->connections_open += LOAD(sl->connections_open);
        t->websockets_open += LOAD(sl->websockets_open);
    }
}

char *gust_metrics_render(const gust_metrics_t *m, size_t *len) {
    static totals_t sum; /* 5 KiB: not on the stack */
    sum_slots(m, &sum);
    const gust_metrics_counts_t *t = &sum.counts;
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    put(&b, "# HELP gust_requests_total Requests answered, by status code.\n"
            "# TYPE gust_requests_total counter\n");
    for (int code = 100; code < 600; code++) {
        uint64_t n = t->requests[code];
        if (n)
            put(&b, "gust_requests_total{code=\"%d\"} %llu\n", code, (unsigned long long)n);
    }
    put(&b, "# HELP gust_request_duration_seconds Time from the first byte of a request to "
            "its response.\n# TYPE gust_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < GUST_METRICS_BUCKETS; i++) {
        cum += t->buckets[i];
        put(&b, "gust_request_duration_seconds_bucket{le=\"%g\"} %llu\n", bounds[i],
            (unsigned long long)cum);
    }
    cum += t->buckets[GUST_METRICS_BUCKETS];
    put(&b, "gust_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    put(&b, "gust_request_duration_seconds_sum %.6f\n", t->duration_us_sum / 1e6);
    put(&b, "gust_request_duration_seconds_count %llu\n", (unsigned long long)t->duration_count);
    put(&b,
        "# HELP gust_connections_open Open HTTP connections.\n"
        "# TYPE gust_connections_open gauge\ngust_connections_open %lld\n",
        sum.connections_open);
    put(&b,
        "# HELP gust_websocket_connections_open Open WebSocket connections.\n"
        "# TYPE gust_websocket_connections_open gauge\n"
        "gust_websocket_connections_open %lld\n",
        sum.websockets_open);
    put(&b, "# HELP gust_loop_lag_seconds How late the worker's loop ran a timer.\n"
            "# TYPE gust_loop_lag_seconds gauge\n");
    for (int i = 0; i < GUST_METRICS_SLOTS; i++)
        if (LOAD(m->slot[i].pid))
            put(&b, "gust_loop_lag_seconds{worker=\"%d\"} %.6f\n", i,
                LOAD(m->slot[i].lag_us) / 1e6);
    put(&b, "# HELP gust_lua_memory_bytes The worker's Lua heap.\n"
            "# TYPE gust_lua_memory_bytes gauge\n");
    for (int i = 0; i < GUST_METRICS_SLOTS; i++)
        if (LOAD(m->slot[i].pid))
            put(&b, "gust_lua_memory_bytes{worker=\"%d\"} %llu\n", i,
                (unsigned long long)LOAD(m->slot[i].lua_bytes));
    static const char *const reasons[GUST_REPLACED_REASONS] = {"blocked", "lua_memory"};
    put(&b, "# HELP gust_workers_replaced_total Workers replaced: held the loop past "
            "--block-kill, or out of Lua memory.\n"
            "# TYPE gust_workers_replaced_total counter\n");
    for (int i = 0; i < GUST_REPLACED_REASONS; i++)
        put(&b, "gust_workers_replaced_total{reason=\"%s\"} %llu\n", reasons[i],
            (unsigned long long)LOAD(m->replaced[i]));
    put(&b,
        "# HELP gust_pubsub_dropped_total Pub/sub messages dropped: published while Redis "
        "was unreachable or too far behind (--redis), or refused by a busy worker.\n"
        "# TYPE gust_pubsub_dropped_total counter\ngust_pubsub_dropped_total %llu\n",
        (unsigned long long)LOAD(m->pubsub_dropped));
    *len = b.len;
    return b.p;
}
