#!/usr/bin/env python3
"""vm_nic_test.py - the frame's NIC wiring with real parts: two `colo vm`
daemons (tiny guest, TCG) whose NICs are on the guest ports of two
`colo proxy` daemons (qemu:unix-listen:), and this test as the client on
the primary proxy's client port.

`colo vm --nic` puts every QEMU it starts on the proxy's guest port; a
standby connects while the VM it will replace is attached and waits in
the port's listen queue; retiring the old VM at the commit moves the port
to it. The test pings the guest before and after several checkpoints: an
echo reply comes back each time, and the primary proxy's comparer matched
every reply with the secondary's (0 divergences, 0 checkpoint requests):
so after each checkpoint the new secondary VM receives the mirrored
ingress and its answers reach the comparer.

Usage: vm_nic_test.py COLO_BINARY
"""
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmpair  # noqa: E402

GUEST_MAC = bytes.fromhex("52540000aa01")
CLIENT_MAC = bytes.fromhex("52540000bb02")
GUEST_IP, CLIENT_IP = "10.0.0.2", "10.0.0.1"
CHECKPOINTS = 3


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def arp_request():
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, CLIENT_MAC,
                      socket.inet_aton(CLIENT_IP), b"\0" * 6,
                      socket.inet_aton(GUEST_IP))
    return b"\xff" * 6 + CLIENT_MAC + b"\x08\x06" + arp


def echo_request(seq, payload):
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4321, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64,
                     1, 0, socket.inet_aton(CLIENT_IP),
                     socket.inet_aton(GUEST_IP))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return GUEST_MAC + CLIENT_MAC + b"\x08\x00" + ip + icmp


class Client:
    """The far end of the primary proxy's qemu: client port."""

    def __init__(self, path):
        vmpair.wait_for(lambda: os.path.exists(path), 10, path)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def send(self, frame):
        self.s.sendall(struct.pack("!I", len(frame)) + frame)

    def recv(self, deadline):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack("!I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    f, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return f
            left = deadline - time.monotonic()
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

    def wait(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv(deadline)
            if f is None or pred(f):
                return f


def is_arp_reply(f):
    return f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02"


def is_echo_reply(seq, payload):
    def pred(f):
        if f[12:14] != b"\x08\x00" or f[23] != 1:
            return False
        icmp = f[14 + (f[14] & 15) * 4:]
        return (icmp[0] == 0 and struct.unpack("!H", icmp[6:8])[0] == seq
                and icmp[8:] == payload)
    return pred


def start_pair(colo, d, append, opts):
    """The VM pair on the proxies' guest ports, the test's client on the
    primary proxy's client port; returns (pair, client) once both VMs run
    and the guest answered the client's ARP (it learns the client's MAC
    from the request)."""
    mac = ":".join("%02x" % b for b in GUEST_MAC)
    pair = vmpair.Pair(
        colo, append="ipv6.disable=1 colo_ip=%s/24 %s" % (GUEST_IP, append),
        extra=["-device", "virtio-net-pci,netdev=colo-nic,mac=" + mac],
        opts=opts)
    client = Client(d + "/pc")
    pair.wait_protected()
    pair.wait_running("primary")
    pair.wait_running("secondary")

    def arp():
        client.send(arp_request())
        return client.wait(is_arp_reply, 2)
    vmpair.wait_for(arp, 60, "an ARP reply from the guest")
    return pair, client


def start_proxies(colo, d, procs, extra=()):
    """The two proxies, linked, every port a unix socket in d: client
    d/pc, guest ports d/pg and d/sg, control d/p.sock and d/s.sock;
    extra: more options for both."""
    port = vmpair.free_port()
    for role, link, tag in (("primary", "--link-listen", "p"),
                            ("secondary", "--link-connect", "s")):
        log = open(os.path.join(d, tag + ".log"), "w")
        procs.append(subprocess.Popen(
            [colo, "proxy", "--role", role,
             "--client", "qemu:unix-listen:%s/%sc" % (d, tag),
             "--guest", "qemu:unix-listen:%s/%sg" % (d, tag),
             link, "127.0.0.1:%d" % port,
             "--control", "%s/%s.sock" % (d, tag)] + list(extra),
            stdout=log, stderr=subprocess.STDOUT))
        log.close()
    for tag in ("pg", "sg"):
        vmpair.wait_for(lambda: os.path.exists(os.path.join(d, tag)),
                        10, "proxy guest port " + tag)


def proxy_stats(colo, d, tag="p"):
    out = subprocess.run([colo, "ctl", "%s/%s.sock" % (d, tag), "stats"],
                         capture_output=True, text=True, timeout=10)
    return json.loads(out.stdout)


def main():
    colo = sys.argv[1]
    t0 = time.monotonic()
    d = tempfile.mkdtemp(prefix="colo-vm-nic-", dir="/dev/shm")
    procs, pair = [], None

    def stats():
        return proxy_stats(colo, d)

    try:
        start_proxies(colo, d, procs)
        pair, client = start_pair(
            colo, d, "", {"primary": ["--nic", "unix:%s/pg" % d],
                          "secondary": ["--nic", "unix:%s/sg" % d]})

        seq = 0

        def ping():
            nonlocal seq
            seq += 1
            payload = b"colo-nic-%04d" % seq + bytes(range(32))
            client.send(echo_request(seq, payload))
            if client.wait(is_echo_reply(seq, payload), 20) is None:
                raise AssertionError("no echo reply %d; proxy stats %s"
                                     % (seq, stats()))

        for i in range(CHECKPOINTS + 1):
            if i:
                before = pair.status("secondary")["checkpoints"]
                r = pair.ctl("primary", "checkpoint")
                assert r.get("ok"), r
                vmpair.wait_for(
                    lambda: pair.status("secondary")["checkpoints"] > before,
                    60, "checkpoint %d on the secondary" % i)
            for _ in range(3):
                ping()
            st = stats()
            print("after %d checkpoint(s): %d pings answered, "
                  "matched %d, divergences %d, checkpoint requests %d"
                  % (i, seq, st["matched_datagrams"], st["divergences"],
                     st["checkpoint_requests"]), flush=True)
            assert st["divergences"] == 0 and st["checkpoint_requests"] == 0, st
        assert st["matched_datagrams"] >= seq, st
        print("nic passed in %.1f s" % (time.monotonic() - t0))
        return 0
    finally:
        vmpair.close_all(pair, procs, d, sys.exc_info()[0] is not None)


if __name__ == "__main__":
    sys.exit(main())
