#!/usr/bin/env python3
"""Re-protection by `colo blk`: a failed-over secondary becomes a primary
in place ("replicate") and resyncs a returning host's old image by digest.

Real processes on loopback and real NBD clients, in the style of
test_repl.py (whose helpers this shares). The story:
  1. a primary on image A and a secondary on image B, protected;
  2. writes through NBD (qemu-io);
  3. the primary dies; the secondary fails over; more writes to it;
  4. writes to A behind everyone's back (they never reached B);
  5. a new `colo blk secondary` on A; "replicate" sent to the survivor,
     while an interactive qemu-io and a raw NBD client stay connected to
     it and keep writing (and qemu-io reading back);
  6. protected.
Then the images are byte-equal, the resync sent about the changed
granules only (compared all), the client's writes all succeeded, and a
two-step checkpoint (prepare on the survivor, commit on the new
secondary) works. Usage: test_reprotect.py PATH_TO_COLO [SCENARIO...]
"""
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import test_repl as tr  # noqa: E402
from test_repl import (ctl, qemu_io, read_file, assert_same, wait_for,  # noqa: E402
                       NbdClient, block, DEADLINE)
from testlib import free_port  # noqa: E402

SIZE = 16 << 20
GRAN = 65536


class Host:
    """One `colo blk` process with its image, export and control socket."""

    def __init__(self, tmp, name):
        self.tmp, self.name = tmp, name
        self.img = os.path.join(tmp, name + ".img")
        self.exp = os.path.join(tmp, name + ".nbd")
        self.ctl = os.path.join(tmp, name + ".ctl")
        self.proc = None

    def start(self, role, peer, *extra):
        log = open(os.path.join(self.tmp, self.name + ".log"), "ab")
        args = [tr.COLO, "blk", role, "--image", self.img,
                "--export", "unix-listen:" + self.exp,
                "--control", self.ctl, "--granularity", str(GRAN)]
        if role == "secondary":
            args += ["--listen", "127.0.0.1:%d" % peer, "--timeout", "3000"]
        else:
            args += ["--secondary", "127.0.0.1:%d" % peer,
                     "--timeout", "2000"]
        if os.path.exists(self.ctl):
            os.unlink(self.ctl)
        self.proc = subprocess.Popen(args + list(extra), stdout=log,
                                     stderr=log)
        log.close()
        wait_for(lambda: ctl(self.ctl, "status")["ok"], self.name + " up")

    def kill(self, sig=signal.SIGTERM):
        p, self.proc = self.proc, None
        if p and p.poll() is None:
            p.send_signal(sig)
            p.wait(timeout=DEADLINE)

    def state(self):
        return ctl(self.ctl, "status")["state"]


class QemuIo:
    """One interactive qemu-io process: a client that stays connected."""

    def __init__(self, sock):
        self.p = subprocess.Popen(["qemu-io", "-f", "raw", tr.nbd_url(sock)],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)

    def do(self, cmd):
        """Runs cmd; its output once qemu-io printed its rate line."""
        self.p.stdin.write(cmd.encode() + b"\n")
        self.p.stdin.flush()
        out, end = "", time.time() + DEADLINE
        fd = self.p.stdout.fileno()
        while "ops/sec" not in out:
            left = end - time.time()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError("qemu-io %r: no answer: %r" % (cmd, out))
            chunk = os.read(fd, 4096).decode(errors="replace")
            if not chunk:
                raise AssertionError("qemu-io %r exited: %r" % (cmd, out))
            out += chunk
        if "error" in out.lower() or "fail" in out.lower():
            raise AssertionError("qemu-io %r: %r" % (cmd, out))
        return out

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(timeout=DEADLINE)


def granules(off, length):
    return set(range(off // GRAN, (off + length - 1) // GRAN + 1))


def scenario_replicate(tmp):
    """Failover, then the survivor replicates to the old primary's image
    in place: digest resync, clients kept, checkpoints work."""
    a, b, n = Host(tmp, "a"), Host(tmp, "b"), Host(tmp, "n")
    port1, port2 = free_port(), free_port()
    with open(a.img, "wb") as f:
        f.write(bytes((i * 13 + (i >> 16)) & 0xFF for i in range(SIZE)))
    with open(b.img, "wb") as f:
        f.truncate(SIZE)
    changed = set()
    client = qio = None
    try:
        b.start("secondary", port1)
        a.start("primary", port1)
        wait_for(lambda: a.state() == "protected", "first protection")
        # 2. writes through NBD while protected: B follows, buffered
        for off, length, tag in [(0, 100000, 0xA1),
                                 (3 * (1 << 20) + 777, 5000, 0xA2)]:
            qemu_io(a.exp, "write -P %d %d %d" % (tag, off, length))
            changed |= granules(off, length)
        r = ctl(b.ctl, "replicate", secondary="127.0.0.1:%d" % port2)
        assert not r["ok"] and "not failed over" in r["error"], r
        r = ctl(b.ctl, "prepare")
        assert not r["ok"] and "replicate" in r["error"], r
        # 3. the primary dies; the secondary takes over (its guest view,
        # so the writes above are rolled back on B: they differ too)
        a.kill(signal.SIGKILL)
        r = ctl(b.ctl, "failover")
        assert r["ok"] and r["state"] == "failed-over", r
        for off, length, tag in [(5 << 20, 3 * GRAN, 0xB1),
                                 ((9 << 20) + 100, 200, 0xB2)]:
            qemu_io(b.exp, "write -P %d %d %d" % (tag, off, length))
            changed |= granules(off, length)
        # two clients that stay connected across "replicate"
        qio = QemuIo(b.exp)
        qoff = (13 << 20) + 4096
        qio.do("write -P 97 %d 4096" % qoff)
        changed |= granules(qoff, 4096)
        client = NbdClient(b.exp)
        base = (12 << 20) // 4096
        client.send_write(1, base * 4096, block(base))
        assert client.reply() == (1, 0)
        changed |= granules(base * 4096, 4096)
        # 4. writes on A that never reached B
        with open(a.img, "r+b") as f:
            for off, length in [(7 << 20, 4096), (SIZE - 10, 10)]:
                f.seek(off)
                f.write(bytes([0xC1]) * length)
                changed |= granules(off, length)
        # 5. the returning host: a new secondary on A's image
        n.img = a.img
        n.start("secondary", port2)
        for bad in ["", "nohost", "tcp-listen:127.0.0.1:1"]:
            r = ctl(b.ctl, "replicate", secondary=bad)
            assert not r["ok"] and r["error"], (bad, r)
        r = ctl(b.ctl, "replicate", secondary="127.0.0.1:%d" % port2)
        assert r["ok"] and r["role"] == "primary", r
        r = ctl(b.ctl, "replicate", secondary="127.0.0.1:%d" % port2)
        assert not r["ok"] and "already replicating" in r["error"], r
        # the client goes on, during the resync and after it
        for i in range(1, 9):
            client.send_write(100 + i, (base + i) * 4096, block(base + i))
        for i in range(1, 9):
            h, err = client.reply()
            assert err == 0 and 100 < h <= 108, (h, err)
        qio.do("write -P 98 %d 4096" % (qoff + 4096))
        qio.do("read -P 97 %d 4096" % qoff)
        # 6. protected
        wait_for(lambda: b.state() == "protected", "re-protection")
        qio.do("write -P 99 %d 8192" % (qoff + 8192))
        qio.do("read -P 98 %d 4096" % (qoff + 4096))
        client.send_write(200, (base + 9) * 4096, block(base + 9))
        assert client.reply() == (200, 0)
        qemu_io(b.exp, "write -P %d %d %d" % (0xD1, 1 << 20, 8192))
        assert_same(read_file(a.img), read_file(b.img),
                    "new secondary's image after re-protection")
        st = ctl(b.ctl, "stats")
        sent, compared = st["last_resync_bytes"], st["last_resync_compared"]
        print("  replicate: %d granules changed, resync compared %d bytes, "
              "sent %d" % (len(changed), compared, sent))
        assert compared == SIZE, st
        assert st["resync"] == "digest" and st["digest_resyncs"] == 1, st
        # Only changed granules go (some may have been made equal by the
        # client's writes during the pass): far below the image size.
        assert 0 < sent <= len(changed) * GRAN, (sent, sorted(changed))
        assert sent < SIZE // 8, st
        # a two-step checkpoint over the new pair
        r = ctl(b.ctl, "prepare")
        assert r["ok"], r
        r = ctl(n.ctl, "commit", id=1)
        assert r["ok"] and r["prepared"] is False, r
        r = ctl(b.ctl, "checkpoint")
        assert r["ok"], r
    finally:
        if client:
            client.s.close()
        if qio:
            qio.close()
        for h in (a, b, n):
            h.kill()


def scenario_full_option(tmp):
    """--resync full copies every granule, even equal ones; and an old-style
    full copy still yields equal images."""
    a, b = Host(tmp, "a"), Host(tmp, "b")
    port = free_port()
    for h in (a, b):
        with open(h.img, "wb") as f:
            f.truncate(SIZE)
    with open(a.img, "r+b") as f:
        f.seek(3 * GRAN)
        f.write(b"\x5a" * 1000)
    try:
        b.start("secondary", port)
        a.start("primary", port, "--resync", "full")
        wait_for(lambda: a.state() == "protected", "protection")
        st = ctl(a.ctl, "stats")
        assert st["resync"] == "full" and st["last_resync_bytes"] == SIZE, st
        assert st["last_resync_compared"] == 0, st
        assert_same(read_file(b.img), read_file(a.img), "full resync")
    finally:
        for h in (a, b):
            h.kill()


def scenario_replicate_tls(tmp):
    """The survivor's link to the returning host runs in TLS with the
    credentials it was started with as a secondary (both pairs in DIR)."""
    mkcreds = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "..", "tls", "mkcreds.sh")
    ca, ha, hb = (os.path.join(tmp, d) for d in ("ca", "ha", "hb"))
    subprocess.run([mkcreds, "ca", ca], check=True, capture_output=True)
    for d, name in ((ha, "ha"), (hb, "hb")):
        subprocess.run([mkcreds, "host", ca, d, name], check=True,
                       capture_output=True)
    b, n = Host(tmp, "b"), Host(tmp, "n")
    port1, port2 = free_port(), free_port()
    for h, fill in ((b, 0x11), (n, 0x22)):
        with open(h.img, "wb") as f:
            f.write(bytes([fill]) * SIZE)
    try:
        # b was the secondary of host "ha"; it survives it
        b.start("secondary", port1, "--tls-creds", hb, "--tls-peer", "ha")
        r = ctl(b.ctl, "failover")
        assert r["ok"], r
        qemu_io(b.exp, "write -P 51 %d %d" % (GRAN * 3, GRAN))
        # "ha" comes back as a secondary on its old image
        n.start("secondary", port2, "--tls-creds", ha, "--tls-peer", "hb")
        r = ctl(b.ctl, "replicate", secondary="127.0.0.1:%d" % port2)
        assert r["ok"], r
        wait_for(lambda: b.state() == "protected", "protection over TLS")
        qemu_io(b.exp, "write -P 52 %d %d" % (GRAN * 7 + 5, 100))
        assert_same(read_file(n.img), read_file(b.img), "image over TLS")
        st = ctl(n.ctl, "stats")
        assert st["digest_reqs"] > 0 and st["refused"] == 0, st
    finally:
        for h in (b, n):
            h.kill()


def scenario_writes_during_resync(tmp):
    """A client writes without pause, pipelined, while the digest pass
    runs: no write may be lost or overtaken by the copy of its granule."""
    a, b = Host(tmp, "a"), Host(tmp, "b")
    port = free_port()
    size = 64 << 20
    img = bytearray(os.urandom(size))
    with open(a.img, "wb") as f:
        f.write(img)
    for g in range(0, size // GRAN, 37):  # about 3% of the granules
        img[g * GRAN + 100:g * GRAN + 200] = bytes(100)
    with open(b.img, "wb") as f:
        f.write(img)
    del img
    client = None
    try:
        b.start("secondary", port)
        a.start("primary", port)  # the digest pass starts at once
        client = NbdClient(a.exp)
        sent, inflight, depth, nblocks = 0, 0, 8, size // 4096
        seen_resync, protected_at = False, None
        while protected_at is None or sent < protected_at + 200:
            while inflight < depth:
                # spread over the image, every block rewritten in turn
                blk = (sent * 997) % nblocks
                client.send_write(sent, blk * 4096, block(sent))
                sent += 1
                inflight += 1
            h, err = client.reply()
            assert err == 0, (h, err)
            inflight -= 1
            if sent % 64 == 0 and protected_at is None:
                st = a.state()
                seen_resync |= st == "resyncing"
                if st == "protected":
                    protected_at = sent
            assert sent < 400000, "never protected"
        while inflight:
            assert client.reply()[1] == 0
            inflight -= 1
        st = ctl(a.ctl, "stats")
        print("  writes_during_resync: %d writes, %d during the resync "
              "(seen resyncing: %s), resync copied %d bytes in %d ms" %
              (sent, st["forwarded"], seen_resync, st["last_resync_bytes"],
               st["last_resync_ms"]))
        assert st["digest_resyncs"] == 1 and st["forwarded"] > 0, st
        assert_same(read_file(b.img), read_file(a.img),
                    "secondary after writes during the resync")
    finally:
        if client:
            client.s.close()
        for h in (a, b):
            h.kill()


SCENARIOS = {
    "replicate": scenario_replicate,
    "writes_during_resync": scenario_writes_during_resync,
    "replicate_tls": scenario_replicate_tls,
    "full_option": scenario_full_option,
}


def main():
    return tr.run(SCENARIOS, "colo-reprotect-")


if __name__ == "__main__":
    sys.exit(main())
