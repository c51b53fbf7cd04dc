#!/usr/bin/env python3
"""qemu_interop.py - feed the same traffic to QEMU's colo-compare and to
`colo compare`, and check that they release the same frames.

Each scenario starts a fresh QEMU (-machine none, colo-compare object on an
iothread) and a fresh `colo compare`, both listening on free loopback ports,
connects to their primary-in, secondary-in and out sockets (and notify when
the scenario needs it), writes the same framed traffic to both and collects
what they release.

Two kinds of scenario:
  * agreement: well-behaved traffic (identical or differently segmented TCP,
    UDP, ICMP, ARP, many interleaved connections). Both comparers must
    release exactly the primary frames, and TCP flows in sequence order.
  * documented difference: QEMU 7.2 is known to be wrong. The test asserts
    OUR behaviour and prints what QEMU did, as "qemu:" lines, so the log
    records QEMU's actual behaviour (see README.md in this directory).

Usage: qemu_interop.py PATH/TO/colo [--only=NAME[,NAME...]] [--verbose]
Exit codes: 0 pass, 1 failure, 77 skip (QEMU not installed).
Python 3 standard library only.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
VERBOSE = False

# --------------------------------------------------------------------------
# Frame builder
# --------------------------------------------------------------------------

MAC_GUEST = bytes.fromhex("525400123456")
MAC_CLIENT = bytes.fromhex("525400abcdef")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip4(a):
    return socket.inet_pton(socket.AF_INET, a)


def ip6(a):
    return socket.inet_pton(socket.AF_INET6, a)


def eth(ethertype, payload, vlan=None):
    hdr = MAC_CLIENT + MAC_GUEST
    if vlan is not None:
        hdr += struct.pack("!HH", 0x8100, vlan)
    return hdr + struct.pack("!H", ethertype) + payload


def l4_tcp(sport, dport, seq, ack, flags, payload, window=65535):
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF,
                       ack & 0xFFFFFFFF, 5 << 4, flags, window, 0,
                       0) + payload


def l4_udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def with_l4_csum(proto, l4, pseudo):
    off = {6: 16, 17: 6, 1: 2}[proto]
    c = csum(pseudo + l4) if proto != 1 else csum(l4)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return l4[:off] + struct.pack("!H", c) + l4[off + 2:]


def ipv4(src, dst, proto, l4, ident=0):
    s, d = ip4(src), ip4(dst)
    l4 = with_l4_csum(proto, l4, s + d + struct.pack("!BBH", 0, proto,
                                                     len(l4)))
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0x4000,
                      64, proto, 0, s, d)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4


def ipv6(src, dst, proto, l4):
    s, d = ip6(src), ip6(dst)
    l4 = with_l4_csum(proto, l4, s + d + struct.pack("!IxxxB", len(l4),
                                                     proto))
    return struct.pack("!IHBB", 0x60000000, len(l4), proto, 64) + s + d + l4


def tcp(payload=b"", seq=1000, ack=5000, sport=80, dport=40000,
        src="10.0.0.1", dst="10.0.0.2", flags=0x18, v6=False, vlan=None):
    if not payload and flags == 0x18:
        flags = 0x10
    l4 = l4_tcp(sport, dport, seq, ack, flags, payload)
    if v6:
        return eth(0x86DD, ipv6(src, dst, 6, l4), vlan)
    return eth(0x0800, ipv4(src, dst, 6, l4), vlan)


def udp(payload, sport=53, dport=40000, src="10.0.0.1", dst="10.0.0.2",
        v6=False, vlan=None, ident=0):
    l4 = l4_udp(sport, dport, payload)
    if v6:
        return eth(0x86DD, ipv6(src, dst, 17, l4), vlan)
    return eth(0x0800, ipv4(src, dst, 17, l4, ident), vlan)


def icmp_echo_reply(ident, seqno, payload, src="10.0.0.1", dst="10.0.0.2"):
    l4 = struct.pack("!BBHHH", 0, 0, 0, ident, seqno) + payload
    return eth(0x0800, ipv4(src, dst, 1, l4))


def arp_reply(tag):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + MAC_GUEST + \
        ip4("10.0.0.1") + MAC_CLIENT + ip4("10.0.0.2")
    return eth(0x0806, body + tag.ljust(18, b"\0")[:18])


def tcp_stream(data, sizes, seq=1000, **kw):
    """Segments `data` into frames of the given sizes (cycled)."""
    frames, off, i = [], 0, 0
    while off < len(data):
        n = sizes[i % len(sizes)]
        frames.append(tcp(data[off:off + n], seq=seq + off, **kw))
        off += n
        i += 1
    return frames


def flow_of(frame):
    """A printable flow key for a frame (best effort, for ordering)."""
    et = struct.unpack("!H", frame[12:14])[0]
    off, vlan = 14, None
    if et == 0x8100:
        vlan = struct.unpack("!H", frame[14:16])[0]
        et = struct.unpack("!H", frame[16:18])[0]
        off = 18
    if et == 0x0800:
        ihl = (frame[off] & 15) * 4
        proto = frame[off + 9]
        src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
        l4 = off + ihl
    elif et == 0x86DD:
        proto = frame[off + 6]
        src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
        l4 = off + 40
    else:
        return ("l2", et, vlan)
    ports = frame[l4:l4 + 4] if proto in (6, 17) else b""
    return (et, vlan, proto, src, dst, ports)


def tcp_seq(frame):
    k = flow_of(frame)
    et = struct.unpack("!H", frame[12:14])[0]
    off = 18 if et == 0x8100 else 14
    if k[0] == 0x0800:
        l4 = off + (frame[off] & 15) * 4
    else:
        l4 = off + 40
    return struct.unpack("!I", frame[l4 + 4:l4 + 8])[0]


def describe(frame):
    k = flow_of(frame)
    if k[0] == "l2":
        return "l2-%04x len %d" % (k[1], len(frame))
    proto = {6: "tcp", 17: "udp", 1: "icmp"}.get(k[2], str(k[2]))
    s = "%s%s len %d" % ("ipv6 " if k[0] == 0x86DD else "", proto, len(frame))
    if k[2] == 6:
        s += " seq %d" % tcp_seq(frame)
    return s


PROBE_TAG = b"COLO-INTEROP-PROBE"


def is_probe(frame):
    return PROBE_TAG in frame


# --------------------------------------------------------------------------
# Comparer processes and their sockets
# --------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


VNET_HDR_LEN = 12  # virtio_net_hdr_mrg_rxbuf


def frame_bytes(frame, vnet=False):
    """QEMU chardev framing; with vnet, `frame` starts with the virtio-net
    header and the vnet_hdr_len word follows the length."""
    if vnet:
        return struct.pack("!II", len(frame), VNET_HDR_LEN) + frame
    return struct.pack("!I", len(frame)) + frame


class FrameReader(threading.Thread):
    """Collects length-prefixed frames from a socket until it closes."""

    def __init__(self, sock, name, vnet=False):
        super().__init__(name=name, daemon=True)
        self.sock = sock
        self.hdr = 8 if vnet else 4
        self.bad_vnet = 0
        self.frames = []
        self.cond = threading.Condition()
        self.closed = False

    def run(self):
        buf = b""
        try:
            while True:
                data = self.sock.recv(1 << 20)
                if not data:
                    break
                buf += data
                got = []
                h = self.hdr
                while len(buf) >= h:
                    n = struct.unpack("!I", buf[:4])[0]
                    if len(buf) < h + n:
                        break
                    if h == 8 and buf[4:8] != struct.pack("!I",
                                                          VNET_HDR_LEN):
                        self.bad_vnet += 1
                    got.append(buf[h:h + n])
                    buf = buf[h + n:]
                if got:
                    with self.cond:
                        self.frames.extend(got)
                        self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait_count(self, pred, timeout):
        """Waits until pred(frames) is true; returns it."""
        end = time.monotonic() + timeout
        with self.cond:
            while not pred(self.frames):
                left = end - time.monotonic()
                if left <= 0 or self.closed:
                    break
                self.cond.wait(left)
            return pred(self.frames)

    def settle(self, quiet=0.3, timeout=10.0):
        """Waits until nothing new arrived for `quiet` seconds."""
        end = time.monotonic() + timeout
        last = -1
        while time.monotonic() < end:
            with self.cond:
                n = len(self.frames)
            if n == last:
                return
            last = n
            time.sleep(quiet)

    def snapshot(self):
        with self.cond:
            return list(self.frames)


class Comparer:
    name = "?"

    def __init__(self, notify=False, timeout_ms=30000, scan_ms=1000,
                 max_queue=8192, vnet=False):
        self.notify = notify
        self.timeout_ms = timeout_ms
        self.scan_ms = scan_ms
        self.max_queue = max_queue
        self.vnet = vnet
        self.ports = {k: free_port() for k in ("pin", "sin", "out", "nfy")}
        self.proc = None
        self.socks = {}
        self.out = None
        self.nfy = None
        self.log = None

    def command(self):
        raise NotImplementedError

    def start(self):
        self.log = open(os.devnull, "wb") if not VERBOSE else None
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        names = ["out", "pin", "sin"] + (["nfy"] if self.notify else [])
        for n in names:
            self.socks[n] = self._connect(self.ports[n])
        self.out = FrameReader(self.socks["out"], self.name + "-out",
                               self.vnet)
        self.out.start()
        if self.notify:
            self.nfy = FrameReader(self.socks["nfy"], self.name + "-nfy")
            self.nfy.start()
        self._probe()
        return self

    def _connect(self, port):
        end = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %d during start" %
                                   (self.name, self.proc.returncode))
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return s
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)

    def _probe(self):
        """A non-IP frame is forwarded at once by both comparers: resend
        one until it comes out, so that every socket is known to be live
        (QEMU drops output while its out chardev has no client)."""
        for i in range(50):
            probe = arp_reply(PROBE_TAG + bytes([i]))
            if self.vnet:
                probe = bytes(VNET_HDR_LEN) + probe
            self.send_primary([probe])
            if self.out.wait_count(lambda f: any(map(is_probe, f)), 0.2):
                return
        raise RuntimeError("%s: probe frame never came out" % self.name)

    def send(self, which, frames):
        self.socks[which].sendall(b"".join(frame_bytes(f, self.vnet)
                                           for f in frames))

    def send_primary(self, frames):
        self.send("pin", frames)

    def send_secondary(self, frames):
        self.send("sin", frames)

    def released(self):
        return [f for f in self.out.snapshot() if not is_probe(f)]

    def wait_released(self, n, timeout=5.0, quiet=None):
        """Waits for n released frames, at most `timeout` seconds, or
        until nothing came out for `quiet` seconds."""
        end = time.monotonic() + timeout
        last, last_t = -1, time.monotonic()
        while True:
            step = min(quiet or timeout, max(end - time.monotonic(), 0))
            if self.out.wait_count(
                    lambda fr: sum(1 for f in fr if not is_probe(f)) >= n,
                    step) or time.monotonic() >= end:
                break
            cur = len(self.out.snapshot())
            if quiet and cur == last and time.monotonic() - last_t >= quiet:
                break
            if cur != last:
                last, last_t = cur, time.monotonic()
        return self.released()

    # notify protocol (Xen userspace proxy)
    def notify_send(self, msg):
        self.socks["nfy"].sendall(frame_bytes(msg))

    def notify_msgs(self):
        return self.nfy.snapshot()

    def notify_init(self):
        self.notify_send(b"COLO_USERSPACE_PROXY_INIT")
        ok = self.nfy.wait_count(
            lambda m: b"COLO_COMPARE_GET_XEN_INIT" in m, 3.0)
        return ok

    def checkpoints(self):
        return sum(1 for m in self.notify_msgs() if m == b"DO_CHECKPOINT")

    def stop(self):
        for s in self.socks.values():
            try:
                s.close()
            except OSError:
                pass
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait(timeout=5)
        if self.log:
            self.log.close()


class QemuComparer(Comparer):
    name = "qemu"

    def command(self):
        p = self.ports
        cmd = [QEMU, "-machine", "none", "-nodefaults", "-display", "none",
               "-monitor", "none", "-serial", "none",
               "-object", "iothread,id=io1"]
        chardevs = ["pin", "sin", "out"] + (["nfy"] if self.notify else [])
        for c in chardevs:
            cmd += ["-chardev", "socket,id=%s,host=127.0.0.1,port=%d,"
                    "server=on,wait=off" % (c, p[c])]
        obj = ("colo-compare,id=c0,primary_in=pin,secondary_in=sin,"
               "outdev=out,iothread=io1,compare_timeout=%d,"
               "expired_scan_cycle=%d,max_queue_size=%d" %
               (self.timeout_ms, self.scan_ms, self.max_queue))
        if self.notify:
            obj += ",notify_dev=nfy"
        if self.vnet:
            obj += ",vnet_hdr_support=on"
        return cmd + ["-object", obj]


class ColoComparer(Comparer):
    name = "colo"
    exe = None

    def command(self):
        p = self.ports
        cmd = [self.exe, "compare",
               "--primary-in", "tcp-listen:127.0.0.1:%d" % p["pin"],
               "--secondary-in", "tcp-listen:127.0.0.1:%d" % p["sin"],
               "--out", "tcp-listen:127.0.0.1:%d" % p["out"],
               "--compare-timeout", str(self.timeout_ms),
               "--scan-interval", str(self.scan_ms),
               "--max-queue", str(self.max_queue)]
        if self.notify:
            cmd += ["--notify", "tcp-listen:127.0.0.1:%d" % p["nfy"]]
        if self.vnet:
            cmd += ["--vnet-hdr"]
        return cmd


class QemuAsColo(QemuComparer):
    """Development aid (COLO_INTEROP_QEMU_TWICE=1): QEMU in both roles, to
    exercise the harness before the colo binary exists."""
    name = "colo"


COMPARERS = [QemuComparer, ColoComparer]
if os.environ.get("COLO_INTEROP_QEMU_TWICE"):
    COMPARERS = [QemuComparer, QemuAsColo]

# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def multiset_diff(a, b):
    from collections import Counter
    ca, cb = Counter(a), Counter(b)
    return list((ca - cb).elements()), list((cb - ca).elements())


def per_flow(frames, tcp_only=True):
    flows = {}
    for f in frames:
        k = flow_of(f)
        if tcp_only and (k[0] == "l2" or k[2] != 6):
            continue
        flows.setdefault(k, []).append(f)
    return flows


def check_release(name, got, expected, ordered_flows="tcp"):
    """got must equal expected as a multiset; per flow order as well for
    TCP (or all flows when ordered_flows == "all")."""
    extra, missing = multiset_diff(got, expected)
    check(not extra and not missing,
          "%s: released %d frames, expected %d; %d unexpected (%s), "
          "%d missing (%s)" %
          (name, len(got), len(expected), len(extra),
           ", ".join(describe(f) for f in extra[:3]), len(missing),
           ", ".join(describe(f) for f in missing[:3])))
    if ordered_flows:
        tcp_only = ordered_flows == "tcp"
        g, e = per_flow(got, tcp_only), per_flow(expected, tcp_only)
        for k in e:
            check(g.get(k) == e[k], "%s: flow %r released out of order" %
                  (name, k))


def run_pair(feed, **opts):
    """Runs feed(comparer) on QEMU and on colo; returns {name: result}."""
    results = {}
    for cls in COMPARERS:
        c = cls(**opts)
        try:
            c.start()
            results[c.name] = feed(c)
            check(c.proc.poll() is None, "%s exited with status %s during "
                  "the scenario" % (c.name, c.proc.returncode))
        finally:
            c.stop()
    return results


def qemu_says(fmt, *args):
    print("    qemu: " + (fmt % args if args else fmt))


def colo_says(fmt, *args):
    print("    colo: " + (fmt % args if args else fmt))


# --------------------------------------------------------------------------
# Agreement scenarios: both must release exactly the primary frames
# --------------------------------------------------------------------------

def payload(n, seed=0):
    return bytes((i * 7 + seed * 13 + (i >> 8)) & 0xFF for i in range(n))


def agree(primary, secondary, lockstep=False, ordered="tcp", expect=None):
    """Feeds primary then secondary (or pairwise when lockstep) and checks
    both comparers release `expect` (default: all primary frames)."""
    if expect is None:
        expect = primary

    def feed(c):
        if lockstep:
            for i, (p, s) in enumerate(zip(primary, secondary)):
                c.send_primary([p])
                time.sleep(0.01)
                c.send_secondary([s])
                c.wait_released(i + 1, 3.0)
        else:
            c.send_primary(primary)
            time.sleep(0.05)
            c.send_secondary(secondary)
        c.wait_released(len(expect), 10.0)
        c.out.settle(0.2)
        return c.released()

    res = run_pair(feed)
    for name, got in res.items():
        check_release(name, got, expect, ordered)
    return "%d frames released by both" % len(expect)


def sc_tcp_identical():
    data = payload(64 * 1024)
    p = tcp_stream(data, [1448])
    s = tcp_stream(data, [1448])
    return agree(p, s)


def sc_tcp_split_secondary():
    # primary 3+7, secondary 10 bytes per 10-byte record
    data = payload(2000, 1)
    return agree(tcp_stream(data, [3, 7]), tcp_stream(data, [10]))


def sc_tcp_split_primary():
    # primary 10, secondary 4+6
    data = payload(2000, 2)
    return agree(tcp_stream(data, [10]), tcp_stream(data, [4, 6]))


def sc_tcp_resegmented():
    # MSS-sized primary against irregular secondary segments
    data = payload(50000, 3)
    return agree(tcp_stream(data, [1448]), tcp_stream(data, [500, 1000, 77]))


def sc_udp_request_response():
    p, s = [], []
    for i in range(20):
        d = b"response %d " % i + payload(100 + i * 10, i)
        p.append(udp(d, sport=53, dport=40000 + i % 3))
        s.append(udp(d, sport=53, dport=40000 + i % 3))
    return agree(p, s, lockstep=True, ordered="all")


def sc_icmp_echo():
    p = [icmp_echo_reply(0x1234, i, payload(56, i)) for i in range(10)]
    s = [icmp_echo_reply(0x1234, i, payload(56, i)) for i in range(10)]
    return agree(p, s, lockstep=True, ordered="all")


def sc_arp():
    p = [arp_reply(b"arp %d" % i) for i in range(5)]
    s = [arp_reply(b"sarp %d" % i) for i in range(5)]
    # non-IP: primary forwarded at once, secondary dropped
    return agree(p, s, ordered="all")


def sc_many_tcp():
    nconn, nseg = 64, 24
    p, s = [], []
    streams = []
    for c in range(nconn):
        data = payload(nseg * 700, c)
        kw = dict(sport=8000 + c, dport=50000 + c, seq=c * 100000)
        ps = tcp_stream(data, [700], **kw)
        ss = tcp_stream(data, [700] if c % 2 else [1400, 350], **kw)
        streams.append((ps, ss))
    for i in range(nseg):
        for ps, ss in streams:
            p.append(ps[i])
            if i < len(ss):
                s.append(ss[i])
    return agree(p, s)


def sc_vnet_hdr():
    """vnet_hdr_support=on / --vnet-hdr: every frame carries a 12-byte
    virtio-net header and every frame header the vnet_hdr_len word."""
    vh = bytes([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0])
    data = payload(20000, 9)
    tp = [vh + f for f in tcp_stream(data, [1448])]
    ts = [vh + f for f in tcp_stream(data, [1000, 2000])]
    up = [vh + udp(b"vnet datagram %d" % i) for i in range(5)]

    def feed(c):
        c.send_primary(tp)
        time.sleep(0.05)
        c.send_secondary(ts)
        c.wait_released(len(tp), 5.0)
        for i, f in enumerate(up):
            c.send_primary([f])
            time.sleep(0.01)
            c.send_secondary([f])
            c.wait_released(len(tp) + i + 1, 3.0)
        c.out.settle(0.2)
        return c.released(), c.out.bad_vnet

    res = run_pair(feed, vnet=True)
    for name, (got, bad) in res.items():
        check(bad == 0, "%s: %d frames with a wrong vnet_hdr_len word" %
              (name, bad))
        extra, missing = multiset_diff(got, tp + up)
        check(not extra and not missing, "%s: released %d frames, expected "
              "%d" % (name, len(got), len(tp + up)))
        check_release(name, [f[VNET_HDR_LEN:] for f in got],
                      [f[VNET_HDR_LEN:] for f in tp + up], "all")
    return "%d frames released by both" % len(tp + up)


# --------------------------------------------------------------------------
# Documented differences: assert ours, record QEMU's
# --------------------------------------------------------------------------

def sc_datagram_order():
    """(a) several datagrams of one flow queued before the secondary's:
    QEMU 7.2 pops the newest primary first (LIFO)."""
    p_udp = [udp(b"datagram %d" % i + payload(40, i)) for i in range(4)]
    p_icmp = [icmp_echo_reply(7, i, payload(56, i)) for i in range(4)]

    def feed(c):
        out = {}
        for name, frames in (("udp", p_udp), ("icmp", p_icmp)):
            before = len(c.released())
            c.send_primary(frames)
            time.sleep(0.1)
            c.send_secondary(frames)
            c.wait_released(before + len(frames), 3.0)
            c.out.settle(0.2)
            got = c.released()[before:]
            out[name] = [frames.index(f) if f in frames else -1 for f in got]
        return out

    res = run_pair(feed)
    for proto in ("udp", "icmp"):
        qemu_says("%s datagrams 0,1,2,3 released in order %s", proto,
                  res["qemu"][proto])
        colo_says("%s released in order %s", proto, res["colo"][proto])
        check(res["colo"][proto] == [0, 1, 2, 3],
              "colo: %s datagrams not released in order: %s" %
              (proto, res["colo"][proto]))
    return "colo in order"


def sc_ipv6_vlan():
    """(b) IPv6 and 802.1Q frames: QEMU forwards them uncompared."""
    cases = [
        ("ipv6 tcp", tcp(b"hello, world 1", v6=True, src="fd00::1",
                         dst="fd00::2"),
         tcp(b"hello, world 2", v6=True, src="fd00::1", dst="fd00::2")),
        ("ipv6 udp", udp(b"answer A", v6=True, src="fd00::1", dst="fd00::2"),
         udp(b"answer B", v6=True, src="fd00::1", dst="fd00::2")),
        ("vlan tcp", tcp(b"vlan payload 1", vlan=7),
         tcp(b"vlan payload 2", vlan=7)),
        ("vlan udp", udp(b"vlan answer A", vlan=7),
         udp(b"vlan answer B", vlan=7)),
    ]
    # matching traffic of the same kinds must still be released by ours
    good = [tcp(b"same v6", seq=1, v6=True, src="fd00::3", dst="fd00::4"),
            udp(b"same v6 udp", v6=True, src="fd00::3", dst="fd00::4"),
            tcp(b"same vlan", seq=1, vlan=9, sport=81),
            udp(b"same vlan udp", vlan=9, sport=54)]

    def feed(c):
        out = {}
        if c.notify:
            check(c.notify_init(), "%s: no COLO_COMPARE_GET_XEN_INIT" %
                  c.name)
        c.send_primary(good)
        time.sleep(0.05)
        c.send_secondary(good)
        c.wait_released(len(good), 3.0)
        c.out.settle(0.2)
        out["good"] = len(c.released())
        for name, p, s in cases:
            before = len(c.released())
            c.send_primary([p])
            time.sleep(0.05)
            c.send_secondary([s])
            c.out.settle(0.3)
            out[name] = len(c.released()) - before
        out["checkpoints"] = c.checkpoints() if c.notify else None
        if c.notify:
            before = len(c.released())
            c.notify_send(b"COLO_CHECKPOINT")
            c.wait_released(before + len(cases), 3.0)
            out["after"] = len(c.released()) - before
        return out

    results = run_pair(feed, notify=True)
    q, o = results["qemu"], results["colo"]
    for name, _, _ in cases:
        qemu_says("mismatching %s frame: %s", name,
                  "RELEASED uncompared" if q[name] else "held")
        colo_says("mismatching %s frame: %s", name,
                  "released" if o[name] else "held")
    qemu_says("DO_CHECKPOINT sent: %s", q["checkpoints"])
    colo_says("DO_CHECKPOINT sent: %s; matching ipv6/vlan released %d/%d; "
              "held released at COLO_CHECKPOINT: %d", o["checkpoints"],
              o["good"], len(good), o["after"])
    for name, _, _ in cases:
        check(o[name] == 0, "colo released a mismatching %s frame" % name)
    check(o["good"] == len(good), "colo held matching ipv6/vlan frames")
    check(o["checkpoints"] == 1, "colo: expected 1 DO_CHECKPOINT, got %s" %
          o["checkpoints"])
    check(o["after"] == len(cases),
          "colo: COLO_CHECKPOINT released %d of %d held frames" %
          (o["after"], len(cases)))
    return "colo compares ipv6 and vlan"


def sc_ack_rule():
    """(c) a primary segment acknowledging more than the secondary did."""
    steps = [
        ("data, primary ack 5100 > secondary ack 5000",
         [tcp(b"0123456789", seq=1000, ack=5100)],
         [tcp(b"0123456789", seq=1000, ack=5000)]),
        ("secondary pure ACK 5100", [], [tcp(seq=1010, ack=5100)]),
        ("primary pure ACK 5200, secondary pure ACK 5150",
         [tcp(seq=1010, ack=5200)], [tcp(seq=1010, ack=5150)]),
        ("secondary pure ACK 5200", [], [tcp(seq=1010, ack=5200)]),
    ]

    want = [0, 1, 0, 1]

    def feed(c):
        out = []
        for i, (_, p, s) in enumerate(steps):
            before = len(c.released())
            if p:
                c.send_primary(p)
                time.sleep(0.05)
            c.send_secondary(s)
            if c.name == "colo" and want[i]:
                # tolerate a loaded machine where a release is expected
                c.wait_released(before + want[i], 3.0)
            c.out.settle(0.3)
            out.append(len(c.released()) - before)
        return out

    res = run_pair(feed)
    for i, (name, _, _) in enumerate(steps):
        qemu_says("%-50s -> released %d", name, res["qemu"][i])
        colo_says("%-50s -> released %d", name, res["colo"][i])
    check(res["colo"] == want,
          "colo: expected releases %s, got %s" % (want, res["colo"]))
    return "colo holds until the secondary acknowledges as much"


def sc_checkpoint_count():
    """(d) one payload mismatch with notify_dev: how many DO_CHECKPOINT."""
    def feed(c):
        out = {}
        out["init"] = c.notify_init()
        c.send_primary([tcp(b"primary says A", seq=1000)])
        time.sleep(0.05)
        c.send_secondary([tcp(b"second. says B", seq=1000)])
        # more traffic on the diverged flow and on another flow, and time
        # for several timeout scans (scan 100 ms, timeout 300 ms)
        for i in range(5):
            time.sleep(0.1)
            seg = tcp(b"more data %d" % i, seq=1014 + 11 * i)
            c.send_primary([seg])
            c.send_secondary([seg])
        time.sleep(1.2)
        out["before"] = c.checkpoints()
        held_before = len(c.released())
        c.notify_send(b"COLO_CHECKPOINT")
        c.wait_released(held_before + 6, 3.0)
        c.out.settle(0.3)
        out["flushed"] = len(c.released()) - held_before
        # after the checkpoint: new data compares and is released, and a
        # new mismatch opens a new episode
        base = c.checkpoints()
        seg = tcp(b"after checkpoint", seq=2000)
        c.send_primary([seg])
        time.sleep(0.05)
        c.send_secondary([seg])
        c.out.settle(0.3)
        c.send_primary([tcp(b"second mismatch X", seq=3000, sport=81)])
        time.sleep(0.05)
        c.send_secondary([tcp(b"second mismatch Y", seq=3000, sport=81)])
        time.sleep(0.5)
        out["second"] = c.checkpoints() - base
        return out

    results = run_pair(feed, notify=True, timeout_ms=300, scan_ms=100)
    q, o = results["qemu"], results["colo"]
    qemu_says("init reply: %s; DO_CHECKPOINT for one mismatch in ~1.7 s: %d;"
              " released at COLO_CHECKPOINT: %d; for the next mismatch in "
              "0.5 s: %d", q["init"], q["before"], q["flushed"], q["second"])
    colo_says("init reply: %s; DO_CHECKPOINT: %d; released at "
              "COLO_CHECKPOINT: %d; next mismatch: %d", o["init"],
              o["before"], o["flushed"], o["second"])
    check(o["init"], "colo: no COLO_COMPARE_GET_XEN_INIT reply")
    check(o["before"] == 1, "colo: expected 1 DO_CHECKPOINT, got %d" %
          o["before"])
    check(o["flushed"] >= 6, "colo: COLO_CHECKPOINT released %d frames, "
          "expected the 6 held" % o["flushed"])
    check(o["second"] == 1, "colo: expected 1 DO_CHECKPOINT for the next "
          "mismatch, got %d" % o["second"])
    return "colo asks once per episode"


def sc_many_connections():
    """(e) more than 16384 connections with a frame queued on each."""
    n = 17000
    frames = []
    for i in range(n):
        src = "10.%d.%d.%d" % (1 + i // 65536, (i >> 8) & 255, i & 255)
        frames.append(udp(b"flow %d" % i, src=src, sport=5000 + i % 7))

    def feed(c):
        t0 = time.monotonic()
        c.send_primary(frames)
        time.sleep(0.3)
        c.send_secondary(frames)
        c.wait_released(n, 30.0, quiet=1.5)
        c.out.settle(0.3)
        got = c.released()
        return len(got), len(set(got)), time.monotonic() - t0

    res = run_pair(feed, max_queue=1024)
    q, o = res["qemu"], res["colo"]
    qemu_says("%d flows, each with one queued primary datagram: released "
              "%d (%d dropped by the connection table reset)", n, q[0],
              n - q[1])
    colo_says("released %d of %d in %.1f s", o[0], n, o[2])
    check(o[0] == n and o[1] == n, "colo released %d of %d" % (o[0], n))
    return "colo keeps %d connections" % n


SCENARIOS = [
    ("tcp-identical", sc_tcp_identical),
    ("tcp-3+7-vs-10", sc_tcp_split_secondary),
    ("tcp-10-vs-4+6", sc_tcp_split_primary),
    ("tcp-resegmented", sc_tcp_resegmented),
    ("udp-request-response", sc_udp_request_response),
    ("icmp-echo", sc_icmp_echo),
    ("arp", sc_arp),
    ("many-tcp-connections", sc_many_tcp),
    ("vnet-hdr", sc_vnet_hdr),
    ("diff-a-datagram-order", sc_datagram_order),
    ("diff-b-ipv6-vlan", sc_ipv6_vlan),
    ("diff-c-ack-rule", sc_ack_rule),
    ("diff-d-checkpoint-count", sc_checkpoint_count),
    ("diff-e-16384-connections", sc_many_connections),
]


def main(argv):
    global VERBOSE
    if len(argv) < 2:
        print(__doc__)
        return 2
    ColoComparer.exe = os.path.abspath(argv[1])
    only = None
    for a in argv[2:]:
        if a == "--verbose":
            VERBOSE = True
        elif a.startswith("--only="):
            only = a.split("=", 1)[1].split(",")
    if shutil.which(QEMU) is None:
        print("SKIP: %s not installed" % QEMU)
        return 77
    if COMPARERS[1] is ColoComparer and \
            not os.access(ColoComparer.exe, os.X_OK):
        print("FAIL: %s is not executable" % ColoComparer.exe)
        return 1
    failed = 0
    t0 = time.monotonic()
    for name, fn in SCENARIOS:
        if only and name not in only:
            continue
        t = time.monotonic()
        try:
            msg = fn()
            print("ok   %-26s %s (%.1f s)" % (name, msg, time.monotonic() - t))
        except Failure as e:
            failed += 1
            print("FAIL %-26s %s" % (name, e))
        except Exception as e:  # a crash of one scenario is a failure too
            failed += 1
            print("FAIL %-26s %s: %s" % (name, type(e).__name__, e))
        sys.stdout.flush()
    print("%d scenario(s) failed, %.1f s" % (failed, time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
