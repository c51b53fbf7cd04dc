#!/bin/sh
# run.sh - QEMU colo-compare against `colo compare`, side by side, same load.
#
# usage: bench/run.sh [-b BUILD_DIR] [-n RUNS] [-- COLO_BENCH_ARGS...]
#   BUILD_DIR   meson build directory holding colo and bench/colo_bench
#               (default: ./build; colo is BUILD_DIR/src/colo)
#   RUNS        repetitions of every case, best result kept (default 1)
# Extra arguments after -- are passed to every colo_bench run (for example
# `-- --bytes 256M`). Cases: identical segmentation, different
# segmentation, and many connections (past QEMU's 16384-entry table).
# Environment: QEMU (default qemu-system-x86_64), COLO (default
# BUILD_DIR/src/colo), CASES (space-separated
# subset of: same resegmented many; empty for none), BYTES (default 1G),
# LATENCY (space-separated PROTO:FRAMES_PER_S latency-at-rate cases,
# default "tcp:1000 tcp:20000 tcp:100000 udp:1000 udp:20000 udp:100000";
# empty for none): each runs colo_latency against QEMU, colo and the
# floor (floor_compare: release once the secondary's bytes are in, no
# work), RUNS times alternating, and prints the median and range of p50
# and p99; the ratio line is colo / QEMU.
set -eu

build=build
runs=1
while getopts b:n: opt; do
	case $opt in
	b) build=$OPTARG ;;
	n) runs=$OPTARG ;;
	*) sed -n '2,19p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift

qemu=${QEMU:-qemu-system-x86_64}
colo=${COLO:-$build/src/colo}
bench=$build/bench/colo_bench
bytes=${BYTES:-1G}
cases=${CASES-"same resegmented many"}
latency=${LATENCY-"tcp:1000 tcp:20000 tcp:100000 udp:1000 udp:20000 udp:100000"}
lbench=$build/bench/colo_latency
floor=$build/bench/floor_compare
[ -x "$colo" ] || { echo "run.sh: $colo not built" >&2; exit 1; }
[ -x "$bench" ] || { echo "run.sh: $bench not built" >&2; exit 1; }
command -v "$qemu" >/dev/null || { echo "run.sh: $qemu not found" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Three consecutive free ports from a random base.
pick_ports() {
	while :; do
		base=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
		if ! ss -Htln 2>/dev/null |
		   grep -Eq ":($base|$((base + 1))|$((base + 2))) "; then
			p1=$base p2=$((base + 1)) p3=$((base + 2))
			return
		fi
	done
}

start_qemu() {
	"$qemu" -machine none -nodefaults -display none -monitor none \
		-serial none -object iothread,id=io1 \
		-chardev socket,id=pin,host=127.0.0.1,port="$p1",server=on,wait=off \
		-chardev socket,id=sin,host=127.0.0.1,port="$p2",server=on,wait=off \
		-chardev socket,id=out,host=127.0.0.1,port="$p3",server=on,wait=off \
		-object colo-compare,id=c0,primary_in=pin,secondary_in=sin,outdev=out,iothread=io1,compare_timeout=60000,max_queue_size=65536 \
		>"$tmp/qemu.log" 2>&1 &
	pid=$!
}

start_colo() {
	"$colo" compare --primary-in tcp-listen:127.0.0.1:"$p1" \
		--secondary-in tcp-listen:127.0.0.1:"$p2" \
		--out tcp-listen:127.0.0.1:"$p3" \
		--compare-timeout 60000 --max-queue 65536 \
		>"$tmp/colo.log" 2>&1 &
	pid=$!
}

# The latency floor (floor_compare.c): what the hand-offs alone cost here.
start_floor() {
	"$floor" "$p1" "$p2" "$p3" >"$tmp/floor.log" 2>&1 &
	pid=$!
}

# run_one IMPL CASE [ARGS...]: result "gbps fps seconds frames expected"
# into $tmp/result (not a subshell: the trap must see $pid)
run_one() {
	impl=$1 kind=$2
	shift 2
	case $kind in
	same) args="--conns 64 --bytes $bytes" ;;
	resegmented) args="--conns 64 --bytes $bytes --sec-seg 1000,2896,448,1448" ;;
	many) args="--conns 20000 --bytes $((20000 * 1448 * 8))" ;;
	*) echo "run.sh: unknown case $kind" >&2; exit 2 ;;
	esac
	pick_ports
	start_"$impl"
	# shellcheck disable=SC2086
	"$bench" --label "$impl" --primary 127.0.0.1:"$p1" \
		--secondary 127.0.0.1:"$p2" --out 127.0.0.1:$p3 \
		--idle-timeout 5000 $args "$@" >"$tmp/out" 2>&1 || true
	# CPU seconds the comparer used (user + system, all its threads)
	cpu=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null |
		awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }')
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
	grep -v '^RESULT' "$tmp/out" | sed "s/^/  [$kind] /" >&2 || true
	sed -n 's/^RESULT .*frames=\([0-9]*\) expected=\([0-9]*\) .*seconds=\([0-9.]*\) gbps=\([0-9.]*\) fps=\([0-9]*\).*/\4 \5 \3 \1 \2/p' \
		"$tmp/out" >"$tmp/result"
	[ -s "$tmp/result" ] || echo "0 0 0 0 0" >"$tmp/result"
	sed -i "s/\$/ ${cpu:-0}/" "$tmp/result"
}

# best IMPL CASE [ARGS...]: best of $runs by Gbit/s, into $tmp/best
best() {
	: >"$tmp/best"
	i=0
	while [ $i -lt "$runs" ]; do
		run_one "$@"
		if [ ! -s "$tmp/best" ] || awk -v a="$(cut -d' ' -f1 "$tmp/result")" \
				-v c="$(cut -d' ' -f1 "$tmp/best")" \
				'BEGIN { exit !(a > c) }'; then
			cp "$tmp/result" "$tmp/best"
		fi
		i=$((i + 1))
	done
}

printf '%s\n' "$(nproc) CPUs, $(uname -r), $("$qemu" --version | head -1)" \
	>"$tmp/table"
printf '%-12s %-6s %9s %11s %8s %17s %7s %9s\n' case impl Gbit/s frames/s \
	seconds released cpu_s us/frame >>"$tmp/table"
for c in $cases; do
	best qemu "$c" "$@"
	q=$(cat "$tmp/best")
	best colo "$c" "$@"
	o=$(cat "$tmp/best")
	for line in "qemu $q" "colo $o"; do
		echo "$line" | awk -v c="$c" '{
			printf "%-12s %-6s %9s %11s %8s %17s %7s %9.2f\n",
				c, $1, $2, $3, $4, $5 "/" $6, $7,
				($5 > 0 ? $7 * 1e6 / $5 : 0) }' >>"$tmp/table"
	done
	awk -v a="${o%% *}" -v b="${q%% *}" -v c="$c" 'BEGIN {
		if (b > 0) printf "%-12s ratio  %9.2fx\n", c, a / b
		else printf "%-12s ratio  %9s\n", c, "n/a" }' >>"$tmp/table"
done
echo
cat "$tmp/table"

# lat_one IMPL PROTO RATE: appends "p50 p99 achieved" to $tmp/lat.IMPL
lat_one() {
	impl=$1 proto=$2 rate=$3
	extra=
	[ "$proto" = udp ] && extra=--udp
	pick_ports
	start_"$impl"
	"$lbench" --label "$impl" --primary 127.0.0.1:"$p1" \
		--secondary 127.0.0.1:"$p2" --out 127.0.0.1:"$p3" \
		--rate "$rate" $extra >"$tmp/out" 2>&1 || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
	grep -v '^RESULT' "$tmp/out" | sed "s/^/  [$proto@$rate] /" >&2 || true
	r=$(sed -n 's/^RESULT .*achieved=\([0-9]*\) p50=\([0-9.]*\) .*p99=\([0-9.]*\) .*/\2 \3 \1/p' "$tmp/out")
	echo "${r:-0 0 0}" >>"$tmp/lat.$impl"
}

# stat COLUMN FILE: "median min-max" of a column
stat() {
	cut -d' ' -f"$1" "$2" | sort -g | awk '{ v[NR] = $1 } END {
		printf "%.0f %.0f-%.0f", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

if [ -n "$latency" ]; then
	[ -x "$lbench" ] || { echo "run.sh: $lbench not built" >&2; exit 1; }
	printf '\n%-12s %-6s %8s %12s %8s %12s %9s\n' case impl p50_us \
		range p99_us range achieved >"$tmp/lat"
	for l in $latency; do
		proto=${l%%:*} rate=${l#*:}
		: >"$tmp/lat.qemu"
		: >"$tmp/lat.colo"
		: >"$tmp/lat.floor"
		i=0
		while [ $i -lt "$runs" ]; do
			lat_one qemu "$proto" "$rate"
			lat_one colo "$proto" "$rate"
			lat_one floor "$proto" "$rate"
			i=$((i + 1))
		done
		for impl in qemu colo floor; do
			set -- $(stat 1 "$tmp/lat.$impl") \
				$(stat 2 "$tmp/lat.$impl") \
				$(stat 3 "$tmp/lat.$impl")
			printf '%-12s %-6s %8s %12s %8s %12s %9s\n' \
				"$proto@$rate" "$impl" "$1" "$2" "$3" "$4" \
				"$5" >>"$tmp/lat"
		done
		q50=$(stat 1 "$tmp/lat.qemu") q99=$(stat 2 "$tmp/lat.qemu")
		c50=$(stat 1 "$tmp/lat.colo") c99=$(stat 2 "$tmp/lat.colo")
		awk -v a="${c50%% *}" -v b="${q50%% *}" -v c="${c99%% *}" \
			-v d="${q99%% *}" -v n="$proto@$rate" 'BEGIN {
			printf "%-12s ratio  %7.2fx %12s %7.2fx\n", n,
				(b > 0 ? a / b : 0), "", (d > 0 ? c / d : 0) }' \
			>>"$tmp/lat"
	done
	cat "$tmp/lat"
fi
