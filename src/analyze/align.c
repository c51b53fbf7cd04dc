/*
 * align.c - per-flow sequence alignment and clock alignment of the two
 * captures; see align.h.
 *
 * Frames are grouped by flow with one sort (key, side, frame index), so
 * the cost is O(n log n) whatever the number of flows. Inference builds
 * each side's stream as runs of contiguous bytes (retransmissions folded,
 * holes where the capture lost frames) and looks for the first bytes of
 * one side in every run of the other: every hit is a candidate offset, and
 * two different ones make the flow ambiguous.
 */
#include <stdlib.h>
#include <string.h>

#include "align.h"
#include "byteorder.h"
#include "checksum.h"
#include "packet.h"
#include "tcp_rewriter.h"

/* Bytes of the first side's stream looked for in the other's: long enough
 * that only a stream repeating itself matches twice. */
#define NEEDLE_MAX 256
/* Fewer bytes than this could match anywhere by chance. */
#define NEEDLE_MIN 16
/* Stream bytes rebuilt per side and flow; beyond, inference only sees
 * the start of the capture. */
#define STREAM_MAX (64u << 20)

struct entry {
	struct colo_flow_key key;
	int side;
	size_t frame;
};

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

void colo_align_config_default(struct colo_align_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = COLO_ALIGN_AUTO;
	cfg->skew_auto = true;
}

const char *colo_align_how_name(enum colo_align_how how)
{
	switch (how) {
	case COLO_ALIGNED_HANDSHAKE:
		return "handshake";
	case COLO_ALIGNED_INFERRED:
		return "inferred";
	case COLO_ALIGN_AMBIGUOUS:
		return "ambiguous";
	case COLO_ALIGN_NO_MATCH:
		return "no match";
	case COLO_ALIGN_NO_DATA:
		return "no data";
	case COLO_ALIGN_ONE_SIDE:
		return "one side";
	case COLO_ALIGN_AS_CAPTURED:
		return "as captured";
	}
	return "?";
}

static int entry_cmp(const void *x, const void *y)
{
	const struct entry *a = x, *b = y;
	int c = memcmp(&a->key, &b->key, sizeof(a->key));

	if (c)
		return c;
	if (a->side != b->side)
		return a->side - b->side;
	return a->frame < b->frame ? -1 : a->frame > b->frame;
}

static int seg_cmp(const void *x, const void *y)
{
	const struct seg *a = x, *b = y;

	if (a->rel != b->rel)
		return a->rel < b->rel ? -1 : 1;
	return a->frame < b->frame ? -1 : a->frame > b->frame;
}

static bool parse_tcp(const struct colo_frame *f, struct colo_packet *p)
{
	return colo_packet_parse(f->data, f->len, p) == COLO_PKT_TCP;
}

static void stream_free(struct stream *s)
{
	free(s->segs);
	free(s->buf);
	free(s->runs);
	memset(s, 0, sizeof(*s));
}

/* Rebuilds the stream of the flow's frames e[0..n) of capture c. */
static int stream_build(const struct colo_capture *c, const struct entry *e,
			size_t n, struct stream *s)
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

		if (!parse_tcp(f, &p) || !p.payload_len)
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

/* The first SYN or SYN/ACK among the flow's frames e[0..n). */
static bool first_syn(const struct colo_capture *c, const struct entry *e,
		      size_t n, struct colo_tcp_syn *syn, size_t *frame)
{
	for (size_t i = 0; i < n; i++) {
		const struct colo_frame *f = &c->frames[e[i].frame];
		struct colo_conn_meta m;

		if (!colo_conn_meta_from_frame(f->data, f->len, 0, &m))
			continue;
		syn->isn = m.isn;
		syn->tsval = m.tsval;
		syn->has_ts = m.has_ts;
		*frame = e[i].frame;
		return true;
	}
	return false;
}

/* Moves the flow's secondary frames into the primary's space. */
static void shift_frames(struct colo_capture *c, const struct entry *e,
			 size_t n, const struct colo_tcp_offset *off)
{
	for (size_t i = 0; i < n; i++) {
		struct colo_frame *f = &c->frames[e[i].frame];
		struct colo_tcp_opts o;
		struct colo_packet p;
		uint8_t *tcp;
		size_t doff;

		if (!parse_tcp(f, &p))
			continue;
		tcp = f->data + (p.l4 - f->data);
		doff = (size_t)(tcp[12] >> 4) * 4; /* checked by the parser */
		colo_tcp_find_options(tcp, doff, &o);
		colo_tcp_offset_shift_egress(tcp, o.ts_at, true, off);
	}
}

/* Recomputes a TCP checksum over the pseudo-header and the segment. */
static void tcp_checksum(const struct colo_packet *p, uint8_t *tcp,
			 size_t tcp_len)
{
	size_t alen = p->ipver == 4 ? 4 : 16;
	uint32_t sum = 6 + (uint32_t)tcp_len;
	uint16_t c;

	sum = colo_csum_add(sum, p->src, alen);
	sum = colo_csum_add(sum, p->dst, alen);
	tcp[16] = tcp[17] = 0;
	sum = colo_csum_add(sum, tcp, tcp_len);
	c = colo_csum_fold(sum);
	colo_put_be16(tcp + 16, c);
}

/* Cuts the first `cut` payload bytes off a TCP frame (seq, IP length and
 * checksums follow), so that it starts where the other side's does. */
static void trim_front(struct colo_frame *f, uint32_t cut)
{
	struct colo_packet p;
	uint8_t *l3, *tcp;
	size_t doff, tail;

	if (!parse_tcp(f, &p) || cut >= p.payload_len)
		return;
	l3 = f->data + (p.l3 - f->data);
	tcp = f->data + (p.l4 - f->data);
	doff = (size_t)(tcp[12] >> 4) * 4;
	tail = f->len - (size_t)(p.payload - f->data) - cut;
	memmove(tcp + doff, tcp + doff + cut, tail);
	f->len -= cut;
	f->wire_len -= cut;
	if (p.ipver == 4) {
		uint16_t sum = colo_get_be16(l3 + 10);

		colo_csum_set16(l3, 2, (uint16_t)(p.l3_len - cut), &sum);
		colo_put_be16(l3 + 10, sum);
	} else {
		colo_put_be16(l3 + 4, (uint16_t)(colo_get_be16(l3 + 4) - cut));
	}
	colo_put_be32(tcp + 4, p.seq + cut);
	tcp_checksum(&p, tcp, p.l4_len - cut);
}

/*
 * A flow aligned on its data is replayed from a point both sides hold:
 * the first primary frame starting at or after the matched bytes, and
 * the secondary frame holding that sequence number, cut to start there
 * (the comparer starts a flow's streams where its first data frame
 * starts). What either capture holds before that, the other one lacks,
 * and would only time out.
 */
static void skip_before_match(struct colo_capture *const side[2],
			      const struct entry *e, size_t n0, size_t n1,
			      struct colo_flow_align *fa)
{
	struct colo_packet p;
	uint32_t start = 0, cut = 0;

	fa->start[0] = fa->start[1] = COLO_NO_ANCHOR;
	for (size_t i = 0; i < n0; i++)
		if (parse_tcp(&side[0]->frames[e[i].frame], &p) &&
		    p.payload_len && (int32_t)(p.seq - fa->pri_seq) >= 0) {
			fa->start[0] = e[i].frame;
			start = p.seq;
			break;
		}
	if (fa->start[0] == COLO_NO_ANCHOR)
		return;
	for (size_t i = n0; i < n0 + n1; i++)
		if (parse_tcp(&side[1]->frames[e[i].frame], &p) &&
		    start - p.seq < p.payload_len) {
			fa->start[1] = e[i].frame;
			cut = start - p.seq;
			break;
		}
	if (fa->start[1] == COLO_NO_ANCHOR)
		return;
	if (cut)
		trim_front(&side[1]->frames[fa->start[1]], cut);
	for (int s = 0; s < 2; s++) {
		const struct entry *es = s ? e + n0 : e;
		size_t ns = s ? n1 : n0;

		for (size_t i = 0; i < ns && es[i].frame < fa->start[s]; i++) {
			side[s]->frames[es[i].frame].skip = true;
			fa->skipped[s]++;
		}
	}
}

static void skip_all(struct colo_capture *const side[2], const struct entry *e,
		     size_t n0, size_t n1, struct colo_flow_align *fa)
{
	for (size_t i = 0; i < n0 + n1; i++)
		side[e[i].side]->frames[e[i].frame].skip = true;
	fa->skipped[0] = n0;
	fa->skipped[1] = n1;
}

/* Aligns one flow: e[0..n0) are its primary frames, e[n0..n0+n1) its
 * secondary ones. */
static int align_flow(struct colo_capture *const side[2],
		      const struct colo_align_config *cfg,
		      const struct entry *e, size_t n0, size_t n1,
		      struct colo_flow_align *fa)
{
	struct colo_tcp_syn syn[2];
	size_t at[2];

	memset(fa, 0, sizeof(*fa));
	fa->key = e[0].key;
	fa->frames[0] = n0;
	fa->frames[1] = n1;
	fa->anchor[0] = fa->anchor[1] = COLO_NO_ANCHOR;
	if (!n0 || !n1) {
		fa->how = COLO_ALIGN_ONE_SIDE;
		return 0;
	}
	if (first_syn(side[0], e, n0, &syn[0], &at[0]) &&
	    first_syn(side[1], e + n0, n1, &syn[1], &at[1])) {
		fa->anchor[0] = at[0];
		fa->anchor[1] = at[1];
		if (cfg->mode == COLO_ALIGN_NONE) {
			fa->how = COLO_ALIGN_AS_CAPTURED;
			return 0;
		}
		fa->how = COLO_ALIGNED_HANDSHAKE;
		colo_tcp_offset_from_syns(&syn[0], &syn[1], &fa->off);
	} else if (cfg->mode == COLO_ALIGN_AUTO) {
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
		if (rc)
			return rc;
		if (fa->how != COLO_ALIGNED_INFERRED) {
			skip_all(side, e, n0, n1, fa);
			return 0;
		}
	} else {
		fa->how = COLO_ALIGN_AS_CAPTURED;
		return 0;
	}
	if (fa->off.seq || (fa->off.ts_ok && fa->off.ts))
		shift_frames(side[1], e + n0, n1, &fa->off);
	if (fa->how == COLO_ALIGNED_INFERRED)
		skip_before_match(side, e, n0, n1, fa);
	return 0;
}

static int flow_order(const void *x, const void *y)
{
	const struct colo_flow_align *a = x, *b = y;

	if (a->first_ns != b->first_ns)
		return a->first_ns < b->first_ns ? -1 : 1;
	return memcmp(&a->key, &b->key, sizeof(a->key));
}

/* The matching pair that came first on the primary's clock. */
static void measure_skew(const struct colo_capture *const side[2],
			 struct colo_alignment *out)
{
	uint64_t best = UINT64_MAX;

	for (size_t i = 0; i < out->n; i++) {
		const struct colo_flow_align *fa = &out->flows[i];
		uint64_t t;

		if (fa->anchor[0] == COLO_NO_ANCHOR ||
		    fa->anchor[1] == COLO_NO_ANCHOR)
			continue;
		t = side[0]->frames[fa->anchor[0]].ts_ns;
		if (t >= best)
			continue;
		best = t;
		out->skew_found = true;
		out->anchor[0] = fa->anchor[0];
		out->anchor[1] = fa->anchor[1];
		out->skew_ns =
			(int64_t)(side[1]->frames[fa->anchor[1]].ts_ns - t);
	}
}

static void shift_clock(struct colo_capture *c, int64_t skew)
{
	for (size_t i = 0; i < c->n; i++) {
		uint64_t t = c->frames[i].ts_ns;

		if (skew >= 0)
			c->frames[i].ts_ns =
				t > (uint64_t)skew ? t - (uint64_t)skew : 0;
		else
			c->frames[i].ts_ns = t + (uint64_t)-skew;
	}
}

int colo_align(struct colo_capture *const side[2],
	       const struct colo_align_config *cfg, struct colo_alignment *out)
{
	struct entry *e;
	size_t n = 0, i = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->anchor[0] = out->anchor[1] = COLO_NO_ANCHOR;
	e = malloc((side[0]->n + side[1]->n + 1) * sizeof(*e));
	if (!e)
		return -1;
	for (int s = 0; s < 2; s++)
		for (size_t k = 0; k < side[s]->n; k++) {
			struct colo_packet p;

			if (!parse_tcp(&side[s]->frames[k], &p))
				continue;
			memset(&e[n].key, 0, sizeof(e[n].key));
			colo_flow_key_from_packet(&e[n].key, &p);
			e[n].side = s;
			e[n++].frame = k;
		}
	qsort(e, n, sizeof(*e), entry_cmp);
	out->flows = malloc((n ? n : 1) * sizeof(*out->flows));
	if (!out->flows) {
		free(e);
		return -1;
	}
	while (i < n && !rc) {
		size_t j = i, n0;
		struct colo_flow_align *fa = &out->flows[out->n++];

		while (j < n &&
		       !memcmp(&e[j].key, &e[i].key, sizeof(e[i].key)) &&
		       e[j].side == 0)
			j++;
		n0 = j - i;
		while (j < n && !memcmp(&e[j].key, &e[i].key, sizeof(e[i].key)))
			j++;
		rc = align_flow(side, cfg, e + i, n0, j - i - n0, fa);
		fa->first_ns = UINT64_MAX;
		if (n0)
			fa->first_ns = side[0]->frames[e[i].frame].ts_ns;
		if (j - i > n0 &&
		    side[1]->frames[e[i + n0].frame].ts_ns < fa->first_ns)
			fa->first_ns = side[1]->frames[e[i + n0].frame].ts_ns;
		i = j;
	}
	free(e);
	qsort(out->flows, out->n, sizeof(*out->flows), flow_order);
	if (cfg->skew_auto)
		measure_skew((const struct colo_capture *const *)side, out);
	else
		out->skew_ns = cfg->skew_ns;
	if (out->skew_ns)
		shift_clock(side[1], out->skew_ns);
	return rc;
}

void colo_alignment_free(struct colo_alignment *a)
{
	free(a->flows);
	memset(a, 0, sizeof(*a));
}
