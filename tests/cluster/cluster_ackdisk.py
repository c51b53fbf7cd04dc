"""cluster_ackdisk.py - issue 9's "no acknowledged disk write lost" in
the netns failure scenarios (cluster.py 1-6): each gets a replicated
disk ([guest] disk, colo blk on each host) and the client's continuous
writer (acked_writes.py). At the end, the host that serves must read
back, with its own content,

  - every write acknowledged before the fault (c.fault()), and
  - every write it acknowledged itself.

Writes that another host (frozen, isolated, deposed) acknowledged after
the fault never reached the client (that host's proxy holds its output
once its lease lapses) and are counted, not failed; a write in flight at
the fault may be either. Blocks read back must each be zero (never
written) or their own content: anything else is corruption.
"""
import hashlib
import os
import subprocess
import threading
import time

import acked_writes as aw
import cluster as cl
import cluster_disk as cd
import cluster_vm as cv

# the netns scenarios that get the disk and the writer
SCENARIOS = ("primary_dies", "link_cut", "link_cut_b_primary",
             "secondary_dies", "witness_dies", "primary_isolated",
             "primary_frozen")


class Writer:
    """The writer process (acked_writes.py) and what it printed so far,
    gathered by a thread: sends and acks as {n: (host, t)}."""

    def __init__(self, c, host):
        self.c = c
        self.sent, self.acked, self.errors, self.lost = {}, {}, [], []
        self.p = subprocess.Popen(
            [cl.PY, os.path.join(cl.HERE, "acked_writes.py"), c.run_dir,
             host], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            start_new_session=True)
        c.procs["acked-writer"] = self.p  # the teardown kills it
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            w = line.split()
            if w[:1] == ["send"]:
                self.sent[int(w[1])] = (w[2], float(w[3]))
            elif w[:1] == ["ack"]:
                self.acked[int(w[1])] = (w[2], float(w[3]))
            elif w[:1] == ["err"]:
                self.errors.append(line.strip())
            elif w[:1] == ["lost"]:
                self.lost.append(w[1])

    def blocks(self):
        """How many blocks the writer may have written (from block 0)."""
        return max(list(self.sent) + [-1]) + 1

    def longest_wait(self, since):
        """The longest time from since on that the client waited with
        no write acknowledged (the disk's stall across the fault)."""
        ts = sorted(t for _, t in self.acked.values() if t >= since)
        ts = [since] + ts
        return max(b - a for a, b in zip(ts, ts[1:])) if ts[1:] else 0.0

    def acks_by(self, host, since=0.0):
        return sum(1 for h, t in list(self.acked.values())
                   if h == host and t >= since)

    def wait_acks(self, host, k, since=0.0, timeout=60):
        """Until host acknowledged k writes sent after since."""
        self.c.wait("%d writes acknowledged by %s" % (k, host),
                    lambda: self.acks_by(host, since) >= k, timeout=timeout,
                    step=0.1)

    def switch(self, host):
        self.p.stdin.write("switch %s\n" % host)
        self.p.stdin.flush()

    def stop(self):
        """Ends the writer (once; a second call does nothing)."""
        if self.p.poll() is not None:
            return
        self.p.stdin.write("stop\n")
        self.p.stdin.flush()
        self.p.wait(timeout=30)
        self.t.join(timeout=10)
        self.c.procs.pop("acked-writer", None)


def start(c, prim):
    """The disk protected, then the writer on prim's export, a few writes
    acknowledged before the scenario injects its fault."""
    c.wait("%s's blk protected" % prim,
           lambda: cd.blk_state(c, prim).get("state") == "protected",
           timeout=60)
    w = Writer(c, prim)
    w.wait_acks(prim, 10)
    return w


def export_blocks(c, n, count):
    """The first count blocks of host n's disk export."""
    nbd = aw.Nbd(os.path.join(c.run_dir, n + "-disk.sock"))
    try:
        return nbd.read(0, count * aw.BLOCK)
    finally:
        nbd.close()


def image_blocks(c, n, count):
    """The first count blocks of host n's image file itself (a secondary's
    export shows its guest's view, not what the primary wrote)."""
    r = subprocess.run(c.at(n) + ["head", "-c", str(count * aw.BLOCK),
                                  cv.DISK], capture_output=True, timeout=60)
    return r.stdout


def image_digest(c, n):
    r = subprocess.run(c.at(n) + ["cat", cv.DISK], capture_output=True,
                       timeout=60)
    return hashlib.sha256(r.stdout).hexdigest()


def check(c, w, survivor, name, data=None, where=None):
    """The end of a scenario: stops the writer, reads survivor's export
    (or data, already read from where) and returns the acknowledged
    writes lost, after logging and checking what was found. Called again
    later, it checks the same writes again."""
    w.stop()
    t_fault = getattr(c, "t_fault", float("inf"))
    count = w.blocks()
    if data is None:
        data = export_blocks(c, survivor, count)
    where = where or survivor + "'s export"
    must, forgiven, lost, corrupt = 0, [], [], []
    for n in range(count):
        got = data[n * aw.BLOCK:(n + 1) * aw.BLOCK]
        mine = got == aw.block(n)
        if not mine and got.count(0) != len(got):
            corrupt.append(n)
        if n not in w.acked:
            continue
        host, t = w.acked[n]
        if t < t_fault or host == survivor:
            must += 1
            if not mine:
                lost.append(n)
        elif not mine:
            forgiven.append((n, host))
    stall = w.longest_wait(t_fault)
    inflight = [n for n, (h, t) in w.sent.items()
                if t < t_fault and (n not in w.acked or
                                    w.acked[n][1] >= t_fault)]
    cl.log("%s: %d writes sent, %d acknowledged (%s), %d had to be on %s, "
           "in flight at the fault %s, acknowledged after the fault by "
           "another host and not on %s: %s; errors %s; connections lost "
           "%s; longest wait for an acknowledgment from the fault on: "
           "%.0f ms" % (name, count, len(w.acked),
              ", ".join("%s %d" % (h, w.acks_by(h)) for h in ("a", "b")),
              must, where, inflight, where, forgiven or "none",
              w.errors or "none", w.lost or "none", stall * 1000))
    if lost:
        cl.log("%s: LOST %s" % (name, lost[:20]))
    cl.check(not corrupt, "%s: every block on %s is zero or its own write "
             "(%d corrupt: %s)" % (name, where, len(corrupt), corrupt[:8]))
    cl.check(not w.errors, "%s: no write failed (%s)" % (name, w.errors[:4]))
    return len(lost)


def check_lost(name, lost):
    cl.check(lost == 0, "%s: no acknowledged write lost (%d lost)"
             % (name, lost))


def follow_takeover(c, w, n):
    """n took over: once its blk serves alone, the writer writes there,
    and a few writes are acknowledged by n."""
    c.wait("%s's blk failed over" % n,
           lambda: cd.blk_state(c, n).get("state") == "failed-over",
           timeout=30)
    since = time.monotonic()
    w.switch(n)
    w.wait_acks(n, 10, since=since)


def degraded_check(c, w, n, name):
    """Nothing failed over, n serves on without its secondary: once n's
    blk says so (it waits for the link's timeout), a few more writes, and
    n's export must hold every write it acknowledged."""
    c.wait("%s's blk degraded" % n,
           lambda: cd.blk_state(c, n).get("state") == "degraded",
           timeout=30)
    w.wait_acks(n, 10, since=time.monotonic())
    return check(c, w, n, name)


# blk's link timeout as colo up starts it (colo blk primary --timeout's
# default): a secondary lost by it would stall the writes this long
BLK_TIMEOUT_S = 5.0
DROP_REASON = "dropped: the peer left the group"


def dropped_check(c, w, n, name):
    """The peer left n's quorate group: n's blk gave its secondary up on
    colo up's request (its status says why), not by its link's timeout,
    and the writes went on before that timeout could have fired. Returns
    the longest wait for an acknowledgment since the fault."""
    c.wait("%s's blk degraded" % n,
           lambda: cd.blk_state(c, n).get("state") == "degraded",
           timeout=30)
    st = cd.blk_state(c, n)
    w.wait_acks(n, 10, since=time.monotonic())
    stall = w.longest_wait(c.t_fault)
    cl.log("%s: longest wait for an acknowledgment from the fault on: "
           "%.0f ms" % (name, stall * 1000))
    cl.check(st.get("last_loss") == DROP_REASON and st.get("drops") == 1,
             "%s: %s's blk gave its secondary up because the peer left the "
             "group, not by its link's timeout (last_loss %r, drops %s)"
             % (name, n, st.get("last_loss"), st.get("drops")))
    cl.check(stall < BLK_TIMEOUT_S,
             "%s: writes acknowledged before blk's link timeout (%.0f s) "
             "could have fired" % (name, BLK_TIMEOUT_S))
    return stall


def resynced_check(c, w, prim, sec, name):
    """The link back after dropped_check: prim's blk resynced sec with
    the granules that changed meanwhile only (not the whole image), a
    few more writes replicated, and both disks hold every write that had
    to survive. Returns the writes lost on either."""
    st = cd.blk_state(c, prim)
    size = cv.DISK_BYTES
    cl.check(st.get("state") == "protected" and
             0 < st.get("last_resync_bytes", 0) < size and
             st.get("last_resync_compared", -1) == 0,
             "%s: %s's blk resynced only what changed (%s of %d bytes, "
             "%s compared)" % (name, prim, st.get("last_resync_bytes"), size,
                               st.get("last_resync_compared")))
    w.wait_acks(prim, 10, since=time.monotonic())
    return reprotected_check(c, w, prim, sec, name)


def secondary_check(c, w, name, digest):
    """6: a, the primary, died with nobody to take over: b's image (its
    blk a secondary, which applies a's writes to it) holds every write a
    acknowledged, b's blk did not fail over, and b's image is as it was
    at a's death (digest)."""
    st = cd.blk_state(c, "b")
    cl.check(st.get("role") == "secondary" and
             st.get("state") != "failed-over",
             "%s: b's blk a secondary, not failed over (%s)" % (name, st))
    cl.check(image_digest(c, "b") == digest,
             "%s: b's image unchanged since a's death" % name)
    count = w.blocks()
    data = image_blocks(c, "b", count)
    return check(c, w, "a", name, data=data, where="b's image")


def reprotected_check(c, w, prim, sec, name):
    """After re-protection (sec back as prim's secondary): prim's export
    and sec's image, resynced from it, both hold every write that had
    to survive. Returns the writes lost on either."""
    lost = check(c, w, prim, name + ", re-protected")
    count = w.blocks()
    return lost + check(c, w, prim, name + ", re-protected",
                        data=image_blocks(c, sec, count),
                        where="%s's image" % sec)
