/*
 * mem.c -- allocation wrappers that abort on OOM, and gust_buf_t.
 */
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n) {
    fprintf(stderr, "gust: out of memory allocating %zu bytes\n", n);
    abort();
}

void *gust_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *gust_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *gust_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *gust_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(gust_malloc(n), s, n);
}

void gust_free(void *p) { free(p); }

void gust_buf_init(gust_buf_t *b, char *storage, size_t cap) {
    b->p = b->fixed = storage;
    b->len = 0;
    b->cap = b->fixed_cap = storage ? cap : 0;
}

void gust_buf_grow(gust_buf_t *b, size_t extra) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap - b->len < extra)
        cap *= 2;
    if (b->p == b->fixed) {
        char *p = gust_malloc(cap);
        if (b->len)
            memcpy(p, b->p, b->len);
        b->p = p;
    } else {
        b->p = gust_realloc(b->p, cap);
    }
    b->cap = cap;
}

void gust_buf_free(gust_buf_t *b) {
    if (b->p != b->fixed)
        free(b->p);
    gust_buf_init(b, b->fixed, b->fixed_cap);
}

#define NAME_BYTE(c)                                                                               \
    ((uint16_t)(((c) >= 'A' && (c) <= 'Z' ? (c) | 0x20 : (c)) |                                    \
                ((c) == ' ' || (c) == '\t' ? GUST_NAME_WS : 0)))
#define NAME_4(c) NAME_BYTE(c), NAME_BYTE((c) + 1), NAME_BYTE((c) + 2), NAME_BYTE((c) + 3)
#define NAME_16(c) NAME_4(c), NAME_4((c) + 4), NAME_4((c) + 8), NAME_4((c) + 12)
#define NAME_64(c) NAME_16(c), NAME_16((c) + 16), NAME_16((c) + 32), NAME_16((c) + 48)
const uint16_t gust_name_bytes[256] = {NAME_64(0), NAME_64(64), NAME_64(128), NAME_64(192)};

void gust_arena_grow(char **arena, size_t len, size_t *cap, size_t n) {
    size_t c = *cap ? *cap : 512;
    while (c - len < n)
        c *= 2;
    *arena = gust_realloc(*arena, c);
    *cap = c;
}
