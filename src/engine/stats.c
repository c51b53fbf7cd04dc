/*
 * stats.c - counters and divergence reports in human-readable form.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "comparer.h"

/* The report, one printf format per line with up to four counters (named
 * by their offsets; a NULL format stands for the per-cause lines). A
 * table keeps the text, which scripts parse, in one place. */
#define AT(m) offsetof(struct colo_stats, m)
static const struct stats_line {
	const char *fmt;
	size_t off[4];
} stats_lines[] = {
	{ "frames_in primary=%llu secondary=%llu\n",
	  { AT(frames_in[0]), AT(frames_in[1]) } },
	{ "bytes_in primary=%llu secondary=%llu\n",
	  { AT(bytes_in[0]), AT(bytes_in[1]) } },
	{ "released frames=%llu bytes=%llu at_checkpoint=%llu "
	  "parts_ahead=%llu\n",
	  { AT(released_frames), AT(released_bytes), AT(released_at_checkpoint),
	    AT(released_parts) } },
	{ "matched tcp_bytes=%llu datagrams=%llu retransmits=%llu\n",
	  { AT(matched_bytes), AT(matched_datagrams), AT(retransmits) } },
	{ "non_ip primary_released=%llu secondary_dropped=%llu\n",
	  { AT(non_ip[0]), AT(non_ip[1]) } },
	{ "malformed primary=%llu secondary=%llu\n",
	  { AT(malformed[0]), AT(malformed[1]) } },
	{ "secondary_dropped %llu\n", { AT(secondary_dropped) } },
	{ NULL, { 0 } },
	{ "checkpoints_done %llu\n", { AT(checkpoints_done) } },
	{ "flows now=%llu created=%llu reclaimed=%llu\n",
	  { AT(flows), AT(flows_created), AT(flows_reclaimed) } },
	{ "flows limit=%llu refused_frames=%llu\n",
	  { AT(flow_limit), AT(flows_refused) } },
	{ "held frames=%llu bytes=%llu max_frames=%llu\n",
	  { AT(held_frames), AT(held_bytes), AT(held_frames_max) } },
	{ "secondary_buffered_bytes %llu\n", { AT(secondary_buffered_bytes) } },
	{ "memory ring_bytes=%llu cached_bytes=%llu trimmed_bytes=%llu\n",
	  { AT(ring_bytes), AT(cached_bytes), AT(trimmed_bytes) } },
};
#undef AT

static void print_causes(FILE *f, const char *label, const uint64_t *v)
{
	fputs(label, f);
	for (int i = 0; i < COLO_CAUSE_COUNT; i++)
		fprintf(f, " %s=%llu", colo_cause_name((enum colo_cause)i),
			(unsigned long long)v[i]);
	fputc('\n', f);
}

void colo_stats_print(const struct colo_stats *s, FILE *f)
{
	for (size_t i = 0; i < sizeof(stats_lines) / sizeof(stats_lines[0]);
	     i++) {
		const struct stats_line *l = &stats_lines[i];
		unsigned long long v[4];

		if (!l->fmt) {
			print_causes(f, "checkpoint_requests",
				     s->checkpoint_requests);
			print_causes(f, "divergences", s->divergences);
			continue;
		}
		for (size_t k = 0; k < 4; k++) {
			uint64_t x;

			memcpy(&x, (const char *)s + l->off[k], sizeof(x));
			v[k] = x;
		}
		/* A line with fewer than four counters ignores the rest. */
		fprintf(f, l->fmt, v[0], v[1], v[2], v[3]);
	}
}

static int byte_str(int b, char *buf, size_t n)
{
	if (b < 0)
		return snprintf(buf, n, "none");
	if (b >= 0x20 && b < 0x7f && b != '\'')
		return snprintf(buf, n, "0x%02x '%c'", b, b);
	return snprintf(buf, n, "0x%02x", b);
}

int colo_divergence_format(const struct colo_divergence *d, char *buf, size_t n)
{
	char flow[160], pb[16], sb[16];

	colo_flow_format(&d->key, flow, sizeof(flow));
	byte_str(d->primary_byte, pb, sizeof(pb));
	byte_str(d->secondary_byte, sb, sizeof(sb));
	const char *tag = d->requested ? "checkpoint-request" : "divergence";
	switch (d->cause) {
	case COLO_CAUSE_TIMEOUT:
		if (d->have_stream)
			return snprintf(
				buf, n,
				"%s timeout %s: primary frame (seq %u) "
				"unmatched for %llu ms; matched to %u, primary "
				"stream at %u (%u beyond a hole), secondary at "
				"%u (%u beyond a hole)",
				tag, flow, d->seq,
				(unsigned long long)(d->held_ns / 1000000),
				d->matched, d->stream_end[0], d->waiting[0],
				d->stream_end[1], d->waiting[1]);
		return snprintf(buf, n,
				"%s timeout %s: primary frame (seq %u) "
				"unmatched for %llu ms",
				tag, flow, d->seq,
				(unsigned long long)(d->held_ns / 1000000));
	case COLO_CAUSE_QUEUE_FULL:
		return snprintf(buf, n, "%s queue-full %s: queue bound reached",
				tag, flow);
	case COLO_CAUSE_SOURCE_PORT:
		return snprintf(buf, n,
				"%s source-port %s: the other guest sent to "
				"the same destination from port %u",
				tag, flow, d->other_sport);
	case COLO_CAUSE_CONTROL:
		return snprintf(buf, n,
				"%s control %s: FIN/stream end differs at seq "
				"%u",
				tag, flow, d->seq);
	case COLO_CAUSE_PAYLOAD:
	default:
		if (d->kind == COLO_PKT_TCP)
			return snprintf(buf, n,
					"%s payload %s: first difference at "
					"seq %u: primary %s, secondary %s",
					tag, flow, d->seq, pb, sb);
		return snprintf(buf, n,
				"%s payload %s: datagrams differ at offset "
				"%u: primary %s, secondary %s",
				tag, flow, d->offset, pb, sb);
	}
}
