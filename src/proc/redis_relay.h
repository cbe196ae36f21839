/*
 * redis_relay.h -- the master's bridge from its workers' pubsub bus to Redis
 * pub/sub, behind --redis (redis_relay.c, DESIGN §4.9).
 *
 * The master holds the connections (one to PUBLISH, one subscribed), not
 * the workers: it already sees every message of every worker, so a server
 * costs Redis two connections whatever its worker count, each message
 * crosses to Redis once per server and comes back once per server, and the
 * connections outlive reloads and worker crashes.
 */
#ifndef GUST_REDIS_RELAY_H
#define GUST_REDIS_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "core/redis_url.h"

typedef struct gust_relay gust_relay_t;

/* A message from another server (or any other Redis client) for `channel`. */
typedef void (*gust_relay_deliver_cb)(const char *channel, size_t clen, const char *msg,
                                      size_t mlen, void *arg);

/* Starts connecting (never blocks on a refused or silent server; a host
 * name is resolved by the system's resolver). Messages lost on the way are
 * added to *dropped (shared memory, atomically). `log_info`: say when
 * the connection is up. Never NULL. */
gust_relay_t *gust_relay_new(struct event_base *base, const gust_redis_url_t *url,
                             uint64_t *dropped, int log_info, gust_relay_deliver_cb deliver,
                             void *arg);
/* Publishes a worker's message to the other servers: dropped and counted
 * when Redis is unreachable or too far behind. */
void gust_relay_publish(gust_relay_t *r, const char *channel, size_t clen, const char *msg,
                        size_t mlen);
/* In a forked worker: closes the inherited sockets, frees nothing. */
void gust_relay_forget(gust_relay_t *r);
void gust_relay_free(gust_relay_t *r);

#endif
