#!/bin/bash
# bench/netio/run.sh - TCP throughput between two namespaces, native veth
# versus through a forwarding loop of two packet: ports (netio_fwd), and
# the ratio. See README.md.
#
#   bench/netio/run.sh BUILD_DIR [BYTES] [RUNS]
set -u
BUILD=${1:?usage: run.sh BUILD_DIR [BYTES] [RUNS]}
BYTES=${2:-4000000000}
RUNS=${3:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
FWD=$BUILD/tests/netio/netio_fwd
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
[ -x "$FWD" ] || { echo "no $FWD: build the tests first"; exit 1; }

tag=cnb$$
NSA=${tag}a NSB=${tag}b NSF=${tag}f NSN=${tag}n
TMP=$(mktemp -d /tmp/${tag}.XXXXXX)
FPID=
cleanup() {
	[ -n "$FPID" ] && kill "$FPID" 2>/dev/null
	wait 2>/dev/null
	for ns in $NSA $NSB $NSF $NSN; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
cc -O2 -o "$TMP/tcp_blast" "$HERE/tcp_blast.c" || exit 1
XFER=$TMP/tcp_blast
set -e
for ns in $NSA $NSB $NSF $NSN; do ip netns add "$ns"; done
# proxied: A a0 - a1 [fwd] b1 - b0 B
ip link add a0 netns $NSA type veth peer name a1 netns $NSF
ip link add b0 netns $NSB type veth peer name b1 netns $NSF
ip -n $NSA addr add 10.78.0.1/24 dev a0
ip -n $NSB addr add 10.78.0.2/24 dev b0
# native: A n0 - n1 B, another subnet
ip link add n0 netns $NSA type veth peer name n1 netns $NSB
ip -n $NSA addr add 10.79.0.1/24 dev n0
ip -n $NSB addr add 10.79.0.2/24 dev n1
for l in a0 n0 lo; do ip -n $NSA link set $l up; done
for l in b0 n1 lo; do ip -n $NSB link set $l up; done
for l in a1 b1; do ip -n $NSF link set $l up; done
set +e

# one DST_ADDR: Gbit/s of one transfer A -> B as the receiver saw it
one() {
	local port=$((6000 + RANDOM % 1000))
	ip netns exec $NSB "$XFER" recv $port >"$TMP/r" &
	local rpid=$!
	for _ in $(seq 50); do grep -q listening "$TMP/r" && break; sleep 0.1; done
	ip netns exec $NSA "$XFER" send "$1" $port "$BYTES" >/dev/null
	wait $rpid
	grep -v listening "$TMP/r" | awk '{print $2}'
}

best() {
	local b=0 g
	for _ in $(seq "$RUNS"); do
		g=$(one "$1")
		echo "  run: $g Gbit/s" >&2
		b=$(python3 -c "print(max($b, ${g:-0}))")
	done
	echo "$b"
}

echo "native veth, $RUNS x $BYTES bytes:" >&2
native=$(best 10.79.0.2)
"$FWD" "$NSF@packet:a1" "$NSF@packet:b1" >"$TMP/fwd" 2>&1 &
FPID=$!
for _ in $(seq 50); do grep -q ready "$TMP/fwd" && break; sleep 0.1; done
echo "through packet:a1 <-> packet:b1:" >&2
proxied=$(best 10.78.0.2)
kill $FPID; wait $FPID; FPID=
echo "native_gbit=$native"
echo "proxied_gbit=$proxied"
python3 -c "print('ratio=%.2f' % ($proxied / $native))"
echo "forwarder:"
grep -v ready "$TMP/fwd"
