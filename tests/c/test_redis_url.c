/*
 * test_redis_url.c -- unit tests for src/core/redis_url.c, the parser behind
 * --redis and gust.redis.connect(url): every part of a URL, the defaults,
 * escapes, and each malformed form answered with -1 and a reason.
 */
#include <stdio.h>
#include <string.h>

#include "redis_url.h"

#include "check.h"

static gust_redis_url_t parse_ok(const char *url) {
    gust_redis_url_t u;
    char err[256] = "";
    if (gust_redis_url_parse(url, &u, err, sizeof err) != 0)
        check_fail(__FILE__, __LINE__, "%s: %s", url, err);
    return u;
}

static void test_host_port_db(void) {
    gust_redis_url_t u = parse_ok("redis://127.0.0.1");
    CHECK_STR(u.host, "127.0.0.1");
    CHECK_INT(u.port, 6379);
    CHECK_INT(u.db, 0);
    CHECK_STR(u.password, "");
    CHECK_STR(u.path, "");
    u = parse_ok("redis://localhost:6380/3");
    CHECK_STR(u.host, "localhost");
    CHECK_INT(u.port, 6380);
    CHECK_INT(u.db, 3);
    u = parse_ok("redis://[::1]:7000/");
    CHECK_STR(u.host, "::1");
    CHECK_INT(u.port, 7000);
    CHECK_INT(u.db, 0);
    u = parse_ok("redis://redis-1.example.com/15");
    CHECK_STR(u.host, "redis-1.example.com");
    CHECK_INT(u.db, 15);
}

static void test_password(void) {
    gust_redis_url_t u = parse_ok("redis://:s3cret@127.0.0.1:6390/2");
    CHECK_STR(u.user, "");
    CHECK_STR(u.password, "s3cret");
    CHECK_STR(u.host, "127.0.0.1");
    CHECK_INT(u.port, 6390);
    CHECK_INT(u.db, 2);
    u = parse_ok("redis://app:p%40ss%2Fw%3Ard@h");
    CHECK_STR(u.user, "app");
    CHECK_STR(u.password, "p@ss/w:rd");
    CHECK_STR(u.host, "h");
}

static void test_unix(void) {
    gust_redis_url_t u = parse_ok("unix:///run/redis/redis.sock");
    CHECK_STR(u.path, "/run/redis/redis.sock");
    CHECK_STR(u.host, "");
    char where[300];
    CHECK_STR(gust_redis_url_where(&u, where, sizeof where), "/run/redis/redis.sock");
    u = parse_ok("redis://:pw@[::1]:1/0");
    CHECK_STR(gust_redis_url_where(&u, where, sizeof where), "[::1]:1");
}

static void test_malformed(void) {
    static const char *const bad[] = {
        "",
        "127.0.0.1:6379",
        "http://127.0.0.1",
        "redis://",
        "redis://:6379",
        "redis://host:",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:12ab",
        "redis://host/x",
        "redis://host/1/2",
        "redis://host?db=1",
        "redis://pw@host",
        "redis://:@host",
        "redis://:%4@host",
        "redis://:%00@host",
        "redis://ho st",
        "redis://ho$t",
        "redis://[::1",
        "redis://[]:1",
        "unix://",
        "unix://relative.sock",
        "unix:///",
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        gust_redis_url_t u;
        char err[256] = "";
        int rc = gust_redis_url_parse(bad[i], &u, err, sizeof err);
        if (rc != -1 || !err[0])
            check_fail(__FILE__, __LINE__, "accepted %s", bad[i]);
        else
            npass++;
        CHECK(strchr(err, '\n') == NULL);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    RUN(test_host_port_db);
    RUN(test_password);
    RUN(test_unix);
    RUN(test_malformed);
    return check_report("test_redis_url");
}
