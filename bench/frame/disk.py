#!/usr/bin/env python3
"""disk.py - what the disk costs a checkpoint: the same guest (128 MB,
TCG) checkpointed by `colo vm` side by side in one run
  - without a disk,
  - with a virtio-blk disk on `colo blk` and --blk-control (prepare on the
    primary after the stop, commit on the secondary before LOADED), the
    guest idle,
  - the same with the guest writing a 4 KiB block every second and
    reading 1 MiB back after each (contrib/guest colo_disk=1).
Pause median / p99 / max over DISK_BENCH_N checkpoints (default 15)
DISK_BENCH_GAP_MS apart (default 1000), and the median time from the
stop to the end of the RAM step (phases_ms.ram_sent), which holds the
primary's blk prepare; with the idle disk, also the blk prepare and
commit round trips alone (50 of each, from Python, between checkpoints). Usage: disk.py [COLO_BINARY] (default
build/src/colo). Last line: pause_med_ms=NODISK/DISK/WRITING.
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "vm"))
import vmpair  # noqa: E402

N = int(os.environ.get("DISK_BENCH_N", "15"))
GAP = int(os.environ.get("DISK_BENCH_GAP_MS", "1000")) / 1000.0


def quantiles(xs):
    s = sorted(xs)
    return (s[len(s) // 2], s[min(len(s) - 1, int(0.99 * (len(s) - 1) + 0.5))],
            s[-1])


def run(colo, label, disk, append):
    pair = vmpair.Pair(colo, append=append, disk=(16 << 20) if disk else None)
    try:
        pair.wait_protected()
        time.sleep(10)  # the guest boots; with colo_disk its loop runs
        pauses, ram = [], []
        for _ in range(N):
            time.sleep(GAP)
            r = pair.ctl("primary", "checkpoint")
            if not r["ok"]:
                raise SystemExit("%s: checkpoint failed: %s" % (label, r))
            pauses.append(r["pause_ms"])
            ram.append(r["phases_ms"]["ram_sent"])
        med, p99, mx = quantiles(pauses)
        print("%-34s pause med %6.1f  p99 %6.1f  max %6.1f ms   "
              "stop..ram_sent med %6.1f ms" %
              (label, med, p99, mx, quantiles(ram)[0]), flush=True)
        if disk:
            st = pair.blk_ctl("secondary", "stats")
            assert st["prepares"] >= N and st["checkpoints"] >= N, st
        if disk and not append:
            # The hooks alone, as colo vm calls them (one control
            # connection each), between checkpoints; only with an idle
            # guest, whose writes would (rightly) fail the commit.
            pre, com = [], []
            for _ in range(50):
                t0 = time.monotonic()
                assert pair.blk_ctl("primary", "prepare")["ok"]
                t1 = time.monotonic()
                assert pair.blk_ctl("secondary", "commit")["ok"]
                pre.append((t1 - t0) * 1000)
                com.append((time.monotonic() - t1) * 1000)
            print("%-34s blk prepare med %.2f ms (p99 %.2f), commit med "
                  "%.2f ms (p99 %.2f), 50 each" %
                  ("", quantiles(pre)[0], quantiles(pre)[1],
                   quantiles(com)[0], quantiles(com)[1]), flush=True)
        return med
    finally:
        pair.close()


def main():
    colo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(ROOT, "build", "src", "colo"))
    print("disk in the checkpoint: 128 MB guest, %d checkpoints %.1f s "
          "apart, QEMU TCG" % (N, GAP), flush=True)
    a = run(colo, "colo vm, no disk", False, "")
    b = run(colo, "colo vm + colo blk, idle disk", True, "")
    c = run(colo, "colo vm + colo blk, guest writing", True, "colo_disk=1")
    print("pause_med_ms=%.1f/%.1f/%.1f" % (a, b, c))


if __name__ == "__main__":
    main()
