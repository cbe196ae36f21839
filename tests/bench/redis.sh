#!/usr/bin/env bash
# gust.redis against redis-benchmark on the same machine (issue 11):
#
#   tests/bench/redis.sh          # N=200000 CONNS=50 DEPTH=16
#
# A redis-server of its own on a free port; redis-benchmark -c CONNS -P 1
# -t get (and -P DEPTH), then tests/bench/redis_get.lua: CONNS gust.redis
# connections in one Lua state on one loop (what a worker has), the same
# GETs one in flight per connection, then pipelined. The target is >= 70 %
# of redis-benchmark's unpipelined figure. redis-server is pinned to CPU 0,
# the clients to CPU 1 (when there are two).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=${N:-200000}
CONNS=${CONNS:-50}
DEPTH=${DEPTH:-16}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TMP=$(mktemp -d)
PIN_S="" PIN_C=""
if [ "$(nproc)" -ge 2 ]; then PIN_S="taskset -c 0"; PIN_C="taskset -c 1"; fi
$PIN_S redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$TMP" --loglevel warning >"$TMP/redis.log" 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null; wait $RPID 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

echo "== redis-benchmark -c $CONNS -n $N -t get"
$PIN_C redis-benchmark -p "$PORT" -c "$CONNS" -n "$N" -P 1 -t get -q | tr '\r' '\n' | grep -a 'GET:' | tail -1
$PIN_C redis-benchmark -p "$PORT" -c "$CONNS" -n "$N" -P "$DEPTH" -t get -q | tr '\r' '\n' | grep -a 'GET:' | tail -1 | sed "s/^/(-P $DEPTH) /"

echo "== gust.redis (tests/bench/redis_get.lua)"
cd "$REPO"
LUA_CPATH="$REPO/build/lib/?.so;;" $PIN_C luajit \
    -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path' \
    tests/bench/redis_get.lua "$PORT" "$N" "$CONNS" "$DEPTH"
