/*
 * report_align.c - the part of the report that says how the two captures
 * were aligned: the clock, then every TCP flow, so a reader knows which
 * comparisons rest on a handshake, which on an inference from the data,
 * which were left as captured, and which could not be compared.
 */
#include <inttypes.h>
#include <stdio.h>

#include "analyzer.h"

static const char *mode_name(enum colo_align_mode m)
{
	switch (m) {
	case COLO_ALIGN_AUTO:
		return "auto (handshake, else inferred from the data)";
	case COLO_ALIGN_HANDSHAKE:
		return "handshake (flows without one as captured)";
	case COLO_ALIGN_NONE:
		return "none (sequence numbers as captured)";
	}
	return "?";
}

static void print_secs(FILE *out, int64_t ns)
{
	uint64_t a = ns < 0 ? (uint64_t)-ns : (uint64_t)ns;

	fprintf(out, "%c%" PRIu64 ".%06" PRIu64 " s", ns < 0 ? '-' : '+',
		a / 1000000000u, a % 1000000000u / 1000u);
}

static void print_clock(FILE *out, const struct colo_align_config *cfg,
			const struct colo_alignment *al)
{
	fprintf(out, "  clock: ");
	if (!cfg->skew_auto) {
		fprintf(out, "secondary timestamps moved by ");
		print_secs(out, -al->skew_ns);
		fprintf(out, " (given with --skew)\n");
		return;
	}
	if (!al->skew_found) {
		fprintf(out, "no matching frames to align on; the captures "
			     "are taken as sharing one clock\n");
		return;
	}
	fprintf(out, "secondary timestamps moved by ");
	print_secs(out, -al->skew_ns);
	fprintf(out,
		" so that the first matching frames (primary frame %zu, "
		"secondary frame %zu) coincide\n",
		al->anchor[0] + 1, al->anchor[1] + 1);
}

/* An offset modulo 2^32 as the signed distance it stands for. */
static void print_off(FILE *out, uint32_t off)
{
	int64_t d = (int32_t)off;

	fprintf(out, "%c %" PRId64, d < 0 ? '-' : '+', d < 0 ? -d : d);
}

static void print_flow(FILE *out, const struct colo_flow_align *fa)
{
	char flow[192];

	colo_flow_format(&fa->key, flow, sizeof(flow));
	fprintf(out, "  %s: %s", flow, colo_align_how_name(fa->how));
	switch (fa->how) {
	case COLO_ALIGNED_HANDSHAKE:
		fprintf(out, ", secondary seq = primary seq ");
		print_off(out, fa->off.seq);
		if (fa->off.ts_ok) {
			fprintf(out, ", TSval ");
			print_off(out, fa->off.ts);
		}
		break;
	case COLO_ALIGNED_INFERRED:
		fprintf(out, ", secondary seq = primary seq ");
		print_off(out, fa->off.seq);
		fprintf(out,
			" (%zu bytes at primary seq %" PRIu32
			" found once, at secondary seq %" PRIu32
			"; TSvals as captured)",
			fa->needle, fa->pri_seq, fa->sec_seq);
		if (fa->skipped[0] || fa->skipped[1])
			fprintf(out,
				"; %zu primary and %zu secondary frames "
				"captured before the match not replayed",
				fa->skipped[0], fa->skipped[1]);
		break;
	case COLO_ALIGN_AMBIGUOUS:
		fprintf(out, ": the first %zu bytes fit offsets ", fa->needle);
		print_off(out, fa->off.seq);
		fprintf(out, " and ");
		print_off(out, fa->alt_seq);
		fprintf(out, " (at least; the stream repeats itself), not "
			     "compared");
		break;
	case COLO_ALIGN_NO_MATCH:
		fprintf(out, ": neither side's first bytes occur in the "
			     "other's stream, not compared");
		break;
	case COLO_ALIGN_NO_DATA:
		fprintf(out, ": no handshake and too few payload bytes to "
			     "infer an offset, not compared");
		break;
	case COLO_ALIGN_ONE_SIDE:
		fprintf(out, ": in the %s capture only",
			fa->frames[0] ? "primary" : "secondary");
		break;
	case COLO_ALIGN_AS_CAPTURED:
		break;
	}
	fprintf(out, " [%zu/%zu frames]\n", fa->frames[0], fa->frames[1]);
}

void colo_report_alignment(FILE *out, const struct colo_align_config *cfg,
			   const struct colo_alignment *al, bool per_flow)
{
	size_t count[COLO_ALIGN_AS_CAPTURED + 1] = { 0 };

	fprintf(out, "alignment: %s\n", mode_name(cfg->mode));
	print_clock(out, cfg, al);
	for (size_t i = 0; i < al->n; i++) {
		count[al->flows[i].how]++;
		if (per_flow)
			print_flow(out, &al->flows[i]);
	}
	fprintf(out, "  TCP flows: %zu", al->n);
	for (int h = 0; h <= COLO_ALIGN_AS_CAPTURED; h++)
		if (count[h])
			fprintf(out, ", %s %zu",
				colo_align_how_name((enum colo_align_how)h),
				count[h]);
	fprintf(out, "\n\n");
}
