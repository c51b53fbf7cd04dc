"""vmpair.py - two `colo vm` daemons on loopback with the tiny guest: the
shared harness of the VM tests (tests/vm/vm_test.py) and the frame
benchmark (bench/frame/). Each host gets its own directory (RAM file, QMP
sockets, QEMU logs); RAM crosses only the frame link. Everything it starts
is stopped by close(), also when a test fails.

With disk=BYTES each host also gets a `colo blk` daemon (primary and
secondary, replicating over loopback) and an image of that size, zeroed;
both `colo vm` daemons get --disk (the blk NBD export) and --blk-control,
and the guest a virtio-blk disk on node colo-disk."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from testlib import free_port  # noqa: E402


def guest_dir():
    """Builds (once) and returns the tiny guest's directory (the builder
    is shared with `colo demo` and ./dev.sh run: contrib/guest/)."""
    build = os.path.join(HERE, "..", "..", "contrib", "guest", "build.sh")
    out = subprocess.run([build], check=True, stdout=subprocess.PIPE,
                         text=True)
    return out.stdout.strip().splitlines()[-1]


def ctl(path, obj, timeout=120):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall((json.dumps(obj) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    return json.loads(buf)


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


class Pair:
    def __init__(self, colo, mem="128M", append="", extra=(), interval=0,
                 min_interval=0, base=None, secondary_extra=(),
                 opts=None, disk=None, link_port=None,
                 link_connect_port=None, disk_late=False):
        self.colo = colo
        self.dir = tempfile.mkdtemp(prefix="colo-vm-test-",
                                    dir=base or "/dev/shm")
        g = guest_dir()
        self.guest = ["-machine", "pc", "-accel", "tcg", "-m", mem,
                      "-nodefaults", "-vga", "none", "-display", "none",
                      "-serial", "stdio", "-kernel", g + "/vmlinuz",
                      "-initrd", g + "/initrd.cpio.gz", "-append",
                      "console=ttyS0 quiet colo_beat=1 " + append]
        self.guest += list(extra)
        self.procs = {}
        self.port = link_port or free_port()
        # Where the secondary connects: the primary's port, or a relay.
        self.connect_port = link_connect_port or self.port
        self.common = ["--interval", str(interval), "--min-interval",
                       str(min_interval)]
        self.secondary_extra = list(secondary_extra)
        self.opts = opts or {}  # role -> extra colo vm options
        self.starts = 0
        self.blk = {}
        self.blk_relay = None
        if disk:
            self.start_disk(disk, disk_late)
        for role in ("primary", "secondary"):
            self.start(role)

    def start(self, role):
        """Starts role's daemon (again, after kill(): a fresh host)."""
        self.starts += 1
        d = os.path.join(self.dir, "%s-%d" % (role, self.starts))
        dump = os.path.join(self.dir, role + "-dump")
        os.makedirs(dump, exist_ok=True)
        args = [self.colo, "vm", "--role", role, "--dir", d, "--control",
                self.ctl_path(role), "--dump-dir", dump] + self.common
        args += (["--link-listen", "127.0.0.1:%d" % self.port]
                 if role == "primary" else
                 ["--link-connect", "127.0.0.1:%d" % self.connect_port])
        args += list(self.opts.get(role, ()))
        guest = self.guest + (self.secondary_extra
                              if role == "secondary" else [])
        log = open(os.path.join(self.dir, role + ".log"), "a")
        self.procs[role] = subprocess.Popen(
            args + ["--"] + guest, stdout=log, stderr=log,
            start_new_session=True)
        log.close()

    def blk_path(self, role, what):
        """role's blk image ("img"), NBD export ("nbd") or control
        socket ("ctl")."""
        return os.path.join(self.dir, "blk-%s.%s" % (role, what))

    def start_disk(self, size, late=False):
        """Both blk daemons, protected, before any QEMU opens the disk;
        then each colo vm is told where its host's blk is. late: the
        blk primary cannot reach its secondary until link_blk() (a
        relay on the port it dials), so blk is not protected when the
        pair starts: its first resync waits."""
        for role in ("primary", "secondary"):
            with open(self.blk_path(role, "img"), "wb") as f:
                f.truncate(size)
        self.blk_port = free_port()
        self.blk_listen = free_port() if late else self.blk_port
        for role in ("secondary", "primary"):
            self.start_blk(role)
            self.opts.setdefault(role, [])
            self.opts[role] = list(self.opts[role]) + [
                "--disk", "unix:" + self.blk_path(role, "nbd"),
                "--blk-control", self.blk_path(role, "ctl")]
        if not late:
            self.wait_blk_protected()
        self.guest += ["-device", "virtio-blk-pci,drive=colo-disk"]

    def start_blk(self, role):
        """role's colo blk daemon, up to its control socket."""
        args = [self.colo, "blk", role, "--image",
                self.blk_path(role, "img"), "--export",
                "unix-listen:" + self.blk_path(role, "nbd"),
                "--control", self.blk_path(role, "ctl")]
        args += (["--listen", "127.0.0.1:%d" % self.blk_listen]
                 if role == "secondary" else
                 ["--secondary", "127.0.0.1:%d" % self.blk_port])
        log = open(os.path.join(self.dir, "blk-" + role + ".log"), "a")
        self.blk[role] = subprocess.Popen(args, stdout=log, stderr=log,
                                          start_new_session=True)
        log.close()
        wait_for(lambda: os.path.exists(self.blk_path(role, "ctl")),
                 30, "blk " + role)

    def link_blk(self):
        """late: the blk primary reaches its secondary from now on."""
        sys.path.insert(0, os.path.join(HERE, "..", "tls"))
        from relay import Relay
        self.blk_relay = Relay(self.blk_listen, listen_port=self.blk_port)

    def wait_blk_protected(self, timeout=60):
        wait_for(lambda: self.blk_ctl("primary", "status")["state"] ==
                 "protected", timeout, "the blk pair to be protected")

    def blk_ctl(self, role, cmd, **kw):
        kw["cmd"] = cmd
        return ctl(self.blk_path(role, "ctl"), kw)

    def kill_blk(self, role):
        p = self.blk.get(role)
        if p and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    def ctl_path(self, role):
        return os.path.join(self.dir, role + ".ctl")

    def ctl(self, role, cmd, **kw):
        kw["cmd"] = cmd
        return ctl(self.ctl_path(role), kw)

    def status(self, role):
        return self.ctl(role, "status")

    def wait_protected(self, timeout=120):
        def ok():
            for r in ("primary", "secondary"):
                if self.procs[r].poll() is not None:
                    raise AssertionError(r + " daemon exited:\n" +
                                         self.log(r))
            try:
                return all(self.status(r)["mode"] == "protected"
                           for r in ("primary", "secondary"))
            except OSError:
                return False
        wait_for(ok, timeout, "the pair to be protected")

    def log(self, role):
        with open(os.path.join(self.dir, role + ".log")) as f:
            return f.read()

    def dump_paths(self, seq):
        return [os.path.join(self.dir, r + "-dump", "ckpt-%d.ram" % seq)
                for r in ("primary", "secondary")]

    def beat(self, role):
        """The guest's last console heartbeat on role's current VM."""
        path = self.status(role)["vm_log"]
        try:
            with open(path, errors="replace") as f:
                beats = re.findall(r"beat (\d+)", f.read())
        except OSError:
            return 0
        return int(beats[-1]) if beats else 0

    def wait_running(self, role, timeout=60):
        """The guest of role's VM makes progress (two new heartbeats)."""
        b0 = self.beat(role)
        wait_for(lambda: self.beat(role) >= b0 + 2, timeout,
                 role + "'s guest to keep running")

    def kill(self, role):
        p = self.procs[role]
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    def close(self):
        """Stops both daemons; a daemon that does not exit cleanly on
        SIGTERM (sanitizer report, crash, hang) fails the test."""
        bad = []
        daemons = list(self.procs.items()) + [
            ("blk " + r, p) for r, p in self.blk.items()]
        for role, p in daemons:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    if p.wait(20) != 0:
                        bad.append(role)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                    bad.append(role)
        for role in bad:
            print("--- %s daemon did not exit cleanly:\n%s"
                  % (role, self.log(role.replace(" ", "-"))[-4000:]))
        if self.blk_relay:
            self.blk_relay.ls.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if bad and sys.exc_info()[0] is None:
            raise AssertionError("unclean exit: " + ", ".join(bad))


def close_all(pair, procs, d, failed):
    """The end of a test with proxies: the pair (whose unclean exit
    fails the test), then, whatever that raised, the proxies and the
    directory d."""
    try:
        if pair:
            pair.close()
    finally:
        stop_proxies(procs, d, failed)
        shutil.rmtree(d, ignore_errors=True)


def stop_proxies(procs, logdir, failed):
    """SIGTERMs the proxies (killed after 10 s); when the test failed,
    prints the tail of each one's log (logdir/p.log, logdir/s.log)."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if failed:
        for tag in ("p", "s"):
            path = os.path.join(logdir, tag + ".log")
            if os.path.exists(path):
                with open(path) as f:
                    print("--- proxy %s:\n%s" % (tag, f.read()[-3000:]))


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True
