"""cluster_vm.py - `colo up` scenarios with a VM guest ([guest] kind = vm):
each host's `colo up` runs `colo vm` (the tiny guest of contrib/guest
under QEMU TCG, its NIC on the proxy's guest port) next to its proxy.
The topology, corosync and the helpers are cluster.py's; cluster.py runs
these scenarios (its main) when their name starts with vm_.

The client holds one TCP connection to the guest's echo service
(contrib/guest/init colo_echo=PORT) and checks every byte that comes
back: it must survive what each scenario does to the hosts.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
import cluster as cl  # noqa: E402
import vmpair  # noqa: E402  (the guest's builder, the control client)

ECHO_PORT = 5000
DISKACK_PORT = 5001
MAC = "02:c0:10:00:00:10"
# vm_disk_*: each node's own image, in its private /run (a tmpfs of its
# mount namespace, gone with the node: a returning host has a blank one)
DISK = "/run/colo-disk.img"
DISK_BYTES = 16 << 20


def guest_conf(scenario=""):
    """PAIR.conf's [guest] for the tiny guest: its QEMU arguments over
    indented lines, no periodic checkpoint (the test forces one). The
    vm_disk_* scenarios add the replicated disk, the guest's disk loop
    and its acknowledgement service."""
    g = vmpair.guest_dir()
    disk = scenario.startswith("vm_disk_")
    return ("[guest]\nkind = vm\ninterval_ms = 0\n%s"
            "qemu_args = -machine pc -accel tcg -m 128M -nodefaults\n"
            "  -vga none -display none -serial stdio\n"
            "  -kernel %s/vmlinuz -initrd %s/initrd.cpio.gz\n"
            "  -append 'console=ttyS0 quiet ipv6.disable=1 colo_ip=%s/24 "
            "colo_echo=%d%s'\n"
            "  -device virtio-net-pci,netdev=colo-nic,mac=%s\n%s"
            % ("disk = %s\n" % DISK if disk else "", g, g, cl.GUEST,
               ECHO_PORT, " colo_disk=1 colo_diskack=%d" % DISKACK_PORT
               if disk else "", MAC,
               "  -device virtio-blk-pci,drive=colo-disk\n" if disk else ""))


def vm(c, n, cmd="status", **kw):
    """A command to host n's colo vm (RUN_DIR/n-vm.sock)."""
    kw["cmd"] = cmd
    return vmpair.ctl(os.path.join(c.run_dir, n + "-vm.sock"), kw,
                      timeout=60)


def vm_mode(c, n):
    try:
        return vm(c, n).get("mode")
    except (OSError, ValueError):
        return None


def ran_alone(c, n):
    """n's VM failed over: it runs alone, or it already went on into a
    promoted primary (a peer that rejoins at once, as after a
    switch-over, can be re-protected before a look sees "failover")."""
    try:
        st = vm(c, n)
    except (OSError, ValueError):
        return False
    return st.get("mode") == "failover" or st.get("promote_pause_ms", 0) > 0


class Echo:
    """One TCP connection from the client to the guest's echo service:
    512 random bytes every 20 ms, each answer compared with what was
    sent. "report" on its stdin prints the state so far (and starts a
    new longest gap), "stop" prints it and ends."""

    CODE = r"""
import json, os, select, socket, sys, time
deadline = time.monotonic() + 90
while True:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])),
                                     timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
s.settimeout(60)
st = {"ok": True, "echoes": 0, "bytes": 0, "max_gap_ms": 0.0, "why": ""}
last = time.monotonic()
def out():
    print(json.dumps(st), flush=True)
    st["max_gap_ms"] = 0.0
while True:
    if select.select([sys.stdin], [], [], 0.02)[0]:
        cmd = sys.stdin.readline().strip()
        out()
        if cmd != "report":
            break
        continue
    if not st["ok"]:
        continue
    data = os.urandom(512)
    try:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            d = s.recv(65536)
            if not d:
                raise OSError("connection closed")
            got += d
    except OSError as e:
        st["ok"], st["why"] = False, repr(e)
        continue
    if got != data:
        st["ok"], st["why"] = False, "wrong bytes"
        continue
    now = time.monotonic()
    st["max_gap_ms"] = max(st["max_gap_ms"], round((now - last) * 1000, 1))
    last = now
    st["echoes"] += 1
    st["bytes"] += len(data)
"""

    def __init__(self, c):
        self.p = subprocess.Popen(
            c.ns("client") + [cl.PY, "-c", self.CODE, cl.GUEST,
                              str(ECHO_PORT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def report(self):
        self.p.stdin.write("report\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("the echo client died")
        return json.loads(line)

    def stop(self):
        out, _ = self.p.communicate("stop\n", timeout=120)
        return json.loads(out.strip().splitlines()[-1])


def wait_vm_protected(c, prim, sec):
    """Both colo vm daemons protected: the secondary VM is a checkpoint
    of the primary's."""
    c.wait("%s's and %s's VMs protected" % (prim, sec),
           lambda: vm_mode(c, prim) == "protected" and
           vm_mode(c, sec) == "protected", timeout=120, step=0.2)


def forced_checkpoint(c, prim, sec):
    """A checkpoint by command on the primary; returns the secondary's
    count after it."""
    before = vm(c, sec)["checkpoints"]
    r = vm(c, prim, "checkpoint")
    cl.check(r.get("ok"), "forced checkpoint on %s: %s" % (prim, r))
    return c.wait("the checkpoint on " + sec,
                  lambda: vm(c, sec)["checkpoints"] > before and
                  vm(c, sec)["checkpoints"], timeout=60)


def echo_until(c, echo, more):
    """Waits for more echoes than there are now; the last report, with
    the longest gap since the echo client's previous report (the stall of
    whatever happened since) and the connection's verdict."""
    first = echo.report()
    gap = [first["max_gap_ms"]]
    n = first["echoes"] + more

    def enough():
        r = echo.report()
        gap[0] = max(gap[0], r["max_gap_ms"])
        return (r["echoes"] >= n or not r["ok"]) and r
    r = c.wait("%d echoes" % n, enough, timeout=120, step=0.5)
    r["max_gap_ms"] = gap[0]
    return r


def t_vm_primary_dies(c):
    """Host a (primary, its VM checkpointed to b's) dies, every process
    SIGKILLed, its QEMU too: b takes over, its VM (the last checkpoint)
    runs on alone, and the client's echo connection lives on with the
    right bytes."""
    c.start_pair("a")
    wait_vm_protected(c, "a", "b")
    echo = Echo(c)
    echo_until(c, echo, 20)
    n = forced_checkpoint(c, "a", "b")
    r = echo.report()
    cl.check(r["ok"], "echo connection right after the checkpoint "
             "(%d echoes)" % r["echoes"])
    st = c.status("a")
    cl.check(st.get("state") == "protected" and
             st.get("vm", {}).get("mode") == "protected" and
             st["vm"]["checkpoints"] >= 2,
             "colo status on a: protected, vm protected, %d checkpoints"
             % st.get("vm", {}).get("checkpoints", 0))
    cl.log("b's VM has %d checkpoints" % n)
    t_fail = cl.fail_primary(c, "a")
    a_frames = c.frames_from("ph")
    c.wait("b's VM failed over", lambda: ran_alone(c, "b"))
    r = echo_until(c, echo, 50)
    extra = c.frames_from("ph") - a_frames
    cl.check(r["ok"], "the echo connection survives the failover with the "
             "right bytes (%d echoes, longest gap %.0f ms, %s)"
             % (r["echoes"], r["max_gap_ms"], r["why"]))
    cl.check(extra == 0, "not one frame from a after b took over")
    st = c.status("b")
    cl.check(st.get("host", {}).get("role") == "primary" and
             st.get("state") == "degraded" and
             st.get("vm", {}).get("mode") == "failover",
             "colo status on b: primary, degraded, vm failover (%s, %s)"
             % (st.get("state"), st.get("vm", {}).get("mode")))
    echo.stop()
    ev = c.hook_events()
    cl.check("failover b" in ev, "hook event 'failover b'")
    cl.log("RESULT vm kill_to_failover_ms %.0f client_stall_ms %.0f"
           % (t_fail * 1000, r["max_gap_ms"]))
    cl.bench("vm_primary_dies", decision_ms=round(t_fail * 1000),
             stall_ms=r["max_gap_ms"], deposed_frames=extra,
             conns_lost=0 if r["ok"] else 1)


def t_vm_reprotect(c):
    """7 with a VM guest: a fails, b takes over, a returns and is
    re-protected as b's secondary (b's VM promoted onto shared RAM, a's
    VM a checkpoint of it), then b fails and a takes over again: one
    echo connection, opened at the start, survives both failovers with
    the right bytes, and no frame leaves a deposed host."""
    c.start_pair("a")
    wait_vm_protected(c, "a", "b")
    echo = Echo(c)
    echo_until(c, echo, 20)
    forced_checkpoint(c, "a", "b")
    echo.report()  # the stalls below count from here
    t_fail1 = cl.fail_primary(c, "a")
    c.wait("b's VM failed over", lambda: vm_mode(c, "b") == "failover")
    r1 = echo_until(c, echo, 30)
    cl.check(r1["ok"], "the echo connection survives the first failover "
             "(%.1f s, longest gap %.0f ms)" % (t_fail1, r1["max_gap_ms"]))
    c.restart_node("a")
    t0 = time.monotonic()
    c.colo_up("a")
    c.wait("a secondary", lambda: c.state("a").get("role") == "secondary")
    try:
        c.wait_protected("b", "a", timeout=120)
    except RuntimeError:
        cl.log("status b: %s" % json.dumps(c.status("b")))
        cl.log("status a: %s" % json.dumps(c.status("a")))
        raise
    t_reprotect = time.monotonic() - t0
    vb, va = vm(c, "b"), vm(c, "a")
    cl.check(vb["role"] == "primary" and vb["promote_pause_ms"] > 0,
             "b's guest promoted onto shared RAM (paused %.0f ms)"
             % vb["promote_pause_ms"])
    cl.check(va["mode"] == "protected" and va["checkpoints"] >= 1,
             "a's VM is a checkpoint of b's (%d checkpoint(s))"
             % va["checkpoints"])
    up_ms = c.state("b").get("last_reprotect_ms")
    r2 = echo_until(c, echo, 30)
    cl.check(r2["ok"], "the echo connection lives on through the "
             "re-protection (longest gap %.0f ms)" % r2["max_gap_ms"])
    forced_checkpoint(c, "b", "a")
    echo.report()
    t_fail2 = cl.fail_primary(c, "b")
    b_frames = c.frames_from("sh")
    c.wait("a's VM failed over", lambda: vm_mode(c, "a") == "failover")
    r3 = echo_until(c, echo, 30)
    extra = c.frames_from("sh") - b_frames
    r = echo.stop()
    cl.check(r3["ok"] and r["ok"],
             "the echo connection opened before the first failover "
             "survives the second (%d echoes in all, longest gap %.0f ms, "
             "%s)" % (r["echoes"], r3["max_gap_ms"], r["why"]))
    cl.check(extra == 0, "not one frame from b after a took over")
    st = c.status("a")
    cl.check(st.get("host", {}).get("role") == "primary" and
             st.get("vm", {}).get("mode") == "failover",
             "a primary, its VM failed over")
    cl.log("RESULT vm_reprotect a_back_to_protected_s %.1f "
           "supervisor_reprotect_ms %s promote_pause_ms %.0f "
           "stall1_ms %.0f stall_reprotect_ms %.0f stall2_ms %.0f"
           % (t_reprotect, up_ms, vb["promote_pause_ms"],
              r1["max_gap_ms"], r2["max_gap_ms"], r3["max_gap_ms"]))
    cl.bench("vm_reprotect", decision_ms=round(t_fail2 * 1000),
             stall_ms=r3["max_gap_ms"], deposed_frames=extra,
             conns_lost=0 if r["ok"] else 1,
             reprotect_s=round(t_reprotect, 1), reprotect_up_ms=up_ms,
             promote_pause_ms=round(vb["promote_pause_ms"]))


def t_vm_switchover(c):
    """The planned switch-over with a VM guest: `colo switchover` on a
    moves the primary role to b, whose VM (a checkpoint of a's) runs on;
    a rejoins as b's secondary and b re-protects by a promote. The echo
    connection keeps its bytes throughout, and a releases nothing after
    the switch."""
    c.start_pair("a")
    wait_vm_protected(c, "a", "b")
    echo = Echo(c)
    echo_until(c, echo, 20)
    # the connection's sequence offsets are 0 from a checkpoint on: only
    # then can b re-protect while it is open
    forced_checkpoint(c, "a", "b")
    echo.report()
    t0 = time.monotonic()
    r = subprocess.run(c.at("a") + [c.colo, "switchover", "--host", "a",
                                    c.conf], capture_output=True,
                       text=True, timeout=60)
    t_switch = time.monotonic() - t0
    cl.check(r.returncode == 0, "colo switchover exit 0 (%s)"
             % r.stderr.strip())
    c.wait("b primary", lambda: c.state("b").get("role") == "primary")
    a_frames = c.frames_from("ph")
    c.wait("b's VM failed over", lambda: ran_alone(c, "b"))
    r1 = echo_until(c, echo, 30)
    cl.check(r1["ok"], "the echo connection survives the switch-over "
             "(longest gap %.0f ms)" % r1["max_gap_ms"])
    c.wait_protected("b", "a", timeout=120)
    t_reprotect = time.monotonic() - t0
    r2 = echo_until(c, echo, 30)
    extra = c.frames_from("ph") - a_frames
    r = echo.stop()
    cl.check(r2["ok"] and r["ok"], "the echo connection lives on through "
             "the re-protection (longest gap %.0f ms, %s)"
             % (r2["max_gap_ms"], r["why"]))
    cl.check(extra == 0, "not one frame from a after the switch-over")
    cl.check(vm(c, "b")["promote_pause_ms"] > 0 and
             vm(c, "a")["mode"] == "protected",
             "b promoted, a's VM a checkpoint of b's")
    cl.log("RESULT vm_switchover switchover_s %.2f stall_ms %.0f "
           "to_protected_s %.1f stall_reprotect_ms %.0f"
           % (t_switch, r1["max_gap_ms"], t_reprotect, r2["max_gap_ms"]))
    cl.bench("vm_switchover", decision_ms=round(t_switch * 1000),
             stall_ms=r1["max_gap_ms"], deposed_frames=extra,
             conns_lost=0 if r["ok"] else 1,
             reprotect_s=round(t_reprotect, 1))


def daemon_pid(c, ns, role):
    """The pid of host ns's `colo vm --role ROLE` daemon."""
    pids = subprocess.run(["ip", "netns", "pids", c.p + ns],
                          capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[1:4] == [b"vm", b"--role", role.encode()]:
            return int(pid)
    return None


def t_vm_secondary_restart(c):
    """b's colo vm (secondary) dies alone: b's colo up starts it again
    instead of stopping the host, a's frame takes the new secondary with
    a full first checkpoint, and the pair is protected again."""
    c.start_pair("a")
    wait_vm_protected(c, "a", "b")
    echo = Echo(c)
    echo_until(c, echo, 10)
    pid = daemon_pid(c, "shost", "secondary")
    cl.check(pid is not None, "b's colo vm found (pid %s)" % pid)
    c.fault("b's colo vm killed")
    os.kill(pid, 9)
    c.wait("a new colo vm on b", lambda: daemon_pid(c, "shost", "secondary")
           not in (None, pid), timeout=30)
    wait_vm_protected(c, "a", "b")
    cl.check(c.procs["up-b"].poll() is None and
             c.state("b").get("role") == "secondary",
             "b's colo up still runs, b secondary")
    cl.check(vm(c, "b")["checkpoints"] >= 1, "b's new VM is a checkpoint")
    r = echo_until(c, echo, 10)
    echo.stop()
    cl.check(r["ok"], "the echo connection served throughout")


def netns_guest_conf(scenario):
    """PAIR.conf's [guest] for the namespace guests: a disk for disk_*
    (cluster_disk.py) and for the failure scenarios whose client writes
    to it (cluster_ackdisk.py), else none (no section)."""
    import cluster_ackdisk  # (it imports this file)
    if scenario.startswith("disk_") or \
            scenario in cluster_ackdisk.SCENARIOS:
        return "[guest]\nkind = netns\ndisk = %s\n" % DISK
    return ""


def all_tests():
    """This file's scenarios and those with a disk (cluster_disk.py,
    which uses this file's helpers)."""
    import cluster_disk
    t = dict(TESTS)
    t.update(cluster_disk.TESTS)
    return t


TESTS = {"vm_primary_dies": (t_vm_primary_dies, None),
         "vm_secondary_restart": (t_vm_secondary_restart, None),
         "vm_reprotect": (t_vm_reprotect, None),
         "vm_switchover": (t_vm_switchover, None)}
