#!/bin/sh
# daemon_rss.sh - resident memory of a running `colo compare` after N TCP
# connections of 64-byte segments (the measurement of issue 11).
#
# usage: bench/scale/daemon_rss.sh BUILD_DIR [CONNS] [SEGMENTS]
# Starts BUILD_DIR/src/colo compare on loopback, drives CONNS connections
# (default 65536) of SEGMENTS 64-byte segments each (default 4) through it
# with colo_bench (taken from ./build, so the load is the same for any
# build), then prints its RSS before, right after the traffic and 3 s
# (three scan intervals) later, and its memory statistics.
set -eu

[ $# -ge 1 ] || { sed -n '2,9p' "$0"; exit 2; }
b=$1 conns=${2:-65536} segs=${3:-4}
bench=${BENCH:-build/bench/colo_bench}
log=$(mktemp)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -f "$log"
}
trap cleanup EXIT INT TERM

rss() { awk '/VmRSS/ { print $2 }' "/proc/$pid/status"; }

base=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
"$b/src/colo" compare --primary-in tcp-listen:127.0.0.1:$base \
	--secondary-in tcp-listen:127.0.0.1:$((base + 1)) \
	--out tcp-listen:127.0.0.1:$((base + 2)) \
	--compare-timeout 60000 --max-queue 65536 >"$log" 2>&1 &
pid=$!
sleep 0.3
r0=$(rss)
"$bench" --label daemon --primary 127.0.0.1:$base \
	--secondary 127.0.0.1:$((base + 1)) --out 127.0.0.1:$((base + 2)) \
	--conns "$conns" --bytes $((conns * 64 * segs)) --pri-seg 64 \
	--sec-seg 64 --idle-timeout 5000 | grep '^RESULT' | sed 's/ bytes=.*//'
r1=$(rss)
sleep 3
r2=$(rss)
kill -USR1 "$pid"
sleep 0.2
grep -E 'flows now|held frames|^memory' "$log" | sed 's/^.*colo compare: //' || true
echo "rss before ${r0} KB, after traffic ${r1} KB" \
	"($(((r1 - r0) * 1024 / conns)) B/connection), 3 s later ${r2} KB" \
	"($(((r2 - r0) * 1024 / conns)) B/connection)"
