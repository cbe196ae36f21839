#!/usr/bin/env bash
# Hello-world benchmark: gust vs nginx + lua-nginx-module (content_by_lua_block).
#
#   tests/bench/hello.sh            # DURATION=10 CONNS=100 RUNS=3
#   DURATION=3 RUNS=1 tests/bench/hello.sh
#
# Cases
#   a  GET /                       -> "Hello, world", keep-alive
#   b  GET /  + Connection: close  -> "Hello, world", one request per connection
#   c  GET /hello/bench?greeting=Hi -> "Hi, bench!"  (route capture + argument read)
#
# Each server runs as one process pinned to CPU 0 (taskset -c 0); wrk and the
# memory client run on CPU 1. Headline metric: server CPU time per request =
# (utime+stime of the server process, /proc/PID/stat fields 14+15) over the
# wrk run / requests wrk completed. Each measurement is repeated RUNS times;
# the table shows the median of each column taken separately.
# Memory: VmRSS growth of a fresh server for MEM_CONNS (10000) idle keep-alive
# connections that each completed one request (tests/bench/conn_hold.py).
#
# Environment: CASES ("a b c"), DURATION (s, 10), CONNS (100), RUNS (3), WARMUP (s, 2),
# MEM_CONNS (10000), GUST (path to binary), NGINX (/usr/sbin/nginx),
# GUST_BENCH_VARIANT (auto|framework|raw, passed to the app), KEEP_TMP=1.
# Exit status: 0 when every run and check passed, 1 otherwise.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
GUST=${GUST:-$REPO/build/gust}
NGINX=${NGINX:-/usr/sbin/nginx}
PY=/usr/bin/python3
DURATION=${DURATION:-10}
CONNS=${CONNS:-100}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2}
MEM_CONNS=${MEM_CONNS:-10000}
export GUST_BENCH_VARIANT=${GUST_BENCH_VARIANT:-auto}

SERVER_CPU=0
CLIENT_CPU=1

die() { echo "hello.sh: $*" >&2; exit 2; }
log() { echo "# $*" >&2; }

for v in DURATION CONNS RUNS WARMUP MEM_CONNS; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer (got '${!v}')"
done
for t in wrk taskset timeout curl getconf dpkg awk sed; do
    command -v "$t" >/dev/null || die "missing tool: $t"
done
[[ -x $GUST ]] || die "gust binary not found at $GUST (make -C $REPO/build)"
[[ -x $NGINX ]] || die "nginx not found at $NGINX"
[[ -x $PY ]] || die "$PY not found"
(( $(nproc) >= 2 )) || die "need at least 2 CPUs (server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU)"

find_so() { # package, file name
    dpkg -L "$1" 2>/dev/null | grep -m1 "/$2\$" || die "$2 not found (dpkg -L $1)"
}
LUA_SO=$(find_so libnginx-mod-http-lua ngx_http_lua_module.so)
NDK_SO=$(find_so libnginx-mod-http-ndk ndk_http_module.so)

CLK_TCK=$(getconf CLK_TCK)

# File descriptors: 10,000 held connections on each side (+ slack).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > MEM_CONNS + 100 )) || die "RLIMIT_NOFILE $(ulimit -n) too low for $MEM_CONNS connections"

PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/gust-bench.XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        # bounded wait, then SIGKILL
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "# temp files kept in $PREFIX" >&2
    else
        rm -rf "$PREFIX"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FAILURES=()
fail() { FAILURES+=("$*"); echo "FAIL: $*" >&2; }

stop_pid() { # pid
    local p=$1 i
    kill "$p" 2>/dev/null || true
    for ((i = 0; i < 25; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    local q=() x
    for x in "${PIDS[@]}"; do [[ $x == "$p" ]] || q+=("$x"); done
    PIDS=("${q[@]}")
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url -> 0 once it answers (10 s max)
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    return 1
}

# ---- servers ---------------------------------------------------------------

GUST_PID= GUST_WORKER= GUST_PORT= GUST_ERR=
start_gust() { # tag
    local tag=$1 out i
    out=$PREFIX/gust-$tag.stdout
    GUST_ERR=$PREFIX/gust-$tag.stderr
    taskset -c $SERVER_CPU "$GUST" --port 0 --bind 127.0.0.1 "$HERE/hello_app.lua" >"$out" 2>"$GUST_ERR" &
    GUST_PID=$!
    PIDS+=("$GUST_PID")
    GUST_PORT=
    for ((i = 0; i < 100; i++)); do
        GUST_PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$out" | head -n1)
        [[ -n $GUST_PORT ]] && break
        kill -0 "$GUST_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $GUST_PORT ]]; then
        cat "$out" "$GUST_ERR" >&2
        die "gust did not start"
    fi
    wait_http "http://127.0.0.1:$GUST_PORT/" || die "gust does not answer on port $GUST_PORT"
    [[ $(cat /proc/"$GUST_PID"/comm) == gust ]] || die "pid $GUST_PID is not gust"
    # gust is a master and its worker: the worker does the serving, so CPU
    # and memory are measured there.
    GUST_WORKER=$(pgrep -P "$GUST_PID" | head -n1)
    [[ -n $GUST_WORKER ]] || die "gust has no worker process"
}

NGINX_PID= NGINX_PORT=
start_nginx() { # tag
    local tag=$1 dir
    dir=$PREFIX/nginx-$tag
    mkdir -p "$dir/tmp" "$dir/logs"
    NGINX_PORT=$(free_port)
    sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$NGINX_PORT|g" \
        -e "s|@NDK_SO@|$NDK_SO|g" -e "s|@LUA_SO@|$LUA_SO|g" \
        "$HERE/nginx.conf.in" >"$dir/nginx.conf"
    # -e: the error log used before the config is read (default is under /var/log)
    "$NGINX" -t -q -p "$dir/" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" \
        || { cat "$dir/nginx-error.log" >&2; die "nginx -t failed"; }
    taskset -c $SERVER_CPU "$NGINX" -p "$dir/" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" \
        >"$dir/stdout" 2>"$dir/stderr" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_http "http://127.0.0.1:$NGINX_PORT/" \
        || { cat "$dir/stderr" "$dir/nginx-error.log" >&2; die "nginx does not answer on port $NGINX_PORT"; }
    [[ $(cat /proc/"$NGINX_PID"/comm) == nginx ]] || die "pid $NGINX_PID is not nginx"
}

# utime+stime (clock ticks) of a process; fields 14 and 15 of /proc/PID/stat,
# counted after the ")" that ends the comm field (which may contain spaces).
cpu_ticks() {
    local s
    s=$(<"/proc/$1/stat") || return 1
    s=${s##*) }
    awk '{ print $12 + $13 }' <<<"$s"
}

# ---- cases -----------------------------------------------------------------

read -r -a CASES <<<"${CASES:-a b c}" # CASES="b" runs one
declare -A CASE_PATH=([a]=/ [b]=/ [c]='/hello/bench?greeting=Hi')
declare -A CASE_BODY=([a]='Hello, world' [b]='Hello, world' [c]='Hi, bench!')
declare -A CASE_DESC=([a]='GET / keep-alive' [b]='GET / Connection: close' [c]='GET /hello/NAME?greeting=Hi')
case_hdr() { [[ $1 == b ]] && echo 'Connection: close' || echo 'X-Bench: 1'; }

check_case() { # server port case -> verifies status and exact body
    local srv=$1 port=$2 c=$3 body code
    body=$(curl -s --max-time 5 -H "$(case_hdr "$c")" -w '\n%{http_code}' "http://127.0.0.1:$port${CASE_PATH[$c]}") \
        || { fail "$srv case $c: request failed"; return; }
    code=${body##*$'\n'}
    body=${body%$'\n'*}
    if [[ $code != 200 || $body != "${CASE_BODY[$c]}" ]]; then
        fail "$srv case $c: got status $code body '$body', want 200 '${CASE_BODY[$c]}'"
    fi
}

to_ms() { # wrk latency like 1.23ms / 456.00us / 1.02s / 1.50m
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        else if (u != "ms") { print "NaN"; exit }
        printf "%.3f", n }'
}

# Results: R[server,case] = space-separated per-run values
declare -A RPS P99 CPU_US UTIL MEM
RAW=$PREFIX/runs.txt
: >"$RAW"

run_wrk() { # server pid port case duration -> sets W_* ; returns 1 on failure
    local srv=$1 pid=$2 port=$3 c=$4 dur=$5 out t0 t1 hdr
    out=$PREFIX/wrk.out
    hdr=()
    [[ $c == b ]] && hdr=(-H 'Connection: close')
    t0=$(cpu_ticks "$pid") || { fail "$srv died"; return 1; }
    if ! timeout -k 5 $((dur + 30)) taskset -c $CLIENT_CPU \
        wrk -t1 -c"$CONNS" -d"${dur}s" --latency "${hdr[@]}" \
        "http://127.0.0.1:$port${CASE_PATH[$c]}" >"$out" 2>&1; then
        cat "$out" >&2
        fail "$srv case $c: wrk failed"
        return 1
    fi
    t1=$(cpu_ticks "$pid") || { fail "$srv died during case $c"; return 1; }
    W_OUT=$(<"$out")
    W_REQS=$(awk '/ requests in / { print $1; exit }' "$out")
    W_RPS=$(awk '/^Requests\/sec:/ { print $2; exit }' "$out")
    W_P99=$(to_ms "$(awk '$1 == "99%" { print $2; exit }' "$out")")
    W_NON2XX=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2; exit }' "$out")
    W_SOCKERR=$(sed -n 's/^ *Socket errors: *//p' "$out")
    W_TICKS=$((t1 - t0))
    if [[ -z $W_REQS || -z $W_RPS || $W_REQS -eq 0 ]]; then
        cat "$out" >&2
        fail "$srv case $c: could not parse wrk output"
        return 1
    fi
    W_CPU_US=$(awk -v t="$W_TICKS" -v hz="$CLK_TCK" -v n="$W_REQS" 'BEGIN { printf "%.3f", t / hz * 1e6 / n }')
    # share of one CPU the server used during the run: well below 100 means
    # the server was not the bottleneck (client- or machine-bound run)
    W_UTIL=$(awk -v t="$W_TICKS" -v hz="$CLK_TCK" -v d="$dur" 'BEGIN { printf "%.0f", t / hz / d * 100 }')
    return 0
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "NaN"; exit }
    if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# ---- run -------------------------------------------------------------------

log "temp dir $PREFIX"
start_gust bench
start_nginx bench
VARIANT=$(sed -n 's/^gust-bench: variant=//p' "$GUST_ERR" | head -n1)
[[ -n $VARIANT ]] || VARIANT="unknown (no variant line on gust stderr)"
log "gust pid $GUST_PID port $GUST_PORT ($VARIANT); nginx pid $NGINX_PID port $NGINX_PORT"

for c in "${CASES[@]}"; do
    check_case gust "$GUST_PORT" "$c"
    check_case nginx "$NGINX_PORT" "$c"
done
# Record what each server actually sends for case c (header bytes differ a bit).
for srv in gust nginx; do
    port=GUST_PORT; [[ $srv == nginx ]] && port=NGINX_PORT
    curl -s -i --max-time 5 "http://127.0.0.1:${!port}${CASE_PATH[c]}" | tr -d '\r' >"$PREFIX/sample-$srv.txt" || true
done
if (( ${#FAILURES[@]} )); then
    echo "--- gust stderr:" >&2; tail -n 30 "$GUST_ERR" >&2
    echo "--- nginx error log:" >&2; tail -n 30 "$PREFIX/nginx-bench/nginx-error.log" >&2
    echo "correctness checks failed; not benchmarking" >&2
    exit 1
fi

for c in "${CASES[@]}"; do
    for srv in gust nginx; do
        pid=GUST_WORKER port=GUST_PORT
        [[ $srv == nginx ]] && pid=NGINX_PID port=NGINX_PORT
        log "warm-up $srv case $c (${WARMUP}s)"
        run_wrk "$srv" "${!pid}" "${!port}" "$c" "$WARMUP" || true
    done
    for ((r = 1; r <= RUNS; r++)); do
        # alternate the order so slow drift does not favour one server
        order=(gust nginx); (( r % 2 == 0 )) && order=(nginx gust)
        for srv in "${order[@]}"; do
            pid=GUST_WORKER port=GUST_PORT
            [[ $srv == nginx ]] && pid=NGINX_PID port=NGINX_PORT
            log "case $c run $r/$RUNS: $srv"
            run_wrk "$srv" "${!pid}" "${!port}" "$c" "$DURATION" || continue
            status=ok
            if [[ -n $W_NON2XX && $W_NON2XX != 0 ]]; then
                status=FAIL
                fail "$srv case $c run $r: $W_NON2XX non-2xx/3xx responses"
            fi
            if [[ -n $W_SOCKERR ]]; then
                [[ $status == ok ]] && status=WARN
                echo "WARN: $srv case $c run $r: socket errors: $W_SOCKERR" >&2
            fi
            printf '%s case=%s run=%d requests=%s rps=%s p99_ms=%s cpu_ticks=%s srv_cpu_pct=%s cpu_us_per_req=%s non2xx=%s sockerr=%s\n' \
                "$srv" "$c" "$r" "$W_REQS" "$W_RPS" "$W_P99" "$W_TICKS" "$W_UTIL" "$W_CPU_US" \
                "${W_NON2XX:-0}" "${W_SOCKERR:-none}" >>"$RAW"
            RPS[$srv,$c]+=" $W_RPS"
            P99[$srv,$c]+=" $W_P99"
            CPU_US[$srv,$c]+=" $W_CPU_US"
            UTIL[$srv,$c]+=" $W_UTIL"
        done
    done
    kill -0 "$GUST_PID" 2>/dev/null || { fail "gust exited during case $c"; break; }
    kill -0 "$NGINX_PID" 2>/dev/null || { fail "nginx exited during case $c"; break; }
done

GUST_BENCH_ERR=$GUST_ERR
NGINX_BENCH_LOG=$PREFIX/nginx-bench/nginx-error.log
stop_pid "$GUST_PID"
stop_pid "$NGINX_PID"

# ---- memory: idle keep-alive connections, fresh servers ---------------------

mem_test() { # server port pid -> prints kib/conn
    local srv=$1 port=$2 pid=$3 out
    out=$PREFIX/mem-$srv.txt
    if ! timeout -k 5 300 taskset -c $CLIENT_CPU "$PY" "$HERE/conn_hold.py" "$port" "$pid" "$MEM_CONNS" >"$out" 2>&1; then
        cat "$out" >&2
        fail "$srv memory test failed"
    fi

    local k v
    while IFS='=' read -r k v; do MEM[$srv,$k]=$v; done < <(grep '=' "$out")
}

log "memory test: gust, $MEM_CONNS idle keep-alive connections"
start_gust mem
MEM_VARIANT=$(sed -n 's/^gust-bench: variant=//p' "$GUST_ERR" | head -n1)
[[ $MEM_VARIANT == "$VARIANT" ]] || fail "gust app variant changed between the throughput and memory servers: '$VARIANT' vs '$MEM_VARIANT'"
mem_test gust "$GUST_PORT" "$GUST_WORKER"
GUST_MEM_ERR=$GUST_ERR
stop_pid "$GUST_PID"
log "memory test: nginx, $MEM_CONNS idle keep-alive connections"
start_nginx mem
mem_test nginx "$NGINX_PORT" "$NGINX_PID"
stop_pid "$NGINX_PID"

# ---- report ----------------------------------------------------------------

echo
echo "=== gust vs nginx+lua hello benchmark ==="
echo "date:       $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "host:       $(uname -sr), $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "gust:       $("$GUST" --version 2>&1 | head -n1) ($GUST, commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ', uncommitted changes'))"
echo "gust app:   $VARIANT"
echo "nginx:      $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') + $(dpkg-query -W -f='libnginx-mod-http-lua ${Version}' libnginx-mod-http-lua 2>/dev/null), master_process off, 1 process"
echo "wrk:        $(wrk -v 2>&1 | head -n1 | awk '{ print $2 }'), -t1 -c$CONNS -d${DURATION}s --latency, pinned to CPU $CLIENT_CPU; servers pinned to CPU $SERVER_CPU"
echo "runs:       $RUNS per case and server (after a ${WARMUP}s warm-up), medians of each column; CLK_TCK=$CLK_TCK; RLIMIT_NOFILE=$(ulimit -n)"
echo
printf '%-31s %-6s %9s %8s %11s %10s %15s %8s\n' case server req/s p99_ms us_cpu/req gust/nginx "us/req min-max" srv_cpu%
printf '%-31s %-6s %9s %8s %11s %10s %15s %8s\n' ------------------------------- ------ --------- -------- ----------- ---------- --------------- --------
for c in "${CASES[@]}"; do
    g=$(median <<<"${CPU_US[gust,$c]:-}")
    n=$(median <<<"${CPU_US[nginx,$c]:-}")
    ratio=$(awk -v g="$g" -v n="$n" 'BEGIN { if (g == "NaN" || n == "NaN" || n + 0 == 0) print "n/a"; else printf "%.2fx", g / n }')
    for srv in gust nginx; do
        rps=$(median <<<"${RPS[$srv,$c]:-}")
        p99=$(median <<<"${P99[$srv,$c]:-}")
        cpu=$(median <<<"${CPU_US[$srv,$c]:-}")
        util=$(median <<<"${UTIL[$srv,$c]:-}")
        range=$(tr ' ' '\n' <<<"${CPU_US[$srv,$c]:-}" | grep -v '^$' | sort -g |
            awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.2f-%.2f", lo, hi; else print "n/a" }')
        r=""; [[ $srv == gust ]] && r=$ratio
        printf '%-31s %-6s %9.0f %8.2f %11.2f %10s %15s %8.0f\n' "($c) ${CASE_DESC[$c]}" "$srv" "$rps" "$p99" "$cpu" "$r" "$range" "$util"
    done
done
echo
echo "memory: VmRSS growth for $MEM_CONNS idle keep-alive connections (each completed one GET /), fresh server,"
echo "        measured 1 s after the last response; KiB/conn = (after - before) / $MEM_CONNS"
printf '%-6s %14s %14s %12s %8s %8s\n' server rss_before_KiB rss_after_KiB KiB/conn bad closed
for srv in gust nginx; do
    printf '%-6s %14s %14s %12s %8s %8s\n' "$srv" "${MEM[$srv,rss_before_kib]:-?}" "${MEM[$srv,rss_after_kib]:-?}" \
        "${MEM[$srv,kib_per_conn]:-?}" "${MEM[$srv,bad_responses]:-?}" "${MEM[$srv,closed_by_server]:-?}"
done
echo
echo "individual runs:"
sed 's/^/  /' "$RAW"
echo
echo "response samples (case c):"
for srv in gust nginx; do
    echo "  --- $srv"
    sed 's/^/  /' "$PREFIX/sample-$srv.txt"
    echo
done
echo "server logs (notable lines):"
for f in "$GUST_BENCH_ERR" "$GUST_MEM_ERR"; do
    lines=$(grep -v '^gust-bench: variant=' "$f" | grep -v -i 'listening on\|\[info\]' || true)
    if [[ -n $lines ]]; then echo "  gust ($(basename "$f")):"; sed 's/^/    /' <<<"$lines" | head -n 40; fi
done
for f in "$NGINX_BENCH_LOG" "$PREFIX/nginx-mem/nginx-error.log"; do
    lines=$(grep -v '\[notice\]' "$f" 2>/dev/null || true)
    if [[ -n $lines ]]; then echo "  nginx ($(basename "$(dirname "$f")")):"; sed 's/^/    /' <<<"$lines" | head -n 40; fi
done
echo "  (end of logs)"
echo
if (( ${#FAILURES[@]} )); then
    echo "RESULT: FAILED (${#FAILURES[@]} problems)"
    printf '  - %s\n' "${FAILURES[@]}"
    exit 1
fi
echo "RESULT: ok"
