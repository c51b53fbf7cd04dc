#!/bin/bash
# bench/e2e/run.sh - native vs COLO-protected, side by side in one run.
#
#   bench/e2e/run.sh [COLO_BINARY]
#   bench/e2e/run.sh --echo [COLO_BINARY]   echo round trips only, A/B
#   bench/e2e/run.sh --redis [COLO_BINARY]  redis SET and GET only, A/B
#
# Builds the namespace topology of tests/e2e (client, switch, primary and
# secondary hosts and guests), measures with the primary host bridging its
# guest to the switch (native: proxy bypassed), then with `colo proxy` on
# both hosts (COLO), and prints a table with ratios. Root only.
# BENCH_BYTES (default 2000000000) and BENCH_REDIS_N (100000) size it.
# --echo: native, the link floor and COLO (clear and TLS link) echo only,
# for COLO_BINARY and BENCH_COLO_B (an older build) interleaved over
# BENCH_ROUNDS rounds (3) of BENCH_ECHO_N round trips (5000), medians;
# BENCH_STAMPS=1 adds a --stamps run and prints its stage histograms.
# --redis: redis SET and GET apart, native and COLO (clear and TLS link,
# BENCH_COLO_B too), over BENCH_ROUNDS rounds of BENCH_REDIS_N requests
# (20000), BENCH_REDIS_C clients (50), pipeline BENCH_REDIS_P (1); each
# party's CPU per request and the bounds it sets, per test.
set -eu
mode=bench
case "${1:-}" in
--echo | --redis)
	mode=${1#--}
	shift
	;;
esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
colo=${1:-$root/build/src/colo}
if [ "$(id -u)" != 0 ]; then
	echo "bench/e2e: needs root (network namespaces)" >&2
	exit 1
fi
if [ ! -x "$colo" ]; then
	echo "bench/e2e: no colo binary at $colo (build first, or pass its path)" >&2
	exit 1
fi
exec python3 "$root/tests/e2e/e2e.py" "$mode" "$colo"
