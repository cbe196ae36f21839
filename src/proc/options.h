/*
 * options.h -- gust's command-line options, written once: main.c prints
 * --help from this list, and docs/build.sh writes the OPTIONS section of
 * the man page gust(1) from it (docs/man/options.py), so the two cannot
 * disagree. Each entry is X(term, summary, description):
 *   term         the option as --help shows it ("-p, --port PORT"): the
 *                words with dashes are the option, the others its arguments
 *   summary      --help's text; a "\n" goes on under it
 *   description  the man page's paragraph, in markdown (*ARG*, **word**)
 * Only string literals, so that options.py can read them.
 */
#ifndef GUST_OPTIONS_H
#define GUST_OPTIONS_H

#define GUST_OPTIONS(X)                                                                            \
    X("-p, --port PORT", "listen port (default 8888; 0 = pick a free one)",                        \
      "Listen on TCP port *PORT* (default 8888). **0** picks a free port and the start line "      \
      "shows it.")                                                                                 \
    X("-b, --bind ADDR", "address (default 127.0.0.1; 0.0.0.0 or :: to expose)",                   \
      "Listen on address *ADDR* (default 127.0.0.1). Use 0.0.0.0 or :: to listen on every "        \
      "interface.")                                                                                \
    X("--unix PATH", "listen on a Unix socket instead",                                            \
      "Listen on a Unix socket at *PATH* instead, for a proxy on the same machine.")               \
    X("-w, --workers N", "worker processes (default 1, 0 = one per CPU)",                          \
      "Run *N* worker processes (default 1). **0** starts one per CPU.")                           \
    X("--reload", "watch the app's directory, reload on change",                                   \
      "Watch the app's directory and reload when a file changes. It does not turn on the app's "   \
      "**debug** setting: errors still get the plain error page unless the app sets "              \
      "**debug = true**.")                                                                         \
    X("--tls-cert FILE --tls-key FILE", "serve HTTPS",                                             \
      "Serve HTTPS with the PEM certificate chain in the first *FILE* (leaf first) and its "       \
      "private key in the second. The pair is checked before the server starts.")                  \
    X("--access-log FILE", "access log, '-' for stderr (default off)",                             \
      "Write one line per request to *FILE* (\"-\" for standard error): the client address, the "  \
      "request line, the status, the body's size and the time taken, in the combined log format "  \
      "followed by the duration in seconds. Off by default.")                                      \
    X("--log-level LEVEL", "error|warn|info|debug (default info)",                                 \
      "One of error, warn, info (the default) or debug.")                                          \
    X("--drain-timeout S", "seconds to finish work on reload/stop (default 10)",                   \
      "Seconds that in-flight work gets to finish on reload and stop (default 10). Open "          \
      "WebSocket connections are then closed with code 1001.")                                     \
    X("--check", "load the app, report errors, exit 0/1",                                          \
      "Load *APP.lua* as a worker would, report the first error with its file and line, and exit " \
      "0 or 1, like **nginx -t**. Nothing is served.")                                             \
    X("--redis URL",                                                                               \
      "span pubsub channels across servers through Redis\n"                                        \
      "(redis://[:password@]host[:port][/db] or unix:///path)",                                    \
      "Span **gust.pubsub** channels across every gust server started with the same *URL* "        \
      "(redis://[[user]:password@]host[:port][/db] or unix:///path) through Redis pub/sub. The "   \
      "master holds the connection; while Redis is unreachable, pub/sub stays within the server, " \
      "messages for the other servers are dropped and counted (gust_pubsub_dropped_total), and "   \
      "gust reconnects by itself. A malformed *URL* exits with status 2.")                         \
    X("--metrics PATH", "serve Prometheus metrics at PATH",                                        \
      "Serve Prometheus metrics at *PATH* (for example /metrics), summed over all workers.")       \
    X("--block-warn MS", "log handlers that hold the loop longer (default 200)",                   \
      "Log, at warn level and with a Lua traceback, code that holds the event loop longer than "   \
      "*MS* milliseconds, while it still holds it (default 200, 0 turns it off).")                 \
    X("--block-kill S",                                                                            \
      "replace a worker whose loop is held S seconds\n"                                            \
      "(fractions ok; default 30, 0 = never)",                                                     \
      "Replace a worker whose loop has been held for *S* seconds (fractions allowed; default 30, " \
      "0 = never). The replacement is logged with the last traceback sampled.")                    \
    X("--max-lua-memory SIZE",                                                                     \
      "replace a worker whose Lua heap stays above SIZE\n"                                         \
      "after a full collection (bytes or 64k/64m/1g; default off)",                                \
      "Replace a worker whose Lua heap is still above *SIZE* after a full garbage collection "     \
      "(bytes, or with a suffix: 64k, 64m, 1g; default off). The worker finishes what it can "     \
      "before it goes.")                                                                           \
    X("--version", "print the version and exit", "Print the version and exit.")                    \
    X("--help", "print this summary and exit", "Print a summary of the options and exit.")

#endif
