/*
 * align_infer.c - a flow's sequence offset from the data, for captures
 * that began mid-connection.
 *
 * Each side's stream is rebuilt as runs of contiguous bytes
 * (retransmissions folded, holes where the capture lost frames), and the
 * first bytes one side captured are looked for in every run of the
 * other's: every hit is a candidate offset, and two different ones make
 * the flow ambiguous rather than a guess.
 */
#include <stdlib.h>
#include <string.h>

#include "align_internal.h"

/* Bytes of the first side's stream looked for in the other's: long enough
 * that only a stream repeating itself matches twice. */
#define NEEDLE_MAX 256
/* Fewer bytes than this could match anywhere by chance. */
#define NEEDLE_MIN 16
/* Stream bytes rebuilt per side and flow; beyond, inference only sees
 * the start of the capture. */
#define STREAM_MAX (64u << 20)

/* One payload-carrying segment of a side's stream. */
struct seg {
	int64_t rel; /* seq - the side's base, sign-extended */
	const uint8_t *data;
	size_t len;
	size_t frame;
};

struct run {
	int64_t rel; /* stream position of buf[at] */
	size_t at;
	size_t len;
};

/* A side's stream of one flow, as runs of contiguous bytes. */
struct stream {
	uint32_t base;
	struct seg *segs;
	size_t nsegs;
	uint8_t *buf;
	struct run *runs;
	size_t nruns;
};

static int seg_cmp(const void *x, const void *y)
{
	const struct seg *a = x, *b = y;

	if (a->rel != b->rel)
		return a->rel < b->rel ? -1 : 1;
	return a->frame < b->frame ? -1 : a->frame > b->frame;
}

static void stream_free(struct stream *s)
{
	free(s->segs);
	free(s->buf);
	free(s->runs);
	memset(s, 0, sizeof(*s));
}

/* Rebuilds the stream of the flow's frames e[0..n) of capture c. */
static int stream_build(const struct colo_capture *c,
			const struct colo_align_entry *e, size_t n,
			struct stream *s)
{
	size_t total = 0, used = 0;
	bool have_base = false;

	memset(s, 0, sizeof(*s));
	s->segs = malloc((n ? n : 1) * sizeof(*s->segs));
	if (!s->segs)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct colo_frame *f = &c->frames[e[i].frame];
		struct colo_packet p;

		if (!colo_align_parse_tcp(f, &p) || !p.payload_len)
			continue;
		if (!have_base) {
			s->base = p.seq;
			have_base = true;
		}
		s->segs[s->nsegs++] = (struct seg){
			.rel = (int32_t)(p.seq - s->base),
			.data = p.payload,
			.len = p.payload_len,
			.frame = e[i].frame,
		};
		total += p.payload_len;
	}
	qsort(s->segs, s->nsegs, sizeof(*s->segs), seg_cmp);
	if (total > STREAM_MAX)
		total = STREAM_MAX;
	s->buf = malloc(total ? total : 1);
	s->runs = malloc((s->nsegs ? s->nsegs : 1) * sizeof(*s->runs));
	if (!s->buf || !s->runs)
		return -1;
	for (size_t i = 0; i < s->nsegs && used < total; i++) {
		const struct seg *g = &s->segs[i];
		struct run *r = s->nruns ? &s->runs[s->nruns - 1] : NULL;
		int64_t end = r ? r->rel + (int64_t)r->len : 0;
		size_t skip = 0, take;

		if (r && g->rel <= end) {
			if (g->rel + (int64_t)g->len <= end)
				continue; /* retransmitted bytes */
			skip = (size_t)(end - g->rel);
		} else {
			r = &s->runs[s->nruns++];
			*r = (struct run){ .rel = g->rel,
					   .at = used,
					   .len = 0 };
		}
		take = g->len - skip;
		if (take > total - used)
			take = total - used;
		memcpy(s->buf + used, g->data + skip, take);
		used += take;
		r->len += take;
	}
	return 0;
}

/* The earliest captured frame whose payload holds stream position rel. */
static size_t stream_frame_at(const struct stream *s, int64_t rel)
{
	size_t best = COLO_NO_ANCHOR;

	for (size_t i = 0; i < s->nsegs; i++) {
		const struct seg *g = &s->segs[i];

		if (g->rel <= rel && rel < g->rel + (int64_t)g->len &&
		    g->frame < best)
			best = g->frame;
	}
	return best;
}

/*
 * Looks for the first bytes of side `s`'s stream in the other side's.
 * Returns the number of distinct offsets (secondary - primary) that puts
 * them at: 0, 1 or 2 (the search stops at the second, in off[1]). For the
 * first, the matched bytes' sequence numbers on each side go to seq[].
 */
static int find_start(const struct stream st[2], int s, size_t *needle,
		      uint32_t off[2], uint32_t seq[2])
{
	const struct stream *from = &st[s], *in = &st[!s];
	const struct run *first = &from->runs[0];
	size_t len = first->len < NEEDLE_MAX ? first->len : NEEDLE_MAX;
	const uint8_t *pat = from->buf + first->at;
	uint32_t at_from = from->base + (uint32_t)first->rel;
	int hits = 0;

	*needle = len;
	for (size_t r = 0; r < in->nruns && hits < 2; r++) {
		const uint8_t *hay = in->buf + in->runs[r].at;
		size_t hlen = in->runs[r].len, pos = 0;

		while (hits < 2 && hlen - pos >= len) {
			const uint8_t *m =
				memmem(hay + pos, hlen - pos, pat, len);
			uint32_t at_in;

			if (!m)
				break;
			pos = (size_t)(m - hay);
			at_in = in->base + (uint32_t)in->runs[r].rel +
				(uint32_t)pos;
			off[hits] = s ? at_from - at_in : at_in - at_from;
			if (!hits) {
				seq[s] = at_from;
				seq[!s] = at_in;
			}
			hits++;
			pos++;
		}
	}
	return hits;
}

static void infer(struct colo_flow_align *fa, const struct stream st[2])
{
	uint32_t off[2], seq[2];
	int hits;

	if (!st[0].nruns || !st[1].nruns || st[0].runs[0].len < NEEDLE_MIN ||
	    st[1].runs[0].len < NEEDLE_MIN) {
		fa->how = COLO_ALIGN_NO_DATA;
		return;
	}
	/* The primary's first bytes in the secondary's stream; if the
	 * secondary's capture began later, the other way round. */
	hits = find_start(st, 0, &fa->needle, off, seq);
	if (!hits)
		hits = find_start(st, 1, &fa->needle, off, seq);
	if (!hits) {
		fa->how = COLO_ALIGN_NO_MATCH;
		return;
	}
	fa->pri_seq = seq[0];
	fa->sec_seq = seq[1];
	fa->off.seq = off[0];
	fa->off.ts_ok = false;
	if (hits == 2) {
		fa->how = COLO_ALIGN_AMBIGUOUS;
		fa->alt_seq = off[1];
		return;
	}
	fa->how = COLO_ALIGNED_INFERRED;
	for (int s = 0; s < 2; s++)
		fa->anchor[s] =
			stream_frame_at(&st[s], (int32_t)(seq[s] - st[s].base));
}

int colo_align_infer(const struct colo_capture *const side[2],
		     const struct colo_align_entry *e, size_t n0, size_t n1,
		     struct colo_flow_align *fa)
{
	struct stream st[2];
	int rc = 0;

	memset(st, 0, sizeof(st));
	if (stream_build(side[0], e, n0, &st[0]) ||
	    stream_build(side[1], e + n0, n1, &st[1]))
		rc = -1;
	else
		infer(fa, st);
	stream_free(&st[0]);
	stream_free(&st[1]);
	return rc;
}
