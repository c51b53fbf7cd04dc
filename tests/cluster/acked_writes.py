"""acked_writes.py - the client's continuous disk writer of the netns
failure scenarios, and the check that no acknowledged write is lost.

A namespace guest has no disk of its own, so the client plays the
guest's disk: one long-lived process writes numbered 4 KiB blocks (block
n at offset n * 4 KiB, its content derived from n) through the serving
host's colo blk export, one write in flight at a time, about 20 a
second, and prints each send and each acknowledgment (the NBD reply)
with its CLOCK_MONOTONIC time. The scenario tells it on stdin which host
serves ("switch HOST" after a takeover, "stop" at the end). A write in
flight on the old host is kept waiting: a frozen or isolated primary may
still acknowledge it, which the check counts but forgives (its proxy's
lease gate holds every output it makes after the fault).

    python3 acked_writes.py RUN_DIR HOST     (the writer itself)

Only the standard library: the writer runs beside the test, not inside
it, and a tiny NBD client (fixed newstyle, simple replies) is all it
needs.
"""
import hashlib
import os
import select
import socket
import struct
import sys
import time

BLOCK = 4096
PERIOD_S = 0.05  # the writer's pace: one write every 50 ms at most
MAX_BLOCKS = 4096  # 16 MiB of 4 KiB blocks: no block is written twice

NBD_MAGIC = b"NBDMAGIC"
IHAVEOPT = 0x49484156454F5054
OPT_EXPORT_NAME = 1
FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2
REQ_MAGIC = 0x25609513
REPLY_MAGIC = 0x67446698
CMD_READ, CMD_WRITE, CMD_DISC = 0, 1, 2


def block(n):
    """Block n's content: its number in clear, then SHA-256 of it over
    the rest, so a block read back names the write it came from."""
    head = b"colo-ack %010d\n" % n
    body = hashlib.sha256(head).digest() * (BLOCK // 32)
    return head + body[len(head):]


def recv_all(s, n):
    buf = bytearray()
    while len(buf) < n:
        got = s.recv(n - len(buf))
        if not got:
            raise OSError("NBD server closed the connection")
        buf += got
    return bytes(buf)


class Nbd:
    """An NBD client over blk's Unix export: the handshake, then simple
    requests (the server offers structured replies only on request)."""

    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(timeout)
        self.s.connect(path)
        hello = recv_all(self.s, 18)
        magic, opt, flags = struct.unpack(">8sQH", hello)
        if magic != NBD_MAGIC or opt != IHAVEOPT:
            raise OSError("not a newstyle NBD server")
        mine = FLAG_FIXED_NEWSTYLE | (flags & FLAG_NO_ZEROES)
        self.s.sendall(struct.pack(">I", mine) +
                       struct.pack(">QII", IHAVEOPT, OPT_EXPORT_NAME, 0))
        self.size, _ = struct.unpack(">QH", recv_all(self.s, 10))
        if not mine & FLAG_NO_ZEROES:
            recv_all(self.s, 124)
        self.handle = 0

    def send(self, cmd, offset, length, data=b""):
        self.handle += 1
        self.s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, cmd, self.handle,
                                   offset, length) + data)
        return self.handle

    def reply(self, length=0):
        """The next simple reply: (error, data)."""
        magic, err, _ = struct.unpack(">IIQ", recv_all(self.s, 16))
        if magic != REPLY_MAGIC:
            raise OSError("bad NBD reply magic %#x" % magic)
        return err, (recv_all(self.s, length) if length and not err else b"")

    def read(self, offset, length):
        self.send(CMD_READ, offset, length)
        err, data = self.reply(length)
        if err:
            raise OSError("NBD read error %d" % err)
        return data

    def close(self):
        try:
            self.send(CMD_DISC, 0, 0)
        except OSError:
            pass
        self.s.close()


def writer(run_dir, host):
    """The writer's loop (see the file's comment): prints "send N HOST T",
    "ack N HOST T" and "err N HOST ERRNO" lines, "lost HOST" when a
    connection breaks, and "done" at "stop"."""
    def out(*words):
        print(*words, flush=True)

    conns = {}  # host -> [Nbd, (n in flight) or None]

    def connect(h):
        try:
            conns[h] = [Nbd(os.path.join(run_dir, h + "-disk.sock")), None]
        except OSError as e:
            out("noconn", h, repr(e).replace(" ", "_"))

    connect(host)
    n, due, lines = 0, time.monotonic(), b""
    while True:
        cur = conns.get(host)
        if cur and cur[1] is None and n < MAX_BLOCKS and \
                time.monotonic() >= due:
            try:
                cur[0].send(CMD_WRITE, n * BLOCK, BLOCK, block(n))
                out("send", n, host, time.monotonic())
                cur[1] = n
                n += 1
                due = time.monotonic() + PERIOD_S
            except OSError:
                out("lost", host)
                del conns[host]
        waiting = {c[0].s: h for h, c in conns.items() if c[1] is not None}
        wait = max(0.0, due - time.monotonic())
        if host not in conns:
            wait = 0.2  # retried below: the new host's export may be late
        r = select.select([0] + list(waiting), [], [], wait)[0]
        for s in r:
            if s == 0:  # whole lines, however the pipe delivers them
                got = os.read(0, 4096)
                lines += got
                while b"\n" in lines or not got:
                    line, _, lines = lines.partition(b"\n")
                    word = line.split()
                    if not got or word[:1] == [b"stop"]:
                        out("done")
                        return
                    if word[:1] == [b"switch"]:
                        host = word[1].decode()
                continue
            h = waiting[s]
            c = conns[h]
            try:
                err, _ = c[0].reply()
                t = time.monotonic()
                if err:
                    out("err", c[1], h, err)
                else:
                    out("ack", c[1], h, t)
                c[1] = None
            except OSError:
                out("lost", h)
                del conns[h]
        if host not in conns:
            connect(host)


if __name__ == "__main__":
    writer(sys.argv[1], sys.argv[2])
