/*
 * demo_vm.c - `colo demo` (--vm): COLO protecting a real QEMU VM on this
 * machine, end to end, and surviving the loss of the primary host.
 *
 * In network namespaces it builds a client, a switch and two hosts. Each
 * host runs `colo proxy` (client side on the switch, guest side a
 * qemu:unix-listen: port, TLS on the link) and `colo vm` (this same
 * binary), which boots the tiny guest (contrib/guest/) under QEMU TCG
 * with its NIC on the proxy and checkpoints it, periodically and on the
 * comparer's requests. The demo then shows, with a live line from both
 * daemons' control sockets: an echo load on one TCP connection, a
 * divergence (the guest's clock service) repaired by a checkpoint, RAM
 * of both VMs identical after explicit checkpoints (pmemsave dumps taken
 * while both are stopped), the primary host killed, and the secondary
 * failed over with the client's connection alive. The last line is a
 * machine-readable summary. Everything is torn down on every exit path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "demo.h"
#include "demo_creds.h"
#include "demo_util.h"
#include "demo_vm_client.h"

#define GUEST_IP   "10.77.0.10"
#define GUEST_MAC  "52:54:00:00:aa:01"
#define ECHO_PORT  7000
#define CLOCK_PORT 7001
/* The demo's own guest cache (./dev.sh run fills it): not the tests'
 * (/var/cache/colo-test/guest), so a test tree with another guest /init
 * never rebuilds the demo's guest under it. */
#define GUEST_CACHE "/var/cache/colo/guest"

static const char usage[] =
	"Usage: colo demo [--vm] [--guest DIR] [--qemu BIN] [--mem MB]\n"
	"                 [--interval MS] [--mem-checks N]\n"
	"       colo demo --netns [--seconds N]   (namespace guests, no "
	"QEMU)\n"
	"\n"
	"Shows COLO protecting a real VM on this machine (root: it creates\n"
	"network namespaces; nothing outside them is touched):\n"
	"\n"
	"  client --- switch --- host A [colo proxy, colo vm] --- QEMU VM\n"
	"                    \\-- host B [colo proxy, colo vm] --- QEMU VM\n"
	"\n"
	"Both hosts boot the same tiny guest (Debian kernel, busybox) under\n"
	"QEMU TCG; colo vm keeps the secondary VM a copy of the primary by\n"
	"checkpoints, colo proxy compares their network output. A live line\n"
	"shows checkpoints, the last pause and the comparer's held/released\n"
	"output while a client echoes data over one TCP connection. The\n"
	"demo makes the guests diverge (a service answering its clock)\n"
	"and the checkpoint repairs it, checks that both VMs' RAM is\n"
	"identical after explicit checkpoints, kills host A (colo vm, QEMU,\n"
	"colo proxy) and fails over to host B: the client's connection\n"
	"survives. A summary ends it; the last line is machine-readable:\n"
	"  demo checkpoints=N mem_equal=E/C diverged=D conn_survived=0|1 "
	"stall_ms=S ...\n"
	"\n"
	"  --guest DIR      vmlinuz and initrd.cpio.gz of the tiny guest\n"
	"                   (default $COLO_GUEST_DIR, else the newest in\n"
	"                   " GUEST_CACHE "/); ./dev.sh run builds it\n"
	"                   with contrib/guest/build.sh\n"
	"  --qemu BIN       QEMU binary (default qemu-system-x86_64)\n"
	"  --mem MB         guest RAM (default 128)\n"
	"  --interval MS    periodic checkpoint interval (default 3000)\n"
	"  --mem-checks N   explicit checkpoints whose RAM is compared "
	"(default 3)\n"
	"  -h, --help       this text\n"
	"\n"
	"Needs iproute2 and QEMU (qemu-system-x86). See doc/colo-demo.1.md.\n";

enum { P_PPROXY, P_SPROXY, P_PVM, P_SVM, P_CLIENT, P_PROBE, P_MAX };
static const char *const proc_names[P_MAX] = {
	"primary-proxy", "secondary-proxy", "primary-vm",
	"secondary-vm",	 "client",	    "probe"
};
static pid_t procs[P_MAX];
static int exit_status[P_MAX];
static bool expect_gone[P_MAX], started[P_MAX];

static const char *const nss[] = { "client", "switch", "phost", "shost" };
static const char *const hosts[] = { "phost", "shost" };
static char prefix[32], dir[96], self[PATH_MAX], guest[1024];
static bool topo_up, creds_made;

struct opts {
	const char *qemu;
	int mem_mb, interval_ms, mem_checks;
};

/* What the live line and the summary show, refreshed once a second. */
struct view {
	int64_t checkpoints, by_proxy, by_periodic, by_command, failures;
	double pause_last, pause_median, pause_max;
	int64_t held, released, divergences, requests;
	char pmode[32], smode[32];
	uint64_t last_print;
	bool primary_dead;
};

static struct colo_demo_client *cl;
static struct view vw;
static uint64_t t_start;

static void path_of(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", dir, name);
}

/* ---- the guest files and QEMU: fail fast with what to install */

static bool guest_ok(const char *d)
{
	char p[PATH_MAX + 32];
	struct stat st;

	snprintf(p, sizeof(p), "%s/vmlinuz", d);
	if (stat(p, &st) < 0 || st.st_size == 0)
		return false;
	snprintf(p, sizeof(p), "%s/initrd.cpio.gz", d);
	return stat(p, &st) == 0 && st.st_size > 0;
}

/* The newest complete guest under a build.sh cache (one directory per
 * kernel version). */
static bool find_in_cache(const char *cache)
{
	struct dirent *e;
	time_t best = 0;
	DIR *d = opendir(cache);

	if (!d)
		return false;
	while ((e = readdir(d))) {
		char p[sizeof(guest)];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", cache, e->d_name) >=
		    (int)sizeof(p))
			continue;
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) && guest_ok(p) &&
		    st.st_mtime >= best) {
			best = st.st_mtime;
			memcpy(guest, p, sizeof(guest));
		}
	}
	closedir(d);
	return guest[0] != '\0';
}

static int find_guest(const char *given)
{
	const char *env = getenv("COLO_GUEST_DIR");

	if (given || (env && *env)) {
		snprintf(guest, sizeof(guest), "%s", given ? given : env);
		if (guest_ok(guest))
			return 0;
		fprintf(stderr,
			"colo demo: %s has no vmlinuz and initrd.cpio.gz\n",
			guest);
	} else {
		if (find_in_cache(GUEST_CACHE))
			return 0;
		fprintf(stderr, "colo demo: no guest kernel found (looked in "
				"$COLO_GUEST_DIR and " GUEST_CACHE "/*/)\n");
	}
	fprintf(stderr,
		"colo demo: ./dev.sh run prepares it, or run "
		"contrib/guest/build.sh " GUEST_CACHE "\n(Debian's kernel "
		"package fetched with apt-get download and unpacked with "
		"dpkg-deb -x,\nnever installed, plus a busybox-static "
		"initramfs; needs busybox-static, xz-utils\nand zstd). "
		"Without QEMU: colo demo --netns\n");
	return -1;
}

static bool in_path(const char *bin)
{
	const char *path = getenv("PATH");
	char p[PATH_MAX];

	if (strchr(bin, '/'))
		return access(bin, X_OK) == 0;
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		const char *end = strchrnul(path, ':');

		snprintf(p, sizeof(p), "%.*s/%s", (int)(end - path), path, bin);
		if (access(p, X_OK) == 0)
			return true;
		path = *end ? end + 1 : end;
	}
	return false;
}

/* ---- topology: client, switch, two hosts (no guest namespaces: the
 * guests are VMs on the hosts) */

#define NS(n) "ip netns exec %s" n " "

static int topo_build(void)
{
	const char *P = prefix;

	topo_up = true;
	for (size_t i = 0; i < sizeof(nss) / sizeof(nss[0]); i++)
		if (colo_demo_sh("ip netns add %s%s", P, nss[i]) ||
		    colo_demo_sh(NS("%s") "ip link set lo up", P, nss[i]))
			return -1;
	if (colo_demo_sh(NS("switch") "ip link add br0 type bridge "
				      "forward_delay 0",
			 P) ||
	    colo_demo_sh(NS("switch") "ip link set br0 up", P) ||
	    colo_demo_sh("ip link add %sc type veth peer name %scs", P, P) ||
	    colo_demo_sh("ip link set %sc netns %sclient name eth0", P, P) ||
	    colo_demo_sh("ip link set %scs netns %sswitch name cl", P, P) ||
	    colo_demo_sh("ip link add %sp type veth peer name %sps", P, P) ||
	    colo_demo_sh("ip link set %sp netns %sphost name sw", P, P) ||
	    colo_demo_sh("ip link set %sps netns %sswitch name ph", P, P) ||
	    colo_demo_sh("ip link add %ss type veth peer name %sss", P, P) ||
	    colo_demo_sh("ip link set %ss netns %sshost name sw", P, P) ||
	    colo_demo_sh("ip link set %sss netns %sswitch name sh", P, P) ||
	    colo_demo_sh("ip link add %sl type veth peer name %sls", P, P) ||
	    colo_demo_sh("ip link set %sl netns %sphost name lnk", P, P) ||
	    colo_demo_sh("ip link set %sls netns %sshost name lnk", P, P))
		return -1;
	for (int i = 0; i < 3; i++) {
		static const char *const ports[] = { "cl", "ph", "sh" };

		if (colo_demo_sh(NS("switch") "ip link set %s master br0 up", P,
				 ports[i]))
			return -1;
	}
	for (int i = 0; i < 2; i++) {
		const char *h = hosts[i];

		/* The hosts' own IPv6 chatter on sw would pass for guest
		 * traffic; the link network is the hosts' only address. */
		if (colo_demo_sh(NS("%s") "sysctl -qw "
					  "net.ipv6.conf.all.disable_ipv6=1",
				 P, h) ||
		    colo_demo_sh(NS("%s") "ip addr add 10.78.0.%d/24 dev lnk",
				 P, h, i + 1) ||
		    colo_demo_sh(NS("%s") "ip link set lnk up", P, h) ||
		    colo_demo_sh(NS("%s") "ip link set sw up promisc on", P, h))
			return -1;
	}
	if (colo_demo_sh(NS("client") "sysctl -qw "
				      "net.ipv6.conf.all.disable_ipv6=1",
			 P) ||
	    colo_demo_sh(NS("client") "ip addr add 10.77.0.1/24 dev eth0", P) ||
	    colo_demo_sh(NS("client") "ip link set eth0 up", P))
		return -1;
	return 0;
}

static void topo_down(void)
{
	colo_demo_quiet = true;
	for (size_t i = 0; i < sizeof(nss) / sizeof(nss[0]); i++)
		colo_demo_sh("ip netns del %s%s 2>/dev/null", prefix, nss[i]);
	topo_up = false;
}

/* ---- processes: each in its own session (process group), so one
 * kill(-pid) takes a daemon with its QEMUs, and Ctrl-C on the terminal
 * reaches only the demo, which then tears down in order. */

static pid_t spawn(int slot, const char *ns, char *const argv[],
		   void (*fn)(void))
{
	pid_t pid = fork();

	if (pid == 0) {
		char log[PATH_MAX + 32];
		int fd;

		setsid();
		signal(SIGPIPE, SIG_DFL);
		if (colo_demo_enter_ns(prefix, ns) < 0)
			_exit(126);
		snprintf(log, sizeof(log), "%s/%s.log", dir, proc_names[slot]);
		fd = open(log,
			  O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW |
				  O_CLOEXEC,
			  0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (fn)
			fn();
		execv(self, argv);
		_exit(127);
	}
	procs[slot] = pid > 0 ? pid : 0;
	started[slot] = pid > 0;
	expect_gone[slot] = false;
	return pid;
}

/* Whether slot's process still runs (reaps it when it ended). */
static bool alive(int slot)
{
	int st;

	if (procs[slot] <= 0)
		return false;
	if (waitpid(procs[slot], &st, WNOHANG) == 0)
		return true;
	exit_status[slot] = st;
	procs[slot] = 0;
	return false;
}

static void kill_slot(int slot, int sig)
{
	if (procs[slot] > 0) {
		kill(-procs[slot], sig);
		kill(procs[slot], sig);
	}
}

static void reap(int slot)
{
	if (procs[slot] > 0) {
		waitpid(procs[slot], NULL, 0);
		procs[slot] = 0;
	}
}

/* Any process whose command line names our directory (QEMUs of the
 * daemons, should one outlive its parent) is ours: SIGKILL it. */
static void sweep(void)
{
	struct dirent *e;
	DIR *d = opendir("/proc");

	if (!d || !dir[0]) {
		if (d)
			closedir(d);
		return;
	}
	while ((e = readdir(d))) {
		char p[64], buf[8192];
		pid_t pid = (pid_t)atoi(e->d_name);
		ssize_t n;
		int fd;

		if (pid <= 1 || pid == getpid())
			continue;
		snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		if (strstr(buf, dir))
			kill(pid, SIGKILL);
	}
	closedir(d);
}

static void teardown(void)
{
	uint64_t end = colo_now_ns() + 10 * COLO_NS_PER_S;
	bool any = true;

	if (cl)
		cl->stop = 1;
	/* Daemons first, politely: colo vm stops its QEMUs, the proxies
	 * remove their sockets. */
	for (int i = 0; i < P_MAX; i++)
		kill_slot(i, i == P_CLIENT || i == P_PROBE ? SIGKILL : SIGTERM);
	while (any && colo_now_ns() < end) {
		any = false;
		for (int i = 0; i < P_MAX; i++)
			any |= alive(i);
		if (any)
			usleep(100000);
	}
	for (int i = 0; i < P_MAX; i++) {
		kill_slot(i, SIGKILL);
		reap(i);
	}
	sweep();
	if (topo_up)
		topo_down();
	if (dir[0]) {
		if (creds_made)
			colo_demo_remove_creds(dir, hosts, 2);
		colo_demo_rmtree(dir);
		dir[0] = '\0';
	}
}

/* ---- the two hosts' daemons */

static int start_proxy(int slot, bool primary)
{
	char guest_port[PATH_MAX + 40], ctl[PATH_MAX], creds[PATH_MAX];
	const char *host = primary ? "phost" : "shost";
	char *argv[] = { "colo",
			 "proxy",
			 "--role",
			 primary ? "primary" : "secondary",
			 "--client",
			 "packet:sw",
			 "--guest",
			 guest_port,
			 primary ? "--link-listen" : "--link-connect",
			 "10.78.0.1:7070",
			 "--control",
			 ctl,
			 "--tls-creds",
			 creds,
			 "--tls-peer",
			 primary ? "shost" : "phost",
			 NULL };

	snprintf(guest_port, sizeof(guest_port), "qemu:unix-listen:%s/%s.nic",
		 dir, host);
	snprintf(ctl, sizeof(ctl), "%s/%s-proxy.sock", dir, host);
	snprintf(creds, sizeof(creds), "%s/%s", dir, host);
	return spawn(slot, host, argv, NULL) > 0 ? 0 : -1;
}

static int start_vm(int slot, bool primary, const struct opts *o)
{
	const char *host = primary ? "phost" : "shost";
	char vmdir[PATH_MAX], ctl[PATH_MAX], nic[PATH_MAX], pctl[PATH_MAX];
	char dump[PATH_MAX], kernel[PATH_MAX + 16], initrd[PATH_MAX + 24];
	char mem[16], interval[16], append[256], device[96];
	char *argv[] = { "colo",
			 "vm",
			 "--role",
			 primary ? "primary" : "secondary",
			 "--dir",
			 vmdir,
			 primary ? "--link-listen" : "--link-connect",
			 "10.78.0.1:7800",
			 "--control",
			 ctl,
			 "--qemu",
			 (char *)o->qemu,
			 "--interval",
			 interval,
			 "--min-interval",
			 "300",
			 "--nic",
			 nic,
			 "--proxy-control",
			 pctl,
			 "--dump-dir",
			 dump,
			 "--",
			 "-machine",
			 "pc",
			 "-accel",
			 "tcg",
			 "-m",
			 mem,
			 "-nodefaults",
			 "-vga",
			 "none",
			 "-display",
			 "none",
			 "-serial",
			 "stdio",
			 "-kernel",
			 kernel,
			 "-initrd",
			 initrd,
			 "-append",
			 append,
			 "-device",
			 device,
			 NULL };

	snprintf(vmdir, sizeof(vmdir), "%s/%s-vm", dir, host);
	snprintf(ctl, sizeof(ctl), "%s/%s-vm.sock", dir, host);
	snprintf(nic, sizeof(nic), "unix:%s/%s.nic", dir, host);
	snprintf(pctl, sizeof(pctl), "%s/%s-proxy.sock", dir, host);
	snprintf(dump, sizeof(dump), "%s/%s-dump", dir, host);
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", guest);
	snprintf(initrd, sizeof(initrd), "%s/initrd.cpio.gz", guest);
	snprintf(mem, sizeof(mem), "%dM", o->mem_mb);
	snprintf(interval, sizeof(interval), "%d", o->interval_ms);
	/* ipv6.disable: the two guests' IPv6 start-up chatter (random
	 * DAD nonces) would diverge for no reason the demo wants to show. */
	snprintf(append, sizeof(append),
		 "console=ttyS0 quiet ipv6.disable=1 colo_ip=" GUEST_IP
		 "/24 colo_echo=%d colo_clock=%d",
		 ECHO_PORT, CLOCK_PORT);
	snprintf(device, sizeof(device),
		 "virtio-net-pci,netdev=colo-nic,mac=" GUEST_MAC);
	if (mkdir(dump, 0700) < 0 && errno != EEXIST)
		return -1;
	return spawn(slot, host, argv, NULL) > 0 ? 0 : -1;
}

static char sock_p[PATH_MAX], sock_s[PATH_MAX], vm_p[PATH_MAX], vm_s[PATH_MAX];

/* ---- the live line */

static void refresh(void)
{
	json_object *o;

	if (!vw.primary_dead) {
		o = colo_demo_request(vm_p, "status", 2000);
		if (o) {
			vw.checkpoints = colo_demo_field(o, "checkpoints");
			vw.failures = colo_demo_field(o, "failures");
			vw.by_proxy = (int64_t)colo_demo_field_d(o, "by_reason",
								 "proxy");
			vw.by_periodic = (int64_t)colo_demo_field_d(
				o, "by_reason", "periodic");
			vw.by_command = (int64_t)colo_demo_field_d(
				o, "by_reason", "command");
			vw.pause_last =
				colo_demo_field_d(o, NULL, "pause_last_ms");
			vw.pause_median =
				colo_demo_field_d(o, NULL, "pause_median_ms");
			vw.pause_max =
				colo_demo_field_d(o, NULL, "pause_max_ms");
			snprintf(vw.pmode, sizeof(vw.pmode), "%s",
				 colo_demo_field_s(o, "mode"));
		}
		json_object_put(o);
		o = colo_demo_request(sock_p, "stats", 2000);
		if (o) {
			vw.held = colo_demo_field(o, "held_frames");
			vw.released = colo_demo_field(o, "released_frames");
			vw.divergences = colo_demo_field(o, "divergences");
			vw.requests = colo_demo_field(o, "checkpoint_requests");
		}
		json_object_put(o);
	}
	o = colo_demo_request(vm_s, "status", 2000);
	if (o)
		snprintf(vw.smode, sizeof(vw.smode), "%s",
			 colo_demo_field_s(o, "mode"));
	json_object_put(o);
}

static void live_line(bool force)
{
	uint64_t t = colo_now_ns();
	bool tty = isatty(1);

	if (!force && t - vw.last_print < COLO_NS_PER_S)
		return;
	vw.last_print = t;
	refresh();
	printf("%s[%5.1fs] checkpoints %lld (comparer %lld) | last pause "
	       "%.0f ms | output held %lld, released %lld | echoes %llu | "
	       "A %s, B %s%s",
	       tty ? "\r" : "", (double)(t - t_start) / 1e9,
	       (long long)vw.checkpoints, (long long)vw.by_proxy,
	       vw.pause_last < 0 ? 0 : vw.pause_last, (long long)vw.held,
	       (long long)vw.released,
	       (unsigned long long)(cl ? cl->rounds : 0),
	       vw.primary_dead ? "dead" : vw.pmode, vw.smode,
	       tty ? "   " : "\n");
	fflush(stdout);
}

static void endline(void)
{
	if (isatty(1))
		printf("\n");
}

/* A daemon that exits on its own is a failure the user must see. */
static int check_daemons(void)
{
	for (int i = P_PPROXY; i <= P_SVM; i++)
		if (started[i] && !expect_gone[i] && !alive(i)) {
			char log[PATH_MAX + 32];

			endline();
			fprintf(stderr,
				"colo demo: %s exited unexpectedly (%s %d)\n",
				proc_names[i],
				WIFSIGNALED(exit_status[i]) ? "signal"
							    : "status",
				WIFSIGNALED(exit_status[i])
					? WTERMSIG(exit_status[i])
					: WEXITSTATUS(exit_status[i]));
			snprintf(log, sizeof(log), "%s/%s.log", dir,
				 proc_names[i]);
			colo_demo_show_log(log, proc_names[i], 30);
			return -1;
		}
	return 0;
}

/* Waits (live line running) until cond() or timeout_s; -1 on timeout,
 * interruption or a daemon gone. */
static int wait_until(bool (*cond)(void), int timeout_s, const char *what)
{
	uint64_t end = colo_now_ns() + (uint64_t)timeout_s * COLO_NS_PER_S;

	while (!cond()) {
		if (colo_demo_interrupted || check_daemons() < 0)
			return -1;
		if (colo_now_ns() > end) {
			endline();
			fprintf(stderr, "colo demo: timed out waiting for %s\n",
				what);
			return -1;
		}
		live_line(false);
		usleep(100000);
	}
	return 0;
}

static bool proxies_up(void)
{
	json_object *o = colo_demo_request(sock_p, "status", 1000);
	bool up = colo_demo_field(o, "peer") == 1;

	json_object_put(o);
	return up;
}

static bool nics_ready(void)
{
	char a[PATH_MAX], b[PATH_MAX];

	path_of(a, sizeof(a), "phost.nic");
	path_of(b, sizeof(b), "shost.nic");
	return access(a, F_OK) == 0 && access(b, F_OK) == 0;
}

static bool protected(void)
{
	return strcmp(vw.pmode, "protected") == 0 &&
	       strcmp(vw.smode, "protected") == 0;
}

static bool echo_going(void)
{
	return cl->state != 0 || cl->rounds >= 3;
}

static uint64_t probe_target;
static bool probe_done(void)
{
	return cl->probe_state != 0 || !alive(P_PROBE);
}

static bool rounds_reached(void)
{
	return cl->state != 0 || cl->rounds >= probe_target;
}

static void run_echo(void)
{
	colo_demo_echo_client(cl, GUEST_IP, ECHO_PORT, 180);
}

static void run_probe(void)
{
	colo_demo_probe(cl, GUEST_IP, CLOCK_PORT);
}

/* ---- memory check: an explicit checkpoint with RAM dumps */

static int same_file(const char *a, const char *b)
{
	static char x[1 << 20], y[1 << 20];
	int fa = open(a, O_RDONLY | O_CLOEXEC),
	    fb = open(b, O_RDONLY | O_CLOEXEC);
	int r = -1;

	if (fa >= 0 && fb >= 0) {
		for (;;) {
			ssize_t n = read(fa, x, sizeof(x)),
				m = read(fb, y, sizeof(y));

			if (n != m || n < 0 || memcmp(x, y, (size_t)n) != 0) {
				r = 0;
				break;
			}
			if (n == 0) {
				r = 1;
				break;
			}
		}
	}
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return r;
}

static int64_t vm_count(const char *sub, const char *name)
{
	json_object *o = colo_demo_request(vm_p, "status", 2000);
	int64_t v = sub ? (int64_t)colo_demo_field_d(o, sub, name)
			: colo_demo_field(o, name);

	json_object_put(o);
	return v;
}

/* The sequence number of the dump the primary wrote (the only one
 * there: each is removed once compared), or -1. */
static int64_t dumped_seq(void)
{
	char d[PATH_MAX];
	struct dirent *e;
	long long seq = -1;
	DIR *dp;

	snprintf(d, sizeof(d), "%s/phost-dump", dir);
	dp = opendir(d);
	if (!dp)
		return -1;
	while ((e = readdir(dp)))
		if (sscanf(e->d_name, "ckpt-%lld.ram", &seq) == 1)
			break;
	closedir(dp);
	return seq;
}

/* 1 equal, 0 different, -1 the checkpoint failed. */
static int mem_check(void)
{
	char a[PATH_MAX + 64], b[PATH_MAX + 64];
	int64_t seq, cmd0 = vm_count("by_reason", "command"),
		     fail0 = vm_count(NULL, "failures");
	uint64_t end = colo_now_ns() + 120 * COLO_NS_PER_S;
	json_object *o;
	int r;

	o = colo_demo_request_line(
		vm_p, "{\"cmd\":\"checkpoint\",\"dump\":true}", 120000);
	if (!o || colo_demo_field(o, "ok") != 1) {
		endline();
		printf("memory check: the checkpoint failed: %s\n",
		       o ? colo_demo_field_s(o, "error") : "no reply");
		json_object_put(o);
		return -1;
	}
	json_object_put(o);
	/* Too soon after the last checkpoint the daemon defers the command
	 * (dump included) and runs it by itself: wait for it rather than
	 * ask again (each new request would be deferred in turn). */
	while (vm_count("by_reason", "command") <= cmd0) {
		if (colo_demo_interrupted || check_daemons() < 0 ||
		    colo_now_ns() > end || vm_count(NULL, "failures") > fail0) {
			endline();
			printf("memory check: the deferred checkpoint did not "
			       "complete\n");
			return -1;
		}
		live_line(false);
		usleep(100000);
	}
	seq = dumped_seq();
	snprintf(a, sizeof(a), "%s/phost-dump/ckpt-%lld.ram", dir,
		 (long long)seq);
	snprintf(b, sizeof(b), "%s/shost-dump/ckpt-%lld.ram", dir,
		 (long long)seq);
	r = seq < 0 ? -1 : same_file(a, b);
	refresh();
	endline();
	printf("memory check: checkpoint %lld (pause %.0f ms): both VMs' RAM "
	       "dumped while stopped: %s\n",
	       (long long)seq, vw.pause_last,
	       r == 1	? "identical"
	       : r == 0 ? "DIFFERENT"
			: "dump missing");
	unlink(a);
	unlink(b);
	return r;
}

/* ---- the divergence: the guest's clock service answers differently on
 * the two VMs (each reads its own clock when the connection comes); the
 * comparer holds the primary's answer and asks for a checkpoint; colo vm
 * performs it and the comparer releases the answer. */

static int diverge(int *repaired)
{
	int64_t req0, by0;

	refresh();
	req0 = vw.requests;
	by0 = vw.by_proxy;
	for (int i = 0; i < 3 && !colo_demo_interrupted; i++) {
		cl->probe_state = 0;
		cl->probe_len = 0;
		if (spawn(P_PROBE, "client", (char *[]){ NULL }, run_probe) <=
		    0)
			return -1;
		if (wait_until(probe_done, 90, "the clock service") < 0)
			return -1;
		reap(P_PROBE);
		refresh();
		endline();
		printf("divergence probe %d: the guest's clock service "
		       "answered \"%s\"; comparer divergences %lld, "
		       "checkpoint requests %lld\n",
		       i + 1, cl->probe_text, (long long)vw.divergences,
		       (long long)vw.requests);
		if (cl->probe_state != 1) {
			printf("colo demo: the clock service's connection "
			       "failed (%s); a guest built before colo_clock "
			       "existed? Rebuild it: contrib/guest/build.sh "
			       "DIR\n",
			       cl->err[0] ? cl->err : "no answer");
			return -1;
		}
		if (vw.requests > req0)
			break;
	}
	if (vw.requests <= req0)
		return 0;
	/* The comparer's request becomes a checkpoint of reason "proxy". */
	for (int i = 0; i < 300 && vw.by_proxy <= by0; i++) {
		if (colo_demo_interrupted || check_daemons() < 0)
			return -1;
		usleep(100000);
		live_line(false);
	}
	*repaired = vw.by_proxy > by0;
	printf("divergence: the two VMs' answers differed; the comparer held "
	       "the primary's, asked for\na checkpoint and released it after; "
	       "colo vm made "
	       "%lld (reason \"proxy\"): %s\n",
	       (long long)(vw.by_proxy - by0),
	       *repaired ? "the secondary is a copy again" : "NOT repaired");
	return 1;
}

/* ---- the run */

static int parse(int argc, char **argv, struct opts *o, const char **gdir)
{
	static const struct option lopts[] = {
		{ "vm", no_argument, NULL, 'v' },
		{ "guest", required_argument, NULL, 'g' },
		{ "qemu", required_argument, NULL, 'q' },
		{ "mem", required_argument, NULL, 'm' },
		{ "interval", required_argument, NULL, 'i' },
		{ "mem-checks", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		char *end;
		long v = 0;

		if (optarg) {
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (c != 'g' && c != 'q' &&
			    (errno || *end || end == optarg)) {
				fprintf(stderr, "colo demo: not a number: %s\n",
					optarg);
				return 2;
			}
		}
		switch (c) {
		case 'v':
			break;
		case 'g':
			*gdir = optarg;
			break;
		case 'q':
			o->qemu = optarg;
			break;
		case 'm':
			if (v < 64 || v > 4096) {
				fprintf(stderr, "colo demo: --mem between 64 "
						"and 4096\n");
				return 2;
			}
			o->mem_mb = (int)v;
			break;
		case 'i':
			if (v < 500 || v > 600000) {
				fprintf(stderr, "colo demo: --interval between "
						"500 and 600000\n");
				return 2;
			}
			o->interval_ms = (int)v;
			break;
		case 'c':
			if (v < 1 || v > 100) {
				fprintf(stderr, "colo demo: --mem-checks "
						"between 1 and 100\n");
				return 2;
			}
			o->mem_checks = (int)v;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "colo demo: unexpected argument: %s\n",
			argv[optind]);
		fputs(usage, stderr);
		return 2;
	}
	return -1;
}

static int preflight(const struct opts *o, const char *gdir)
{
	ssize_t n;

	if (geteuid() != 0) {
		fprintf(stderr, "colo demo: needs root: it builds network "
				"namespaces, veth pairs and a bridge\n"
				"(nothing outside them is touched). Try: sudo "
				"colo demo\n");
		return -1;
	}
	if (system("ip -V >/dev/null 2>&1") != 0) {
		fprintf(stderr, "colo demo: needs iproute2 (the ip command): "
				"apt-get install iproute2\n");
		return -1;
	}
	if (!in_path(o->qemu)) {
		fprintf(stderr,
			"colo demo: %s not found: install QEMU (apt-get "
			"install qemu-system-x86),\nor run ./dev.sh run. "
			"The namespace demo needs no QEMU: colo demo "
			"--netns\n",
			o->qemu);
		return -1;
	}
	if (find_guest(gdir) < 0)
		return -1;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		fprintf(stderr, "colo demo: cannot find my own binary\n");
		return -1;
	}
	self[n] = '\0';
	return 0;
}

/* A private directory with an unguessable name for sockets, logs, the
 * guest RAM files and dumps: tmpfs (/dev/shm) unless TMPDIR says
 * otherwise. Socket paths must stay short. */
static int make_dir(void)
{
	const char *t = getenv("TMPDIR");
	struct stat st;

	if (!t || !*t)
		t = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
	if (strlen(t) > 48) {
		fprintf(stderr, "colo demo: TMPDIR too long for socket paths "
				"(48 characters at most)\n");
		return -1;
	}
	snprintf(dir, sizeof(dir), "%s/colo-demo-XXXXXX", t);
	if (!mkdtemp(dir)) {
		fprintf(stderr, "colo demo: %s: %s\n", dir, strerror(errno));
		dir[0] = '\0';
		return -1;
	}
	snprintf(sock_p, sizeof(sock_p), "%s/phost-proxy.sock", dir);
	snprintf(sock_s, sizeof(sock_s), "%s/shost-proxy.sock", dir);
	snprintf(vm_p, sizeof(vm_p), "%s/phost-vm.sock", dir);
	snprintf(vm_s, sizeof(vm_s), "%s/shost-vm.sock", dir);
	return 0;
}

static void show_logs(void)
{
	for (int i = 0; i < P_MAX; i++) {
		char log[PATH_MAX + 32];

		snprintf(log, sizeof(log), "%s/%s.log", dir, proc_names[i]);
		colo_demo_show_log(log, proc_names[i], 15);
	}
}

struct result {
	int mem_checks, mem_equal, diverged, repaired, survived;
	double failover_ms, stall_ms;
	uint64_t rounds, bytes, rounds_at_kill;
};

static int run(const struct opts *o, struct result *res)
{
	uint64_t t_kill, t;
	json_object *r;

	if (colo_demo_make_creds(dir, hosts, 2, cl->err, sizeof(cl->err)) < 0) {
		fprintf(stderr, "colo demo: credentials: %s\n", cl->err);
		return -1;
	}
	creds_made = true;
	printf("colo demo: state in %s (TLS credentials of a throwaway CA, "
	       "sockets, logs, guest RAM)\n",
	       dir);
	printf("colo demo: guest %s (QEMU TCG, %d MiB)\n", guest, o->mem_mb);
	printf("colo demo: building the topology (namespaces %s*)\n", prefix);
	if (topo_build() < 0)
		return -1;
	printf("colo demo: colo proxy on hosts A and B (TLS link)\n");
	if (start_proxy(P_SPROXY, false) < 0 || start_proxy(P_PPROXY, true) < 0)
		return -1;
	if (wait_until(nics_ready, 20, "the proxies' guest ports") < 0 ||
	    wait_until(proxies_up, 30, "the proxies' link") < 0)
		return -1;
	printf("colo demo: colo vm on hosts A and B: booting both VMs, first "
	       "checkpoint (full copy)\n");
	t_start = colo_now_ns();
	if (start_vm(P_SVM, false, o) < 0 || start_vm(P_PVM, true, o) < 0)
		return -1;
	if (wait_until(protected, 240, "both VMs protected") < 0)
		return -1;
	endline();
	printf("colo demo: protected; the client opens one TCP connection to "
	       "the guest's echo service\n");
	if (spawn(P_CLIENT, "client", (char *[]){ NULL }, run_echo) <= 0)
		return -1;
	if (wait_until(echo_going, 240, "the guest's echo service") < 0)
		return -1;
	if (cl->state < 0)
		goto client_failed;

	/* Memory checks spread over the run: one now, one after the
	 * divergence was repaired, the rest before the primary dies. */
	for (int i = 0; i < o->mem_checks && !colo_demo_interrupted; i++) {
		if (i == 1) {
			int d = diverge(&res->repaired);

			if (d < 0)
				return -1;
			res->diverged = d;
		}
		probe_target = cl->rounds + 10;
		if (wait_until(rounds_reached, 120, "echoes") < 0)
			return -1;
		if (cl->state < 0)
			goto client_failed;
		res->mem_checks++;
		if (mem_check() == 1)
			res->mem_equal++;
	}
	if (o->mem_checks == 1) {
		int d = diverge(&res->repaired);

		if (d < 0)
			return -1;
		res->diverged = d;
	}
	probe_target = cl->rounds + 10;
	if (wait_until(rounds_reached, 120, "echoes") < 0 || cl->state < 0)
		goto client_failed;
	live_line(true);
	refresh();

	endline();
	printf("\n*** host A dies: its colo vm (with QEMU) and colo proxy are "
	       "SIGKILLed, its link down ***\n");
	t_kill = colo_now_ns();
	cl->kill_ns = t_kill;
	res->rounds_at_kill = cl->rounds;
	vw.primary_dead = true;
	expect_gone[P_PVM] = expect_gone[P_PPROXY] = true;
	kill_slot(P_PVM, SIGKILL);
	kill_slot(P_PPROXY, SIGKILL);
	reap(P_PVM);
	reap(P_PPROXY);
	colo_demo_sh(NS("phost") "ip link set sw down", prefix);
	r = colo_demo_request(sock_s, "failover", 5000);
	t = colo_now_ns();
	printf("*** failover on host B: colo proxy %s",
	       r && colo_demo_field(r, "ok") == 1 ? "took over" : "FAILED");
	json_object_put(r);
	r = colo_demo_request(vm_s, "failover", 10000);
	res->failover_ms = (double)(t - t_kill) / 1e6;
	printf(", colo vm %s (%.0f ms after the kill) ***\n\n",
	       r && colo_demo_field(r, "ok") == 1 ? "runs the VM alone"
						  : "FAILED",
	       res->failover_ms);
	json_object_put(r);
	probe_target = res->rounds_at_kill + 30;
	if (wait_until(rounds_reached, 60, "echoes after the failover") < 0)
		goto client_failed;
	live_line(true);
	endline();
	cl->stop = 1;
	for (int i = 0; i < 100 && alive(P_CLIENT); i++)
		usleep(100000);
	if (cl->state != 1)
		goto client_failed;
	res->survived = 1;
	res->rounds = cl->rounds;
	res->bytes = cl->bytes;
	res->stall_ms = (double)cl->stall_ns / 1e6;
	return 0;

client_failed:
	endline();
	if (cl->state < 0)
		printf("colo demo: the client failed: %s\n", cl->err);
	res->rounds = cl->rounds;
	return -1;
}

int colo_demo_vm(int argc, char **argv)
{
	struct opts o = { "qemu-system-x86_64", 128, 3000, 3 };
	struct result res;
	const char *gdir = NULL;
	int rc = parse(argc, argv, &o, &gdir);
	bool ok;

	if (rc >= 0)
		return rc;
	if (preflight(&o, gdir) < 0)
		return 1;
	memset(&res, 0, sizeof(res));
	memset(&vw, 0, sizeof(vw));
	cl = mmap(NULL, sizeof(*cl), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (cl == MAP_FAILED)
		return 1;
	memset(cl, 0, sizeof(*cl));
	colo_demo_catch_signals();
	snprintf(prefix, sizeof(prefix), "cvm%d-", (int)(getpid() % 100000));
	if (make_dir() < 0) {
		munmap(cl, sizeof(*cl));
		return 1;
	}
	ok = run(&o, &res) == 0 && !colo_demo_interrupted;
	endline();
	if (colo_demo_interrupted) {
		printf("colo demo: interrupted\n");
	} else if (ok) {
		char b[32];

		colo_demo_human(b, sizeof(b), (double)res.bytes);
		printf("summary:\n"
		       "  checkpoints: %lld (periodic %lld, asked by the "
		       "comparer %lld, explicit %lld), %lld failed\n"
		       "  pause: median %.0f ms, max %.0f ms (both VMs "
		       "stopped)\n"
		       "  memory identical after every explicit checkpoint: "
		       "%d/%d (RAM dumps compared byte for byte)\n"
		       "  divergence: %s\n"
		       "  client connection: one TCP connection, %llu echoes "
		       "(%s) checked, %llu after the failover: survived\n"
		       "  failover: %.0f ms from the kill to the secondary's "
		       "proxy taking over; longest stall\n"
		       "  the client saw after the kill: %.0f ms\n",
		       (long long)vw.checkpoints, (long long)vw.by_periodic,
		       (long long)vw.by_proxy, (long long)vw.by_command,
		       (long long)vw.failures, vw.pause_median, vw.pause_max,
		       res.mem_equal, res.mem_checks,
		       !res.diverged  ? "none seen (the answers matched)"
		       : res.repaired ? "seen and repaired by a checkpoint"
				      : "seen, NOT repaired",
		       (unsigned long long)res.rounds, b,
		       (unsigned long long)(res.rounds - res.rounds_at_kill),
		       res.failover_ms, res.stall_ms);
	} else {
		show_logs();
	}
	printf("colo demo: tearing down\n");
	fflush(stdout);
	teardown();
	printf("demo checkpoints=%lld mem_equal=%d/%d diverged=%d "
	       "repaired=%d conn_survived=%d stall_ms=%.0f failover_ms=%.0f "
	       "pause_median_ms=%.0f ok=%d\n",
	       (long long)vw.checkpoints, res.mem_equal, res.mem_checks,
	       res.diverged, res.repaired, res.survived, res.stall_ms,
	       res.failover_ms, vw.pause_median, ok ? 1 : 0);
	munmap(cl, sizeof(*cl));
	return ok && res.mem_equal == res.mem_checks ? 0 : 1;
}
