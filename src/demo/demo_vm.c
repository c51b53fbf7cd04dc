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
 * The stage (namespaces, daemons, teardown) is demo_vm_hosts.c, the
 * client demo_vm_client.c; this file is the story and what it shows.
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
#include "demo_vm_hosts.h"
#include "parse_num.h"

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
	"                   " COLO_DEMO_GUEST_CACHE
	"/); ./dev.sh run builds it\n"
	"                   with contrib/guest/build.sh\n"
	"  --qemu BIN       QEMU binary (default qemu-system-x86_64)\n"
	"  --mem MB         guest RAM (default 128)\n"
	"  --interval MS    periodic checkpoint interval (default 3000)\n"
	"  --mem-checks N   explicit checkpoints whose RAM is compared "
	"(default 3)\n"
	"  -h, --help       this text\n"
	"\n"
	"Needs iproute2 and QEMU (qemu-system-x86). See doc/colo-demo.1.md.\n";

static struct colo_demo_hosts hs;

struct opts {
	struct colo_demo_vm_args vm;
	int mem_checks;
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
	snprintf(buf, n, "%s/%s", hs.dir, name);
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
	for (int i = COLO_DEMO_PPROXY; i <= COLO_DEMO_SVM; i++)
		if (hs.started[i] && !hs.expect_gone[i] &&
		    !colo_demo_hosts_alive(&hs, i)) {
			char log[PATH_MAX + 32];

			endline();
			fprintf(stderr,
				"colo demo: %s exited unexpectedly (%s %d)\n",
				colo_demo_proc_names[i],
				WIFSIGNALED(hs.exit_status[i]) ? "signal"
							       : "status",
				WIFSIGNALED(hs.exit_status[i])
					? WTERMSIG(hs.exit_status[i])
					: WEXITSTATUS(hs.exit_status[i]));
			snprintf(log, sizeof(log), "%s/%s.log", hs.dir,
				 colo_demo_proc_names[i]);
			colo_demo_show_log(log, colo_demo_proc_names[i], 30);
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
	return cl->probe_state != 0 ||
	       !colo_demo_hosts_alive(&hs, COLO_DEMO_PROBE);
}

static bool rounds_reached(void)
{
	return cl->state != 0 || cl->rounds >= probe_target;
}

static void run_echo(void)
{
	colo_demo_echo_client(cl, COLO_DEMO_GUEST_IP, COLO_DEMO_ECHO_PORT, 180);
}

static void run_probe(void)
{
	colo_demo_probe(cl, COLO_DEMO_GUEST_IP, COLO_DEMO_CLOCK_PORT);
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

	snprintf(d, sizeof(d), "%s/phost-dump", hs.dir);
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
	snprintf(a, sizeof(a), "%s/phost-dump/ckpt-%lld.ram", hs.dir,
		 (long long)seq);
	snprintf(b, sizeof(b), "%s/shost-dump/ckpt-%lld.ram", hs.dir,
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
		if (colo_demo_hosts_spawn(&hs, COLO_DEMO_PROBE, "client",
					  (char *[]){ NULL }, run_probe) <= 0)
			return -1;
		if (wait_until(probe_done, 90, "the clock service") < 0)
			return -1;
		colo_demo_hosts_reap(&hs, COLO_DEMO_PROBE);
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

/* The numeric options: their letter, range and int field of struct opts. */
static const struct num_opt {
	int c;
	const char *name;
	int min, max;
	size_t off;
} nums[] = {
	{ 'm', "mem", 64, 4096, offsetof(struct opts, vm.mem_mb) },
	{ 'i', "interval", 500, 600000, offsetof(struct opts, vm.interval_ms) },
	{ 'c', "mem-checks", 1, 100, offsetof(struct opts, mem_checks) },
};

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
		const struct num_opt *n = NULL;
		uint64_t v;

		for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++)
			if (nums[k].c == c)
				n = &nums[k];
		if (n) {
			if (colo_parse_u64(optarg, (uint64_t)n->max, &v) < 0 ||
			    v < (uint64_t)n->min) {
				fprintf(stderr,
					"colo demo: --%s: a number from %d to "
					"%d\n",
					n->name, n->min, n->max);
				return 2;
			}
			*(int *)((char *)o + n->off) = (int)v;
			continue;
		}
		switch (c) {
		case 'v':
			break;
		case 'g':
			*gdir = optarg;
			break;
		case 'q':
			o->vm.qemu = optarg;
			break;
		default:
			return colo_cli_help_or_usage(c, usage);
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
	if (!colo_demo_in_path(o->vm.qemu)) {
		fprintf(stderr,
			"colo demo: %s not found: install QEMU (apt-get "
			"install qemu-system-x86),\nor run ./dev.sh run. "
			"The namespace demo needs no QEMU: colo demo "
			"--netns\n",
			o->vm.qemu);
		return -1;
	}
	if (colo_demo_hosts_find_guest(&hs, gdir) < 0)
		return -1;
	n = readlink("/proc/self/exe", hs.self, sizeof(hs.self) - 1);
	if (n <= 0) {
		fprintf(stderr, "colo demo: cannot find my own binary\n");
		return -1;
	}
	hs.self[n] = '\0';
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
	snprintf(hs.dir, sizeof(hs.dir), "%s/colo-demo-XXXXXX", t);
	if (!mkdtemp(hs.dir)) {
		fprintf(stderr, "colo demo: %s: %s\n", hs.dir, strerror(errno));
		hs.dir[0] = '\0';
		return -1;
	}
	snprintf(sock_p, sizeof(sock_p), "%s/phost-proxy.sock", hs.dir);
	snprintf(sock_s, sizeof(sock_s), "%s/shost-proxy.sock", hs.dir);
	snprintf(vm_p, sizeof(vm_p), "%s/phost-vm.sock", hs.dir);
	snprintf(vm_s, sizeof(vm_s), "%s/shost-vm.sock", hs.dir);
	return 0;
}

static void show_logs(void)
{
	for (int i = 0; i < COLO_DEMO_NPROC; i++) {
		char log[PATH_MAX + 32];

		snprintf(log, sizeof(log), "%s/%s.log", hs.dir,
			 colo_demo_proc_names[i]);
		colo_demo_show_log(log, colo_demo_proc_names[i], 15);
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

	if (colo_demo_make_creds(hs.dir, colo_demo_host_names, 2, cl->err,
				 sizeof(cl->err)) < 0) {
		fprintf(stderr, "colo demo: credentials: %s\n", cl->err);
		return -1;
	}
	hs.creds_made = true;
	printf("colo demo: state in %s (TLS credentials of a throwaway CA, "
	       "sockets, logs, guest RAM)\n",
	       hs.dir);
	printf("colo demo: guest %s (QEMU TCG, %d MiB)\n", hs.guest,
	       o->vm.mem_mb);
	printf("colo demo: building the topology (namespaces %s*)\n",
	       hs.prefix);
	if (colo_demo_hosts_topo_build(&hs) < 0)
		return -1;
	printf("colo demo: colo proxy on hosts A and B (TLS link)\n");
	if (colo_demo_hosts_start_proxy(&hs, COLO_DEMO_SPROXY, false) < 0 ||
	    colo_demo_hosts_start_proxy(&hs, COLO_DEMO_PPROXY, true) < 0)
		return -1;
	if (wait_until(nics_ready, 20, "the proxies' guest ports") < 0 ||
	    wait_until(proxies_up, 30, "the proxies' link") < 0)
		return -1;
	printf("colo demo: colo vm on hosts A and B: booting both VMs, first "
	       "checkpoint (full copy)\n");
	t_start = colo_now_ns();
	if (colo_demo_hosts_start_vm(&hs, COLO_DEMO_SVM, false, &o->vm) < 0 ||
	    colo_demo_hosts_start_vm(&hs, COLO_DEMO_PVM, true, &o->vm) < 0)
		return -1;
	if (wait_until(protected, 240, "both VMs protected") < 0)
		return -1;
	endline();
	printf("colo demo: protected; the client opens one TCP connection to "
	       "the guest's echo service\n");
	if (colo_demo_hosts_spawn(&hs, COLO_DEMO_CLIENT, "client",
				  (char *[]){ NULL }, run_echo) <= 0)
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
	hs.expect_gone[COLO_DEMO_PVM] = hs.expect_gone[COLO_DEMO_PPROXY] = true;
	colo_demo_hosts_kill(&hs, COLO_DEMO_PVM, SIGKILL);
	colo_demo_hosts_kill(&hs, COLO_DEMO_PPROXY, SIGKILL);
	colo_demo_hosts_reap(&hs, COLO_DEMO_PVM);
	colo_demo_hosts_reap(&hs, COLO_DEMO_PPROXY);
	colo_demo_sh(NS("phost") "ip link set sw down", hs.prefix);
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
	for (int i = 0; i < 100 && colo_demo_hosts_alive(&hs, COLO_DEMO_CLIENT);
	     i++)
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
	struct opts o = { { "qemu-system-x86_64", 128, 3000 }, 3 };
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
	snprintf(hs.prefix, sizeof(hs.prefix), "cvm%d-",
		 (int)(getpid() % 100000));
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
	cl->stop = 1;
	colo_demo_hosts_teardown(&hs);
	printf("demo checkpoints=%lld mem_equal=%d/%d diverged=%d "
	       "repaired=%d conn_survived=%d stall_ms=%.0f failover_ms=%.0f "
	       "pause_median_ms=%.0f ok=%d\n",
	       (long long)vw.checkpoints, res.mem_equal, res.mem_checks,
	       res.diverged, res.repaired, res.survived, res.stall_ms,
	       res.failover_ms, vw.pause_median, ok ? 1 : 0);
	munmap(cl, sizeof(*cl));
	return ok && res.mem_equal == res.mem_checks ? 0 : 1;
}
