/*
 * demo_vm_hosts.c - the stage of `colo demo` (VM variant): the client,
 * switch and two host namespaces, the guest the hosts boot, the command
 * lines of each host's colo proxy and colo vm, and the teardown.
 *
 * Every process runs in its own session (process group): one kill(-pid)
 * takes a daemon with its QEMUs, and Ctrl-C on the terminal reaches only
 * the demo, which then stops everything in order. A process whose command
 * line names the demo's directory (a QEMU whose daemon died) is killed
 * too, so nothing of ours outlives the demo.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "demo_creds.h"
#include "demo_util.h"
#include "demo_vm_hosts.h"

/* The guest comes from the demo's own cache (./dev.sh run fills it),
 * not the tests' (/var/cache/colo-test/guest), so a test tree with
 * another guest /init never rebuilds the demo's guest under it. */

const char *const colo_demo_proc_names[COLO_DEMO_NPROC] = {
	"primary-proxy", "secondary-proxy", "primary-vm",
	"secondary-vm",	 "client",	    "probe"
};
const char *const colo_demo_host_names[2] = { "phost", "shost" };
static const char *const nss[] = { "client", "switch", "phost", "shost" };

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
static bool find_in_cache(struct colo_demo_hosts *h, const char *cache)
{
	struct dirent *e;
	time_t best = 0;
	DIR *d = opendir(cache);

	if (!d)
		return false;
	while ((e = readdir(d))) {
		char p[sizeof(h->guest)];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		if (snprintf(p, sizeof(p), "%s/%s", cache, e->d_name) >=
		    (int)sizeof(p))
			continue;
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) && guest_ok(p) &&
		    st.st_mtime >= best) {
			best = st.st_mtime;
			memcpy(h->guest, p, sizeof(h->guest));
		}
	}
	closedir(d);
	return h->guest[0] != '\0';
}

int colo_demo_hosts_find_guest(struct colo_demo_hosts *h, const char *given)
{
	const char *env = getenv("COLO_GUEST_DIR");

	if (given || (env && *env)) {
		snprintf(h->guest, sizeof(h->guest), "%s", given ? given : env);
		if (guest_ok(h->guest))
			return 0;
		fprintf(stderr,
			"colo demo: %s has no vmlinuz and initrd.cpio.gz\n",
			h->guest);
	} else {
		if (find_in_cache(h, COLO_DEMO_GUEST_CACHE))
			return 0;
		fprintf(stderr,
			"colo demo: no guest kernel found (looked in "
			"$COLO_GUEST_DIR and " COLO_DEMO_GUEST_CACHE "/*/)\n");
	}
	fprintf(stderr,
		"colo demo: ./dev.sh run prepares it, or run "
		"contrib/guest/build.sh " COLO_DEMO_GUEST_CACHE
		"\n(Debian's kernel "
		"package fetched with apt-get download and unpacked with "
		"dpkg-deb -x,\nnever installed, plus a busybox-static "
		"initramfs; needs busybox-static, xz-utils\nand zstd). "
		"Without QEMU: colo demo --netns\n");
	return -1;
}

bool colo_demo_in_path(const char *bin)
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

int colo_demo_hosts_topo_build(struct colo_demo_hosts *h)
{
	const char *P = h->prefix;

	h->topo_up = true;
	if (colo_demo_wire_switch(P, nss, sizeof(nss) / sizeof(nss[0])))
		return -1;
	for (int i = 0; i < 2; i++) {
		const char *host = colo_demo_host_names[i];

		/* The hosts' own IPv6 chatter on sw would pass for guest
		 * traffic; the link network is the hosts' only address. */
		if (colo_demo_sh(NS("%s") "sysctl -qw "
					  "net.ipv6.conf.all.disable_ipv6=1",
				 P, host) ||
		    colo_demo_sh(NS("%s") "ip addr add 10.78.0.%d/24 dev lnk",
				 P, host, i + 1) ||
		    colo_demo_sh(NS("%s") "ip link set lnk up", P, host) ||
		    colo_demo_sh(NS("%s") "ip link set sw up promisc on", P,
				 host))
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

static void topo_down(struct colo_demo_hosts *h)
{
	colo_demo_quiet = true;
	for (size_t i = 0; i < sizeof(nss) / sizeof(nss[0]); i++)
		colo_demo_sh("ip netns del %s%s 2>/dev/null", h->prefix,
			     nss[i]);
	h->topo_up = false;
}

/* ---- processes: each in its own session (process group), so one
 * kill(-pid) takes a daemon with its QEMUs, and Ctrl-C on the terminal
 * reaches only the demo, which then tears down in order. */

pid_t colo_demo_hosts_spawn(struct colo_demo_hosts *h, int slot, const char *ns,
			    char *const argv[], void (*fn)(void))
{
	pid_t pid = fork();

	if (pid == 0) {
		char log[PATH_MAX + 32];
		int fd;

		setsid();
		colo_demo_sigpipe(SIG_DFL);
		if (colo_demo_enter_ns(h->prefix, ns) < 0)
			_exit(126);
		snprintf(log, sizeof(log), "%s/%s.log", h->dir,
			 colo_demo_proc_names[slot]);
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
		execv(h->self, argv);
		_exit(127);
	}
	h->procs[slot] = pid > 0 ? pid : 0;
	h->started[slot] = pid > 0;
	h->expect_gone[slot] = false;
	return pid;
}

/* Whether slot's process still runs (reaps it when it ended). */
bool colo_demo_hosts_alive(struct colo_demo_hosts *h, int slot)
{
	int st;

	if (h->procs[slot] <= 0)
		return false;
	if (waitpid(h->procs[slot], &st, WNOHANG) == 0)
		return true;
	h->exit_status[slot] = st;
	h->procs[slot] = 0;
	return false;
}

void colo_demo_hosts_kill(struct colo_demo_hosts *h, int slot, int sig)
{
	if (h->procs[slot] > 0) {
		kill(-h->procs[slot], sig);
		kill(h->procs[slot], sig);
	}
}

void colo_demo_hosts_reap(struct colo_demo_hosts *h, int slot)
{
	if (h->procs[slot] > 0) {
		waitpid(h->procs[slot], NULL, 0);
		h->procs[slot] = 0;
	}
}

/* Any process whose command line names our directory (QEMUs of the
 * daemons, should one outlive its parent) is ours: SIGKILL it. */
static void sweep(struct colo_demo_hosts *h)
{
	struct dirent *e;
	DIR *d = opendir("/proc");

	if (!d || !h->dir[0]) {
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
		if (strstr(buf, h->dir))
			kill(pid, SIGKILL);
	}
	closedir(d);
}

void colo_demo_hosts_teardown(struct colo_demo_hosts *h)
{
	uint64_t end = colo_now_ns() + 10 * COLO_NS_PER_S;
	bool any = true;

	/* Daemons first, politely: colo vm stops its QEMUs, the proxies
	 * remove their sockets. */
	for (int i = 0; i < COLO_DEMO_NPROC; i++)
		colo_demo_hosts_kill(h, i,
				     i == COLO_DEMO_CLIENT ||
						     i == COLO_DEMO_PROBE
					     ? SIGKILL
					     : SIGTERM);
	while (any && colo_now_ns() < end) {
		any = false;
		for (int i = 0; i < COLO_DEMO_NPROC; i++)
			any |= colo_demo_hosts_alive(h, i);
		if (any)
			usleep(100000);
	}
	for (int i = 0; i < COLO_DEMO_NPROC; i++) {
		colo_demo_hosts_kill(h, i, SIGKILL);
		colo_demo_hosts_reap(h, i);
	}
	sweep(h);
	if (h->topo_up)
		topo_down(h);
	if (h->dir[0]) {
		if (h->creds_made)
			colo_demo_remove_creds(h->dir, colo_demo_host_names, 2);
		colo_demo_rmtree(h->dir);
		h->dir[0] = '\0';
	}
}

/* ---- the two hosts' daemons */

int colo_demo_hosts_start_proxy(struct colo_demo_hosts *h, int slot,
				bool primary)
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
		 h->dir, host);
	snprintf(ctl, sizeof(ctl), "%s/%s-proxy.sock", h->dir, host);
	snprintf(creds, sizeof(creds), "%s/%s", h->dir, host);
	return colo_demo_hosts_spawn(h, slot, host, argv, NULL) > 0 ? 0 : -1;
}

int colo_demo_hosts_start_vm(struct colo_demo_hosts *h, int slot, bool primary,
			     const struct colo_demo_vm_args *o)
{
	const char *host = primary ? "phost" : "shost";
	char vmdir[PATH_MAX], ctl[PATH_MAX], nic[PATH_MAX], pctl[PATH_MAX];
	char dump[PATH_MAX], kernel[PATH_MAX + 16], initrd[PATH_MAX + 24];
	char mem[16], interval[16], append[256], device[96], creds[PATH_MAX];
	char *argv[] = {
		"colo", "vm", "--role", primary ? "primary" : "secondary",
		"--dir", vmdir, primary ? "--link-listen" : "--link-connect",
		"10.78.0.1:7800", "--control", ctl, "--qemu", (char *)o->qemu,
		"--interval", interval, "--min-interval", "300", "--nic", nic,
		"--proxy-control", pctl, "--dump-dir", dump,
		/* the frame link and the migration stream in TLS, with
		 * the proxies' credentials */
		"--tls-creds", creds, "--tls-peer", primary ? "shost" : "phost",
		"--", "-machine", "pc", "-accel", "tcg", "-m", mem,
		"-nodefaults", "-vga", "none", "-display", "none", "-serial",
		"stdio", "-kernel", kernel, "-initrd", initrd, "-append",
		append, "-device", device, NULL
	};

	snprintf(vmdir, sizeof(vmdir), "%s/%s-vm", h->dir, host);
	snprintf(ctl, sizeof(ctl), "%s/%s-vm.sock", h->dir, host);
	snprintf(nic, sizeof(nic), "unix:%s/%s.nic", h->dir, host);
	snprintf(pctl, sizeof(pctl), "%s/%s-proxy.sock", h->dir, host);
	snprintf(dump, sizeof(dump), "%s/%s-dump", h->dir, host);
	snprintf(creds, sizeof(creds), "%s/%s", h->dir, host);
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", h->guest);
	snprintf(initrd, sizeof(initrd), "%s/initrd.cpio.gz", h->guest);
	snprintf(mem, sizeof(mem), "%dM", o->mem_mb);
	snprintf(interval, sizeof(interval), "%d", o->interval_ms);
	/* ipv6.disable: the two guests' IPv6 start-up chatter (random
	 * DAD nonces) would diverge for no reason the demo wants to show. */
	snprintf(
		append, sizeof(append),
		"console=ttyS0 quiet ipv6.disable=1 colo_ip=" COLO_DEMO_GUEST_IP
		"/24 colo_echo=%d colo_clock=%d",
		COLO_DEMO_ECHO_PORT, COLO_DEMO_CLOCK_PORT);
	snprintf(device, sizeof(device),
		 "virtio-net-pci,netdev=colo-nic,mac=" COLO_DEMO_GUEST_MAC);
	if (mkdir(dump, 0700) < 0 && errno != EEXIST)
		return -1;
	return colo_demo_hosts_spawn(h, slot, host, argv, NULL) > 0 ? 0 : -1;
}
