#!/usr/bin/env python3
"""Services run in both guests, and the client loads that drive them.

Servers (run in each guest; byte-for-byte deterministic unless noted):
  svc.py bulk-server PORT   "SEND n\\n": n pattern bytes, then close;
                            "RECV n\\n": read n bytes, reply "OK n CRC\\n"
                            (CRC only with "RECV n crc").
  svc.py echo-server PORT   echoes every byte back.
  svc.py ndet-server PORT   per line: answers with the time and a random
                            number (deliberately nondeterministic).
Clients (run in the client namespace; print one JSON line):
  svc.py bulk-get HOST PORT BYTES [--crc] [--progress]
  svc.py bulk-put HOST PORT BYTES [--crc]
  svc.py echo HOST PORT COUNT [SIZE]          latency p50/p99 in us
  svc.py ndet HOST PORT COUNT
  svc.py stall HOST PORT BYTES MARKFILE       bulk-get, recording the longest
                            gap between received bytes after MARKFILE appears.
"""
import json
import os
import random
import socket
import sys
import threading
import time
import zlib

BLOCK = 1 << 20
PATTERN = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(BLOCK))


def pattern_crc(n):
    crc, left = 0, n
    while left:
        k = min(left, BLOCK)
        crc = zlib.crc32(PATTERN[:k] if k < BLOCK else PATTERN, crc)
        left -= k
    return crc


def recv_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            break
        buf += c
    return buf.decode(errors="replace").strip()


def serve(port, handler):
    ls = socket.socket(socket.AF_INET6 if ":" in os.environ.get("SVC_BIND", "") else socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((os.environ.get("SVC_BIND", "0.0.0.0"), port))
    ls.listen(64)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()


def bulk_handler(c):
    try:
        words = recv_line(c).split()
        if len(words) >= 2 and words[0] == "SEND":
            left = int(words[1])
            mv = memoryview(PATTERN)
            while left:
                k = min(left, BLOCK)
                c.sendall(mv[:k])
                left -= k
        elif len(words) >= 2 and words[0] == "RECV":
            left, crc = int(words[1]), 0
            want_crc = "crc" in words[2:]
            buf = bytearray(BLOCK)
            mv = memoryview(buf)
            while left:
                n = c.recv_into(mv, min(left, BLOCK))
                if not n:
                    break
                if want_crc:
                    crc = zlib.crc32(mv[:n], crc)
                left -= n
            c.sendall(b"OK %d %08x\n" % (int(words[1]) - left, crc))
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()


def echo_handler(c):
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    c.close()


def ndet_handler(c):
    try:
        f = c.makefile("rb")
        for _ in f:
            c.sendall(b"%d %d\n" % (time.time_ns(), random.getrandbits(48)))
    except OSError:
        pass
    c.close()


def connect(host, port):
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def bulk_get(host, port, n, crc=False, progress=False, markfile=None):
    s = connect(host, port)
    s.sendall(b"SEND %d\n" % n)
    buf = bytearray(BLOCK)
    mv = memoryview(buf)
    got, c, t0 = 0, 0, time.monotonic()
    last = t0
    stall, marked, last_print = 0.0, None, t0
    while got < n:
        k = s.recv_into(mv, BLOCK)
        if not k:
            break
        now = time.monotonic()
        if markfile and marked is None and os.path.exists(markfile):
            marked = now
            last = max(last, now)
        if marked is not None:
            stall = max(stall, now - max(last, marked))
        last = now
        if crc:
            c = zlib.crc32(mv[:k], c)
        got += k
        if progress and now - last_print >= 0.5:
            last_print = now
            print(json.dumps({"progress": got}), flush=True)
    dt = time.monotonic() - t0
    out = {"bytes": got, "want": n, "secs": round(dt, 4),
           "gbit": round(got * 8 / dt / 1e9, 3) if dt else 0}
    if crc:
        out["crc_ok"] = got == n and c == pattern_crc(n)
    if markfile:
        out["stall_ms"] = round(stall * 1000, 1) if marked else None
    s.close()
    return out


def bulk_put(host, port, n, crc=False):
    s = connect(host, port)
    s.sendall(b"RECV %d%s\n" % (n, b" crc" if crc else b""))
    t0 = time.monotonic()
    left = n
    mv = memoryview(PATTERN)
    while left:
        k = min(left, BLOCK)
        s.sendall(mv[:k])
        left -= k
    reply = recv_line(s).split()
    dt = time.monotonic() - t0
    out = {"bytes": n, "secs": round(dt, 4),
           "gbit": round(n * 8 / dt / 1e9, 3),
           "reply_ok": len(reply) == 3 and reply[0] == "OK" and int(reply[1]) == n}
    if crc:
        out["crc_ok"] = out["reply_ok"] and int(reply[2], 16) == pattern_crc(n)
    s.close()
    return out


def echo(host, port, count, size=64):
    s = connect(host, port)
    msg = bytes(i & 0xFF for i in range(size))
    lat = []
    ok = True
    for _ in range(count):
        t = time.perf_counter()
        s.sendall(msg)
        got = b""
        while len(got) < size:
            d = s.recv(size - len(got))
            if not d:
                break
            got += d
        lat.append(time.perf_counter() - t)
        ok = ok and got == msg
    s.close()
    lat.sort()
    return {"count": count, "ok": ok,
            "p50_us": round(lat[len(lat) // 2] * 1e6, 1),
            "p99_us": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6, 1)}


def ndet(host, port, count):
    s = connect(host, port)
    f = s.makefile("rb")
    ok = 0
    for _ in range(count):
        s.sendall(b"t\n")
        if f.readline():
            ok += 1
        time.sleep(0.05)
    s.close()
    return {"answers": ok}


def main(a):
    cmd = a[0]
    if cmd == "bulk-server":
        serve(int(a[1]), bulk_handler)
    elif cmd == "echo-server":
        serve(int(a[1]), echo_handler)
    elif cmd == "ndet-server":
        serve(int(a[1]), ndet_handler)
    elif cmd == "bulk-get":
        print(json.dumps(bulk_get(a[1], int(a[2]), int(a[3]), "--crc" in a,
                                  "--progress" in a)), flush=True)
    elif cmd == "bulk-put":
        print(json.dumps(bulk_put(a[1], int(a[2]), int(a[3]), "--crc" in a)))
    elif cmd == "echo":
        print(json.dumps(echo(a[1], int(a[2]), int(a[3]),
                              int(a[4]) if len(a) > 4 else 64)))
    elif cmd == "ndet":
        print(json.dumps(ndet(a[1], int(a[2]), int(a[3]))))
    elif cmd == "stall":
        print(json.dumps(bulk_get(a[1], int(a[2]), int(a[3]), True, False,
                                  a[4])), flush=True)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
