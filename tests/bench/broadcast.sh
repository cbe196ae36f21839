#!/usr/bin/env bash
# Broadcast latency of one gust.pubsub message to CONNS WebSocket
# subscribers spread over two gust servers that share channels through one
# redis-server (--redis; issue 11's target: p99 < 250 ms for 10,000).
#
#   tests/bench/broadcast.sh          # CONNS=10000 MESSAGES=5 WORKERS=1
#
# Each message is posted to server A; half the sockets are on server B, so
# half the arrivals cross Redis. Servers, Redis and the client share the
# machine. Never part of `make test`.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GUST=${GUST:-$REPO/build/gust}
CONNS=${CONNS:-10000}
MESSAGES=${MESSAGES:-5}
WORKERS=${WORKERS:-1}
ulimit -n "$(ulimit -Hn)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    --loglevel warning >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
start() { # -> port
    "$GUST" --port 0 --workers "$WORKERS" --redis "redis://127.0.0.1:$RPORT" \
        "$HERE/broadcast_app.lua" >"$TMP/$1.out" 2>"$TMP/$1.err" &
    PIDS+=($!)
    for _ in $(seq 200); do grep -q listening "$TMP/$1.out" 2>/dev/null && break; sleep 0.05; done
    grep -o 'listening on http://127.0.0.1:[0-9]*' "$TMP/$1.out" | grep -o '[0-9]*$'
}
PA=$(start a)
PB=$(start b)
for s in a b; do
    for _ in $(seq 100); do grep -q "spans servers" "$TMP/$s.err" && break; sleep 0.05; done
done
cd "$REPO"
LUA_CPATH="$REPO/build/lib/?.so;;" luajit \
    -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path' \
    tests/bench/broadcast_client.lua "$PA" "$PB" "$CONNS" "$MESSAGES"
