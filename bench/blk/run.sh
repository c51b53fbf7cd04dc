#!/bin/sh
# run.sh - qemu-nbd, `colo blk serve` and the replicating `colo blk
# primary` (with a local `colo blk secondary`), the link plain and in TLS
# (a second pair with --tls-creds), side by side, same load.
#
# usage: bench/blk/run.sh [-b BUILD_DIR] [-n RUNS] [-s SIZE] [-d DEPTH]
#   BUILD_DIR  meson build directory holding src/colo (default ./build)
#   RUNS       repetitions of every case, the best kept (default 3)
#   SIZE       image size, qemu-img syntax (default 1G)
#   DEPTH      requests in flight, qemu-img bench -d (default 16)
# Environment: COLO (the colo binary, overrides BUILD_DIR), PRIMARY_OPTS
# (extra options of colo blk primary, e.g. --async), TMPDIR (where
# the two images go: 2 x SIZE), TRANSPORT (unix or tcp, default unix),
# CASES (subset of: write-4k write-64k read-4k read-64k), TLS (0: leave
# out the TLS pair). The TLS pair's credentials are made per run by
# tests/tls/mkcreds.sh (openssl).
# Each server gets its own raw image; writes run first and cover the
# image, so reads come from the page cache for all. The primary is measured
# only once the pair reports "protected" (initial copy done), so every
# write it completes was applied on the secondary first (sync mode).
set -eu

build=build
runs=3
size=1G
depth=16
while getopts b:n:s:d: opt; do
	case $opt in
	b) build=$OPTARG ;;
	n) runs=$OPTARG ;;
	s) size=$OPTARG ;;
	d) depth=$OPTARG ;;
	*) sed -n '2,/^set -eu/p' "$0" | grep '^#'; exit 2 ;;
	esac
done
colo=${COLO:-$build/src/colo}
transport=${TRANSPORT:-unix}
tls=${TLS:-1}
mkcreds=$(dirname "$0")/../../tests/tls/mkcreds.sh
cases=${CASES:-"write-64k write-4k read-4k read-64k"}
[ -x "$colo" ] || { echo "run.sh: $colo not built" >&2; exit 1; }
for t in qemu-img qemu-nbd; do
	command -v $t >/dev/null || { echo "run.sh: $t not found" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/colo-blk-bench.XXXXXX")
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

# uri NAME: where the server named NAME listens, as a qemu URI
uri_of() {
	if [ "$transport" = tcp ]; then
		echo "nbd://127.0.0.1:$(cat "$tmp/$1.port")/"
	else
		echo "nbd+unix:///?socket=$tmp/$1.sock"
	fi
}

start_servers() {
	servers="qemu colo prim sec"
	[ "$tls" = 0 ] || servers="$servers ptls stls"
	for s in $servers; do
		qemu-img create -q -f raw "$tmp/$s.img" "$size"
		if [ "$transport" = tcp ]; then
			free_port >"$tmp/$s.port"
		fi
	done
	if [ "$transport" = tcp ]; then
		qemu_addr="-b 127.0.0.1 -p $(cat "$tmp/qemu.port")"
		colo_addr="tcp-listen:127.0.0.1:$(cat "$tmp/colo.port")"
		prim_addr="tcp-listen:127.0.0.1:$(cat "$tmp/prim.port")"
		sec_addr="tcp-listen:127.0.0.1:$(cat "$tmp/sec.port")"
		[ "$tls" = 0 ] || ptls_addr="tcp-listen:127.0.0.1:$(cat "$tmp/ptls.port")"
		[ "$tls" = 0 ] || stls_addr="tcp-listen:127.0.0.1:$(cat "$tmp/stls.port")"
	else
		ptls_addr="unix-listen:$tmp/ptls.sock"
		stls_addr="unix-listen:$tmp/stls.sock"
		qemu_addr="-k $tmp/qemu.sock"
		colo_addr="unix-listen:$tmp/colo.sock"
		prim_addr="unix-listen:$tmp/prim.sock"
		sec_addr="unix-listen:$tmp/sec.sock"
	fi
	link_port=$(free_port)
	# qemu-nbd defaults: cache=writeback, aio=threads, like ours.
	# shellcheck disable=SC2086
	qemu-nbd -f raw -t -x '' $qemu_addr "$tmp/qemu.img" \
		2>"$tmp/qemu.log" &
	pids="$pids $!"
	"$colo" blk serve --quiet --image "$tmp/colo.img" \
		--export "$colo_addr" 2>"$tmp/colo.log" &
	pids="$pids $!"
	"$colo" blk secondary --image "$tmp/sec.img" \
		--listen "127.0.0.1:$link_port" --export "$sec_addr" \
		2>"$tmp/sec.log" &
	pids="$pids $!"
	echo $! >"$tmp/sec.pid"
	"$colo" blk primary ${PRIMARY_OPTS:-} --image "$tmp/prim.img" --export "$prim_addr" \
		--secondary "127.0.0.1:$link_port" --control "$tmp/prim.ctl" \
		2>"$tmp/prim.log" &
	pids="$pids $!"
	echo "$(cat "$tmp/sec.pid") $!" >"$tmp/prim.pids"
	pairs=prim
	if [ "$tls" != 0 ]; then
		"$mkcreds" ca "$tmp/ca"
		"$mkcreds" host "$tmp/ca" "$tmp/phost" phost
		"$mkcreds" host "$tmp/ca" "$tmp/shost" shost
		tls_port=$(free_port)
		"$colo" blk secondary --image "$tmp/stls.img" \
			--listen "127.0.0.1:$tls_port" --export "$stls_addr" \
			--tls-creds "$tmp/shost" --tls-peer phost \
			2>"$tmp/stls.log" &
		pids="$pids $!"
		echo $! >"$tmp/stls.pid"
		"$colo" blk primary ${PRIMARY_OPTS:-} --image "$tmp/ptls.img" \
			--export "$ptls_addr" --secondary "127.0.0.1:$tls_port" \
			--control "$tmp/ptls.ctl" --tls-creds "$tmp/phost" \
			--tls-peer shost 2>"$tmp/ptls.log" &
		pids="$pids $!"
		echo "$(cat "$tmp/stls.pid") $!" >"$tmp/ptls.pids"
		pairs="prim ptls"
	fi
	for pr in $pairs; do
		i=0
		until "$colo" ctl "$tmp/$pr.ctl" status 2>/dev/null |
			grep -q '"state":"protected"'; do
			i=$((i + 1))
			[ $i -lt 600 ] || { echo "run.sh: the pair never became protected" >&2; cat "$tmp/$pr.log" >&2; exit 1; }
			sleep 0.1
		done
	done
	for s in qemu colo $pairs; do
		i=0
		until qemu-img info "$(uri_of $s)" >/dev/null 2>&1; do
			i=$((i + 1))
			[ $i -lt 100 ] || { echo "run.sh: $s server did not start" >&2; cat "$tmp/$s.log" >&2; exit 1; }
			sleep 0.1
		done
	done
}

# cpu_ticks NAME: user+system clock ticks so far of pair NAME's two
# processes (primary and secondary), 0 for a server alone
cpu_ticks() {
	t=0
	if [ -f "$tmp/$1.pids" ]; then
		for p in $(cat "$tmp/$1.pids"); do
			t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
		done
	fi
	echo $t
}

# bench NAME CASE: prints MiB/s of the best of $runs runs; the pair's CPU
# seconds per GiB over all runs go to $tmp/NAME.cpu
bench() {
	op=${2%-*}
	bs=${2#*-}
	case $bs in
	4k) count=65536 ;;
	64k) count=16384 ;;
	esac
	wflag=
	[ "$op" = write ] && wflag=-w
	best=0
	r=0
	t0=$(cpu_ticks "$1")
	while [ $r -lt "$runs" ]; do
		# shellcheck disable=SC2086
		secs=$(qemu-img bench -f raw $wflag -c $count -d "$depth" -s "$bs" \
			"$(uri_of "$1")" | sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p')
		[ -n "$secs" ] || { echo "run.sh: qemu-img bench failed on $1" >&2; exit 1; }
		best=$(python3 -c "
bs = {'4k': 4096, '64k': 65536}['$bs']
v = $count * bs / 1048576 / $secs
print('%.1f' % max(v, $best))")
		r=$((r + 1))
	done
	python3 -c "
gib = $runs * $count * {'4k': 4096, '64k': 65536}['$bs'] / 2**30
print('%.2f' % (($(cpu_ticks "$1") - $t0) / $(getconf CLK_TCK) / gib))" >"$tmp/$1.cpu"
	echo "$best"
}

start_servers
echo "qemu-img bench, queue depth $depth, $size raw images, $transport sockets, best of $runs"
echo "serve: colo blk serve; primary: colo blk primary replicating (sync) to a local colo blk secondary"
if [ "$tls" = 0 ]; then
	printf '%-10s %10s %10s %10s %12s %14s\n' case 'qemu-nbd' 'serve' 'primary' 'serve/qemu' 'primary/qemu'
else
	echo "primary+tls: the same with the replication link in TLS 1.3 (--tls-creds)"
	echo "cpu: CPU seconds per GiB written or read, primary + secondary processes"
	printf '%-10s %10s %10s %10s %12s %12s %14s %12s %9s %9s\n' case 'qemu-nbd' 'serve' 'primary' 'primary+tls' 'serve/qemu' 'primary/qemu' 'tls/plain' 'cpu' 'cpu+tls'
fi
for c in $cases; do
	q=$(bench qemu "$c")
	o=$(bench colo "$c")
	p=$(bench prim "$c")
	r1=$(python3 -c "print('%.2f' % ($o / $q))")
	r2=$(python3 -c "print('%.2f' % ($p / $q))")
	if [ "$tls" = 0 ]; then
		printf '%-10s %10s %10s %10s %12s %14s\n' "$c" "$q" "$o" "$p" "${r1}x" "${r2}x"
	else
		t=$(bench ptls "$c")
		r3=$(python3 -c "print('%.2f' % ($t / $p))")
		printf '%-10s %10s %10s %10s %12s %12s %14s %12s %9s %9s\n' "$c" "$q" "$o" "$p" "$t" "${r1}x" "${r2}x" "${r3}x" "$(cat "$tmp/prim.cpu")" "$(cat "$tmp/ptls.cpu")"
	fi
done
echo "(MiB/s)"
