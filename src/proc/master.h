/*
 * master.h -- the master/worker process model behind the gust command.
 */
#ifndef GUST_MASTER_H
#define GUST_MASTER_H

#include "gust.h"
#include "core/metrics.h"
#include "core/redis_url.h"

typedef struct gust_master_opts {
    gust_config_t cfg;
    const char *app;
    int workers;                   /* >= 1 */
    int reload;                    /* watch the app's directory */
    const gust_redis_url_t *redis; /* --redis: pubsub across servers, or NULL */
} gust_master_opts_t;

/* Binds, forks the workers and supervises them until stopped.
 * @return the process exit status: 0 after a clean stop, 1 when the app
 *         cannot start */
int gust_master_run(const gust_master_opts_t *o);

/* A worker's life: load the app, serve `listen_fd`, say 'A' (or 'S' for a
 * script with its own listeners) on `ready_fd`, run until SIGTERM drains it.
 * @return the worker's exit status */
int gust_worker_run(const gust_master_opts_t *o, int listen_fd, int ready_fd,
                    gust_metrics_t *metrics, int slot, int bus_fd);

#endif
