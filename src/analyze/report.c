/*
 * report.c - the text `colo analyze` prints.
 *
 * Written for a person deciding whether a checkpoint was legitimate: the
 * flow, the stream position, the first differing byte and the bytes
 * around it on both sides, with frame numbers (1-based, as Wireshark and
 * tcpdump count) to look the frames up in the captures.
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "analyzer.h"
#include "flow.h"
#include "packet.h"

#define CONTEXT_BEFORE 8
#define CONTEXT_AFTER 7

static void print_time(FILE *out, const struct colo_analysis *a, uint64_t t)
{
	uint64_t rel = t >= a->start_ns ? t - a->start_ns : 0;

	fprintf(out, "+%" PRIu64 ".%06" PRIu64 " s", rel / 1000000000u,
		rel % 1000000000u / 1000u);
}

static void print_utc(FILE *out, uint64_t t)
{
	time_t sec = (time_t)(t / 1000000000u);
	struct tm tm;
	char buf[32];

	if (!gmtime_r(&sec, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm))
		return;
	fprintf(out, " (%s.%06" PRIu64 " UTC)", buf, t % 1000000000u / 1000u);
}

static void print_byte(FILE *out, int b)
{
	if (b < 0)
		fprintf(out, "(no byte)");
	else if (b >= 0x20 && b < 0x7f)
		fprintf(out, "0x%02x '%c'", b, b);
	else
		fprintf(out, "0x%02x", b);
}

/* "   3a 32 [31] 20 47   ":2[1] G"" around payload byte `at`. */
static void print_context(FILE *out, const uint8_t *p, size_t len, size_t at)
{
	size_t lo = at > CONTEXT_BEFORE ? at - CONTEXT_BEFORE : 0;
	size_t hi = len - at > CONTEXT_AFTER ? at + CONTEXT_AFTER + 1 : len;

	fprintf(out, "    offset %zu: %s", at, lo ? "..." : "   ");
	for (size_t i = lo; i < hi; i++)
		fprintf(out, i == at ? " [%02x]" : " %02x", p[i]);
	fprintf(out, "%s  \"", hi < len ? " ..." : "");
	for (size_t i = lo; i < hi; i++) {
		int c = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.';

		fprintf(out, i == at ? "[%c]" : "%c", c);
	}
	fprintf(out, "\"\n");
}

static void print_frame(FILE *out, const struct colo_finding *f,
			const struct colo_capture *const side[2], int s)
{
	static const char *const name[2] = { "primary  ", "secondary" };
	const struct colo_frame *fr;
	struct colo_packet p;

	if (f->frame[s] == COLO_NO_FRAME)
		return;
	fr = &side[s]->frames[f->frame[s]];
	if (colo_packet_parse(fr->data, fr->len, &p) == COLO_PKT_MALFORMED) {
		/* the comparer compares these as whole frames */
		p.payload = fr->data;
		p.payload_len = fr->len;
	}
	fprintf(out, "  %s frame %zu: %s", name[s], f->frame[s] + 1,
		colo_pkt_kind_name(p.kind));
	if (p.kind == COLO_PKT_TCP)
		fprintf(out, " seq %" PRIu32 " flags 0x%02x", p.seq,
			p.tcp_flags);
	fprintf(out, ", %zu %s bytes", p.payload_len,
		p.kind == COLO_PKT_MALFORMED ? "frame" : "payload");
	fprintf(out, "\n");
	if (f->byte[s] < p.payload_len)
		print_context(out, p.payload, p.payload_len, f->byte[s]);
}

static void print_cause(FILE *out, const struct colo_divergence *d)
{
	switch (d->cause) {
	case COLO_CAUSE_PAYLOAD:
		fprintf(out, "  first difference: ");
		if (d->kind == COLO_PKT_TCP)
			fprintf(out, "seq %" PRIu32, d->seq);
		else
			fprintf(out, "datagram offset %" PRIu32, d->offset);
		fprintf(out, ", primary ");
		print_byte(out, d->primary_byte);
		fprintf(out, ", secondary ");
		print_byte(out, d->secondary_byte);
		fprintf(out, "\n");
		break;
	case COLO_CAUSE_CONTROL:
		fprintf(out, "  the stream ends (FIN) at different sequence "
			     "numbers; at seq %" PRIu32 "\n",
			d->seq);
		break;
	case COLO_CAUSE_TIMEOUT:
		fprintf(out, "  a primary frame ");
		if (d->kind == COLO_PKT_TCP)
			fprintf(out, "(seq %" PRIu32 ") ", d->seq);
		fprintf(out, "found no match for %" PRIu64 ".%03" PRIu64 " ms\n",
			d->held_ns / 1000000u, d->held_ns % 1000000u / 1000u);
		break;
	case COLO_CAUSE_SOURCE_PORT:
		fprintf(out, "  the other guest sent to the same destination "
			     "from source port %u\n",
			d->other_sport);
		break;
	case COLO_CAUSE_QUEUE_FULL:
	case COLO_CAUSE_COUNT:
		fprintf(out, "  a queue of this flow passed its bound\n");
		break;
	}
}

void colo_report_finding(FILE *out, const struct colo_analysis *a,
			 const struct colo_finding *f,
			 const struct colo_capture *const side[2])
{
	char flow[192];

	colo_flow_format(&f->d.key, flow, sizeof(flow));
	if (f->d.requested)
		fprintf(out, "checkpoint %u requested at ", f->checkpoint);
	else
		fprintf(out, "while checkpoint %u is pending, at ",
			f->checkpoint);
	print_time(out, a, f->d.now_ns);
	print_utc(out, f->d.now_ns);
	fprintf(out, ": %s\n  flow %s\n", colo_cause_name(f->d.cause), flow);
	print_cause(out, &f->d);
	print_frame(out, f, side, COLO_PRIMARY);
	print_frame(out, f, side, COLO_SECONDARY);
	if (f->d.requested && f->done_ns) {
		fprintf(out, "  checkpoint done at ");
		print_time(out, a, f->done_ns);
		fprintf(out, "\n");
	}
	fprintf(out, "\n");
}

static void print_count(FILE *out, const char *what, uint64_t frames,
			uint64_t bytes)
{
	fprintf(out, "  %-22s %" PRIu64 " frames, %" PRIu64 " bytes\n", what,
		frames, bytes);
}

static void print_causes(FILE *out, const char *what, const uint64_t *n)
{
	uint64_t total = 0;

	for (int i = 0; i < COLO_CAUSE_COUNT; i++)
		total += n[i];
	fprintf(out, "  %-22s %" PRIu64, what, total);
	for (int i = 0; i < COLO_CAUSE_COUNT; i++)
		fprintf(out, "%s%s %" PRIu64, i ? ", " : " (",
			colo_cause_name((enum colo_cause)i), n[i]);
	fprintf(out, ")\n");
}

void colo_report_summary(FILE *out, const struct colo_analysis *a,
			 const struct colo_capture *const side[2])
{
	const struct colo_stats *s = &a->stats;

	fprintf(out, "summary (");
	print_time(out, a, a->end_ns);
	fprintf(out, " of capture time replayed)\n");
	print_count(out, "primary", s->frames_in[0], s->bytes_in[0]);
	print_count(out, "secondary", s->frames_in[1], s->bytes_in[1]);
	fprintf(out,
		"  %-22s %" PRIu64 " frames, %" PRIu64 " bytes (%" PRIu64
		" of the frames by a checkpoint; %" PRIu64
		" matched fronts sent ahead)\n",
		"released", s->released_frames, s->released_bytes,
		s->released_at_checkpoint, s->released_parts);
	fprintf(out, "  %-22s %" PRIu64 " TCP bytes, %" PRIu64 " datagrams\n",
		"matched", s->matched_bytes, s->matched_datagrams);
	fprintf(out, "  %-22s %" PRIu64 " primary TCP frames\n",
		"retransmissions", s->retransmits);
	fprintf(out,
		"  %-22s %" PRIu64 " primary released, %" PRIu64
		" secondary dropped\n",
		"non-IP", s->non_ip[0], s->non_ip[1]);
	if (s->malformed[0] || s->malformed[1])
		fprintf(out, "  %-22s %" PRIu64 " primary, %" PRIu64
			     " secondary\n",
			"malformed", s->malformed[0], s->malformed[1]);
	print_causes(out, "checkpoint requests", s->checkpoint_requests);
	print_causes(out, "divergences", s->divergences);
	fprintf(out, "  %-22s %" PRIu64 "\n", "checkpoints done",
		s->checkpoints_done);
	fprintf(out, "  %-22s %" PRIu64 "\n", "flows", s->flows_created);
	if (s->held_frames)
		fprintf(out, "  %-22s %" PRIu64 " frames never released\n",
			"held at end", s->held_frames);
	for (int i = 0; i < 2; i++)
		if (side[i]->truncated)
			fprintf(out,
				"  warning: %zu %s frames were cut short by "
				"the capture's snap length and compared as "
				"captured\n",
				side[i]->truncated,
				i ? "secondary" : "primary");
}
