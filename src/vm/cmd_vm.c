/*
 * cmd_vm.c - `colo vm`: one daemon per host that owns the guest's QEMU
 * and keeps it in lock-step with the other host's by checkpoints. Options,
 * the control socket, statistics and the event loop live here; the
 * checkpoint itself is in primary.c and secondary.c.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "common/clock.h"
#include "common/control.h"
#include "common/evloop.h"
#include "common/log.h"
#include "common/parse_num.h"
#include "common/sock_spec.h"
#include "common/tls.h"
#include "vm.h"
#include "tls_args.h"

static const char *const reason_names[COLO_VM_REASON_MAX] = {
	"initial", "periodic", "command", "proxy"
};

const char *colo_vm_reason_name(enum colo_vm_reason r)
{
	return r < COLO_VM_REASON_MAX ? reason_names[r] : "?";
}

void colo_vm_set_mode(struct colo_vm *v, const char *mode, const char *reason)
{
	struct json_object *ev;

	if (!strcmp(v->mode, mode) && !strcmp(v->reason, reason))
		return;
	snprintf(v->mode, sizeof(v->mode), "%s", mode);
	snprintf(v->reason, sizeof(v->reason), "%s", reason);
	/* A reason may carry the peer's words (an ABORT's text) or a
	 * library's: printable ASCII only, so that status stays valid JSON
	 * and the log one line. */
	for (char *c = v->reason; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	colo_log_info("mode %s%s%s", mode, *v->reason ? ": " : "", v->reason);
	ev = json_object_new_object();
	json_object_object_add(ev, "mode", json_object_new_string(mode));
	json_object_object_add(ev, "reason", json_object_new_string(v->reason));
	colo_control_server_emit(v->ctl, "mode", ev);
}

void colo_vm_hello(const struct colo_vm *v, struct colo_flink_hello *h)
{
	memset(h, 0, sizeof(*h));
	h->version = COLO_FLINK_VERSION;
	h->role = v->primary ? COLO_FLINK_PRIMARY : COLO_FLINK_SECONDARY;
	h->ram_size = v->ram.size;
	snprintf(h->qemu_version, sizeof(h->qemu_version), "%s",
		 v->qemu_version);
	snprintf(h->machine, sizeof(h->machine), "%s", v->machine);
}

int colo_vm_check_peer(const struct colo_vm *v,
		       const struct colo_flink_hello *peer, char *err,
		       size_t errlen)
{
	if (peer->version != COLO_FLINK_VERSION)
		snprintf(err, errlen, "frame link version %u here, %u there",
			 COLO_FLINK_VERSION, peer->version);
	else if (strcmp(peer->qemu_version, v->qemu_version))
		snprintf(err, errlen,
			 "QEMU %s here, %s on the peer: device state would "
			 "not load",
			 v->qemu_version, peer->qemu_version);
	else if (strcmp(peer->machine, v->machine))
		snprintf(err, errlen,
			 "machine type %s here, %s on the peer: give both "
			 "the same -machine",
			 v->machine, peer->machine);
	else if (peer->ram_size != v->ram.size)
		snprintf(err, errlen,
			 "guest RAM %llu MiB here, %llu MiB on the peer",
			 (unsigned long long)(v->ram.size >> 20),
			 (unsigned long long)(peer->ram_size >> 20));
	else
		return 0;
	return -1;
}

void colo_vm_record(struct colo_vm *v, enum colo_vm_reason why,
		    uint64_t pause_ns, uint64_t pages)
{
	struct colo_vm_stats *s = &v->st;
	uint32_t us = pause_ns / 1000 > UINT32_MAX
			      ? UINT32_MAX
			      : (uint32_t)(pause_ns / 1000);
	struct json_object *ev;

	s->checkpoints++;
	s->by_reason[why]++;
	s->pages_last = pages;
	s->pages_total += pages;
	s->last_us = us;
	if (us > s->max_us)
		s->max_us = us;
	if (s->npause == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 256;
		uint32_t *p = realloc(s->pause_us, ncap * sizeof(*p));

		if (p) {
			s->pause_us = p;
			s->cap = ncap;
		}
	}
	if (s->npause < s->cap)
		s->pause_us[s->npause++] = us;
	ev = json_object_new_object();
	json_object_object_add(ev, "seq",
			       json_object_new_int64((int64_t)v->seq));
	json_object_object_add(
		ev, "reason", json_object_new_string(colo_vm_reason_name(why)));
	json_object_object_add(ev, "pause_ms",
			       json_object_new_double(us / 1e3));
	json_object_object_add(ev, "pages",
			       json_object_new_int64((int64_t)pages));
	colo_control_server_emit(v->ctl, "checkpoint", ev);
	colo_log_info("checkpoint %llu (%s): pause %.1f ms, %llu pages",
		      (unsigned long long)v->seq, colo_vm_reason_name(why),
		      us / 1e3, (unsigned long long)pages);
}

/* Both roles' link ends here; the primary's wait for its disk with it. */
void colo_vm_drop_link(struct colo_vm *v)
{
	colo_vm_disk_wait_stop(v);
	if (v->link_h)
		colo_loop_del_fd(v->link_h);
	v->link_h = NULL;
	colo_flink_free(v->link);
	v->link = NULL;
}

int colo_vm_addr_allowed(const struct colo_vm *v,
			 const struct colo_sock_addr *a, const char *what,
			 char *err, size_t errlen)
{
	if (v->creds || v->insecure || colo_sock_addr_is_loopback(a))
		return 0;
	snprintf(err, errlen,
		 "%s is not a loopback address: the frame link and the "
		 "migration stream need --tls-creds DIR and --tls-peer HOST "
		 "(or --insecure to run them in the clear)",
		 what);
	return -1;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The pause at quantile q (0..1) of every checkpoint so far, in ms. */
static double pause_quantile(const struct colo_vm_stats *s, double q)
{
	uint32_t *c;
	double r;

	if (!s->npause)
		return 0;
	c = malloc(s->npause * sizeof(*c));
	if (!c)
		return 0;
	memcpy(c, s->pause_us, s->npause * sizeof(*c));
	qsort(c, s->npause, sizeof(*c), cmp_u32);
	r = c[(size_t)(q * (double)(s->npause - 1) + 0.5)] / 1e3;
	free(c);
	return r;
}

static int ctl_status(void *ctx, struct json_object *req,
		      struct json_object *reply, char *err, size_t errlen)
{
	struct colo_vm *v = ctx;
	struct colo_vm_stats *s = &v->st;
	struct json_object *by = json_object_new_object();

	(void)req, (void)err, (void)errlen;
#define ADD(k, o) json_object_object_add(reply, k, o)
	ADD("role",
	    json_object_new_string(v->primary ? "primary" : "secondary"));
	ADD("mode", json_object_new_string(v->mode));
	ADD("reason", json_object_new_string(v->reason));
	ADD("seq", json_object_new_int64((int64_t)v->seq));
	ADD("checkpoints", json_object_new_int64((int64_t)s->checkpoints));
	for (int i = 0; i < COLO_VM_REASON_MAX; i++)
		json_object_object_add(
			by, reason_names[i],
			json_object_new_int64((int64_t)s->by_reason[i]));
	ADD("by_reason", by);
	ADD("failures", json_object_new_int64((int64_t)s->failures));
	ADD("cut_undrained", json_object_new_int64((int64_t)s->cut_undrained));
	ADD("cut_max_ms", json_object_new_double(s->cut_max_us / 1e3));
	ADD("deferred", json_object_new_int64((int64_t)s->deferred));
	ADD("pause_last_ms", json_object_new_double(s->last_us / 1e3));
	ADD("pause_median_ms", json_object_new_double(pause_quantile(s, 0.5)));
	ADD("pause_p99_ms", json_object_new_double(pause_quantile(s, 0.99)));
	ADD("pause_max_ms", json_object_new_double(s->max_us / 1e3));
	ADD("pages_last", json_object_new_int64((int64_t)s->pages_last));
	ADD("pages_total", json_object_new_int64((int64_t)s->pages_total));
	ADD("ram_bytes", json_object_new_int64((int64_t)v->ram.size));
	ADD("qemu_version", json_object_new_string(v->qemu_version));
	ADD("machine", json_object_new_string(v->machine));
	ADD("vm_gen", json_object_new_int64(v->vm.gen));
	ADD("vm_pid", json_object_new_int64(v->vm.pid));
	ADD("vm_log", json_object_new_string(v->vm.log));
	ADD("standby_gen", json_object_new_int64(v->standby.gen));
	ADD("standby_pid", json_object_new_int64(v->standby.pid));
	ADD("tls", json_object_new_boolean(v->creds != NULL));
	ADD("rejoins", json_object_new_int64((int64_t)s->rejoins));
	ADD("rejoin_tries", json_object_new_int64((int64_t)v->rejoin_tries));
	/* A rejoin try in flight, and its step: connect, tls, hello. */
	ADD("rejoin_connecting",
	    json_object_new_boolean(v->rejoin_dial || v->rejoin_steps));
	ADD("rejoin_step",
	    json_object_new_string(v->rejoin_dial ? "connect"
				   : v->rejoin_steps
					   ? colo_vm_steps_name(v->rejoin_steps)
					   : ""));
	ADD("link_refused", json_object_new_int64((int64_t)v->link_refused));
	/* primary: how long the first checkpoint has waited for blk */
	ADD("disk_wait_ms",
	    json_object_new_int64(
		    v->disk_waiting
			    ? (int64_t)((colo_now_ns() - v->disk_wait_since) /
					COLO_NS_PER_MS)
			    : 0));
	ADD("promote_pause_ms",
	    json_object_new_double(v->promote_pause_ns / 1e6));
#undef ADD
	return 0;
}

static int ctl_checkpoint(void *ctx, struct json_object *req,
			  struct json_object *reply, char *err, size_t errlen)
{
	struct colo_vm *v = ctx;
	struct json_object *d;
	bool dump = json_object_object_get_ex(req, "dump", &d) &&
		    json_object_get_boolean(d);

	if (!v->primary) {
		snprintf(err, errlen, "checkpoints are run by the primary");
		return -1;
	}
	return colo_vm_primary_checkpoint(v, COLO_VM_REASON_COMMAND, dump,
					  reply, err, errlen);
}

static int ctl_failover(void *ctx, struct json_object *req,
			struct json_object *reply, char *err, size_t errlen)
{
	struct colo_vm *v = ctx;

	(void)req, (void)reply;
	if (v->primary) {
		snprintf(err, errlen, "failover is the secondary's command");
		return -1;
	}
	return colo_vm_secondary_failover(v, err, errlen);
}

static int ctl_migrate_out(void *ctx, struct json_object *req,
			   struct json_object *reply, char *err, size_t errlen)
{
	struct json_object *u;

	(void)reply;
	if (!json_object_object_get_ex(req, "uri", &u) ||
	    !json_object_is_type(u, json_type_string)) {
		snprintf(err, errlen, "migrate-out needs \"uri\"");
		return -1;
	}
	return colo_vm_migrate_out(ctx, json_object_get_string(u), err, errlen);
}

static const struct colo_control_cmd ctl_cmds[] = {
	{ "status", ctl_status,
	  "mode, pauses (last/median/p99/max), pages moved, checkpoints by "
	  "reason" },
	{ "checkpoint", ctl_checkpoint,
	  "primary: checkpoint now ({\"dump\": true}: both sides pmemsave "
	  "into --dump-dir)" },
	{ "failover", ctl_failover, "secondary: its VM runs on alone" },
	{ "migrate-out", ctl_migrate_out,
	  "failed-over secondary: hand the VM to a --promote primary "
	  "({\"uri\": \"unix:PATH\"}), then exit" },
};

static void on_stop(void *opaque, const struct signalfd_siginfo *si)
{
	(void)si;
	colo_loop_stop(opaque);
}

static void on_child(void *opaque, const struct signalfd_siginfo *si)
{
	struct colo_vm *v = opaque;

	(void)si;
	if (v->vm.pid && colo_qemu_exited(&v->vm)) {
		colo_log_warn("VM %u exited (QEMU log: %s)", v->vm.gen,
			      v->vm.log);
		colo_qemu_stop(&v->vm);
		if (v->primary) {
			v->exit_code = 1;
			colo_loop_stop(v->loop);
		} else {
			colo_vm_set_mode(v, "no-vm", "the secondary VM exited");
		}
	}
	if (v->standby.pid && colo_qemu_exited(&v->standby)) {
		colo_log_warn("standby %u exited (QEMU log: %s)",
			      v->standby.gen, v->standby.log);
		colo_qemu_stop(&v->standby);
	}
}

static void on_usr1(void *opaque, const struct signalfd_siginfo *si)
{
	struct colo_vm *v = opaque;
	char err[256];

	(void)si;
	if (v->primary &&
	    colo_vm_primary_checkpoint(v, COLO_VM_REASON_COMMAND, false, NULL,
				       err, sizeof(err)) < 0)
		colo_log_warn("checkpoint: %s", err);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: colo vm --role primary   --dir DIR --link-listen "
		"HOST:PORT [options] -- QEMU-ARGS...\n"
		"       colo vm --role secondary --dir DIR --link-connect "
		"HOST:PORT [options] -- QEMU-ARGS...\n\n"
		"Runs the guest under QEMU and keeps the primary's and the "
		"secondary's\n"
		"VMs in lock-step by checkpoints (see doc/colo-vm.1.md).\n\n"
		"  --dir DIR            this host's directory: guest RAM file, "
		"QMP sockets, QEMU logs\n"
		"  --control PATH       JSON control socket (status, "
		"checkpoint, failover, events)\n"
		"  --qemu BIN           QEMU binary (default "
		"qemu-system-x86_64)\n"
		"  --interval MS        primary: periodic checkpoint interval "
		"(default 20000, 0: off)\n"
		"  --min-interval MS    primary: least time between "
		"checkpoints (default 100)\n"
		"  --timeout MS         one checkpoint's deadline (default "
		"10000)\n"
		"  --scan-threads N     primary: threads finding changed pages "
		"(default "
		"2)\n"
		"  --no-rejoin          secondary: a lost primary is not "
		"connected again\n"
		"                       (default: every second until a "
		"failover)\n"
		"  --migrate-host ADDR  secondary: address its standbys listen "
		"on\n"
		"                       (default: this end of the frame link)\n"
		"  --nic SOCK           this host's proxy guest port "
		"(tcp:HOST:PORT, unix:PATH):\n"
		"                       netdev colo-nic for the guest's "
		"-device\n"
		"  --proxy-control PATH this host's colo proxy: checkpoint "
		"on its requests\n"
		"                       (primary), checkpoint-done after "
		"each checkpoint\n"
		"  --no-ingress-cut     primary: no checkpoint-cut before "
		"the stop (see colo-vm(1))\n"
		"  --disk SOCK          this host's colo blk export "
		"(tcp:HOST:PORT, unix:PATH):\n"
		"                       blockdev node colo-disk for the "
		"guest's -device\n"
		"  --blk-control PATH   this host's colo blk control socket: "
		"prepare after\n"
		"                       the stop (primary), commit once "
		"loaded and blk failover\n"
		"                       on failover (secondary)\n"
		"  --promote PATH       primary: take the guest over from the "
		"failed-over\n"
		"                       secondary daemon whose control "
		"socket is PATH\n"
		"  --dump-dir DIR       where "
		"{\"cmd\":\"checkpoint\",\"dump\":true} writes RAM dumps\n"
		"  --tls-creds DIR      the frame link and QEMU's migration "
		"stream in TLS 1.3\n"
		"                       with mutual x509 authentication; DIR "
		"holds ca-cert.pem,\n"
		"                       server-cert.pem/-key.pem and "
		"client-cert.pem/-key.pem\n"
		"                       (QEMU's tls-creds-x509 layout; "
		"both pairs on each host)\n"
		"  --tls-peer HOST      the other host's name in its "
		"certificate (required\n"
		"                       with --tls-creds)\n"
		"  --insecure           allow a frame link or standby address "
		"off loopback\n"
		"                       without TLS (anyone reaching it owns "
		"the guest)\n"
		"  -q, --quiet          warnings only\n");
}

static int parse_ms(const char *opt, const char *s, uint64_t *out)
{
	if (colo_parse_u64(s, 86400000ull, out) < 0) {
		fprintf(stderr,
			"colo vm: %s: not a number of milliseconds: %s\n", opt,
			s);
		return -1;
	}
	return 0;
}

/* Every standby QEMU creates a tls-creds-x509 server object; without
 * DIR/dh-params.pem QEMU generates DH parameters first (0.7-6 s measured
 * here, all of it inside the next checkpoint's pause; doc/security.md). */
static void warn_no_dh_params(const char *dir)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/dh-params.pem", dir);
	if (access(path, R_OK) != 0)
		colo_log_warn(
			"--tls-creds %s has no dh-params.pem: every "
			"standby QEMU will generate DH parameters "
			"(seconds); make one with: openssl genpkey "
			"-genparam -algorithm DH -pkeyopt group:ffdhe2048 "
			"-out %s",
			dir, path);
}

int colo_cmd_vm(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "link-listen", required_argument, NULL, 'L' },
		{ "link-connect", required_argument, NULL, 'C' },
		{ "control", required_argument, NULL, 'c' },
		{ "qemu", required_argument, NULL, 'Q' },
		{ "interval", required_argument, NULL, 'i' },
		{ "min-interval", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' },
		{ "scan-threads", required_argument, NULL, 's' },
		{ "migrate-host", required_argument, NULL, 'H' },
		{ "dump-dir", required_argument, NULL, 'D' },
		{ "nic", required_argument, NULL, 'N' },
		{ "proxy-control", required_argument, NULL, 'P' },
		{ "no-ingress-cut", no_argument, NULL, 'X' },
		{ "blk-control", required_argument, NULL, 'B' },
		{ "disk", required_argument, NULL, 'K' },
		{ "promote", required_argument, NULL, 'O' },
		{ "no-rejoin", no_argument, NULL, 'J' },
		COLO_TLS_LONG_OPTIONS,
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct colo_vm v = { .next_gen = 1, .listen_fd = -1, .proxy_fd = -1 };
	const char *role = NULL, *dir = NULL, *listen = NULL, *connect = NULL;
	const char *control = NULL, *tls_creds = NULL;
	uint64_t interval = 20000, min_interval = 100, timeout = 10000,
		 threads = 2;
	char ram_path[4096], err[512];
	static char tls_abs[4096];
	int c, rc = 1;

	v.qcfg.binary = "qemu-system-x86_64";
	while ((c = getopt_long(argc, argv, "+qh", lopts, NULL)) != -1) {
		if (colo_tls_arg(c, optarg, &tls_creds, &v.tls_peer,
				 &v.insecure))
			continue;
		switch (c) {
		case 'r':
			role = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'L':
			listen = optarg;
			break;
		case 'C':
			connect = optarg;
			break;
		case 'c':
			control = optarg;
			break;
		case 'Q':
			v.qcfg.binary = optarg;
			break;
		case 'H':
			v.qcfg.migrate_host = optarg;
			break;
		case 'D':
			v.dump_dir = optarg;
			break;
		case 'P':
			v.proxy_ctl = optarg;
			break;
		case 'X':
			v.no_cut = true;
			break;
		case 'B':
			v.blk_ctl = optarg;
			break;
		case 'O':
			v.promote_from = optarg;
			break;
		case 'J':
			v.no_rejoin = true;
			break;
		case 'K':
			if (colo_qemu_disk_arg(&v.qcfg, optarg, err,
					       sizeof(err)) < 0) {
				fprintf(stderr, "colo vm: %s\n", err);
				return 2;
			}
			break;
		case 'N':
			if (colo_qemu_nic_arg(&v.qcfg, optarg, err,
					      sizeof(err)) < 0) {
				fprintf(stderr, "colo vm: %s\n", err);
				return 2;
			}
			break;
		case 'q':
			colo_log_quiet = true;
			break;
		case 'i':
			if (parse_ms("--interval", optarg, &interval) < 0)
				return 2;
			break;
		case 'm':
			if (parse_ms("--min-interval", optarg, &min_interval) <
			    0)
				return 2;
			break;
		case 't':
			if (parse_ms("--timeout", optarg, &timeout) < 0 ||
			    timeout == 0)
				return 2;
			break;
		case 's':
			if (colo_parse_u64(optarg, 16, &threads) < 0 ||
			    threads == 0) {
				fprintf(stderr,
					"colo vm: --scan-threads: 1..16\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!role || (strcmp(role, "primary") && strcmp(role, "secondary"))) {
		fprintf(stderr,
			"colo vm: --role primary|secondary is required\n");
		return 2;
	}
	v.primary = !strcmp(role, "primary");
	if (v.promote_from && !v.primary) {
		fprintf(stderr, "colo vm: --promote is the primary's\n");
		return 2;
	}
	if (!dir || (v.primary && !listen) || (!v.primary && !connect)) {
		fprintf(stderr, "colo vm: --dir and %s are required\n",
			v.primary ? "--link-listen" : "--link-connect");
		return 2;
	}
	if (optind >= argc) {
		fprintf(stderr,
			"colo vm: the guest's QEMU arguments follow --\n");
		return 2;
	}
	if (colo_tls_args_error(tls_creds, v.tls_peer, v.insecure, false)) {
		fprintf(stderr, "colo vm: %s\n",
			colo_tls_args_error(tls_creds, v.tls_peer, v.insecure,
					    false));
		return 2;
	}
	if (tls_creds) {
		/* The primary accepts the link and its QEMU connects to the
		 * standby; the secondary the other way round: each host
		 * needs both pairs. */
		v.creds = colo_tls_creds_load(tls_creds, err, sizeof(err));
		if (!v.creds) {
			fprintf(stderr, "colo vm: --tls-creds: %s\n", err);
			return 2;
		}
		if (!colo_tls_creds_can(v.creds, true) ||
		    !colo_tls_creds_can(v.creds, false)) {
			fprintf(stderr,
				"colo vm: --tls-creds %s: needs both "
				"server-cert.pem and client-cert.pem (with "
				"their keys)\n",
				tls_creds);
			colo_tls_creds_free(v.creds);
			return 2;
		}
		/* QEMU reads the directory too: give it an absolute path. */
		if (!realpath(tls_creds, tls_abs)) {
			fprintf(stderr, "colo vm: --tls-creds %s: %s\n",
				tls_creds, strerror(errno));
			colo_tls_creds_free(v.creds);
			return 2;
		}
		v.qcfg.tls_dir = tls_abs;
		v.qcfg.tls_peer = v.tls_peer;
		warn_no_dh_params(tls_abs);
	}
	v.link_connect = connect;
	v.qcfg.args = argv + optind;
	v.qcfg.nargs = argc - optind;
	if (colo_qemu_check_args(v.qcfg.args, v.qcfg.nargs, &v.qcfg.ram_size,
				 err, sizeof(err)) < 0) {
		fprintf(stderr, "colo vm: %s\n", err);
		return 2;
	}
	v.interval_ns = interval * COLO_NS_PER_MS;
	v.min_interval_ns = min_interval * COLO_NS_PER_MS;
	v.timeout_ms = (unsigned int)timeout;
	v.scan_threads = (unsigned int)threads;
	v.qcfg.dir = dir;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "colo vm: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(ram_path, sizeof(ram_path), "%s/guest.ram", dir);
	v.qcfg.ram_path = ram_path;

	colo_ignore_sigpipe();
	v.loop = colo_loop_new();
	if (!v.loop)
		return 1;
	colo_loop_on_signal(v.loop, SIGTERM, on_stop, v.loop);
	colo_loop_on_signal(v.loop, SIGINT, on_stop, v.loop);
	colo_loop_on_signal(v.loop, SIGCHLD, on_child, &v);
	colo_loop_on_signal(v.loop, SIGUSR1, on_usr1, &v);
	if (colo_ram_open(&v.ram, ram_path, v.qcfg.ram_size, err, sizeof(err)) <
	    0)
		goto out;
	if (control) {
		struct colo_control_table t = {
			ctl_cmds, sizeof(ctl_cmds) / sizeof(ctl_cmds[0]), &v
		};
		v.ctl = colo_control_server_new(v.loop, control, &t, err,
						sizeof(err));
		if (!v.ctl)
			goto out;
	}
	if (colo_vm_proxy_start(&v, err, sizeof(err)) < 0)
		goto out;
	if ((v.primary ? colo_vm_primary_start(&v, listen, err, sizeof(err))
		       : colo_vm_secondary_start(&v, err, sizeof(err))) < 0)
		goto out;
	rc = colo_loop_run(v.loop) < 0 ? 1 : v.exit_code;
	err[0] = '\0';
out:
	if (err[0])
		fprintf(stderr, "colo vm: %s\n", err);
	colo_vm_proxy_stop(&v);
	colo_vm_lobby_stop(&v);
	colo_vm_drop_link(&v);
	colo_qemu_stop(&v.standby);
	colo_qemu_stop(&v.vm);
	if (v.listen_h)
		colo_loop_del_fd(v.listen_h);
	if (v.listen_fd >= 0)
		close(v.listen_fd);
	colo_control_server_free(v.ctl);
	colo_timer_free(v.periodic);
	colo_timer_free(v.deferred);
	colo_vm_disk_wait_free(&v);
	colo_timer_free(v.attach);
	colo_vm_rejoin_stop(&v);
	colo_timer_free(v.rejoin);
	colo_loop_free(v.loop);
	colo_ram_close(&v.ram);
	colo_tls_creds_free(v.creds);
	unlink(ram_path);
	colo_vm_promote_tidy(&v);
	free(v.st.pause_us);
	return rc;
}
