/*
 * mem.h -- allocation that cannot fail, and a small growable byte buffer.
 *
 * gust_malloc and friends abort on out-of-memory, as Redis's zmalloc does:
 * a server that cannot allocate a few bytes has nothing sensible left to do.
 * Sizes chosen by a peer never reach them unchecked: every such size is
 * bounded by a named limit first (DESIGN.md §6).
 */
#ifndef GUST_MEM_H
#define GUST_MEM_H

#include <stddef.h>

void *gust_malloc(size_t n);
void *gust_calloc(size_t n, size_t size);
void *gust_realloc(void *p, size_t n);
char *gust_strdup(const char *s);
void gust_free(void *p);

/* A byte buffer that starts in caller-provided storage (often the stack) and
 * moves to the heap only when it outgrows it. */
typedef struct gust_buf {
    char *p;
    size_t len, cap;
    char *fixed; /* the initial storage, never freed */
    size_t fixed_cap;
} gust_buf_t;

void gust_buf_init(gust_buf_t *b, char *storage, size_t cap);
void gust_buf_reserve(gust_buf_t *b, size_t extra);
void gust_buf_add(gust_buf_t *b, const void *data, size_t len);
void gust_buf_free(gust_buf_t *b);

static inline void gust_buf_addc(gust_buf_t *b, char c) {
    if (b->len == b->cap)
        gust_buf_reserve(b, 1);
    b->p[b->len++] = c;
}

#define gust_buf_addlit(b, s) gust_buf_add((b), (s), sizeof(s) - 1)

/* Appends n bytes to a parser's arena (grown by doubling), lower-casing
 * ASCII letters when `lower` is set (header names). */
void gust_arena_append(char **arena, size_t *len, size_t *cap, const char *at, size_t n, int lower);

#endif
