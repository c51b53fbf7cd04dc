#!/bin/sh
# compare_counts.sh - what `colo compare` does per burst of colo_latency's
# load, counted rather than timed (a loaded machine makes timings noise):
# wake-ups (epoll_wait), reads, sends and epoll_ctl calls of the comparer
# (perf tracepoints), its context switches, and the most frames it held.
# One burst of --burst frames (8) is written to primary-in, then to
# secondary-in; the fewest a comparer can do per burst is one wake-up, two
# reads and one send, and it holds at most one burst.
#
# usage: bench/compare_counts.sh [-b BUILD_DIR] [PROTO:RATE ...]
#   default cases: tcp:1000 udp:1000 tcp:20000 udp:20000; root (perf).
set -eu

build=build
while getopts b: opt; do
	case $opt in
	b) build=$OPTARG ;;
	*) sed -n '2,13p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- tcp:1000 udp:1000 tcp:20000 udp:20000
colo=$build/src/colo
lbench=$build/bench/colo_latency
[ -x "$colo" ] && [ -x "$lbench" ] || { echo "$0: build first" >&2; exit 1; }
command -v perf >/dev/null || { echo "$0: perf not found" >&2; exit 1; }

tmp=$(mktemp -d)
pid= ppid=
cleanup() {
	[ -n "$ppid" ] && kill -INT "$ppid" 2>/dev/null
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

events=epoll_wait,read,sendto,epoll_ctl
printf '%-10s %7s %9s %8s %8s %9s %9s %8s %7s\n' case bursts \
	wakeups/b reads/b sends/b ctl/b invol/b held_max p99_us
for c in "$@"; do
	proto=${c%%:*} rate=${c#*:}
	base=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
	"$colo" compare --primary-in tcp-listen:127.0.0.1:$base \
		--secondary-in tcp-listen:127.0.0.1:$((base + 1)) \
		--out tcp-listen:127.0.0.1:$((base + 2)) \
		--compare-timeout 60000 --max-queue 65536 >"$tmp/colo" 2>&1 &
	pid=$!
	sleep 0.3
	perf stat -x, -o "$tmp/perf" -p "$pid" \
		-e "$(echo $events | sed 's/\([a-z_]*\)/syscalls:sys_enter_\1/g')" &
	ppid=$!
	sleep 0.2
	inv0=$(awk '/^nonvoluntary/ { print $2 }' "/proc/$pid/status")
	extra=
	[ "$proto" = udp ] && extra=--udp
	"$lbench" --primary 127.0.0.1:$base --secondary 127.0.0.1:$((base + 1)) \
		--out 127.0.0.1:$((base + 2)) --rate "$rate" --seconds 2 \
		$extra >"$tmp/lat" 2>&1 || true
	inv=$(awk '/^nonvoluntary/ { print $2 }' "/proc/$pid/status")
	kill -INT "$ppid"
	wait "$ppid" 2>/dev/null || true
	ppid=
	kill -USR1 "$pid"
	sleep 0.3
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
	held=$(sed -n 's/.*held frames=.*max_frames=\([0-9]*\).*/\1/p' \
		"$tmp/colo" | tail -1)
	p99=$(sed -n 's/^RESULT .* p99=\([0-9.]*\) .*/\1/p' "$tmp/lat")
	# bursts actually sent: frames released / 8 (the default burst)
	frames=$(sed -n 's/.*released \([0-9]*\) of.*/\1/p' "$tmp/lat")
	awk -F, -v c="$c" -v f="${frames:-0}" -v inv=$((inv - inv0)) \
		-v held="${held:-?}" -v p99="${p99:-?}" '
		/sys_enter_epoll_wait/ { w = $1 } /sys_enter_read/ { r = $1 }
		/sys_enter_sendto/ { s = $1 } /sys_enter_epoll_ctl/ { e = $1 }
		END { b = f / 8; if (b < 1) b = 1
			printf "%-10s %7d %9.2f %8.2f %8.2f %9.2f %9.2f %8s %7s\n",
				c, b, w / b, r / b, s / b, e / b, inv / b,
				held, p99 }' "$tmp/perf"
done
