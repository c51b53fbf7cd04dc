#!/bin/bash
# test_netio.sh - the netio ports on real interfaces: a TCP transfer of a
# few MB between two namespaces, bridged by netio_fwd through
#   1. packet:a1 <-> packet:b1            (veth ends in a third namespace)
#   2. packet:a1 <-> tap:t0               (the tap inside the far namespace)
#   3. packet:a1 <-> qemu:unix-listen:S ~ qemu:unix:S <-> packet:b1
#      (the stream in the middle has no vnet header: GSO frames must be
#      segmented in software and their checksums completed)
# must arrive intact (sha256) with GSO super-frames seen on the way.
# Needs root and iproute2; exits 77 (skip) otherwise.
set -u
FWD=$1
XFER=$2
BYTES=${NETIO_TEST_BYTES:-8000000}

[ "$(id -u)" = 0 ] || { echo "skip: not root"; exit 77; }
ip netns list >/dev/null 2>&1 || { echo "skip: no ip netns"; exit 77; }
[ -e /dev/net/tun ] || { echo "skip: no /dev/net/tun"; exit 77; }

tag=cnio$$
NSA=${tag}a NSB=${tag}b NSC=${tag}c NSF=${tag}f
SOCK=/tmp/${tag}.sock
TMP=$(mktemp -d /tmp/${tag}.XXXXXX)
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	for ns in $NSA $NSB $NSC $NSF; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$TMP" "$SOCK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*"
	for f in "$TMP"/*.out; do echo "== $f"; cat "$f"; done
	exit 1
}

set -e
for ns in $NSA $NSB $NSC $NSF; do ip netns add "$ns"; done
ip link add a0 netns $NSA type veth peer name a1 netns $NSF
ip link add b0 netns $NSB type veth peer name b1 netns $NSF
ip -n $NSA addr add 10.77.0.1/24 dev a0
ip -n $NSB addr add 10.77.0.2/24 dev b0
ip -n $NSC tuntap add dev t0 mode tap vnet_hdr
ip -n $NSC addr add 10.77.0.3/24 dev t0
for l in a0 lo; do ip -n $NSA link set $l up; done
for l in b0 lo; do ip -n $NSB link set $l up; done
for l in a1 b1; do ip -n $NSF link set $l up; done
ip -n $NSC link set lo up
# the tap is this namespace's NIC: its owner (here the test) brings it up
ip -n $NSC link set t0 up
set +e

# start_fwd NAME SPEC SPEC: a forwarder, waited for until it is ready.
start_fwd() {
	local name=$1
	"$FWD" "$2" "$3" >"$TMP/$name.out" 2>&1 &
	PIDS+=($!)
	eval "${name}_pid=$!"
	for _ in $(seq 50); do
		grep -q ready "$TMP/$name.out" && return 0
		sleep 0.1
	done
	fail "$name did not start"
}

stop_fwd() {
	local pid
	eval "pid=\$${1}_pid"
	kill "$pid"
	wait "$pid" || fail "$1 exited with an error"
}

# transfer FROM_NS TO_NS TO_ADDR NAME: a TCP transfer, hashes compared.
transfer() {
	local port=$((5000 + RANDOM % 1000))
	ip netns exec "$2" python3 "$XFER" recv $port >"$TMP/$4.recv.out" 2>&1 &
	local rpid=$!
	PIDS+=($rpid)
	for _ in $(seq 50); do
		grep -q listening "$TMP/$4.recv.out" && break
		sleep 0.1
	done
	timeout 60 ip netns exec "$1" python3 "$XFER" send "$3" $port \
		"$BYTES" >"$TMP/$4.send.out" 2>&1 || fail "$4: send failed"
	wait $rpid || fail "$4: receiver failed"
	local sent got
	sent=$(awk '{print $1, $2}' "$TMP/$4.send.out")
	got=$(grep -v listening "$TMP/$4.recv.out" | awk '{print $1, $2}')
	[ -n "$sent" ] && [ "$sent" = "$got" ] ||
		fail "$4: sent '$sent' received '$got'"
	echo "ok: $4 $BYTES bytes intact ($(awk '{print $3}' "$TMP/$4.send.out") Gbit/s)"
}

# stat FILE SPEC KEY: one counter from a forwarder's report.
stat() {
	grep "^port $2 " "$1" | tr ' ' '\n' | sed -n "s/^$3=//p"
}

need_positive() {
	[ "${1:-0}" -gt 0 ] 2>/dev/null || fail "$2 is '${1:-}', expected > 0"
}

# 1. packet <-> packet
start_fwd f1 "$NSF@packet:a1" "$NSF@packet:b1"
transfer $NSA $NSB 10.77.0.2 packet_ab
transfer $NSB $NSA 10.77.0.1 packet_ba
stop_fwd f1
cat "$TMP/f1.out"
need_positive "$(stat "$TMP/f1.out" packet:a1 rx_gso)" "packet:a1 rx_gso"
need_positive "$(stat "$TMP/f1.out" packet:b1 rx_gso)" "packet:b1 rx_gso"

# 2. packet <-> tap (the tap lives in NSC)
start_fwd f2 "$NSF@packet:a1" "$NSC@tap:t0"
transfer $NSA $NSC 10.77.0.3 tap_in
transfer $NSC $NSA 10.77.0.1 tap_out
stop_fwd f2
cat "$TMP/f2.out"
need_positive "$(stat "$TMP/f2.out" packet:a1 rx_gso)" "packet:a1 rx_gso"
need_positive "$(stat "$TMP/f2.out" tap:t0 rx_gso)" "tap:t0 rx_gso"

# 3. packet <-> qemu stream <-> packet
start_fwd f3 "$NSF@packet:a1" "qemu:unix-listen:$SOCK"
start_fwd f4 "qemu:unix:$SOCK" "$NSF@packet:b1"
transfer $NSA $NSB 10.77.0.2 qemu_ab
transfer $NSB $NSA 10.77.0.1 qemu_ba
# the connecting end first: it treats the loss of its peer as fatal
stop_fwd f4
stop_fwd f3
cat "$TMP/f3.out" "$TMP/f4.out"
need_positive "$(stat "$TMP/f3.out" "qemu:unix-listen:$SOCK" tx_segments)" \
	"qemu-listen tx_segments"
need_positive "$(stat "$TMP/f4.out" "qemu:unix:$SOCK" tx_segments)" \
	"qemu-connect tx_segments"
big=$(stat "$TMP/f4.out" "qemu:unix:$SOCK" max_len)
[ "$big" -le 1518 ] || fail "a frame of $big bytes crossed the qemu stream"
echo "PASS"
