/*
 * stats.c - counters and divergence reports in human-readable form.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "comparer.h"

/* The report, one line per entry: a label, then up to four counters as
 * " name=value" (or " value" for a nameless one). A table keeps the text
 * format, which scripts parse, in one place. */
#define AT(m) offsetof(struct colo_stats, m)
static const struct stats_line {
	const char *label;
	struct {
		const char *name;
		size_t off;
	} f[4];
} stats_lines[] = {
	{ "frames_in",
	  { { "primary", AT(frames_in[0]) },
	    { "secondary", AT(frames_in[1]) } } },
	{ "bytes_in",
	  { { "primary", AT(bytes_in[0]) },
	    { "secondary", AT(bytes_in[1]) } } },
	{ "released",
	  { { "frames", AT(released_frames) },
	    { "bytes", AT(released_bytes) },
	    { "at_checkpoint", AT(released_at_checkpoint) },
	    { "parts_ahead", AT(released_parts) } } },
	{ "matched",
	  { { "tcp_bytes", AT(matched_bytes) },
	    { "datagrams", AT(matched_datagrams) },
	    { "retransmits", AT(retransmits) } } },
	{ "non_ip",
	  { { "primary_released", AT(non_ip[0]) },
	    { "secondary_dropped", AT(non_ip[1]) } } },
	{ "malformed",
	  { { "primary", AT(malformed[0]) },
	    { "secondary", AT(malformed[1]) } } },
	{ "secondary_dropped", { { NULL, AT(secondary_dropped) } } },
	{ NULL, { { NULL, 0 } } }, /* the per-cause counters go here */
	{ "checkpoints_done", { { NULL, AT(checkpoints_done) } } },
	{ "flows",
	  { { "now", AT(flows) },
	    { "created", AT(flows_created) },
	    { "reclaimed", AT(flows_reclaimed) } } },
	{ "flows",
	  { { "limit", AT(flow_limit) },
	    { "refused_frames", AT(flows_refused) } } },
	{ "held",
	  { { "frames", AT(held_frames) },
	    { "bytes", AT(held_bytes) },
	    { "max_frames", AT(held_frames_max) } } },
	{ "secondary_buffered_bytes",
	  { { NULL, AT(secondary_buffered_bytes) } } },
	{ "memory",
	  { { "ring_bytes", AT(ring_bytes) },
	    { "cached_bytes", AT(cached_bytes) },
	    { "trimmed_bytes", AT(trimmed_bytes) } } },
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

		if (!l->label) {
			print_causes(f, "checkpoint_requests",
				     s->checkpoint_requests);
			print_causes(f, "divergences", s->divergences);
			continue;
		}
		fputs(l->label, f);
		for (size_t k = 0; k < 4 && (k == 0 || l->f[k].name); k++) {
			uint64_t v;

			memcpy(&v, (const char *)s + l->f[k].off, sizeof(v));
			if (l->f[k].name)
				fprintf(f, " %s=%llu", l->f[k].name,
					(unsigned long long)v);
			else
				fprintf(f, " %llu", (unsigned long long)v);
		}
		fputc('\n', f);
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
