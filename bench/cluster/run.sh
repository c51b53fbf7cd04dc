#!/bin/bash
# bench/cluster/run.sh - the failure scenarios of tests/cluster with
# corosync really running, and a table of what they measured.
#
#   bench/cluster/run.sh            (colo from $COLO, else build/src/colo)
#   COLO_OLD=/path/to/old/colo bench/cluster/run.sh
#       also runs primary_dies (and vm_primary_dies with BENCH_VM=1) with
#       the old and the new binary in turn, RUNS_OLD times each (3), rows
#       tagged "(old)" and "(new)": a side-by-side comparison in one run.
#       The old binary gets OLD_TIMES (token lease margin, default the
#       previous defaults 300 700 175), the new one PAIR.conf's defaults.
#       COMPARE_ONLY=1: only that comparison.
#
# Runs each scenario once with PAIR.conf's default timeouts, then the
# primary's death with shorter corosync tokens. Columns: detection to
# decision (ms; for a cut, to the losing side's quorum loss), the client's
# longest silence (a redis PING every 2 ms), frames from the deposed host
# after the decision, connections lost, and for reprotect (scenario 7)
# and switchover the time to re-protect: from the returning host's
# `colo up` (reprotect) or from the switch-over command (switchover) to
# both hosts' `colo status` saying protected, the test closing at once
# the connections re-protection waits for. Writes lost: acknowledged
# disk writes the survivor no longer holds, in the scenarios with a
# replicated disk (disk_reprotect: blocks written through blk's export;
# scenarios 1-6 (primary_dies, link_cut*, secondary_dies, witness_dies,
# primary_isolated, primary_frozen): the client writes numbered blocks
# through the serving host's export all through the fault, and the host
# serving at the end must hold every write acknowledged before the fault
# and every one it acknowledged itself; vm_disk_*: the client polls the
# last write the guest read back, and the survivor must never answer
# less); "-" where there is no disk.
# Root only; the vm_* scenarios need QEMU and the test guest
# (contrib/guest/build.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
colo=${COLO:-$root/build/src/colo}
if [ "$(id -u)" != 0 ]; then
	echo "bench/cluster: needs root (network namespaces)" >&2
	exit 1
fi
if [ ! -x "$colo" ]; then
	echo "bench/cluster: no colo binary at $colo (build first)" >&2
	exit 1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
bin=$colo tag=
run() { # scenario [TOKEN LEASE MARGIN]; the binary $bin, rows tagged $tag
	local rc=0
	if [ $# -gt 1 ]; then
		CLUSTER_TOKEN_MS=$2 CLUSTER_LEASE_MS=$3 CLUSTER_MARGIN_MS=$4 \
			python3 "$root/tests/cluster/cluster.py" "$1" "$bin" \
			>"$out.log" 2>&1 || rc=$?
	else
		python3 "$root/tests/cluster/cluster.py" "$1" "$bin" \
			>"$out.log" 2>&1 || rc=$?
	fi
	grep '^BENCH ' "$out.log" |
		sed "s/^BENCH /$rc /; s/\"scenario\": \"\([a-z_]*\)\"/\"scenario\": \"\1$tag\"/" \
			>>"$out" || echo "$rc {\"scenario\": \"$1$tag\"}" >>"$out"
	rm -f "$out.log"
}
# the old binary runs with the old defaults (token/lease/margin)
old_times=${OLD_TIMES:-300 700 175}
if [ -n "${COLO_OLD:-}" ]; then
	cmp_scen=primary_dies
	[ "${BENCH_VM:-0}" = 1 ] && cmp_scen="$cmp_scen vm_primary_dies"
	for i in $(seq 1 "${RUNS_OLD:-3}"); do
		for s in $cmp_scen; do
			echo "bench/cluster: $s, old and new binary (run $i)" >&2
			# shellcheck disable=SC2086
			bin=$COLO_OLD tag=" (old)" run "$s" $old_times
			bin=$colo tag=" (new)" run "$s"
		done
	done
fi
if [ "${COMPARE_ONLY:-0}" != 1 ]; then
	for s in primary_dies link_cut link_cut_b_primary secondary_dies \
		witness_dies primary_isolated primary_frozen reprotect \
		switchover stale_secondary disk_reprotect vm_disk_primary_dies \
		vm_disk_reprotect; do
		echo "bench/cluster: $s" >&2
		run $s
	done
	for t in "1000 1500 500" "300 700 200" "300 500 125" "200 400 100"; do
		echo "bench/cluster: primary_dies, token/lease/margin $t" >&2
		# shellcheck disable=SC2086
		run primary_dies $t
	done
fi
python3 - "$out" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    rc, js = line.split(" ", 1)
    rows.append((int(rc), json.loads(js)))
print("| scenario | token/lease/margin ms | result | decision ms | client "
      "stall ms | frames from deposed host | conns lost | writes lost | "
      "re-protect s |")
print("|---|---|---|---|---|---|---|---|---|")
passed = split = lost = wlost = 0
wmeasured = False
for rc, r in rows:
    res = {0: "passed", 77: "skipped"}.get(rc, "FAILED")
    if not r.get("lease_hook", True):
        res = "no lease hook in the proxy"
    passed += rc == 0
    split += 1 if r.get("deposed_frames", 0) else 0
    lost += r.get("conns_lost", 0)
    if "writes_lost" in r:
        wmeasured = True
        wlost += r["writes_lost"]
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        r.get("scenario"), "/".join(str(r.get(k, "?")) for k in
                                    ("token_ms", "lease_ms", "margin_ms")),
        res, r.get("decision_ms", "-"), r.get("stall_ms", "-"),
        r.get("deposed_frames", "-"), r.get("conns_lost", "-"),
        r.get("writes_lost", "-"), r.get("reprotect_s", "-")))
print("scenarios=%d passed=%d split_brain=%d conns_lost=%d writes_lost=%s"
      % (len(rows), passed, split, lost, wlost if wmeasured else "-"))
PY
