#!/usr/bin/env python3
"""vm_tls_test.py - `colo vm` with --tls-creds, with real parts: two
daemons on loopback, each owning a QEMU (TCG) running the tiny guest; the
frame link and QEMU's migration stream both in TLS with per-run
credentials (tests/tls/mkcreds.sh).

  1. The pair protects the guest over TLS: checkpoints with both RAM
     dumps compared byte for byte (the device state crossed a TLS
     migration into a standby that requires TLS); no cleartext HELLO on
     the wire (a relay between the hosts records the frame link).
  2. With the pair up, attackers on the primary's frame link port (plain
     TCP speaking the protocol, a replay of the recorded session, a
     certificate of another CA, a valid certificate of a host not in the
     pair) are refused; the secondary stays the secondary and the next
     checkpoint succeeds with equal RAM.
  3. A plain connection and a foreign-CA TLS client on the standby's
     migration port feed it nothing: the next checkpoint succeeds, RAM
     equal.
  4. With the secondary gone (the primary degraded, waiting), the same
     attackers, the wrong-host one completing TLS and sending a valid
     secondary HELLO, cannot start a checkpoint: the primary stays
     degraded with "no secondary". A real secondary then joins, RAM equal.
  5. A secondary pointed at fake primaries (plain, other CA, wrong host)
     refuses them and exits with the reason; an address off loopback
     without credentials is refused (safe default).
Usage: vm_tls_test.py COLO_BINARY MKCREDS_SH
"""
import glob
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tls"))
import vmpair  # noqa: E402
from testlib import free_port  # noqa: E402
from relay import Relay, fake_server  # noqa: E402

COLO = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
MKCREDS = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None


def fail(msg):
    raise AssertionError(msg)


def frame(ftype, payload):
    return struct.pack("!BBHI", ftype, 0, 0, len(payload)) + payload


def hello(role, ram=128 << 20):
    p = b"COLOVMFR" + struct.pack("!HBBQ", 1, role, 0, ram)
    p += b"7.2.22".ljust(32, b"\0") + b"pc-i440fx-7.2".ljust(64, b"\0")
    return frame(1, p)


def msg(ftype, seq, text=b""):
    return frame(ftype, struct.pack("!QQ", seq, 0) + text)


def forged_secondary():
    """A secondary's HELLO, then what would move a checkpoint along."""
    return hello(2) + msg(3, 1, b"tcp:127.0.0.1:1") + msg(6, 1)


def forged_primary():
    """A primary's HELLO, then a BEGIN of checkpoint 1."""
    return hello(1) + msg(2, 1)


def tls_client(port, creds):
    """A TLS client presenting creds' client certificate; it does not
    check the server (it only wants in). The socket, or None when the
    handshake failed."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.load_cert_chain(creds + "/client-cert.pem", creds + "/client-key.pem")
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return c.wrap_socket(raw)
    except (OSError, ssl.SSLError):
        raw.close()
        return None


def answered(s, secs=3.0):
    """Whether the peer sent anything but a close (a frame link HELLO or
    ABORT would be a frame; TLS alerts raise or read as nothing)."""
    s.settimeout(secs)
    got = b""
    try:
        while len(got) < 8:
            x = s.recv(4096)
            if not x:
                break
            got += x
    except (OSError, ssl.SSLError):
        pass
    return got


def attack_frame_port(port, recorded, d):
    """The four attackers on the primary's frame link; each must get no
    frame back. Returns how many connections were made."""
    out = []
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(forged_secondary())
    out.append(("plain TCP", s))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(recorded)
    out.append(("replay", s))
    for what, creds in (("other CA", d + "/evil"),
                        ("wrong host", d + "/mallory")):
        s = tls_client(port, creds)
        if s is not None:
            try:
                s.sendall(forged_secondary())
            except (OSError, ssl.SSLError):
                pass
        out.append((what, s))
    for what, s in out:
        if s is None:
            print("ok: %s refused in the TLS handshake" % what, flush=True)
            continue
        got = answered(s)
        s.close()
        if b"COLOVMFR" in got or (len(got) >= 8 and got[0] in range(1, 11)
                                  and got[1:4] == b"\0\0\0"):
            fail("%s got a frame back: %r" % (what, got[:64]))
        print("ok: %s got no frame (%d bytes of TLS alerts)"
              % (what, len(got)), flush=True)
    return len(out)


def checkpoint_equal(pair, what):
    r = pair.ctl("primary", "checkpoint", dump=True)
    if not r.get("ok"):
        fail("%s: checkpoint failed: %s" % (what, r))
    a, b = pair.dump_paths(r["seq"])
    if not vmpair.same_file(a, b):
        fail("%s: RAM differs after checkpoint %d" % (what, r["seq"]))
    os.unlink(a)
    os.unlink(b)
    print("ok: %s: checkpoint %d, RAM equal, pause %.1f ms"
          % (what, r["seq"], r["pause_ms"]), flush=True)
    return r


def standby_port(pair):
    """The port the secondary's next standby listens on (from its log,
    once the standby started after the last checkpoint is attached)."""
    gen = pair.status("secondary")["standby_gen"]

    def find():
        m = re.findall(r"standby %d ready at tcp:127\.0\.0\.1:(\d+)" % gen,
                       pair.log("secondary"))
        return int(m[-1]) if m else None
    return vmpair.wait_for(find, 60, "standby %d to listen" % gen)


def fake_primary(port, creds, plain, stop):
    ls, c = fake_server(port, creds, plain)
    while not stop.is_set():
        try:
            a, _ = ls.accept()
        except OSError:
            continue
        try:
            a.settimeout(5)
            if c:
                a = c.wrap_socket(a, server_side=True)
            a.sendall(forged_primary())
            answered(a, 2)
        except (OSError, ssl.SSLError):
            pass
        a.close()
    ls.close()


def main():
    if not COLO or not MKCREDS:
        print(__doc__)
        return 2
    t0 = time.monotonic()
    d = vmpair.tempfile.mkdtemp(prefix="colo-vm-tls-", dir="/dev/shm")
    pair = None
    try:
        for args in (["ca", d + "/ca"], ["ca", d + "/ca2"],
                     ["host", d + "/ca", d + "/phost", "phost"],
                     ["host", d + "/ca", d + "/shost", "shost"],
                     ["host", d + "/ca", d + "/mallory", "mallory"],
                     ["host", d + "/ca2", d + "/evil", "shost"],
                     ["host", d + "/ca2", d + "/evil-p", "phost"]):
            subprocess.run([MKCREDS] + args, check=True)
        ptls = ["--tls-creds", d + "/phost", "--tls-peer", "shost"]
        stls = ["--tls-creds", d + "/shost", "--tls-peer", "phost"]

        # 5 first (no guest): the safe default and fake primaries.
        for role, opt, addr in (("primary", "--link-listen", "0.0.0.0:1"),
                                ("secondary", "--link-connect",
                                 "192.0.2.1:1")):
            r = subprocess.run(
                [COLO, "vm", "--role", role, "--dir", d + "/x-" + role,
                 opt, addr, "--", "-m", "64M"],
                capture_output=True, text=True, timeout=30)
            if r.returncode == 0 or "not a loopback" not in r.stderr:
                fail("%s off loopback without TLS: %d %s"
                     % (role, r.returncode, r.stderr))
            print("ok: %s off loopback without --tls-creds refused: %s"
                  % (role, r.stderr.strip()), flush=True)
        for what, creds, plain in (("plain TCP", None, True),
                                   ("other CA", d + "/evil-p", False),
                                   ("wrong host", d + "/mallory", False)):
            fport = free_port()
            stop = threading.Event()
            t = threading.Thread(target=fake_primary,
                                 args=(fport, creds, plain, stop))
            t.start()
            try:
                r = subprocess.run(
                    [COLO, "vm", "--role", "secondary", "--dir",
                     d + "/fake", "--link-connect", "127.0.0.1:%d" % fport,
                     "--timeout", "3000"] + stls + ["--", "-m", "64M"],
                    capture_output=True, text=True, timeout=60)
            finally:
                stop.set()
                t.join()
            if r.returncode != 1 or \
                    "frame link to the primary" not in r.stderr:
                fail("fake primary (%s): %d %s"
                     % (what, r.returncode, r.stderr))
            print("ok: fake primary (%s) refused: %s"
                  % (what, r.stderr.strip().splitlines()[-1]), flush=True)

        # 1. The pair over TLS, the secondary through a recording relay.
        port = free_port()
        relay = Relay(port)
        pair = vmpair.Pair(COLO, append="colo_dirty=8",
                           opts={"primary": ptls, "secondary": stls},
                           link_connect_port=relay.port, link_port=port)
        pair.wait_protected()
        if not (pair.status("primary")["tls"] and
                pair.status("secondary")["tls"]):
            fail("status does not say tls")
        for i in range(3):
            checkpoint_equal(pair, "TLS pair")
        time.sleep(0.5)
        recorded = bytes(relay.rec)
        if len(recorded) < 1000 or b"COLOVMFR" in recorded:
            fail("recorded frame link: %d bytes, cleartext HELLO %s"
                 % (len(recorded), b"COLOVMFR" in recorded))
        print("ok: the frame link carries no cleartext (%d bytes recorded)"
              % len(recorded), flush=True)

        # 2. Attackers with the pair up.
        st0 = pair.status("primary")
        n = attack_frame_port(port, recorded, d)
        vmpair.wait_for(lambda: pair.status("primary")["link_refused"] >=
                        st0["link_refused"] + n, 30,
                        "the primary to refuse every attacker")
        st = pair.status("primary")
        if st["mode"] != "protected" or st["checkpoints"] != \
                st0["checkpoints"] or st["failures"]:
            fail("after attackers (pair up): %s" % st)
        checkpoint_equal(pair, "after attackers (pair up)")

        # 3. The standby's migration port.
        sp = standby_port(pair)
        if not sp:
            fail("no standby port in the secondary's log")
        s = socket.create_connection(("127.0.0.1", sp), timeout=5)
        s.sendall(b"QEVM\0\0\0\3" + b"\0" * 64)
        answered(s, 1)
        s.close()
        # TLS 1.3: the client finishes before the server checked its
        # certificate; the refusal shows as an alert instead of data.
        for creds in (d + "/evil-p", d + "/mallory"):
            s = tls_client(sp, creds)
            if s is not None:
                try:
                    s.sendall(b"QEVM\0\0\0\3" + b"\0" * 64)
                except (OSError, ssl.SSLError):
                    pass
                got = answered(s, 2)
                s.close()
                if got:
                    fail("the standby answered %s: %r" % (creds, got[:32]))
        # Refused, not taken and broken: the same standby still waits
        # (a connection it accepted would start, fail and end it), and
        # its QEMU says why it turned the wrong host away.
        time.sleep(1)
        gen = pair.status("secondary")["standby_gen"]
        logs = glob.glob(os.path.join(pair.dir, "secondary-*",
                                      "qemu-%d.log" % gen))
        qlog = open(logs[0], errors="replace").read() if logs else ""
        if "authz check for CN=mallory is denied" not in qlog:
            fail("standby %d's QEMU log does not show the refusal: %r"
                 % (gen, qlog[-500:]))
        print("ok: the standby (port %d) refused plain, foreign-CA and "
              "wrong-host clients (QEMU: authz for CN=mallory denied)"
              % sp, flush=True)
        checkpoint_equal(pair, "after attacking the standby")
        if "standby gone" in pair.log("secondary"):
            fail("an attacker killed the standby")

        # 4. The secondary gone: nobody else may take its place.
        pair.kill("secondary")
        vmpair.wait_for(lambda: pair.ctl("primary", "checkpoint").get(
            "ok") is False, 60, "the primary to lose the secondary")
        st0 = pair.status("primary")
        n = attack_frame_port(port, recorded, d)
        vmpair.wait_for(lambda: pair.status("primary")["link_refused"] >=
                        st0["link_refused"] + n, 30,
                        "the primary to refuse every attacker")
        st = pair.status("primary")
        if st["mode"] != "degraded" or st["checkpoints"] != \
                st0["checkpoints"]:
            fail("an attacker moved the primary: %s" % st)
        r = pair.ctl("primary", "checkpoint")
        if r.get("ok") or "no secondary" not in r.get("error", ""):
            fail("checkpoint with only attackers around: %s" % r)
        print("ok: with only attackers around: %s" % r["error"], flush=True)
        pair.start("secondary")
        pair.wait_protected()
        checkpoint_equal(pair, "a real secondary rejoined")
        pair.wait_running("secondary")
    finally:
        try:
            if pair:
                pair.close()
        finally:
            subprocess.run(["rm", "-rf", d])
    print("vm_tls passed in %.1f s" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
