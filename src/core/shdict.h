/*
 * shdict.h -- a dictionary in POSIX shared memory, shared by every worker
 * of one gust server (DESIGN.md §4.9, the C side of gust.shared.dict).
 *
 * A dict is one segment, /dev/shm/gust-shdict.<owner pid>.<owner start
 * time>.<name>, where the owner is the master process (GUST_MASTER_PID, set
 * by the master before it forks) or, with no master (plain luajit, an
 * embedder, --check), the process itself. Workers of one server, the new
 * ones after a reload included, therefore open the same segment, and no
 * other server does; the start time keeps a recycled pid from adopting a
 * segment that a killed server left behind.
 *
 * The segment holds a process-shared robust mutex, a chained hash table and
 * a first-fit allocator with coalescing over the rest. Every operation takes
 * the mutex for a short, bounded time (keys(0) and flush_expired(0) walk the
 * whole table) and never calls back into the caller while holding it.
 * Expiry is checked lazily against CLOCK_MONOTONIC, which all processes of
 * one boot share. If a process dies holding the lock, the next locker
 * recovers it; if it died in the middle of a write, the contents are reset
 * rather than trusted (and a line is written to stderr).
 *
 * Not thread-safe per handle (a handle's scratch state is its caller's);
 * any number of handles, in any processes, may use one segment at once.
 */
#ifndef GUST_SHDICT_H
#define GUST_SHDICT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mem.h"

typedef struct gust_shdict gust_shdict_t;

/** The environment variable by which the master tells workers its pid. */
#define GUST_SHDICT_OWNER_ENV "GUST_MASTER_PID"
/** Segment names start with this (in /dev/shm, after the leading '/'). */
#define GUST_SHDICT_PREFIX "gust-shdict."
/** Size bounds of a dict, in bytes; sizes are rounded up to a page. */
#define GUST_SHDICT_MIN_SIZE ((size_t)8192)
#define GUST_SHDICT_MAX_SIZE ((size_t)1 << 40)
/** Longest dict name; names use [A-Za-z0-9_.-] only. */
#define GUST_SHDICT_NAME_MAX 128
/** Longest key, in bytes (as ngx.shared.DICT). */
#define GUST_SHDICT_KEY_MAX 65535

enum {
    GUST_SHDICT_NIL = 0, /* absent (get) or delete (set) */
    GUST_SHDICT_STRING,
    GUST_SHDICT_NUMBER,
    GUST_SHDICT_BOOLEAN
};

/* Results of the operations: 0 or one of these. */
enum {
    GUST_SHDICT_OK = 0,
    GUST_SHDICT_ENOTFOUND = -1,
    GUST_SHDICT_EEXISTS = -2,
    GUST_SHDICT_ENOMEM = -3,
    GUST_SHDICT_ENOTNUM = -4,
    GUST_SHDICT_ELOCK = -5,
    GUST_SHDICT_EKEY = -6 /* a key of 0 or more than GUST_SHDICT_KEY_MAX bytes */
};

/** set() modes. */
enum { GUST_SHDICT_SET, GUST_SHDICT_ADD, GUST_SHDICT_REPLACE };

typedef struct gust_shdict_value {
    int type;        /* GUST_SHDICT_* */
    double num;      /* NUMBER; BOOLEAN: 0 or 1 */
    const char *str; /* STRING: `len` bytes, not NUL-terminated */
    size_t len;
    uint32_t flags; /* the user's flags, as ngx.shared.DICT */
} gust_shdict_value_t;

/**
 * Opens the dict `name` of `owner`'s server, creating it with `size` bytes
 * if it does not exist yet. An existing dict keeps its size, whatever
 * `size` says.
 * @param owner  gust_shdict_owner(), or any pid (tests)
 * @param size   GUST_SHDICT_MIN_SIZE .. GUST_SHDICT_MAX_SIZE
 * @return the handle, or NULL with a message in `err` (bad name or size,
 *         shm_open/mmap failure, no room in /dev/shm)
 * @note the creator unlinks the segment in gust_shdict_free() when `owner`
 *       is its own pid; otherwise the owner removes it (cleanup_all).
 */
gust_shdict_t *gust_shdict_new(pid_t owner, const char *name, size_t size, char *err,
                               size_t errlen);

/** Unmaps the dict (and unlinks it if this process owns it). NULL is a no-op. */
void gust_shdict_free(gust_shdict_t *d);

/** The owner for this process: $GUST_MASTER_PID when it names our parent,
 * else our own pid. */
pid_t gust_shdict_owner(void);

/** Sets $GUST_MASTER_PID to `pid`, for the workers the master forks. */
void gust_shdict_set_owner_env(pid_t pid);

/** Unlinks every dict segment of `owner`'s server.
 * @return how many segments were removed */
int gust_shdict_cleanup_all(pid_t owner);

/** Whether `name` is a valid dict name. */
int gust_shdict_name_ok(const char *name);

/** The message for a result code: "not found", "exists", "no memory"... */
const char *gust_shdict_strerror(int rc);

/**
 * Looks `key` up. A string value is copied into `scratch` (reset first) and
 * `out->str` points there, so it stays valid until the next use of `scratch`.
 * @return 0, GUST_SHDICT_ENOTFOUND (absent or expired) or GUST_SHDICT_ELOCK
 */
int gust_shdict_get(gust_shdict_t *d, const char *key, size_t klen, gust_shdict_value_t *out,
                    gust_buf_t *scratch);

/**
 * Stores `v` under `key`. `ttl` is in seconds, 0 for no expiry. A NIL value
 * deletes. When there is no room even after dropping expired entries, the
 * result is GUST_SHDICT_ENOMEM and the key is left absent (as OpenResty's
 * set without eviction).
 * @param mode GUST_SHDICT_SET, _ADD (EEXISTS when present and live) or
 *             _REPLACE (ENOTFOUND when absent)
 * @return 0, EEXISTS, ENOTFOUND, ENOMEM, EKEY or ELOCK
 */
int gust_shdict_set(gust_shdict_t *d, const char *key, size_t klen, const gust_shdict_value_t *v,
                    double ttl, int mode);

/**
 * Adds `n` to the number under `key`, atomically for all processes; the
 * entry keeps its expiry. When the key is absent and `init` is not NULL it
 * is created as *init + n with `init_ttl`.
 * @return 0 with the new value in *out, ENOTFOUND, ENOTNUM, ENOMEM or EKEY
 */
int gust_shdict_incr(gust_shdict_t *d, const char *key, size_t klen, double n, const double *init,
                     double init_ttl, double *out);

/** @return 0 or ENOTFOUND */
int gust_shdict_delete(gust_shdict_t *d, const char *key, size_t klen);

/** Seconds left before `key` expires (0: never). @return 0 or ENOTFOUND */
int gust_shdict_ttl(gust_shdict_t *d, const char *key, size_t klen, double *ttl);

/** Sets the expiry of an existing key (0: never). @return 0 or ENOTFOUND */
int gust_shdict_expire(gust_shdict_t *d, const char *key, size_t klen, double ttl);

/**
 * Copies up to `max` live keys (0: all) into `out` (appended) as records of
 * a uint16_t length then the bytes, in no particular order.
 * @return the number of keys, or GUST_SHDICT_ELOCK
 */
long gust_shdict_keys(gust_shdict_t *d, size_t max, gust_buf_t *out);

/** Removes every entry. */
int gust_shdict_flush_all(gust_shdict_t *d);

/** Frees up to `max` expired entries (0: all). @return how many, or ELOCK */
long gust_shdict_flush_expired(gust_shdict_t *d, size_t max);

/** The segment's size in bytes, as created. */
size_t gust_shdict_capacity(const gust_shdict_t *d);

/** Bytes in free blocks of the allocator (a value needs one block). */
size_t gust_shdict_free_space(gust_shdict_t *d);

/** Live and expired-but-not-yet-freed entries. */
size_t gust_shdict_count(gust_shdict_t *d);

/** How often a lock held by a dead process was taken over; how often
 * that reset the contents. */
void gust_shdict_recoveries(gust_shdict_t *d, uint64_t *taken_over, uint64_t *resets);

/** The dict's name and its segment's name (with the leading '/'). */
const char *gust_shdict_name(const gust_shdict_t *d);
const char *gust_shdict_shm_name(const gust_shdict_t *d);

/* Test hooks: take the lock, marking the contents as being written when
 * `dirty`, and never let go (a test child then dies holding it). */
int gust_shdict__lock(gust_shdict_t *d, int dirty);

#endif
