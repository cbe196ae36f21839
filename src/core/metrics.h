/*
 * metrics.h -- the counters behind --metrics (DESIGN §4.10), kept in memory
 * every worker shares: the master maps it before forking, so requests are
 * summed over workers and survive reloads. A server without a master keeps
 * a private copy. Shared counters are atomic adds, a worker's own are
 * plain adds; nothing here locks.
 */
#ifndef GUST_METRICS_H
#define GUST_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define GUST_METRICS_SLOTS 256 /* workers that may report at once */
#define GUST_METRICS_BUCKETS 13

#define GUST_TRACE_MAX 1024

/* A worker's request counts. Only that worker writes them, so counting a
 * request is plain adds, not atomic read-modify-writes on memory every
 * worker shares; /metrics sums the slots. The counts outlive the worker:
 * the next one given the slot adds on. */
typedef struct gust_metrics_counts {
    uint64_t requests[600];                     /* by status code */
    uint64_t buckets[GUST_METRICS_BUCKETS + 1]; /* per bucket; the last is +Inf */
    uint64_t duration_us_sum, duration_count;
} gust_metrics_counts_t;

/* One worker's corner. The watchdog fields let the master see a worker
 * whose loop is held (a handler that never returns) and say where. */
typedef struct gust_metrics_slot {
    int32_t pid;                /* 0: free */
    uint32_t lag_us;            /* last measured loop lag */
    uint64_t lua_bytes;         /* Lua heap at the last sample */
    uint64_t busy_since_us;     /* monotonic µs since Lua holds the loop; 0: it does not */
    uint32_t warned;            /* the worker logged this hold already */
    char what[128];             /* "GET /path" being handled, NUL-terminated */
    char trace[GUST_TRACE_MAX]; /* the held code's last sampled traceback */
    /* Open now, in this worker: zeroed when it dies, with what it held. */
    int64_t connections_open, websockets_open;
    gust_metrics_counts_t counts;
} gust_metrics_slot_t;

/* Why workers were replaced, for gust_workers_replaced_total{reason=}. */
enum { GUST_REPLACED_BLOCKED, GUST_REPLACED_MEMORY, GUST_REPLACED_REASONS };

typedef struct gust_metrics {
    int32_t slots_used; /* slots below this have had a worker (and counts) */
    uint64_t replaced[GUST_REPLACED_REASONS];
    uint64_t pubsub_dropped; /* messages that missed Redis or a worker */
    gust_metrics_slot_t slot[GUST_METRICS_SLOTS];
} gust_metrics_t;

/* Shared (MAP_SHARED | MAP_ANONYMOUS) when `shared`, else private. */
gust_metrics_t *gust_metrics_new(int shared);
void gust_metrics_free(gust_metrics_t *m, int shared);

/* Counts a response of `status` that took `seconds`, in worker slot `slot`. */
void gust_metrics_request(gust_metrics_t *m, int slot, int status, double seconds);
/* A worker takes slot `slot` (its counts are summed from now on). */
void gust_metrics_slot_used(gust_metrics_t *m, int slot);

/* Adds to a number of a worker's own slot. One writer, so a relaxed load
 * and store, which a reader in another process sees whole, not a locked
 * read-modify-write. */
#define GUST_METRICS_BUMP(x, n)                                                                    \
    __atomic_store_n(&(x), __atomic_load_n(&(x), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

/* Prometheus text exposition format, into a malloc'd buffer (*len bytes). */
char *gust_metrics_render(const gust_metrics_t *m, size_t *len);

#endif
