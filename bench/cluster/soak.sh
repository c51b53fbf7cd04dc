#!/bin/bash
# bench/cluster/soak.sh - are the pair's timeouts stable under load? Runs
# the netns failover scenarios of tests/cluster RUNS times while a VM test
# (QEMU TCG checkpoints, tests/vm/vm_test.py checkpoints) runs beside them
# in a loop, keeps every run's logs and counts, per scenario:
#   - failed runs;
#   - corosync token timeouts ("A processor failed, forming new
#     configuration" in host b's corosync log) beyond the one the scenario
#     causes itself: each is a membership change the load caused;
#   - claims of the primary role beyond the scenario's own ("claiming the
#     primary role (epoch N)" in both supervisors' logs, once per host and
#     epoch: a retried claim is the same claim): a spurious failover.
#
#   RUNS=5 bench/cluster/soak.sh            (colo from $COLO, else build/src/colo)
#   CLUSTER_TOKEN_MS=200 CLUSTER_LEASE_MS=450 CLUSTER_MARGIN_MS=115 bench/cluster/soak.sh
#   SOAK_LOAD=0: no VM test beside (the quiet baseline).
#
# Scenarios whose PAIR.conf timeouts are fixed by cluster.py (primary_frozen,
# primary_isolated) run with those. Root only. The logs stay in $SOAK_DIR
# (a new temporary directory by default) for the timeline.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
colo=${COLO:-$root/build/src/colo}
runs=${RUNS:-5}
load=${SOAK_LOAD:-1}
dir=${SOAK_DIR:-$(mktemp -d /tmp/colo-soak.XXXXXX)}
mkdir -p "$dir"
# scenario: claims and token timeouts it causes by itself
declare -A claims=([primary_dies]=2 [link_cut]=1 [primary_isolated]=2
	[primary_frozen]=2 [switchover]=3 [secondary_dies]=1)
declare -A tokens=([primary_dies]=1 [link_cut]=1 [primary_isolated]=1
	[primary_frozen]=1 [switchover]=0 [secondary_dies]=1)
scenarios=${SCENARIOS:-primary_dies link_cut primary_isolated primary_frozen switchover}
if [ "$(id -u)" != 0 ]; then
	echo "bench/cluster/soak: needs root (network namespaces)" >&2
	exit 1
fi
loadpid=
# SIGINT first: vm_test.py then stops its daemons and QEMUs (their own
# sessions, out of the loop's process group) in its finally.
stop_load() {
	if [ -n "$loadpid" ]; then
		touch "$dir/load.stop"
		kill -INT -- -"$loadpid" 2>/dev/null || true
		# the whole group: bash leaves at once, vm_test.py's cleanup
		# takes seconds
		for _ in $(seq 1 40); do
			kill -0 -- -"$loadpid" 2>/dev/null || break
			sleep 1
		done
		kill -- -"$loadpid" 2>/dev/null || true
		wait "$loadpid" 2>/dev/null || true
	fi
}
trap stop_load EXIT
trap 'exit 130' INT TERM
if [ "$load" = 1 ]; then
	# A background job starts with SIGINT ignored, and so would
	# vm_test.py: the wrapper gives it Python's handler back, so that
	# SIGINT runs its cleanup (its daemons and QEMUs are in sessions of
	# their own); the loop ends at the stop file.
	rm -f "$dir/load.stop"
	setsid bash -c "while [ ! -e '$dir/load.stop' ]; do \
		COLO_VM_CHECKPOINTS=200 python3 -c 'import runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name=\"__main__\")' \
		'$root/tests/vm/vm_test.py' checkpoints '$colo' \
		>>'$dir/load.log' 2>&1; done" &
	loadpid=$!
	sleep 20 # the guest boots and checkpoints before the first scenario
fi
printf '| scenario | runs | failed | token timeouts (excess) | claims (spurious) | decision ms |\n'
printf '|---|---|---|---|---|---|\n'
tot_fail=0 tot_tok=0 tot_spur=0
for s in $scenarios; do
	fail=0 tok=0 spur=0 ms=
	for i in $(seq 1 "$runs"); do
		d=$dir/$s-$i
		rc=0
		CLUSTER_KEEP_LOGS=$d python3 "$root/tests/cluster/cluster.py" "$s" \
			"$colo" >"$d.out" 2>&1 || rc=$?
		[ "$rc" = 0 ] || fail=$((fail + 1))
		m=$(sed -n 's/^BENCH .*"decision_ms": \([0-9]*\).*/\1/p' "$d.out")
		ms="$ms${m:-?} "
		t=$(cat "$d"/b-corosync.log 2>/dev/null |
			grep -c "A processor failed, forming new configuration" || true)
		# one claim per host and epoch: a claim that corosync's cpg
		# refuses for the moment (CS_ERR_TRY_AGAIN during a
		# membership change) is logged again at each retry
		c=$(for h in a b; do
			grep -o "claiming the primary role (epoch [0-9]*" \
				"$d/up-$h.log" 2>/dev/null | sort -u
		done | wc -l)
		t=$((t - ${tokens[$s]:-0}))
		c=$((c - ${claims[$s]:-0}))
		[ "$t" -gt 0 ] && tok=$((tok + t))
		[ "$c" -gt 0 ] && spur=$((spur + c))
		echo "soak: $s run $i: rc $rc, excess token timeouts $t, excess claims $c" >&2
	done
	printf '| %s | %d | %d | %d | %d | %s|\n' "$s" "$runs" "$fail" "$tok" \
		"$spur" "$ms"
	tot_fail=$((tot_fail + fail)) tot_tok=$((tot_tok + tok))
	tot_spur=$((tot_spur + spur))
done
echo "failed=$tot_fail excess_token_timeouts=$tot_tok spurious_claims=$tot_spur" \
	"token/lease/margin=${CLUSTER_TOKEN_MS:-default}/${CLUSTER_LEASE_MS:-default}/${CLUSTER_MARGIN_MS:-default}" \
	"load=$load logs=$dir"
