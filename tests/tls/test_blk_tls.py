#!/usr/bin/env python3
"""`colo blk`'s replication link under TLS, against attackers.

    test_blk_tls.py COLO_BINARY MKCREDS_SH

A real pair (loopback, UNIX exports, qemu-io as the client) runs with
per-run credentials; the primary reaches the secondary through a relay
that records what it sends.

  1. The pair resyncs and replicates over TLS: the secondary's image
     equals the primary's after writes and a checkpoint; the recorded
     link holds neither the frame magic nor the image's bytes.
  2. With the pair up, attackers on the secondary's link port (plain TCP
     speaking the link protocol: HELLO, WRITE, RESYNC_DATA, BARRIER with
     checkpoint; a replay of the recorded session; a certificate from
     another CA; a valid certificate of a host not in the pair) wait
     behind the real primary. Then the primary is stopped, so the
     secondary takes each of them in turn: every one is refused, none
     writes a byte or drops the disk buffer, and the stats say so.
  3. A real primary comes back: protected again, images equal.
  4. The verified primary goes silent (SIGSTOP): the secondary ends the
     link after --timeout (the idle timeout after the HELLO, over TLS).
  5. A primary pointed at fake secondaries (plain, other CA, wrong host)
     never counts a connection nor sends a frame.
  6. Safe default: a link off loopback without credentials is refused.
"""
import os
import signal
import socket
import ssl
import struct
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
from relay import Relay, fake_server  # noqa: E402

SIZE = 4 << 20
GRAN = 65536
EVIL = 0xEE


def fail(msg):
    raise AssertionError(msg)


def frame(ftype, flags=0, seq=0, off=0, length=0, payload=b""):
    return struct.pack("!IHHQQII", 0x4352504C, ftype, flags, seq, off,
                       length, 0) + payload


def forged_primary():
    """What a plain attacker would say as the primary: HELLO, a WRITE,
    a resync of one granule and a checkpoint barrier."""
    hello = struct.pack("!IIQII", 1, 0, SIZE, GRAN, 0)
    data = bytes([EVIL]) * 4096
    return (frame(1, length=24, payload=hello) +
            frame(2, seq=1, off=0, length=4096, payload=data) +
            frame(6, seq=2, off=GRAN) +
            frame(7, seq=3, off=GRAN, length=4096, payload=data) +
            frame(8, seq=4) + frame(4, flags=4, seq=5))


def tls_client(port, creds):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.load_cert_chain(creds + "/client-cert.pem", creds + "/client-key.pem")
    raw = socket.create_connection(("127.0.0.1", port))
    return c.wrap_socket(raw, do_handshake_on_connect=False)


def attacker(port, what, data, creds, results):
    """Connects, sends data (through TLS with creds when given) once the
    secondary takes the connection, reports whether it got a frame."""
    got = b""
    try:
        if creds:
            s = tls_client(port, creds)
            s.settimeout(60)
            s.do_handshake()  # completes when the secondary accepts
        else:
            s = socket.create_connection(("127.0.0.1", port))
            s.settimeout(60)
        s.sendall(data)
        while len(got) < 32:
            x = s.recv(4096)
            if not x:
                break
            got += x
    except (OSError, ssl.SSLError):
        pass
    results[what] = got


def fake_secondary(port, creds, plain, stop, seen):
    """Answers a primary's connect: plain (with a HELLO), or TLS with
    creds' server certificate; records what the primary sent."""
    ls, c = fake_server(port, creds, plain)
    while not stop.is_set():
        try:
            a, _ = ls.accept()
        except OSError:
            continue
        try:
            a.settimeout(2)
            if c:
                a = c.wrap_socket(a, server_side=True)
            a.sendall(frame(1, length=24, payload=struct.pack(
                "!IIQII", 1, 1, SIZE, GRAN, 0)))
            while True:
                x = a.recv(65536)
                if not x:
                    break
                seen.append(x)
        except (OSError, ssl.SSLError):
            pass
        a.close()
    ls.close()


def main():
    colo, mkcreds = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    tr.COLO = colo
    d = tempfile.mkdtemp(prefix="colo-tls-blk-")
    procs = []

    def start(role, image, link, tag, creds, peer, extra=()):
        args = [colo, "blk", role, "--image", image,
                "--listen" if role == "secondary" else "--secondary", link,
                "--export", "unix-listen:%s/%s.nbd" % (d, tag),
                "--control", "%s/%s.ctl" % (d, tag), "--granularity",
                str(GRAN), "--timeout", "2000"]
        if creds:
            args += ["--tls-creds", creds, "--tls-peer", peer]
        p = subprocess.Popen(args + list(extra),
                             stdout=open("%s/%s.log" % (d, tag), "a"),
                             stderr=subprocess.STDOUT)
        procs.append(p)
        tr.wait_for(lambda: tr.ctl("%s/%s.ctl" % (d, tag), "status")["ok"],
                    tag + " control")
        return p

    try:
        for args in (["ca", d + "/ca"], ["ca", d + "/ca2"],
                     ["host", d + "/ca", d + "/phost", "phost"],
                     ["host", d + "/ca", d + "/shost", "shost"],
                     ["host", d + "/ca", d + "/mallory", "mallory"],
                     ["host", d + "/ca2", d + "/evil-p", "phost"],
                     ["host", d + "/ca2", d + "/evil-s", "shost"]):
            subprocess.run([mkcreds] + args, check=True)
        pimg, simg = d + "/p.img", d + "/s.img"
        with open(pimg, "wb") as f:
            f.write(bytes((i * 13 + 7) & 0xFF for i in range(SIZE)))
        with open(simg, "wb") as f:
            f.truncate(SIZE)
        port = free_port()
        relay = Relay(port, cap=16 << 20)
        sctl, pctl = d + "/s.ctl", d + "/p.ctl"

        # 1. The pair over TLS.
        start("secondary", simg, "127.0.0.1:%d" % port, "s", d + "/shost",
              "phost")
        prim = start("primary", pimg, "127.0.0.1:%d" % relay.port, "p",
                     d + "/phost", "shost")
        tr.wait_for(lambda: tr.ctl(pctl, "status")["state"] == "protected",
                    "protected over TLS")
        tr.qemu_io(d + "/p.nbd", "write -P 165 8192 200000")
        r = tr.ctl(pctl, "checkpoint")
        assert r["ok"], r
        want = tr.read_file(pimg)
        tr.assert_same(tr.read_file(simg), want, "secondary image")
        rec = bytes(relay.rec)
        if len(rec) < SIZE or b"CRPL" in rec or want[100000:100064] in rec:
            fail("recorded link: %d bytes, magic %s, image bytes %s"
                 % (len(rec), b"CRPL" in rec, want[100000:100064] in rec))
        print("ok: resync, write and checkpoint over TLS; %d bytes on the "
              "wire, no cleartext" % len(rec), flush=True)

        # 2. Attackers queue behind the real primary, then get their turn.
        st0 = tr.ctl(sctl, "stats")
        results = {}
        threads = []
        for what, data, creds in (("plain TCP", forged_primary(), None),
                                  ("replay", rec[:1 << 20], None),
                                  ("other CA", forged_primary(),
                                   d + "/evil-p"),
                                  ("wrong host", forged_primary(),
                                   d + "/mallory")):
            t = threading.Thread(target=attacker,
                                 args=(port, what, data, creds, results))
            t.start()
            threads.append(t)
        time.sleep(1)
        st = tr.ctl(sctl, "stats")
        if st["primary_writes"] != st0["primary_writes"] or \
                not st["connected"]:
            fail("attackers behind the primary: %s" % st)
        prim.send_signal(signal.SIGTERM)
        if prim.wait(20) != 0:
            fail("the TLS primary did not exit cleanly on SIGTERM")
        tr.wait_for(lambda: tr.ctl(sctl, "stats")["refused"] >=
                    st0["refused"] + 4, "four refusals", timeout=60)
        for t in threads:
            t.join(60)
        st = tr.ctl(sctl, "stats")
        for what, got in sorted(results.items()):
            if len(got) >= 4 and got[:4] == b"CRPL":
                fail("%s got a link frame back" % what)
            print("ok: %s refused (%d bytes back)" % (what, len(got)),
                  flush=True)
        if st["primary_writes"] != st0["primary_writes"] or \
                st["checkpoints"] != st0["checkpoints"] or \
                st["resyncs"] != st0["resyncs"]:
            fail("an attacker got a frame applied: %s" % st)
        img = tr.read_file(simg)
        if bytes([EVIL]) * 4096 in img:
            fail("the attacker's bytes are in the secondary's image")
        tr.assert_same(img, want, "secondary image after the attackers")
        print("ok: no WRITE, RESYNC_DATA or checkpoint from any attacker "
              "(refused=%d)" % st["refused"], flush=True)

        # 3. The real primary again.
        prim = start("primary", pimg, "127.0.0.1:%d" % port, "p",
                     d + "/phost", "shost")
        tr.wait_for(lambda: tr.ctl(pctl, "status")["state"] == "protected",
                    "protected again")
        tr.qemu_io(d + "/p.nbd", "write -P 90 500000 70000")
        assert tr.ctl(pctl, "checkpoint")["ok"]
        tr.assert_same(tr.read_file(simg), tr.read_file(pimg),
                       "secondary image after the reconnect")
        print("ok: the real primary reconnected; images equal", flush=True)

        # 4. Idle timeout after the HELLO, over TLS.
        prim.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        tr.wait_for(lambda: not tr.ctl(sctl, "stats")["connected"],
                    "the secondary to drop a silent primary", timeout=30)
        print("ok: silent verified primary dropped after %.1f s "
              "(--timeout 2000)" % (time.monotonic() - t0), flush=True)
        prim.send_signal(signal.SIGCONT)
        prim.kill()
        prim.wait()

        # 5. Fake secondaries.
        for what, creds, plain in (("plain TCP", None, True),
                                   ("other CA", d + "/evil-s", False),
                                   ("wrong host", d + "/mallory", False)):
            fport = free_port()
            stop, seen = threading.Event(), []
            t = threading.Thread(target=fake_secondary,
                                 args=(fport, creds, plain, stop, seen))
            t.start()
            tag = "x%d" % fport
            p2 = start("primary", pimg, "127.0.0.1:%d" % fport, tag,
                       d + "/phost", "shost")
            time.sleep(2.5)  # a connect attempt every second
            st = tr.ctl("%s/%s.ctl" % (d, tag), "stats")
            p2.kill()
            p2.wait()
            stop.set()
            t.join()
            data = b"".join(seen)
            if st["connects"] or st["state"] != "degraded" or \
                    b"CRPL" in data:
                fail("fake secondary (%s): %s, %d bytes seen"
                     % (what, st, len(data)))
            print("ok: fake secondary (%s): no connection, no frame"
                  % what, flush=True)

        # The TLS secondary (threads, sessions) exits cleanly too.
        sec = procs[0]
        sec.send_signal(signal.SIGTERM)
        if sec.wait(20) != 0:
            fail("the TLS secondary did not exit cleanly on SIGTERM")
        print("ok: both TLS daemons exited cleanly on SIGTERM", flush=True)

        # 6. Safe default.
        for role, link in (("secondary", "0.0.0.0:%d" % free_port()),
                           ("primary", "192.0.2.1:9")):
            r = subprocess.run(
                [colo, "blk", role, "--image", simg,
                 "--listen" if role == "secondary" else "--secondary", link,
                 "--export", "unix-listen:%s/z.nbd" % d],
                capture_output=True, text=True, timeout=30)
            if r.returncode != 2 or "not a loopback" not in r.stderr:
                fail("%s off loopback without TLS: %d %s"
                     % (role, r.returncode, r.stderr))
            print("ok: %s off loopback without --tls-creds refused"
                  % role, flush=True)
    except BaseException:
        for tag in ("p", "s"):
            try:
                with open("%s/%s.log" % (d, tag)) as f:
                    sys.stdout.write("--- %s log:\n%s" % (tag, f.read()))
            except OSError:
                pass
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", d])
    print("blk_tls passed")


if __name__ == "__main__":
    main()
