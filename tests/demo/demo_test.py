#!/usr/bin/env python3
"""demo_test.py - `colo demo` run as a user runs it, then a check that it
left nothing behind (network namespaces, processes, temporary files).

  vm            the VM demo end to end (two colo vm + colo proxy hosts,
                TCG guests): its last line must report every explicit
                checkpoint's RAM identical, a divergence seen and repaired
                by a checkpoint, the client's connection alive across the
                failover, and ok=1; exit status 0.
  vm_interrupt  SIGINT while the VMs boot: the demo says "interrupted",
                exits 1, and tears down as on success.
  netns         the namespace demo (`colo demo --netns`): summary, exit 0.
  preflight     without QEMU or without a guest the demo stops at once
                (exit 1, under 10 s) saying what to install.

The demo runs with TMPDIR set to a fresh directory of this test, which
must be empty afterwards. Usage: demo_test.py vm|vm_interrupt|netns|preflight COLO
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def leftovers(prefix, tmp, state):
    """What the demo left: namespaces with its prefix, processes naming
    its directories, files in its TMPDIR."""
    left = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True,
                        text=True).stdout.split()
    left += ["namespace " + n for n in ns if prefix and n.startswith(prefix)]
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tmp in cmd or (state and state in cmd):
            left.append("process %s: %s" % (pid, cmd[:120]))
    left += ["file " + f for f in os.listdir(tmp)]
    return left


def run_demo(colo, args, tmp, interrupt_on=None, timeout=400):
    env = dict(os.environ, TMPDIR=tmp)
    p = subprocess.Popen([colo, "demo"] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env)
    out, sent = [], False
    end = time.monotonic() + timeout
    try:
        for line in p.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            out.append(line)
            if interrupt_on and not sent and interrupt_on in line:
                time.sleep(5)  # QEMUs running, the first checkpoint near
                p.send_signal(signal.SIGINT)
                sent = True
            if time.monotonic() > end:
                raise AssertionError("the demo ran over %d s" % timeout)
        rc = p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    text = "".join(out)
    m = re.search(r"namespaces (c\w+-)\*", text)
    s = re.search(r"state in (\S+)", text)
    return rc, text, m.group(1) if m else None, s.group(1) if s else None


def summary(text):
    last = text.strip().splitlines()[-1]
    assert last.startswith("demo "), "no summary line: " + last
    return dict(kv.split("=", 1) for kv in last.split()[1:])


def main():
    mode, colo = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0:
        print("skipped: needs root (network namespaces)")
        return 77
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="cdt-", dir="/dev/shm")
    try:
        if mode == "preflight":
            for args, want in ((["--qemu", "/nonexistent/qemu"],
                                "apt-get install qemu-system-x86"),
                               (["--guest", tmp], "./dev.sh run")):
                t = time.monotonic()
                r = subprocess.run([colo, "demo"] + args, timeout=60,
                                   capture_output=True, text=True,
                                   env=dict(os.environ, TMPDIR=tmp))
                print(r.stderr.strip())
                assert r.returncode == 1, r
                assert want in r.stderr, r.stderr
                assert time.monotonic() - t < 10, "slow to refuse"
            assert not os.listdir(tmp), os.listdir(tmp)
            print("preflight passed")
            return 0
        if mode == "netns":
            rc, text, prefix, state = run_demo(colo, ["--netns",
                                                      "--seconds", "6"], tmp)
            assert rc == 0, "exit status %d" % rc
            assert "summary:" in text and "correct" in text
        else:
            if not shutil.which("qemu-system-x86_64"):
                print("skipped: qemu-system-x86_64 missing")
                return 77
            # Built as ./dev.sh run builds it, in the demo's own cache.
            build = os.path.join(HERE, "..", "..", "contrib", "guest",
                                 "build.sh")
            out = subprocess.run([build, "/var/cache/colo/guest"],
                                 check=True, stdout=subprocess.PIPE,
                                 text=True).stdout
            guest = ["--guest", out.strip().splitlines()[-1]]
            if mode == "vm":
                rc, text, prefix, state = run_demo(colo, ["--vm"] + guest,
                                                   tmp)
                s = summary(text)
                print("summary line:", s)
                assert rc == 0, "exit status %d" % rc
                eq, n = (int(x) for x in s["mem_equal"].split("/"))
                assert n >= 1 and eq == n, s
                assert int(s["checkpoints"]) >= n + 2, s
                assert s["diverged"] == "1" and s["repaired"] == "1", s
                assert s["conn_survived"] == "1" and s["ok"] == "1", s
                assert 0 < float(s["stall_ms"]) < 30000, s
            else:
                rc, text, prefix, state = run_demo(
                    colo, guest, tmp, interrupt_on="booting both VMs")
                assert rc == 1, "exit status %d" % rc
                assert "interrupted" in text, text
        assert prefix, "the demo did not name its namespaces"
        # The teardown is done when the demo exits: nothing to wait for.
        left = leftovers(prefix, tmp, state)
        assert not left, "left behind: %s" % left
        if state:
            assert not os.path.exists(state), state
        print("%s passed in %.1f s" % (mode, time.monotonic() - t0))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
