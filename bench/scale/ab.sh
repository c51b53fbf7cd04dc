#!/bin/sh
# ab.sh - `colo compare` throughput of two builds, side by side, same load.
#
# usage: bench/scale/ab.sh OLD_BUILD NEW_BUILD [RUNS]
# Runs colo_bench (from NEW_BUILD, so the load generator is identical)
# against each build's `colo compare` in turn, RUNS times (default 3),
# alternating old and new so that machine noise hits both alike, for the
# cases of bench/run.sh that stress the engine: `same` (64 connections,
# 256 MiB) and `many` (20000 connections, 8 frames each). Prints one line
# per run: case, build, Gbit/s, frames/s, CPU seconds of the comparer.
set -eu

[ $# -ge 2 ] || { sed -n '2,10p' "$0"; exit 2; }
old=$1 new=$2 runs=${3:-3}
bench=$new/bench/colo_bench
tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

one() { # one LABEL BUILD CASE
	base=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
	"$2/src/colo" compare --primary-in tcp-listen:127.0.0.1:$base \
		--secondary-in tcp-listen:127.0.0.1:$((base + 1)) \
		--out tcp-listen:127.0.0.1:$((base + 2)) \
		--compare-timeout 60000 --max-queue 65536 >"$tmp/colo.log" 2>&1 &
	pid=$!
	case $3 in
	same) args="--conns 64 --bytes 256M" ;;
	many) args="--conns 20000 --bytes $((20000 * 1448 * 8))" ;;
	esac
	# shellcheck disable=SC2086
	"$bench" --label "$1" --primary 127.0.0.1:$base \
		--secondary 127.0.0.1:$((base + 1)) --out 127.0.0.1:$((base + 2)) \
		--idle-timeout 5000 $args >"$tmp/out" 2>&1 || true
	cpu=$(sed 's/.*) //' "/proc/$pid/stat" |
		awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }')
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	sed -n "s/^RESULT .*gbps=\([0-9.]*\) fps=\([0-9]*\).*/$3 $1 \1 \2 $cpu/p" \
		"$tmp/out" | awk '{ printf "%-5s %-4s %7s Gbit/s %8s frames/s cpu %5ss\n", $1, $2, $3, $4, $5 }'
}

i=0
while [ $i -lt "$runs" ]; do
	for c in same many; do
		one old "$old" $c
		one new "$new" $c
	done
	i=$((i + 1))
done
