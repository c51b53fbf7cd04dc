#!/usr/bin/env python3
"""A service whose stream never repeats itself, and a slow client for it.

tests/e2e/svc.py's bulk pattern repeats every 64 KiB, so a capture begun
in the middle of it cannot tell which repetition it sees (colo analyze
rightly calls it ambiguous). Inferring an offset from the data needs a
stream that does not repeat: this one serves seeded pseudo-random bytes,
the same in both guests.

  capture_svc.py rand-server PORT          "SEND n\\n": n seeded random bytes
  capture_svc.py slow-get HOST PORT BYTES SECS
                          "SEND BYTES", then read them spread over about
                          SECS seconds (works with svc.py bulk-server
                          too); prints one JSON line
  capture_svc.py ndet-each HOST PORT COUNT
                          COUNT questions to svc.py's ndet-server, each on
                          a connection of its own (after the first
                          different answer the guests' streams differ in
                          length, so later answers on the same connection
                          would not line up); prints one JSON line
"""
import json
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))
import svc  # noqa: E402  (the e2e services: serve(), recv_line())


def rand_handler(c):
    try:
        words = svc.recv_line(c).split()
        if len(words) >= 2 and words[0] == "SEND":
            n = int(words[1])
            c.sendall(random.Random(n).randbytes(n))
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()


def slow_get(host, port, n, secs):
    s = socket.create_connection((host, port), timeout=30)
    s.sendall(b"SEND %d\n" % n)
    got, t0, chunk = 0, time.monotonic(), 32768
    while got < n:
        d = s.recv(chunk)
        if not d:
            break
        got += len(d)
        ahead = t0 + secs * got / n - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    s.close()
    return {"bytes": got, "want": n}


def ndet_each(host, port, count):
    answers = 0
    for _ in range(count):
        s = socket.create_connection((host, port), timeout=20)
        s.sendall(b"t\n")
        if svc.recv_line(s):
            answers += 1
        s.close()
        time.sleep(0.3)
    return {"answers": answers}


def main(a):
    if a[0] == "rand-server":
        svc.serve(int(a[1]), rand_handler)
    elif a[0] == "slow-get":
        print(json.dumps(slow_get(a[1], int(a[2]), int(a[3]), float(a[4]))),
              flush=True)
    elif a[0] == "ndet-each":
        print(json.dumps(ndet_each(a[1], int(a[2]), int(a[3]))), flush=True)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
