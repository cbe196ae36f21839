#!/usr/bin/env bash
# Instructions per request, gust against its OpenResty peer: a check that
# takes minutes, not a load test. Never part of `make test`.
#
#   ICOUNT=/path/to/icount PEER=/path/to/nginx-lua tests/bench/icount.sh
#   ICOUNT=/path/to/icount tests/bench/icount.sh          # gust alone
#
# ICOUNT is the callgrind counter (`icount [-p PATH] [--ws] [--wrap] -- CMD`,
# it runs CMD twice under valgrind and prints "icount: N instructions per
# request ..."); PEER, when set, a script that starts the peer server for
# `icount --wrap` and serves the same routes as tests/bench/hello_app.lua
# (/, /hello/NAME?greeting=G) and a WebSocket echo on /ws.
#
# Cases:
#   A  GET /                         hello_app.lua: "Hello, world"
#   C  GET /hello/you?greeting=Hi    hello_app.lua: a route capture and an argument
#   D  one 16-byte WebSocket echo    ws_echo_app.lua on /echo (the peer: /ws)
# CASES (default "A C D") picks some. Each case takes a minute or two per
# server; counts repeat within a few hundred instructions.
#
# Output: one line per case, gust's count, the peer's and gust/peer.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
GUST=${GUST:-$ROOT/build/gust}
CASES=${CASES:-A C D}

if [ -z "${ICOUNT:-}" ] || [ ! -x "$ICOUNT" ]; then
    echo "icount.sh: set ICOUNT to the icount script (see the header)" >&2
    exit 2
fi
[ -x "$GUST" ] || { echo "icount.sh: no $GUST (make build)" >&2; exit 2; }

# count ARGS... -> the number of instructions per request, or "?"
count() {
    local out
    if out=$("$ICOUNT" "$@" 2>&1); then
        sed -n 's/^icount: \([0-9][0-9]*\) instructions.*/\1/p' <<<"$out" | tail -n 1
    else
        echo "icount.sh: icount $* failed:" >&2
        tail -n 5 <<<"$out" >&2
        echo "?"
    fi
}

gust_case() {
    case "$1" in
        A) count -- "$GUST" --port '{port}' "$HERE/hello_app.lua" ;;
        C) count -p '/hello/you?greeting=Hi' -- "$GUST" --port '{port}' "$HERE/hello_app.lua" ;;
        D) count --ws -p /echo -- "$GUST" --port '{port}' "$HERE/ws_echo_app.lua" ;;
    esac
}

peer_case() {
    case "$1" in
        A) count --wrap -- "$PEER" ;;
        C) count -p '/hello/you?greeting=Hi' --wrap -- "$PEER" ;;
        D) count --ws --wrap -- "$PEER" ;;
    esac
}

printf '%-5s %10s %10s %8s\n' case gust peer ratio
for c in $CASES; do
    g=$(gust_case "$c")
    p=-
    r=-
    if [ -n "${PEER:-}" ]; then
        p=$(peer_case "$c")
        if [[ "$g" =~ ^[0-9]+$ && "$p" =~ ^[0-9]+$ && "$p" -gt 0 ]]; then
            r=$(awk -v g="$g" -v p="$p" 'BEGIN { printf "%.2f", g / p }')
        fi
    fi
    printf '%-5s %10s %10s %8s\n' "$c" "$g" "$p" "$r"
done
