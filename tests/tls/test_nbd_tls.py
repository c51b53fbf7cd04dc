#!/usr/bin/env python3
"""NBD exports over TLS (STARTTLS, as qemu-nbd), with QEMU's own tools as
the clients.

    test_nbd_tls.py COLO_BINARY MKCREDS_SH

`colo blk serve --tls-creds` on a loopback TCP port and a UNIX socket:

  1. qemu-io with `--object tls-creds-x509,endpoint=client` (checking our
     certificate against the CA and `tls-hostname`) writes and reads back
     a pattern; qemu-img convert over TLS reads the whole image, equal to
     the file.
  2. A plain qemu-io on the TCP export is refused ("TLS negotiation
     required"), and so are, by our own raw client: NBD_OPT_GO before
     STARTTLS (NBD_REP_ERR_TLS_REQD), NBD_OPT_EXPORT_NAME before STARTTLS
     (closed), STARTTLS with bytes pipelined behind it (closed: nothing
     sent in the clear may count as sent under TLS), STARTTLS with data
     (NBD_REP_ERR_INVALID).
  3. qemu-io with a certificate of another CA is refused; with
     --tls-peer, a valid certificate of another host is refused too;
     the same for `colo blk secondary --export-tls-peer` (the
     replicating roles' exports).
  4. The UNIX export still serves a plain client.
  5. Safe default: a TCP export off loopback without credentials is
     refused at start.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import free_port  # noqa: E402

SIZE = 8 << 20
OPTS_MAGIC = 0x49484156454F5054
REP_MAGIC = 0x0003E889045565A9
ERR_INVALID = (1 << 31) | 3
ERR_TLS_REQD = (1 << 31) | 5


def fail(msg):
    raise AssertionError(msg)


def qemu_io(port, creds, host, *cmds, check=True):
    args = ["qemu-io"]
    if creds:
        args += ["--object", "tls-creds-x509,id=tls0,dir=%s,endpoint=client"
                 % creds, "--image-opts",
                 "driver=nbd,host=127.0.0.1,port=%d,tls-creds=tls0,"
                 "tls-hostname=%s" % (port, host)]
    else:
        args += ["-f", "raw", "nbd://127.0.0.1:%d/" % port]
    for c in cmds:
        args += ["-c", c]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    ok = r.returncode == 0 and "error" not in out.lower() and \
        "fail" not in out.lower() and "can't" not in out.lower()
    if check and not ok:
        fail("qemu-io %s: %s" % (cmds, out))
    return ok, out


def opt(o, data=b""):
    return struct.pack("!QII", OPTS_MAGIC, o, len(data)) + data


def raw_session(port, send):
    """Greeting, client flags, then send; returns the option reply types
    seen until the server closes (or a second of silence)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    greet = b""
    while len(greet) < 18:
        greet += s.recv(18 - len(greet))
    s.sendall(struct.pack("!I", 1) + send)
    buf, types, closed = b"", [], False
    s.settimeout(1.0)
    try:
        while True:
            x = s.recv(4096)
            if not x:
                closed = True
                break
            buf += x
    except socket.timeout:
        pass
    except OSError:
        closed = True
    s.close()
    while len(buf) >= 20:
        magic, _, rtype, ln = struct.unpack("!QIII", buf[:20])
        if magic != REP_MAGIC:
            fail("bad reply magic")
        types.append(rtype)
        buf = buf[20 + ln:]
    return types, closed


def serve(colo, d, tag, extra, role=("serve",)):
    port = free_port()
    log = open("%s/%s.log" % (d, tag), "w")
    p = subprocess.Popen([colo, "blk"] + list(role) +
                         ["--image", d + "/img",
                          "--export", "tcp-listen:127.0.0.1:%d" % port,
                          "--export", "unix-listen:%s/%s.sock" % (d, tag)]
                         + extra, stdout=log, stderr=log)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, port
        except OSError:
            time.sleep(0.05)
    fail("colo blk serve did not start")


def main():
    colo, mkcreds = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    d = tempfile.mkdtemp(prefix="colo-tls-nbd-")
    procs = []
    try:
        for args in (["ca", d + "/ca"], ["ca", d + "/ca2"],
                     ["host", d + "/ca", d + "/srv", "nbdhost"],
                     ["host", d + "/ca", d + "/cli", "qclient"],
                     ["host", d + "/ca", d + "/mallory", "mallory"],
                     ["host", d + "/ca2", d + "/evil", "qclient"]):
            subprocess.run([mkcreds] + args, check=True)
        with open(d + "/img", "wb") as f:
            f.truncate(SIZE)
        p, port = serve(colo, d, "a", ["--tls-creds", d + "/srv"])
        procs.append(p)

        # 1. QEMU's client over TLS.
        qemu_io(port, d + "/cli", "nbdhost", "write -P 0x5a 65536 131072",
                "read -P 0x5a 65536 131072")
        r = subprocess.run(
            ["qemu-img", "convert", "--object",
             "tls-creds-x509,id=tls0,dir=%s/cli,endpoint=client" % d,
             "--image-opts", "driver=nbd,host=127.0.0.1,port=%d,"
             "tls-creds=tls0,tls-hostname=nbdhost" % port,
             "-O", "raw", d + "/copy"], capture_output=True, text=True,
            timeout=60)
        if r.returncode:
            fail("qemu-img convert over TLS: " + r.stderr)
        with open(d + "/img", "rb") as a, open(d + "/copy", "rb") as b:
            img = a.read()
            if img != b.read() or img[65536:65537] != b"\x5a":
                fail("the image read over TLS differs")
        print("ok: qemu-io and qemu-img over TLS (STARTTLS): written, "
              "read back, whole image equal", flush=True)

        # 2. Plain clients.
        ok, out = qemu_io(port, None, None, "write -P 0x66 0 4096",
                          check=False)
        if ok or "TLS" not in out:
            fail("plain qemu-io was not refused: " + out)
        print("ok: plain qemu-io refused: %s" % out.strip().splitlines()[0],
              flush=True)
        types, _ = raw_session(port, opt(7, struct.pack("!IH", 0, 0)))
        if types != [ERR_TLS_REQD]:
            fail("GO before STARTTLS: replies %r" % types)
        types, closed = raw_session(port, opt(1, b""))
        if types or not closed:
            fail("EXPORT_NAME before STARTTLS: %r closed=%s"
                 % (types, closed))
        types, closed = raw_session(
            port, opt(5) + opt(7, struct.pack("!IH", 0, 0)))
        if not closed or types != [1]:
            fail("STARTTLS with pipelined bytes: %r closed=%s"
                 % (types, closed))
        types, _ = raw_session(port, opt(5, b"x"))
        if types != [ERR_INVALID]:
            fail("STARTTLS with data: %r" % types)
        with open(d + "/img", "rb") as f:
            if f.read(4096) != bytes(4096):
                fail("a plain client changed the image")
        print("ok: GO before STARTTLS -> ERR_TLS_REQD; EXPORT_NAME and "
              "pipelined STARTTLS closed; STARTTLS with data -> "
              "ERR_INVALID", flush=True)

        # 3. Wrong certificates.
        ok, out = qemu_io(port, d + "/evil", "nbdhost", "read 0 512",
                          check=False)
        if ok:
            fail("a client of another CA was served")
        print("ok: a certificate of another CA refused", flush=True)
        p2, port2 = serve(colo, d, "b", ["--tls-creds", d + "/srv",
                                         "--tls-peer", "qclient"])
        procs.append(p2)
        qemu_io(port2, d + "/cli", "nbdhost", "read -P 0x5a 65536 4096")
        ok, out = qemu_io(port2, d + "/mallory", "nbdhost", "read 0 512",
                          check=False)
        if ok:
            fail("--tls-peer qclient served mallory")
        print("ok: with --tls-peer, only that host's certificate is served",
              flush=True)
        # The replicating roles' exports: a secondary (no primary yet).
        p3, port3 = serve(colo, d, "c", [
            "--listen", "127.0.0.1:%d" % free_port(), "--tls-creds",
            d + "/srv", "--tls-peer", "primhost", "--export-tls-peer",
            "qclient"], role=("secondary",))
        procs.append(p3)
        qemu_io(port3, d + "/cli", "nbdhost", "read -P 0x5a 65536 4096")
        ok, out = qemu_io(port3, d + "/mallory", "nbdhost", "read 0 512",
                          check=False)
        if ok:
            fail("colo blk secondary --export-tls-peer qclient served "
                 "mallory")
        print("ok: colo blk secondary --export-tls-peer: only that host's "
              "certificate is served", flush=True)

        # 4. UNIX: TLS offered, not required.
        r = subprocess.run(["qemu-io", "-f", "raw",
                            "nbd+unix:///?socket=%s/a.sock" % d, "-c",
                            "read -P 0x5a 65536 4096"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode or "fail" in (r.stdout + r.stderr).lower():
            fail("plain client on the UNIX export: " + r.stdout + r.stderr)
        print("ok: the UNIX export serves a plain client", flush=True)

        # 5. Safe default.
        r = subprocess.run([colo, "blk", "serve", "--image", d + "/img",
                            "--export", "tcp-listen:0.0.0.0:%d" % free_port()],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 1 or "not a loopback" not in r.stderr:
            fail("TCP export off loopback without TLS: %d %s"
                 % (r.returncode, r.stderr))
        print("ok: TCP export off loopback without --tls-creds refused",
              flush=True)
    except BaseException:
        for tag in ("a", "b", "c"):
            try:
                with open("%s/%s.log" % (d, tag)) as f:
                    sys.stdout.write("--- %s:\n%s" % (tag, f.read()))
            except OSError:
                pass
        raise
    finally:
        bad = []
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    if p.wait(10) != 0:
                        bad.append(p.args[0])
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    bad.append(p.args[0])
        if bad and sys.exc_info()[0] is None:
            subprocess.run(["rm", "-rf", d])
            fail("colo blk serve did not exit cleanly on SIGTERM")
        subprocess.run(["rm", "-rf", d])
    print("nbd_tls passed")


if __name__ == "__main__":
    main()
