#!/usr/bin/env python3
"""A flood of connections on `colo blk secondary`'s link port does not keep
the real primary out (the lobby of repl_lobby.c).

    test_blk_flood.py COLO_BINARY MKCREDS_SH [SECONDS]

A TLS secondary (--timeout 1000) gets IDLE idle TCP connections and
TRICKLE that send a real TLS ClientHello one byte a second. The flood is
kept up: every connection the secondary closes is opened again at once.
Then the real primary starts. It must link (resync done: "protected")
and replicate a write that a checkpoint makes equal on both images, all
while the flood is still connected, within SECONDS (default 30).

The bound is generous on purpose (a loaded two-core machine): the point
is the difference from one connection served at a time, which kept a
primary out for more than 45 s behind 200 idle connections that were not
even reopened. The delay is printed, with the lobby's counters.
"""
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "blk"))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import free_port  # noqa: E402
import test_repl as tr  # noqa: E402

SIZE = 4 << 20
GRAN = 65536
IDLE = 200
TRICKLE = 4


def client_hello():
    """The first flight of a real TLS client: what a trickler sends."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    s = c.wrap_bio(inc, out)
    try:
        s.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class Flood:
    """IDLE + TRICKLE connections to port, each reopened as soon as the
    secondary closes it, until stop()."""

    def __init__(self, port):
        self.port = port
        self.hello = client_hello()
        self.conns = {}  # socket -> (trickles, bytes sent)
        self.opened = 0
        self.halt = threading.Event()
        for i in range(IDLE + TRICKLE):
            self.open(i < TRICKLE)
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def open(self, trickles):
        """Connects without waiting (the secondary's backlog may be full
        while it serves the primary); a failed connect reads as closed
        and is opened again."""
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        self.conns[s] = [trickles, 0]
        self.opened += 1

    def run(self):
        last = time.monotonic()
        while not self.halt.is_set():
            socks = list(self.conns)
            r, _, _ = select.select(socks, [], [], 0.1) if socks else \
                ([], [], [])
            for s in r:
                try:
                    gone = s.recv(4096) == b""
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if gone and not self.halt.is_set():
                    trickles = self.conns.pop(s)[0]
                    s.close()
                    self.open(trickles)
            if time.monotonic() - last >= 1:
                last = time.monotonic()
                for s, st in list(self.conns.items()):
                    if st[0] and st[1] < len(self.hello):
                        try:
                            s.send(self.hello[st[1]:st[1] + 1])
                            st[1] += 1
                        except OSError:
                            pass

    def stop(self):
        self.halt.set()
        self.t.join()
        for s in self.conns:
            s.close()


def main():
    colo, mkcreds = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    bound = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
    tr.COLO = colo
    d = tempfile.mkdtemp(prefix="colo-blk-flood-")
    procs, flood = [], None

    def start(role, image, link, tag, creds, peer):
        args = [colo, "blk", role, "--image", image,
                "--listen" if role == "secondary" else "--secondary", link,
                "--export", "unix-listen:%s/%s.nbd" % (d, tag),
                "--control", "%s/%s.ctl" % (d, tag), "--granularity",
                str(GRAN), "--timeout", "1000",
                "--tls-creds", creds, "--tls-peer", peer]
        p = subprocess.Popen(args, stdout=open("%s/%s.log" % (d, tag), "a"),
                             stderr=subprocess.STDOUT)
        procs.append(p)
        tr.wait_for(lambda: tr.ctl("%s/%s.ctl" % (d, tag), "status")["ok"],
                    tag + " control")
        return p

    try:
        for args in (["ca", d + "/ca"],
                     ["host", d + "/ca", d + "/phost", "phost"],
                     ["host", d + "/ca", d + "/shost", "shost"]):
            subprocess.run([mkcreds] + args, check=True,
                           stdout=subprocess.DEVNULL)
        pimg, simg = d + "/p.img", d + "/s.img"
        with open(pimg, "wb") as f:
            f.write(bytes((i * 7 + 3) & 0xFF for i in range(SIZE)))
        with open(simg, "wb") as f:
            f.truncate(SIZE)
        port = free_port()
        sctl, pctl = d + "/s.ctl", d + "/p.ctl"
        start("secondary", simg, "127.0.0.1:%d" % port, "s", d + "/shost",
              "phost")

        flood = Flood(port)
        time.sleep(3)  # the lobby is full and churning
        before = flood.opened
        t0 = time.monotonic()
        start("primary", pimg, "127.0.0.1:%d" % port, "p", d + "/phost",
              "shost")
        tr.wait_for(lambda: tr.ctl(pctl, "status")["state"] == "protected",
                    "the primary linked despite the flood", timeout=bound)
        linked = time.monotonic() - t0
        tr.qemu_io(d + "/p.nbd", "write -P 77 65536 131072")
        r = tr.ctl(pctl, "checkpoint")
        assert r["ok"], r
        tr.assert_same(tr.read_file(simg), tr.read_file(pimg),
                       "secondary image under the flood")
        reopened = flood.opened - before
        alive = len(flood.conns)
        if reopened == 0 or alive < IDLE:
            raise AssertionError("the flood was not kept up: %d reopened, "
                                 "%d connected" % (reopened, alive))
        st = tr.ctl(sctl, "stats")
        print("ok: primary linked %.1f s after its start (bound %.0f s) "
              "behind %d idle + %d trickling connections kept up (%d "
              "reopened meanwhile, %d connected at the end); write and "
              "checkpoint replicated; lobby_evicted=%d hello_timeouts=%d "
              "refused=%d" % (linked, bound, IDLE, TRICKLE, reopened, alive,
                              st["lobby_evicted"], st["hello_timeouts"],
                              st["refused"]), flush=True)
    except BaseException:
        for tag in ("p", "s"):
            try:
                with open("%s/%s.log" % (d, tag)) as f:
                    sys.stdout.write("--- %s log (tail):\n%s" % (
                        tag, "".join(f.readlines()[-30:])))
            except OSError:
                pass
        raise
    finally:
        if flood:
            flood.stop()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run(["rm", "-rf", d])
    print("blk_flood passed")


if __name__ == "__main__":
    main()
