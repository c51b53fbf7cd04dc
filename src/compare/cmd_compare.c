/*
 * cmd_compare.c - `colo compare`: command line and help of the daemon.
 *
 * The options mirror the properties of QEMU's colo-compare object, so an
 * existing setup can swap the object for this process by pointing the
 * same chardev sockets at it. Usage errors exit with 2 before any socket
 * is opened.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "daemon.h"
#include "frame_reader.h"
#include "parse_num.h"

/* clang-format off: the text is laid out as printed */
static const char help_text[] =
	"usage: colo compare --primary-in SOCK --secondary-in SOCK --out SOCK\n"
	"                    [--notify SOCK] [--vnet-hdr] [--compare-timeout "
	"MS]\n"
	"                    [--scan-interval MS] [--max-queue N]\n"
	"                    [--stats-interval SEC] [--quiet]\n"
	"\n"
	"Compare the network output of a COLO primary and secondary guest and\n"
	"release the primary's output only once the secondary produced the "
	"same.\n"
	"A drop-in for QEMU's colo-compare object: connect the chardevs that\n"
	"QEMU's filter-mirror / filter-redirector would use to this process.\n"
	"\n"
	"Options:\n"
	"  --primary-in SOCK     frames sent by the primary guest (QEMU's\n"
	"                        primary_in).\n"
	"  --secondary-in SOCK   frames sent by the secondary guest "
	"(secondary_in).\n"
	"  --out SOCK            where released primary frames are written "
	"(outdev).\n"
	"  --notify SOCK         Xen userspace-proxy notify channel "
	"(notify_dev).\n"
	"                        Without it nobody can take a checkpoint, so "
	"a\n"
	"                        checkpoint request is completed at once: "
	"held\n"
	"                        frames are released and the divergence is "
	"logged.\n"
	"                        Whoever reaches it can release held output:\n"
	"                        use unix-listen:PATH (mode 0600, root and "
	"this\n"
	"                        user only) or TCP on loopback; any other TCP\n"
	"                        address is refused without --insecure.\n"
	"  --insecure            allow --notify on a non-loopback TCP "
	"address.\n"
	"  --vnet-hdr            frames carry a virtio-net header and every "
	"frame\n"
	"                        header carries the vnet_hdr_len word\n"
	"                        (vnet_hdr_support=on). Must match the peers.\n"
	"  --compare-timeout MS  release a primary frame unmatched for this "
	"long by\n"
	"                        asking for a checkpoint (default 3000).\n"
	"  --scan-interval MS    how often held frames are checked for the "
	"timeout\n"
	"                        (default 1000; QEMU's expired_scan_cycle).\n"
	"  --max-queue N         frames held per flow and side before a "
	"checkpoint\n"
	"                        is requested (default 1024).\n"
	"  --max-flows N         flows tracked at most (default 4194304). A "
	"frame\n"
	"                        of a new flow beyond it is not compared: the\n"
	"                        primary's is released, the secondary's "
	"dropped,\n"
	"                        both counted, and one checkpoint is "
	"requested\n"
	"                        per epoch.\n"
	"  --stats-interval SEC  also print statistics every SEC seconds\n"
	"                        (default 0: only on SIGUSR1 and at exit).\n"
	"  --quiet               do not log connections and divergences "
	"(warnings\n"
	"                        and statistics are still printed).\n"
	"  -h, --help            show this help.\n"
	"\n"
	"SOCK forms:\n"
	"  tcp-listen:HOST:PORT  listen; an empty HOST listens on every "
	"address,\n"
	"                        an IPv6 HOST is written in brackets: "
	"[::1]:9000.\n"
	"  tcp:HOST:PORT         connect; retried with backoff (0.1 s doubling "
	"to\n"
	"                        5 s) until the peer is there.\n"
	"  unix-listen:PATH      listen on a UNIX socket (a stale socket file "
	"at\n"
	"                        PATH is replaced; removed at exit).\n"
	"  unix:PATH             connect to a UNIX socket, retried like tcp:.\n"
	"  One peer is served per socket at a time. A peer that disconnects "
	"is\n"
	"  waited for again; nothing else is disturbed.\n"
	"\n"
	"Framing (QEMU chardev packet framing), on every socket:\n"
	"  be32 length, [be32 vnet_hdr_len with --vnet-hdr], length bytes.\n"
	"  length includes the virtio-net header; frames longer than 69632 "
	"bytes\n"
	"  (4096+65536, QEMU's limit) are refused. Malformed input is counted "
	"and\n"
	"  logged and never stops the daemon: a zero-length frame or one "
	"whose\n"
	"  vnet_hdr_len exceeds its length is skipped; an over-long length "
	"loses\n"
	"  the framing, so that peer is disconnected and waited for again.\n"
	"\n"
	"Notify protocol (Xen libxl userspace proxy), same framing, ASCII\n"
	"messages without NUL matched by exact length:\n"
	"  peer -> colo  COLO_USERSPACE_PROXY_INIT  answered with\n"
	"                COLO_COMPARE_GET_XEN_INIT\n"
	"  colo -> peer  DO_CHECKPOINT              output diverged, timed out "
	"or\n"
	"                                           a queue filled up\n"
	"  peer -> colo  COLO_CHECKPOINT            checkpoint done: every "
	"held\n"
	"                                           primary frame is released\n"
	"  Outgoing notify frames never carry the vnet word; with --vnet-hdr,\n"
	"  incoming ones may or may not. Unknown messages are logged and "
	"ignored.\n"
	"  A request made while no notify peer is connected is sent after the\n"
	"  next peer's COLO_USERSPACE_PROXY_INIT.\n"
	"\n"
	"Output and back-pressure:\n"
	"  Released frames are buffered and written in batches. While more "
	"than\n"
	"  4 MiB wait (slow out peer, or none connected yet) the inputs are "
	"not\n"
	"  read, so the senders are slowed down; nothing is dropped.\n"
	"\n"
	"Signals:\n"
	"  SIGTERM, SIGINT  print final statistics to stderr and exit 0.\n"
	"  SIGUSR1          print statistics to stderr.\n"
	"\n"
	"Log: one line per event on stderr, prefixed with a UTC timestamp;\n"
	"divergences and checkpoint requests are logged one line each.\n"
	"\n"
	"Exit status: 0 after SIGTERM/SIGINT or --help, 1 when a socket "
	"cannot\n"
	"be opened or memory runs out, 2 for bad arguments.\n";
/* clang-format on */

enum {
	OPT_PRIMARY = 256,
	OPT_SECONDARY,
	OPT_OUT,
	OPT_NOTIFY,
	OPT_VNET,
	OPT_TIMEOUT,
	OPT_SCAN,
	OPT_MAX_QUEUE,
	OPT_STATS,
	OPT_QUIET,
	OPT_INSECURE,
	OPT_MAX_FLOWS,
};

static const struct option long_options[] = {
	{ "primary-in", required_argument, NULL, OPT_PRIMARY },
	{ "secondary-in", required_argument, NULL, OPT_SECONDARY },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "notify", required_argument, NULL, OPT_NOTIFY },
	{ "vnet-hdr", no_argument, NULL, OPT_VNET },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "max-flows", required_argument, NULL, OPT_MAX_FLOWS },
	{ "compare-timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "scan-interval", required_argument, NULL, OPT_SCAN },
	{ "max-queue", required_argument, NULL, OPT_MAX_QUEUE },
	{ "stats-interval", required_argument, NULL, OPT_STATS },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int usage_error(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "colo compare: ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\nTry 'colo compare --help'.\n");
	return 2;
}

/* Strict decimal in [min, max]: no sign, no spaces, no suffix. */
static int parse_uint(const char *opt, const char *s, uint64_t min,
		      uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (colo_parse_u64(s, UINT64_MAX, &v) < 0)
		return usage_error("%s: '%s' is not a number", opt, s);
	if (v < min || v > max) {
		char range[64];

		snprintf(range, sizeof(range), "%llu..%llu",
			 (unsigned long long)min, (unsigned long long)max);
		return usage_error("%s: must be in %s", opt, range);
	}
	*out = v;
	return 0;
}

/* The numeric options: name, range and where the value goes (a uint64_t
 * or a uint32_t field of the daemon's config). */
#define FIELD(f)                                                               \
	offsetof(struct colo_daemon_config, f),                                \
		sizeof(((struct colo_daemon_config *)0)->f)
static const struct num_opt {
	int id;
	const char *name;
	uint64_t min, max;
	size_t off, size;
} num_opts[] = {
	{ OPT_TIMEOUT, "--compare-timeout", 1, 86400000,
	  FIELD(compare_timeout_ms) },
	{ OPT_SCAN, "--scan-interval", 1, 86400000, FIELD(scan_interval_ms) },
	{ OPT_MAX_QUEUE, "--max-queue", 1, UINT32_MAX, FIELD(max_queue) },
	{ OPT_MAX_FLOWS, "--max-flows", 1, UINT32_MAX, FIELD(max_flows) },
	{ OPT_STATS, "--stats-interval", 0, 86400, FIELD(stats_interval_s) },
};
#undef FIELD

/* 0 when id is a numeric option and arg is in its range; 2 when it is
 * out of range or not a number (said on stderr); -1 for another id. */
static int num_opt(int id, const char *arg, struct colo_daemon_config *cfg)
{
	for (size_t i = 0; i < sizeof(num_opts) / sizeof(num_opts[0]); i++) {
		const struct num_opt *o = &num_opts[i];
		uint64_t v;
		uint32_t v32;

		if (o->id != id)
			continue;
		if (parse_uint(o->name, arg, o->min, o->max, &v))
			return 2;
		v32 = (uint32_t)v;
		memcpy((char *)cfg + o->off, o->size == 4 ? (void *)&v32 : &v,
		       o->size);
		return 0;
	}
	return -1;
}

static int parse_sock(const char *opt, const char *s,
		      struct colo_sock_spec *spec)
{
	char err[200], msg[256];

	if (!colo_sock_spec_parse(s, spec, err, sizeof(err)))
		return 0;
	snprintf(msg, sizeof(msg), "'%s': %s", s, err);
	return usage_error("%s: %s", opt, msg);
}

/* The socket options, in the order of their bit in `given`. */
static const struct sock_opt {
	int id;
	const char *name;
	size_t off;
} sock_opts[] = {
	{ OPT_PRIMARY, "--primary-in",
	  offsetof(struct colo_daemon_config, primary) },
	{ OPT_SECONDARY, "--secondary-in",
	  offsetof(struct colo_daemon_config, secondary) },
	{ OPT_OUT, "--out", offsetof(struct colo_daemon_config, out) },
	{ OPT_NOTIFY, "--notify", offsetof(struct colo_daemon_config, notify) },
};

/* Like num_opt, for the socket options; sets the option's bit in given. */
static int sock_opt(int id, const char *arg, struct colo_daemon_config *cfg,
		    unsigned int *given)
{
	for (size_t i = 0; i < sizeof(sock_opts) / sizeof(sock_opts[0]); i++) {
		if (sock_opts[i].id != id)
			continue;
		if (parse_sock(sock_opts[i].name, arg,
			       (struct colo_sock_spec *)((char *)cfg +
							 sock_opts[i].off)))
			return 2;
		*given |= 1u << i;
		return 0;
	}
	return -1;
}

int colo_cmd_compare(int argc, char **argv)
{
	struct colo_daemon_config cfg;
	bool insecure = false;
	unsigned int given = 0;
	int c, r;

	memset(&cfg, 0, sizeof(cfg));
	cfg.compare_timeout_ms = 3000;
	cfg.scan_interval_ms = 1000;
	cfg.max_queue = 1024;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
		const char *opt =
			optind > 1 && optind <= argc ? argv[optind - 1] : "?";

		switch (c) {
		case OPT_VNET:
			cfg.vnet_hdr = true;
			break;
		case OPT_INSECURE:
			insecure = true;
			break;
		case OPT_QUIET:
			cfg.quiet = true;
			break;
		case 'h':
			fputs(help_text, stdout);
			return 0;
		case ':':
			return usage_error("option %s needs an argument%s", opt,
					   "");
		default:
			r = sock_opt(c, optarg, &cfg, &given);
			if (r < 0)
				r = num_opt(c, optarg, &cfg);
			if (r == 0)
				break;
			if (r > 0)
				return r;
			return usage_error("unknown option '%s'%s", opt, "");
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'%s", argv[optind],
				   "");
	cfg.has_notify = given & (1u << 3);
	if ((given & 7) != 7)
		return usage_error("%s%s",
				   "--primary-in, --secondary-in and --out "
				   "are required",
				   "");
	/* A notify peer can release held output and order checkpoints:
	 * keep it on this host unless the user says the network is
	 * trusted. */
	if (cfg.has_notify && !insecure &&
	    !colo_sock_spec_is_loopback(&cfg.notify))
		return usage_error("%s%s",
				   "--notify on a non-loopback TCP address "
				   "lets any host release held output; use "
				   "unix-listen:PATH or 127.0.0.1, or add "
				   "--insecure",
				   "");
	return colo_daemon_run(&cfg);
}
