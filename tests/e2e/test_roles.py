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
  - the ingress cut: a checkpoint-cut that is never resumed lets both
    guests' ingress go at its deadline (hold_ms); after a link reset, a
    resume before its CUT lets nothing in twice, and one without a CUT
    holds the secondary's ingress a bounded time only;
  - control socket: status, an events subscriber gets peer-lost;
  - heartbeat timers: a stopped secondary is declared lost after the peer
    timeout and a resumed one reconnects; SIGTERM exits 0;
  - the lease: output after the deadline is held and counted, a new
    lease releases it; after losing the link only a renewed lease does;
  - a FAILOVER the secondary never processed (stopped, then killed) does
    not leave the primary silent: it serves again.
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

    def frames_until(self, want, timeout=3.0):
        """The frames before want, or None when want did not come."""
        deadline = time.time() + timeout
        got = []
        while time.time() < deadline:
            f = self.recv(deadline - time.time())
            if f is None:
                return None
            if f == want:
                return got
            got.append(f)
        return None

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


def request(path, req):
    """One JSON request with arguments on the control socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall((json.dumps(req) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


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
                 "--ping", "50", "--peer-timeout", "300", "--stamps"],
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

        # The ingress cut: checkpoint-cut holds the guest's ingress on
        # both sides. A cut whose checkpoint never resumes (its colo vm
        # died mid-checkpoint) lets go at its deadline, hold_ms, so the
        # primary guest is served on; the secondary's goes at its resume.
        r = request(pctl, {"cmd": "checkpoint-cut", "seq": 1,
                           "hold_ms": 1000})
        if not r.get("ok"):
            fail("checkpoint-cut: %s" % r)
        q2 = udp_frame(CLIENT_MAC, b"\xff" * 6, "10.0.0.1", "10.0.0.255",
                       5000, 6000, b"after the cut")
        pc.send(q2)
        if sg.recv_matching(q2, timeout=0.1):
            fail("a frame reached the secondary guest inside the cut")
        if pg.recv_matching(q2, timeout=0.1):
            fail("a frame reached the primary guest inside the cut")
        if not pg.recv_matching(q2, timeout=5.0):
            fail("the cut held the primary guest's ingress past hold_ms")
        if not sg.recv_matching(q2, timeout=5.0):
            fail("the cut held the secondary guest's ingress past hold_ms")
        for c in (pctl, sctl):
            if ctl(c, "stats").get("cut_expired") != 1:
                fail("cut_expired not counted: %s" % ctl(c, "stats"))
        # Its resume, late: nothing is held, nothing more is let in.
        request(sctl, {"cmd": "checkpoint-resume", "seq": 1})
        if sg.recv_matching(q2, timeout=0.2):
            fail("a late resume let a frame in twice")
        print("ok: a cut that never resumes expires on both sides",
              flush=True)

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

        # --stamps: the stages this exchange went through moved (each
        # counted at least once; qemu: ports have no kernel stamps).
        pst = st.get("stamps", {})
        sst = ctl(sctl, "stats").get("stamps", {})
        for name, got in (("client_to_link", pst), ("client_to_guest", pst),
                          ("held", pst), ("link_to_client", pst),
                          ("answer_guest", pst), ("call_link_read", pst),
                          ("link_to_guest", sst), ("guest_to_link", sst),
                          ("kernel_link", sst), ("call_link_write", sst)):
            if got.get(name, {}).get("n", 0) < 1:
                fail("stamp %s did not move: %s / %s" % (name, pst, sst))
        print("ok: stamps", flush=True)

        # The lease: a deadline in the past holds matched output (counted),
        # a valid one releases it.
        r = request(pctl, {"cmd": "lease", "deadline_ns": 1})
        if not r.get("ok") or r.get("valid"):
            fail("lease in the past: %s" % r)
        a2 = udp_frame(GUEST_MAC, CLIENT_MAC, "10.0.0.2", "10.0.0.1", 6000,
                       5000, b"answer two")
        pg.send(a2)
        sg.send(a2)
        time.sleep(0.3)
        if pc.recv(0.3) is not None:
            fail("output left after the lease deadline")
        lease = ctl(pctl, "stats").get("lease", {})
        if lease.get("holding_frames") != 1 or not lease.get("enforced"):
            fail("lease stats while expired: %s" % lease)
        deadline = time.monotonic_ns() + 3600 * 10**9
        r = request(pctl, {"cmd": "lease", "deadline_ns": deadline})
        if not r.get("ok") or not r.get("valid"):
            fail("valid lease: %s" % r)
        if not pc.recv_matching(a2):
            fail("held output not released by a valid lease")
        if request(pctl, {"cmd": "lease", "deadline_ns": -5}).get("ok"):
            fail("negative deadline accepted")
        print("ok: lease holds and releases", flush=True)

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

        # The link was reset, so the secondary forgot its checkpoint
        # numbers. A resume that comes before its CUT (the link is slower
        # than colo vm): frames in front of that CUT went to the primary
        # VM, so the checkpoint has them; the new secondary VM must not
        # get them as well. Frames after the CUT it gets at once.
        request(sctl, {"cmd": "checkpoint-resume", "seq": 7})
        x = udp_frame(CLIENT_MAC, b"\xff" * 6, "10.0.0.1", "10.0.0.255",
                      5000, 6000, b"in front of cut 7")
        pc.send(x)
        if not pg.recv_matching(x):
            fail("the primary guest did not get its frame before the cut")
        request(pctl, {"cmd": "checkpoint-cut", "seq": 7, "hold_ms": 300})
        y = udp_frame(CLIENT_MAC, b"\xff" * 6, "10.0.0.1", "10.0.0.255",
                      5000, 6000, b"after cut 7")
        pc.send(y)
        got = sg.frames_until(y)
        if got is None:
            fail("the secondary VM did not get a frame after its late CUT")
        if x in got:
            fail("a frame before its CUT reached the resumed secondary VM "
                 "too (let in twice)")
        if not pg.recv_matching(y, timeout=5.0):
            fail("the primary's cut 7 did not expire")
        if ctl(sctl, "stats").get("cut_stale", 0) < 1:
            fail("the frame before the late CUT not counted stale")
        # A resume whose CUT never comes (lost with a link) is harmless:
        # the secondary's ingress waits for it a bounded time, then goes
        # to the guest, nothing lost.
        request(sctl, {"cmd": "checkpoint-resume", "seq": 9})
        z = udp_frame(CLIENT_MAC, b"\xff" * 6, "10.0.0.1", "10.0.0.255",
                      5000, 6000, b"no cut 9")
        pc.send(z)
        if not pg.recv_matching(z):
            fail("the primary guest did not get its frame")
        if not sg.recv_matching(z, timeout=10.0):
            fail("a resume without its CUT stopped the secondary's ingress")
        pc.send(q)
        if not sg.recv_matching(q):
            fail("the secondary's ingress did not pass again")
        print("ok: a resume before its CUT, or without one, lets nothing "
              "in twice and stops nothing", flush=True)

        # A FAILOVER the secondary never processes: stopped, then killed.
        # The primary must serve again, not stay silent for good.
        sec.send_signal(signal.SIGSTOP)
        r = ctl(pctl, "failover")
        if ctl(pctl, "status").get("mode") != "handing-over":
            fail("not handing over after failover: %s" % r)
        sec.kill()
        sec.wait()
        wait_for(lambda: ctl(pctl, "status").get("mode") == "degraded",
                 "primary serves again after an unconfirmed failover")
        b = udp_frame(GUEST_MAC, CLIENT_MAC, "10.0.0.2", "10.0.0.1", 6000,
                      5000, b"degraded")
        pg.send(b)
        time.sleep(0.2)
        if pc.recv(0.3) is not None:
            fail("passthrough after the link loss without a renewed lease")
        request(pctl, {"cmd": "lease", "deadline_ns": deadline + 1})
        if not pc.recv_matching(b):
            fail("passthrough not released by the renewed lease")
        pg.send(b)
        if not pc.recv_matching(b):
            fail("no passthrough after the unconfirmed failover")
        if ctl(pctl, "stats").get("failovers_unconfirmed") != 1:
            fail("failovers_unconfirmed not counted")
        print("ok: unconfirmed failover: the primary serves again",
              flush=True)

        # A confirmed one: a new secondary echoes FAILOVER and takes over,
        # the primary goes silent.
        sec2 = proxy("secondary", "--link-connect", "t")
        tc, tg = Port(d + "/tc"), Port(d + "/tg")
        wait_for(lambda: ctl(pctl, "status").get("mode") == "protected",
                 "protected with the new secondary")
        ctl(pctl, "failover")
        wait_for(lambda: ctl(pctl, "status").get("mode") == "handed-over",
                 "hand-over confirmed by the secondary")
        if not ctl(d + "/t.sock", "status").get("failed_over"):
            fail("the secondary did not take over")
        pg.send(b)
        time.sleep(0.2)
        if pc.recv(0.3) is not None:
            fail("the primary released after the hand-over")
        print("ok: confirmed failover: the primary is silent", flush=True)
        del tc, tg
        sec2.send_signal(signal.SIGTERM)
        sec2.wait(timeout=10)

        pri.send_signal(signal.SIGTERM)
        if pri.wait(timeout=10) != 0:
            fail("exit status %d after SIGTERM" % pri.returncode)
        print("ok: SIGTERM", flush=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        for tag in ("p", "s", "t"):
            try:
                with open("%s/%s.log" % (d, tag)) as f:
                    sys.stdout.write(f.read())
            except OSError:
                pass
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
