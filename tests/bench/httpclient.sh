#!/usr/bin/env bash
# HTTP client benchmark: gust.httpclient vs curl vs Tornado's AsyncHTTPClient,
# all fetching the same static file from the same nginx on loopback.
#
#   tests/bench/httpclient.sh                 # N_SEQ=10000 N_CONC=20000 CONC=50 RUNS=3
#   N_SEQ=2000 N_CONC=5000 RUNS=1 tests/bench/httpclient.sh
#
# Cases
#   seq   N_SEQ fetches one after the other over one keep-alive connection
#         (curl: all URLs in one invocation, which reuses its connection)
#   conc  N_CONC fetches, CONC in flight (gust: CONC tasks on max_clients =
#         CONC; curl: --parallel --parallel-max CONC; Tornado: CONC
#         coroutines on max_clients = CONC)
#
# nginx (one process, master_process off) is pinned to CPU 0 and the client
# to CPU 1. Metric: requests per second of wall time for the whole batch,
# median of RUNS runs, after one warm-up fetch. Every run must get 200 for
# every request or the script fails. Tornado is python3-tornado from Debian
# (installed here when missing and running as root); its default client,
# simple_httpclient, opens a connection per request, as it does for users.
#
# Environment: N_SEQ, N_CONC, CONC, RUNS, NGINX (/usr/sbin/nginx), LUAJIT
# (luajit), SIZE (bytes of the static file, 1024), KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
LUAJIT=${LUAJIT:-luajit}
PY=/usr/bin/python3
N_SEQ=${N_SEQ:-10000}
N_CONC=${N_CONC:-20000}
CONC=${CONC:-50}
RUNS=${RUNS:-3}
SIZE=${SIZE:-1024}

die() { echo "httpclient.sh: $*" >&2; exit 2; }
log() { echo "# $*" >&2; }

for v in N_SEQ N_CONC CONC RUNS SIZE; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "$v must be a positive integer (got '${!v}')"
done
for t in curl taskset "$LUAJIT" awk; do command -v "$t" >/dev/null || die "missing tool: $t"; done
[[ -x $NGINX ]] || die "nginx not found at $NGINX"
[[ -f $REPO/build/lib/gust/core.so ]] || die "build first: make -C $REPO build"
if ! "$PY" -c 'import tornado' 2>/dev/null; then
    [[ $(id -u) == 0 ]] || die "python3-tornado is missing (apt-get install python3-tornado)"
    log "installing python3-tornado"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-tornado >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-tornado >/dev/null; } \
        || die "cannot install python3-tornado"
fi
(( $(nproc) >= 2 )) || die "need 2 CPUs (nginx on CPU 0, clients on CPU 1)"
ulimit -n 65536 2>/dev/null || true

PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/gust-clientbench.XXXXXX")
NGINX_PID=
cleanup() {
    [[ -n $NGINX_PID ]] && { kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; }
    if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "# temp files kept in $PREFIX" >&2; else rm -rf "$PREFIX"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
mkdir -p "$PREFIX/html" "$PREFIX/tmp"
head -c "$SIZE" /dev/urandom | base64 -w 0 | head -c "$SIZE" >"$PREFIX/html/file.txt"
cat >"$PREFIX/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $PREFIX/nginx.pid;
error_log $PREFIX/error.log warn;
worker_rlimit_nofile 65536;
events { use epoll; worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    default_type text/plain;
    client_body_temp_path $PREFIX/tmp/body;
    proxy_temp_path $PREFIX/tmp/proxy;
    fastcgi_temp_path $PREFIX/tmp/fastcgi;
    uwsgi_temp_path $PREFIX/tmp/uwsgi;
    scgi_temp_path $PREFIX/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        root $PREFIX/html;
    }
}
EOF
taskset -c 0 "$NGINX" -p "$PREFIX/" -e "$PREFIX/error.log" -c "$PREFIX/nginx.conf" >/dev/null 2>&1 &
NGINX_PID=$!
URL="http://127.0.0.1:$PORT/file.txt"
for _ in $(seq 100); do curl -s -o /dev/null "$URL" && break; sleep 0.1; done
[[ $(curl -s "$URL") == "$(cat "$PREFIX/html/file.txt")" ]] || die "nginx does not serve the file: $(cat "$PREFIX/error.log")"

# curl config files: one url + output line per request
mkcfg() { awk -v n="$1" -v u="$URL" 'BEGIN { for (i = 0; i < n; i++) printf "url = \"%s\"\noutput = \"/dev/null\"\n", u }' >"$2"; }
mkcfg "$N_SEQ" "$PREFIX/seq.cfg"
mkcfg "$N_CONC" "$PREFIX/conc.cfg"

export LUA_PATH="$REPO/lua/?.lua;$REPO/lua/?/init.lua;;"
export LUA_CPATH="$REPO/build/lib/?.so;;"

now() { date +%s.%N; }
FAILED=0
declare -A RPS

# run CLIENT CASE N -> appends req/s to RPS[CLIENT,CASE]
run() {
    local client=$1 case=$2 n=$3 conc=1 out t0 t1 ok secs
    [[ $case == conc ]] && conc=$CONC
    out=$PREFIX/out.txt
    case $client in
    gust)
        taskset -c 1 "$LUAJIT" "$HERE/httpclient_gust.lua" "$URL" "$n" "$conc" >"$out" 2>&1 || true
        ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' "$out"); secs=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' "$out") ;;
    tornado)
        taskset -c 1 "$PY" "$HERE/httpclient_tornado.py" "$URL" "$n" "$conc" >"$out" 2>&1 || true
        ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' "$out"); secs=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' "$out") ;;
    curl)
        local par=()
        [[ $case == conc ]] && par=(--parallel --parallel-max "$CONC")
        t0=$(now)
        # (stderr apart: --parallel draws a progress meter there even with -s)
        taskset -c 1 curl -s "${par[@]}" -K "$PREFIX/$case.cfg" -w '%{http_code}\n' >"$out" 2>"$PREFIX/curl.err" || true
        t1=$(now)
        ok=$(grep -c '^200$' "$out" || true)
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }') ;;
    esac
    if [[ -z $ok || -z $secs || $ok != "$n" ]]; then
        echo "FAIL: $client $case: $ok of $n answered 200" >&2
        tail -n 5 "$out" >&2
        FAILED=1
        return
    fi
    local rps
    rps=$(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
    log "$client $case run: $n requests in ${secs}s = $rps req/s"
    RPS[$client,$case]+=" $rps"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "NaN"; exit } if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

CLIENTS=(gust curl tornado)
for ((r = 1; r <= RUNS; r++)); do
    for case in seq conc; do
        n=$N_SEQ; [[ $case == conc ]] && n=$N_CONC
        for client in "${CLIENTS[@]}"; do run "$client" "$case" "$n"; done
    done
done

echo
echo "=== HTTP client benchmark: GET of a ${SIZE}-byte static file from nginx on loopback ==="
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "host:    $(uname -sr), $(nproc) CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
echo "nginx:   $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), 1 process on CPU 0; clients on CPU 1"
echo "gust:    $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') under $("$LUAJIT" -v | awk '{ print $1, $2 }')"
echo "curl:    $(curl --version | head -n1 | awk '{ print $1, $2 }')"
echo "tornado: $("$PY" -c 'import tornado, sys; print(tornado.version, "on Python", sys.version.split()[0])')"
echo "runs:    $RUNS, median req/s; seq = $N_SEQ one at a time, conc = $N_CONC with $CONC in flight"
echo
printf '%-28s %-8s %10s %12s %10s\n' case client req/s vs_tornado vs_curl
printf '%-28s %-8s %10s %12s %10s\n' ---------------------------- -------- ---------- ------------ ----------
for case in seq conc; do
    desc="sequential (keep-alive)"; [[ $case == conc ]] && desc="$CONC concurrent"
    t=$(median <<<"${RPS[tornado,$case]:-}")
    c=$(median <<<"${RPS[curl,$case]:-}")
    for client in "${CLIENTS[@]}"; do
        v=$(median <<<"${RPS[$client,$case]:-}")
        vt=$(awk -v a="$v" -v b="$t" 'BEGIN { if (b + 0 > 0 && a != "NaN") printf "%.1fx", a / b; else print "n/a" }')
        vc=$(awk -v a="$v" -v b="$c" 'BEGIN { if (b + 0 > 0 && a != "NaN") printf "%.2fx", a / b; else print "n/a" }')
        printf '%-28s %-8s %10s %12s %10s\n' "$desc" "$client" "$v" "$vt" "$vc"
    done
done
echo
if (( FAILED )); then echo "RESULT: FAILED"; exit 1; fi
echo "RESULT: ok"
