"""client_net.py - a VM pair behind two `colo proxy` daemons, its client
in a network namespace of its own: what vm_repair and vm_guestconn share.

The primary proxy's client port is one end of a veth pair (packet:), the
other end sits in the client namespace; the secondary proxy's client port
is a unix socket nobody uses (its output goes over the link); each proxy's
guest port is a qemu:unix-listen: socket that its colo vm puts every QEMU
on (--nic), and each colo vm follows its proxy (--proxy-control).
Everything is torn down by close(), also when the test failed.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmpair  # noqa: E402

GUEST_IP, CLIENT_IP = "10.0.0.2", "10.0.0.1"
GUEST_NIC = ["-device", "virtio-net-pci,netdev=colo-nic,mac=52:54:00:00:aa:01"]

# Runs in the client namespace: one connection to the guest, sends
# argv[2], reads the answer (as many bytes as sent, or 64) and prints it
# as JSON {"got": hex, "err": text or null}.
CLIENT = r"""
import json, socket, sys, time
port, send = int(sys.argv[1]), sys.argv[2].encode()
# The guest's one-shot services listen again a moment after each
# connection: a refusal in that gap is retried (a reset later is not).
for attempt in range(50):
    try:
        s = socket.create_connection((sys.argv[3], port), timeout=120)
        break
    except ConnectionRefusedError:
        if attempt == 49:
            raise
        time.sleep(0.1)
s.sendall(send)
want = len(send) if send else 64
got, err = b"", None
try:
    while len(got) < want:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.settimeout(1.0)  # anything more is a doubled byte
    try:
        d = s.recv(65536)
        got += d
    except socket.timeout:
        pass
except OSError as e:
    err = repr(e)
s.close()
print(json.dumps({"got": got.hex(), "err": err}))
"""


def run(*cmd):
    subprocess.run(cmd, check=True)


class ClientNet:
    """The client namespace, both proxies and (start_pair) the VM pair.
    tag names the namespace and the veth ends (pid-suffixed by the
    caller); logs and sockets go to a fresh directory in /dev/shm."""

    def __init__(self, colo, tag, prefix):
        self.colo = colo
        self.ns, self.veth_h, self.veth_c = tag, tag + "h", tag + "c"
        self.d = tempfile.mkdtemp(prefix=prefix, dir="/dev/shm")
        self.port = vmpair.free_port()
        self.procs, self.pair = [], None
        try:
            self._make_ns()
        except BaseException:
            self.close(True)
            raise

    def _make_ns(self):
        run("ip", "netns", "add", self.ns)
        run("ip", "link", "add", self.veth_h, "type", "veth", "peer", "name",
            self.veth_c)
        run("ip", "link", "set", self.veth_c, "netns", self.ns)
        run("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % self.veth_h)
        run("ip", "link", "set", self.veth_h, "up")
        for c in (["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                  ["ip", "addr", "add", CLIENT_IP + "/24", "dev", self.veth_c],
                  ["ip", "link", "set", self.veth_c, "up"],
                  ["ip", "link", "set", "lo", "up"]):
            run("ip", "netns", "exec", self.ns, *c)

    def path(self, name):
        return os.path.join(self.d, name)

    def _proxy(self, role, link, name, client):
        log = open(self.path(name + ".log"), "w")
        self.procs.append(subprocess.Popen(
            [self.colo, "proxy", "--role", role, "--client", client,
             "--guest", "qemu:unix-listen:%s/%sg" % (self.d, name),
             link, "127.0.0.1:%d" % self.port,
             "--control", "%s/%s.sock" % (self.d, name)],
            stdout=log, stderr=subprocess.STDOUT))
        log.close()

    def start_pair(self, append):
        """Both proxies, then the VM pair with append on the guest's
        kernel command line (its colo_ services); returns the Pair once
        protected with both VMs running."""
        self._proxy("primary", "--link-listen", "p", "packet:" + self.veth_h)
        self._proxy("secondary", "--link-connect", "s",
                    "qemu:unix-listen:%s/sc" % self.d)
        for g in ("pg", "sg"):
            vmpair.wait_for(lambda: os.path.exists(self.path(g)), 10,
                            "proxy guest port " + g)
        self.pair = vmpair.Pair(
            self.colo,
            append="ipv6.disable=1 colo_ip=%s/24 %s" % (GUEST_IP, append),
            extra=GUEST_NIC,
            opts={"primary": ["--nic", "unix:%s/pg" % self.d,
                              "--proxy-control", self.path("p.sock")],
                  "secondary": ["--nic", "unix:%s/sg" % self.d,
                                "--proxy-control", self.path("s.sock")]})
        self.pair.wait_protected()
        self.pair.wait_running("primary")
        self.pair.wait_running("secondary")
        return self.pair

    def stats(self):
        """The primary proxy's stats (its comparer's counters)."""
        out = subprocess.run([self.colo, "ctl", self.path("p.sock"), "stats"],
                             capture_output=True, text=True, timeout=10)
        return json.loads(out.stdout)

    def in_ns(self, *cmd, timeout=300):
        """Runs cmd in the client namespace; returns its stdout."""
        out = subprocess.run(["ip", "netns", "exec", self.ns, *cmd],
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def connect(self, port, data=b""):
        """One client connection to the guest (CLIENT): (bytes, error)."""
        if isinstance(data, bytes):
            data = data.decode()
        r = json.loads(self.in_ns(sys.executable, "-c", CLIENT, str(port),
                                  data, GUEST_IP))
        return bytes.fromhex(r["got"]), r["err"]

    def close(self, failed):
        try:
            vmpair.close_all(self.pair, self.procs, self.d, failed)
        finally:
            subprocess.run(["ip", "link", "del", self.veth_h],
                           stderr=subprocess.DEVNULL)
            subprocess.run(["ip", "netns", "del", self.ns],
                           stderr=subprocess.DEVNULL)
