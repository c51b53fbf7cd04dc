#!/usr/bin/env python3
"""vm_rejoin_steps_test.py - a secondary's rejoin try does not stall its
event loop after the connect: the TLS handshake and the HELLO exchange
wait on the loop.

    vm_rejoin_steps_test.py plain|tls COLO_BINARY [MKCREDS_SH]

A protected pair loses its primary (SIGKILL). Where the primary listened
a fake primary now accepts every connection and then
  plain: says nothing; then sends half a primary HELLO and stops;
  tls:   stalls mid-handshake (reads the ClientHello, answers nothing);
         then completes TLS as the primary host and says nothing.
For each, while one try waits in its step (status rejoin_step "tls" or
"hello"), the secondary's control socket must answer status several
times for the same try; the try must give up at its bound (the log says
why) and a new try must reach the fake. Then a real primary is started
again and the secondary rejoins it through the same steps (protected).
Last, that primary killed and a fake in its place, with a try pending a
failover is served and ends the tries. A step that blocked the loop
(the old poll()) answers nothing while it waits, so no reply could ever
show a step under way. Counted ordering, no timing target; the slowest
status reply during a pending step is printed as a figure.
"""
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tls"))
import vmpair  # noqa: E402
from relay import fake_server  # noqa: E402


def half_hello():
    """The first half of a primary's HELLO frame (the header says 116
    bytes of payload; 50 come)."""
    p = b"COLOVMFR" + struct.pack("!HBBQ", 1, 1, 0, 128 << 20)
    p += b"7.2".ljust(32, b"\0") + b"pc".ljust(64, b"\0")
    f = struct.pack("!BBHI", 1, 0, 0, len(p)) + p
    return f[:50]


class Fake:
    """A fake primary on port: accepts, then behaves as told, holding
    each connection open until stopped. Counts the connections."""

    def __init__(self, port, how, creds=None):
        self.how = how
        self.accepts = 0
        self.held = []
        self.stop = threading.Event()
        self.ls, self.ctx = fake_server(port, creds, creds is None)
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                a, _ = self.ls.accept()
            except OSError:
                continue
            self.accepts += 1
            self.held.append(a)
            try:
                a.settimeout(5)
                if self.how == "half-hello":
                    a.sendall(half_hello())
                elif self.how == "tls-stall":
                    a.recv(4096)  # the ClientHello; no answer
                elif self.how == "tls-silent":
                    self.held.append(self.ctx.wrap_socket(
                        a, server_side=True))
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.stop.set()
        self.t.join()
        for s in self.held:
            s.close()
        self.ls.close()


def timed_status(pair):
    t = time.monotonic()
    st = pair.status("secondary")
    return st, time.monotonic() - t


def pending_step(pair, fake, step):
    """Three status answers during one try's step; then that try gives
    up and another reaches the fake. Returns the slowest answer (s)."""
    during, slowest = {}, [0.0]

    def seen():
        st, dt = timed_status(pair)
        if st.get("rejoin_step") == step:
            k = st["rejoin_tries"]
            during[k] = during.get(k, 0) + 1
            slowest[0] = max(slowest[0], dt)
            return during[k] >= 3
        return False
    vmpair.wait_for(seen, 60, "three answers during one %s step" % step)
    n = fake.accepts
    vmpair.wait_for(lambda: fake.accepts > n, 30,
                    "the try to give up and another to come")
    st = pair.status("secondary")
    assert st["mode"] == "primary-lost" and st["rejoins"] == 0, st
    print("%s: %d answers during one %s step (slowest %.0f ms); "
          "%d connections so far" % (fake.how, max(during.values()), step,
                                     slowest[0] * 1000, fake.accepts),
          flush=True)
    return slowest[0]


def failover_now(pair):
    """A failover while a try waits in a step: served, tries end."""
    vmpair.wait_for(lambda: pair.status("secondary")["rejoin_step"] in
                    ("tls", "hello"), 30, "a try in its TLS/HELLO step")
    r = pair.ctl("secondary", "failover")
    assert r.get("ok"), r
    st = pair.status("secondary")
    assert st["mode"] == "failover" and not st["rejoin_connecting"], st
    tries = st["rejoin_tries"]
    time.sleep(3)  # longer than a step bound and the pause after it
    st = pair.status("secondary")
    assert st["rejoin_tries"] == tries, st
    print("failover served during a pending step; no try since (%d)"
          % tries)


def main():
    mode, colo = sys.argv[1], os.path.abspath(sys.argv[2])
    t0 = time.monotonic()
    d, opts, fakes = None, {}, []
    if mode == "tls":
        d = vmpair.tempfile.mkdtemp(prefix="colo-vm-steps-", dir="/dev/shm")
        mk = os.path.abspath(sys.argv[3])
        for args in (["ca", d + "/ca"],
                     ["host", d + "/ca", d + "/phost", "phost"],
                     ["host", d + "/ca", d + "/shost", "shost"]):
            subprocess.run([mk] + args, check=True)
        opts = {"primary": ["--tls-creds", d + "/phost", "--tls-peer",
                            "shost"],
                "secondary": ["--tls-creds", d + "/shost", "--tls-peer",
                              "phost"]}
    pair = vmpair.Pair(colo, opts=opts)
    try:
        pair.wait_protected()
        pair.kill("primary")
        cases = ((("silent", None, "hello"), ("half-hello", None, "hello"))
                 if mode == "plain" else
                 (("tls-stall", d and d + "/phost", "tls"),
                  ("tls-silent", d and d + "/phost", "hello")))
        log_says = {"silent": "no HELLO from the primary in time",
                    "half-hello": "no HELLO from the primary in time",
                    "tls-stall": "TLS handshake: timed out",
                    "tls-silent": "no HELLO from the primary in time"}
        for how, creds, step in cases:
            said = pair.log("secondary").count(log_says[how])
            fakes.append(Fake(pair.port, how, creds))
            pending_step(pair, fakes[-1], step)
            assert pair.log("secondary").count(log_says[how]) > said, how
            fakes.pop().close()
        # A real primary again: the same steps make the link (TLS
        # verified, HELLOs matched) and the pair is protected.
        pair.start("primary")
        pair.wait_protected()
        st = pair.status("secondary")
        assert st["rejoins"] == 1 and not st["rejoin_connecting"], st
        print("a real primary rejoined through the steps (try %d)"
              % st["rejoin_tries"], flush=True)
        pair.kill("primary")
        fakes.append(Fake(pair.port, cases[0][0], cases[0][1]))
        failover_now(pair)
    finally:
        for f in fakes:
            f.close()
        pair.close()
        if d:
            subprocess.run(["rm", "-rf", d])
    print("rejoin_steps %s passed in %.1f s" % (mode, time.monotonic() - t0))


if __name__ == "__main__":
    main()
