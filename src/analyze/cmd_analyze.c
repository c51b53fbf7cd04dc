/*
 * cmd_analyze.c - `colo analyze`: options, loading, and output of the
 * offline analyzer. The replay itself is in analyzer.c.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer.h"
#include "commands.h"
#include "pcap_io.h"
#include "sample_traffic.h"
#include "parse_num.h"

#define MS UINT64_C(1000000)

static const char analyze_usage[] =
	"usage: colo analyze [OPTIONS] [PRIMARY.pcap SECONDARY.pcap]\n";

static const char analyze_help[] =
	"\n"
	"Replay captures of the primary's and the secondary's output through\n"
	"the COLO comparer and explain every checkpoint it would ask for.\n"
	"\n"
	"DESCRIPTION\n"
	"  PRIMARY.pcap and SECONDARY.pcap hold what the two guests sent\n"
	"  (pcap or pcapng, Ethernet link type): on each side\n"
	"  `tcpdump -i eth0 -Q out` in a guest with its own interface, or\n"
	"  `tcpdump -i tap0 -Q in` on the host of a VM on tap0. Each TCP\n"
	"  flow and the two clocks are aligned first (see ALIGNMENT).\n"
	"  Then the frames are merged by capture time and fed to the same\n"
	"  comparison engine `colo compare` uses, with capture time as the\n"
	"  clock. A requested checkpoint is simulated as completing\n"
	"  --checkpoint-delay later; after the last frame the clock runs on\n"
	"  past the compare timeout so that unmatched frames time out.\n"
	"\n"
	"  Without file arguments the built-in sample traffic is analyzed\n"
	"  (the captures `colo sample` writes).\n"
	"\n"
	"  For each checkpoint request the report names the cause (payload,\n"
	"  control, timeout, queue-full), the flow, the TCP sequence number\n"
	"  or datagram offset of the first differing byte with both sides'\n"
	"  values, and the frames (numbered from 1, as tcpdump -# and\n"
	"  Wireshark count) holding it, with the bytes around it. Divergences\n"
	"  found while a checkpoint is pending are listed under it. A summary\n"
	"  follows: frames and bytes per side, released, matched, checkpoint\n"
	"  requests and divergences by cause, flows.\n"
	"\n"
	"OPTIONS\n"
	"  -w, --write FILE\n"
	"        Write the frames involved in the divergences, from both\n"
	"        sides, in time order, to FILE (pcap, microsecond "
	"timestamps).\n"
	"  --compare-timeout MS\n"
	"        How long a primary frame may wait for its match before a\n"
	"        checkpoint is requested (default 3000).\n"
	"  --max-queue N\n"
	"        Frames held per flow queue before a checkpoint is requested\n"
	"        (default 1024).\n"
	"  --checkpoint-delay MS\n"
	"        Time a checkpoint takes to complete (default 0: right after\n"
	"        the frame that caused it). Divergences while it is pending\n"
	"        do not ask for another one.\n"
	"  --align auto|handshake|none\n"
	"        How each TCP flow's secondary sequence numbers are brought\n"
	"        into the primary's space, as the secondary proxy's rewriter\n"
	"        does live. auto (default): from the two guests' SYN or\n"
	"        SYN/ACK when both captures hold them, otherwise inferred\n"
	"        from the data (the first bytes one side sent, found in the\n"
	"        other's stream; a stream that repeats itself is reported\n"
	"        ambiguous and not compared). handshake: from the\n"
	"        SYNs only. none: as captured, for captures taken after a\n"
	"        rewriter (the comparer's own inputs).\n"
	"  --skew auto|MS\n"
	"        How far the secondary's capture clock is ahead of the\n"
	"        primary's, in milliseconds (negative: behind); its\n"
	"        timestamps are moved back by that much. auto (default):\n"
	"        make the first matching frames coincide. 0: one clock.\n"
	"  -q, --quiet\n"
	"        Print the alignment counts and the summary only.\n"
	"  -h, --help\n"
	"        Show this help.\n"
	"\n"
	"ALIGNMENT\n"
	"  The report first says how the captures were aligned: the clock,\n"
	"  and for every TCP flow handshake, inferred (with the bytes it\n"
	"  rests on), ambiguous, no match, no data or one side. The frames\n"
	"  written with -w are as replayed: secondary frames carry aligned\n"
	"  sequence numbers (checksums kept valid) and timestamps.\n"
	"\n"
	"EXIT STATUS\n"
	"  0  the captures were analyzed (whether or not checkpoints were\n"
	"     requested); 1  a file could not be read or written, or memory\n"
	"     ran out; 2  usage error.\n"
	"\n"
	"EXAMPLES\n"
	"  colo analyze\n"
	"  colo analyze samples/primary.pcap samples/secondary.pcap\n"
	"  colo analyze -w divergent.pcap --checkpoint-delay 200 p.pcap "
	"s.pcap\n"
	"  colo analyze --skew 5000 p.pcap s.pcap\n";

struct analyze_opts {
	struct colo_analyze_config cfg;
	struct colo_align_config align;
	const char *write_path;
	bool quiet;
	const char *files[2];
	int nfiles;
};

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "colo analyze: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%sTry 'colo analyze --help'.\n", analyze_usage);
	return 2;
}

/* "auto", or signed whole milliseconds within a year. */
static int parse_skew(const char *arg, struct colo_align_config *a)
{
	bool neg = arg[0] == '-';
	uint64_t v;

	if (!strcmp(arg, "auto")) {
		a->skew_auto = true;
		return 0;
	}
	if (colo_parse_u64(arg + neg, UINT64_C(366) * 86400 * 1000, &v))
		return -1;
	a->skew_auto = false;
	a->skew_ns = (neg ? -1 : 1) * (int64_t)(v * MS);
	return 0;
}

static int parse_args(int argc, char **argv, struct analyze_opts *o)
{
	enum { OPT_TIMEOUT = 256, OPT_QUEUE, OPT_DELAY, OPT_ALIGN, OPT_SKEW };
	static const struct option longopts[] = {
		{ "write", required_argument, NULL, 'w' },
		{ "compare-timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "max-queue", required_argument, NULL, OPT_QUEUE },
		{ "checkpoint-delay", required_argument, NULL, OPT_DELAY },
		{ "align", required_argument, NULL, OPT_ALIGN },
		{ "skew", required_argument, NULL, OPT_SKEW },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	colo_analyze_config_default(&o->cfg);
	colo_align_config_default(&o->align);
	optind = 0; /* full reset: tests run commands more than once */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":w:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			o->write_path = optarg;
			break;
		case OPT_TIMEOUT:
			if (colo_parse_u64(optarg, UINT64_MAX / MS, &v) || !v)
				return usage_error("bad --compare-timeout '%s' "
						   "(milliseconds, at least 1)",
						   optarg);
			o->cfg.cmp.compare_timeout_ns = v * MS;
			break;
		case OPT_QUEUE:
			if (colo_parse_u64(optarg, UINT32_MAX, &v) || !v)
				return usage_error("bad --max-queue '%s' "
						   "(frames, at least 1)",
						   optarg);
			o->cfg.cmp.max_queue = (uint32_t)v;
			break;
		case OPT_DELAY:
			if (colo_parse_u64(optarg, UINT64_MAX / MS / 2, &v))
				return usage_error(
					"bad --checkpoint-delay '%s' "
					"(milliseconds)",
					optarg);
			o->cfg.checkpoint_delay_ns = v * MS;
			break;
		case OPT_ALIGN:
			if (!strcmp(optarg, "auto"))
				o->align.mode = COLO_ALIGN_AUTO;
			else if (!strcmp(optarg, "handshake"))
				o->align.mode = COLO_ALIGN_HANDSHAKE;
			else if (!strcmp(optarg, "none"))
				o->align.mode = COLO_ALIGN_NONE;
			else
				return usage_error("bad --align '%s' (auto, "
						   "handshake or none)",
						   optarg);
			break;
		case OPT_SKEW:
			if (parse_skew(optarg, &o->align))
				return usage_error("bad --skew '%s' (auto or "
						   "milliseconds)",
						   optarg);
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			fputs(analyze_usage, stdout);
			fputs(analyze_help, stdout);
			return 0;
		case ':':
			return usage_error("option '%s' needs an argument",
					   argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'",
					   argv[optind - 1]);
		}
	}
	for (; optind < argc; optind++) {
		if (o->nfiles == 2)
			return usage_error("unexpected argument '%s'",
					   argv[optind]);
		o->files[o->nfiles++] = argv[optind];
	}
	if (o->nfiles == 1)
		return usage_error("%s", "need both PRIMARY.pcap and "
					 "SECONDARY.pcap (or neither, for the "
					 "built-in sample)");
	return -1;
}

static int load(const struct analyze_opts *o, struct colo_capture side[2])
{
	char err[512];

	if (!o->nfiles) {
		if (colo_sample_generate(&side[0], &side[1])) {
			fprintf(stderr, "colo analyze: out of memory\n");
			return -1;
		}
		return 0;
	}
	for (int s = 0; s < 2; s++) {
		if (colo_pcap_read(o->files[s], &side[s], err, sizeof(err))) {
			fprintf(stderr, "colo analyze: %s\n", err);
			return -1;
		}
	}
	return 0;
}

static int write_divergent(const char *path, const struct colo_analysis *a,
			   const struct colo_capture *const side[2])
{
	struct colo_side_frame *list;
	struct colo_pcap_writer *w;
	char err[512];
	ssize_t n;

	n = colo_analysis_frames(a, side, &list);
	if (n < 0) {
		fprintf(stderr, "colo analyze: out of memory\n");
		return -1;
	}
	w = colo_pcap_writer_open(path, err, sizeof(err));
	if (!w) {
		fprintf(stderr, "colo analyze: %s\n", err);
		free(list);
		return -1;
	}
	for (ssize_t i = 0; i < n; i++)
		colo_pcap_writer_add(
			w, &side[list[i].side]->frames[list[i].index]);
	free(list);
	if (colo_pcap_writer_close(w, err, sizeof(err))) {
		fprintf(stderr, "colo analyze: %s\n", err);
		return -1;
	}
	printf("wrote %zd frames involved in divergences to %s\n", n, path);
	return 0;
}

static void print_header(const struct analyze_opts *o,
			 const struct colo_capture side[2])
{
	if (o->nfiles)
		printf("primary   %s: %zu frames\nsecondary %s: %zu frames\n",
		       o->files[0], side[0].n, o->files[1], side[1].n);
	else
		printf("built-in sample traffic ('colo sample' writes it): "
		       "primary %zu frames, secondary %zu frames\n",
		       side[0].n, side[1].n);
	printf("compare timeout %" PRIu64 " ms, max queue %" PRIu32
	       ", checkpoint delay %" PRIu64 " ms\n\n",
	       o->cfg.cmp.compare_timeout_ns / MS, o->cfg.cmp.max_queue,
	       o->cfg.checkpoint_delay_ns / MS);
}

int colo_cmd_analyze(int argc, char **argv)
{
	struct analyze_opts o;
	struct colo_capture side[2];
	const struct colo_capture *const sides[2] = { &side[0], &side[1] };
	struct colo_capture *const side_rw[2] = { &side[0], &side[1] };
	struct colo_alignment al = { 0 };
	struct colo_analysis a;
	int rc;

	rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	colo_capture_init(&side[0]);
	colo_capture_init(&side[1]);
	rc = 1;
	if (load(&o, side))
		goto out;
	if (colo_align(side_rw, &o.align, &al)) {
		fprintf(stderr, "colo analyze: out of memory\n");
		goto out;
	}
	if (colo_analyze_run(sides, &o.cfg, &a)) {
		fprintf(stderr, "colo analyze: out of memory\n");
		colo_analysis_free(&a);
		goto out;
	}
	print_header(&o, side);
	colo_report_alignment(stdout, &o.align, &al, !o.quiet);
	if (!o.quiet)
		for (size_t i = 0; i < a.n; i++)
			colo_report_finding(stdout, &a, &a.findings[i], sides);
	colo_report_summary(stdout, &a, sides);
	rc = 0;
	if (o.write_path && write_divergent(o.write_path, &a, sides))
		rc = 1;
	colo_analysis_free(&a);
out:
	colo_alignment_free(&al);
	colo_capture_free(&side[0]);
	colo_capture_free(&side[1]);
	fflush(stdout);
	return rc;
}
