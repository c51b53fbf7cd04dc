#!/bin/sh
# run.sh - the frame's checkpoint benchmark: pause (median, p99, max) and
# MB moved per checkpoint for a 256 MB guest, idle and dirtying about
# 24 MB between checkpoints, side by side with QEMU's full-RAM
# stop-and-copy migration, and the dirtying load again with the frame link
# and the migration in TLS (--tls-creds; FRAME_BENCH_TLS=0 leaves it out).
# The colo binary is $COLO, else build/src/colo.
# FRAME_BENCH_N checkpoints per load (default 20), FRAME_BENCH_GAP_MS
# between them (default 1000). Last line:
#   pause_med_ms=X pause_p99_ms=Y mem_equal=N/M   (the dirtying run)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
exec python3 "$here/bench.py" "${COLO:-$root/build/src/colo}"
