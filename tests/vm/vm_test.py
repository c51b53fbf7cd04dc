#!/usr/bin/env python3
"""vm_test.py - the frame with real parts: two `colo vm` daemons on
loopback, each owning a QEMU (TCG) running the tiny guest.

  checkpoints  N checkpoints in a row (50, COLO_VM_CHECKPOINTS to change)
               while the guest dirties memory; at a sample of them (every
               5th and the last) the test has both QEMUs pmemsave their
               whole RAM while both are stopped and compares the dumps
               byte for byte; 0 failures, 0 differences; both VMs keep
               running; then failover by command: the secondary's VM runs
               on alone and the primary reports degraded.
  secondary_lost  the secondary host (daemon and QEMUs) is killed in the
               middle of a checkpoint: the checkpoint fails, the primary's
               VM runs on, status says degraded with the reason; a new
               secondary then joins, gets everything, and RAM is equal.
  primary_lost the primary host is killed in the middle of a checkpoint
               (after the RAM step): the secondary undoes its RAM writes,
               resumes the VM of the previous checkpoint, tries to rejoin,
               fails over by command between two tries (which ends them),
               and its guest runs on.
  periodic     --interval drives checkpoints by itself; --min-interval
               defers a command that comes too soon (counted); the
               events stream reports checkpoints.
  silent       the frame link's idle timeout between checkpoints: the
               secondary's daemon is held (SIGSTOP): the primary degrades
               with "link silent" without any checkpoint; a new secondary
               joins; the primary's daemon is held: the secondary
               notices (primary-lost, "link silent").
  flood        with TLS, 200 idle connections on the primary's frame link
               port (the 8 lobby slots full), then the same kept up (each
               closed one reopened at once): a joining secondary still
               gets in (the oldest unproven connection gives way).
  rejoin       a checkpoint fails while both daemons live (the
               secondary's standby QEMU is held with SIGSTOP, so its
               migration never completes): the primary degrades with the
               reason, the secondary rejoins by itself (no restart), the
               primary's full first checkpoint makes the pair protected
               again, and a checkpoint after it has equal RAM dumps.
  rejoin_off   the same failure with --no-rejoin: no attempt is made and
               the primary stays degraded.
  rejoin_refused  the primary host is replaced by one whose machine
               type differs: the secondary's rejoin is refused, says why,
               and is not retried at once (no spin); its VM runs on and
               fails over by command.
  promote      the primary host dies, the secondary fails over, and a
               new primary daemon takes its guest over (--promote, as
               colo up re-protects: the old control socket moved aside to
               .old, a fresh --dir): the guest runs on in it, the old
               daemon exits, and neither the .old socket nor the old
               RAM directory is left behind.
  refused      guest arguments that cannot work are refused with the
               reason; a secondary whose machine type differs is refused
               before the first checkpoint, and the primary says why.
Usage: vm_test.py TEST COLO_BINARY
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmpair  # noqa: E402


def test_checkpoints(colo):
    n = int(os.environ.get("COLO_VM_CHECKPOINTS", "50"))
    pair = vmpair.Pair(colo, append="colo_dirty=8")
    try:
        pair.wait_protected()
        compared = equal = 0
        pauses = []
        for i in range(1, n + 1):
            dump = i % 5 == 0 or i == n
            r = pair.ctl("primary", "checkpoint", dump=dump)
            assert r["ok"], "checkpoint %d failed: %s" % (i, r)
            pauses.append(r["pause_ms"])
            if dump:
                a, b = pair.dump_paths(r["seq"])
                compared += 1
                if vmpair.same_file(a, b):
                    equal += 1
                else:
                    print("checkpoint %d: RAM differs" % r["seq"])
                os.unlink(a)
                os.unlink(b)
        st = pair.status("primary")
        print("checkpoints=%d failures=%d mem_equal=%d/%d pause_med_ms=%.1f"
              " pause_max_ms=%.1f" % (st["checkpoints"], st["failures"],
                                      equal, compared,
                                      sorted(pauses)[len(pauses) // 2],
                                      max(pauses)))
        assert st["failures"] == 0
        assert equal == compared
        pair.wait_running("primary")
        pair.wait_running("secondary")

        r = pair.ctl("secondary", "failover")
        assert r["ok"], r
        assert pair.status("secondary")["mode"] == "failover"
        vmpair.wait_for(
            lambda: pair.status("primary")["mode"] == "degraded", 20,
            "the primary to notice")
        pair.wait_running("secondary")
        pair.wait_running("primary")
        print("failover: secondary runs alone, primary degraded: "
              + pair.status("primary")["reason"])
    finally:
        pair.close()


def test_secondary_lost(colo):
    pair = vmpair.Pair(colo, append="colo_dirty=8")
    try:
        pair.wait_protected()
        # A checkpoint with dumps takes long enough to be hit mid-way.
        result = {}

        def run():
            result["r"] = pair.ctl("primary", "checkpoint", dump=True)
        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.15)
        pair.kill("secondary")
        t.join()
        r = result["r"]
        print("checkpoint while the secondary died:", r)
        st = pair.status("primary")
        assert st["mode"] == "degraded", st
        if r["ok"]:
            # The kill landed after this checkpoint completed; the loss is
            # still seen, and the next checkpoint is refused.
            print("(secondary died just after the checkpoint)")
        else:
            assert st["failures"] == 1, st
        r = pair.ctl("primary", "checkpoint")
        assert not r["ok"] and "no secondary" in r["error"], r
        pair.wait_running("primary")
        print("primary serves on:", st["reason"])

        # A new secondary host: full first checkpoint, then equal again.
        pair.start("secondary")
        pair.wait_protected()
        r = pair.ctl("primary", "checkpoint", dump=True)
        assert r["ok"], r
        a, b = pair.dump_paths(r["seq"])
        assert vmpair.same_file(a, b), "RAM differs after the resync"
        pair.wait_running("secondary")
        print("new secondary resynced in full: RAM equal")
    finally:
        pair.close()


def test_primary_lost(colo):
    pair = vmpair.Pair(colo, append="colo_dirty=8")
    try:
        pair.wait_protected()
        gen = pair.status("secondary")["vm_gen"]
        # Killed inside a checkpoint, every time: the secondary's daemon
        # is held (SIGSTOP; its VM, another process, runs on), so the
        # primary, once it has stopped its VM and sent BEGIN, waits for an
        # answer that cannot come; it dies there. (Waiting for the primary's
        # dump raced: a dump that is a file copy can end, and the checkpoint
        # with it, before the kill.)
        sec = pair.procs["secondary"]
        os.kill(sec.pid, signal.SIGSTOP)
        try:
            os.kill(pair.procs["primary"].pid, signal.SIGUSR1)
            time.sleep(2)  # stop + BEGIN take milliseconds
            pair.kill("primary")
        finally:
            os.kill(sec.pid, signal.SIGCONT)
        st = vmpair.wait_for(
            lambda: (lambda s: s if s["mode"] == "primary-lost" else None)(
                pair.status("secondary")), 30, "the secondary to notice")
        print("secondary:", st["mode"], "-", st["reason"])
        assert st["failures"] == 1, st
        assert st["vm_gen"] == gen, "the old secondary VM must run on"
        # It tries to rejoin the dead primary; a failover between two
        # tries works and ends them.
        vmpair.wait_for(
            lambda: pair.status("secondary")["rejoin_tries"] >= 2, 30,
            "rejoin attempts")
        r = pair.ctl("secondary", "failover")
        assert r["ok"], r
        tries = pair.status("secondary")["rejoin_tries"]
        pair.wait_running("secondary")
        time.sleep(3)
        st = pair.status("secondary")
        assert st["mode"] == "failover" and st["rejoin_tries"] == tries, st
        print("secondary failed over from the previous checkpoint "
              "(after %d rejoin tries, none since)" % tries)
    finally:
        pair.close()


def test_periodic(colo):
    pair = vmpair.Pair(colo, interval=300, min_interval=2000)
    try:
        pair.wait_protected()
        events = socket.socket(socket.AF_UNIX)
        events.settimeout(30)
        events.connect(pair.ctl_path("primary"))
        events.sendall(b'{"cmd": "events"}\n')
        stream = events.makefile()
        st = vmpair.wait_for(
            lambda: (lambda s: s if s["by_reason"]["periodic"] >= 2
                     else None)(pair.status("primary")), 60,
            "two periodic checkpoints")
        # The periodic ones already respect the minimum interval: a
        # command now is deferred, then runs by itself.
        r = pair.ctl("primary", "checkpoint")
        assert r["ok"] and r.get("deferred"), r
        st = pair.status("primary")
        assert st["deferred"] >= 1, st
        before = st["by_reason"]["command"]
        vmpair.wait_for(
            lambda: pair.status("primary")["by_reason"]["command"] > before,
            30, "the deferred checkpoint")
        st = pair.status("primary")
        assert st["failures"] == 0, st
        # The event stream saw checkpoints as they happened.
        seen = []
        while not any(e.get("event") == "checkpoint" for e in seen):
            seen.append(json.loads(stream.readline()))
        ev = [e for e in seen if e.get("event") == "checkpoint"][0]
        assert ev["reason"] in ("periodic", "command") and \
            ev["pause_ms"] > 0, ev
        events.close()
        print("periodic=%d command=%d deferred=%d" % (
            st["by_reason"]["periodic"], st["by_reason"]["command"],
            st["deferred"]))
    finally:
        pair.close()


def fail_one_checkpoint(pair):
    """Holds the secondary's attached standby (SIGSTOP) and forces a
    checkpoint: the device state never loads, so it fails with both
    daemons alive. Returns the failed checkpoint's reply."""
    gen = pair.status("secondary")["standby_gen"]
    vmpair.wait_for(lambda: "standby %d ready" % gen in pair.log("secondary"),
                    60, "standby %d to be attached" % gen)
    st = pair.status("secondary")
    assert st["standby_gen"] == gen and st["standby_pid"] > 0, st
    os.kill(st["standby_pid"], signal.SIGSTOP)
    r = pair.ctl("primary", "checkpoint")
    assert not r["ok"], r
    return r


def test_rejoin(colo, rejoin=True):
    # --timeout 5000: the held standby costs one checkpoint deadline.
    opts = {"primary": ["--timeout", "5000"],
            "secondary": ["--timeout", "5000"] +
            ([] if rejoin else ["--no-rejoin"])}
    pair = vmpair.Pair(colo, append="colo_dirty=8", opts=opts)
    try:
        pair.wait_protected()
        sec = pair.procs["secondary"]
        seq0 = pair.status("primary")["seq"]
        r = fail_one_checkpoint(pair)
        print("checkpoint with the standby held:", r["error"])
        # The primary serves alone and says why (before any rejoin could
        # have made it protected again: the events stream would race).
        log = pair.log("primary")
        assert "mode degraded: " in log, log[-2000:]
        print("primary degraded:",
              log.split("mode degraded: ", 1)[1].splitlines()[0])
        st = pair.status("primary")
        assert st["failures"] == 1, st
        pair.wait_running("primary")
        if not rejoin:
            # Several rejoin periods go by: nobody asks.
            time.sleep(5)
            st = pair.status("primary")
            assert st["mode"] == "degraded", st
            s2 = pair.status("secondary")
            assert s2["mode"] == "primary-lost" and \
                s2["rejoin_tries"] == 0 and s2["rejoins"] == 0, s2
            print("--no-rejoin: the pair stays degraded:", st["reason"])
            return
        vmpair.wait_for(
            lambda: pair.status("primary")["mode"] == "protected", 120,
            "the pair to be protected again by itself")
        assert sec.poll() is None, "the secondary daemon was restarted"
        assert pair.procs["secondary"] is sec
        s2 = pair.status("secondary")
        assert s2["rejoins"] == 1 and s2["mode"] == "protected", s2
        st = pair.status("primary")
        assert st["by_reason"]["initial"] == 2 and st["seq"] > seq0, st
        r = pair.ctl("primary", "checkpoint", dump=True)
        assert r["ok"], r
        a, b = pair.dump_paths(r["seq"])
        assert vmpair.same_file(a, b), "RAM differs after the rejoin"
        pair.wait_running("secondary")
        pair.wait_running("primary")
        print("rejoined after %d tries: full first checkpoint, RAM equal"
              % s2["rejoin_tries"])
    finally:
        pair.close()


def test_rejoin_refused(colo):
    pair = vmpair.Pair(colo)
    try:
        pair.wait_protected()
        pair.kill("primary")
        pair.guest = pair.guest + ["-machine", "pc-i440fx-7.1"]
        pair.start("primary")
        try:
            st = vmpair.wait_for(
                lambda: (lambda s: s if "refused" in s["reason"] else None)(
                    pair.status("secondary")), 120,
                "the rejoin to be refused")
        except AssertionError:
            for r in ("primary", "secondary"):
                print("--- %s:\n%s" % (r, pair.log(r)[-3000:]))
            raise
        print("secondary:", st["mode"], "-", st["reason"])
        assert st["mode"] == "primary-lost" and \
            "machine type" in st["reason"], st
        assert st["rejoins"] == 0, st
        # The next try is 30 s away: several 1 s periods pass without one.
        tries = st["rejoin_tries"]
        time.sleep(5)
        st = pair.status("secondary")
        assert st["rejoin_tries"] == tries, st
        pair.wait_running("secondary")
        p = pair.status("primary")
        assert "machine type" in p["reason"], p
        print("refused rejoin not retried at once (tries=%d); primary: %s"
              % (tries, p["reason"]))
        r = pair.ctl("secondary", "failover")
        assert r["ok"], r
        assert pair.status("secondary")["mode"] == "failover"
    finally:
        pair.close()


def test_refused(colo):
    import subprocess
    for bad in (["-incoming", "tcp:127.0.0.1:1"],
                ["-object", "memory-backend-ram,id=m,size=128M"],
                ["-qmp", "unix:/tmp/x,server=on"]):
        r = subprocess.run([colo, "vm", "--role", "primary", "--dir",
                            "/nonexistent", "--link-listen",
                            "127.0.0.1:1", "--"] + bad,
                           stderr=subprocess.PIPE, text=True)
        assert r.returncode == 2 and "colo vm" in r.stderr, r
        print("refused:", r.stderr.strip())
    pair = vmpair.Pair(colo, secondary_extra=["-machine", "pc-i440fx-7.1"])
    try:
        assert pair.procs["secondary"].wait(120) == 1
        log = pair.log("secondary")
        assert "machine type" in log, log
        vmpair.wait_for(
            lambda: "machine type" in pair.status("primary")["reason"], 30,
            "the primary to report the mismatch")
        print("mismatch:", pair.status("primary")["reason"])
    finally:
        pair.close()


def test_silent(colo):
    # --timeout 3000: the link is given up after 6 s of silence; no
    # checkpoint runs meanwhile (--interval 0).
    opts = {r: ["--timeout", "3000"] for r in ("primary", "secondary")}
    pair = vmpair.Pair(colo, opts=opts)
    held = None
    try:
        pair.wait_protected()
        held = pair.procs["secondary"].pid
        os.kill(held, signal.SIGSTOP)
        st = vmpair.wait_for(
            lambda: (lambda s: s if s["mode"] == "degraded" else None)(
                pair.status("primary")), 60, "the primary to degrade")
        print("primary:", st["mode"], "-", st["reason"])
        assert "silent" in st["reason"], st
        assert st["failures"] == 0, st  # no checkpoint was tried
        os.kill(held, signal.SIGCONT)
        held = None
        pair.kill("secondary")
        pair.start("secondary")
        pair.wait_protected()
        held = pair.procs["primary"].pid
        os.kill(held, signal.SIGSTOP)
        st = vmpair.wait_for(
            lambda: (lambda s: s if s["mode"] == "primary-lost" else None)(
                pair.status("secondary")), 60, "the secondary to notice")
        print("secondary:", st["mode"], "-", st["reason"])
        assert "silent" in st["reason"], st
    finally:
        if held:
            os.kill(held, signal.SIGCONT)
        pair.close()


def tls_pair(colo, d):
    """A pair whose frame link and migration run in TLS (per-run PKI)."""
    mk = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                      "tls", "mkcreds.sh")
    subprocess.run([mk, "ca", d + "/ca"], check=True)
    for h in ("phost", "shost"):
        subprocess.run([mk, "host", d + "/ca", d + "/" + h, h], check=True)
    return vmpair.Pair(colo, opts={
        "primary": ["--tls-creds", d + "/phost", "--tls-peer", "shost"],
        "secondary": ["--tls-creds", d + "/shost", "--tls-peer", "phost"]})


class Flood:
    """n idle TCP connections to port; keep: reopen each one closed."""

    def __init__(self, port, n, keep):
        self.port, self.keep, self.stop = port, keep, False
        self.socks = [self.conn() for _ in range(n)]
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def conn(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            s.setblocking(False)
            return s
        except OSError:
            return None

    def run(self):
        while not self.stop:
            time.sleep(0.01)
            for i, s in enumerate(self.socks if self.keep else ()):
                try:
                    if s is None or s.recv(1) == b"":
                        raise OSError
                except BlockingIOError:
                    pass
                except OSError:
                    if s:
                        s.close()
                    self.socks[i] = self.conn()

    def close(self):
        self.stop = True
        self.t.join()
        for s in self.socks:
            if s:
                s.close()


def test_flood(colo):
    d = tempfile.mkdtemp(prefix="colo-vm-flood-")
    pair = tls_pair(colo, d)
    try:
        pair.wait_protected()
        for keep in (False, True):
            pair.kill("secondary")
            vmpair.wait_for(lambda: pair.status("primary")["mode"] !=
                            "protected" or None, 60, "the primary to notice")
            flood = Flood(pair.port, 200, keep)
            try:
                time.sleep(0.5)
                t0 = time.monotonic()
                pair.start("secondary")
                pair.wait_protected()
                print("flood of 200 (%s): secondary protected after %.1f s, "
                      "link_refused=%d" % ("kept up" if keep else "idle",
                                           time.monotonic() - t0,
                                           pair.status("primary")
                                           ["link_refused"]), flush=True)
            finally:
                flood.close()
    finally:
        pair.close()
        shutil.rmtree(d, ignore_errors=True)


def test_promote(colo):
    pair = vmpair.Pair(colo)
    try:
        pair.wait_protected()
        pair.kill("primary")
        r = pair.ctl("secondary", "failover")
        assert r["ok"], r
        pair.wait_running("secondary")
        ctl = pair.ctl_path("secondary")
        old_dir, = [os.path.join(pair.dir, d) for d in os.listdir(pair.dir)
                    if d.startswith("secondary-") and d[10:].isdigit()]
        # What colo up does to re-protect: the failed-over daemon's
        # control socket moves aside, its successor takes the name.
        os.rename(ctl, ctl + ".old")
        new_dir = os.path.join(pair.dir, "promoted")
        log = open(os.path.join(pair.dir, "promoted.log"), "a")
        pair.procs["promoted"] = subprocess.Popen(
            [colo, "vm", "--role", "primary", "--dir", new_dir,
             "--control", pair.ctl_path("promoted"), "--link-listen",
             "127.0.0.1:%d" % vmpair.free_port(), "--promote", ctl + ".old"]
            + pair.common + ["--"] + pair.guest,
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        old = pair.procs.pop("secondary")
        vmpair.wait_for(lambda: old.poll() is not None, 180,
                        "the failed-over daemon to hand over and exit")
        assert old.returncode == 0, pair.log("secondary")
        st = vmpair.wait_for(
            lambda: os.path.exists(pair.ctl_path("promoted")) and
            pair.status("promoted"), 60,
            "the promoted primary's status")
        assert st["role"] == "primary" and st["promote_pause_ms"] > 0, st
        pair.wait_running("promoted")
        left = [p for p in (ctl + ".old", old_dir) if os.path.exists(p)]
        if os.path.isdir(old_dir):
            left += os.listdir(old_dir)
        assert not left, "left behind after the promote: %s" % left
        print("promoted (paused %.0f ms); nothing of the failed-over "
              "daemon left behind; new dir: %s"
              % (st["promote_pause_ms"], sorted(os.listdir(new_dir))))
    finally:
        pair.close()


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    t0 = time.monotonic()
    {"checkpoints": test_checkpoints,
     "secondary_lost": test_secondary_lost,
     "primary_lost": test_primary_lost,
     "periodic": test_periodic,
     "silent": test_silent,
     "flood": test_flood,
     "rejoin": test_rejoin,
     "rejoin_off": lambda c: test_rejoin(c, rejoin=False),
     "rejoin_refused": test_rejoin_refused,
     "promote": test_promote,
     "refused": test_refused}[sys.argv[1]](sys.argv[2])
    print("%s passed in %.1f s" % (sys.argv[1], time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
