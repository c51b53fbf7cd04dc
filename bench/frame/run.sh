#!/bin/sh
# run.sh - the frame's checkpoint benchmark: pause (median, p99, max),
# where it goes (median time from the pause's start to the end of each
# step) and MB moved per checkpoint, for a 256 MB and a 1 GB guest, idle
# and dirtying about 24 MB between checkpoints (and that load again with
# the frame link and the migration in TLS), side by side with QEMU's
# full-RAM stop-and-copy migration of the same guest; first the floor under
# the pause on this machine (bench/frame/scan_floor.c: the changed-page
# scan with 1 and 2 threads beside one plain read of the RAM).
# The colo binary is $COLO, else build/src/colo (scan_floor beside it in
# build/bench). Environment:
#   FRAME_BENCH_SIZES      guest sizes (default "256M 1G")
#   FRAME_BENCH_N          checkpoints per row (default 20)
#   FRAME_BENCH_GAP_MS     between checkpoints (default 1000)
#   FRAME_BENCH_MIGRATION  0: leave out the stop-and-copy rows
#   FRAME_BENCH_TLS        0: leave out the TLS rows
# A line size=S pause_med_ms=... per size; the last line is the dirtying
# run of the first size:
#   pause_med_ms=X pause_p99_ms=Y mem_equal=N/M
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
colo=${COLO:-$root/build/src/colo}
floor=$(dirname "$colo")/../bench/scan_floor
if [ -x "$floor" ]; then
	for s in ${FRAME_BENCH_SIZES:-256M 1G}; do
		case $s in *G) mb=$((${s%G} * 1024)) ;; *M) mb=${s%M} ;; *) mb=$s ;; esac
		"$floor" "$mb" 5
	done
fi
exec python3 "$here/bench.py" "$colo"
