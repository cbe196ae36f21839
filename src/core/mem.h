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
#include <stdint.h>
#include <string.h>

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
void gust_buf_grow(gust_buf_t *b, size_t extra);
void gust_buf_free(gust_buf_t *b);

/* Inline: a response head is a dozen of these, nearly always with room. */
static inline void gust_buf_reserve(gust_buf_t *b, size_t extra) {
    if (b->cap - b->len < extra)
        gust_buf_grow(b, extra);
}

static inline void gust_buf_add(gust_buf_t *b, const void *data, size_t len) {
    if (b->cap - b->len < len)
        gust_buf_grow(b, len);
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static inline void gust_buf_addc(gust_buf_t *b, char c) {
    if (b->len == b->cap)
        gust_buf_grow(b, 1);
    b->p[b->len++] = c;
}

#define gust_buf_addlit(b, s) gust_buf_add((b), (s), sizeof(s) - 1)

/* Makes room for n more bytes in a parser's arena (grown by doubling). */
void gust_arena_grow(char **arena, size_t len, size_t *cap, size_t n);

/* A header name byte: lower-cased in the low byte, GUST_NAME_WS if it is a
 * space or a tab (RFC 9112 §5.1 allows none in a field name, and llhttp
 * refuses it only for the fields it interprets itself). */
#define GUST_NAME_WS 0x100
extern const uint16_t gust_name_bytes[256];

/* Appends n bytes to a parser's arena, lower-cased when `lower` is set
 * (header names: one table look-up per byte). Inline: a request head is a
 * dozen. @return GUST_NAME_WS if lower-cased bytes held whitespace, else 0 */
static inline unsigned gust_arena_append(char **arena, size_t *len, size_t *cap, const char *at,
                                         size_t n, int lower) {
    if (*cap - *len < n)
        gust_arena_grow(arena, *len, cap, n);
    char *dst = *arena + *len;
    unsigned seen = 0;
    if (lower) {
        for (size_t i = 0; i < n; i++) {
            unsigned v = gust_name_bytes[(unsigned char)at[i]];
            dst[i] = (char)v;
            seen |= v;
        }
    } else {
        memcpy(dst, at, n);
    }
    *len += n;
    return seen & GUST_NAME_WS;
}

#endif
