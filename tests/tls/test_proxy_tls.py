#!/usr/bin/env python3
"""`colo proxy`'s replication link under TLS, against attackers.

    test_proxy_tls.py COLO_BINARY MKCREDS_SH

A real pair (loopback, qemu: ports as in tests/e2e/test_roles.py) runs
with per-run credentials; the secondary reaches the primary through a
relay that records the session. Then, with the pair up and again with the
secondary stalled (the primary waiting for a peer), each attacker tries
the primary's link port: plain TCP speaking the link protocol, a replay
of the recorded session, a certificate from another CA, and a valid
certificate of a host that is not the pair's. A second secondary is
pointed at fake primaries (plain, other CA, wrong host) that send
INGRESS and FAILOVER. None gets a frame in or out, none causes a
checkpoint or failover, and the pair keeps mirroring and comparing.
Finally a link address off loopback without credentials is refused
(inside a network namespace this test creates; skipped without root).
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
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, ".."))
import test_roles as tr  # noqa: E402
from testlib import free_port  # noqa: E402
from relay import Relay, fake_server  # noqa: E402

COLO = os.path.abspath(sys.argv[1])
MKCREDS = os.path.abspath(sys.argv[2])
CLIENT_MAC, GUEST_MAC = tr.CLIENT_MAC, tr.GUEST_MAC
fail = tr.fail


def frame(ftype, payload, flags=0):
    return struct.pack("!BBHI", ftype, flags, 0, len(payload)) + payload


def hello(role, auth=0):
    return frame(1, b"COLOLINK" + struct.pack("!HBBQ", 2, role, auth, 7))


def forged_frames(role):
    """What a plain-TCP attacker would send: a HELLO, then traffic."""
    eth = tr.udp_frame(GUEST_MAC, CLIENT_MAC, "10.0.0.2", "10.0.0.1", 6000,
                       5000, b"forged")
    if role == 2:  # as a secondary: guest output, to cause a divergence
        return hello(2) + frame(3, eth)
    return hello(1) + frame(2, eth) + frame(6, b"")  # ingress, FAILOVER


def drain(s, secs=1.0):
    """Everything the attacker receives until the proxy closes (or secs)."""
    got = b""
    s.settimeout(secs)
    deadline = time.time() + secs
    try:
        while time.time() < deadline:
            x = s.recv(65536)
            if not x:
                break
            got += x
    except (OSError, ssl.SSLError):
        pass
    return got


def attack_plain(port, data):
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(data)
    except OSError:
        pass
    return s


def attack_tls(port, creds):
    """A TLS client with creds; it does not check the server (it only
    wants in). Returns the socket, or None when the handshake failed."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.load_cert_chain(creds + "/client-cert.pem", creds + "/client-key.pem")
    raw = socket.create_connection(("127.0.0.1", port))
    try:
        s = c.wrap_socket(raw)
        s.sendall(forged_frames(2))
        return s
    except (OSError, ssl.SSLError):
        return None


def check_attacker(s, marker, what):
    if s is None:
        print("ok: %s refused in the handshake" % what, flush=True)
        return
    got = drain(s)
    if marker in got:
        fail("%s read mirrored traffic" % what)
    s.close()
    print("ok: %s got nothing (%d bytes of TLS alerts/handshake)"
          % (what, len(got)), flush=True)


def fake_primary(port, creds, plain, stop):
    """Answers a secondary's connect: plain, or TLS with creds' server
    certificate; then sends INGRESS and FAILOVER."""
    ls, c = fake_server(port, creds, plain)
    while not stop.is_set():
        try:
            a, _ = ls.accept()
        except OSError:
            continue
        try:
            if c:
                a = c.wrap_socket(a, server_side=True)
            a.sendall(forged_frames(1))
            drain(a, 0.5)
        except (OSError, ssl.SSLError):
            pass
        a.close()
    ls.close()


def main():
    d = tempfile.mkdtemp(prefix="colo-tls-proxy-")
    procs = []
    try:
        for args in (["ca", d + "/ca"], ["ca", d + "/ca2"],
                     ["host", d + "/ca", d + "/phost", "phost"],
                     ["host", d + "/ca", d + "/shost", "shost"],
                     ["host", d + "/ca", d + "/mallory", "mallory"],
                     ["host", d + "/ca2", d + "/evil-s", "shost"],
                     ["host", d + "/ca2", d + "/evil-p", "phost"]):
            subprocess.run([MKCREDS] + args, check=True)
        port, rport = free_port(), free_port()

        def proxy(role, link_opt, addr, tag, creds, peer):
            p = subprocess.Popen(
                [COLO, "proxy", "--role", role,
                 "--client", "qemu:unix-listen:%s/%sc" % (d, tag),
                 "--guest", "qemu:unix-listen:%s/%sg" % (d, tag),
                 link_opt, addr, "--control", "%s/%s.sock" % (d, tag),
                 "--ping", "50", "--peer-timeout", "300",
                 "--tls-creds", creds, "--tls-peer", peer],
                stdout=open("%s/%s.log" % (d, tag), "w"),
                stderr=subprocess.STDOUT)
            procs.append(p)
            return p

        pctl, sctl = d + "/p.sock", d + "/s.sock"
        proxy("primary", "--link-listen", "127.0.0.1:%d" % port, "p",
              d + "/phost", "shost")
        pc, pg = tr.Port(d + "/pc"), tr.Port(d + "/pg")
        relay = Relay(port, listen_port=rport)
        sec = proxy("secondary", "--link-connect", "127.0.0.1:%d" % rport,
                    "s", d + "/shost", "phost")
        sc, sg = tr.Port(d + "/sc"), tr.Port(d + "/sg")
        tr.wait_for(lambda: tr.ctl(pctl, "status").get("mode") ==
                    "protected", "primary protected over TLS")
        n = [0]

        def mirror_and_compare(what):
            n[0] += 1
            q = tr.udp_frame(CLIENT_MAC, b"\xff" * 6, "10.0.0.1",
                             "10.0.0.255", 5000, 6000, b"q%d" % n[0])
            pc.send(q)
            if not pg.recv_matching(q) or not sg.recv_matching(q):
                fail("%s: the client frame was not mirrored" % what)
            a = tr.udp_frame(GUEST_MAC, CLIENT_MAC, "10.0.0.2", "10.0.0.1",
                             6000, 5000, b"a%d" % n[0])
            pg.send(a)
            sg.send(a)
            if not pc.recv_matching(a):
                fail("%s: matched output was not released" % what)
            print("ok: %s: the pair mirrors and compares" % what,
                  flush=True)

        mirror_and_compare("TLS pair")
        time.sleep(0.3)
        recorded = bytes(relay.rec)
        if len(recorded) < 200 or b"COLOLINK" in recorded:
            fail("recorded session: %d bytes, cleartext HELLO %s"
                 % (len(recorded), b"COLOLINK" in recorded))
        print("ok: the link carries no cleartext (%d bytes recorded)"
              % len(recorded), flush=True)
        st0 = tr.ctl(pctl, "stats")

        def attackers(phase):
            marker = b"secret-%s" % phase.encode()
            socks = [("plain TCP", attack_plain(port, forged_frames(2))),
                     ("replay", attack_plain(port, recorded)),
                     ("other CA", attack_tls(port, d + "/evil-s")),
                     ("wrong host", attack_tls(port, d + "/mallory"))]
            # Client traffic while the attackers hold connections.
            pc.send(tr.udp_frame(CLIENT_MAC, b"\xff" * 6, "10.0.0.1",
                                 "10.0.0.255", 5000, 6000, marker))
            for what, s in socks:
                check_attacker(s, marker, "%s: %s" % (phase, what))

        # Phase 1: the pair is up; strangers are turned away.
        attackers("pair up")
        mirror_and_compare("after attackers (pair up)")
        st = tr.ctl(pctl, "stats")
        if st.get("peer_refused", 0) < 4 or \
                st.get("peer_connects") != st0.get("peer_connects"):
            fail("pair up: stats %s" % st)

        # Phase 2: the secondary stalls; the primary waits for a peer and
        # each attacker reaches the TLS handshake.
        sec.send_signal(signal.SIGSTOP)
        tr.wait_for(lambda: tr.ctl(pctl, "status").get("mode") ==
                    "degraded", "primary degraded with the secondary stalled")
        attackers("degraded")
        if tr.ctl(pctl, "status").get("mode") != "degraded":
            fail("an attacker made the primary protected")
        sec.send_signal(signal.SIGCONT)
        tr.wait_for(lambda: tr.ctl(pctl, "status").get("mode") ==
                    "protected", "protected again after the secondary resumed")
        mirror_and_compare("after attackers (degraded)")
        st = tr.ctl(pctl, "stats")
        if st.get("divergences") or st.get("checkpoint_requests"):
            fail("attackers caused divergences: %s" % st)

        # Fake primaries against a second secondary.
        for what, creds, plain in (("plain TCP", None, True),
                                   ("other CA", d + "/evil-p", False),
                                   ("wrong host", d + "/mallory", False)):
            fport = free_port()
            stop = threading.Event()
            t = threading.Thread(target=fake_primary,
                                 args=(fport, creds, plain, stop))
            t.start()
            tag = "x%d" % fport
            s2 = proxy("secondary", "--link-connect",
                       "127.0.0.1:%d" % fport, tag, d + "/shost", "phost")
            g2 = tr.Port("%s/%sg" % (d, tag))
            tr.Port("%s/%sc" % (d, tag))
            time.sleep(1.5)  # a connect attempt every retry interval
            st = tr.ctl("%s/%s.sock" % (d, tag), "status")
            got = g2.recv(0.3)
            stop.set()
            t.join()
            s2.kill()
            s2.wait()
            if st.get("peer") or st.get("failed_over") or got is not None:
                fail("fake primary (%s): status %s, guest got %r"
                     % (what, st, got))
            print("ok: fake primary (%s): no peer, no ingress, no failover"
                  % what, flush=True)
        if tr.ctl(sctl, "status").get("failed_over"):
            fail("the real secondary failed over")
        mirror_and_compare("at the end")

        # The safe default, off loopback: in a namespace of our own.
        if os.geteuid() == 0:
            ns = "colo-tls-%d" % os.getpid()
            subprocess.run(["ip", "netns", "add", ns], check=True)
            try:
                for c in (["link", "add", "d0", "type", "veth", "peer",
                           "name", "d1"],
                          ["addr", "add", "10.231.7.1/24", "dev", "d0"],
                          ["link", "set", "d0", "up"]):
                    subprocess.run(["ip", "-n", ns] + c, check=True)
                r = subprocess.run(
                    ["ip", "netns", "exec", ns, COLO, "proxy", "--role",
                     "primary", "--client", "qemu:unix-listen:%s/nc" % d,
                     "--guest", "qemu:unix-listen:%s/ng" % d,
                     "--link-listen", "10.231.7.1:7700"],
                    capture_output=True, text=True, timeout=10)
                if r.returncode != 1 or "not a loopback" not in r.stderr:
                    fail("off loopback without TLS: %d %s"
                         % (r.returncode, r.stderr))
                print("ok: off loopback without --tls-creds refused: %s"
                      % r.stderr.strip(), flush=True)
            finally:
                subprocess.run(["ip", "netns", "del", ns])
        else:
            print("skip: off-loopback check needs root", flush=True)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        for tag in ("p", "s"):
            try:
                with open("%s/%s.log" % (d, tag)) as f:
                    sys.stdout.write(f.read())
            except OSError:
                pass
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
