/*
 * shdict.c -- gust_shdict_t: a dictionary in a POSIX shared memory segment
 * (shdict.h says what a segment is named and who removes it).
 *
 * Layout of a segment, all positions being byte offsets from its start so
 * that every process may map it anywhere:
 *
 *     [header: magic, sizes, counters, free lists, robust mutex]
 *     [bucket array: nbuckets offsets of the first node of each chain]
 *     [heap: blocks ............................................][epilogue]
 *
 * The heap is a boundary-tag allocator: each block starts with an 8-byte
 * word holding its size (a multiple of 8) and two flags, USED and
 * PREV_USED. A free block also keeps its free-list links after that word
 * and its size again in its last 8 bytes, so freeing a block merges it with
 * a free neighbour on either side in O(1); two free blocks are never
 * adjacent. Free blocks sit in segregated lists by power of two: a request
 * takes the first block that fits from its own class, else the head of any
 * larger class (which always fits), splitting off the remainder. The
 * epilogue is a zero-size USED block that stops merging at the end.
 *
 * A used block holds one node: chain link, expiry, hash, key and value.
 * Chains are singly linked from the buckets; the table does not grow (one
 * bucket per 128 bytes of segment keeps chains short at any fill).
 *
 * Crash safety: everything runs under the robust mutex. A writer sets
 * header.dirty before its first structural change and clears it after the
 * last, so a lock inherited from a dead process (EOWNERDEAD) tells whether
 * the structures can be trusted; when they cannot, the contents are reset.
 * incr's update of a number in place is one aligned 8-byte store and needs
 * no flag, which keeps the hot path of counters free of it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "shdict.h"

#define MAGIC 0x31746369646b7367ULL /* "gskdict1" */
#define VERSION 1
#define NCLASSES 40 /* free lists: 32 B, 64 B, ... 2^44 B and up */
#define MIN_BLOCK 32
#define USED ((uint64_t)1)
#define PREV_USED ((uint64_t)2)
#define SIZE_MASK (~(uint64_t)7)
#define BYTES_PER_BUCKET 128
#define ATTACH_WAIT_NS 5000000000LL /* for the creator of a segment to set it up */

typedef struct shm_header {
    uint64_t magic; /* written last by the creator */
    uint32_t version;
    uint32_t dirty; /* a writer is changing the structures */
    uint64_t size;
    uint64_t nbuckets;       /* a power of two */
    uint64_t buckets;        /* offset of the bucket array */
    uint64_t heap, heap_end; /* blocks live in [heap, heap_end); the epilogue at heap_end */
    uint64_t free_bytes, count;
    uint64_t taken_over, resets;
    uint64_t free_heads[NCLASSES];
    pthread_mutex_t mutex;
} shm_header_t;

typedef struct node {
    uint64_t next;    /* block of the next node in the chain; 0 at the end */
    uint64_t expires; /* CLOCK_MONOTONIC ns; 0: never */
    uint32_t hash;
    uint16_t klen;
    uint8_t type, pad;
    uint32_t vlen;
    uint32_t flags;
    char data[]; /* the key, then the value */
} node_t;

struct gust_shdict {
    shm_header_t *h;
    size_t size;
    int unlink_on_free; /* created by this process, which owns it */
    char name[GUST_SHDICT_NAME_MAX + 1];
    char shm_name[GUST_SHDICT_NAME_MAX + 64];
};

/* ---- addressing ------------------------------------------------------ */

#define AT(h, off) ((char *)(h) + (off))
#define WORD(h, off) (*(uint64_t *)AT(h, off))
#define NODE(h, b) ((node_t *)AT(h, (b) + 8))
#define BUCKETS(h) ((uint64_t *)AT(h, (h)->buckets))

static uint64_t bsize(shm_header_t *h, uint64_t b) { return WORD(h, b) & SIZE_MASK; }

static int class_of(uint64_t size) {
    int c = 63 - __builtin_clzll(size) - 5;
    return c < NCLASSES ? c : NCLASSES - 1;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A deadline `ttl` seconds after `now` (computed on first need); 0: none. */
static uint64_t deadline(double ttl, uint64_t *now) {
    if (!(ttl > 0))
        return 0;
    if (!*now)
        *now = now_ns();
    double ns = ttl * 1e9;
    if (ns >= (double)(UINT64_MAX - *now))
        return UINT64_MAX;
    uint64_t d = *now + (uint64_t)ns;
    return d > *now ? d : *now + 1;
}

static int expired(const node_t *n, uint64_t *now) {
    if (!n->expires)
        return 0;
    if (!*now)
        *now = now_ns();
    return *now >= n->expires;
}

/* The dirty flag must be set before the first structural store and cleared
 * after the last. A compiler barrier suffices: the stores of a process that
 * dies are all visible to the next locker up to where it stopped. */
static void begin_write(shm_header_t *h) {
    h->dirty = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static void end_write(shm_header_t *h) {
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    h->dirty = 0;
}

/* ---- the allocator --------------------------------------------------- */

static void fl_insert(shm_header_t *h, uint64_t b, uint64_t size) {
    int c = class_of(size);
    uint64_t head = h->free_heads[c];
    WORD(h, b + 8) = head;
    WORD(h, b + 16) = 0;
    if (head)
        WORD(h, head + 16) = b;
    h->free_heads[c] = b;
    h->free_bytes += size;
}

static void fl_remove(shm_header_t *h, uint64_t b, uint64_t size) {
    uint64_t next = WORD(h, b + 8), prev = WORD(h, b + 16);
    if (prev)
        WORD(h, prev + 8) = next;
    else
        h->free_heads[class_of(size)] = next;
    if (next)
        WORD(h, next + 16) = prev;
    h->free_bytes -= size;
}

/* Makes [b, b+size) one free block; the block before it is in use. */
static void make_free(shm_header_t *h, uint64_t b, uint64_t size) {
    WORD(h, b) = size | PREV_USED;
    WORD(h, b + size - 8) = size;
    WORD(h, b + size) &= ~PREV_USED;
    fl_insert(h, b, size);
}

static uint64_t block_for(size_t payload) {
    uint64_t need = ((uint64_t)payload + 8 + 7) & SIZE_MASK;
    return need < MIN_BLOCK ? MIN_BLOCK : need;
}

/* A used block with room for `payload` bytes, or 0. */
static uint64_t blk_alloc(shm_header_t *h, size_t payload) {
    if (payload >= h->size)
        return 0;
    uint64_t need = block_for(payload), b = 0;
    int c = class_of(need);
    for (uint64_t x = h->free_heads[c]; x; x = WORD(h, x + 8))
        if (bsize(h, x) >= need) {
            b = x;
            break;
        }
    for (int k = c + 1; !b && k < NCLASSES; k++)
        b = h->free_heads[k]; /* every block of a larger class fits */
    if (!b)
        return 0;
    uint64_t size = bsize(h, b);
    fl_remove(h, b, size);
    if (size - need >= MIN_BLOCK) {
        WORD(h, b) = need | USED | PREV_USED;
        make_free(h, b + need, size - need);
    } else {
        WORD(h, b) = size | USED | PREV_USED;
        WORD(h, b + size) |= PREV_USED;
    }
    return b;
}

static void blk_free(shm_header_t *h, uint64_t b) {
    uint64_t size = bsize(h, b);
    if (!(WORD(h, b) & PREV_USED)) {
        uint64_t ps = WORD(h, b - 8);
        b -= ps;
        fl_remove(h, b, ps);
        size += ps;
    }
    uint64_t next = b + size;
    if (!(WORD(h, next) & USED)) {
        uint64_t ns = bsize(h, next);
        fl_remove(h, next, ns);
        size += ns;
    }
    make_free(h, b, size);
}

/* Gives the tail of a used block back when it no longer needs it. */
static void blk_shrink(shm_header_t *h, uint64_t b, size_t payload) {
    uint64_t size = bsize(h, b), need = block_for(payload);
    if (size - need < MIN_BLOCK)
        return;
    WORD(h, b) = need | (WORD(h, b) & ~SIZE_MASK);
    uint64_t tail = b + need, tsize = size - need, next = b + size;
    if (!(WORD(h, next) & USED)) {
        uint64_t ns = bsize(h, next);
        fl_remove(h, next, ns);
        tsize += ns;
    }
    make_free(h, tail, tsize);
}

/* Empties the table and makes the heap one free block. */
static void reset_contents(shm_header_t *h) {
    memset(BUCKETS(h), 0, h->nbuckets * sizeof(uint64_t));
    memset(h->free_heads, 0, sizeof h->free_heads);
    h->free_bytes = h->count = 0;
    WORD(h, h->heap_end) = USED; /* the epilogue */
    make_free(h, h->heap, h->heap_end - h->heap);
}

/* ---- locking --------------------------------------------------------- */

static int lock(gust_shdict_t *d) {
    shm_header_t *h = d->h;
    int rc = pthread_mutex_lock(&h->mutex);
    if (rc == 0)
        return 0;
    if (rc != EOWNERDEAD)
        return -1;
    /* Its holder died. What it was reading or between writes is intact;
     * half a write is not, and nothing short of starting over is sound. */
    h->taken_over++;
    if (h->dirty) {
        h->resets++;
        reset_contents(h);
        end_write(h);
        fprintf(stderr,
                "gust: shared dict %s: a process died while writing it; its contents "
                "were reset\n",
                d->name);
    }
    pthread_mutex_consistent(&h->mutex);
    return 0;
}

static void unlock(gust_shdict_t *d) {
    if (d->h->dirty)
        end_write(d->h);
    pthread_mutex_unlock(&d->h->mutex);
}

int gust_shdict__lock(gust_shdict_t *d, int dirty) {
    if (lock(d) != 0)
        return -1;
    if (dirty)
        begin_write(d->h);
    return 0;
}

/* ---- the table ------------------------------------------------------- */

static uint64_t hash_key(const char *key, size_t klen) { return XXH3_64bits(key, klen); }

/* Finds the live node of `key`; *link is then the slot that points at it.
 * An expired node found on the way is unlinked and freed. */
static uint64_t find(shm_header_t *h, const char *key, size_t klen, uint64_t hv, uint64_t **link,
                     uint64_t *now) {
    uint64_t *slot = &BUCKETS(h)[hv & (h->nbuckets - 1)];
    uint32_t h32 = (uint32_t)(hv >> 32);
    for (uint64_t b = *slot; b; slot = &NODE(h, b)->next, b = *slot) {
        node_t *n = NODE(h, b);
        if (n->hash != h32 || n->klen != klen || memcmp(n->data, key, klen) != 0)
            continue;
        if (expired(n, now)) {
            begin_write(h);
            *slot = n->next;
            blk_free(h, b);
            h->count--;
            return 0;
        }
        *link = slot;
        return b;
    }
    return 0;
}

static void unlink_node(shm_header_t *h, uint64_t *link, uint64_t b) {
    begin_write(h);
    *link = NODE(h, b)->next;
    blk_free(h, b);
    h->count--;
}

static long sweep_expired(shm_header_t *h, size_t max) {
    uint64_t now = 0;
    long n = 0;
    uint64_t *buckets = BUCKETS(h);
    for (uint64_t i = 0; i < h->nbuckets; i++) {
        uint64_t *slot = &buckets[i];
        while (*slot) {
            uint64_t b = *slot;
            if (expired(NODE(h, b), &now)) {
                unlink_node(h, slot, b);
                if (++n == (long)max)
                    return n;
            } else {
                slot = &NODE(h, b)->next;
            }
        }
    }
    return n;
}

static size_t value_len(const gust_shdict_value_t *v) {
    switch (v->type) {
    case GUST_SHDICT_STRING: return v->len;
    case GUST_SHDICT_NUMBER: return sizeof(double);
    default: return 1;
    }
}

static void write_value(node_t *n, const gust_shdict_value_t *v, size_t vlen) {
    char *p = n->data + n->klen;
    n->type = (uint8_t)v->type;
    n->vlen = (uint32_t)vlen;
    n->flags = v->flags;
    if (v->type == GUST_SHDICT_STRING) {
        if (vlen)
            memcpy(p, v->str, vlen);
    } else if (v->type == GUST_SHDICT_NUMBER) {
        memcpy(p, &v->num, sizeof v->num);
    } else {
        *p = v->num != 0;
    }
}

/* Stores a value for a key that has node `b` (0: none) at `link`. */
static int store(shm_header_t *h, const char *key, size_t klen, uint64_t hv,
                 const gust_shdict_value_t *v, uint64_t expires, uint64_t b, uint64_t *link) {
    size_t vlen = value_len(v);
    if (vlen > UINT32_MAX)
        return GUST_SHDICT_ENOMEM;
    size_t payload = sizeof(node_t) + klen + vlen;
    begin_write(h);
    if (b) {
        if (bsize(h, b) - 8 >= payload) {
            node_t *n = NODE(h, b);
            write_value(n, v, vlen);
            n->expires = expires;
            blk_shrink(h, b, payload);
            return 0;
        }
        unlink_node(h, link, b); /* its room helps the new node fit */
    }
    uint64_t nb = blk_alloc(h, payload);
    if (!nb && sweep_expired(h, 0) > 0)
        nb = blk_alloc(h, payload);
    if (!nb)
        return GUST_SHDICT_ENOMEM;
    node_t *n = NODE(h, nb);
    n->hash = (uint32_t)(hv >> 32);
    n->klen = (uint16_t)klen;
    n->pad = 0;
    n->expires = expires;
    memcpy(n->data, key, klen);
    write_value(n, v, vlen);
    uint64_t *slot = &BUCKETS(h)[hv & (h->nbuckets - 1)];
    n->next = *slot;
    *slot = nb;
    h->count++;
    return 0;
}

/* ---- operations ------------------------------------------------------ */

int gust_shdict_get(gust_shdict_t *d, const char *key, size_t klen, gust_shdict_value_t *out,
                    gust_buf_t *scratch) {
    uint64_t hv = hash_key(key, klen), now = 0, *link;
    if (lock(d) != 0)
        return GUST_SHDICT_ELOCK;
    shm_header_t *h = d->h;
    uint64_t b = find(h, key, klen, hv, &link, &now);
    int rc = GUST_SHDICT_ENOTFOUND;
    if (b) {
        node_t *n = NODE(h, b);
        const char *p = n->data + n->klen;
        out->type = n->type;
        out->flags = n->flags;
        out->str = NULL;
        out->len = 0;
        out->num = 0;
        if (n->type == GUST_SHDICT_STRING) {
            scratch->len = 0;
            if (n->vlen) {
                gust_buf_add(scratch, p, n->vlen);
                out->str = scratch->p;
            } else {
                out->str = "";
            }
            out->len = n->vlen;
        } else if (n->type == GUST_SHDICT_NUMBER) {
            memcpy(&out->num, p, sizeof out->num);
        } else {
            out->num = *p != 0;
        }
        rc = 0;
    }
    unlock(d);
    return rc;
}

int gust_shdict_set(gust_shdict_t *d, const char *key, size_t klen, const gust_shdict_value_t *v,
                    double ttl, int mode) {
    if (klen == 0 || klen > GUST_SHDICT_KEY_MAX)
        return GUST_SHDICT_EKEY;
    uint64_t hv = hash_key(key, klen), now = 0, *link = NULL;
    if (lock(d) != 0)
        return GUST_SHDICT_ELOCK;
    shm_header_t *h = d->h;
    uint64_t b = find(h, key, klen, hv, &link, &now);
    int rc = 0;
    if (mode == GUST_SHDICT_ADD && b)
        rc = GUST_SHDICT_EEXISTS;
    else if (mode == GUST_SHDICT_REPLACE && !b)
        rc = GUST_SHDICT_ENOTFOUND;
    else if (v->type == GUST_SHDICT_NIL) {
        if (b)
            unlink_node(h, link, b);
    } else
        rc = store(h, key, klen, hv, v, deadline(ttl, &now), b, link);
    unlock(d);
    return rc;
}

int gust_shdict_incr(gust_shdict_t *d, const char *key, size_t klen, double n, const double *init,
                     double init_ttl, double *out) {
    if (klen == 0 || klen > GUST_SHDICT_KEY_MAX)
        return GUST_SHDICT_EKEY;
    uint64_t hv = hash_key(key, klen), now = 0, *link = NULL;
    if (lock(d) != 0)
        return GUST_SHDICT_ELOCK;
    shm_header_t *h = d->h;
    uint64_t b = find(h, key, klen, hv, &link, &now);
    int rc = 0;
    if (!b) {
        if (!init) {
            rc = GUST_SHDICT_ENOTFOUND;
        } else {
            gust_shdict_value_t v = {GUST_SHDICT_NUMBER, *init + n, NULL, 0, 0};
            rc = store(h, key, klen, hv, &v, deadline(init_ttl, &now), 0, NULL);
            *out = v.num;
        }
    } else {
        node_t *node = NODE(h, b);
        if (node->type != GUST_SHDICT_NUMBER) {
            rc = GUST_SHDICT_ENOTNUM;
        } else {
            double *p = (double *)(node->data + node->klen), val;
            memcpy(&val, p, sizeof val);
            val += n;
            memcpy(p, &val, sizeof val);
            *out = val;
        }
    }
    unlock(d);
    return rc;
}

int gust_shdict_delete(gust_shdict_t *d, const char *key, size_t klen) {
    gust_shdict_value_t nil = {GUST_SHDICT_NIL, 0, NULL, 0, 0};
    return gust_shdict_set(d, key, klen, &nil, 0, GUST_SHDICT_SET);
}

int gust_shdict_ttl(gust_shdict_t *d, const char *key, size_t klen, double *ttl) {
    uint64_t hv = hash_key(key, klen), now = 0, *link;
    if (lock(d) != 0)
        return GUST_SHDICT_ELOCK;
    uint64_t b = find(d->h, key, klen, hv, &link, &now);
    if (b) {
        uint64_t e = NODE(d->h, b)->expires;
        if (e && !now)
            now = now_ns();
        *ttl = e ? (double)(e - now) / 1e9 : 0;
    }
    unlock(d);
    return b ? 0 : GUST_SHDICT_ENOTFOUND;
}

int gust_shdict_expire(gust_shdict_t *d, const char *key, size_t klen, double ttl) {
    uint64_t hv = hash_key(key, klen), now = 0, *link;
    if (lock(d) != 0)
        return GUST_SHDICT_ELOCK;
    uint64_t b = find(d->h, key, klen, hv, &link, &now);
    if (b)
        NODE(d->h, b)->expires = deadline(ttl, &now);
    unlock(d);
    return b ? 0 : GUST_SHDICT_ENOTFOUND;
}

long gust_shdict_keys(gust_shdict_t *d, size_t max, gust_buf_t *out) {
    if (lock(d) != 0)
        return GUST_SHDICT_ELOCK;
    shm_header_t *h = d->h;
    uint64_t now = 0, *buckets = BUCKETS(h);
    long n = 0;
    for (uint64_t i = 0; i < h->nbuckets && (max == 0 || (size_t)n < max); i++) {
        for (uint64_t b = buckets[i]; b && (max == 0 || (size_t)n < max); b = NODE(h, b)->next) {
            node_t *node = NODE(h, b);
            if (expired(node, &now))
                continue;
            uint16_t len = node->klen;
            gust_buf_add(out, &len, sizeof len);
            gust_buf_add(out, node->data, len);
            n++;
        }
    }
    unlock(d);
    return n;
}

int gust_shdict_flush_all(gust_shdict_t *d) {
    if (lock(d) != 0)
        return GUST_SHDICT_ELOCK;
    begin_write(d->h);
    reset_contents(d->h);
    unlock(d);
    return 0;
}

long gust_shdict_flush_expired(gust_shdict_t *d, size_t max) {
    if (lock(d) != 0)
        return GUST_SHDICT_ELOCK;
    long n = sweep_expired(d->h, max);
    unlock(d);
    return n;
}

size_t gust_shdict_capacity(const gust_shdict_t *d) { return d->size; }

size_t gust_shdict_free_space(gust_shdict_t *d) {
    if (lock(d) != 0)
        return 0;
    size_t n = d->h->free_bytes;
    unlock(d);
    return n;
}

size_t gust_shdict_count(gust_shdict_t *d) {
    if (lock(d) != 0)
        return 0;
    size_t n = d->h->count;
    unlock(d);
    return n;
}

void gust_shdict_recoveries(gust_shdict_t *d, uint64_t *taken_over, uint64_t *resets) {
    *taken_over = *resets = 0;
    if (lock(d) != 0)
        return;
    *taken_over = d->h->taken_over;
    *resets = d->h->resets;
    unlock(d);
}

const char *gust_shdict_name(const gust_shdict_t *d) { return d->name; }
const char *gust_shdict_shm_name(const gust_shdict_t *d) { return d->shm_name; }

const char *gust_shdict_strerror(int rc) {
    switch (rc) {
    case GUST_SHDICT_OK: return "ok";
    case GUST_SHDICT_ENOTFOUND: return "not found";
    case GUST_SHDICT_EEXISTS: return "exists";
    case GUST_SHDICT_ENOMEM: return "no memory";
    case GUST_SHDICT_ENOTNUM: return "not a number";
    case GUST_SHDICT_ELOCK: return "lock failed";
    case GUST_SHDICT_EKEY: return "bad key";
    default: return "unknown error";
    }
}

/* ---- segments -------------------------------------------------------- */

int gust_shdict_name_ok(const char *name) {
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return n > 0 && n <= GUST_SHDICT_NAME_MAX;
}

/* The start time of `pid` in clock ticks since boot (/proc/PID/stat field
 * 22), or 0 when it cannot be read. With the pid it names one process. */
static unsigned long long start_time(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long t = 0;
    if (p && sscanf(p + 2,
                    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
                    "%*d %*d %*d %llu",
                    &t) != 1)
        t = 0;
    return t;
}

pid_t gust_shdict_owner(void) {
    const char *env = getenv(GUST_SHDICT_OWNER_ENV);
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        /* Only our master's word counts: a program a worker starts inherits
         * the variable but is not one of the server's workers. */
        if (!*end && v > 0 && v == (long)getppid())
            return (pid_t)v;
    }
    return getpid();
}

void gust_shdict_set_owner_env(pid_t pid) {
    char buf[24];
    snprintf(buf, sizeof buf, "%ld", (long)pid);
    setenv(GUST_SHDICT_OWNER_ENV, buf, 1);
}

int gust_shdict_cleanup_all(pid_t owner) {
    char prefix[64];
    int plen = snprintf(prefix, sizeof prefix, GUST_SHDICT_PREFIX "%ld.", (long)owner);
    DIR *dir = opendir("/dev/shm");
    if (!dir)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strncmp(e->d_name, prefix, (size_t)plen) != 0)
            continue;
        char path[NAME_MAX + 2];
        snprintf(path, sizeof path, "/%s", e->d_name);
        if (shm_unlink(path) == 0)
            n++;
    }
    closedir(dir);
    return n;
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *name, const char *what) {
    if (err && errlen)
        snprintf(err, errlen, fmt, name, what);
}

/* Sets up a segment this process has just created. */
static int create(gust_shdict_t *d, int fd, char *err, size_t errlen) {
    int rc;
    if (ftruncate(fd, (off_t)d->size) != 0) {
        set_err(err, errlen, "shared dict %s: ftruncate: %s", d->name, strerror(errno));
        return -1;
    }
    /* Reserve the pages now: a tmpfs that runs out later would kill the
     * process touching the page with SIGBUS instead of failing here. */
    if ((rc = posix_fallocate(fd, 0, (off_t)d->size)) != 0) {
        set_err(err, errlen, "shared dict %s: cannot reserve its memory in /dev/shm: %s", d->name,
                strerror(rc));
        return -1;
    }
    void *p = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        set_err(err, errlen, "shared dict %s: mmap: %s", d->name, strerror(errno));
        return -1;
    }
    shm_header_t *h = d->h = p;
    h->version = VERSION;
    h->size = d->size;
    uint64_t nb = 8;
    while (nb * 2 <= d->size / BYTES_PER_BUCKET)
        nb *= 2;
    h->nbuckets = nb;
    h->buckets = (sizeof *h + 63) & ~(uint64_t)63;
    h->heap = h->buckets + nb * sizeof(uint64_t);
    h->heap_end = (d->size - 8) & SIZE_MASK;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    rc = pthread_mutex_init(&h->mutex, &a);
    pthread_mutexattr_destroy(&a);
    if (rc != 0) {
        set_err(err, errlen, "shared dict %s: mutex: %s", d->name, strerror(rc));
        return -1;
    }
    reset_contents(h);
    __atomic_store_n(&h->magic, MAGIC, __ATOMIC_RELEASE); /* ready */
    return 0;
}

static void pause_1ms(void) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* Maps a segment another process created, waiting for it to be ready. */
static int attach(gust_shdict_t *d, int fd, char *err, size_t errlen) {
    uint64_t until = now_ns() + ATTACH_WAIT_NS;
    struct stat st;
    for (;;) {
        if (fstat(fd, &st) != 0) {
            set_err(err, errlen, "shared dict %s: fstat: %s", d->name, strerror(errno));
            return -1;
        }
        if (st.st_size > 0)
            break;
        if (now_ns() > until)
            goto never_ready;
        pause_1ms();
    }
    d->size = (size_t)st.st_size;
    void *p = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        set_err(err, errlen, "shared dict %s: mmap: %s", d->name, strerror(errno));
        return -1;
    }
    d->h = p;
    while (__atomic_load_n(&d->h->magic, __ATOMIC_ACQUIRE) != MAGIC) {
        if (now_ns() > until)
            goto never_ready;
        pause_1ms();
    }
    if (d->h->version != VERSION || d->h->size != d->size) {
        set_err(err, errlen, "shared dict %s: %s", d->name,
                "the segment belongs to another version of gust");
        return -1;
    }
    return 0;
never_ready:
    set_err(err, errlen, "shared dict %s: %s", d->name,
            "the process creating it never finished (it may have died)");
    return -1;
}

gust_shdict_t *gust_shdict_new(pid_t owner, const char *name, size_t size, char *err,
                               size_t errlen) {
    if (!gust_shdict_name_ok(name)) {
        set_err(err, errlen, "bad shared dict name '%s'%s", name,
                ": use 1 to 128 of A-Z a-z 0-9 _ . -");
        return NULL;
    }
    if (size < GUST_SHDICT_MIN_SIZE || size > GUST_SHDICT_MAX_SIZE) {
        set_err(err, errlen, "shared dict %s: %s", name, "size must be from 8k to 1t");
        return NULL;
    }
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;
    gust_shdict_t *d = gust_calloc(1, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->shm_name, sizeof d->shm_name, "/" GUST_SHDICT_PREFIX "%ld.%llu.%s", (long)owner,
             start_time(owner), name);
    d->size = (size + (size_t)page - 1) / (size_t)page * (size_t)page;
    for (int attempt = 0; attempt < 5; attempt++) {
        int fd = shm_open(d->shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            int rc = create(d, fd, err, errlen);
            close(fd);
            if (rc != 0) {
                shm_unlink(d->shm_name);
                goto fail;
            }
            d->unlink_on_free = owner == getpid();
            return d;
        }
        if (errno != EEXIST) {
            set_err(err, errlen, "shared dict %s: shm_open: %s", name, strerror(errno));
            goto fail;
        }
        fd = shm_open(d->shm_name, O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 && errno == ENOENT)
            continue; /* its creator failed and removed it: try again */
        if (fd < 0) {
            set_err(err, errlen, "shared dict %s: shm_open: %s", name, strerror(errno));
            goto fail;
        }
        int rc = attach(d, fd, err, errlen);
        close(fd);
        if (rc == 0)
            return d;
        goto fail;
    }
    set_err(err, errlen, "shared dict %s: %s", name, "cannot create its segment");
fail:
    if (d->h)
        munmap(d->h, d->size);
    gust_free(d);
    return NULL;
}

void gust_shdict_free(gust_shdict_t *d) {
    if (!d)
        return;
    if (d->h)
        munmap(d->h, d->size);
    if (d->unlink_on_free)
        shm_unlink(d->shm_name);
    gust_free(d);
}
