/*
 * http_client.c -- HTTP/1.1 client connections and response parsing
 * (placeholder until the client lands).
 */
#include "server.h"
