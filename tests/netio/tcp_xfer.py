#!/usr/bin/env python3
"""tcp_xfer.py - a TCP transfer for the netio tests and bench.

  tcp_xfer.py recv PORT            -> prints "<bytes> <sha256>" when done
  tcp_xfer.py send HOST PORT BYTES -> sends BYTES pseudo-random bytes,
                                      prints "<bytes> <sha256> <Gbit/s>"
  --nohash skips hashing (benchmark).
"""
import hashlib
import socket
import sys
import time


def main():
    args = [a for a in sys.argv[1:] if a != '--nohash']
    hashing = '--nohash' not in sys.argv
    h = hashlib.sha256()
    if args[0] == 'recv':
        ls = socket.socket(socket.AF_INET6 if ':' in args[1] else socket.AF_INET)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(('', int(args[1])))
        ls.listen(1)
        print('listening', flush=True)
        c, _ = ls.accept()
        buf = bytearray(1 << 20)
        mv = memoryview(buf)
        total = 0
        t0 = time.monotonic()
        while True:
            n = c.recv_into(buf)
            if not n:
                break
            total += n
            if hashing:
                h.update(mv[:n])
        dt = time.monotonic() - t0
        print(total, h.hexdigest() if hashing else '-',
              '%.2f' % (total * 8 / dt / 1e9), flush=True)
        return
    host, port, nbytes = args[1], int(args[2]), int(args[3])
    chunk = bytearray(1 << 20)
    seed = hashlib.sha256(b'colo').digest()
    for i in range(0, len(chunk), 32):
        seed = hashlib.sha256(seed).digest()
        chunk[i:i + 32] = seed
    s = socket.create_connection((host, port))
    sent = 0
    t0 = time.monotonic()
    while sent < nbytes:
        n = min(len(chunk), nbytes - sent)
        # vary the data per chunk so reordering or repeats change the hash
        chunk[0:8] = sent.to_bytes(8, 'big')
        if hashing:
            h.update(chunk[:n])
        s.sendall(memoryview(chunk)[:n])
        sent += n
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    dt = time.monotonic() - t0
    s.close()
    print(sent, h.hexdigest() if hashing else '-',
          '%.2f' % (sent * 8 / dt / 1e9), flush=True)


if __name__ == '__main__':
    main()
