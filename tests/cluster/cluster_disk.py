"""cluster_disk.py - `colo up` scenarios with a replicated disk
([guest] disk): colo blk on each host. With a VM guest (vm_disk_*) colo
up runs colo blk before colo vm, whose checkpoints hold the disk too;
with the namespace guests (disk_reprotect) the test writes to the disk
through blk's export itself.

The guest runs its disk loop (contrib/guest/init colo_disk=1: a block
written and read back past the page cache every second, "disk ok N" or
"disk BAD N" on the console) and answers every connection to
DISKACK_PORT with the last write it read back ok. The client polls that
number: what it got was released by the comparer, so both replicas had
it or a checkpoint carried it, and a survivor that answers less has lost
an acknowledged write. Each node's image lives in its private /run, so
a host that comes back has a blank disk, which re-protection fills.
"""
import json
import os
import re
import subprocess
import time

import cluster as cl
import cluster_vm as cv


class DiskAck:
    """The client's poller of the guest's acknowledged write: a new
    connection every second (each one a checkpoint, the replicas'
    numbers differing), each answer kept with its receive time.
    "stop" on its stdin ends it and prints every answer."""

    CODE = r"""
import json, select, socket, sys, time
got = []
while not select.select([sys.stdin], [], [], 1.0)[0]:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])),
                                     timeout=3)
        s.settimeout(5)
        line = s.makefile("rb").readline().decode(errors="replace")
        s.close()
    except OSError:
        continue
    if line.startswith("disk ok "):
        got.append((time.monotonic(), int(line.split()[2])))
print(json.dumps(got), flush=True)
"""

    def __init__(self, c):
        self.p = subprocess.Popen(
            c.ns("client") + [cl.PY, "-c", self.CODE, cl.GUEST,
                              str(cv.DISKACK_PORT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def stop(self):
        out, _ = self.p.communicate("stop\n", timeout=60)
        return json.loads(out.strip().splitlines()[-1])


def writes_lost(answers):
    """How many acknowledged writes the answers show lost: the largest
    drop from a number already received to one received later (0 when
    they never go down)."""
    lost, top = 0, 0
    for _, n in answers:
        lost = max(lost, top - n)
        top = max(top, n)
    return lost


# the counter itself, on answers that went down by 2 and up again
assert writes_lost([(0, 5), (1, 3), (2, 6)]) == 2
assert writes_lost([(0, 1), (1, 1), (2, 4)]) == 0


def make_disk(c, n):
    """Node n's blank image, before its colo up starts blk (start_pair
    makes both hosts')."""
    c.node_run(n, "truncate", "-s", str(cv.DISK_BYTES), cv.DISK)


def console(c, n):
    """The consoles of every VM node n's colo vm has run (qemu-GEN.log
    beside its vm_log, in the node's private /dev/shm): a secondary
    loads a new VM at each checkpoint, so its current one may not have
    checked its disk yet, and what grows is the sum."""
    d = os.path.dirname(cv.vm(c, n)["vm_log"])
    return c.node_run(n, "sh", "-c", "cat %s/qemu-*.log" % d)


def disk_checks(text):
    return re.findall(r"disk (ok|BAD) (\d+)", text)


def check_console(c, n, what, more=2):
    """No "disk BAD" on node n's VM consoles, after more checks than are
    there now (the guest reads its disk back ok now). A secondary's VM
    is replaced at every checkpoint, here every few seconds, and may
    never get through a check under load: for it, more=0."""
    before = len(disk_checks(console(c, n)))
    c.wait("%d more disk checks on %s" % (more, n),
           lambda: len(disk_checks(console(c, n))) >= before + more,
           timeout=90, step=0.5)
    text = console(c, n)
    bad = [x for x in disk_checks(text) if x[0] == "BAD"]
    if bad:
        cl.log("---- %s's console:\n%s" % (n, text[-1500:]))
    cl.check(not bad, "%s: %s's guest reads its disk back as it wrote it "
             "(%d checks, none BAD)" % (what, n, len(disk_checks(text))))


def blk_state(c, n):
    return c.status(n).get("blk", {}) or {}


def blk_failovers(c, n):
    """How many times node n's blk failed over (its log, in colo up's)."""
    with open("%s/up-%s.log" % (c.dir, n), errors="replace") as f:
        return f.read().count("failover done")


def acked_until(c, ack_min, what):
    """Waits until the guest acknowledges a write >= ack_min (polled
    directly, like the client)."""
    def num():
        r = subprocess.run(c.ns("client") + [
            cl.PY, "-c", "import socket,sys;s=socket.create_connection("
            "(sys.argv[1],int(sys.argv[2])),timeout=3);s.settimeout(5);"
            "print(s.makefile().readline())", cl.GUEST,
            str(cv.DISKACK_PORT)], capture_output=True, text=True,
            timeout=20)
        m = re.match(r"disk ok (\d+)", r.stdout)
        return m and int(m.group(1)) >= ack_min and int(m.group(1))
    return c.wait(what, num, timeout=120, step=0.5)


def t_vm_disk_primary_dies(c):
    """Host a (primary) dies while its guest writes to its replicated
    disk and the client polls the last write the guest read back: b
    takes over, its numbers never go below the last one the client got,
    its guest's disk agrees with its RAM ("disk BAD" never), blk failed
    over exactly once (colo vm's, with the guest's view), and the
    client's echo connection lives on."""
    c.start_pair("a")
    cv.wait_vm_protected(c, "a", "b")
    c.wait("a's blk protected",
           lambda: blk_state(c, "a").get("state") == "protected")
    st = c.status("a")
    cl.check(st.get("state") == "protected" and
             st.get("blk", {}).get("role") == "primary",
             "colo status on a: protected, blk primary protected")
    echo, ack = load(c, 6)
    t_kill = time.monotonic()  # answers before it were acknowledged
    t_fail = cl.fail_primary(c, "a")
    c.wait("b's VM failed over", lambda: cv.vm_mode(c, "b") == "failover")
    r = cv.echo_until(c, echo, 30)
    check_console(c, "b", "after the failover")
    answers = ack.stop()
    before = [n for t, n in answers if t < t_kill]
    after = [n for t, n in answers if t > t_kill]
    lost = writes_lost(answers)
    cl.log("acknowledged writes: %d answers before the kill (last %s), %d "
           "after (first %s, last %s)"
           % (len(before), before[-1:], len(after), after[:1], after[-1:]))
    # the figures first: bench/cluster shows a loss even when it fails
    cl.bench("vm_disk_primary_dies", decision_ms=round(t_fail * 1000),
             stall_ms=r["max_gap_ms"], deposed_frames=0,
             conns_lost=0 if r["ok"] else 1, writes_lost=lost,
             writes_acked=max(before or [0]))
    cl.check(before and after, "the client got numbers before and after "
             "the failover")
    cl.check(lost == 0, "no acknowledged write lost (%d lost)" % lost)
    cl.check(r["ok"], "the echo connection survives the failover (%d "
             "echoes, longest gap %.0f ms, %s)"
             % (r["echoes"], r["max_gap_ms"], r["why"]))
    cl.check(blk_state(c, "b").get("state") == "failed-over",
             "b's blk failed over")
    cl.check(blk_failovers(c, "b") == 1,
             "b's blk failed over once (%d)" % blk_failovers(c, "b"))
    echo.stop()


def load(c, settle_s):
    """The client's load on a protected pair with a VM guest: the echo
    connection, a checkpoint, the guest's third write acknowledged, then
    the acknowledged-write poller, settle_s seconds of it before the
    fault. Returns (echo, ack)."""
    echo = cv.Echo(c)
    cv.echo_until(c, echo, 20)
    cv.forced_checkpoint(c, "a", "b")
    acked_until(c, 3, "the guest's third write acknowledged")
    ack = DiskAck(c)
    time.sleep(settle_s)
    return echo, ack


def t_vm_disk_reprotect(c):
    """7 with a VM guest and its disk: a dies, b takes over; a returns
    with a blank disk and is re-protected as b's secondary (b's blk, a
    failed-over secondary, replicates to a's in place, then b's guest is
    promoted); then b dies and a takes over. One echo connection survives
    both failovers, the client's acknowledged write never goes down, and
    no guest ever reads its disk BAD."""
    c.start_pair("a")
    cv.wait_vm_protected(c, "a", "b")
    echo, ack = load(c, 3)
    echo.report()  # the stalls below count from here
    t_fail1 = cl.fail_primary(c, "a")
    c.wait("b's VM failed over", lambda: cv.vm_mode(c, "b") == "failover")
    r1 = cv.echo_until(c, echo, 30)
    cl.check(r1["ok"], "the echo connection survives the first failover "
             "(%.1f s, longest gap %.0f ms)" % (t_fail1, r1["max_gap_ms"]))
    c.restart_node("a")
    make_disk(c, "a")  # a blank disk: only re-protection fills it
    t0 = time.monotonic()
    c.colo_up("a")
    c.wait("a secondary", lambda: c.state("a").get("role") == "secondary")
    try:
        c.wait_protected("b", "a", timeout=180)
        wait_protected_hook(c, "b")
    except RuntimeError:
        cl.log("status b: %s" % json.dumps(c.status("b")))
        cl.log("status a: %s" % json.dumps(c.status("a")))
        raise
    t_reprotect = time.monotonic() - t0
    bb, ba = blk_state(c, "b"), blk_state(c, "a")
    cl.check(bb.get("role") == "primary" and bb.get("state") == "protected"
             and ba.get("state") == "replicating",
             "b's blk a primary in place, protected; a's replicating")
    resync = bb.get("last_resync_bytes", -1)
    cl.log("b's blk resynced %d bytes of a %d-byte disk (%s compared)" %
           (resync, cv.DISK_BYTES, bb.get("last_resync_compared", "?")))
    # the guest writes only its disk's first MiB, a's disk is blank: only
    # the granules that differ travel, not the whole image
    cl.check(0 < resync < cv.DISK_BYTES // 4,
             "the resync copied only what differs (%d bytes)" % resync)
    vb = cv.vm(c, "b")
    cl.check(vb["role"] == "primary" and vb["promote_pause_ms"] > 0,
             "b's guest promoted (paused %.0f ms)" % vb["promote_pause_ms"])
    check_console(c, "b", "after the promote")
    cv.forced_checkpoint(c, "b", "a")
    check_console(c, "a", "a's VMs, checkpoints of b's", more=0)
    r2 = cv.echo_until(c, echo, 30)
    cl.check(r2["ok"], "the echo connection lives on through the "
             "re-protection (longest gap %.0f ms)" % r2["max_gap_ms"])
    cv.forced_checkpoint(c, "b", "a")
    time.sleep(3)
    echo.report()
    t_fail2 = cl.fail_primary(c, "b")
    b_frames = c.frames_from("sh")
    c.wait("a's VM failed over", lambda: cv.vm_mode(c, "a") == "failover")
    r3 = cv.echo_until(c, echo, 30)
    extra = c.frames_from("sh") - b_frames
    check_console(c, "a", "after the second failover")
    answers = ack.stop()
    lost = writes_lost(answers)
    r = echo.stop()
    cl.log("acknowledged writes: %d answers, from %s to %s"
           % (len(answers), answers[0][1] if answers else "-",
              answers[-1][1] if answers else "-"))
    cl.bench("vm_disk_reprotect", decision_ms=round(t_fail2 * 1000),
             stall_ms=r3["max_gap_ms"], deposed_frames=extra,
             conns_lost=0 if r["ok"] and r3["ok"] else 1,
             writes_lost=lost, reprotect_s=round(t_reprotect, 1),
             resync_bytes=resync)
    cl.check(len(answers) >= 4, "the client got %d numbers" % len(answers))
    cl.check(lost == 0, "no acknowledged write lost over both failovers "
             "(%d lost)" % lost)
    cl.check(r3["ok"] and r["ok"],
             "the echo connection opened before the first failover "
             "survives the second (%d echoes in all, longest gap %.0f ms, "
             "%s)" % (r["echoes"], r3["max_gap_ms"], r["why"]))
    cl.check(extra == 0, "not one frame from b after a took over")
    cl.check(blk_state(c, "a").get("state") == "failed-over",
             "a's blk failed over")
    hooks_in_step(c)
    cl.log("RESULT vm_disk_reprotect a_back_to_protected_s %.1f "
           "resync_bytes %d stall1_ms %.0f stall_reprotect_ms %.0f "
           "stall2_ms %.0f" % (t_reprotect, resync, r1["max_gap_ms"],
                               r2["max_gap_ms"], r3["max_gap_ms"]))


def wait_protected_hook(c, n):
    """Until n's supervisor ran its "protected" hook (its watcher may
    say so a little after `colo status` does), so that hooks_in_step has
    a hook of the re-protected pair to check."""
    c.wait("%s's protected hook" % n,
           lambda: "protected %s" % n in c.hook_events())


def hooks_in_step(c):
    """Every "protected" hook of a host with a disk ran while its blk
    said protected too (the hook records blk's status then): a pair is
    never announced protected while its disk resyncs."""
    try:
        with open(c.hook_blk) as f:
            states = [json.loads(l).get("state") for l in f if l.strip()]
    except FileNotFoundError:
        states = []
    cl.log("hooks: %s" % ", ".join(c.hook_events()))
    cl.check(states and all(s == "protected" for s in states),
             "blk protected at every \"protected\" hook (%s)" % states)


def nbd_io(c, n, cmd):
    """One qemu-io command on node n's disk export (a Unix socket in the
    shared run directory); True when it succeeded (a read -P checks the
    pattern)."""
    sock = os.path.join(c.run_dir, n + "-disk.sock")
    r = subprocess.run(["qemu-io", "-f", "raw", "-c", cmd,
                        "nbd+unix:///?socket=" + sock],
                       capture_output=True, text=True, timeout=60)
    if r.returncode:
        cl.log("qemu-io %s on %s: %s" % (cmd, n, (r.stdout + r.stderr)
                                          .strip()))
    return r.returncode == 0


def t_disk_reprotect(c):
    """7 with the namespace guests and a disk: a fails, b takes over (its
    blk keeps every write it acknowledged); a block written through b's
    export; a returns with a blank disk and is re-protected: b's blk
    replicates to a's in place (only what differs travels) and only b's
    proxy is restarted; a second block written, b dies, a takes over:
    a's export holds both blocks."""
    c.start_pair("a")
    c.wait("a's blk protected",
           lambda: blk_state(c, "a").get("state") == "protected")
    cl.check(nbd_io(c, "a", "write -P 0x11 0 64k"),
             "a block written on a, protected")
    rd = cl.e2e.Resp(c)
    cl.check(rd.cmd("SET", "k", "v1") == "+OK", "redis SET")
    cl.fail_primary(c, "a")
    c.wait("b's blk failed over",
           lambda: blk_state(c, "b").get("state") == "failed-over")
    cl.check(nbd_io(c, "b", "read -P 0x11 0 64k"),
             "b's disk holds the block a acknowledged")
    cl.check(nbd_io(c, "b", "write -P 0x5a 1M 128k"),
             "a block written on b, alone")
    c.restart_node("a")
    make_disk(c, "a")
    t0 = time.monotonic()
    c.colo_up("a")
    cl.reprotect_after_drain(c, "b", "a", rd)
    wait_protected_hook(c, "b")
    t_reprotect = time.monotonic() - t0
    bb, ba = blk_state(c, "b"), blk_state(c, "a")
    resync = bb.get("last_resync_bytes", -1)
    cl.check(bb.get("role") == "primary" and bb.get("state") == "protected"
             and ba.get("state") == "replicating",
             "b's blk a primary in place, protected; a's replicating")
    cl.check(0 < resync < cv.DISK_BYTES // 4,
             "the resync copied only what differs (%d bytes)" % resync)
    with open("%s/up-b.log" % c.dir, errors="replace") as f:
        starts = f.read().count("started blk ")
    cl.check(starts == 1, "b's blk was never restarted (%d start)" % starts)
    cl.check(nbd_io(c, "a", "read -P 0x5a 1M 128k") and
             nbd_io(c, "a", "read -P 0x11 0 64k"),
             "a's disk holds what b wrote alone, and the first block")
    cl.check(nbd_io(c, "b", "write -P 0xa5 2M 64k"),
             "a block written on b, protected")
    cl.fail_primary(c, "b")
    c.wait("a's blk failed over",
           lambda: blk_state(c, "a").get("state") == "failed-over")
    kept = [nbd_io(c, "a", x) for x in ("read -P 0x11 0 64k",
                                        "read -P 0x5a 1M 128k",
                                        "read -P 0xa5 2M 64k")]
    cl.bench("disk_reprotect", reprotect_s=round(t_reprotect, 1),
             deposed_frames=0, conns_lost=0,
             writes_lost=kept.count(False), resync_bytes=resync)
    cl.check(all(kept), "a's disk holds all three acknowledged blocks "
             "after the second failover (%s)" % kept)
    hooks_in_step(c)


TESTS = {"disk_reprotect": (t_disk_reprotect, None),
         "vm_disk_primary_dies": (t_vm_disk_primary_dies, None),
         "vm_disk_reprotect": (t_vm_disk_reprotect, None)}
