/*
 * demo_netns.c - `colo demo --netns`: COLO protecting a real TCP service,
 * end to end, on this machine, then surviving the loss of the primary,
 * with network namespaces as the guests (no QEMU needed).
 *
 * It builds the topology of tests/e2e in network namespaces (client,
 * switch, primary and secondary hosts, two guests with the same IP and
 * MAC), runs a deterministic stream service in both guests and
 * `colo proxy` on both hosts (this same binary), and streams data to a
 * client that checks every byte. Midway it kills the primary host (its
 * proxy SIGKILLed, its guest cut off) and fails over to the secondary;
 * the client's connection carries on. Everything is torn down at the end,
 * on Ctrl-C and on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "control.h"
#include "demo_creds.h"
#include "demo_util.h"
#include "demo.h"
#include "evloop.h"
#include "parse_num.h"

#define GUEST_IP  "10.77.0.10"
#define GUEST_MAC "02:c0:10:00:00:10"
#define PORT	  5001
#define CHUNK	  (1u << 20)
/* A prime period: the stream never lines up with buffer sizes, so a
 * misplaced chunk would not compare equal by accident. */
#define PERIOD 1048573u

static const char usage[] =
	"Usage: colo demo --netns [--seconds N]\n"
	"\n"
	"Shows COLO fault tolerance end to end on this machine with network\n"
	"namespaces as guests (root: it "
	"creates network namespaces; nothing outside them is touched).\n"
	"\n"
	"  client --- switch --- primary host  [colo proxy] --- primary guest\n"
	"                    \\-- secondary host [colo proxy] --- secondary "
	"guest\n"
	"\n"
	"Both guests (same IP and MAC, each its own TCP stack) run the same\n"
	"deterministic stream service. The client downloads from it while a\n"
	"progress line shows throughput, bytes compared by the primary's\n"
	"comparer and checkpoint requests. Midway the primary host dies (its\n"
	"proxy SIGKILLed, its guest cut off) and the secondary takes over:\n"
	"the client's connection carries on, every byte is checked, and a\n"
	"summary reports the longest stall. Everything is torn down at the\n"
	"end, on Ctrl-C and on failure.\n"
	"\n"
	"  --seconds N   length of the run (default 12; failover at half)\n"
	"  -h, --help    this text\n"
	"\n"
	"Needs iproute2 (ip). See doc/colo-demo.1.md.\n";

struct shared {
	volatile uint64_t bytes;
	volatile uint64_t last_rx_ns;
	volatile uint64_t failover_ns;	  /* set by the parent */
	volatile uint64_t stall_after_ns; /* longest gap after failover */
	volatile int state;		  /* 0 running, 1 done ok, -1 failed */
	volatile int stop;
	char err[160];
};

static char prefix[32], dir[64], self[PATH_MAX];
static pid_t children[16];
static int nchildren;
static bool topo_up;

/* The demo's parent is a plain sequence of sleeps and requests, not a
 * daemon on an event loop: a flag set by a handler is all it needs. */
static void set_handler(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static uint64_t now_ns(void)
{
	return colo_now_ns();
}

#define sh colo_demo_sh

static int enter_ns(const char *name)
{
	return colo_demo_enter_ns(prefix, name);
}

/* ---- topology (the same as tests/e2e/topo.sh) */

static const char *const nss[] = { "client", "switch", "phost",
				   "shost",  "pguest", "sguest" };

static void topo_down(void)
{
	colo_demo_quiet = true;
	for (size_t i = 0; i < sizeof(nss) / sizeof(nss[0]); i++)
		sh("ip netns del %s%s 2>/dev/null", prefix, nss[i]);
	topo_up = false;
}

#define NS(n) "ip netns exec %s" n " "

static int topo_build(void)
{
	const char *P = prefix;
	static const char *const guests[] = { "pguest", "sguest" };
	static const char *const hosts[] = { "phost", "shost" };

	topo_up = true;
	if (colo_demo_wire_switch(P, nss, sizeof(nss) / sizeof(nss[0])))
		return -1;
	/* Each guest's veth: eth0 in the guest, gst on its host. */
	for (int i = 0; i < 2; i++) {
		char r = "ps"[i];

		if (sh("ip link add %s%cg type veth peer name %s%cgh", P, r, P,
		       r) ||
		    sh("ip link set %s%cg netns %s%cguest name eth0", P, r, P,
		       r) ||
		    sh("ip link set %s%cgh netns %s%chost name gst", P, r, P,
		       r))
			return -1;
	}
	for (int i = 0; i < 2; i++) {
		const char *h = hosts[i], *g = guests[i];

		if (sh(NS("%s") "ip addr add 10.78.0.%d/24 dev lnk", P, h,
		       i + 1) ||
		    sh(NS("%s") "ip link set lnk up", P, h) ||
		    sh(NS("%s") "ip link set sw up promisc on", P, h) ||
		    sh(NS("%s") "ip link set gst up promisc on", P, h) ||
		    sh(NS("%s") "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
		       P, g) ||
		    sh(NS("%s") "sysctl -qw net.ipv4.tcp_moderate_rcvbuf=0", P,
		       g) ||
		    sh(NS("%s") "sysctl -qw net.ipv4.tcp_rmem='4096 4194304 "
				"8388608'",
		       P, g) ||
		    sh(NS("%s") "ip link set eth0 address " GUEST_MAC, P, g) ||
		    sh(NS("%s") "ip addr add " GUEST_IP "/24 dev eth0", P, g) ||
		    sh(NS("%s") "ip link set eth0 up", P, g))
			return -1;
	}
	if (sh(NS("client") "ip addr add 10.77.0.1/24 dev eth0", P) ||
	    sh(NS("client") "ip link set eth0 up", P))
		return -1;
	return 0;
}

/* ---- the service and the client (forked, in their namespaces) */

static uint8_t *pattern(void)
{
	uint8_t *p = malloc(PERIOD + CHUNK);
	uint32_t x = 2463534242u;

	if (!p)
		return NULL;
	for (uint32_t i = 0; i < PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	for (uint32_t i = PERIOD; i < PERIOD + CHUNK; i++)
		p[i] = p[i - PERIOD]; /* any window of CHUNK is contiguous */
	return p;
}

/* Streams the pattern to every client until it goes away: deterministic,
 * so both guests send the same bytes. */
static void serve(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(PORT) };
	uint8_t *pat = pattern();
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);

	colo_ignore_sigpipe();
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!pat || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 8))
		_exit(1);
	for (;;) {
		int c = accept(ls, NULL, NULL);
		uint64_t off = 0;

		if (c < 0)
			continue;
		if (fork() == 0) {
			for (;;) {
				ssize_t w =
					send(c, pat + off % PERIOD, CHUNK, 0);

				if (w <= 0)
					_exit(0);
				off += (uint64_t)w;
			}
		}
		close(c);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}

static void client(struct shared *sh_)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(PORT) };
	uint8_t *pat = pattern(), *buf = malloc(CHUNK);
	uint64_t off = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = { 30, 0 };

	inet_pton(AF_INET, GUEST_IP, &a.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (!pat || !buf || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		snprintf(sh_->err, sizeof(sh_->err), "connect: %s",
			 strerror(errno));
		sh_->state = -1;
		_exit(1);
	}
	sh_->last_rx_ns = now_ns();
	while (!sh_->stop) {
		ssize_t n = recv(fd, buf, CHUNK, 0);
		uint64_t t = now_ns();

		if (n <= 0) {
			snprintf(sh_->err, sizeof(sh_->err),
				 "connection lost after %llu bytes: %s",
				 (unsigned long long)off,
				 n == 0 ? "closed" : strerror(errno));
			sh_->state = -1;
			_exit(1);
		}
		if (memcmp(buf, pat + off % PERIOD, (size_t)n) != 0) {
			snprintf(sh_->err, sizeof(sh_->err),
				 "wrong bytes at offset %llu",
				 (unsigned long long)off);
			sh_->state = -1;
			_exit(1);
		}
		colo_demo_note_rx(t, sh_->failover_ns, &sh_->last_rx_ns,
				  &sh_->stall_after_ns);
		off += (uint64_t)n;
		sh_->bytes = off;
	}
	sh_->state = 1;
	_exit(0);
}

static pid_t spawn_in(const char *ns, void (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	if (pid == 0) {
		set_handler(SIGINT, SIG_IGN);
		if (enter_ns(ns) < 0)
			_exit(1);
		fn(arg);
		_exit(0);
	}
	if (pid > 0 &&
	    nchildren < (int)(sizeof(children) / sizeof(children[0])))
		children[nchildren++] = pid;
	return pid;
}

static void run_serve(void *arg)
{
	(void)arg;
	setpgid(0, 0);
	serve();
}

static void run_client(void *arg)
{
	client(arg);
}

struct proxy_args {
	const char *role, *link_opt, *ctl, *host, *peer;
};

static void run_proxy(void *arg)
{
	const struct proxy_args *a = arg;
	char log[128];
	int fd;

	char creds[128];

	snprintf(creds, sizeof(creds), "%s/%s", dir, a->host);
	snprintf(log, sizeof(log), "%s/%s.log", dir, a->role);
	fd = open(log, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	execl(self, "colo", "proxy", "--role", a->role, "--client", "packet:sw",
	      "--guest", "packet:gst", a->link_opt, "10.78.0.1:7070",
	      "--control", a->ctl, "--tls-creds", creds, "--tls-peer", a->peer,
	      (char *)NULL);
	_exit(127);
}

/* ---- the control sockets */

static json_object *request(const char *path, const char *cmd)
{
	return colo_demo_request(path, cmd, 1000);
}

#define field colo_demo_field
#define human colo_demo_human

static const char *const demo_hosts[] = { "phost", "shost" };

static void cleanup(void)
{
	for (int i = 0; i < nchildren; i++) {
		kill(-children[i], SIGKILL);
		kill(children[i], SIGKILL);
		waitpid(children[i], NULL, 0);
	}
	nchildren = 0;
	if (topo_up)
		topo_down();
	if (dir[0]) {
		char p[128];

		snprintf(p, sizeof(p), "%s/primary.sock", dir);
		unlink(p);
		snprintf(p, sizeof(p), "%s/secondary.sock", dir);
		unlink(p);
		snprintf(p, sizeof(p), "%s/primary.log", dir);
		unlink(p);
		snprintf(p, sizeof(p), "%s/secondary.log", dir);
		unlink(p);
		colo_demo_remove_creds(dir, demo_hosts, 2);
		rmdir(dir);
	}
}

static void show_log(const char *role)
{
	char p[128], title[64];

	snprintf(p, sizeof(p), "%s/%s.log", dir, role);
	snprintf(title, sizeof(title), "%s proxy log", role);
	colo_demo_show_log(p, title, 256);
}

int colo_demo_netns(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char pctl[128], sctl[128], b1[32], b2[32];
	struct proxy_args pa, sa;
	struct shared *st;
	uint64_t t0, t_fail = 0, bytes_at_fail = 0, last_bytes = 0, last_t;
	int64_t compared = 0, ckpt = 0;
	double seconds = 12;
	bool failed_over = false, ok = false;
	pid_t primary_pid;
	ssize_t n;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			seconds = atof(optarg);
			if (seconds < 4 || seconds > 3600) {
				fprintf(stderr, "colo demo: --seconds between "
						"4 and 3600\n");
				return 2;
			}
			break;
		default:
			return colo_cli_help_or_usage(c, usage);
		}
	}
	if (optind < argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr,
			"colo demo: needs root: it builds network namespaces, "
			"veth pairs and a bridge\n(nothing outside them is "
			"touched). Try: sudo colo demo\n");
		return 1;
	}
	if (system("ip -V >/dev/null 2>&1") != 0) {
		fprintf(stderr, "colo demo: needs iproute2 (the ip command)\n");
		return 1;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		fprintf(stderr, "colo demo: cannot find my own binary\n");
		return 1;
	}
	self[n] = '\0';
	st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (st == MAP_FAILED)
		return 1;
	memset(st, 0, sizeof(*st));
	snprintf(prefix, sizeof(prefix), "cdemo%d-", (int)(getpid() % 100000));
	/* A private directory with an unguessable name: nobody else can
	 * plant a link where the proxies' logs and sockets go. */
	snprintf(dir, sizeof(dir), "%s/colo-demo-XXXXXX",
		 getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 40
			 ? getenv("TMPDIR")
			 : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "colo demo: %s: %s\n", dir, strerror(errno));
		dir[0] = '\0';
		munmap(st, sizeof(*st));
		return 1;
	}
	snprintf(pctl, sizeof(pctl), "%s/primary.sock", dir);
	snprintf(sctl, sizeof(sctl), "%s/secondary.sock", dir);
	colo_demo_catch_signals();

	{
		char e[256];

		if (colo_demo_make_creds(dir, demo_hosts, 2, e, sizeof(e)) <
		    0) {
			fprintf(stderr, "colo demo: credentials: %s\n", e);
			goto out;
		}
		printf("colo demo: TLS credentials for phost and shost in "
		       "%s (a throwaway CA)\n",
		       dir);
	}
	printf("colo demo: building the topology (namespaces %s*)\n", prefix);
	if (topo_build() < 0) {
		fprintf(stderr, "colo demo: building the topology failed\n");
		goto out;
	}
	printf("colo demo: stream service in both guests, colo proxy on both "
	       "hosts\n");
	spawn_in("pguest", run_serve, NULL);
	spawn_in("sguest", run_serve, NULL);
	sa = (struct proxy_args){ "secondary", "--link-connect", sctl, "shost",
				  "phost" };
	pa = (struct proxy_args){ "primary", "--link-listen", pctl, "phost",
				  "shost" };
	spawn_in("shost", run_proxy, &sa);
	primary_pid = spawn_in("phost", run_proxy, &pa);
	for (int i = 0; i < 100 && !colo_demo_interrupted; i++) {
		json_object *o = request(pctl, "status");
		json_object *v;
		bool up = o && json_object_object_get_ex(o, "peer", &v) &&
			  json_object_get_boolean(v);

		json_object_put(o);
		if (up)
			break;
		usleep(50000);
	}
	printf("colo demo: client downloading from %s:%d for %.0f s; the "
	       "primary dies at %.0f s\n\n",
	       GUEST_IP, PORT, seconds, seconds / 2);
	spawn_in("client", run_client, st);
	t0 = last_t = now_ns();
	while (!colo_demo_interrupted && st->state == 0) {
		uint64_t t = now_ns(), b = st->bytes;
		double el = (double)(t - t0) / 1e9;
		double rate = t > last_t ? (double)(b - last_bytes) * 8 /
						   ((double)(t - last_t))
					 : 0;

		if (!failed_over) {
			json_object *o = request(pctl, "stats");

			if (o) {
				compared = field(o, "compared_bytes");
				ckpt = field(o, "checkpoint_requests");
			}
			json_object_put(o);
		}
		human(b1, sizeof(b1), (double)b);
		human(b2, sizeof(b2), (double)compared);
		printf("\r[%5.1fs] %6.2f Gbit/s  received %-10s compared %-10s "
		       "checkpoint requests %lld  %-22s",
		       el, rate, b1, b2, (long long)ckpt,
		       failed_over ? "on the secondary" : "protected");
		fflush(stdout);
		last_bytes = b;
		last_t = t;
		if (!failed_over && el >= seconds / 2) {
			json_object *o;

			printf("\n\n*** the primary host dies: its proxy is "
			       "SIGKILLed, its guest cut off ***\n");
			if (primary_pid > 0)
				kill(primary_pid, SIGKILL);
			sh(NS("phost") "ip link set gst down", prefix);
			t_fail = now_ns();
			st->failover_ns = t_fail;
			bytes_at_fail = st->bytes;
			o = request(sctl, "failover");
			printf("*** failover at the secondary: %s (%.1f ms) "
			       "***\n\n",
			       o && field(o, "ok") ? "done" : "FAILED",
			       (double)(now_ns() - t_fail) / 1e6);
			json_object_put(o);
			failed_over = true;
		}
		if (el >= seconds) {
			st->stop = 1;
			break;
		}
		usleep(250000);
	}
	for (int i = 0; i < 40 && st->state == 0 && !colo_demo_interrupted; i++)
		usleep(50000);
	printf("\n\n");
	if (colo_demo_interrupted) {
		printf("colo demo: colo_demo_interrupted\n");
	} else if (st->state != 1) {
		printf("colo demo: the client failed: %s\n", st->err);
		show_log("primary");
		show_log("secondary");
	} else {
		double before = (double)t_fail - (double)t0;
		double after = (double)now_ns() - (double)t_fail;

		human(b1, sizeof(b1), (double)st->bytes);
		printf("summary:\n"
		       "  one TCP connection, %s received, every byte checked: "
		       "correct\n"
		       "  before failover (COLO-protected): %.2f Gbit/s, %lld "
		       "checkpoint requests\n"
		       "  after failover (secondary alone): %.2f Gbit/s\n"
		       "  longest stall after the failover command: %.1f ms\n",
		       b1, (double)bytes_at_fail * 8 / before, (long long)ckpt,
		       (double)(st->bytes - bytes_at_fail) * 8 / after,
		       (double)st->stall_after_ns / 1e6);
		ok = true;
	}
out:
	printf("colo demo: tearing down\n");
	cleanup();
	munmap(st, sizeof(*st));
	return ok ? 0 : 1;
}
