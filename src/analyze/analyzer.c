/*
 * analyzer.c - the replay loop of `colo analyze`.
 *
 * The clock only moves with the captures: before a frame is fed, every
 * tick and every simulated checkpoint completion due up to its timestamp
 * runs first, in time order. A capture that goes back in time does not
 * move the clock back (the comparer's clock is monotonic); long idle gaps
 * are crossed with one tick when nothing is held, so a capture spanning
 * days does not cost millions of ticks.
 */
#include <stdlib.h>
#include <string.h>

#include "analyzer.h"

#define MS UINT64_C(1000000)

struct replay {
	struct colo_comparer *cmp;
	const struct colo_capture *const *side;
	const struct colo_analyze_config *cfg;
	struct colo_analysis *out;
	size_t pos[2];	 /* frames fed per side */
	size_t since[2]; /* pos[] when the last checkpoint completed */
	int arriving;	 /* side of the frame being fed, -1 otherwise */
	uint64_t now, next_tick;
	bool pending;
	uint64_t due;
	size_t request; /* finding that opened the pending checkpoint */
	bool oom;
};

void colo_analyze_config_default(struct colo_analyze_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	colo_comparer_config_default(&cfg->cmp);
	/* A fixed key: results never depend on it, but runs stay
	 * reproducible down to the order flows are visited in. */
	cfg->cmp.hash_key[0] = 0x636f6c6f616e616cull;
	cfg->cmp.hash_key[1] = 0x797a652073697068ull;
	cfg->tick_ns = 100 * MS;
}

static void on_release(void *opaque, const uint8_t *frame, size_t len,
		       size_t vnet_hdr_len)
{
	(void)opaque;
	(void)frame;
	(void)len;
	(void)vnet_hdr_len;
	/* the comparer's own stats count releases */
}

static void on_event(void *opaque, const struct colo_divergence *d)
{
	struct replay *r = opaque;
	struct colo_analysis *a = r->out;
	struct colo_finding *f;

	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 16;
		struct colo_finding *nf;

		nf = realloc(a->findings, ncap * sizeof(*nf));
		if (!nf) {
			r->oom = true;
			return;
		}
		a->findings = nf;
		a->cap = ncap;
	}
	f = &a->findings[a->n];
	memset(f, 0, sizeof(*f));
	f->d = *d;
	if (d->requested && !r->pending) {
		r->pending = true;
		r->due = r->now + r->cfg->checkpoint_delay_ns;
		r->request = a->n;
		a->checkpoints++;
	}
	f->checkpoint = a->checkpoints;
	colo_locate(f, r->side, r->pos, r->since, r->arriving);
	a->n++;
}

static void checkpoint_done(struct replay *r, uint64_t at)
{
	colo_comparer_checkpoint_done(r->cmp, at);
	r->pending = false;
	r->out->findings[r->request].done_ns = at;
	r->since[0] = r->pos[0];
	r->since[1] = r->pos[1];
}

/* Runs ticks and checkpoint completions due up to t, then sets the clock
 * to t. */
static void advance_to(struct replay *r, uint64_t t)
{
	uint64_t tick = r->cfg->tick_ns;

	for (;;) {
		if (r->pending && r->due <= t && r->due <= r->next_tick) {
			r->now = r->due > r->now ? r->due : r->now;
			checkpoint_done(r, r->now);
			continue;
		}
		if (r->next_tick > t)
			break;
		if (!r->pending && !colo_comparer_stats(r->cmp)->held_frames &&
		    t - r->next_tick >= tick)
			r->next_tick = t - (t - r->next_tick) % tick;
		r->now = r->next_tick > r->now ? r->next_tick : r->now;
		colo_comparer_tick(r->cmp, r->now);
		r->next_tick += tick;
	}
	if (t > r->now)
		r->now = t;
}

static void feed(struct replay *r, int s)
{
	const struct colo_frame *f = &r->side[s]->frames[r->pos[s]];

	if (f->skip) {
		r->pos[s]++;
		return;
	}
	advance_to(r, f->ts_ns);
	r->arriving = s;
	r->pos[s]++;
	colo_comparer_input(r->cmp, (enum colo_side)s, f->data, f->len, 0,
			    r->now);
	r->arriving = -1;
	/* a zero delay completes the checkpoint right after this frame */
	advance_to(r, r->now);
}

int colo_analyze_run(const struct colo_capture *const side[2],
		     const struct colo_analyze_config *cfg,
		     struct colo_analysis *out)
{
	static const struct colo_comparer_ops ops = {
		.release = on_release,
		.event = on_event,
	};
	struct replay r;
	uint64_t end;

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	r.side = side;
	r.cfg = cfg;
	r.out = out;
	r.arriving = -1;
	r.cmp = colo_comparer_new(&cfg->cmp, &ops, &r);
	if (!r.cmp)
		return -1;

	if (side[0]->n && (!side[1]->n || side[0]->frames[0].ts_ns <=
						  side[1]->frames[0].ts_ns))
		r.now = side[0]->n ? side[0]->frames[0].ts_ns : 0;
	else if (side[1]->n)
		r.now = side[1]->frames[0].ts_ns;
	out->start_ns = r.now;
	r.next_tick = r.now + cfg->tick_ns;

	while (!r.oom && (r.pos[0] < side[0]->n || r.pos[1] < side[1]->n)) {
		int s;

		if (r.pos[1] == side[1]->n)
			s = 0;
		else if (r.pos[0] == side[0]->n)
			s = 1;
		else
			s = side[0]->frames[r.pos[0]].ts_ns <=
					    side[1]->frames[r.pos[1]].ts_ns
				    ? 0
				    : 1;
		feed(&r, s);
	}

	/* Let whatever is still held time out, and the checkpoint that
	 * causes complete. */
	end = r.now + cfg->cmp.compare_timeout_ns + 2 * cfg->tick_ns;
	advance_to(&r, end);
	if (r.pending)
		advance_to(&r, r.due);
	out->end_ns = r.now;
	out->stats = *colo_comparer_stats(r.cmp);
	colo_comparer_free(r.cmp);
	return r.oom ? -1 : 0;
}

void colo_analysis_free(struct colo_analysis *a)
{
	free(a->findings);
	memset(a, 0, sizeof(*a));
}

static int side_frame_cmp(const void *x, const void *y)
{
	const struct colo_side_frame *a = x, *b = y;

	if (a->ts_ns != b->ts_ns)
		return a->ts_ns < b->ts_ns ? -1 : 1;
	if (a->side != b->side)
		return a->side - b->side;
	return a->index < b->index ? -1 : a->index > b->index;
}

ssize_t colo_analysis_frames(const struct colo_analysis *a,
			     const struct colo_capture *const side[2],
			     struct colo_side_frame **list)
{
	struct colo_side_frame *l;
	size_t n = 0, out = 0;

	l = malloc((2 * a->n + 1) * sizeof(*l));
	if (!l) {
		*list = NULL;
		return -1;
	}
	for (size_t i = 0; i < a->n; i++)
		for (int s = 0; s < 2; s++)
			if (a->findings[i].frame[s] != COLO_NO_FRAME) {
				size_t k = a->findings[i].frame[s];

				l[n].ts_ns = side[s]->frames[k].ts_ns;
				l[n].side = s;
				l[n++].index = k;
			}
	qsort(l, n, sizeof(*l), side_frame_cmp);
	for (size_t i = 0; i < n; i++)
		if (!out || l[out - 1].side != l[i].side ||
		    l[out - 1].index != l[i].index)
			l[out++] = l[i];
	*list = l;
	return (ssize_t)out;
}
