#!/usr/bin/env python3
"""Integration test of `colo compare`: a real daemon, real sockets.

Each scenario starts the daemon, plays QEMU's primary/secondary mirrors,
the out chardev and Xen's notify peer with frames built here, and checks
what comes out. Usage: test_compare_daemon.py PATH_TO_COLO [SCENARIO...]
Python 3 standard library only; every wait is bounded.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import free_port  # noqa: E402

COLO = None
DEADLINE = 5.0  # seconds to wait for something that must happen
QUIET = 0.6     # seconds of silence that count as "nothing came"

# ---------------------------------------------------------------- frames


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto, l4, src="10.0.0.1", dst="10.0.0.2"):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64,
                      proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4


def eth(payload, ethertype=0x0800):
    return (b"\x52\x54\x00\x00\x00\x02" + b"\x52\x54\x00\x00\x00\x01" +
            struct.pack("!H", ethertype) + payload)


def tcp(seq, payload=b"", flags=0x18, ack=1000, sport=80, dport=40000):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack,
                      5 << 4, flags, 65535, 0, 0)
    return eth(ipv4(6, seg + payload))


def udp(payload, sport=53, dport=40001):
    return eth(ipv4(17, struct.pack("!HHHH", sport, dport,
                                    8 + len(payload), 0) + payload))


def arp(n=0):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + bytes(6) + \
        socket.inet_aton("10.0.0.1") + bytes(6) + \
        socket.inet_aton("10.0.0.%d" % (n % 250 + 2))
    return eth(body, 0x0806)


SYNACK = 0x12
PSHACK = 0x18

# ---------------------------------------------------------------- peers


class Peer:
    """One end of a framed chardev socket."""

    def __init__(self, sock, vnet=False):
        self.sock = sock
        self.vnet = vnet
        self.buf = b""
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @staticmethod
    def encode(frame, vnet=False, vnet_len=0, length=None):
        n = len(frame) if length is None else length
        head = struct.pack("!I", n)
        if vnet:
            head += struct.pack("!I", vnet_len)
        return head + frame

    def send(self, frame, vnet_len=0):
        self.sock.sendall(self.encode(frame, self.vnet, vnet_len))

    def raw(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return False
        if not data:
            raise EOFError("peer closed")
        self.buf += data
        return True

    def recv(self, timeout=DEADLINE, vnet=None):
        """(frame, vnet_len) or None when nothing whole came in time."""
        vnet = self.vnet if vnet is None else vnet
        hdr = 8 if vnet else 4
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= hdr:
                n = struct.unpack("!I", self.buf[:4])[0]
                if len(self.buf) >= hdr + n:
                    vl = struct.unpack("!I", self.buf[4:8])[0] if vnet else 0
                    frame = self.buf[hdr:hdr + n]
                    self.buf = self.buf[hdr + n:]
                    return frame, vl
            if not self._fill(deadline):
                return None

    def expect(self, frame, vnet_len=None, what="frame"):
        got = self.recv()
        check(got is not None, "%s: nothing received" % what)
        check(got[0] == frame, "%s: got other bytes (%d vs %d bytes)" %
              (what, len(got[0]), len(frame)))
        if vnet_len is not None:
            check(got[1] == vnet_len, "%s: vnet_hdr_len %d, expected %d" %
                  (what, got[1], vnet_len))

    def expect_nothing(self, what="nothing", timeout=QUIET):
        got = self.recv(timeout)
        check(got is None, "%s: unexpected frame of %d bytes" %
              (what, len(got[0]) if got else 0))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def connect(addr, vnet=False, timeout=DEADLINE):
    """Connect to a daemon listen socket, retrying until it is there."""
    deadline = time.monotonic() + timeout
    family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    while True:
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.connect(addr)
            return Peer(s, vnet)
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)

# ---------------------------------------------------------------- daemon


class Daemon:
    def __init__(self, *extra, notify=False, unix=False, out_connect=None,
                 expect_fail=False):
        self.tmp = tempfile.mkdtemp(prefix="colo-daemon-test-")
        self.addrs = {}
        args = [COLO, "compare"]
        names = ["primary-in", "secondary-in", "out"] + \
            (["notify"] if notify else [])
        for name in names:
            if name == "out" and out_connect is not None:
                args += ["--out", "tcp:127.0.0.1:%d" % out_connect]
                continue
            if unix:
                path = os.path.join(self.tmp, name + ".sock")
                self.addrs[name] = path
                args += ["--" + name, "unix-listen:" + path]
            else:
                port = free_port()
                self.addrs[name] = ("127.0.0.1", port)
                args += ["--" + name, "tcp-listen:127.0.0.1:%d" % port]
        args += list(extra)
        self.errpath = os.path.join(self.tmp, "stderr")
        self.err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=self.err)

    def peer(self, name, vnet=False):
        return connect(self.addrs[name], vnet)

    def stderr(self):
        self.err.flush()
        with open(self.errpath, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def terminate(self, timeout=10):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise Failure("daemon ignored SIGTERM")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.err.close()


def handshake(d, vnet=False):
    """Connect the four peers; the out peer last so nothing is missed."""
    p = d.peer("primary-in", vnet)
    s = d.peer("secondary-in", vnet)
    o = d.peer("out", vnet)
    return p, s, o


def tcp_flow(p, s, o, base=5000, sport=80):
    """A synced TCP flow whose SYN/ACK has been released."""
    syn = tcp(base, flags=SYNACK, sport=sport)
    p.send(syn)
    s.send(syn)
    o.expect(syn, what="SYN/ACK")
    return base + 1

# ---------------------------------------------------------------- scenarios


def t_identical(d):
    p, s, o = handshake(d)
    seq = tcp_flow(p, s, o)
    frames = []
    for i in range(20):
        data = (b"segment %02d " % i) * 5
        frames.append(tcp(seq, data))
        seq += len(data)
    for f in frames:
        p.send(f)
    for f in frames:
        s.send(f)
    for i, f in enumerate(frames):
        o.expect(f, what="tcp segment %d" % i)
    for i in range(5):
        u = udp(b"datagram %d" % i)
        s.send(u)
        p.send(u)
        o.expect(u, what="udp %d" % i)
    o.expect_nothing("after identical traffic")


def t_arp(d):
    p, s, o = handshake(d)
    a = arp()
    p.send(a)
    o.expect(a, what="ARP from primary")
    s.send(arp(1))
    o.expect_nothing("ARP from secondary")


def tcp_csum_ok(frame):
    ip = frame[14:34]
    seg = frame[34:]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(seg))
    return csum(pseudo + seg) == 0


def expect_part(o, want, what):
    """A frame the comparer built from part of a primary segment: the
    same bytes as `want` except the TCP checksum, which must be valid."""
    got = o.recv()
    check(got is not None, "%s: nothing received" % what)
    f = got[0]
    check(len(f) == len(want) and f[:50] + f[52:] == want[:50] + want[52:],
          "%s: got other bytes (%d vs %d bytes)" % (what, len(f), len(want)))
    check(tcp_csum_ok(f), "%s: bad TCP checksum" % what)


def t_segmentation(d):
    p, s, o = handshake(d)
    seq = tcp_flow(p, s, o)
    whole = tcp(seq, b"0123456789")
    p.send(whole)
    s.send(tcp(seq, b"012"))
    s.send(tcp(seq + 3, b"3456789"))
    o.expect(whole, what="10-byte primary vs 3+7 secondary")
    seq += 10
    a, b = tcp(seq, b"abc"), tcp(seq + 3, b"defghij")
    p.send(a)
    p.send(b)
    s.send(tcp(seq, b"abcdefghij"))
    o.expect(a, what="3-byte primary segment")
    o.expect(b, what="7-byte primary segment")
    # A secondary that stops inside a primary segment and retransmits
    # (it waits for an ACK the client cannot send): the matched front
    # leaves as a segment of its own, checksum filled in.
    seq += 10
    whole = tcp(seq, b"klmnopqrst")
    p.send(whole)
    s.send(tcp(seq, b"klm"))
    o.expect_nothing("front matched, no retransmission yet")
    s.send(tcp(seq, b"klm"))
    expect_part(o, tcp(seq, b"klm", flags=0x10), "front after retransmit")
    s.send(tcp(seq + 3, b"nopqrst"))
    expect_part(o, tcp(seq + 3, b"nopqrst"), "rest after retransmit")


def t_split_frames(d):
    """Frames arriving a few bytes at a time, header and body split."""
    p, s, o = handshake(d)
    frames = [udp(b"split %d" % i) for i in range(4)]
    wire = b"".join(Peer.encode(f) for f in frames)
    pos = 0
    for step in (1, 2, 3, 1, 5, 7, 11, 2):
        p.raw(wire[pos:pos + step])
        pos += step
        time.sleep(0.02)
    p.raw(wire[pos:])
    s.raw(wire)
    for i, f in enumerate(frames):
        o.expect(f, what="split frame %d" % i)


def t_notify(d):
    n = d.peer("notify")
    n.send(b"COLO_USERSPACE_PROXY_INIT")
    got = n.recv()
    check(got is not None and got[0] == b"COLO_COMPARE_GET_XEN_INIT",
          "init handshake: got %r" % (got,))
    p, s, o = handshake(d)
    good = udp(b"same")
    p.send(good)
    s.send(good)
    o.expect(good, what="matching datagram")
    bad1, bad2 = udp(b"hello"), udp(b"again")
    p.send(bad1)
    s.send(udp(b"hellx"))
    got = n.recv()
    check(got is not None and got[0] == b"DO_CHECKPOINT",
          "mismatch: expected DO_CHECKPOINT, got %r" % (got,))
    p.send(bad2)
    s.send(udp(b"agaiX"))
    n.expect_nothing("second DO_CHECKPOINT in one episode")
    o.expect_nothing("held output before the checkpoint", timeout=0.2)
    n.send(b"SOMETHING_ELSE")
    n.send(b"COLO_CHECKPOINT")
    o.expect(bad1, what="first held frame after COLO_CHECKPOINT")
    o.expect(bad2, what="second held frame after COLO_CHECKPOINT")
    after = udp(b"after")
    p.send(after)
    s.send(after)
    o.expect(after, what="matching datagram after the checkpoint")
    n.expect_nothing("DO_CHECKPOINT after the episode")
    check("unknown message" in d.stderr(), "unknown message not logged")


def t_vnet(d):
    n = d.peer("notify")
    # QEMU-style notify input carries the vnet word, Xen's does not.
    n.raw(Peer.encode(b"COLO_USERSPACE_PROXY_INIT", True, 0))
    got = n.recv(vnet=False)
    check(got is not None and got[0] == b"COLO_COMPARE_GET_XEN_INIT",
          "vnet init (with word): got %r" % (got,))
    n.raw(Peer.encode(b"COLO_USERSPACE_PROXY_INIT", False))
    got = n.recv(vnet=False)
    check(got is not None and got[0] == b"COLO_COMPARE_GET_XEN_INIT",
          "vnet init (without word): got %r" % (got,))
    p, s, o = handshake(d, vnet=True)
    vhdr = bytes([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    frames = [vhdr + udp(b"vnet %d" % i) for i in range(3)] + [vhdr + arp()]
    for f in frames[:3]:
        p.send(f, 10)
        s.send(f, 10)
    for i, f in enumerate(frames[:3]):
        o.expect(f, 10, what="vnet frame %d" % i)
    p.send(frames[3], 10)
    o.expect(frames[3], 10, what="vnet ARP frame")
    # vnet_hdr_len larger than the frame: skipped, stream goes on
    p.raw(Peer.encode(b"\0" * 20, True, 30))
    ok = vhdr + arp(7)
    p.send(ok, 10)
    o.expect(ok, 10, what="frame after a bad vnet_hdr_len")
    # mismatch -> DO_CHECKPOINT without a vnet word
    p.send(vhdr + udp(b"AAAA"), 10)
    s.send(vhdr + udp(b"BBBB"), 10)
    got = n.recv(vnet=False)
    check(got is not None and got[0] == b"DO_CHECKPOINT",
          "vnet DO_CHECKPOINT: got %r" % (got,))
    n.raw(Peer.encode(b"COLO_CHECKPOINT", True, 0))
    o.expect(vhdr + udp(b"AAAA"), 10, what="held vnet frame")


def t_malformed(d):
    p, s, o = handshake(d)
    p.raw(struct.pack("!I", 0))              # zero length: skipped
    a = arp(1)
    p.send(a)
    o.expect(a, what="frame after a zero-length frame")
    s.raw(struct.pack("!I", 4096 + 65536 + 1) + b"x" * 64)  # oversize
    time.sleep(0.3)
    check(d.alive(), "daemon died on an oversized frame")
    b = arp(2)
    p.send(b)
    o.expect(b, what="primary after secondary desync")
    s.close()
    s = d.peer("secondary-in")               # accepted again
    f = udp(b"resync")
    p.send(f)
    s.send(f)
    o.expect(f, what="matching datagram after secondary reconnect")
    s.raw(b"\0\0")                           # truncated header at EOF
    s.close()
    s = d.peer("secondary-in")
    g = udp(b"again")
    p.send(g)
    s.send(g)
    o.expect(g, what="after truncated header")
    err = d.stderr()
    check("zero-length" in err and "malformed" in err,
          "malformed frames not logged")


def t_reconnect(d):
    p, s, o = handshake(d)
    a = arp(3)
    p.send(a)
    o.expect(a, what="before out reconnect")
    o.close()
    time.sleep(0.2)
    held = [arp(10 + i) for i in range(5)]
    for f in held:
        p.send(f)
    time.sleep(0.2)
    o = d.peer("out")
    for i, f in enumerate(held):
        o.expect(f, what="released while out was away %d" % i)
    p.close()
    p = d.peer("primary-in")
    f = udp(b"after primary reconnect")
    p.send(f)
    s.send(f)
    o.expect(f, what="after primary reconnect")


def t_back_pressure(d):
    """6 MiB of output while no out peer: held, back-pressure, no loss."""
    p = d.peer("primary-in")
    s = d.peer("secondary-in")
    frames = [arp(i) + bytes([i % 256]) * 60000 for i in range(300)]
    err = []

    def writer():
        try:
            for f in frames:
                p.send(f)
        except OSError as e:
            err.append(e)
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(1.0)
    check(t.is_alive(), "primary writer was not held back")
    o = d.peer("out")
    for i, f in enumerate(frames):
        o.expect(f, what="back-pressured frame %d" % i)
    t.join(DEADLINE)
    check(not err and not t.is_alive(), "writer failed: %r" % err)
    s.close()
    check("pausing inputs" in d.stderr(), "pause not logged")


def t_signals(d):
    p, s, o = handshake(d)
    a = arp()
    p.send(a)
    o.expect(a)
    d.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + DEADLINE
    while "primary-in.frames" not in d.stderr():
        check(time.monotonic() < deadline, "SIGUSR1 printed no stats")
        time.sleep(0.05)
    check(d.alive(), "SIGUSR1 killed the daemon")
    rc = d.terminate()
    check(rc == 0, "SIGTERM: exit code %r" % rc)
    check("final statistics" in d.stderr(), "no final statistics")
    return "terminated"


def run_scenario(name, fn, *args, **kw):
    d = Daemon(*args, **kw)
    try:
        if fn(d) != "terminated":
            check(d.alive(), "daemon exited during the scenario")
            rc = d.terminate()
            check(rc == 0, "SIGTERM: exit code %r" % rc)
        err = d.stderr()
        check("Sanitizer" not in err and "runtime error" not in err,
              "sanitizer report in the daemon's stderr")
    except Exception:
        print("--- daemon stderr (%s) ---\n%s" % (name, d.stderr()[-4000:]))
        raise
    finally:
        d.kill()


def scenario_out_connect():
    """--out tcp:HOST:PORT: the daemon connects (and retries)."""
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    port = free_port()
    d = Daemon(out_connect=port)
    try:
        p = d.peer("primary-in")
        a = arp(4)
        p.send(a)
        time.sleep(0.5)             # the daemon retries meanwhile
        lst.bind(("127.0.0.1", port))
        lst.listen(1)
        lst.settimeout(DEADLINE + 5)
        conn, _ = lst.accept()
        o = Peer(conn)
        o.expect(a, what="frame held until out connected")
        o.close()                   # the daemon must connect again
        conn, _ = lst.accept()
        o = Peer(conn)
        b = arp(5)
        p.send(b)
        o.expect(b, what="after out reconnect")
        check(d.terminate() == 0, "SIGTERM exit code")
    except Exception:
        print("--- daemon stderr (out_connect) ---\n%s" % d.stderr()[-4000:])
        raise
    finally:
        d.kill()
        lst.close()


def scenario_bad_args():
    cases = [
        [],
        ["--primary-in", "tcp-listen:127.0.0.1:1"],
        ["--primary-in", "bogus:1", "--secondary-in", "unix:/x",
         "--out", "unix:/y"],
        ["--primary-in", "tcp:127.0.0.1:99999", "--secondary-in", "unix:/x",
         "--out", "unix:/y"],
        ["--primary-in", "unix:/a", "--secondary-in", "unix:/x",
         "--out", "unix:/y", "--compare-timeout", "abc"],
        ["--primary-in", "unix:/a", "--secondary-in", "unix:/x",
         "--out", "unix:/y", "--max-queue", "0"],
        ["--primary-in", "unix:/a", "--secondary-in", "unix:/x",
         "--out", "unix:/y", "--max-flows", "0"],
        ["--no-such-option"],
        ["--primary-in", "unix:/a", "--secondary-in", "unix:/x",
         "--out", "unix:/y", "stray"],
    ]
    for args in cases:
        r = subprocess.run([COLO, "compare"] + args, capture_output=True,
                           timeout=10)
        check(r.returncode == 2, "%r: exit %d, expected 2" %
              (args, r.returncode))
        check(b"colo compare:" in r.stderr and len(r.stderr) > 20,
              "%r: no message on stderr" % (args,))
    r = subprocess.run([COLO, "compare", "--help"], capture_output=True,
                       timeout=10)
    check(r.returncode == 0 and b"--notify" in r.stdout and
          b"SIGUSR1" in r.stdout, "--help")


def t_notify_flood(d):
    """A notify peer that asks and never reads is dropped once its
    replies pass the bound, instead of growing the daemon's memory."""
    n = d.peer("notify")
    n.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    init = Peer.encode(b"COLO_USERSPACE_PROXY_INIT", False)
    blob = init * 20000
    dropped = False
    deadline = time.monotonic() + 30
    while not dropped and time.monotonic() < deadline:
        try:
            n.sock.sendall(blob)
        except OSError:
            dropped = True
        if "does not read its replies" in d.stderr():
            dropped = True
    check(dropped, "notify peer that never reads was not dropped")
    n.close()
    # The next peer is served normally.
    n = d.peer("notify")
    n.send(b"COLO_USERSPACE_PROXY_INIT")
    got = n.recv()
    check(got is not None and got[0] == b"COLO_COMPARE_GET_XEN_INIT",
          "init after a dropped flooder: got %r" % (got,))
    d.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while "notify.peers_dropped_unread 1" not in d.stderr():
        check(time.monotonic() < deadline, "drop not counted in stats")
        time.sleep(0.05)


def t_unix_stranger(d):
    """Another user reaching a UNIX notify socket (mode loosened on
    purpose) is refused: no COLO_CHECKPOINT from it is believed."""
    path = d.addrs["notify"]
    connect(path).close()  # the daemon is up
    check(os.stat(path).st_mode & 0o777 == 0o600,
          "notify socket mode %o" % (os.stat(path).st_mode & 0o777))
    if os.geteuid() != 0:
        return
    os.chmod(path, 0o777)
    os.chmod(d.tmp, 0o711)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(5)
            c.connect(path)
            try:
                c.sendall(Peer.encode(b"COLO_USERSPACE_PROXY_INIT", False))
                code = 0 if c.recv(100) == b"" else 3
            except (BrokenPipeError, ConnectionResetError):
                code = 0  # closed before or after our request
        except Exception as e:
            sys.stderr.write("stranger: %r\n" % e)
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
          "stranger was served (child status %r)" % status)
    check("refused a peer" in d.stderr(), "refusal not logged")
    t_notify(d)


def t_max_flows(d):
    """Past --max-flows a new flow's frames pass uncompared, counted and
    logged once, instead of growing the table."""
    p, s, o = handshake(d)
    for port in (1, 2):
        f = udp(b"same", sport=port)
        p.send(f)
        s.send(f)
        o.expect(f, what="flow %d" % port)
    for port in (3, 4, 5):
        f = udp(b"over", sport=port)
        p.send(f)
        o.expect(f, what="frame of flow %d past the bound" % port)
    d.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while "flows limit=2 refused_frames=3" not in d.stderr():
        check(time.monotonic() < deadline, "refusals not counted: %s" %
              d.stderr()[-600:])
        time.sleep(0.05)
    check(d.stderr().count("flow table full") == 1,
          "table full not logged exactly once")


def scenario_notify_insecure():
    """A TCP --notify on a non-loopback address needs --insecure."""
    base = ["--primary-in", "unix:/a", "--secondary-in", "unix:/x",
            "--out", "unix:/y"]
    for spec in ["tcp-listen:0.0.0.0:9", "tcp-listen::9",
                 "tcp:192.0.2.1:9", "tcp-listen:[::]:9"]:
        r = subprocess.run([COLO, "compare"] + base + ["--notify", spec],
                           capture_output=True, timeout=10)
        check(r.returncode == 2 and b"--insecure" in r.stderr,
              "%s: exit %d, %r" % (spec, r.returncode, r.stderr))
    # Loopback is fine, and --insecure lifts the rule (the daemon then
    # runs; these connect ends just retry).
    for extra in [["--notify", "tcp:127.0.0.1:9"],
                  ["--notify", "tcp:192.0.2.1:9", "--insecure"]]:
        p = subprocess.Popen([COLO, "compare"] + base + extra,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        time.sleep(0.3)
        check(p.poll() is None, "%r refused" % extra)
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=10)


def scenario_unix_in_use():
    """A second daemon on a live instance's UNIX socket refuses to start
    and leaves the first one working."""
    d = Daemon(unix=True)
    try:
        connect(d.addrs["out"]).close()
        args = [COLO, "compare"]
        for name in ["primary-in", "secondary-in", "out"]:
            args += ["--" + name, "unix-listen:" + d.addrs[name]]
        r = subprocess.run(args, capture_output=True, timeout=10)
        check(r.returncode == 1 and
              b"in use by a running instance" in r.stderr,
              "second instance: exit %d, %r" % (r.returncode, r.stderr))
        t_identical(d)
        check(d.terminate() == 0, "first instance exit")
    finally:
        d.kill()


SCENARIOS = {
    "identical": lambda: run_scenario("identical", t_identical),
    "arp": lambda: run_scenario("arp", t_arp),
    "segmentation": lambda: run_scenario("segmentation", t_segmentation,
                                         "--compare-timeout", "10000"),
    "split": lambda: run_scenario("split", t_split_frames),
    "notify": lambda: run_scenario("notify", t_notify, "--compare-timeout",
                                   "60000", notify=True),
    "vnet": lambda: run_scenario("vnet", t_vnet, "--vnet-hdr",
                                 "--compare-timeout", "60000", notify=True),
    "malformed": lambda: run_scenario("malformed", t_malformed),
    "reconnect": lambda: run_scenario("reconnect", t_reconnect),
    "unix": lambda: run_scenario("unix", t_identical, unix=True),
    "unix_notify": lambda: run_scenario("unix_notify", t_notify,
                                        "--compare-timeout", "60000",
                                        notify=True, unix=True),
    "back_pressure": lambda: run_scenario("back_pressure", t_back_pressure),
    "out_connect": scenario_out_connect,
    "signals": lambda: run_scenario("signals", t_signals),
    "bad_args": scenario_bad_args,
    "notify_flood": lambda: run_scenario("notify_flood", t_notify_flood,
                                         notify=True),
    "unix_stranger": lambda: run_scenario("unix_stranger", t_unix_stranger,
                                          "--compare-timeout", "60000",
                                          notify=True, unix=True),
    "notify_insecure": scenario_notify_insecure,
    "max_flows": lambda: run_scenario("max_flows", t_max_flows,
                                      "--max-flows", "2"),
    "unix_in_use": scenario_unix_in_use,
}


def main():
    global COLO
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    COLO = sys.argv[1]
    names = sys.argv[2:] or list(SCENARIOS)
    failed = []
    for name in names:
        start = time.monotonic()
        try:
            SCENARIOS[name]()
            print("ok   %-14s %.2fs" % (name, time.monotonic() - start))
        except Exception:
            traceback.print_exc()
            print("FAIL %-14s" % name)
            failed.append(name)
        sys.stdout.flush()
    if failed:
        print("failed: %s" % " ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
