#!/usr/bin/env bash
# WebSocket echo benchmark: gust vs Python `websockets` (asyncio).
#
#   tests/bench/websocket.sh                 # DURATION=5 RUNS=3
#   DURATION=2 RUNS=1 tests/bench/websocket.sh
#   PEER=/path/to/nginx-lua tests/bench/websocket.sh
#
# The peers: Debian's python3-websockets (installed here when missing and
# run as root; the script says so when it cannot have it) and, with PEER
# set, an OpenResty stand-in: a script that runs nginx + lua-nginx-module in
# the foreground on 127.0.0.1:$PORT with a WebSocket echo at /ws (Debian
# ships no resty.websocket of its own). The peers' runs are interleaved.
#
# Cases (CONNS connections, each doing echo round trips back to back):
#   small    32-byte text,    CONNS=10
#   one      32-byte text,    1 connection (latency-bound)
#   large    16 KiB text,     CONNS=10
#   deflate  4 KiB JSON-like text with permessage-deflate, CONNS=10
# ONLY="small one" runs just those.
#
# The server runs pinned to CPU 0 (taskset), the load generator (gust's own
# client, tests/bench/ws_client.lua under luajit) on CPU 1, so both servers
# face the same client. Metrics: round trips per second, and server CPU per
# message = (utime+stime of the server processes, /proc/PID/stat 14+15)
# over the run / round trips. Each case runs RUNS times; the table shows the
# median of each column. Never part of `make test`.
#
# Environment: DURATION (s, 5), RUNS (3), CONNS (10), GUST (binary), PEER.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GUST=${GUST:-$REPO/build/gust}
PY=/usr/bin/python3
DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
CONNS=${CONNS:-10}
SERVER_CPU=0
CLIENT_CPU=1

die() { echo "websocket.sh: $*" >&2; exit 2; }
log() { echo "# $*" >&2; }

for t in taskset luajit getconf awk sort; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
[[ -x $GUST ]] || die "gust binary not found at $GUST (make -C $REPO/build)"
[[ -f $REPO/build/lib/gust/core.so ]] || die "build/lib/gust/core.so missing (make -C $REPO/build)"
(( $(nproc) >= 2 )) || die "need at least 2 CPUs"
HZ=$(getconf CLK_TCK)

have_websockets=0
if [[ -x $PY ]] && ! $PY -c "import websockets" 2>/dev/null && [[ $(id -u) == 0 ]]; then
    log "installing python3-websockets (Debian) for the comparison"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3-websockets >/dev/null 2>&1 || true
fi
if [[ -x $PY ]] && $PY -c "import websockets" 2>/dev/null; then
    have_websockets=1
    WS_VERSION=$($PY -c "import websockets; print(websockets.__version__)")
else
    log "python3-websockets is not available: reporting gust alone"
fi

TMP=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

export LUA_PATH="$REPO/lua/?.lua;$REPO/lua/?/init.lua;;"
export LUA_CPATH="$REPO/build/lib/?.so;;"

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The server's processes: the pid and its children (gust's worker).
cpu_ticks() {
    local total=0 p
    for p in "$SERVER_PID" $(pgrep -P "$SERVER_PID" 2>/dev/null || true); do
        [[ -r /proc/$p/stat ]] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$total"
}

start_server() { # name deflate; sets PORT and SERVER_PID
    local port
    port=$(free_port)
    PORT=$port
    case $1 in
    gust)
        GUST_BENCH_COMPRESSION=$2 taskset -c $SERVER_CPU "$GUST" --port "$port" \
            --log-level error "$HERE/ws_echo_app.lua" >"$TMP/server.out" 2>"$TMP/server.err" &
        ;;
    websockets)
        taskset -c $SERVER_CPU $PY "$HERE/ws_echo_websockets.py" "$port" \
            "$([[ $2 == 1 ]] && echo deflate || echo plain)" >"$TMP/server.out" 2>"$TMP/server.err" &
        ;;
    nginx-lua)
        PORT=$port taskset -c $SERVER_CPU "$PEER" >"$TMP/server.out" 2>"$TMP/server.err" &
        ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 100); do
        if grep -qE "listening|ready" "$TMP/server.out" 2>/dev/null ||
           { [[ $1 == nginx-lua ]] && $PY -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; }; then
            return
        fi
        sleep 0.05
    done
    cat "$TMP/server.err" >&2
    die "$1 did not start"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# One measurement: prints "rate cpu_us_per_msg". Runs in a subshell of its
# own (the caller reads its output), which stops the server it started.
measure() { # server conns size deflate
    local before after out msgs
    start_server "$1" "$4"
    local url="ws://127.0.0.1:$PORT/echo"
    [[ $1 == nginx-lua ]] && url="ws://127.0.0.1:$PORT/ws"
    # warm-up
    taskset -c $CLIENT_CPU luajit "$HERE/ws_client.lua" "$url" "$2" 0.5 "$3" \
        "$([[ $4 == 1 ]] && echo deflate)" >/dev/null
    before=$(cpu_ticks)
    out=$(taskset -c $CLIENT_CPU luajit "$HERE/ws_client.lua" "$url" "$2" "$DURATION" "$3" \
        "$([[ $4 == 1 ]] && echo deflate)")
    after=$(cpu_ticks)
    stop_server
    msgs=$(awk '{print $2}' <<<"$out")
    [[ $(awk '{print $6}' <<<"$out") == 0 ]] || die "$1: client errors: $out"
    awk -v m="$msgs" -v d="$DURATION" -v t=$((after - before)) -v hz="$HZ" \
        'BEGIN { printf "%.0f %.1f\n", m / d, (m ? t / hz * 1e6 / m : 0) }'
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

CASES=("small $CONNS 32 0" "one 1 32 0" "large $CONNS 16384 0" "deflate $CONNS 4096 1")
SERVERS=(gust)
(( have_websockets )) && SERVERS+=(websockets)
if [[ -n ${PEER:-} ]]; then
    [[ -x $PEER ]] || die "PEER is not an executable: $PEER"
    SERVERS+=(nginx-lua)
fi

printf "%-10s %-11s %6s %7s %14s %16s\n" case server conns size "round trips/s" "server CPU/msg"
for c in "${CASES[@]}"; do
    read -r name conns size deflate <<<"$c"
    [[ -z ${ONLY:-} || " $ONLY " == *" $name "* ]] || continue
    for srv in "${SERVERS[@]}"; do : >"$TMP/rates.$srv"; : >"$TMP/cpus.$srv"; done
    for _ in $(seq "$RUNS"); do
        for srv in "${SERVERS[@]}"; do # interleaved: a busy moment hits every server
            [[ $srv == nginx-lua && $deflate == 1 ]] && continue # its library has no deflate
            read -r rate cpu < <(measure "$srv" "$conns" "$size" "$deflate")
            [[ -n $rate ]] || die "$srv: the measurement failed"
            echo "$rate" >>"$TMP/rates.$srv"
            echo "$cpu" >>"$TMP/cpus.$srv"
        done
    done
    for srv in "${SERVERS[@]}"; do
        [[ -s $TMP/rates.$srv ]] || continue
        printf "%-10s %-11s %6s %7s %14s %13s us\n" "$name" "$srv" "$conns" "$size" \
            "$(median <"$TMP/rates.$srv")" "$(median <"$TMP/cpus.$srv")"
    done
done
echo
echo "gust $($GUST --version 2>/dev/null | head -1 | awk '{print $2}'), luajit client on CPU $CLIENT_CPU," \
     "servers on CPU $SERVER_CPU, ${DURATION}s x $RUNS runs (median)"
(( have_websockets )) && echo "python websockets $WS_VERSION ($($PY --version 2>&1)), asyncio, no uvloop"
[[ -n ${PEER:-} ]] && echo "nginx-lua: $PEER (no permessage-deflate: not in the deflate case)"
[[ -n ${PEER:-} ]] || echo "nginx + lua: not measured (set PEER to an OpenResty stand-in)"
