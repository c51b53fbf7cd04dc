"""cluster_fastfail.py - the failover path of `colo up` does not block.
cluster.py runs these scenarios (its main) like its own.

vm_failover_busy: the secondary's colo vm cannot answer (SIGSTOP) when
the primary dies. The supervisor takes over, fails its proxy over, and
asks colo vm for its failover on its event loop: while one question is in
flight it goes on renewing the lease (several renewals, seen in its state
file, during the same question). A blocking question (the old 1 s
request) renews nothing while it waits. Once colo vm runs again it
confirms, and the VM serves alone. Counted ordering, no timing target:
only the first questions count (colo vm's listen queue holds 8; after
that a question to the stopped daemon fails at once).
"""
import os
import signal
import time

import cluster as cl
import cluster_vm as cv


def t_vm_failover_busy(c):
    c.start_pair("a")
    cv.wait_vm_protected(c, "a", "b")
    cv.forced_checkpoint(c, "a", "b")
    pid = cv.daemon_pid(c, "shost", "secondary")
    cl.check(pid is not None, "b's colo vm found (pid %s)" % pid)
    c.fault("b's colo vm stopped")
    os.kill(pid, signal.SIGSTOP)
    try:
        cl.fail_primary(c, "a")
        # lease deadlines written while one question was in flight
        seen = {}

        def renewals():
            st = c.state("b")
            q = st.get("vm_failover_asking", 0)
            # colo vm's listen queue (8) takes the first questions; once
            # it is full a question fails at once and proves nothing
            if q > 3:
                raise RuntimeError("no 3 renewals during one of the first "
                                   "3 questions: %s" % seen)
            if q:
                seen.setdefault(q, set()).add(st.get("lease_deadline_ns"))
                return len(seen[q]) >= 3
            return False
        c.wait("three lease renewals during one question to colo vm",
               renewals, timeout=60, step=0.02)
        cl.check(True, "b renewed its lease %d times while asking its "
                 "stopped colo vm (question %d)"
                 % (max(len(v) for v in seen.values()),
                    max(seen, key=lambda k: len(seen[k]))))
    finally:
        os.kill(pid, signal.SIGCONT)
    c.wait("b's VM failed over", lambda: cv.vm_mode(c, "b") == "failover",
           timeout=60)
    c.wait("b's supervisor heard it",
           lambda: c.state("b").get("vm_failover_asking") == 0, timeout=30)
    time.sleep(0.5)
    cl.check(c.state("b").get("role") == "primary",
             "b primary, its VM failed over after colo vm resumed")


TESTS = {"vm_failover_busy": (t_vm_failover_busy, None)}
