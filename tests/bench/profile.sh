#!/usr/bin/env bash
# Where a request's instructions go: gust under callgrind, one keep-alive
# connection, counters zeroed after a warm-up so that start-up, the JIT's
# first traces and the warm-up's GC cycles do not count. Prints the
# instructions per request (runs agree within about a hundred, where
# icount's two-run difference moves by several hundred), then per library
# and per function (exclusive). Never part of `make test`.
#
#   tests/bench/profile.sh                        # GET / on tests/bench/hello_app.lua
#   tests/bench/profile.sh -p '/hello/you?greeting=Hi' -n 10000
#   tests/bench/profile.sh -- --block-warn 0      # extra gust options after --
#
# -p PATH (/), -n requests counted (20000), -w warm-up requests (3000),
# -t functions listed (40), -a APP (tests/bench/hello_app.lua); GUST is the
# binary (build/gust). It zeroes every callgrind process on the machine
# (callgrind_control -z): run one at a time.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
GUST=${GUST:-$ROOT/build/gust}
path=/ n=20000 warm=3000 top=40 app=$HERE/hello_app.lua
while [ $# -gt 0 ]; do
    case "$1" in
        -p) path=$2; shift 2 ;;
        -n) n=$2; shift 2 ;;
        -w) warm=$2; shift 2 ;;
        -t) top=$2; shift 2 ;;
        -a) app=$2; shift 2 ;;
        --) shift; break ;;
        *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
for t in valgrind callgrind_control python3; do
    command -v $t >/dev/null || { echo "profile.sh: needs $t (apt-get install valgrind)" >&2; exit 2; }
done
[ -x "$GUST" ] || { echo "profile.sh: no $GUST (make build)" >&2; exit 2; }

work=$(mktemp -d /tmp/gust-profile.XXXXXX)
vp=
cleanup() {
    [ -n "$vp" ] && kill "$vp" 2>/dev/null && wait "$vp" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

valgrind --tool=callgrind --trace-children=yes --smc-check=all-non-file \
    --callgrind-out-file="$work/cg.%p" "$GUST" --port "$port" --bind 127.0.0.1 --workers 1 \
    "$@" "$app" >"$work/out" 2>&1 &
vp=$!
timeout 600 python3 "$HERE/profile.py" client "$port" "$path" "$warm" "$n" ||
    { tail -n 5 "$work/out" >&2; exit 1; }
kill "$vp"
wait "$vp" 2>/dev/null || true
vp=
python3 "$HERE/profile.py" report "$n" "$top" "$work"/cg.*.1
