/*
 * align.c - per-flow sequence alignment and clock alignment of the two
 * captures; see align.h.
 *
 * Frames are grouped by flow with one sort (key, side, frame index), so
 * the cost is O(n log n) whatever the number of flows. Per flow: the
 * handshake, else an offset inferred from the data (align_infer.c); the
 * frames are then edited (align_edit.c) or marked not to be replayed.
 */
#include <stdlib.h>
#include <string.h>

#include "align_internal.h"
#include "tcp_rewriter.h"
#include "names.h"

void colo_align_config_default(struct colo_align_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = COLO_ALIGN_AUTO;
	cfg->skew_auto = true;
}

/* In the order of enum colo_align_how. */
static const char *const how_names[] = { "handshake",  "inferred", "ambiguous",
					 "no match",   "no data",  "one side",
					 "as captured" };
_Static_assert(sizeof(how_names) / sizeof(how_names[0]) ==
		       COLO_ALIGN_AS_CAPTURED + 1,
	       "one name per alignment");

const char *colo_align_how_name(enum colo_align_how how)
{
	return COLO_NAME_OF(how_names, how);
}

static int entry_cmp(const void *x, const void *y)
{
	const struct colo_align_entry *a = x, *b = y;
	int c = memcmp(&a->key, &b->key, sizeof(a->key));

	if (c)
		return c;
	if (a->side != b->side)
		return a->side - b->side;
	return a->frame < b->frame ? -1 : a->frame > b->frame;
}

/* The first SYN or SYN/ACK among the flow's frames e[0..n). */
static bool first_syn(const struct colo_capture *c,
		      const struct colo_align_entry *e, size_t n,
		      struct colo_tcp_syn *syn, size_t *frame)
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

/*
 * A flow aligned on its data is replayed from a point both sides hold:
 * the first primary frame starting at or after the matched bytes, and
 * the secondary frame holding that sequence number, cut to start there
 * (the comparer starts a flow's streams where its first data frame
 * starts). What either capture holds before that, the other one lacks,
 * and would only time out.
 */
static void skip_before_match(struct colo_capture *const side[2],
			      const struct colo_align_entry *e, size_t n0,
			      size_t n1, struct colo_flow_align *fa)
{
	struct colo_packet p;
	uint32_t start = 0, cut = 0;

	fa->start[0] = fa->start[1] = COLO_NO_ANCHOR;
	for (size_t i = 0; i < n0; i++)
		if (colo_align_parse_tcp(&side[0]->frames[e[i].frame], &p) &&
		    p.payload_len && (int32_t)(p.seq - fa->pri_seq) >= 0) {
			fa->start[0] = e[i].frame;
			start = p.seq;
			break;
		}
	if (fa->start[0] == COLO_NO_ANCHOR)
		return;
	for (size_t i = n0; i < n0 + n1; i++)
		if (colo_align_parse_tcp(&side[1]->frames[e[i].frame], &p) &&
		    start - p.seq < p.payload_len) {
			fa->start[1] = e[i].frame;
			cut = start - p.seq;
			break;
		}
	if (fa->start[1] == COLO_NO_ANCHOR)
		return;
	if (cut)
		colo_align_trim_front(&side[1]->frames[fa->start[1]], cut);
	for (int s = 0; s < 2; s++) {
		const struct colo_align_entry *es = s ? e + n0 : e;
		size_t ns = s ? n1 : n0;

		for (size_t i = 0; i < ns && es[i].frame < fa->start[s]; i++) {
			side[s]->frames[es[i].frame].skip = true;
			fa->skipped[s]++;
		}
	}
}

static void skip_all(struct colo_capture *const side[2],
		     const struct colo_align_entry *e, size_t n0, size_t n1,
		     struct colo_flow_align *fa)
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
		      const struct colo_align_entry *e, size_t n0, size_t n1,
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
		if (colo_align_infer((const struct colo_capture *const *)side,
				     e, n0, n1, fa))
			return -1;
		if (fa->how != COLO_ALIGNED_INFERRED) {
			skip_all(side, e, n0, n1, fa);
			return 0;
		}
	} else {
		fa->how = COLO_ALIGN_AS_CAPTURED;
		return 0;
	}
	if (fa->off.seq || (fa->off.ts_ok && fa->off.ts))
		colo_align_shift(side[1], e + n0, n1, &fa->off);
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
	struct colo_align_entry *e;
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

			if (!colo_align_parse_tcp(&side[s]->frames[k], &p))
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
