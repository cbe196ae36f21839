/*
 * test_shdict.c -- unit tests for src/core/shdict.c, the shared-memory dict
 * behind gust.shared.dict.
 *
 * Single-process checks cover every operation and result code, expiry, the
 * allocator (a random workload checked against a model, then emptied: all
 * the space must come back as one block) and segment naming and removal.
 * Forked children check what only several processes can: incr from four of
 * them adds up exactly; a child that dies holding the lock -- cleanly, in
 * the middle of a write, or SIGKILLed at a random point of a hammering loop
 * -- leaves a dict the others can go on using.
 *
 * Each test names its dicts after this process, so parallel runs do not
 * meet, and frees them, which (owner = this process) removes the segments.
 * The check framework is the one of test_http_response.c.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shdict.h"

#include "check.h"

/* ---- helpers ---------------------------------------------------------- */

static gust_shdict_t *open_dict(const char *tag, size_t size) {
    char name[64], err[256];
    snprintf(name, sizeof name, "test-%ld-%s", (long)getpid(), tag);
    gust_shdict_t *d = gust_shdict_new(getpid(), name, size, err, sizeof err);
    if (!d)
        check_fail(__FILE__, __LINE__, "open %s: %s", name, err);
    return d;
}

static int set_str(gust_shdict_t *d, const char *k, const char *v, size_t vlen, double ttl,
                   int mode) {
    gust_shdict_value_t val = {GUST_SHDICT_STRING, 0, v, vlen, 0};
    return gust_shdict_set(d, k, strlen(k), &val, ttl, mode);
}

static int set_num(gust_shdict_t *d, const char *k, double n, double ttl, int mode) {
    gust_shdict_value_t val = {GUST_SHDICT_NUMBER, n, NULL, 0, 0};
    return gust_shdict_set(d, k, strlen(k), &val, ttl, mode);
}

static int get(gust_shdict_t *d, const char *k, gust_shdict_value_t *v, gust_buf_t *b) {
    return gust_shdict_get(d, k, strlen(k), v, b);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int shm_exists(const char *shm_name) {
    char path[512];
    snprintf(path, sizeof path, "/dev/shm%s", shm_name);
    return access(path, F_OK) == 0;
}

/* Waits for a child; its exit status, or 128 + signal. */
static int reap(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- the tests -------------------------------------------------------- */

static void test_values(void) {
    gust_shdict_t *d = open_dict("values", 256 * 1024);
    if (!d)
        return;
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    gust_shdict_value_t v;

    CHECK_INT(get(d, "nope", &v, &b), GUST_SHDICT_ENOTFOUND);
    CHECK_INT(set_str(d, "s", "hello", 5, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(get(d, "s", &v, &b), 0);
    CHECK_INT(v.type, GUST_SHDICT_STRING);
    CHECK(v.len == 5 && memcmp(v.str, "hello", 5) == 0);
    CHECK_INT(set_str(d, "empty", "", 0, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(get(d, "empty", &v, &b), 0);
    CHECK(v.type == GUST_SHDICT_STRING && v.len == 0);
    /* binary-safe keys and values */
    gust_shdict_value_t bin = {GUST_SHDICT_STRING, 0, "a\0b", 3, 7};
    CHECK_INT(gust_shdict_set(d, "k\0z", 3, &bin, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(gust_shdict_get(d, "k\0z", 3, &v, &b), 0);
    CHECK(v.len == 3 && memcmp(v.str, "a\0b", 3) == 0 && v.flags == 7);
    CHECK_INT(gust_shdict_get(d, "k\0y", 3, &v, &b), GUST_SHDICT_ENOTFOUND);
    /* keys of 1 to 65535 bytes */
    static char longkey[GUST_SHDICT_KEY_MAX + 1];
    memset(longkey, 'k', sizeof longkey);
    CHECK_INT(gust_shdict_set(d, longkey, GUST_SHDICT_KEY_MAX, &bin, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(gust_shdict_get(d, longkey, GUST_SHDICT_KEY_MAX, &v, &b), 0);
    CHECK_INT(gust_shdict_delete(d, longkey, GUST_SHDICT_KEY_MAX), 0);
    CHECK_INT(gust_shdict_set(d, longkey, sizeof longkey, &bin, 0, GUST_SHDICT_SET),
              GUST_SHDICT_EKEY);
    CHECK_INT(gust_shdict_set(d, "", 0, &bin, 0, GUST_SHDICT_SET), GUST_SHDICT_EKEY);
    double o;
    CHECK_INT(gust_shdict_incr(d, longkey, sizeof longkey, 1, NULL, 0, &o), GUST_SHDICT_EKEY);
    CHECK_INT(gust_shdict_get(d, longkey, sizeof longkey, &v, &b), GUST_SHDICT_ENOTFOUND);

    CHECK_INT(set_num(d, "n", 2.5, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(get(d, "n", &v, &b), 0);
    CHECK(v.type == GUST_SHDICT_NUMBER && v.num == 2.5 && v.flags == 0);
    gust_shdict_value_t t = {GUST_SHDICT_BOOLEAN, 1, NULL, 0, 0};
    CHECK_INT(gust_shdict_set(d, "b", 1, &t, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(get(d, "b", &v, &b), 0);
    CHECK(v.type == GUST_SHDICT_BOOLEAN && v.num == 1);
    t.num = 0;
    CHECK_INT(gust_shdict_set(d, "b", 1, &t, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(get(d, "b", &v, &b), 0);
    CHECK(v.type == GUST_SHDICT_BOOLEAN && v.num == 0);

    /* overwrite with a longer, then a shorter value: the type changes too */
    char big[3000];
    memset(big, 'x', sizeof big);
    CHECK_INT(set_str(d, "n", big, sizeof big, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(get(d, "n", &v, &b), 0);
    CHECK(v.type == GUST_SHDICT_STRING && v.len == sizeof big && v.str[2999] == 'x');
    CHECK_INT(set_num(d, "n", 7, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(get(d, "n", &v, &b), 0);
    CHECK(v.type == GUST_SHDICT_NUMBER && v.num == 7);

    /* add / replace */
    CHECK_INT(set_num(d, "n", 1, 0, GUST_SHDICT_ADD), GUST_SHDICT_EEXISTS);
    CHECK_INT(set_num(d, "fresh", 1, 0, GUST_SHDICT_ADD), 0);
    CHECK_INT(set_num(d, "absent", 1, 0, GUST_SHDICT_REPLACE), GUST_SHDICT_ENOTFOUND);
    CHECK_INT(get(d, "absent", &v, &b), GUST_SHDICT_ENOTFOUND);
    CHECK_INT(set_num(d, "fresh", 9, 0, GUST_SHDICT_REPLACE), 0);
    CHECK_INT(get(d, "fresh", &v, &b), 0);
    CHECK(v.num == 9);

    /* incr */
    double out = 0, init = 10;
    CHECK_INT(gust_shdict_incr(d, "c", 1, 1, NULL, 0, &out), GUST_SHDICT_ENOTFOUND);
    CHECK_INT(gust_shdict_incr(d, "c", 1, 5, &init, 0, &out), 0);
    CHECK(out == 15);
    CHECK_INT(gust_shdict_incr(d, "c", 1, -0.5, &init, 0, &out), 0);
    CHECK(out == 14.5);
    CHECK_INT(gust_shdict_incr(d, "s", 1, 1, &init, 0, &out), GUST_SHDICT_ENOTNUM);

    /* delete, keys, flush */
    size_t before = gust_shdict_count(d);
    CHECK_INT(gust_shdict_delete(d, "s", 1), 0);
    CHECK_INT(gust_shdict_delete(d, "s", 1), 0); /* absent: fine */
    CHECK_INT(get(d, "s", &v, &b), GUST_SHDICT_ENOTFOUND);
    CHECK_INT(gust_shdict_count(d), before - 1);
    gust_shdict_value_t nil = {GUST_SHDICT_NIL, 0, NULL, 0, 0};
    CHECK_INT(gust_shdict_set(d, "c", 1, &nil, 0, GUST_SHDICT_SET), 0); /* set nil deletes */
    CHECK_INT(get(d, "c", &v, &b), GUST_SHDICT_ENOTFOUND);
    b.len = 0;
    long nk = gust_shdict_keys(d, 0, &b);
    CHECK_INT(nk, gust_shdict_count(d));
    int saw_fresh = 0;
    const char *p = b.p;
    for (long i = 0; i < nk; i++) {
        uint16_t len;
        memcpy(&len, p, 2);
        if (len == 5 && memcmp(p + 2, "fresh", 5) == 0)
            saw_fresh = 1;
        p += 2 + len;
    }
    CHECK(saw_fresh);
    b.len = 0;
    CHECK_INT(gust_shdict_keys(d, 2, &b), 2);
    CHECK_INT(gust_shdict_flush_all(d), 0);
    CHECK_INT(gust_shdict_count(d), 0);
    CHECK_INT(get(d, "fresh", &v, &b), GUST_SHDICT_ENOTFOUND);
    b.len = 0;
    CHECK_INT(gust_shdict_keys(d, 0, &b), 0);

    CHECK_INT(gust_shdict_capacity(d), 256 * 1024);
    CHECK(strcmp(gust_shdict_strerror(GUST_SHDICT_ENOMEM), "no memory") == 0);
    CHECK(strcmp(gust_shdict_strerror(GUST_SHDICT_EEXISTS), "exists") == 0);
    CHECK(strcmp(gust_shdict_strerror(GUST_SHDICT_ENOTFOUND), "not found") == 0);
    gust_buf_free(&b);
    gust_shdict_free(d);
}

static void test_full_and_free(void) {
    gust_shdict_t *d = open_dict("full", 16 * 1024);
    if (!d)
        return;
    size_t empty = gust_shdict_free_space(d);
    CHECK(empty > 12 * 1024 && empty < 16 * 1024);
    char val[1000], key[32];
    memset(val, 'v', sizeof val);
    int stored = 0, rc = 0;
    while (stored < 100) {
        snprintf(key, sizeof key, "k%d", stored);
        if ((rc = set_str(d, key, val, sizeof val, 0, GUST_SHDICT_SET)) != 0)
            break;
        stored++;
    }
    CHECK_INT(rc, GUST_SHDICT_ENOMEM);
    CHECK(stored >= 10 && stored <= 16);
    CHECK_INT(gust_shdict_count(d), stored);
    /* a failed add, incr with init and overwrite by a bigger value say so too */
    double out, init = 0;
    CHECK_INT(set_str(d, "extra", val, sizeof val, 0, GUST_SHDICT_ADD), GUST_SHDICT_ENOMEM);
    char huge[4000];
    memset(huge, 'h', sizeof huge);
    /* k0 is removed to make room, and still does not fit: left absent */
    gust_shdict_value_t v;
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    int rc_big = set_str(d, "k0", huge, sizeof huge, 0, GUST_SHDICT_SET);
    CHECK_INT(rc_big, GUST_SHDICT_ENOMEM);
    CHECK_INT(get(d, "k0", &v, &b), GUST_SHDICT_ENOTFOUND);
    (void)init;
    (void)out;

    /* delete frees space: a new value fits again */
    CHECK_INT(gust_shdict_delete(d, "k1", 2), 0);
    CHECK_INT(set_str(d, "again", val, sizeof val, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(get(d, "again", &v, &b), 0);
    CHECK(v.len == sizeof val);

    /* empty it by deletes: neighbours coalesce back into the whole heap,
     * so one value nearly the size of the dict fits */
    for (int i = 0; i < stored; i++) {
        snprintf(key, sizeof key, "k%d", i);
        gust_shdict_delete(d, key, strlen(key));
    }
    gust_shdict_delete(d, "again", 5);
    CHECK_INT(gust_shdict_count(d), 0);
    CHECK_INT(gust_shdict_free_space(d), empty);
    size_t most = empty - 8 - 64 - 8;
    char *whole = malloc(most);
    memset(whole, 'w', most);
    CHECK_INT(set_str(d, "whole", whole, most, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(set_num(d, "n", 1, 0, GUST_SHDICT_SET), GUST_SHDICT_ENOMEM);
    CHECK_INT(set_str(d, "whole", "x", 1, 0, GUST_SHDICT_SET), 0); /* shrinks in place */
    CHECK_INT(set_num(d, "n", 1, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(gust_shdict_incr(d, "m", 1, 1, &init, 0, &out), 0);
    gust_shdict_flush_all(d);
    CHECK_INT(gust_shdict_free_space(d), empty);
    free(whole);
    gust_buf_free(&b);
    gust_shdict_free(d);
}

/* Random sets, overwrites, deletes and incrs against a model: values must
 * always read back as the model says, and an emptied dict has all its
 * space back in one piece. */
static void test_allocator_model(void) {
    enum { NKEYS = 300, OPS = 60000 };
    gust_shdict_t *d = open_dict("model", 256 * 1024);
    if (!d)
        return;
    size_t empty = gust_shdict_free_space(d);
    static size_t model_len[NKEYS]; /* 0: absent; else length + 1 */
    static char model_ch[NKEYS];
    static char buf[4096];
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    unsigned seed = 12345;
    int mismatches = 0, nomem = 0;
    for (int op = 0; op < OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % NKEYS), what = (int)((seed >> 20) % 10);
        char key[16];
        snprintf(key, sizeof key, "key:%d", k);
        if (what < 6) {
            /* mostly small values, a few big ones */
            size_t len = (seed >> 4) % 16 == 0 ? (seed >> 12) % 4000 : (seed >> 12) % 120;
            char ch = (char)('a' + op % 26);
            memset(buf, ch, len);
            int rc = set_str(d, key, buf, len, 0, GUST_SHDICT_SET);
            if (rc == 0) {
                model_len[k] = len + 1;
                model_ch[k] = ch;
            } else {
                nomem++;
                model_len[k] = 0; /* a failed set leaves the key absent */
            }
        } else if (what < 8) {
            gust_shdict_delete(d, key, strlen(key));
            model_len[k] = 0;
        } else {
            gust_shdict_value_t v;
            int rc = get(d, key, &v, &b);
            if (model_len[k] == 0) {
                mismatches += rc != GUST_SHDICT_ENOTFOUND;
            } else if (rc != 0 || v.len != model_len[k] - 1 ||
                       (v.len && (v.str[0] != model_ch[k] || v.str[v.len - 1] != model_ch[k]))) {
                mismatches++;
            }
        }
    }
    CHECK_INT(mismatches, 0);
    size_t live = 0;
    for (int k = 0; k < NKEYS; k++)
        live += model_len[k] != 0;
    CHECK_INT(gust_shdict_count(d), live);
    for (int k = 0; k < NKEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "key:%d", k);
        gust_shdict_delete(d, key, strlen(key));
    }
    CHECK_INT(gust_shdict_count(d), 0);
    CHECK_INT(gust_shdict_free_space(d), empty);
    (void)nomem;
    gust_buf_free(&b);
    gust_shdict_free(d);
}

static void test_ttl(void) {
    gust_shdict_t *d = open_dict("ttl", 32 * 1024);
    if (!d)
        return;
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    gust_shdict_value_t v;
    double ttl = -1, out, init = 0;
    CHECK_INT(set_str(d, "short", "x", 1, 0.05, GUST_SHDICT_SET), 0);
    CHECK_INT(set_str(d, "forever", "y", 1, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(gust_shdict_incr(d, "ctr", 3, 1, &init, 0.05, &out), 0);
    CHECK_INT(gust_shdict_ttl(d, "short", 5, &ttl), 0);
    CHECK(ttl > 0 && ttl <= 0.05);
    CHECK_INT(gust_shdict_ttl(d, "forever", 7, &ttl), 0);
    CHECK(ttl == 0);
    CHECK_INT(gust_shdict_ttl(d, "nope", 4, &ttl), GUST_SHDICT_ENOTFOUND);
    CHECK_INT(get(d, "short", &v, &b), 0);
    CHECK_INT(gust_shdict_expire(d, "forever", 7, 10), 0);
    CHECK_INT(gust_shdict_ttl(d, "forever", 7, &ttl), 0);
    CHECK(ttl > 9.9 && ttl <= 10);
    CHECK_INT(gust_shdict_expire(d, "forever", 7, 0), 0);
    CHECK_INT(gust_shdict_ttl(d, "forever", 7, &ttl), 0);
    CHECK(ttl == 0);
    CHECK_INT(gust_shdict_expire(d, "nope", 4, 1), GUST_SHDICT_ENOTFOUND);
    /* incr keeps the entry's expiry */
    CHECK_INT(gust_shdict_incr(d, "ctr", 3, 1, NULL, 0, &out), 0);
    CHECK(out == 2);
    sleep_ms(80);
    CHECK_INT(get(d, "short", &v, &b), GUST_SHDICT_ENOTFOUND);
    CHECK_INT(gust_shdict_incr(d, "ctr", 3, 1, NULL, 0, &out), GUST_SHDICT_ENOTFOUND);
    CHECK_INT(get(d, "forever", &v, &b), 0);
    /* an expired key can be added again */
    CHECK_INT(set_str(d, "short", "z", 1, 0, GUST_SHDICT_ADD), 0);

    /* expired entries not yet touched: keys() skips them, flush_expired
     * frees them */
    char key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "e%d", i);
        set_num(d, key, i, 0.02, GUST_SHDICT_SET);
    }
    size_t n_before = gust_shdict_count(d);
    sleep_ms(40);
    b.len = 0;
    CHECK_INT(gust_shdict_keys(d, 0, &b), 2); /* short, forever */
    CHECK_INT(gust_shdict_count(d), n_before);
    CHECK_INT(gust_shdict_flush_expired(d, 5), 5);
    CHECK_INT(gust_shdict_flush_expired(d, 0), 15);
    CHECK_INT(gust_shdict_count(d), 2);

    /* a full dict of expired entries makes room for a set by itself */
    gust_shdict_flush_all(d);
    char val[1000];
    memset(val, 'q', sizeof val);
    int i = 0;
    for (; i < 100; i++) {
        snprintf(key, sizeof key, "x%d", i);
        if (set_str(d, key, val, sizeof val, 0.02, GUST_SHDICT_SET) != 0)
            break;
    }
    CHECK(i > 10 && i < 100);
    CHECK_INT(set_str(d, "late", val, sizeof val, 0, GUST_SHDICT_SET), GUST_SHDICT_ENOMEM);
    sleep_ms(40);
    CHECK_INT(set_str(d, "late", val, sizeof val, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(gust_shdict_count(d), 1);
    gust_buf_free(&b);
    gust_shdict_free(d);
}

/* Children each add 1 N times, some through the mapping they inherited,
 * some through their own, while also churning the allocator. */
static void test_incr_across_processes(void) {
    enum { NCHILD = 4, N = 50000 };
    gust_shdict_t *d = open_dict("incr", 1024 * 1024);
    if (!d)
        return;
    char name[64];
    snprintf(name, sizeof name, "%s", gust_shdict_name(d));
    pid_t owner = getpid();
    pid_t kids[NCHILD];
    for (int c = 0; c < NCHILD; c++) {
        kids[c] = fork();
        if (kids[c] == 0) {
            gust_shdict_t *mine = d;
            if (c % 2) { /* attach anew, as a worker does */
                char err[256];
                mine = gust_shdict_new(owner, name, 4096 * 4, err, sizeof err);
                if (!mine)
                    _exit(2);
                if (gust_shdict_capacity(mine) != 1024 * 1024) /* the existing size wins */
                    _exit(3);
            }
            double out, zero = 0;
            char key[32], val[200];
            memset(val, 'c', sizeof val);
            for (int i = 0; i < N; i++) {
                if (gust_shdict_incr(mine, "hits", 4, 1, &zero, 0, &out) != 0)
                    _exit(4);
                if (i % 10 == 0) {
                    snprintf(key, sizeof key, "c%d-%d", c, i % 500);
                    gust_shdict_value_t v = {GUST_SHDICT_STRING, 0, val, (size_t)(i % 200), 0};
                    gust_shdict_set(mine, key, strlen(key), &v, 0, GUST_SHDICT_SET);
                    if (i % 20 == 0)
                        gust_shdict_delete(mine, key, strlen(key));
                }
            }
            if (mine != d)
                gust_shdict_free(mine); /* not the owner: must not unlink */
            _exit(0);
        }
    }
    int bad = 0;
    for (int c = 0; c < NCHILD; c++)
        bad += reap(kids[c]) != 0;
    CHECK_INT(bad, 0);
    CHECK(shm_exists(gust_shdict_shm_name(d)));
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    gust_shdict_value_t v;
    CHECK_INT(get(d, "hits", &v, &b), 0);
    CHECK_INT(v.num, NCHILD * N);
    uint64_t taken, resets;
    gust_shdict_recoveries(d, &taken, &resets);
    CHECK_INT(taken, 0);
    gust_buf_free(&b);
    gust_shdict_free(d);
}

static void test_robust_lock(void) {
    gust_shdict_t *d = open_dict("robust", 64 * 1024);
    if (!d)
        return;
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    gust_shdict_value_t v;
    uint64_t taken, resets;
    set_num(d, "kept", 42, 0, GUST_SHDICT_SET);

    /* dies holding the lock between writes: the data is trusted */
    pid_t pid = fork();
    if (pid == 0) {
        gust_shdict__lock(d, 0);
        _exit(0);
    }
    CHECK_INT(reap(pid), 0);
    CHECK_INT(get(d, "kept", &v, &b), 0);
    CHECK(v.num == 42);
    gust_shdict_recoveries(d, &taken, &resets);
    CHECK_INT(taken, 1);
    CHECK_INT(resets, 0);

    /* dies in the middle of a write: the contents are reset */
    pid = fork();
    if (pid == 0) {
        gust_shdict__lock(d, 1);
        raise(SIGKILL);
    }
    CHECK_INT(reap(pid), 128 + SIGKILL);
    fprintf(stderr, "(the reset message below is expected)\n");
    CHECK_INT(get(d, "kept", &v, &b), GUST_SHDICT_ENOTFOUND);
    gust_shdict_recoveries(d, &taken, &resets);
    CHECK_INT(taken, 2);
    CHECK_INT(resets, 1);
    CHECK_INT(set_num(d, "after", 1, 0, GUST_SHDICT_SET), 0);
    CHECK_INT(gust_shdict_count(d), 1);

    /* SIGKILLed at a random point of a busy loop: whatever happened, the
     * dict goes on working and stays consistent */
    for (int round = 0; round < 5; round++) {
        pid = fork();
        if (pid == 0) {
            double out, zero = 0;
            char key[16];
            for (unsigned i = 0;; i++) {
                snprintf(key, sizeof key, "r%u", i % 64);
                gust_shdict_incr(d, "spin", 4, 1, &zero, 0, &out);
                gust_shdict_value_t sv = {GUST_SHDICT_STRING, 0, "0123456789", i % 10, 0};
                gust_shdict_set(d, key, strlen(key), &sv, 0, GUST_SHDICT_SET);
                if (i % 3 == 0)
                    gust_shdict_delete(d, key, strlen(key));
            }
        }
        sleep_ms(20 + round * 7);
        kill(pid, SIGKILL);
        CHECK_INT(reap(pid), 128 + SIGKILL);
        double out, zero = 0;
        CHECK_INT(gust_shdict_incr(d, "spin", 4, 1, &zero, 0, &out), 0);
        CHECK_INT(set_num(d, "after", 2, 0, GUST_SHDICT_SET), 0);
        CHECK_INT(get(d, "after", &v, &b), 0);
    }
    gust_shdict_flush_all(d);
    CHECK_INT(gust_shdict_count(d), 0);
    gust_buf_free(&b);
    gust_shdict_free(d);
}

static void test_segments(void) {
    char err[256], name[64];
    snprintf(name, sizeof name, "test-%ld-seg", (long)getpid());
    /* bad names and sizes */
    CHECK(gust_shdict_new(getpid(), "", 65536, err, sizeof err) == NULL);
    CHECK(gust_shdict_new(getpid(), "a/b", 65536, err, sizeof err) == NULL);
    CHECK(strstr(err, "bad shared dict name") != NULL);
    CHECK(gust_shdict_new(getpid(), "a b", 65536, err, sizeof err) == NULL);
    CHECK(gust_shdict_new(getpid(), name, 4096, err, sizeof err) == NULL);
    CHECK(gust_shdict_new(getpid(), name, GUST_SHDICT_MAX_SIZE + 1, err, sizeof err) == NULL);
    CHECK(gust_shdict_name_ok("cache.v2_x-1"));

    /* one name, two servers (owners): two dicts */
    gust_shdict_t *a = gust_shdict_new(getpid(), name, 10000, err, sizeof err);
    gust_shdict_t *other = gust_shdict_new(getppid(), name, 65536, err, sizeof err);
    CHECK(a && other);
    if (!a || !other)
        return;
    CHECK_INT(gust_shdict_capacity(a), 12288); /* rounded up to pages */
    CHECK(strcmp(gust_shdict_shm_name(a), gust_shdict_shm_name(other)) != 0);
    set_num(a, "k", 1, 0, GUST_SHDICT_SET);
    gust_buf_t b;
    gust_buf_init(&b, NULL, 0);
    gust_shdict_value_t v;
    CHECK_INT(get(other, "k", &v, &b), GUST_SHDICT_ENOTFOUND);
    /* the same owner again: the same dict, at its size */
    gust_shdict_t *a2 = gust_shdict_new(getpid(), name, 1 << 20, err, sizeof err);
    CHECK(a2 != NULL);
    if (a2) {
        CHECK_INT(gust_shdict_capacity(a2), 12288);
        CHECK_INT(get(a2, "k", &v, &b), 0);
        gust_shdict_free(a2); /* it attached: does not remove the segment */
    }
    CHECK(shm_exists(gust_shdict_shm_name(a)));

    /* the owner's cleanup removes its segments, and only its */
    char other_shm[256];
    snprintf(other_shm, sizeof other_shm, "%s", gust_shdict_shm_name(other));
    CHECK(shm_exists(other_shm));
    gust_shdict_free(other); /* not the owner: unmaps only */
    CHECK(shm_exists(other_shm));
    CHECK_INT(gust_shdict_cleanup_all(getppid()), 1);
    CHECK(!shm_exists(other_shm));
    CHECK(shm_exists(gust_shdict_shm_name(a)));

    /* the owner's own handle removes what it created */
    char a_shm[256];
    snprintf(a_shm, sizeof a_shm, "%s", gust_shdict_shm_name(a));
    gust_shdict_free(a);
    CHECK(!shm_exists(a_shm));

    /* the owner: $GUST_MASTER_PID when it is our parent, else ourselves */
    unsetenv(GUST_SHDICT_OWNER_ENV);
    CHECK_INT(gust_shdict_owner(), getpid());
    gust_shdict_set_owner_env(getppid());
    CHECK_INT(gust_shdict_owner(), getppid());
    gust_shdict_set_owner_env(1234567);
    CHECK_INT(gust_shdict_owner(), getpid());
    unsetenv(GUST_SHDICT_OWNER_ENV);
    gust_shdict_free(NULL);
    gust_buf_free(&b);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0); /* keep the order with stderr */
    RUN(test_values);
    RUN(test_full_and_free);
    RUN(test_allocator_model);
    RUN(test_ttl);
    RUN(test_incr_across_processes);
    RUN(test_robust_lock);
    RUN(test_segments);
    return check_report("test_shdict");
}
