#!/usr/bin/env python3
"""colo analyze on captures a user can really take.

    capture_test.py COLO_BINARY

In the tests/e2e topology (namespaces, both proxies running, reused from
tests/e2e/e2e.py), tcpdump records what each guest sends, the way the
README tells users to: the primary on its own interface (`-Q out` on
pguest's eth0), the secondary on the host side of its link (`-Q in` on
shost's gst, as for a VM's tap). Each guest's TCP stack picks its own
sequence numbers, so these captures are what colo analyze must align.

  bulk      a 20 MB deterministic download: handshake alignment, every
            byte matched, no checkpoint on its flow (and, as captured,
            nothing matches: the alignment is what makes it work)
  ndet      three answers of the nondeterministic service: each reported
            with its first differing byte; -w output read by tcpdump -r
  skew      the bulk capture with the secondary's timestamps moved 7 s
            ahead: no timeouts with the default alignment, timeouts when
            told the clocks agree
  mid       captures started in the middle of two slow transfers: a
            non-repeating stream (offset inferred, nothing diverges) and
            svc.py's 64 KiB-periodic pattern (reported ambiguous)

Exit 77 (skip) when not root or a tool is missing. Everything is torn down
in `finally`.
"""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import e2e  # noqa: E402  (topology, services and proxies)

CSVC = os.path.join(HERE, "capture_svc.py")
GUEST = e2e.GUEST
log = e2e.log
check = e2e.check


class Captures:
    """tcpdump on both guests' output for the duration of a `with`."""

    # (namespace, interface, direction) per side
    WHERE = (("pguest", "eth0", "out"), ("shost", "gst", "in"))

    def __init__(self, net, name):
        self.net, self.name = net, name
        self.paths = [os.path.join(net.dir, "%s-%s.pcap" % (name, s))
                      for s in ("primary", "secondary")]

    def __enter__(self):
        for i, (ns, ifname, q) in enumerate(self.WHERE):
            key = "tcpdump-%s-%d" % (self.name, i)
            self.net.spawn(key, ns, "tcpdump", "-i", ifname, "-Q", q, "-U",
                           "--immediate-mode", "-B", "65536",
                           "-n", "-Z", "root", "-w", self.paths[i])
        deadline = time.time() + 10
        for i in range(2):
            logf = os.path.join(self.net.dir,
                                "tcpdump-%s-%d.log" % (self.name, i))
            while "listening on" not in open(logf).read():
                if time.time() > deadline:
                    raise RuntimeError("tcpdump did not start: " +
                                       open(logf).read())
                time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)  # the last ACKs and FINs
        for i in range(2):
            self.net.kill("tcpdump-%s-%d" % (self.name, i), signal.SIGINT)
        return False


def analyze(net, paths, *opts):
    r = subprocess.run([net.colo, "analyze"] + list(opts) + list(paths),
                       capture_output=True, text=True, timeout=120)
    if r.returncode:
        raise RuntimeError("colo analyze: %s" % r.stderr)
    return r.stdout


def findings(out, port):
    """The report's finding blocks that name the guest's flow on port."""
    blocks = out.split("\n\n")
    flow = "flow tcp %s:%d ->" % (GUEST, port)
    return [b for b in blocks if flow in b and
            ("requested at" in b or "is pending" in b)]


def flow_line(out, port):
    m = re.search(r"^  tcp %s:%d -> [^:]+:\d+: (.*)$" % (re.escape(GUEST),
                                                       port), out, re.M)
    return m.group(1) if m else ""


def matched(out):
    return int(re.search(r"matched +(\d+) TCP bytes", out).group(1))


def requests(out, cause=None):
    m = re.search(r"checkpoint requests +(\d+) \(payload (\d+), control "
                  r"(\d+), timeout (\d+)", out)
    return int(m.group(1 if cause is None else
                       {"payload": 2, "control": 3, "timeout": 4}[cause]))


def shift_pcap(src, dst, secs):
    """Copies a classic pcap file with every timestamp moved by secs."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    magic = struct.unpack_from("<I", data, 0)[0]
    check(magic in (0xa1b2c3d4, 0xa1b23c4d), "tcpdump wrote a LE pcap")
    at = 24
    while at + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack_from("<IIII", data, at)
        struct.pack_into("<I", data, at, sec + secs)
        at += 16 + incl
    with open(dst, "wb") as f:
        f.write(data)


def t_bulk(net):
    size = 20000000
    with Captures(net, "bulk") as cap:
        r = net.client("bulk-get", GUEST, "5001", str(size), "--crc")
        check(r["crc_ok"], "20 MB download through the proxies")
    out = analyze(net, cap.paths)
    line = flow_line(out, 5001)
    check(re.match(r"handshake, secondary seq = primary seq [-+] \d+", line),
          "download flow aligned on its handshake: " + line)
    check(matched(out) >= size, "every byte matched (%d)" % matched(out))
    check(not findings(out, 5001), "no checkpoint on the download's flow")
    raw = analyze(net, cap.paths, "--align", "none")
    check(matched(raw) < size // 100 and findings(raw, 5001),
          "as captured, the same download does not match (%d bytes)"
          % matched(raw))
    return cap.paths


class CheckpointAnswerer:
    """Says checkpoint-done to every checkpoint the primary asks for, as
    the VM side would (no VM here: the secondary stays diverged)."""

    def __init__(self, net):
        self.net = net
        self.requests = 0
        self.ev = subprocess.Popen([net.colo, "ctl", net.ctl["primary"],
                                    "events"], stdout=subprocess.PIPE,
                                   text=True)
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()
        time.sleep(0.2)

    def run(self):
        for line in self.ev.stdout:
            if json.loads(line).get("event") == "checkpoint-request":
                self.requests += 1
                self.net.request("primary", "checkpoint-done")

    def close(self):
        self.ev.kill()
        self.ev.wait(timeout=10)
        self.t.join(timeout=10)


def t_ndet(net):
    cps = CheckpointAnswerer(net)
    try:
        with Captures(net, "ndet") as cap:
            out = net.run("client", e2e.PY, CSVC, "ndet-each", GUEST,
                          "5003", "3")
            check(json.loads(out)["answers"] == 3, "three answers")
    finally:
        cps.close()
    log("the live primary asked for %d checkpoints" % cps.requests)
    div = os.path.join(net.dir, "divergent.pcap")
    out = analyze(net, cap.paths, "-w", div)
    flows = re.findall(r"^  tcp %s:5003 -> [^:]+:\d+: (\w+)" %
                       re.escape(GUEST), out, re.M)
    check(flows == ["handshake"] * 3,
          "the 3 answers' connections aligned on their handshakes")
    diffs = [b for b in findings(out, 5003) if "first difference: seq" in b]
    for b in diffs:
        m = re.search(r"first difference: seq \d+, primary (0x[0-9a-f]{2})"
                      r".*, secondary (0x[0-9a-f]{2})", b)
        check(m and m.group(1) != m.group(2),
              "answer reported with its first differing byte (%s vs %s)"
              % (m.group(1), m.group(2)) if m else "a differing byte")
    check(len(diffs) == 3, "each of the 3 answers reported (%d)" % len(diffs))
    n = int(re.search(r"wrote (\d+) frames", out).group(1))
    r = subprocess.run(["tcpdump", "-r", div, "-nn"], capture_output=True,
                       text=True, timeout=30)
    check(r.returncode == 0 and len(r.stdout.splitlines()) == n,
          "tcpdump -r reads the %d divergent frames" % n)


def t_skew(net, paths):
    shifted = os.path.join(net.dir, "skew-secondary.pcap")
    shift_pcap(paths[1], shifted, 7)
    out = analyze(net, [paths[0], shifted])
    m = re.search(r"clock: secondary timestamps moved by -(\d+)\.(\d+) s",
                  out)
    check(m and 6 <= int(m.group(1)) <= 7,
          "clock aligned on the first matching frames (%s)"
          % (m.group(0) if m else "?"))
    check(requests(out, "timeout") == 0 and not findings(out, 5001),
          "no timeouts invented by a 7 s skew")
    out = analyze(net, [paths[0], shifted], "--skew", "7000")
    check(requests(out, "timeout") == 0 and not findings(out, 5001),
          "--skew 7000 gives the same")
    out = analyze(net, [paths[0], shifted], "--skew", "0")
    check(requests(out, "timeout") > 0,
          "told the clocks agree, the download times out (%d)"
          % requests(out, "timeout"))


def mid_capture(net, port):
    """Captures begun while a slow 16 MB download from port runs."""
    # Long enough that the guests are still sending when tcpdump starts:
    # the first few MB leave at once, into socket buffers and windows.
    secs = 4.0
    net.spawn("slow-" + port, "client", e2e.PY, CSVC, "slow-get", GUEST,
              port, "16000000", str(secs))
    time.sleep(secs / 3)
    with Captures(net, "mid" + port) as cap:
        check(net.procs["slow-" + port].wait(timeout=60) == 0,
              "slow transfer on %s done" % port)
    return analyze(net, cap.paths)


def t_mid(net):
    # One transfer per capture: a checkpoint the replay asks for on one
    # flow resynchronises every flow where the primary stands, which only
    # a real checkpoint (none here) makes true of the secondary.
    for g in ("pguest", "sguest"):
        net.spawn(g + "-rand", g, e2e.PY, CSVC, "rand-server", "5005")
    time.sleep(0.5)
    out = mid_capture(net, "5005")
    line = flow_line(out, 5005)
    check(re.match(r"inferred, secondary seq = primary seq [-+] \d+", line)
          and "found once" in line,
          "non-repeating stream: offset inferred from the data: " + line)
    check(not findings(out, 5005), "no checkpoint on the inferred flow")
    check(matched(out) > 1000000, "mid-transfer bytes matched (%d)"
          % matched(out))
    out = mid_capture(net, "5001")
    check(flow_line(out, 5001).startswith("ambiguous"),
          "64 KiB-periodic stream reported ambiguous: " + flow_line(out, 5001))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    if os.geteuid() != 0:
        print("skip: needs root (network namespaces)")
        sys.exit(77)
    for tool in ("ip", "tcpdump"):
        if not shutil.which(tool):
            print("skip: %s not installed" % tool)
            sys.exit(77)
    net = e2e.Net(sys.argv[1])
    net.p = "cat%d-" % (os.getpid() % 100000)
    ok = False
    try:
        net.up()
        for g in ("pguest", "sguest"):
            net.spawn(g + "-bulk", g, e2e.PY, e2e.SVC, "bulk-server", "5001")
            net.spawn(g + "-ndet", g, e2e.PY, e2e.SVC, "ndet-server", "5003")
        time.sleep(0.5)
        net.proxies()
        paths = t_bulk(net)
        t_ndet(net)
        t_skew(net, paths)
        t_mid(net)
        ok = True
    except Exception as e:
        log("FAIL:", repr(e))
        net.dump_logs()
    finally:
        keep = os.environ.get("CAPTURE_TEST_KEEP")
        if keep:  # the captures, for a closer look
            shutil.copytree(net.dir, keep, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.sock"))
        net.down()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
