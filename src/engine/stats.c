/*
 * stats.c - counters and divergence reports in human-readable form.
 */
#include <stdio.h>

#include "comparer.h"

void colo_stats_print(const struct colo_stats *s, FILE *f)
{
	fprintf(f, "frames_in primary=%llu secondary=%llu\n",
		(unsigned long long)s->frames_in[0],
		(unsigned long long)s->frames_in[1]);
	fprintf(f, "bytes_in primary=%llu secondary=%llu\n",
		(unsigned long long)s->bytes_in[0],
		(unsigned long long)s->bytes_in[1]);
	fprintf(f,
		"released frames=%llu bytes=%llu at_checkpoint=%llu "
		"parts_ahead=%llu\n",
		(unsigned long long)s->released_frames,
		(unsigned long long)s->released_bytes,
		(unsigned long long)s->released_at_checkpoint,
		(unsigned long long)s->released_parts);
	fprintf(f, "matched tcp_bytes=%llu datagrams=%llu retransmits=%llu\n",
		(unsigned long long)s->matched_bytes,
		(unsigned long long)s->matched_datagrams,
		(unsigned long long)s->retransmits);
	fprintf(f, "non_ip primary_released=%llu secondary_dropped=%llu\n",
		(unsigned long long)s->non_ip[0],
		(unsigned long long)s->non_ip[1]);
	fprintf(f, "malformed primary=%llu secondary=%llu\n",
		(unsigned long long)s->malformed[0],
		(unsigned long long)s->malformed[1]);
	fprintf(f, "secondary_dropped %llu\n",
		(unsigned long long)s->secondary_dropped);
	fprintf(f, "checkpoint_requests");
	for (int i = 0; i < COLO_CAUSE_COUNT; i++)
		fprintf(f, " %s=%llu", colo_cause_name((enum colo_cause)i),
			(unsigned long long)s->checkpoint_requests[i]);
	fprintf(f, "\ndivergences");
	for (int i = 0; i < COLO_CAUSE_COUNT; i++)
		fprintf(f, " %s=%llu", colo_cause_name((enum colo_cause)i),
			(unsigned long long)s->divergences[i]);
	fprintf(f, "\ncheckpoints_done %llu\n",
		(unsigned long long)s->checkpoints_done);
	fprintf(f, "flows now=%llu created=%llu reclaimed=%llu\n",
		(unsigned long long)s->flows,
		(unsigned long long)s->flows_created,
		(unsigned long long)s->flows_reclaimed);
	fprintf(f, "flows limit=%llu refused_frames=%llu\n",
		(unsigned long long)s->flow_limit,
		(unsigned long long)s->flows_refused);
	fprintf(f, "held frames=%llu bytes=%llu max_frames=%llu\n",
		(unsigned long long)s->held_frames,
		(unsigned long long)s->held_bytes,
		(unsigned long long)s->held_frames_max);
	fprintf(f, "secondary_buffered_bytes %llu\n",
		(unsigned long long)s->secondary_buffered_bytes);
	fprintf(f,
		"memory ring_bytes=%llu cached_bytes=%llu trimmed_bytes=%llu\n",
		(unsigned long long)s->ring_bytes,
		(unsigned long long)s->cached_bytes,
		(unsigned long long)s->trimmed_bytes);
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
