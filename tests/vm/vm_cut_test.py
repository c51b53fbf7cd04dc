#!/usr/bin/env python3
"""vm_cut_test.py - the ingress cut at a checkpoint, proven with UDP.

Real parts: two `colo vm` daemons (tiny guest, TCG, busy rewriting 8 MB
of memory: colo_dirty) whose NICs are on the guest ports of two
`colo proxy` daemons, each colo vm following its proxy (--proxy-control),
and this test as the client on the primary proxy's client port.

The guest runs colo_udpsum (contrib/guest/udpsum.c): it answers every
UDP datagram with the count of datagrams it has seen and a hash of all of
them. The client sends numbered datagrams every 8 ms while the primary
is made to checkpoint 20 times. UDP has no retransmission: a datagram
that one VM gets and the other does not (or gets twice) changes every
later answer of that VM. So:
  - every answer the client gets must carry the right count and hash,
    and every datagram is answered exactly once (the primary VM lost and
    doubled nothing);
  - the primary proxy's comparer saw 0 divergences and asked for 0
    checkpoints (the new secondary VM of every checkpoint got exactly
    the datagrams after the cut, as the primary VM did);
  - the cut did happen: both proxies cut at every checkpoint and held
    datagrams that arrived during one.

  - every QEMU records the frames its NIC was handed (QEMU's filter-dump):
    the secondary VMs, one after the other, were handed every datagram
    exactly once, in order (each new VM starts right after its cut).

With COLO_CUT_OFF=1 the primary runs with --no-ingress-cut: the test is
expected to fail then (how it was checked against sabotage).
With COLO_CUT_DUMP=DIR the recordings are kept in DIR.

Usage: vm_cut_test.py COLO_BINARY
"""
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmpair  # noqa: E402
from vm_nic_test import (CLIENT_IP, CLIENT_MAC, GUEST_IP, GUEST_MAC,  # noqa
                         csum, proxy_stats, start_pair, start_proxies)

UDP_PORT = 7000
SEND_EVERY = 0.008
CHECKPOINTS = 20
FNV_OFFSET, FNV_PRIME = 0xcbf29ce484222325, 0x100000001b3


def fnv(h, data):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def payload(seq):
    return b"cut %08d " % seq + bytes(range(20))


def udp_frame(seq):
    data = payload(seq)
    udp = struct.pack("!HHHH", 40000, UDP_PORT, 8 + len(data), 0) + data
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), seq & 0xFFFF,
                     0, 64, 17, 0, socket.inet_aton(CLIENT_IP),
                     socket.inet_aton(GUEST_IP))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return GUEST_MAC + CLIENT_MAC + b"\x08\x00" + ip + udp


def arp_reply(req):
    """The client's answer to the guest's ARP request req."""
    guest_mac, guest_ip = req[22:28], req[28:32]
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, CLIENT_MAC,
                      socket.inet_aton(CLIENT_IP), guest_mac, guest_ip)
    return guest_mac + CLIENT_MAC + b"\x08\x06" + arp


class Answers:
    """Reads the client port: answers the guest's ARP requests and keeps
    every udpsum answer as seq -> [(count, hash), ...]."""

    def __init__(self, client):
        self.client, self.got = client, {}
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            f = self.client.recv(time.monotonic() + 0.2)
            if f is None or len(f) < 42:
                continue
            if (f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x01" and
                    f[38:42] == socket.inet_aton(CLIENT_IP)):
                self.client.send(arp_reply(f))
                continue
            if f[12:14] != b"\x08\x00" or f[23] != 17:
                continue
            udp = f[14 + (f[14] & 15) * 4:]
            if struct.unpack("!H", udp[0:2])[0] != UDP_PORT:
                continue
            body = udp[8:]
            count, h = struct.unpack("!QQ", body[:16])
            seq = int(body[16:28].split()[1])
            self.got.setdefault(seq, []).append((count, h))

    def close(self):
        self.stop.set()
        self.t.join(5)


def qemu_wrapper(d, dump, role):
    """A --qemu that records the NIC's frames in both directions."""
    path = os.path.join(d, "qemu-" + role)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec qemu-system-x86_64 \"$@\" -object "
                "filter-dump,id=cutdump,netdev=colo-nic,queue=all,"
                "file=%s/%s-$$.pcap\n" % (dump, role))
    os.chmod(path, 0o755)
    return ["--qemu", path]


def pcap_datagrams(path):
    """The numbers of the test's datagrams in a filter-dump recording."""
    with open(path, "rb") as f:
        d = f.read()
    out, off = [], 24
    while off + 16 <= len(d):
        incl = struct.unpack("<I", d[off + 8:off + 12])[0]
        fr, off = d[off + 16:off + 16 + incl], off + 16 + incl
        if len(fr) > 42 and fr[12:14] == b"\x08\x00" and fr[23] == 17:
            udp = fr[14 + (fr[14] & 15) * 4:]
            if struct.unpack("!H", udp[2:4])[0] == UDP_PORT:
                out.append(int(udp[8:20].split()[1]))
    return out


def secondary_datagrams(dump):
    """The datagrams each secondary QEMU was handed, in start (pid)
    order: secondary-PID.pcap."""
    runs = sorted((int(f[10:-5]), f) for f in os.listdir(dump)
                  if f.startswith("secondary-"))
    return [pcap_datagrams(os.path.join(dump, f)) for _, f in runs]


def main():
    colo = sys.argv[1]
    t0 = time.monotonic()
    d = tempfile.mkdtemp(prefix="colo-vm-cut-%d-" % os.getpid(),
                         dir="/dev/shm")
    procs, pair, answers = [], None, None
    cut_off = os.environ.get("COLO_CUT_OFF") == "1"
    dump = os.environ.get("COLO_CUT_DUMP") or os.path.join(d, "dump")
    try:
        # A link lost to the loaded machine's scheduling (500 ms by
        # default) would make the pair degraded, which is not the cut's
        # doing: a longer peer timeout.
        start_proxies(colo, d, procs, ["--peer-timeout", "5000"])
        opts = {}
        for role, tag in (("primary", "p"), ("secondary", "s")):
            opts[role] = ["--nic", "unix:%s/%sg" % (d, tag),
                          "--proxy-control", "%s/%s.sock" % (d, tag)]
            os.makedirs(dump, exist_ok=True)
            opts[role] += qemu_wrapper(d, dump, role)
        if cut_off:
            opts["primary"].append("--no-ingress-cut")
        pair, client = start_pair(
            colo, d, "colo_udpsum=%d colo_dirty=8" % UDP_PORT, opts)

        answers = Answers(client)
        sent, done = [0], threading.Event()

        def sender():
            nxt = time.monotonic()
            while not done.is_set():
                sent[0] += 1
                client.send(udp_frame(sent[0]))
                nxt += SEND_EVERY
                time.sleep(max(0, nxt - time.monotonic()))

        before = {r: pair.status(r)["checkpoints"]
                  for r in ("primary", "secondary")}
        s0, ss0 = proxy_stats(colo, d), proxy_stats(colo, d, "s")
        t = threading.Thread(target=sender)
        t.start()
        try:
            # Apart enough for the comparer to match answers in between
            # (a checkpoint releases what it holds unmatched), and a last
            # stretch without one.
            for i in range(CHECKPOINTS):
                time.sleep(0.5)
                r = pair.ctl("primary", "checkpoint")
                assert r.get("ok"), r
            time.sleep(2)
        finally:
            done.set()
            t.join()
        n = sent[0]
        # A missing answer is reported with the rest below.
        deadline = time.monotonic() + 15
        while len(answers.got) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        answers.close()

        expect, h = {}, FNV_OFFSET
        for k in range(1, n + 1):
            h = fnv(h, payload(k))
            expect[k] = (k, h)
        missing = [k for k in range(1, n + 1) if k not in answers.got]
        doubled = [k for k, a in answers.got.items() if len(a) > 1]
        wrong = [k for k, a in answers.got.items() if a[0] != expect.get(k)]
        st, ss = proxy_stats(colo, d), proxy_stats(colo, d, "s")
        ps, sst = pair.status("primary"), pair.status("secondary")
        pair.close()  # the recordings are complete once QEMUs are gone
        pair = None
        seen = [k for run in secondary_datagrams(dump) for k in run]
        ckpts = ps["checkpoints"] - before["primary"]
        div = st["divergences"] - s0["divergences"]
        req = st["checkpoint_requests"] - s0["checkpoint_requests"]
        print("cut %s: %d datagrams every %.0f ms across %d checkpoints: "
              "%d answered, %d missing, %d doubled, %d wrong; "
              "divergences %d, checkpoint requests %d; cuts p %d s %d, "
              "held p %d s %d, stale s %d, handovers %d, undrained %d; "
              "secondary VMs handed %d datagrams (%d distinct); "
              "matched %d; guest port tx_dropped p %d s %d; pause ms median %s max %s, cut max %s"
              % ("off" if cut_off else "on", n, SEND_EVERY * 1000, ckpts,
                 len(answers.got), len(missing), len(doubled), len(wrong),
                 div, req, st["cuts"] - s0["cuts"], ss["cuts"] - ss0["cuts"],
                 st["cut_held"] - s0["cut_held"],
                 ss["cut_held"] - ss0["cut_held"], ss["cut_stale"],
                 ss["handovers"], ps.get("cut_undrained", -1), len(seen),
                 len(set(seen)),
                 st["matched_datagrams"] - s0["matched_datagrams"],
                 st["guest_port"]["tx_dropped"],
                 ss["guest_port"]["tx_dropped"],
                 ps.get("pause_median_ms"), ps.get("pause_max_ms"),
                 ps.get("cut_max_ms")),
              flush=True)
        assert ckpts >= CHECKPOINTS, ckpts
        assert sst["checkpoints"] - before["secondary"] >= CHECKPOINTS, sst
        assert not missing and not doubled and not wrong, \
            (missing[:10], doubled[:10], wrong[:10])
        assert div == 0 and req == 0, st
        assert seen == list(range(1, n + 1)), \
            [k for k in range(1, n + 1) if seen.count(k) != 1][:20]
        assert st["cuts"] - s0["cuts"] >= CHECKPOINTS, st
        assert ss["cuts"] - ss0["cuts"] >= CHECKPOINTS, ss
        assert ss["cut_held"] - ss0["cut_held"] > 0, ss
        print("cut passed in %.1f s" % (time.monotonic() - t0))
        return 0
    finally:
        if answers:
            answers.close()
        vmpair.close_all(pair, procs, d, sys.exc_info()[0] is not None)


if __name__ == "__main__":
    sys.exit(main())
