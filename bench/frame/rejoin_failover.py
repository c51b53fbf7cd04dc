#!/usr/bin/env python3
"""rejoin_failover.py - how long a secondary's `failover` takes while a
rejoin try waits in its HELLO step (a fake primary that accepts the
connect and then says nothing), for two colo binaries side by side,
alternating, REPS runs each (default 3). With the steps on the event loop
the reply is immediate; with a blocking step it waits for the rest of the
step's 2 s bound.

usage: bench/frame/rejoin_failover.py COLO_A COLO_B"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "vm"))
import vmpair  # noqa: E402
from vm_rejoin_steps_test import Fake  # noqa: E402


def one(colo):
    """One pair: protected, primary killed, a silent fake primary in
    its place; the failover asked 0.3 s into a try's HELLO step."""
    pair = vmpair.Pair(colo)
    fake = None
    try:
        pair.wait_protected()
        pair.kill("primary")
        fake = Fake(pair.port, "silent")
        vmpair.wait_for(lambda: fake.accepts >= 1, 30, "a rejoin try")
        time.sleep(0.3)
        t = time.monotonic()
        r = pair.ctl("secondary", "failover")
        dt = time.monotonic() - t
        assert r.get("ok"), r
        return dt
    finally:
        if fake:
            fake.close()
        pair.close()


def main():
    bins = [os.path.abspath(b) for b in sys.argv[1:3]]
    if len(bins) != 2:
        print(__doc__)
        return 2
    res = {b: [] for b in bins}
    for _ in range(int(os.environ.get("REPS", "3"))):
        for b in bins:
            res[b].append(one(b))
    for b in bins:
        print("%s: failover replies in ms: %s" % (
            b, ", ".join("%.0f" % (x * 1000) for x in res[b])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
