#!/usr/bin/env python3
"""Integration tests of `colo blk primary` / `colo blk secondary`.

Real processes on loopback, real NBD clients (qemu-io, qemu-img, and a
small NBD client written here for the crash test). Each scenario keeps a
model of the primary's disk and of the secondary guest's view and checks
the images byte for byte. Usage: test_repl.py PATH_TO_COLO [SCENARIO...]
Python 3 standard library only; every wait is bounded.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import free_port  # noqa: E402

COLO = None
SIZE = 8 << 20
GRAN = 65536
DEADLINE = 15.0


def wait_for(pred, what, timeout=DEADLINE):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def ctl(path, cmd, **kw):
    req = dict(cmd=cmd, **kw)
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(DEADLINE)
        s.connect(path)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("control socket closed")
            buf += chunk
    return json.loads(buf)


def nbd_url(sock):
    return "nbd+unix:///colo?socket=" + sock


def qemu_io(sock, *cmds):
    args = ["qemu-io", "-f", "raw"]
    for c in cmds:
        args += ["-c", c]
    args.append(nbd_url(sock))
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    if r.returncode != 0 or "error" in out.lower() or "fail" in out.lower():
        raise AssertionError("qemu-io %s: %s" % (cmds, out))
    return out


def read_export(sock, dest):
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "raw",
                    nbd_url(sock), dest], check=True, timeout=60,
                   capture_output=True)
    with open(dest, "rb") as f:
        return f.read()


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pattern(off, length, tag):
    return bytes((tag + (off + i) * 7) & 0xFF for i in range(length))


def first_diff(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b)) if len(a) != len(b) else -1


def assert_same(got, want, what):
    d = first_diff(got, want)
    if d != -1:
        raise AssertionError("%s differs at byte %d (got %r, want %r)" %
                             (what, d, got[d:d + 8], want[d:d + 8]))


class Pair:
    """A primary and a secondary on loopback, each with UNIX exports."""

    def __init__(self, tmp, prefill=True, extra_primary=()):
        self.tmp = tmp
        self.pimg = os.path.join(tmp, "primary.img")
        self.simg = os.path.join(tmp, "secondary.img")
        self.pexp = os.path.join(tmp, "p.nbd")
        self.sexp = os.path.join(tmp, "s.nbd")
        self.pctl = os.path.join(tmp, "p.ctl")
        self.sctl = os.path.join(tmp, "s.ctl")
        self.port = free_port()
        self.procs = {}
        self.extra_primary = list(extra_primary)
        with open(self.pimg, "wb") as f:
            if prefill:
                f.write(bytes(i * 13 & 0xFF for i in range(SIZE)))
            else:
                f.truncate(SIZE)
        with open(self.simg, "wb") as f:
            f.truncate(SIZE)

    def start(self, role):
        log = open(os.path.join(self.tmp, role + ".log"), "ab")
        if role == "secondary":
            args = [COLO, "blk", "secondary", "--image", self.simg,
                    "--listen", "127.0.0.1:%d" % self.port,
                    "--export", "unix-listen:" + self.sexp,
                    "--control", self.sctl, "--granularity", str(GRAN),
                    "--timeout", "3000"]
            ctlp = self.sctl
        else:
            args = [COLO, "blk", "primary", "--image", self.pimg,
                    "--secondary", "127.0.0.1:%d" % self.port,
                    "--export", "unix-listen:" + self.pexp,
                    "--control", self.pctl, "--timeout", "2000"]
            args += self.extra_primary
            ctlp = self.pctl
        if os.path.exists(ctlp):
            os.unlink(ctlp)
        self.procs[role] = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()
        wait_for(lambda: ctl(ctlp, "status")["ok"], role + " control")

    def kill(self, role, sig=signal.SIGKILL):
        p = self.procs.pop(role, None)
        if p and p.poll() is None:
            p.send_signal(sig)
            p.wait(timeout=DEADLINE)
        return p

    def protected(self):
        return wait_for(
            lambda: ctl(self.pctl, "status")["state"] == "protected",
            "protected state")

    def stop(self):
        for role in list(self.procs):
            self.kill(role, signal.SIGTERM)


class Model:
    """The primary's disk and the secondary guest's view."""

    def __init__(self, initial):
        self.prim = bytearray(initial)
        self.view = bytearray(initial)

    def primary_write(self, pair, off, length, tag):
        data = pattern(off, length, tag)
        path = os.path.join(pair.tmp, "chunk")
        with open(path, "wb") as f:
            f.write(data)
        # qemu-io writes a pattern byte; use our own bytes through
        # several pattern writes is clumsy, so write whole bytes via -P
        # per call: one byte value per write keeps the model exact.
        self.prim[off:off + length] = bytes([tag]) * length
        qemu_io(pair.pexp, "write -P %d %d %d" % (tag, off, length))

    def guest_write(self, pair, off, length, tag):
        self.view[off:off + length] = bytes([tag]) * length
        qemu_io(pair.sexp, "write -P %d %d %d" % (tag, off, length))

    def guest_zero(self, pair, off, length):
        self.view[off:off + length] = bytes(length)
        qemu_io(pair.sexp, "write -z %d %d" % (off, length))

    def checkpoint(self, pair):
        r = ctl(pair.pctl, "checkpoint")
        assert r["ok"], r
        self.view = bytearray(self.prim)


# ------------------------------------------------------------- scenarios


def scenario_buffer_rules(tmp):
    """Overlapping primary/guest writes, checkpoint, more, failover."""
    pair = Pair(tmp)
    try:
        pair.start("secondary")
        pair.start("primary")
        pair.protected()
        st = ctl(pair.pctl, "stats")
        assert st["last_resync_bytes"] == SIZE, st  # first time: all
        m = Model(read_file(pair.pimg))
        assert_same(read_file(pair.simg), m.prim, "secondary after sync")
        info = subprocess.run(["qemu-img", "info", nbd_url(pair.pexp)],
                              capture_output=True, text=True, timeout=30)
        assert str(SIZE) in info.stdout, info.stdout + info.stderr

        m.primary_write(pair, 0, 100000, 0xA1)
        # synchronous: on the secondary's image as soon as acknowledged
        assert_same(read_file(pair.simg), m.prim, "secondary image")
        m.guest_write(pair, 50000, 30000, 0xB2)   # partial granules
        m.primary_write(pair, 70000, 70000, 0xA3)  # over guest + hidden
        m.guest_write(pair, 130000, 512, 0xB4)
        assert_same(read_export(pair.sexp, os.path.join(tmp, "v1")),
                    m.view, "guest view before checkpoint")
        m.checkpoint(pair)
        assert_same(read_export(pair.sexp, os.path.join(tmp, "v2")),
                    m.view, "guest view after checkpoint")
        st = ctl(pair.sctl, "status")
        assert st["hidden_granules"] == 0 and st["active_granules"] == 0
        m.guest_write(pair, 1000, 200000, 0xB5)
        m.primary_write(pair, 150000, 300000, 0xA6)
        m.guest_zero(pair, 4096, 8192)
        m.primary_write(pair, SIZE - 70000, 70000, 0xA7)
        m.guest_write(pair, SIZE - 1000, 1000, 0xB8)
        assert_same(read_export(pair.sexp, os.path.join(tmp, "v3")),
                    m.view, "guest view before failover")
        assert_same(read_export(pair.pexp, os.path.join(tmp, "p3")),
                    m.prim, "primary export")
        pair.kill("primary")
        r = ctl(pair.sctl, "failover")
        assert r["ok"] and r["state"] == "failed-over", r
        assert_same(read_file(pair.simg), m.view,
                    "secondary image after failover")
        # served directly now
        m.guest_write(pair, 12345, 5000, 0xC9)
        assert_same(read_file(pair.simg), m.view, "image after failover")
    finally:
        pair.stop()


def scenario_prepare_commit(tmp):
    """Two-step checkpoint over real daemons: prepare holds, commit drops,
    misuse gets clear errors, and a primary lost between prepare and
    commit leaves the secondary at the last committed checkpoint."""
    pair = Pair(tmp)
    try:
        pair.start("secondary")
        pair.start("primary")
        pair.protected()
        m = Model(read_file(pair.pimg))
        r = ctl(pair.sctl, "commit")
        assert not r["ok"] and "no checkpoint is prepared" in r["error"], r
        m.primary_write(pair, 0, 100000, 0xA1)
        m.guest_write(pair, 60000, 10000, 0xB2)
        r = ctl(pair.pctl, "prepare")
        assert r["ok"], r
        assert ctl(pair.sctl, "status")["prepared"] is True
        # nothing dropped yet: the guest still sees its own view
        assert_same(read_export(pair.sexp, os.path.join(tmp, "v1")),
                    m.view, "guest view after prepare")
        r = ctl(pair.pctl, "prepare")
        assert not r["ok"] and "already holds a prepared" in r["error"], r
        assert ctl(pair.pctl, "status")["state"] == "protected"
        r = ctl(pair.sctl, "commit", id="seven")
        assert not r["ok"] and "id" in r["error"], r
        r = ctl(pair.sctl, "commit", id=7)
        assert r["ok"] and r["prepared"] is False, r
        assert ctl(pair.sctl, "status")["commit_id"] == 7
        assert r["hidden_granules"] == 0 and r["active_granules"] == 0, r
        m.view = bytearray(m.prim)
        assert_same(read_export(pair.sexp, os.path.join(tmp, "v2")),
                    m.view, "guest view after commit")
        st = ctl(pair.pctl, "stats")
        assert st["prepares"] == 1, st
        # a primary write after the prepare: commit refused, nothing lost
        assert ctl(pair.pctl, "prepare")["ok"]
        m.primary_write(pair, 200000, 5000, 0xA2)
        r = ctl(pair.sctl, "commit")
        assert not r["ok"] and "after the prepare" in r["error"], r
        assert_same(read_export(pair.sexp, os.path.join(tmp, "v3")),
                    m.view, "guest view after a refused commit")
        # abort, then the old one-step checkpoint still works
        assert ctl(pair.pctl, "prepare")["ok"]
        r = ctl(pair.sctl, "abort")
        assert r["ok"] and r["aborted"] is True, r
        m.checkpoint(pair)
        assert_same(read_export(pair.sexp, os.path.join(tmp, "v4")),
                    m.view, "guest view after checkpoint")
        # the primary dies between prepare and commit
        m.primary_write(pair, 300000, 70000, 0xA3)
        m.guest_write(pair, 320000, 1000, 0xB3)
        assert ctl(pair.pctl, "prepare")["ok"]
        pair.kill("primary")
        r = ctl(pair.sctl, "failover")
        assert r["ok"] and r["state"] == "failed-over", r
        assert_same(read_file(pair.simg), m.view,
                    "secondary image after failover while prepared")
        r = ctl(pair.sctl, "commit")
        assert not r["ok"] and "failed over" in r["error"], r
    finally:
        pair.stop()


def scenario_degraded_resync(tmp):
    """Secondary lost: writes go on; it comes back: dirty regions only."""
    pair = Pair(tmp, prefill=False)
    try:
        pair.start("secondary")
        pair.start("primary")
        pair.protected()
        m = Model(read_file(pair.pimg))
        m.primary_write(pair, 0, 4096, 0x11)
        pair.kill("secondary")
        wait_for(lambda: ctl(pair.pctl, "status")["state"] == "degraded",
                 "degraded state")
        # three granules dirty: one write spans two, one is inside one
        m.primary_write(pair, GRAN * 10 + 100, GRAN, 0x22)
        m.primary_write(pair, GRAN * 40, 512, 0x33)
        st = ctl(pair.pctl, "stats")
        assert st["state"] == "degraded", st
        assert st["dirty_bytes"] == 3 * GRAN, st
        assert st["degraded_writes"] == 2, st
        assert ctl(pair.pctl, "checkpoint")["ok"] is False
        pair.start("secondary")
        pair.protected()
        st = ctl(pair.pctl, "stats")
        assert st["last_resync_bytes"] == 3 * GRAN, st
        assert st["dirty_bytes"] == 0, st
        assert_same(read_file(pair.simg), m.prim, "secondary after resync")
        m.checkpoint(pair)
        m.primary_write(pair, 7, 9, 0x44)
        assert_same(read_file(pair.simg), m.prim, "secondary after write")
    finally:
        pair.stop()


def scenario_drop_secondary(tmp):
    """drop-secondary (colo up, when the peer left the quorate group):
    with the link's timeout ten minutes away, a write waiting for a
    silent secondary completes once the secondary is dropped, the state
    says why, and when the secondary answers again the link comes back
    by itself and resyncs only the granules changed meanwhile."""
    import threading
    pair = Pair(tmp, prefill=False, extra_primary=("--timeout", "600000"))
    try:
        pair.start("secondary")
        pair.start("primary")
        pair.protected()
        m = Model(read_file(pair.pimg))
        r = ctl(pair.pctl, "drop-secondary", reason="bell\x07")
        assert r["ok"] is False and "reason" in r["error"], r
        assert ctl(pair.pctl, "status")["state"] == "protected"
        pair.procs["secondary"].send_signal(signal.SIGSTOP)  # silent
        done = []
        t = threading.Thread(target=lambda: done.append(
            m.primary_write(pair, GRAN * 5, 4096, 0x55)))
        t.start()
        time.sleep(0.5)  # the write on its way, waiting for an ack
        r = ctl(pair.pctl, "drop-secondary", reason="the peer left")
        assert r["ok"] and r["dropped"] is True, r
        t.join(timeout=DEADLINE)
        assert done, "the write waiting for the dropped secondary completed"
        st = ctl(pair.pctl, "status")
        assert st["last_loss"] == "dropped: the peer left", st
        assert st["drops"] == 1 and st["link_losses"] == 1, st
        r = ctl(pair.pctl, "drop-secondary")
        assert r["ok"] and r["dropped"] is False, r  # nothing to drop
        m.primary_write(pair, GRAN * 9, 512, 0x66)
        assert ctl(pair.pctl, "stats")["dirty_bytes"] == 2 * GRAN
        pair.procs["secondary"].send_signal(signal.SIGCONT)
        pair.protected()
        st = ctl(pair.pctl, "stats")
        assert st["last_resync_bytes"] == 2 * GRAN, st
        assert st["drops"] == 1, st
        assert_same(read_file(pair.simg), m.prim, "secondary after resync")
    finally:
        p = pair.procs.get("secondary")
        if p:
            p.send_signal(signal.SIGCONT)
        pair.stop()


class NbdClient:
    """Just enough NBD to write numbered blocks, pipelined."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(DEADLINE)
        self.s.connect(path)
        hello = self.recv(18)
        assert hello[:16] == b"NBDMAGICIHAVEOPT", hello
        self.s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
        name = b"colo"
        self.s.sendall(b"IHAVEOPT" + struct.pack(">II", 1, len(name)) + name)
        self.size, _flags = struct.unpack(">QH", self.recv(10))

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise OSError("NBD server closed")
            buf += chunk
        return buf

    def send_write(self, handle, off, data):
        self.s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, handle,
                                   off, len(data)) + data)

    def reply(self):
        magic, err, handle = struct.unpack(">IIQ", self.recv(16))
        assert magic == 0x67446698
        return handle, err


def block(i):
    return struct.pack(">Q", i) * 512  # 4 KiB naming its own number


def scenario_crash(tmp):
    """SIGKILL the primary mid-stream: every acked write survives."""
    pair = Pair(tmp, prefill=False)
    try:
        pair.start("secondary")
        pair.start("primary")
        pair.protected()
        c = NbdClient(pair.pexp)
        acked, sent, nblocks, depth = set(), 0, SIZE // 4096, 8
        inflight = set()
        killed = False
        while True:
            while len(inflight) < depth and sent < nblocks:
                try:
                    c.send_write(sent, sent * 4096, block(sent))
                except OSError:
                    break
                inflight.add(sent)
                sent += 1
            if not inflight:
                break
            try:
                h, err = c.reply()
            except (OSError, AssertionError, struct.error):
                break  # the primary is gone
            inflight.discard(h)
            if err == 0:
                acked.add(h)
            if len(acked) == 600 and not killed:
                pair.kill("primary")  # SIGKILL, writes in flight
                killed = True
        assert killed and 600 <= len(acked) < nblocks, len(acked)
        # The secondary VM is not running on: it takes the disk with
        # every primary write it applied (a guest-view failover would roll
        # back to the last checkpoint, by design; see buffer_rules).
        r = ctl(pair.sctl, "failover", view="primary")
        assert r["ok"], r
        img = read_file(pair.simg)
        lost = [i for i in sorted(acked)
                if img[i * 4096:(i + 1) * 4096] != block(i)]
        assert not lost, "acknowledged but lost: %s" % lost[:10]
        print("  crash: %d writes acknowledged, all on the secondary" %
              len(acked))
    finally:
        pair.stop()


def scenario_control(tmp):
    """Malformed control requests get errors; quit exits cleanly."""
    pair = Pair(tmp, prefill=False)
    try:
        pair.start("secondary")
        for line in [b"not json\n", b"[1,2]\n", b"{\"cmd\":5}\n",
                     b"{\"cmd\":\"nope\"}\n", b"\xff\xfe\n", b"{}\n"]:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(DEADLINE)
                s.connect(pair.sctl)
                s.sendall(line)
                r = json.loads(s.makefile().readline())
                assert r["ok"] is False and r["error"], (line, r)
        r = subprocess.run([COLO, "blk", "ctl", pair.sctl, "status"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and '"ok":true' in r.stdout, r
        r = subprocess.run([COLO, "blk", "ctl", pair.sctl, "bogus"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, r
        # colo ctl's forms work too: --timeout, JSON-ARGS.
        r = subprocess.run([COLO, "blk", "ctl", "--timeout", "5000",
                            pair.sctl, "failover", '{"view": "sideways"}'],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "view" in r.stdout, r
        r = subprocess.run([COLO, "blk", "ctl", pair.sctl, "status",
                            "[1]"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2, r
        assert ctl(pair.sctl, "quit")["ok"]
        p = pair.procs.pop("secondary")
        assert p.wait(timeout=DEADLINE) == 0
        r = subprocess.run([COLO, "blk", "primary", "--image", pair.pimg],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "required" in r.stderr, r
    finally:
        pair.stop()


SCENARIOS = {
    "buffer_rules": scenario_buffer_rules,
    "prepare_commit": scenario_prepare_commit,
    "degraded_resync": scenario_degraded_resync,
    "drop_secondary": scenario_drop_secondary,
    "crash": scenario_crash,
    "control": scenario_control,
}


def run(scenarios, prefix):
    """The scenarios named on the command line (all by default), each in
    its own directory, kept with its logs when it fails; the exit code.
    Shared by test_reprotect.py."""
    global COLO
    if len(sys.argv) < 2:
        print(sys.modules["__main__"].__doc__)
        return 2
    COLO = os.path.abspath(sys.argv[1])
    if not shutil.which("qemu-io") or not shutil.which("qemu-img"):
        print("qemu-io/qemu-img not installed: skipped")
        return 77
    failed = 0
    for name in sys.argv[2:] or list(scenarios):
        tmp = tempfile.mkdtemp(prefix="%s%d-" % (prefix, os.getpid()))
        t0 = time.time()
        try:
            scenarios[name](tmp)
            print("ok   %s (%.1fs)" % (name, time.time() - t0))
            shutil.rmtree(tmp, ignore_errors=True)
        except Exception:
            failed += 1
            print("FAIL %s (logs in %s)" % (name, tmp))
            traceback.print_exc()
    return 1 if failed else 0


def main():
    return run(SCENARIOS, "colo-repl-")


if __name__ == "__main__":
    sys.exit(main())
