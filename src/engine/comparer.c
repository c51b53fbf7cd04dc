/*
 * comparer.c - flows, held frames, checkpoints; the entry points of the
 * comparison engine.
 *
 * Every primary frame that cannot leave at once is copied into a pooled
 * buffer and put on two lists: its flow's queue (released front to back as
 * the rules allow) and a global arrival-order list, whose head is the
 * oldest held frame (the only one the timeout needs to look at) and whose
 * order a checkpoint releases everything in.
 *
 * A checkpoint makes the secondary a copy of the primary, so it resets all
 * comparison state. Rather than walking every flow, the comparer bumps an
 * epoch; a flow whose epoch is old is reset the next time it is touched.
 */
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "comparer_internal.h"
#include "names.h"
#include "dlist.h"
#include "siphash.h"

#define MS (1000000ULL)
/* Free lists end a period this often (free_cache.h): what a burst left
 * cached is given back between one and two periods after it ended. */
#define TRIM_PERIOD_NS (1000 * MS)
/* Cached objects freed per tick at most: a few milliseconds of free(). */
#define TRIM_BUDGET 8192
/* Memory freed (by trims and reclaimed flows) below which the allocator
 * is never asked to hand free pages back to the kernel. */
#define RETURN_PAGES_MIN ((size_t)1 << 20)

void colo_comparer_config_default(struct colo_comparer_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->compare_timeout_ns = 3000 * MS;
	cfg->max_queue = 1024;
	cfg->idle_timeout_ns = 120000 * MS;
	cfg->closed_linger_ns = 10000 * MS;
}

static const char *const cause_names[COLO_CAUSE_COUNT] = {
	[COLO_CAUSE_PAYLOAD] = "payload",
	[COLO_CAUSE_CONTROL] = "control",
	[COLO_CAUSE_TIMEOUT] = "timeout",
	[COLO_CAUSE_QUEUE_FULL] = "queue-full",
	[COLO_CAUSE_SOURCE_PORT] = "source-port"
};

const char *colo_cause_name(enum colo_cause cause)
{
	return COLO_NAME_OF(cause_names, cause);
}

struct colo_comparer *colo_comparer_new(const struct colo_comparer_config *cfg,
					const struct colo_comparer_ops *ops,
					void *opaque)
{
	struct colo_comparer *c = calloc(1, sizeof(*c));
	uint64_t key[2];

	if (!c)
		return NULL;
	if (cfg)
		c->cfg = *cfg;
	else
		colo_comparer_config_default(&c->cfg);
	if (!c->cfg.compare_timeout_ns)
		c->cfg.compare_timeout_ns = 3000 * MS;
	if (!c->cfg.max_queue)
		c->cfg.max_queue = 1024;
	if (!c->cfg.idle_timeout_ns)
		c->cfg.idle_timeout_ns = 120000 * MS;
	if (!c->cfg.closed_linger_ns)
		c->cfg.closed_linger_ns = 10000 * MS;
	if (!c->cfg.max_flows)
		c->cfg.max_flows = COLO_COMPARER_MAX_FLOWS_DEFAULT;
	c->st.flow_limit = c->cfg.max_flows;
	if (ops)
		c->ops = *ops;
	c->opaque = opaque;
	colo_frame_pool_init(&c->pool);
	colo_ring_pool_init(&c->rings);
	key[0] = c->cfg.hash_key[0];
	key[1] = c->cfg.hash_key[1];
	if (!key[0] && !key[1])
		colo_siphash_key(key, c);
	if (colo_flow_table_init(&c->table, key) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

/* ---- flow lists (by last activity) ---- */

static void list_unlink(struct colo_flow_list *l, struct colo_flow *f)
{
	COLO_DL_UNLINK(l->head, l->tail, f, lru_prev, lru_next);
	f->lru_next = f->lru_prev = NULL;
}

static void list_append(struct colo_flow_list *l, struct colo_flow *f)
{
	COLO_DL_APPEND(l->head, l->tail, f, lru_prev, lru_next);
}

static void touch(struct colo_comparer *c, struct colo_flow *f)
{
	struct colo_flow_list *l = f->in_closed_list ? &c->closed : &c->open;

	f->last_ns = c->now;
	if (l->tail != f) {
		list_unlink(l, f);
		list_append(l, f);
	}
}

/* ---- holding and releasing ---- */

struct colo_frame *colo_cmp_hold(struct colo_comparer *c, struct colo_flow *fl,
				 const struct colo_input *in)
{
	struct colo_frame *f = colo_frame_get(&c->pool, in->raw, in->len);

	if (!f)
		return NULL;
	f->flow = fl;
	f->arrival_ns = c->now;
	f->vnet_hdr_len = (uint16_t)in->vnet_hdr_len;
	COLO_DL_APPEND(fl->p_head, fl->p_tail, f, prev, next); /* flow queue */
	fl->p_count++;
	COLO_DL_APPEND(c->g_head, c->g_tail, f, g_prev, g_next); /* arrival */
	c->st.held_frames++;
	c->st.held_bytes += f->len;
	if (c->st.held_frames > c->st.held_frames_max)
		c->st.held_frames_max = c->st.held_frames;
	return f;
}

static void unhold(struct colo_comparer *c, struct colo_frame *f)
{
	struct colo_flow *fl = f->flow;

	if (fl->is_tcp && fl->u.tcp.pcur == f)
		fl->u.tcp.pcur = NULL;

	COLO_DL_UNLINK(fl->p_head, fl->p_tail, f, prev, next);
	fl->p_count--;
	COLO_DL_UNLINK(c->g_head, c->g_tail, f, g_prev, g_next);
	c->st.held_frames--;
	c->st.held_bytes -= f->len;
}

void colo_cmp_release(struct colo_comparer *c, struct colo_frame *f)
{
	unhold(c, f);
	c->st.released_frames++;
	c->st.released_bytes += f->len;
	if (f->sent) {
		/* its front already left (tcp_split.c): send the rest */
		colo_tcp_release_part(c, f, f->payload_len);
	} else {
		if (c->ops.release)
			c->ops.release(c->opaque, f->data, f->len,
				       f->vnet_hdr_len);
	}
	colo_frame_put(&c->pool, f);
}

void colo_cmp_release_raw(struct colo_comparer *c, const struct colo_input *in)
{
	c->st.released_frames++;
	c->st.released_bytes += in->len;
	if (c->ops.release)
		c->ops.release(c->opaque, in->raw, in->len, in->vnet_hdr_len);
}

void colo_cmp_diverge(struct colo_comparer *c, struct colo_flow *fl,
		      struct colo_divergence *d)
{
	if (fl) {
		d->key = fl->key;
		if (d->cause != COLO_CAUSE_TIMEOUT)
			fl->diverged = true;
	}
	d->now_ns = c->now;
	d->requested = !c->pending;
	c->st.divergences[d->cause]++;
	if (d->requested) {
		c->pending = true;
		c->st.checkpoint_requests[d->cause]++;
	}
	if (c->ops.event)
		c->ops.event(c->opaque, d);
}

/* ---- flows ---- */

static void flow_reset(struct colo_comparer *c, struct colo_flow *fl)
{
	if (fl->is_tcp)
		colo_tcp_reset(c, fl);
	else
		colo_dgram_reset(c, fl);
	fl->diverged = false;
	fl->epoch = c->epoch;
}

static void flow_destroy(struct colo_comparer *c, struct colo_flow *fl)
{
	if (fl->is_tcp)
		colo_tcp_destroy(c, fl);
	else
		colo_dgram_reset(c, fl);
	colo_flow_forgotten(c, fl);
	list_unlink(fl->in_closed_list ? &c->closed : &c->open, fl);
	colo_flow_table_remove(&c->table, fl);
	c->st.flows_reclaimed++;
}

/* NULL with *full set when the table holds max_flows already. */
static struct colo_flow *flow_get(struct colo_comparer *c,
				  const struct colo_packet *p, bool *full)
{
	struct colo_flow_key k;
	uint64_t h;
	struct colo_flow *fl;

	colo_flow_key_from_packet(&k, p);
	h = colo_flow_table_hash(&c->table, &k);
	fl = colo_flow_table_find(&c->table, &k, h);
	if (fl) {
		if (fl->epoch != c->epoch)
			flow_reset(c, fl);
		touch(c, fl);
		return fl;
	}
	if (colo_flow_table_count(&c->table) >= c->cfg.max_flows) {
		*full = true;
		return NULL;
	}
	fl = colo_flow_table_insert(&c->table, &k, h);
	if (!fl)
		return NULL;
	fl->is_tcp = p->kind == COLO_PKT_TCP;
	fl->epoch = c->epoch;
	fl->last_ns = c->now;
	list_append(&c->open, fl);
	c->st.flows_created++;
	return fl;
}

/* A frame of a new flow and no room for it (a peer opening connections
 * without end must not grow memory without end). It cannot be compared,
 * and neither holding it (nothing would ever match it) nor dropping it
 * silently is right: the primary's frame leaves as is, the secondary's
 * is dropped, both counted, and a checkpoint is asked for so the
 * replicas are made equal again over what went out uncompared. The
 * divergence is reported once per checkpoint epoch, not per frame. */
static void table_full(struct colo_comparer *c, const struct colo_input *in)
{
	c->st.flows_refused++;
	if (in->side == COLO_PRIMARY)
		colo_cmp_release_raw(c, in);
	else
		c->st.secondary_dropped++;
	if (!c->full_reported) {
		struct colo_divergence d = { .cause = COLO_CAUSE_QUEUE_FULL,
					     .primary_byte = -1,
					     .secondary_byte = -1 };

		c->full_reported = true;
		d.table_full = true;
		colo_flow_key_from_packet(&d.key, in->pkt);
		colo_cmp_diverge(c, NULL, &d);
	}
}

void colo_comparer_input(struct colo_comparer *c, enum colo_side side,
			 const uint8_t *frame, size_t len, size_t vnet_hdr_len,
			 uint64_t now_ns)
{
	struct colo_packet p;
	struct colo_input in = { .side = side,
				 .pkt = &p,
				 .raw = frame,
				 .len = len,
				 .vnet_hdr_len = vnet_hdr_len };
	struct colo_flow *fl;
	bool full = false;

	if (side != COLO_PRIMARY && side != COLO_SECONDARY)
		return;
	if (now_ns > c->now)
		c->now = now_ns;
	c->st.frames_in[side]++;
	c->st.bytes_in[side] += len;
	if (vnet_hdr_len > len)
		vnet_hdr_len = in.vnet_hdr_len = len;
	colo_packet_parse(frame + vnet_hdr_len, len - vnet_hdr_len, &p);

	if (p.kind == COLO_PKT_NON_IP) {
		c->st.non_ip[side]++;
		if (side == COLO_PRIMARY)
			colo_cmp_release_raw(c, &in);
		return;
	}
	if (p.kind == COLO_PKT_MALFORMED) {
		c->st.malformed[side]++;
		/* Compared as raw bytes: a broken frame from the primary must
		 * not reach the client unless the secondary made it too. */
		p.payload = frame + vnet_hdr_len;
		p.payload_len = len - vnet_hdr_len;
	}
	fl = flow_get(c, &p, &full);
	if (!fl && full) {
		table_full(c, &in);
		return;
	}
	if (!fl) {
		/* Out of memory: failing open would release uncompared
		 * output, failing closed would lose it. Release the primary
		 * frame and ask for a checkpoint so the pair is resynced. */
		struct colo_divergence d = { .cause = COLO_CAUSE_QUEUE_FULL,
					     .primary_byte = -1,
					     .secondary_byte = -1 };
		colo_flow_key_from_packet(&d.key, &p);
		if (side == COLO_PRIMARY)
			colo_cmp_release_raw(c, &in);
		colo_cmp_diverge(c, NULL, &d);
		return;
	}
	if (fl->is_tcp && p.kind == COLO_PKT_TCP)
		colo_tcp_input(c, fl, &in);
	else
		colo_dgram_input(c, fl, &in);
	if (fl->closed != fl->in_closed_list) {
		/* closed (or reopened by a new SYN): change lists */
		list_unlink(fl->in_closed_list ? &c->closed : &c->open, fl);
		fl->in_closed_list = fl->closed;
		list_append(fl->in_closed_list ? &c->closed : &c->open, fl);
	}
}

/* Reclaims flows idle beyond their timeout, oldest first. Both lists are
 * ordered by last activity, so the walk stops at the first young flow. */
static void reclaim(struct colo_comparer *c, struct colo_flow_list *l,
		    uint64_t idle)
{
	int budget = 4096;

	while (l->head && budget-- > 0) {
		struct colo_flow *fl = l->head;
		if (c->now - fl->last_ns < idle)
			break;
		if (fl->p_head) {
			/* held frames wait for a checkpoint: keep the flow */
			touch(c, fl);
			continue;
		}
		flow_destroy(c, fl);
	}
}

/* Gives back what a whole period did not use: cached frames, rings and
 * flow entries (a bounded number per tick), surplus hash buckets. Freed
 * chunks in the middle of the heap stay resident under glibc until
 * malloc_trim() returns their pages. That walks the whole heap (tens of
 * milliseconds at a million flows), so it runs only once the memory freed
 * since the last call reaches an eighth of what the engine still holds:
 * its cost stays proportional to what it gives back. */
static void trim(struct colo_comparer *c, size_t reclaimed_flows)
{
	bool period = c->now - c->last_trim >= TRIM_PERIOD_NS;
	uint32_t budget = TRIM_BUDGET;

	if (period)
		c->last_trim = c->now;
	size_t freed = colo_frame_pool_trim(&c->pool, period, &budget) +
		       colo_ring_pool_trim(&c->rings, period, &budget) +
		       colo_kt_trim(&c->table.kt, period, &budget);

	c->st.trimmed_bytes += freed;
	c->freed_since_return +=
		freed + reclaimed_flows * sizeof(struct colo_flow);
#ifdef __GLIBC__
	size_t live =
		colo_flow_table_count(&c->table) * sizeof(struct colo_flow) +
		c->rings.in_use_bytes + c->st.held_bytes;
	if (c->freed_since_return >= RETURN_PAGES_MIN &&
	    c->freed_since_return >= live / 8) {
		c->freed_since_return = 0;
		malloc_trim(0);
	}
#endif
}

void colo_comparer_tick(struct colo_comparer *c, uint64_t now_ns)
{
	if (now_ns > c->now)
		c->now = now_ns;
	struct colo_frame *f = c->g_head;
	if (!c->pending && f &&
	    c->now - f->arrival_ns >= c->cfg.compare_timeout_ns) {
		struct colo_divergence d = {
			.cause = COLO_CAUSE_TIMEOUT,
			.kind = f->flow->is_tcp ? COLO_PKT_TCP : COLO_PKT_UDP,
			.seq = f->flow->is_tcp ? f->seq : 0,
			.primary_byte = -1,
			.secondary_byte = -1,
			.held_ns = c->now - f->arrival_ns,
		};
		const struct colo_tcp_state *t = &f->flow->u.tcp;
		if (f->flow->is_tcp && t->synced) {
			d.have_stream = true;
			d.matched = t->m;
			for (int i = 0; i < 2; i++) {
				d.stream_end[i] = t->end[i];
				d.waiting[i] = t->nooo[i];
			}
		}
		colo_cmp_diverge(c, f->flow, &d);
	}
	uint64_t reclaimed = c->st.flows_reclaimed;
	reclaim(c, &c->closed, c->cfg.closed_linger_ns);
	reclaim(c, &c->open, c->cfg.idle_timeout_ns);
	trim(c, c->st.flows_reclaimed - reclaimed);
}

void colo_comparer_release_all(struct colo_comparer *c)
{
	while (c->g_head) {
		c->st.released_at_checkpoint++;
		colo_cmp_release(c, c->g_head);
	}
	c->epoch++;
	c->full_reported = false;
}

void colo_comparer_checkpoint_done(struct colo_comparer *c, uint64_t now_ns)
{
	if (now_ns > c->now)
		c->now = now_ns;
	colo_comparer_release_all(c);
	c->pending = false;
	c->st.checkpoints_done++;
}

bool colo_comparer_checkpoint_pending(const struct colo_comparer *c)
{
	return c->pending;
}

const struct colo_stats *colo_comparer_stats(const struct colo_comparer *c)
{
	struct colo_comparer *mc = (struct colo_comparer *)c;

	mc->st.flows = colo_flow_table_count(&c->table);
	mc->st.ring_bytes = c->rings.in_use_bytes;
	mc->st.cached_bytes = colo_frame_pool_cached(&c->pool) +
			      colo_ring_pool_cached(&c->rings) +
			      colo_kt_cached(&c->table.kt);
	return &c->st;
}

void colo_comparer_free(struct colo_comparer *c)
{
	if (!c)
		return;
	/* Held frames are dropped here: the owner releases first if it
	 * wants them out (release_all). */
	while (c->g_head) {
		struct colo_frame *f = c->g_head;
		unhold(c, f);
		colo_frame_put(&c->pool, f);
	}
	while (c->open.head)
		flow_destroy(c, c->open.head);
	while (c->closed.head)
		flow_destroy(c, c->closed.head);
	colo_flow_table_destroy(&c->table);
	colo_frame_pool_destroy(&c->pool);
	colo_ring_pool_destroy(&c->rings);
	free(c);
}
