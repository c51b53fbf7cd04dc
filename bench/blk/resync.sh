#!/bin/sh
# resync.sh - the first resync of a secondary whose image the primary
# knows nothing about, by digest and by full copy, side by side: the
# secondary's image is a copy of the primary's with PCT percent of its
# granules rewritten (the host that comes back after a failover), and
# each mode resyncs a fresh copy of it, alternately, RUNS times.
#
# usage: bench/blk/resync.sh [-b BUILD_DIR] [-n RUNS] [-s MIB] [-p PCT]
#   BUILD_DIR  meson build directory holding src/colo (default ./build)
#   RUNS       resyncs per mode, alternating (default 2)
#   MIB        image size in MiB (default 256)
#   PCT        percent of the 64 KiB granules that differ (default 1)
# Environment: COLO (the colo binary), TMPDIR (3 x MIB of images).
# Prints, per mode: the time from the primary's start to "protected"
# (its last_resync_ms), the bytes the resync copied and compared, and
# whether the images ended equal.
set -eu

build=build
runs=2
mib=256
pct=1
while getopts b:n:s:p: opt; do
	case $opt in
	b) build=$OPTARG ;;
	n) runs=$OPTARG ;;
	s) mib=$OPTARG ;;
	p) pct=$OPTARG ;;
	*) sed -n '2,/^set -eu/p' "$0" | grep '^#'; exit 2 ;;
	esac
done
colo=${COLO:-$build/src/colo}
[ -x "$colo" ] || { echo "resync.sh: $colo not built" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/colo-resync-bench.$$.XXXXXX")
pids=
cleanup() {
	for p in $pids; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# stat FIELD: one number of the primary's stats
stat() {
	"$colo" blk ctl "$tmp/p.ctl" stats |
		python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}

# The primary's image: incompressible, so the full copy sends real data.
head -c "$((mib << 20))" /dev/urandom >"$tmp/a.img"
cp "$tmp/a.img" "$tmp/b.img"
granules=$((mib * 16))
changed=$((granules * pct / 100))
[ "$changed" -gt 0 ] || changed=1
# spread over the image, deterministic
i=0
while [ $i -lt "$changed" ]; do
	g=$(((i * 7919 + 13) % granules))
	dd if=/dev/urandom of="$tmp/b.img" bs=65536 seek="$g" count=1 \
		conv=notrunc status=none
	i=$((i + 1))
done

# one MODE: a fresh copy of b resynced from a; prints a table row
one() {
	mode=$1
	cp "$tmp/b.img" "$tmp/s.img"
	port=$(free_port)
	"$colo" blk secondary --quiet --image "$tmp/s.img" \
		--listen "127.0.0.1:$port" --export "unix-listen:$tmp/s.nbd" \
		2>>"$tmp/s.log" &
	spid=$!
	pids="$pids $spid"
	"$colo" blk primary --quiet --image "$tmp/a.img" --resync "$mode" \
		--secondary "127.0.0.1:$port" --export "unix-listen:$tmp/p.nbd" \
		--control "$tmp/p.ctl" 2>>"$tmp/p.log" &
	ppid=$!
	pids="$pids $ppid"
	n=0
	until "$colo" blk ctl "$tmp/p.ctl" status 2>/dev/null |
		grep -q '"state":"protected"'; do
		n=$((n + 1))
		if [ $n -ge 3000 ] || ! kill -0 "$ppid" "$spid" 2>/dev/null; then
			echo "resync.sh: never protected" >&2
			cat "$tmp/p.log" "$tmp/s.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	ms=$(stat last_resync_ms)
	sent=$(stat last_resync_bytes)
	compared=$(stat last_resync_compared)
	kill "$ppid" "$spid"
	wait "$ppid" "$spid" || true
	pids=
	equal=no
	cmp -s "$tmp/a.img" "$tmp/s.img" && equal=yes
	echo "| $mode | $ms | $sent | $compared | $equal |"
}

echo "image ${mib} MiB, $changed of $granules granules (64 KiB) differ," \
	"$runs runs each, alternating"
echo "| mode | ms | bytes copied | bytes compared | equal |"
echo "| --- | --- | --- | --- | --- |"
r=0
while [ $r -lt "$runs" ]; do
	one full
	one digest
	r=$((r + 1))
done
