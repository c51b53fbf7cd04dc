#!/usr/bin/env python3
"""dh_params.py - the frame's pause plain, in TLS with dh-params.pem in
both hosts' credentials, and in TLS without it, side by side in one run
(256 MB guest dirtying 24 MB, 10 checkpoints 1 s apart each). Without the
file every standby QEMU generates DH parameters when its tls-creds-x509
object is made, which the next checkpoint waits for (doc/security.md).

usage: bench/frame/dh_params.py COLO_BINARY"""
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "vm"))
sys.path.insert(0, HERE)
import vmpair  # noqa: E402
from bench import tls_opts  # noqa: E402

colo = sys.argv[1]
for label in ("plain", "tls, dh-params.pem", "tls, no dh-params.pem"):
    opts = None
    if label != "plain":
        d = tempfile.mkdtemp(prefix="colo-dhab-")
        opts = tls_opts(d)
        if "no dh" in label:
            for h in ("phost", "shost"):
                os.unlink(os.path.join(d, h, "dh-params.pem"))
    pair = vmpair.Pair(colo, mem="256M", append="colo_dirty=24", opts=opts)
    try:
        pair.wait_protected()
        time.sleep(3)
        ps, rs = [], []
        for i in range(10):
            time.sleep(1)
            r = pair.ctl("primary", "checkpoint")
            assert r["ok"], r
            ps.append(r["pause_ms"]); rs.append(r["phases_ms"]["ram_sent"])
        print("%-24s pause median %6.1f ms  ram_sent median %6.1f ms"
              % (label, statistics.median(ps), statistics.median(rs)),
              flush=True)
    finally:
        pair.close()
