#!/usr/bin/env python3
"""vm_guestconn_test.py - connections the guest opens itself (issue 8),
with real parts: two `colo vm` daemons (tiny guest, TCG) with their NICs
on two `colo proxy` daemons' guest ports, the primary proxy's client port
on a veth whose other end is a client network namespace, each colo vm
following its proxy (`--proxy-control`).

In the client namespace a TCP server and a UDP (TFTP) server record
everything they get. The guest's colo_dialer service is told, one line
per trigger connection, to open a TCP connection to the server or to send
it one UDP query. Both VMs get the mirrored trigger and both dial, but
their kernels pick their own source ports (and ISNs): the comparer cannot
pair the two SYNs (or datagrams), holds the primary's, and a checkpoint
makes the secondary a copy of the primary; then the primary's frames
leave. Asserted:

  - the server saw each TCP connection exactly once, from one source
    port, with the right bytes, and each UDP query from one source port;
  - the guest's answers (what it relays back on the trigger connection)
    are the servers' answers;
  - afterwards both VMs' RAM is equal at a checkpoint (both dumped while
    stopped), and an echo through the pair still works with no new
    divergence.

It prints what each connection cost: checkpoints asked by the comparer
(by cause, from the primary proxy's log) and how long the primary's SYN
or query waited before it was released.

Needs root (a network namespace and a veth pair), torn down on exit.
Usage: vm_guestconn_test.py COLO_BINARY
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmpair  # noqa: E402
import client_net  # noqa: E402
from client_net import GUEST_IP, CLIENT_IP  # noqa: E402

DIALER_PORT, ECHO_PORT = 7003, 7002
TCP_PORT, UDP_PORT = 9100, 9169
N = 3

# Runs in the client namespace: one trigger line to the guest's dialer,
# then everything the guest relays back, up to its close (hex). A refusal
# is retried: the one-shot dialer listens again a moment after each use.
TRIGGER = r"""
import socket, sys, time
for attempt in range(50):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])),
                                     timeout=120)
        break
    except ConnectionRefusedError:
        if attempt == 49:
            raise
        time.sleep(0.1)
s.sendall(sys.argv[3].encode())
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
print(got.hex())
"""

# Runs in the client namespace: a TCP server answering "tcp-answer:" and
# the line it got, and a DNS server answering every query with one TXT
# record "udp-answer:NAME". Each event is one JSON line on stdout.
SERVERS = r"""
import json, socket, struct, sys, threading, time
out = threading.Lock()
def log(**kw):
    kw["t"] = time.monotonic()
    with out:
        print(json.dumps(kw), flush=True)
def tcp():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((sys.argv[1], int(sys.argv[2])))
    ls.listen(16)
    while True:
        s, peer = ls.accept()
        accepted = time.monotonic()
        s.settimeout(30)
        got = b""
        try:
            while not got.endswith(b"\n"):
                d = s.recv(4096)
                if not d:
                    break
                got += d
            s.sendall(b"tcp-answer:" + got)
        except OSError as e:
            log(kind="tcp-error", port=peer[1], err=repr(e))
        s.close()
        log(kind="tcp", port=peer[1], data=got.decode(errors="replace"),
            accepted=accepted)
def qname(d):
    labels, i = [], 12
    while i < len(d) and d[i]:
        labels.append(d[i + 1:i + 1 + d[i]])
        i += 1 + d[i]
    return b".".join(labels), i + 5
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((sys.argv[1], int(sys.argv[3])))
    while True:
        d, peer = u.recvfrom(2048)
        if len(d) < 17:
            log(kind="udp-other", port=peer[1])
            continue
        name, end = qname(d)
        log(kind="udp", port=peer[1], data=name.decode(errors="replace"),
            id=d[:2].hex())
        txt = b"udp-answer:" + name
        rr = (struct.pack("!HHHIH", 0xC00C, 16, 1, 0, len(txt) + 1)
              + bytes([len(txt)]) + txt)
        u.sendto(d[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
                 + d[12:end] + rr, peer)
threading.Thread(target=tcp, daemon=True).start()
threading.Thread(target=udp, daemon=True).start()
log(kind="ready")
time.sleep(100000)
"""


def main():
    colo = sys.argv[1]
    if os.geteuid() != 0:
        print("skipped: needs root (a network namespace)")
        return 77
    t0 = time.monotonic()
    net, servers = None, None

    def trigger(line):
        return bytes.fromhex(net.in_ns(sys.executable, "-c", TRIGGER,
                                       GUEST_IP, str(DIALER_PORT),
                                       line).strip())

    def events():
        with open(net.path("servers.log")) as f:
            return [json.loads(line) for line in f if line.strip()]

    def requests():
        """The checkpoint requests the primary proxy logged: each one's
        line, cause and (timeouts) how long the frame had been held."""
        with open(net.path("p.log"), errors="replace") as f:
            lines = [x.split(": ", 1)[-1] for x in f
                     if "checkpoint-request" in x]
        out = []
        for x in lines:
            m = re.search(r"checkpoint-request (\w[\w-]*)", x)
            h = re.search(r"unmatched for (\d+) ms", x)
            out.append((x.strip(), m.group(1) if m else "?",
                        int(h.group(1)) if h else None))
        return out

    def quiet():
        """Waits until the comparer asks for no more checkpoints (a
        segment that reached only the primary during a checkpoint is
        repaired by one more, up to the compare timeout later)."""
        s0 = net.stats()
        for _ in range(10):
            time.sleep(4)
            s1 = net.stats()
            if (s1["checkpoint_requests"] == s0["checkpoint_requests"]
                    and not s1["held_frames"]):
                return s1
            s0 = s1
        return s0

    try:
        net = client_net.ClientNet(colo, "cg%d" % (os.getpid() % 100000),
                                   "colo-vm-guestconn-")
        slog = open(net.path("servers.log"), "w")
        servers = subprocess.Popen(
            ["ip", "netns", "exec", net.ns, sys.executable, "-c", SERVERS,
             CLIENT_IP, str(TCP_PORT), str(UDP_PORT)], stdout=slog,
            stderr=subprocess.STDOUT)
        slog.close()
        vmpair.wait_for(lambda: any(e["kind"] == "ready" for e in events()),
                        20, "the servers")

        pair = net.start_pair("colo_dialer=%d colo_echo=%d"
                              % (DIALER_PORT, ECHO_PORT))
        # Both guests learn the client's MAC (and the comparer settles)
        # on a connection the client opens, before the guest dials.
        got, err = net.connect(ECHO_PORT, "warm-up")
        assert err is None and got == b"warm-up", (err, got)
        base = quiet()
        base_reqs = len(requests())

        for proto in ("tcp", "udp"):
            for i in range(N):
                text = "%s-query-%d-%d" % (proto, os.getpid(), i)
                before = len(events())
                c0 = net.stats()["checkpoint_requests"]
                r0 = len(requests())
                t = time.monotonic()
                got = trigger("%s %s %d %s\n"
                              % (proto, CLIENT_IP, TCP_PORT if proto == "tcp"
                                 else UDP_PORT, text))
                took = time.monotonic() - t
                want = ("%s-answer:%s" % (proto, text)).encode()
                if proto == "tcp":
                    assert got == want + b"\n", (got, want)
                else:  # nslookup's output holds the TXT record
                    assert got.count(b'"' + want + b'"') == 1, (got, want)
                seen = [e for e in events()[before:] if e["kind"] == proto]
                # Both clocks are CLOCK_MONOTONIC, namespaces or not.
                first = min(e.get("accepted", e["t"]) for e in seen) - t
                print("%s %d: answer right; the server saw %d "
                      "connection(s)/query(ies), the first %.2f s after "
                      "the trigger; checkpoints asked %d; trigger to "
                      "answer %.1f s"
                      % (proto, i, len(seen), first,
                         net.stats()["checkpoint_requests"] - c0, took),
                      flush=True)
                for line, _, _ in requests()[r0:]:
                    print("    " + line[:200], flush=True)

        s1 = quiet()
        evs = events()
        for proto in ("tcp", "udp"):
            for i in range(N):
                text = "%s-query-%d-%d" % (proto, os.getpid(), i)
                seen = [e for e in evs if e["kind"] == proto
                        and e["data"].rstrip("\n") == text]
                assert len(seen) == 1, (proto, i, seen)
                if proto == "tcp":
                    assert seen[0]["data"] == text + "\n", seen
        errs = [e for e in evs if e["kind"] == "tcp-error"]
        assert not errs, errs
        reqs = requests()[base_reqs:]
        causes = [c for _, c, _ in reqs]
        held = [h for _, _, h in reqs if h is not None]
        by = {c: causes.count(c) for c in sorted(set(causes))}
        # The two guests' SYNs or queries from different source ports ask
        # for the checkpoint as soon as both are seen (opened_ports.c):
        # none of the dialed flows waits for the compare timeout.
        waited = [x for x, c, _ in reqs if c == "timeout" and re.search(
            r"-> %s:(%d|%d):" % (re.escape(CLIENT_IP), TCP_PORT, UDP_PORT),
            x)]
        assert not waited, waited
        print("%d TCP connections and %d UDP queries, each seen once by "
              "the server" % (N, N))
        print("checkpoint requests for them: %d (%s), %.2f per connection; "
              "checkpoints done %d -> %d"
              % (len(causes), by, len(causes) / (2.0 * N),
                 base["checkpoints_done"], s1["checkpoints_done"]))
        if held:
            print("a held frame waited %d..%d ms before its checkpoint was "
                  "asked (compare timeout)" % (min(held), max(held)))

        # Both VMs equal at a checkpoint: dumped while stopped.
        r = pair.ctl("primary", "checkpoint", dump=True)
        assert r.get("ok"), r
        a, b = pair.dump_paths(r["seq"])
        assert vmpair.same_file(a, b), "RAM differs after the dials"
        print("RAM identical at checkpoint %d" % r["seq"])

        s0 = quiet()
        data = "echo-after-dials-" * 20
        got, err = net.connect(ECHO_PORT, data)
        assert err is None and got == data.encode(), (err, got)
        s2 = net.stats()
        assert s2["divergences"] == s0["divergences"], (s0, s2)
        assert pair.status("secondary")["mode"] == "protected"
        print("echo after the dials: %d bytes, no new divergence"
              % len(got))
        print("guestconn passed in %.1f s" % (time.monotonic() - t0))
        return 0
    finally:
        if servers:
            servers.kill()
            servers.wait()
        if net:
            net.close(sys.exc_info()[0] is not None)


if __name__ == "__main__":
    sys.exit(main())
