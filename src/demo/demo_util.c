/*
 * demo_util.c - helpers shared by the two `colo demo` variants. The
 * demos are plain sequences of steps (build, start, ask, wait), not
 * daemons on an event loop, so blocking requests and a signal flag are
 * all they need.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "demo_util.h"

bool colo_demo_quiet;
volatile int colo_demo_interrupted;

int colo_demo_sh(const char *fmt, ...)
{
	char cmd[768];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r != 0 && !colo_demo_quiet)
		fprintf(stderr, "colo demo: failed: %s\n", cmd);
	return r == 0 ? 0 : -1;
}

int colo_demo_enter_ns(const char *prefix, const char *name)
{
	char path[128];
	int fd, r;

	snprintf(path, sizeof(path), "/var/run/netns/%s%s", prefix, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = setns(fd, CLONE_NEWNET);
	close(fd);
	return r;
}

static void on_signal(int sig)
{
	(void)sig;
	colo_demo_interrupted = 1;
}

void colo_demo_catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	colo_demo_sigpipe(SIG_IGN);
}

void colo_demo_sigpipe(void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
}

struct json_object *colo_demo_request_line(const char *path, const char *line,
					   unsigned int timeout_ms)
{
	char err[160], *out;
	struct json_object *o;

	out = colo_control_request(path, line, timeout_ms, err, sizeof(err));
	if (!out)
		return NULL;
	o = json_tokener_parse(out);
	free(out);
	return o;
}

struct json_object *colo_demo_request(const char *path, const char *cmd,
				      unsigned int timeout_ms)
{
	char req[96];

	snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}", cmd);
	return colo_demo_request_line(path, req, timeout_ms);
}

int64_t colo_demo_field(struct json_object *o, const char *name)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, name, &v)
		       ? json_object_get_int64(v)
		       : -1;
}

double colo_demo_field_d(struct json_object *o, const char *sub,
			 const char *name)
{
	struct json_object *v;

	if (sub && !(o && json_object_object_get_ex(o, sub, &o)))
		return -1;
	return o && json_object_object_get_ex(o, name, &v)
		       ? json_object_get_double(v)
		       : -1;
}

const char *colo_demo_field_s(struct json_object *o, const char *name)
{
	struct json_object *v;
	const char *s;

	if (!o || !json_object_object_get_ex(o, name, &v))
		return "";
	s = json_object_get_string(v);
	return s ? s : "";
}

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *f)
{
	(void)st, (void)f;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void colo_demo_rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void colo_demo_human(char *buf, unsigned long n, double bytes)
{
	static const char *const unit[] = { "B", "KB", "MB", "GB", "TB" };
	int u = 0;

	while (bytes >= 1000 && u < 4) {
		bytes /= 1000;
		u++;
	}
	snprintf(buf, n, "%.2f %s", bytes, unit[u]);
}

void colo_demo_show_log(const char *path, const char *title, int lines)
{
	char line[512];
	long starts[256];
	int n = 0, fd;
	FILE *f;

	if (lines > 256)
		lines = 256;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* Remember where the last `lines` lines start, then print from the
	 * oldest of them: logs may be long, the tail is what explains. */
	for (;;) {
		long at = ftell(f);

		if (!fgets(line, sizeof(line), f))
			break;
		starts[n++ % lines] = at;
	}
	fprintf(stderr, "--- %s (%s):\n", title, path);
	if (n > 0) {
		fseek(f, starts[n > lines ? n % lines : 0], SEEK_SET);
		while (fgets(line, sizeof(line), f))
			fputs(line, stderr);
	}
	fclose(f);
}

int colo_demo_wire_switch(const char *P, const char *const *nss, size_t n)
{
#define IN_SWITCH "ip netns exec %sswitch "
	static const char *const ports[] = { "cl", "ph", "sh" };

	for (size_t i = 0; i < n; i++)
		if (colo_demo_sh("ip netns add %s%s", P, nss[i]) ||
		    colo_demo_sh("ip netns exec %s%s ip link set lo up", P,
				 nss[i]))
			return -1;
	if (colo_demo_sh(IN_SWITCH "ip link add br0 type bridge "
				   "forward_delay 0",
			 P) ||
	    colo_demo_sh(IN_SWITCH "ip link set br0 up", P) ||
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
	for (int i = 0; i < 3; i++)
		if (colo_demo_sh(IN_SWITCH "ip link set %s master br0 up", P,
				 ports[i]))
			return -1;
	return 0;
#undef IN_SWITCH
}

void colo_demo_note_rx(uint64_t t, uint64_t since, volatile uint64_t *last_rx,
		       volatile uint64_t *stall)
{
	if (since && t > since) {
		uint64_t from = *last_rx > since ? *last_rx : since;

		if (t - from > *stall)
			*stall = t - from;
	}
	*last_rx = t;
}
