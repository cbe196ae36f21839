/*
 * main.c -- the gust command: parse the options, load the app, listen, run
 * the loop until a signal stops it. Everything else goes through the public
 * embedding API (gust.h), exactly as a C embedder would use it.
 */
#include <errno.h>
#include <getopt.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gust.h"
#include "master.h"
#include "options.h"
#include "core/redis_url.h"

/* One option of --help: its term in a column, the summary beside it and
 * each "\n" of the summary going on under it. */
static void usage_line(FILE *f, const char *term, const char *summary) {
    enum { TERM_COLUMN = 24 };
    /* Long options alone line up with the long option of "-p, --port". */
    int n = fprintf(f, "  %s%s", term[1] == '-' ? "    " : "", term) - 2;
    fprintf(f, "%*s", n < TERM_COLUMN ? TERM_COLUMN - n : 0, "");
    for (const char *s = summary; *s; s++) {
        if (n >= TERM_COLUMN && s == summary)
            fputs("  ", f);
        fputc(*s, f);
        if (*s == '\n')
            fprintf(f, "%*s", TERM_COLUMN + 2, "");
    }
    fputc('\n', f);
}

static void usage(FILE *f) {
    fputs("usage: gust [OPTIONS] APP.lua\n", f);
#define X(term, summary, description) usage_line(f, term, summary);
    GUST_OPTIONS(X)
#undef X
}

enum {
    OPT_UNIX = 256,
    OPT_RELOAD,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_ACCESS_LOG,
    OPT_LOG_LEVEL,
    OPT_DRAIN,
    OPT_CHECK,
    OPT_REDIS,
    OPT_METRICS,
    OPT_BLOCK_WARN,
    OPT_BLOCK_KILL,
    OPT_MAX_LUA_MEMORY,
    OPT_VERSION,
    OPT_HELP
};

static const struct option options[] = {
    {"port", required_argument, NULL, 'p'},
    {"bind", required_argument, NULL, 'b'},
    {"unix", required_argument, NULL, OPT_UNIX},
    {"workers", required_argument, NULL, 'w'},
    {"reload", no_argument, NULL, OPT_RELOAD},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"check", no_argument, NULL, OPT_CHECK},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"block-warn", required_argument, NULL, OPT_BLOCK_WARN},
    {"block-kill", required_argument, NULL, OPT_BLOCK_KILL},
    {"max-lua-memory", required_argument, NULL, OPT_MAX_LUA_MEMORY},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0}};

static int parse_int(const char *s, const char *what, long lo, long hi) {
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "gust: invalid %s: %s\n", what, s);
        exit(2);
    }
    return (int)v;
}

static double parse_seconds(const char *s, const char *what) {
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= 0) || v > 1e6) {
        fprintf(stderr, "gust: invalid %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

/* "65536", "64k", "64m", "1g" (binary multiples) */
static size_t parse_size(const char *s, const char *what) {
    char *end;
    double v = strtod(s, &end);
    double unit = 1;
    switch (*end) {
    case 'k':
    case 'K':
        unit = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        unit = 1024.0 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        unit = 1024.0 * 1024 * 1024;
        end++;
        break;
    }
    if (!*s || *end || !(v > 0) || v * unit > 1e15) {
        fprintf(stderr, "gust: invalid %s: %s (bytes, or a number with k, m or g)\n", what, s);
        exit(2);
    }
    return (size_t)(v * unit);
}

/* --check: load the app in this process (it serves nothing), like nginx -t. */
static int check_app(const gust_config_t *cfg, const char *app) {
    gust_server_t *s = gust_server_new(cfg, NULL);
    if (!s) {
        fprintf(stderr, "gust: cannot create the server\n");
        return 1;
    }
    char err[4096];
    int rc = gust_load_app(s, app, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "gust: %s\n", err);
    else
        fprintf(stderr, "gust: %s: ok\n", app);
    gust_server_free(s);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    gust_config_t cfg;
    gust_config_init(&cfg);
    int check = 0, workers = 1, reload = 0, opt;
    char unix_addr[4096] = "";
    static gust_redis_url_t redis;
    int has_redis = 0;

    while ((opt = getopt_long(argc, argv, "p:b:w:", options, NULL)) != -1) {
        switch (opt) {
        case 'p':
            cfg.port = parse_int(optarg, "port", 0, 65535);
            if (cfg.port == 0)
                cfg.port = GUST_PORT_ANY;
            break;
        case 'b': cfg.bind = optarg; break;
        case OPT_UNIX: snprintf(unix_addr, sizeof unix_addr, "unix:%s", optarg); break;
        case 'w': workers = parse_int(optarg, "worker count", 0, 1024); break;
        case OPT_ACCESS_LOG: cfg.access_log = optarg; break;
        case OPT_LOG_LEVEL:
            if (strcmp(optarg, "error") && strcmp(optarg, "warn") && strcmp(optarg, "info") &&
                strcmp(optarg, "debug")) {
                fprintf(stderr, "gust: invalid log level: %s\n", optarg);
                return 2;
            }
            cfg.log_level = optarg;
            break;
        case OPT_DRAIN: cfg.drain_timeout = parse_seconds(optarg, "drain-timeout"); break;
        case OPT_BLOCK_KILL:
            cfg.block_kill = parse_seconds(optarg, "block-kill");
            if (cfg.block_kill == 0)
                cfg.block_kill = -1; /* never (0 in the config means the default) */
            break;
        case OPT_MAX_LUA_MEMORY: cfg.max_lua_memory = parse_size(optarg, "max-lua-memory"); break;
        case OPT_CHECK: check = 1; break;
        case OPT_BLOCK_WARN: cfg.block_warn_ms = parse_int(optarg, "block-warn", 0, 1000000); break;
        case OPT_RELOAD: reload = 1; break;
        case OPT_TLS_CERT: cfg.tls_cert = optarg; break;
        case OPT_TLS_KEY: cfg.tls_key = optarg; break;
        case OPT_REDIS: {
            char err[GUST_ERR_LEN];
            if (gust_redis_url_parse(optarg, &redis, err, sizeof err) != 0) {
                fprintf(stderr, "gust: invalid --redis URL: %s\n", err);
                return 2;
            }
            has_redis = 1;
            break;
        }
        case OPT_METRICS:
            if (optarg[0] != '/') {
                fprintf(stderr, "gust: --metrics takes a path such as /metrics\n");
                return 2;
            }
            cfg.metrics_path = optarg;
            break;
        case OPT_VERSION: printf("gust %s\n", GUST_VERSION); return 0;
        case OPT_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, optind == argc ? "gust: missing APP.lua\n" : "gust: one APP.lua only\n");
        usage(stderr);
        return 2;
    }
    const char *app = argv[optind];
    if (access(app, R_OK) != 0) {
        fprintf(stderr, "gust: cannot open %s: %s\n", app, strerror(errno));
        return 1;
    }
    if (*unix_addr)
        cfg.bind = unix_addr;
    if (workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 0 ? (int)n : 1;
    }
    if (cfg.tls_key && !cfg.tls_cert) {
        fprintf(stderr, "gust: --tls-key needs --tls-cert\n");
        return 2;
    }
    if (cfg.tls_cert) {
        char err[GUST_ERR_LEN];
        if (gust_tls_check(cfg.tls_cert, cfg.tls_key, err, sizeof err) != 0) {
            fprintf(stderr, "gust: %s\n", err);
            return 1;
        }
    }
    if (check)
        return check_app(&cfg, app);

    signal(SIGPIPE, SIG_IGN);
    /* A server holds a socket per client: take all the descriptors the hard
     * limit allows (the soft default, 1024, is a desktop's). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    gust_master_opts_t o = {cfg, app, workers, reload, has_redis ? &redis : NULL};
    return gust_master_run(&o);
}
