#!/usr/bin/env python3
"""vm_rejoin_dial_test.py - a secondary's rejoin tries do not stall its
event loop.

    vm_rejoin_dial_test.py COLO_BINARY

A protected pair loses its primary (SIGKILL); where the primary listened,
a listener whose accept queue is kept full now drops every SYN, so each
rejoin try's connect waits for its whole step bound (2 s). While one try
is in flight the secondary's control socket must answer, several times
for the same try (status says rejoin_connecting), and a failover asked
then must be served at once and end the tries. A connect that blocked the
loop (the old poll()) answers nothing while it waits: no reply could ever
say rejoin_connecting. Counted ordering, no timing target.
"""
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vmpair  # noqa: E402


def black_hole(port):
    """A listener on port whose accept queue is full: the kernel drops
    further SYNs (no RST), like a host that drops packets. Returns its
    sockets (to close) once a probe connect is seen to hang."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(0)
    socks = [ls]
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(f)
    time.sleep(0.2)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        raise AssertionError("the black hole answered a SYN")
    except socket.timeout:
        pass
    finally:
        probe.close()
    return socks


def main():
    colo = os.path.abspath(sys.argv[1])
    t0 = time.monotonic()
    pair = vmpair.Pair(colo)
    hole = []
    try:
        pair.wait_protected()
        pair.kill("primary")
        hole = black_hole(pair.port)
        # Replies seen while a connect was in flight, per try.
        during = {}
        st = {}

        def in_flight():
            nonlocal st
            st = pair.status("secondary")
            if st.get("rejoin_connecting"):
                k = st["rejoin_tries"]
                during[k] = during.get(k, 0) + 1
                return during[k] >= 3
            return False
        vmpair.wait_for(in_flight, 60, "three answers during one rejoin "
                        "connect")
        print("secondary answered %d times during rejoin try %d "
              "(mode %s)" % (max(during.values()), st["rejoin_tries"],
                             st["mode"]))
        tries = st["rejoin_tries"]
        r = pair.ctl("secondary", "failover")
        assert r.get("ok"), r
        st = pair.status("secondary")
        assert st["mode"] == "failover" and not st["rejoin_connecting"], st
        time.sleep(3)  # longer than a try and the pause between two
        st = pair.status("secondary")
        assert st["rejoin_tries"] == tries, st
        print("failover served during the connect; no try since (%d)"
              % tries)
    finally:
        for s in hole:
            s.close()
        pair.close()
    print("rejoin_dial passed in %.1f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
