#!/usr/bin/env python3
"""Both `colo proxy` roles on loopback, with QEMU socket-netdev ports
(qemu:unix-listen:), so no namespaces and no root are needed.

    test_roles.py COLO_BINARY

This test stands in for the four guests' and the client's NICs and checks
the seed's split end to end through the real daemons:
  - mirror: a frame from the client reaches the primary guest and, over
    the link, the secondary guest;
  - redirector + comparer: the same UDP datagram from both guests leaves
    once on the primary's client port; a datagram from the primary guest
    alone is held;
  - control socket: status, an events subscriber gets peer-lost;
  - heartbeat timers: a stopped secondary is declared lost after the peer
    timeout and a resumed one reconnects; SIGTERM exits 0.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

COLO = os.path.abspath(sys.argv[1])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
from testlib import free_port  # noqa: E402

GUEST_MAC = bytes.fromhex("52540000aa01")
CLIENT_MAC = bytes.fromhex("52540000bb02")


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(src_mac, dst_mac, src_ip, dst_ip, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17,
                     0, socket.inet_aton(src_ip), socket.inet_aton(dst_ip))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


class Port:
    """The far end of a qemu: port: be32 length, then the frame."""

    def __init__(self, path):
        deadline = time.time() + 10
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.time() > deadline:
                    fail("cannot connect to " + path)
                time.sleep(0.05)
        self.buf = b""

    def send(self, frame):
        self.s.sendall(struct.pack("!I", len(frame)) + frame)

    def recv(self, timeout=3.0):
        """The next frame, or None when none came in time."""
        deadline = time.time() + timeout
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack("!I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    f = self.buf[4:4 + n]
                    self.buf = self.buf[4 + n:]
                    return f
            left = deadline - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None
            if not d:
                return None
            self.buf += d

    def recv_matching(self, want, timeout=3.0):
        """Skips other frames (the proxies' own) until want arrives."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            f = self.recv(deadline - time.time())
            if f is None:
                return False
            if f == want:
                return True
        return False


def ctl(path, cmd):
    out = subprocess.run([COLO, "ctl", path, cmd], capture_output=True,
                         text=True, timeout=10).stdout
    return json.loads(out) if out.strip() else {}


def wait_for(pred, what, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    fail(what)


def main():
    d = tempfile.mkdtemp(prefix="colo-roles-")
    port = free_port()
    procs = []
    try:
        def proxy(role, link_opt, tag):
            p = subprocess.Popen(
                [COLO, "proxy", "--role", role,
                 "--client", "qemu:unix-listen:%s/%sc" % (d, tag),
                 "--guest", "qemu:unix-listen:%s/%sg" % (d, tag),
                 link_opt, "127.0.0.1:%d" % port,
                 "--control", "%s/%s.sock" % (d, tag),
                 "--ping", "50", "--peer-timeout", "300"],
                stdout=open("%s/%s.log" % (d, tag), "w"),
                stderr=subprocess.STDOUT)
            procs.append(p)
            return p

        pri = proxy("primary", "--link-listen", "p")
        pctl = d + "/p.sock"
        sctl = d + "/s.sock"
        pc, pg = Port(d + "/pc"), Port(d + "/pg")
        sec = proxy("secondary", "--link-connect", "s")
        sc, sg = Port(d + "/sc"), Port(d + "/sg")
        wait_for(lambda: ctl(pctl, "status").get("mode") == "protected",
                 "primary protected once the secondary connected")
        print("ok: protected", flush=True)

        # mirror: client ingress to both guests (broadcast: the guest's
        # MAC is not known yet).
        q = udp_frame(CLIENT_MAC, b"\xff" * 6, "10.0.0.1", "10.0.0.255",
                      5000, 6000, b"question")
        pc.send(q)
        if not pg.recv_matching(q):
            fail("client frame did not reach the primary guest")
        if not sg.recv_matching(q):
            fail("client frame did not reach the secondary guest")
        print("ok: mirror", flush=True)

        # redirector + comparer: identical answers leave once.
        a = udp_frame(GUEST_MAC, CLIENT_MAC, "10.0.0.2", "10.0.0.1", 6000,
                      5000, b"answer")
        pg.send(a)
        time.sleep(0.2)
        if pc.recv(0.3) is not None:
            fail("primary output left before the secondary's matched it")
        sg.send(a)
        if not pc.recv_matching(a):
            fail("matched output was not released to the client")
        st = ctl(pctl, "stats")
        if st.get("matched_datagrams", 0) < 1 or st.get("divergences"):
            fail("comparer stats: %s" % st)
        print("ok: redirector and comparer", flush=True)

        # Heartbeat: a stopped secondary is lost after the peer timeout.
        ev = subprocess.Popen([COLO, "ctl", pctl, "events", "1"],
                              stdout=subprocess.PIPE, text=True)
        time.sleep(0.2)
        sec.send_signal(signal.SIGSTOP)
        wait_for(lambda: ctl(pctl, "status").get("mode") == "degraded",
                 "primary degraded after the peer timeout")
        line = ev.communicate(timeout=10)[0]
        if json.loads(line).get("event") != "peer-lost":
            fail("events: %r" % line)
        sec.send_signal(signal.SIGCONT)
        wait_for(lambda: ctl(pctl, "status").get("mode") == "protected",
                 "protected again after the secondary resumed")
        if ctl(sctl, "stats").get("peer_losses", 0) < 1:
            fail("the secondary did not notice the stall")
        print("ok: heartbeat, peer loss, reconnect", flush=True)

        for p in (sec, pri):
            p.send_signal(signal.SIGTERM)
            if p.wait(timeout=10) != 0:
                fail("exit status %d after SIGTERM" % p.returncode)
        print("ok: SIGTERM", flush=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        for tag in ("p", "s"):
            try:
                with open("%s/%s.log" % (d, tag)) as f:
                    sys.stdout.write(f.read())
            except OSError:
                pass
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
