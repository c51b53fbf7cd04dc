#!/usr/bin/env python3
"""vm_failover_load_test.py - a VM pair failed over under load (issue 8):
a client TCP transfer and a request/response load, both running across
the loss of the primary host.

Real parts, in the tests/e2e topology (client --- switch --- phost,
shost; tests/e2e/topo.sh): on each host a `colo proxy` (client side
packet:sw, guest side a qemu:unix-listen: port, TLS on the link) and a
`colo vm` (tiny guest under TCG, its NIC on the proxy, following the
proxy with --proxy-control, TLS on the frame link and the migration).

From the client namespace, at the same time:
  transfer  one TCP connection to the guest's echo service (`nc -e cat`)
            moving a seeded pseudo-random stream in 32 KiB rounds, each
            read back before the next is sent, every byte compared;
  requests  a loop of HTTP GETs to the guest's httpd, one every ~50 ms,
            each answer checked (status and body). The two VMs' clocks
            drift apart between checkpoints, so now and then their Date
            headers differ: the comparer asks for a checkpoint, and the
            transfer runs across those too.
While both run: one checkpoint by command; then the primary host dies
(its colo vm with its QEMUs and its colo proxy SIGKILLed, its switch
port down) and the secondary is failed over by command, `colo vm` first,
then `colo proxy` (the order of colo up). Asserted: the transfer's
connection stays up and returns exactly the bytes sent (the stream is
regenerated here from the seed and its SHA-256 compared with the
client's hash of what came back, with nothing after the end), no request
fails, and the secondary serves alone afterwards. The longest gap in
progress on each load around the failover, seen by the client, is the
RESULT line.

COLO_LOAD_SABOTAGE=no-proxy-failover skips the proxy's failover: the test
must fail then (the connection dies with the primary).

Needs root (namespaces) and qemu-system-x86_64; exit 77 otherwise.
Usage: vm_failover_load_test.py COLO_BINARY
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import e2e  # noqa: E402
import vmpair  # noqa: E402

MAC = "02:c0:10:00:00:10"  # topo.sh's guest MAC, e2e.GUEST its address
ECHO_PORT = 7002
CHUNK = 32768
SEED = 0xC010 + os.getpid()
REQUEST_EVERY = 0.05
AFTER_BYTES = 2 << 20  # the transfer moves this much after the failover
AFTER_ANSWERS = 20

# The transfer, in the client namespace: round after round of CHUNK
# bytes from random.Random(seed), each echoed back and compared before the
# next is sent, until STOPFILE appears; then the write side is shut and
# anything the guest still sends counts (a doubled byte). One JSON line
# per round ({"bytes": N, "t": T}), then the summary: bytes back, their
# SHA-256, the first wrong offset, the error if the connection died, and
# the stall: the longest time between two reads that brought data, over
# the reads made once MARKFILE exists (the test makes it at the kill, so
# the first of them closes the gap the kill opened).
TRANSFER = r"""
import hashlib, json, os, random, socket, sys, time
host, port, seed, chunk, stop, mark = (sys.argv[1], int(sys.argv[2]),
                                       int(sys.argv[3]), int(sys.argv[4]),
                                       sys.argv[5], sys.argv[6])
rng = random.Random(seed)
h = hashlib.sha256()
got = sent = 0
bad, err, stall = None, None, None
s = socket.create_connection((host, port), timeout=120)
last = time.monotonic()
def note():
    global last, stall
    now = time.monotonic()
    if os.path.exists(mark):
        stall = max(stall or 0.0, now - last)
    last = now
try:
    while not os.path.exists(stop):
        data = rng.randbytes(chunk)
        s.sendall(data)
        sent += len(data)
        off = 0
        while off < len(data):
            d = s.recv(len(data) - off)
            if not d:
                raise ConnectionError("closed by the guest at %d" % got)
            note()
            if bad is None and d != data[off:off + len(d)]:
                bad = got + next(i for i in range(len(d))
                                 if d[i] != data[off + i])
            h.update(d)
            off += len(d)
            got += len(d)
        print(json.dumps({"bytes": got, "t": time.monotonic()}), flush=True)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    while True:
        d = s.recv(65536)
        if not d:
            break
        h.update(d)
        got += len(d)
except OSError as e:
    err = repr(e)
s.close()
print(json.dumps({"done": True, "bytes": got, "sent": sent,
                  "sha256": h.hexdigest(), "bad": bad, "err": err,
                  "stall": stall}), flush=True)
"""

# The requests, in the client namespace: an HTTP GET of / every EVERY
# seconds (one connection each, httpd closes it), each answer checked:
# status 200 and the body init wrote. One JSON line per request.
REQUESTS = r"""
import json, os, socket, sys, time
host, every, stop = sys.argv[1], float(sys.argv[2]), sys.argv[3]
i = 0
while not os.path.exists(stop):
    i += 1
    t = time.monotonic()
    got, err = b"", None
    try:
        s = socket.create_connection((host, 80), timeout=60)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
        s.close()
    except OSError as e:
        err = repr(e)
    head, _, body = got.partition(b"\r\n\r\n")
    ok = (err is None and head.startswith(b"HTTP/1.") and b" 200 " in
          head.split(b"\r\n")[0] and body == b"colo guest\n")
    print(json.dumps({"i": i, "t0": t, "t": time.monotonic(), "ok": ok,
                      "err": err, "got": None if ok else got.hex()}),
          flush=True)
    time.sleep(max(0.0, every - (time.monotonic() - t)))
"""


class Load:
    """One client program in the client namespace; its JSON lines are
    collected by a thread as they come."""

    def __init__(self, net, code, *args):
        self.lines = []
        self.p = subprocess.Popen(net.ns("client") + [e2e.PY, "-c", code]
                                  + [str(a) for a in args],
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()

    def read(self):
        for line in self.p.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                self.lines.append({"junk": line})

    def last(self, key, default=0):
        for x in reversed(self.lines):
            if key in x:
                return x[key]
        return default

    def finish(self, timeout):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("client program did not finish")
        self.t.join(5)
        return self.p.stderr.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def expected_sha256(seed, nbytes):
    """SHA-256 of the transfer's first nbytes: the same rounds the client
    made from the same seed."""
    rng, h, left = random.Random(seed), hashlib.sha256(), nbytes
    while left > 0:
        data = rng.randbytes(CHUNK)
        h.update(data[:left])
        left -= len(data)
    return h.hexdigest()


def longest_gap(times, around):
    """The longest interval between two successive times that ends after
    the moment `around` (the kill): the stall the failover caused."""
    return max([b - a for a, b in zip(times, times[1:]) if b > around]
               or [0.0])


def proxies(net, d):
    for role, host, peer, link in (
            ("secondary", "shost", "phost", "--link-connect"),
            ("primary", "phost", "shost", "--link-listen")):
        net.spawn(role[0] + "proxy", host, net.colo, "proxy", "--role", role,
                  "--client", "packet:sw", "--guest",
                  "qemu:unix-listen:%s/%sg" % (d, role[0]), link,
                  "10.78.0.1:7070", "--control", net.ctl[role],
                  *net.link_opts(host, peer, True))
    vmpair.wait_for(lambda: all(os.path.exists("%s/%sg" % (d, r))
                                for r in "ps"), 20, "the proxies' guest ports")
    vmpair.wait_for(lambda: e2e_status(net, "primary").get("peer"), 30,
                    "the proxies' link")


def e2e_status(net, role):
    try:
        return net.request(role, "status")
    except (OSError, ValueError):
        return {}


def main():
    colo = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        print("skipped: needs root (network namespaces)")
        return 77
    if not shutil.which("qemu-system-x86_64"):
        print("skipped: qemu-system-x86_64 missing")
        return 77
    sabotage = os.environ.get("COLO_LOAD_SABOTAGE", "")
    t0 = time.monotonic()
    net = e2e.Net(colo)
    net.p = "cvl%d-" % (os.getpid() % 100000)
    d = net.dir
    stop, mark = os.path.join(d, "stop"), os.path.join(d, "killed")
    pair, loads, ok = None, [], False
    try:
        net.up()
        for host in ("phost", "shost"):
            net.run(host, "ip", "link", "del", "gst")
        proxies(net, d)
        tls = {r: ["--tls-creds", os.path.join(d, h), "--tls-peer", p]
               for r, h, p in (("primary", "phost", "shost"),
                               ("secondary", "shost", "phost"))}
        pair = vmpair.Pair(
            colo,
            append="ipv6.disable=1 colo_ip=%s/24 colo_echo=%d colo_http=1"
                   % (e2e.GUEST, ECHO_PORT),
            extra=["-device", "virtio-net-pci,netdev=colo-nic,mac=" + MAC],
            opts={r: ["--nic", "unix:%s/%sg" % (d, r[0]),
                      "--proxy-control", net.ctl[r]] + tls[r]
                  for r in ("primary", "secondary")})
        pair.wait_protected(180)
        # Generous: two TCG guests boot on a shared, loaded machine.
        pair.wait_running("primary", 180)
        print("pair protected (TLS) after %.1f s" % (time.monotonic() - t0),
              flush=True)

        ck0 = pair.status("secondary")["checkpoints"]
        xfer = Load(net, TRANSFER, e2e.GUEST, ECHO_PORT, SEED, CHUNK, stop,
                    mark)
        loads.append(xfer)
        reqs = Load(net, REQUESTS, e2e.GUEST, REQUEST_EVERY, stop)
        loads.append(reqs)

        def answers():
            return [x for x in reqs.lines if "ok" in x]

        def going(what, nbytes, nanswers, timeout):
            def cond():
                for ld in loads:
                    if ld.p.poll() is not None:
                        raise AssertionError(
                            "a client ended early: %s %s"
                            % (ld.lines[-3:], ld.p.stderr.read()))
                return (xfer.last("bytes") >= nbytes
                        and len(answers()) >= nanswers)
            vmpair.wait_for(cond, timeout, what)

        going("the loads to start", 4 * CHUNK, 5, 90)

        # One checkpoint by command in the middle of the transfer, and
        # progress on both loads after it.
        c0 = pair.status("secondary")["checkpoints"]
        b0, n0 = xfer.last("bytes"), len(answers())
        r = pair.ctl("primary", "checkpoint")
        assert r.get("ok"), r
        vmpair.wait_for(
            lambda: pair.status("secondary")["checkpoints"] > c0, 60,
            "the checkpoint on the secondary")
        going("progress after the checkpoint", b0 + 8 * CHUNK, n0 + 5, 60)
        st = pair.status("primary")
        print("checkpoint %d by command with both loads running (%d done "
              "in all, by reason %s); transfer at %d bytes, %d answers"
              % (r.get("seq", -1), st["checkpoints"], st["by_reason"],
                 xfer.last("bytes"), len(answers())), flush=True)

        # The primary host dies.
        kill_bytes, kill_answers = xfer.last("bytes"), len(answers())
        ckpts = pair.status("secondary")["checkpoints"] - ck0
        t_kill = time.monotonic()
        open(mark, "w").close()
        pair.kill("primary")
        net.kill("pproxy")
        net.run("phost", "ip", "link", "set", "sw", "down")
        r = pair.ctl("secondary", "failover")
        assert r.get("ok"), r
        if sabotage != "no-proxy-failover":
            r = net.request("secondary", "failover")
            assert r.get("ok"), r
        t_over = time.monotonic()
        print("primary host killed at %d bytes, %d answers; failed over "
              "in %.0f ms" % (kill_bytes, kill_answers,
                              (t_over - t_kill) * 1000), flush=True)
        going("both loads to go on after the failover",
              kill_bytes + AFTER_BYTES, kill_answers + AFTER_ANSWERS, 120)
        open(stop, "w").close()
        xerr = xfer.finish(60)
        rerr = reqs.finish(60)

        res = xfer.lines[-1]
        assert res.get("done"), (res, xerr)
        assert res["err"] is None, "transfer connection died: %s" % res
        assert res["bad"] is None, "wrong byte at offset %d" % res["bad"]
        assert res["bytes"] == res["sent"], res
        assert res["sha256"] == expected_sha256(SEED, res["sent"]), res
        print("transfer: %d bytes sent and echoed, SHA-256 equal to the "
              "seeded stream's, nothing doubled; %d of them after the kill"
              % (res["bytes"], res["bytes"] - kill_bytes), flush=True)
        ans = answers()
        bad = [x for x in ans if not x["ok"]]
        assert not bad, "failed requests: %s" % bad[:3]
        slow = max((x for x in ans if x["t"] > t_kill),
                   key=lambda x: x["t"] - x["t0"])
        print("requests: %d answered right, %d of them after the kill; the "
              "slowest of those took %.0f ms, sent %.0f ms after the kill"
              % (len(ans), len(ans) - kill_answers,
                 (slow["t"] - slow["t0"]) * 1000,
                 (slow["t0"] - t_kill) * 1000), flush=True)

        # The gaps around the failover, on the client's clock (both
        # namespaces share CLOCK_MONOTONIC).
        assert res["stall"] is not None, res
        xgap = res["stall"]
        rgap = longest_gap([x["t"] for x in ans], t_kill)
        sv = pair.status("secondary")
        sp = net.request("secondary", "status")
        assert sv["mode"] == "failover", sv
        assert sp["mode"] == "failed-over", sp
        pair.wait_running("secondary", 120)
        print("secondary serves alone: colo vm %s, colo proxy %s"
              % (sv["mode"], sp["mode"]))
        print("RESULT vm_failover_load transfer_stall_ms %.0f "
              "request_stall_ms %.0f failover_cmd_ms %.0f transfer_bytes %d "
              "requests %d checkpoints_under_load %d"
              % (xgap * 1000, rgap * 1000, (t_over - t_kill) * 1000,
                 res["bytes"], len(ans), ckpts), flush=True)
        print("failover_load passed in %.1f s" % (time.monotonic() - t0))
        ok = True
        return 0
    finally:
        for ld in loads:
            ld.stop()
        if not ok:
            for ld in loads:
                print("--- client tail: %s" % ld.lines[-3:])
            net.dump_logs()
            if pair:
                for role in ("primary", "secondary"):
                    print("--- colo vm %s:\n%s"
                          % (role, pair.log(role)[-2000:]))
        if pair:
            try:
                pair.close()
            except AssertionError as e:
                if ok:
                    raise
                print("pair close: %s" % e)
        net.down()


if __name__ == "__main__":
    sys.exit(main())
