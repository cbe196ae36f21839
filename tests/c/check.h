/*
 * check.h -- the C unit tests' tiny check framework: CHECK* macros count
 * passes and failures (a failure prints where and why and the run goes on),
 * RUN names the test in progress, check_report() prints "N passed, N failed"
 * and gives the exit status. Included once per test program.
 */
#ifndef GUST_TEST_CHECK_H
#define GUST_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int npass, nfail;
static const char *current_test = "?";

static void check_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    nfail++;
    fprintf(stderr, "FAIL %s (%s:%d): ", current_test, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond)                                                                                  \
            npass++;                                                                               \
        else                                                                                       \
            check_fail(__FILE__, __LINE__, "%s", #cond);                                           \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ == b_)                                                                              \
            npass++;                                                                               \
        else                                                                                       \
            check_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);              \
    } while (0)

/* A (pointer, length) span equals a NUL-terminated literal. */
#define CHECK_SPAN(p, n, lit)                                                                      \
    do {                                                                                           \
        const char *p_ = (p), *l_ = (lit);                                                         \
        size_t n_ = (n), m_ = strlen(l_);                                                          \
        if (p_ && n_ == m_ && memcmp(p_, l_, m_) == 0)                                             \
            npass++;                                                                               \
        else                                                                                       \
            check_fail(__FILE__, __LINE__, "%s: \"%.*s\" != \"%s\"", #p, p_ ? (int)n_ : 6,         \
                       p_ ? p_ : "(null)", l_);                                                    \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ && b_ && strcmp(a_, b_) == 0)                                                       \
            npass++;                                                                               \
        else                                                                                       \
            check_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                   \
                       a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                    \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        current_test = #fn;                                                                        \
        fn();                                                                                      \
    } while (0)

/* Prints the closing line; returns the process exit status. */
static inline int check_report(const char *program) {
    printf("%s: %d passed, %d failed\n", program, npass, nfail);
    return nfail ? 1 : 0;
}

#endif
