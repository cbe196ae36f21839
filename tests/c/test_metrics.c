/*
 * test_metrics.c -- unit tests for src/core/metrics.c: each worker counts
 * its requests in its own slot, /metrics shows them summed over every slot
 * a worker has had, and a slot's counts outlive its worker (the next one in
 * the slot adds on), in shared memory as in a private copy. The gauges of
 * open connections are summed the same way.
 */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#include "check.h"

/* The value of the exposition line that starts with `name` (whole line
 * prefix up to the value), or -1. */
static long long value(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return atoll(p + n + 1);
    return -1;
}

static void test_summed_over_slots(int shared) {
    gust_metrics_t *m = gust_metrics_new(shared);
    CHECK(m != NULL);
    gust_metrics_request(m, 0, 200, 0.0004); /* a core without a master: slot 0 */
    gust_metrics_slot_used(m, 3);            /* a worker in slot 3 */
    gust_metrics_request(m, 3, 200, 0.002);
    gust_metrics_request(m, 3, 404, 0.2);
    gust_metrics_slot_used(m, 1); /* a lower slot later: the high-water mark stays */
    gust_metrics_request(m, 1, 200, 3);
    GUST_METRICS_BUMP(m->slot[0].connections_open, 2); /* gauges: each worker its own */
    GUST_METRICS_BUMP(m->slot[3].connections_open, 3);
    GUST_METRICS_BUMP(m->slot[3].connections_open, -1);
    GUST_METRICS_BUMP(m->slot[3].websockets_open, 1);
    size_t len;
    char *body = gust_metrics_render(m, &len); /* len bytes, not NUL-terminated */
    CHECK(body != NULL && len > 0);
    char *text = malloc(len + 1);
    memcpy(text, body, len);
    text[len] = 0;
    free(body);
    CHECK_INT(value(text, "gust_requests_total{code=\"200\"}"), 3);
    CHECK_INT(value(text, "gust_requests_total{code=\"404\"}"), 1);
    CHECK_INT(value(text, "gust_request_duration_seconds_bucket{le=\"0.001\"}"), 1);
    CHECK_INT(value(text, "gust_request_duration_seconds_bucket{le=\"0.0025\"}"), 2);
    CHECK_INT(value(text, "gust_request_duration_seconds_bucket{le=\"0.25\"}"), 3);
    CHECK_INT(value(text, "gust_request_duration_seconds_bucket{le=\"+Inf\"}"), 4);
    CHECK_INT(value(text, "gust_request_duration_seconds_count"), 4);
    CHECK_INT(value(text, "gust_connections_open"), 4);
    CHECK_INT(value(text, "gust_websocket_connections_open"), 1);
    free(text);
    gust_metrics_free(m, shared);
}

static void test_shared(void) { test_summed_over_slots(1); }
static void test_private(void) { test_summed_over_slots(0); }

int main(void) {
    RUN(test_shared);
    RUN(test_private);
    return check_report("test_metrics");
}
