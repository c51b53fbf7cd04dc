#!/usr/bin/env python3
"""`colo blk serve` against real NBD clients.

usage: test_nbd_serve.py COLO_BINARY

Serves a sparse raw image over a UNIX and a TCP socket and drives it with
qemu-io, qemu-img and nbdsh (libnbd), plus a raw-socket client for what
no real client sends (bad magic, unknown options and commands, garbage,
hang-ups mid-handshake). A Python model of the image follows every
write; at the end the image file must equal it byte for byte. Exit 77
(skipped) without the clients.
"""
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

SIZE = 16 * 1024 * 1024
NAME = "disk"
TOOLS = ("qemu-io", "qemu-img", "nbdsh")
NBD_PYTHON = None

NBD_OPTS_MAGIC = 0x49484156454F5054
NBD_REP_MAGIC = 0x3E889045565A9
REQ_MAGIC = 0x25609513
REPLY_MAGIC = 0x67446698
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_GO, OPT_STRUCTURED = 1, 2, 3, 7, 8
REP_ACK, REP_SERVER = 1, 2
ERR_UNSUP, ERR_INVALID, ERR_UNKNOWN = 2**31 + 1, 2**31 + 3, 2**31 + 6
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
EPERM, EINVAL, ENOSPC = 1, 22, 28

failures = []


def check(cond, what):
    if cond:
        print("ok   ", what)
    else:
        print("FAIL ", what)
        failures.append(what)


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, colo, tmp, image, extra=()):
        self.sock = os.path.join(tmp, "nbd.sock")
        self.port = free_port()
        self.log = open(os.path.join(tmp, "server.log"), "a")
        self.proc = subprocess.Popen(
            [colo, "blk", "serve", "--image", image, "--name", NAME,
             "--description", "colo test disk",
             "--export", "unix-listen:" + self.sock,
             "--export", "tcp-listen:127.0.0.1:%d" % self.port, *extra],
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %d" % self.proc.returncode)
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1):
                    pass
                if os.path.exists(self.sock):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def unix_uri(self, name=NAME):
        return "nbd+unix:///%s?socket=%s" % (name, self.sock)

    def tcp_uri(self, name=NAME):
        return "nbd://127.0.0.1:%d/%s" % (self.port, name)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class Model:
    """What the image must hold."""

    def __init__(self):
        self.b = bytearray(SIZE)

    def fill(self, off, n, byte):
        self.b[off:off + n] = bytes([byte]) * n

    def put(self, off, data):
        self.b[off:off + len(data)] = data


def qemu_io(uri, *cmds):
    args = ["qemu-io", "-f", "raw", uri]
    for c in cmds:
        args += ["-c", c]
    return run(args)


def nbd_python():
    """A Python with libnbd's bindings (what nbdsh runs), or None."""
    for py in (sys.executable, "/usr/bin/python3", shutil.which("python3")):
        if py and run([py, "-c", "import nbd"]).returncode == 0:
            return py
    return None


def nbdsh(code):
    # nbdsh is `python3 -m nbd`: run the same snippet with the Python
    # that has the bindings, whatever python3 is first on PATH.
    return run([NBD_PYTHON, "-c", "import nbd\nh = nbd.NBD()\n" + code])


# ---- a raw client, for what real clients never send ----

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def closed_by_server(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return False


def closed_eventually(s):
    """Reads (and drops) replies until the server closes."""
    try:
        while s.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def raw_connect(srv):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(srv.sock)
    greet = recv_exact(s, 18)
    assert greet[:16] == b"NBDMAGICIHAVEOPT", greet
    assert struct.unpack(">H", greet[16:])[0] == 3
    s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
    return s


def send_opt(s, opt, data=b""):
    s.sendall(struct.pack(">QII", NBD_OPTS_MAGIC, opt, len(data)) + data)


def recv_opt_reply(s):
    magic, opt, typ, n = struct.unpack(">QIII", recv_exact(s, 20))
    assert magic == NBD_REP_MAGIC, hex(magic)
    return opt, typ, recv_exact(s, n)


def go_data(name, infos=()):
    n = name.encode()
    return (struct.pack(">I", len(n)) + n + struct.pack(">H", len(infos)) +
            b"".join(struct.pack(">H", i) for i in infos))


def raw_transmit(srv):
    """A connection in the transmission phase, via NBD_OPT_EXPORT_NAME."""
    s = raw_connect(srv)
    send_opt(s, OPT_EXPORT_NAME, NAME.encode())
    size, flags = struct.unpack(">QH", recv_exact(s, 10))
    assert size == SIZE
    return s, flags


def request(typ, cookie, off, n, flags=0, magic=REQ_MAGIC):
    return struct.pack(">IHHQQI", magic, flags, typ, cookie, off, n)


def recv_reply(s, data_len=0):
    magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
    assert magic == REPLY_MAGIC, hex(magic)
    data = recv_exact(s, data_len) if err == 0 and data_len else b""
    return err, cookie, data


def recv_replies(s, n, data_lens):
    """n replies in any order, by cookie; data_lens: cookie -> read length."""
    got = {}
    for _ in range(n):
        magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
        assert magic == REPLY_MAGIC, hex(magic)
        assert cookie not in got, cookie
        k = data_lens.get(cookie, 0)
        got[cookie] = (err, cookie, recv_exact(s, k) if err == 0 and k else b"")
    return got


# ---- the cases ----

def test_qemu_io(srv, model):
    r = qemu_io(srv.unix_uri(), "write -P 0xab 0 1M", "read -P 0xab 0 1M")
    check(r.returncode == 0 and "Pattern verification failed" not in r.stdout,
          "qemu-io unix: write and read back 1 MiB\n" + r.stdout)
    model.fill(0, 1 << 20, 0xAB)

    cmds = ["aio_write -P 0x%02x %d 64k" % (0x10 + i, (1 << 20) + i * 65536)
            for i in range(16)] + ["aio_flush", "flush"]
    cmds += ["read -P 0x%02x %d 64k" % (0x10 + i, (1 << 20) + i * 65536)
             for i in range(16)]
    r = qemu_io(srv.unix_uri(), *cmds)
    check(r.returncode == 0 and "failed" not in r.stdout,
          "qemu-io: 16 pipelined aio writes, flush, read back")
    for i in range(16):
        model.fill((1 << 20) + i * 65536, 65536, 0x10 + i)

    r = qemu_io(srv.unix_uri(), "write -P 0x55 2M 1M", "discard 2M 64k",
                "read -P 0 2M 64k", "write -z 2304k 128k",
                "read -P 0 2304k 128k", "write -z -u 2560k 64k",
                "read -P 0 2560k 64k", "write -f -P 0x66 2688k 4k",
                "read -P 0x55 2692k 4k")
    check(r.returncode == 0 and "failed" not in r.stdout,
          "qemu-io: discard, write -z, write -z -u, FUA write\n" + r.stdout)
    model.fill(2 << 20, 1 << 20, 0x55)
    model.fill(2 << 20, 65536, 0)
    model.fill(2304 << 10, 128 << 10, 0)
    model.fill(2560 << 10, 64 << 10, 0)
    model.fill(2688 << 10, 4096, 0x66)

    # min block size 1: unaligned requests are passed through as they are
    r = qemu_io(srv.tcp_uri(), "write -P 0x77 3145735 1000",
                "read -P 0x77 3145735 1000", "read -P 0 3146735 1")
    check(r.returncode == 0 and "failed" not in r.stdout,
          "qemu-io tcp: unaligned write and read\n" + r.stdout)
    model.fill(3145735, 1000, 0x77)

    r = qemu_io(srv.unix_uri(), "read 15M 2M")
    check(r.returncode != 0, "qemu-io: a read past the end fails")


def test_qemu_img(srv, model, tmp):
    local = os.path.join(tmp, "local.img")
    rnd = random.Random(7)
    data = bytearray(SIZE)
    for off in range(4 << 20, 12 << 20, 65536 * 3):  # holes and data
        data[off:off + 65536] = rnd.randbytes(65536)
    data[:4 << 20] = model.b[:4 << 20]
    with open(local, "wb") as f:
        f.write(data)
    r = run(["qemu-img", "convert", "-n", "-W", "-m", "16", "-f", "raw",
             "-O", "raw", local, srv.tcp_uri()], timeout=120)
    check(r.returncode == 0, "qemu-img convert local -> export (-W -m 16)\n"
          + r.stdout)
    model.put(0, bytes(data))

    r = run(["qemu-img", "compare", "-f", "raw", "-F", "raw", local,
             srv.unix_uri()], timeout=120)
    check(r.returncode == 0, "qemu-img compare local vs export\n" + r.stdout)

    back = os.path.join(tmp, "back.img")
    r = run(["qemu-img", "convert", "-f", "raw", "-O", "raw",
             srv.unix_uri(), back], timeout=120)
    with open(back, "rb") as f:
        same = f.read() == bytes(model.b)
    check(r.returncode == 0 and same, "qemu-img convert export -> file")

    r = run(["qemu-img", "info", "--output=json", srv.unix_uri()])
    check(r.returncode == 0 and '"virtual-size": %d' % SIZE in r.stdout,
          "qemu-img info sees the size")


NBDSH_EDGES = r"""
import errno
h.set_strict_mode(0)        # let bad requests through to the server
h.connect_uri(URI)
assert not h.get_structured_replies_negotiated()
assert h.get_size() == SIZE
assert h.can_flush() and h.can_fua() and h.can_trim() and h.can_zero()
assert h.can_multi_conn()
assert not h.is_read_only()
def fails(f, code):
    try:
        f()
    except nbd.Error as e:
        assert e.errno in (code, errno.errorcode[code]), (e.errno, code)
        return
    raise AssertionError("no error")
fails(lambda: h.pread(4096, SIZE - 100), errno.EINVAL)
fails(lambda: h.pread(1, SIZE), errno.EINVAL)
fails(lambda: h.pwrite(b"x" * 4096, SIZE - 100), errno.ENOSPC)
fails(lambda: h.zero(8192, SIZE - 4096), errno.ENOSPC)
fails(lambda: h.trim(8192, SIZE - 4096), errno.EINVAL)
fails(lambda: h.pread(33 * 1024 * 1024, 0), errno.EINVAL)
assert h.pread(16, SIZE - 16) == bytes(16)     # the connection still works
h.pwrite(b"edge" * 4, SIZE - 16, nbd.CMD_FLAG_FUA)
assert h.pread(16, SIZE - 16) == b"edge" * 4
h.zero(4096, 8 * 1024 * 1024, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(4096, 8 * 1024 * 1024) == bytes(4096)
h.flush()
# many requests in flight on one connection
for i in range(64):
    h.aio_pwrite(bytes([i]) * 4096, 9 * 1024 * 1024 + i * 4096)
while h.aio_in_flight():
    h.poll(-1)
bufs = [nbd.Buffer(4096) for i in range(64)]
for i in range(64):
    h.aio_pread(bufs[i], 9 * 1024 * 1024 + i * 4096)
while h.aio_in_flight():
    h.poll(-1)
assert all(bufs[i].to_bytearray() == bytes([i]) * 4096 for i in range(64))
h.shutdown()
print("OK")
"""

NBDSH_OPTS = r"""
h.set_opt_mode(True)
h.set_full_info(True)
h.connect_uri(URI)
names = []
h.opt_list(lambda name, desc: names.append(name))
assert names == [NAME], names
h.set_export_name("nope")
try:
    h.opt_info()
    raise AssertionError("opt_info on an unknown export")
except nbd.Error:
    pass
h.set_export_name(NAME)
h.opt_info()
assert h.get_size() == SIZE
assert h.get_canonical_export_name() == NAME
assert h.get_export_description() == "colo test disk"
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 32 * 1024 * 1024
assert h.get_block_size(nbd.SIZE_PREFERRED) == 4096
h.opt_go()
assert h.pread(4, SIZE - 16) == b"edge"
h.shutdown()
h2 = nbd.NBD()
h2.set_opt_mode(True)
h2.connect_uri(URI)
h2.opt_abort()
print("OK")
"""

NBDSH_TOO_LONG = r"""
h.set_strict_mode(0)
h.connect_uri(URI)
try:
    h.pwrite(bytes(33 * 1024 * 1024), 0)
except nbd.Error:
    pass
print("OK")
"""


def nbdsh_code(code, uri):
    return ("URI = %r\nSIZE = %d\nNAME = %r\n" % (uri, SIZE, NAME)) + code


def test_nbdsh(srv, model):
    r = nbdsh(nbdsh_code(NBDSH_EDGES, srv.unix_uri()))
    check(r.returncode == 0 and "OK" in r.stdout,
          "nbdsh: out-of-range errors, connection usable, 64 in flight\n"
          + r.stdout)
    model.put(SIZE - 16, b"edge" * 4)
    model.fill(8 << 20, 4096, 0)
    for i in range(64):
        model.fill((9 << 20) + i * 4096, 4096, i)

    r = nbdsh(nbdsh_code(NBDSH_OPTS, srv.tcp_uri()))
    check(r.returncode == 0 and "OK" in r.stdout,
          "nbdsh: LIST, INFO (name, description, block sizes), unknown "
          "export, GO, ABORT\n" + r.stdout)

    r = nbdsh(nbdsh_code(NBDSH_TOO_LONG, srv.unix_uri()))
    check(srv.alive(), "a 33 MiB write closes its connection only")
    r = qemu_io(srv.unix_uri(), "read -P 0x%02x 1M 64k" % 0x10)
    check(r.returncode == 0 and "failed" not in r.stdout,
          "next client is served after the over-long write")


def test_raw_handshake(srv):
    s = raw_connect(srv)
    send_opt(s, 0x77, b"whatever")
    check(recv_opt_reply(s)[:2] == (0x77, ERR_UNSUP), "unknown option: ERR_UNSUP")
    send_opt(s, OPT_STRUCTURED)
    check(recv_opt_reply(s)[:2] == (OPT_STRUCTURED, ERR_UNSUP),
          "structured replies refused")
    send_opt(s, OPT_GO, go_data("wrong"))
    check(recv_opt_reply(s)[:2] == (OPT_GO, ERR_UNKNOWN),
          "GO on a wrong export name: ERR_UNKNOWN")
    send_opt(s, OPT_GO, go_data(NAME)[:-1])
    check(recv_opt_reply(s)[:2] == (OPT_GO, ERR_INVALID),
          "GO with a bad length: ERR_INVALID")
    send_opt(s, OPT_LIST)
    opt, typ, data = recv_opt_reply(s)
    check(typ == REP_SERVER and data == struct.pack(">I", 4) + b"disk",
          "LIST: one export")
    check(recv_opt_reply(s)[1] == REP_ACK, "LIST: ACK")
    send_opt(s, OPT_EXPORT_NAME, b"wrong")
    check(closed_by_server(s), "EXPORT_NAME wrong name: closed")
    s.close()

    s = raw_connect(srv)
    send_opt(s, OPT_ABORT)
    check(recv_opt_reply(s)[:2] == (OPT_ABORT, REP_ACK) and closed_by_server(s),
          "ABORT: ACK and close")
    s.close()

    cases = {
        "garbage instead of client flags": b"\xff" * 64,
        "bad option magic": b"\0\0\0\3" + b"NOTMAGIC" + b"\0" * 8,
        "huge option length": b"\0\0\0\3" + struct.pack(
            ">QII", NBD_OPTS_MAGIC, OPT_GO, 0xFFFFFFF0),
    }
    for what, junk in cases.items():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(srv.sock)
        recv_exact(s, 18)
        s.sendall(junk)
        check(closed_eventually(s), what + ": closed")
        s.close()
    flags = struct.pack(">I", 3)
    partial = (b"", None, flags + b"IHAVE",
               flags + struct.pack(">QII", NBD_OPTS_MAGIC, OPT_GO, 100) + b"x" * 10)
    for p in partial:
        s = socket.socket(socket.AF_UNIX)
        s.connect(srv.sock)
        if p is not None:
            recv_exact(s, 18)
            s.sendall(p)
        s.close()
    check(srv.alive(), "garbage and hang-ups mid-handshake: server alive")


def test_raw_transmission(srv, model):
    s, flags = raw_transmit(srv)
    check(flags & 1 and not flags & 2, "EXPORT_NAME: size and flags")
    # all in one send: pipelined, including errors between good requests
    batch = (request(CMD_READ, 1, 0, 4096) +
             request(CMD_READ, 2, SIZE - 1, 2) +
             request(CMD_WRITE, 3, SIZE - 2, 4) + b"ABCD" +
             request(9, 4, 0, 0) +
             request(CMD_WRITE, 5, 12 << 20, 4, flags=1) + b"WXYZ" +
             request(CMD_READ, 6, 12 << 20, 4, flags=2) +
             request(CMD_READ, 7, 12 << 20, 4) +
             request(CMD_FLUSH, 8, 0, 0) +
             request(CMD_READ, 9, 0, 33 * 1024 * 1024))
    s.sendall(batch)
    # replies may come in any order (matched by cookie); overlapping
    # requests still take effect in order (7 reads what 5 wrote)
    by_cookie = recv_replies(s, 9, {1: 4096, 7: 4})
    got = [by_cookie[c] for c in range(1, 10)]
    check(got[0][:2] == (0, 1) and got[0][2] == bytes(model.b[:4096]),
          "pipelined: read")
    check(got[1][:2] == (EINVAL, 2), "read past the end: EINVAL")
    check(got[2][:2] == (ENOSPC, 3), "write past the end: ENOSPC, payload skipped")
    check(got[3][:2] == (EINVAL, 4), "unknown command: EINVAL")
    check(got[4][:2] == (0, 5), "FUA write")
    check(got[5][:2] == (EINVAL, 6), "read with a bad flag: EINVAL")
    check(got[6] == (0, 7, b"WXYZ"), "read back the FUA write")
    check(got[7][:2] == (0, 8), "flush")
    check(got[8][:2] == (EINVAL, 9), "read over 32 MiB: EINVAL")
    model.put(12 << 20, b"WXYZ")
    s.sendall(request(CMD_DISC, 10, 0, 0))
    check(closed_by_server(s), "DISC closes")
    s.close()

    s, _ = raw_transmit(srv)
    s.sendall(request(CMD_READ, 1, 0, 16, magic=0x12345678))
    check(closed_by_server(s), "bad request magic: closed")
    s.close()

    s, _ = raw_transmit(srv)
    s.sendall(request(CMD_WRITE, 1, 0, 0x7FFFFFFF) + b"x" * 1000)
    check(closed_by_server(s), "write of 2 GiB: closed, not read")
    s.close()

    s, _ = raw_transmit(srv)
    s.sendall(request(CMD_WRITE, 1, 13 << 20, 8))  # payload never comes
    s.close()
    check(srv.alive(), "server alive after every bad client")


def test_read_only(colo, tmp, image, model):
    srv = Server(colo, tmp, image, ["--read-only"])
    try:
        r = qemu_io(srv.unix_uri(), "write -P 0x99 0 4k")
        check(r.returncode != 0 or "failed" in r.stdout,
              "read-only: qemu-io write fails")
        r = run(["qemu-io", "-r", "-f", "raw", srv.unix_uri(),
                 "-c", "read -P 0x%02x 1M 64k" % 0x10])
        check(r.returncode == 0 and "failed" not in r.stdout,
              "read-only: reads work\n" + r.stdout)
        s, flags = raw_transmit(srv)
        check(flags & 2, "read-only: NBD_FLAG_READ_ONLY")
        s.sendall(request(CMD_WRITE, 1, 0, 4) + b"nope" + request(CMD_READ, 2, 0, 4))
        got = recv_replies(s, 2, {2: 4})
        check(got[1][:2] == (EPERM, 1), "read-only: write gets EPERM")
        check(got[2] == (0, 2, bytes(model.b[:4])),
              "read-only: connection usable after EPERM")
        s.close()
    finally:
        check(srv.stop() == 0, "read-only server exits 0 on SIGTERM")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    colo = os.path.abspath(sys.argv[1])
    missing = [t for t in TOOLS if not shutil.which(t)]
    global NBD_PYTHON
    NBD_PYTHON = nbd_python()
    if not NBD_PYTHON:
        missing.append("python3-libnbd")
    if missing:
        print("skipped: %s not installed" % " ".join(missing))
        return 77
    tmp = tempfile.mkdtemp(prefix="colo-nbd-test-")
    image = os.path.join(tmp, "image.raw")
    with open(image, "wb") as f:
        f.truncate(SIZE)
    model = Model()
    srv = Server(colo, tmp, image)
    try:
        test_qemu_io(srv, model)
        test_qemu_img(srv, model, tmp)
        test_nbdsh(srv, model)
        test_raw_handshake(srv)
        test_raw_transmission(srv, model)
        check(srv.alive(), "server still running")
    finally:
        rc = srv.stop()
    check(rc == 0, "server exits 0 on SIGTERM")
    check(not os.path.exists(srv.sock), "UNIX socket file removed at exit")
    with open(image, "rb") as f:
        check(f.read() == bytes(model.b), "image equals the model byte for byte")
    test_read_only(colo, tmp, image, model)
    with open(image, "rb") as f:
        check(f.read() == bytes(model.b), "read-only run changed nothing")
    if failures:
        print("server log:")
        with open(os.path.join(tmp, "server.log")) as f:
            print(f.read()[-4000:])
        print("%d failure(s)" % len(failures))
        return 1
    shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
