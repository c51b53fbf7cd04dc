#!/usr/bin/env python3
"""vm_disk_test.py - the guest's disk inside the frame's checkpoint: two
`colo vm` daemons with --disk/--blk-control, two real `colo blk` daemons
(primary and secondary, replicating over loopback), TCG guests writing
random blocks to a virtio-blk disk (guest switch colo_disk=1).

The guest keeps in RAM what its disk must hold and after every write
reads the disk back past its page cache: "disk ok N" or "disk BAD N" on
its console. Since RAM is what a checkpoint restores, a guest that says
ok after a checkpoint or a failover proves its disk is the one of the
same checkpoint; the primary's writes since then must have been rolled
back on the secondary (they are blocks the restored RAM has never seen
written, so they read back as BAD otherwise).

  failover     checkpoint, more writes on the primary, the primary host
               (colo vm, its QEMU, colo blk primary) is killed, failover
               on the secondary: the new secondary VM's guest keeps
               saying ok, resumes from a write number below the last one
               the primary made, and blk reports failed-over.
  prepare_kill the primary host is killed between blk prepare and
               commit (the secondary's colo vm is held with SIGSTOP so
               it cannot commit): the secondary aborts the checkpoint,
               its VM of the previous checkpoint runs on, no commit was
               made, and after failover that guest's disk agrees with it.
  first_wait   the blk primary reaches its secondary only after both
               colo vm daemons are linked (blk's first resync not done): the primary
               says waiting-disk and runs no checkpoint (no "checkpoint
               failed"), reports the wait as an error once after its
               --timeout, and runs the first checkpoint once blk says
               protected. Its --proxy-control is a fake proxy that asks
               for a checkpoint every 200 ms (every frame diverges while
               the secondary has no VM): each request during the wait is
               answered with checkpoint-done, which releases the held
               output, and never with a checkpoint.
Usage: vm_disk_test.py TEST COLO_BINARY
"""
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmpair  # noqa: E402

DISK = 16 << 20
T0 = time.monotonic()


def step(what):
    """Progress with the time since the start, for the test log."""
    print("%6.1f s  %s" % (time.monotonic() - T0, what), flush=True)


def console(pair, role):
    """role's current VM console text."""
    with open(pair.status(role)["vm_log"], errors="replace") as f:
        return f.read()


def last_write(text):
    w = re.findall(r"disk write (\d+)", text)
    return int(w[-1]) if w else 0


def oks(text):
    return [int(n) for n in re.findall(r"disk ok (\d+)", text)]


def assert_no_bad(text, what):
    bad = re.findall(r"disk BAD \d+", text)
    if bad:
        print("--- the guest's console:\n" + text[-1500:])
    assert not bad, "%s: the guest's disk disagrees with its RAM: %s" % (
        what, bad[:5])


def new_pair(colo):
    return vmpair.Pair(colo, append="colo_disk=1", disk=DISK)


def wait_writes(pair, role, n, timeout=60):
    """Until role's guest made write n and said ok about one."""
    vmpair.wait_for(lambda: last_write(console(pair, role)) >= n and
                    oks(console(pair, role)), timeout,
                    "%s's guest to write block %d" % (role, n))


def survivor_ok(pair, since, what):
    """After failover: two more writes on the surviving guest, each read
    back ok, none BAD."""
    path = pair.status("secondary")["vm_log"]

    def tail():
        with open(path, errors="replace") as f:
            f.seek(since)
            return f.read()
    vmpair.wait_for(lambda: len(re.findall(r"disk (ok|BAD) ", tail())) >= 2,
                    60, "the surviving guest to check its disk twice")
    text = tail()
    assert_no_bad(text, what)
    return text


def block_at(path, n):
    with open(path, "rb") as f:
        f.seek((n % 255 + 1) * 4096)
        return f.read(4096)


def not_on_secondary(pair, after, last):
    """The primary's writes after..last (made after the checkpoint) are
    on its image but not on the secondary's: rolled back there, or
    overwritten by the surviving guest's own (different) blocks. This
    also shows the two guests' blocks differ, so that the guest's "disk
    ok" could not pass on the primary's data."""
    n = 0
    for w in range(after + 1, last + 1):
        p = block_at(pair.blk_path("primary", "img"), w)
        assert p.startswith(b"n=%d " % w), (w, p[:40])
        s = block_at(pair.blk_path("secondary", "img"), w)
        assert s != p, "primary write %d is on the secondary" % w
        n += 1
    assert n >= 2, (after, last)
    return n


def test_failover(colo):
    pair = new_pair(colo)
    try:
        step("pair started")
        pair.wait_protected()
        step("protected")
        wait_writes(pair, "primary", 2)
        r = pair.ctl("primary", "checkpoint")
        step("checkpoint")
        assert r["ok"] and "seq" in r, r
        # An upper bound of the checkpoint's write number: read after.
        at_ckpt = last_write(console(pair, "primary"))
        st = pair.blk_ctl("secondary", "stats")
        assert st["prepares"] >= 2 and st["checkpoints"] >= 2, st
        # the secondary's colo vm committed this very checkpoint
        assert st["commit_id"] == r["seq"], (st, r)
        # The new secondary VM (loaded from this checkpoint) agrees.
        vmpair.wait_for(lambda: re.search(r"disk (ok|BAD) ",
                                          console(pair, "secondary")),
                        60, "the new secondary VM to check its disk")
        assert_no_bad(console(pair, "secondary"), "after the checkpoint")
        wait_writes(pair, "primary", at_ckpt + 3)
        prim_last = last_write(console(pair, "primary"))
        pair.kill("primary")
        pair.kill_blk("primary")
        step("primary host killed")
        since = os.path.getsize(pair.status("secondary")["vm_log"])
        r = pair.ctl("secondary", "failover")
        assert r["ok"], r
        step("failover")
        st = pair.blk_ctl("secondary", "status")
        assert st["state"] == "failed-over", st
        survivor_ok(pair, since, "after failover")
        n = not_on_secondary(pair, at_ckpt, prim_last)
        print("checkpoint at write <= %d, primary reached %d: its %d "
              "later blocks are not on the secondary, whose guest reads "
              "its disk ok" % (at_ckpt, prim_last, n))
    finally:
        pair.close()


def test_prepare_kill(colo):
    pair = new_pair(colo)
    try:
        step("pair started")
        pair.wait_protected()
        step("protected")
        wait_writes(pair, "primary", 2)
        assert pair.ctl("primary", "checkpoint")["ok"]
        step("checkpoint")
        at_ckpt = last_write(console(pair, "primary"))
        wait_writes(pair, "primary", at_ckpt + 3)
        prim_last = last_write(console(pair, "primary"))
        commits = pair.blk_ctl("secondary", "stats")["checkpoints"]
        gen = pair.status("secondary")["vm_gen"]
        vm_log = pair.status("secondary")["vm_log"]
        sec = pair.procs["secondary"]
        # The secondary's daemon is held: it cannot commit. Its VM (a
        # separate process) runs on.
        os.kill(sec.pid, signal.SIGSTOP)
        try:
            os.kill(pair.procs["primary"].pid, signal.SIGUSR1)
            vmpair.wait_for(
                lambda: pair.blk_ctl("secondary", "status")["prepared"],
                30, "blk prepare on the secondary")
            pair.kill("primary")
            pair.kill_blk("primary")
            step("prepared, primary host killed")
        finally:
            os.kill(sec.pid, signal.SIGCONT)
        vmpair.wait_for(
            lambda: pair.status("secondary")["mode"] == "primary-lost", 60,
            "the secondary to abort the checkpoint")
        st = pair.status("secondary")
        assert st["vm_gen"] == gen, ("the old VM must run on", st)
        b = pair.blk_ctl("secondary", "stats")
        assert b["checkpoints"] == commits and not b["prepared"], b
        step("checkpoint aborted")
        since = os.path.getsize(vm_log)
        r = pair.ctl("secondary", "failover")
        assert r["ok"], r
        step("failover")
        assert pair.blk_ctl("secondary", "status")["state"] == \
            "failed-over"
        survivor_ok(pair, since, "failover after an uncommitted prepare")
        n = not_on_secondary(pair, at_ckpt, prim_last)
        print("prepared, primary killed before commit: %d commits before "
              "and after, VM gen %d runs on, the primary's %d blocks since "
              "the last commit are not on the secondary, disk ok" %
              (commits, gen, n))
    finally:
        pair.close()


class FakeProxy:
    """A proxy's control socket for colo vm's --proxy-control: an events
    subscriber gets a checkpoint-request every 200 ms until a checkpoint
    starts (checkpoint-cut); every command is recorded and answered ok."""

    def __init__(self, path):
        self.path = path
        self.cmds = []
        self.cut = threading.Event()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(16)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        try:
            req = json.loads(c.makefile("rb").readline() or b"{}")
            cmd = req.get("cmd")
            if cmd == "events":
                while not self.cut.is_set():
                    c.sendall(b'{"event":"checkpoint-request",'
                              b'"cause":"test"}\n')
                    time.sleep(0.2)
                return
            self.cmds.append(cmd)
            if cmd == "checkpoint-cut":
                self.cut.set()
            c.sendall(b'{"ok":true}\n')
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def close(self):
        self.cut.set()
        self.srv.close()


def test_first_wait(colo):
    timeout_ms = 10000  # colo vm's default --timeout
    fake_dir = tempfile.mkdtemp(prefix="colo-fakeproxy-")
    proxy = FakeProxy(os.path.join(fake_dir, "p.sock"))
    pair = vmpair.Pair(colo, append="colo_disk=1", disk=DISK,
                       disk_late=True,
                       opts={"primary": ["--proxy-control", proxy.path]})
    try:
        step("pair started, blk not linked yet")
        def waiting():
            assert pair.procs["primary"].poll() is None, pair.log("primary")
            try:
                st = pair.status("primary")
            except OSError:  # its control socket is not there yet
                return False
            # Without the wait: "checkpoint 1 failed: blk prepare: ...
            # not protected", and the secondary joins again.
            assert st["failures"] == 0, "a checkpoint failed: %s" % st
            return st["mode"] == "waiting-disk"
        vmpair.wait_for(waiting, 120, "the primary to wait for blk")
        step("primary waiting-disk")
        waited = time.monotonic()
        # The wait outlasts the checkpoint timeout: one error, and the
        # control socket answers all along.
        answers = 0
        while time.monotonic() < waited + timeout_ms / 1000 + 3:
            st = pair.status("primary")
            assert st["mode"] == "waiting-disk", st
            assert st["checkpoints"] == 0 and st["failures"] == 0, st
            assert st["disk_wait_ms"] > 0, st
            assert not pair.blk_ctl("primary", "status")["protected"]
            answers += 1
            time.sleep(0.2)
        r = pair.ctl("primary", "checkpoint")
        assert not r["ok"] and "waits for blk" in r["error"], r
        # the proxy's requests during the wait: its held output released
        # each time, no checkpoint begun
        done = proxy.cmds.count("checkpoint-done")
        assert done >= 3 and "checkpoint-cut" not in proxy.cmds, proxy.cmds
        step("%d proxy requests answered with checkpoint-done" % done)
        errors = re.findall(r"error: blk .* not protected after",
                            pair.log("primary"))
        assert len(errors) == 1, errors
        step("%d answers while waiting, the wait reported once" % answers)
        pair.link_blk()
        pair.wait_blk_protected()
        step("blk protected")
        pair.wait_protected()
        step("protected")
        st = pair.status("primary")
        log = pair.log("primary")
        assert st["disk_wait_ms"] == 0, st
        assert st["failures"] == 0 and st["by_reason"]["initial"] == 1, st
        assert not re.search(r"checkpoint \d+ failed", log), log[-3000:]
        first = log.index("checkpoint 1 (initial)")
        assert log.index("blk protected after") < first, log[-3000:]
        b = pair.blk_ctl("primary", "stats")
        assert b["prepares"] == st["checkpoints"], (b, st)
        r = pair.ctl("primary", "checkpoint")
        assert r["ok"] and "seq" in r, r
        assert pair.blk_ctl("secondary", "stats")["commit_id"] == r["seq"]
        print("first checkpoint after blk protected, no failure, the "
              "%d s wait reported once" % (timeout_ms // 1000))
    finally:
        pair.close()
        proxy.close()
        shutil.rmtree(fake_dir, ignore_errors=True)


TESTS = {"failover": test_failover, "prepare_kill": test_prepare_kill,
         "first_wait": test_first_wait}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in TESTS:
        print(__doc__)
        return 2
    TESTS[sys.argv[1]](os.path.abspath(sys.argv[2]))
    step("ok " + sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
