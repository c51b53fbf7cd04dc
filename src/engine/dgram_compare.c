/*
 * dgram_compare.c - UDP, ICMP, other IP protocols, fragments and
 * malformed frames: compared one datagram against one, in order per flow.
 *
 * A flow holds unmatched datagrams of one side only: a new datagram from
 * the other side is compared with the oldest of them. Primary datagrams
 * therefore leave in the order they came (QEMU 7.2 releases a flow's
 * queued datagrams newest first).
 */
#include <string.h>

#include "comparer_internal.h"

static const uint8_t *frame_payload(const struct colo_frame *f)
{
	return f->data + f->payload_off;
}

/* Returns true when equal; otherwise fills the first difference. */
static bool same_payload(const uint8_t *a, size_t alen, const uint8_t *b,
			 size_t blen, struct colo_divergence *d)
{
	size_t n = alen < blen ? alen : blen;

	if (alen == blen && !memcmp(a, b, n))
		return true;
	size_t i = 0;
	while (i < n && a[i] == b[i])
		i++;
	d->offset = (uint32_t)i;
	d->primary_byte = i < alen ? a[i] : -1;
	d->secondary_byte = i < blen ? b[i] : -1;
	return false;
}

static void free_secondary(struct colo_comparer *c, struct colo_flow *fl)
{
	struct colo_dgram_state *g = &fl->u.dgram;

	while (g->s_head) {
		struct colo_frame *f = g->s_head;
		g->s_head = f->next;
		c->st.secondary_buffered_bytes -= f->payload_len;
		colo_frame_put(&c->pool, f);
	}
	g->s_tail = NULL;
	g->s_count = 0;
}

static void diverge(struct colo_comparer *c, struct colo_flow *fl,
		    const struct colo_packet *p, struct colo_divergence *d)
{
	d->kind = p->kind;
	colo_cmp_diverge(c, fl, d);
	/* Nothing more is compared on this flow until the checkpoint. */
	free_secondary(c, fl);
}

static void secondary_input(struct colo_comparer *c, struct colo_flow *fl,
			    const struct colo_input *in)
{
	struct colo_dgram_state *g = &fl->u.dgram;
	const struct colo_packet *p = in->pkt;
	struct colo_divergence d = { .cause = COLO_CAUSE_PAYLOAD };

	if (fl->diverged) {
		c->st.secondary_dropped++;
		return;
	}
	if (fl->p_head) {
		struct colo_frame *f = fl->p_head;
		if (same_payload(frame_payload(f), f->payload_len, p->payload,
				 p->payload_len, &d)) {
			c->st.matched_datagrams++;
			colo_cmp_release(c, f);
		} else {
			diverge(c, fl, p, &d);
		}
		return;
	}
	struct colo_frame *f = NULL;
	if (g->s_count >= c->cfg.max_queue ||
	    !(f = colo_frame_get(&c->pool, in->raw, in->len))) {
		d.cause = COLO_CAUSE_QUEUE_FULL;
		d.primary_byte = d.secondary_byte = -1;
		c->st.secondary_dropped++;
		diverge(c, fl, p, &d);
		return;
	}
	f->payload_off = (uint32_t)(p->payload - in->raw);
	f->payload_len = (uint32_t)p->payload_len;
	f->next = NULL;
	if (g->s_tail)
		g->s_tail->next = f;
	else
		g->s_head = f;
	g->s_tail = f;
	g->s_count++;
	c->st.secondary_buffered_bytes += f->payload_len;
}

static void primary_input(struct colo_comparer *c, struct colo_flow *fl,
			  const struct colo_input *in)
{
	struct colo_dgram_state *g = &fl->u.dgram;
	const struct colo_packet *p = in->pkt;
	struct colo_divergence d = { .cause = COLO_CAUSE_PAYLOAD };

	if (!fl->diverged && g->s_head) {
		/* Secondary datagrams waiting means no primary is held. */
		struct colo_frame *s = g->s_head;
		if (same_payload(p->payload, p->payload_len, frame_payload(s),
				 s->payload_len, &d)) {
			g->s_head = s->next;
			if (!g->s_head)
				g->s_tail = NULL;
			g->s_count--;
			c->st.secondary_buffered_bytes -= s->payload_len;
			colo_frame_put(&c->pool, s);
			c->st.matched_datagrams++;
			colo_cmp_release_raw(c, in);
			return;
		}
		diverge(c, fl, p, &d);
	}
	struct colo_frame *f = colo_cmp_hold(c, fl, in);
	if (!f) {
		colo_cmp_release_raw(c, in);
		d.cause = COLO_CAUSE_QUEUE_FULL;
		d.primary_byte = d.secondary_byte = -1;
		diverge(c, fl, p, &d);
		return;
	}
	f->payload_off = (uint32_t)(p->payload - in->raw);
	f->payload_len = (uint32_t)p->payload_len;
	if (fl->p_count == c->cfg.max_queue + 1 && !fl->diverged) {
		d.cause = COLO_CAUSE_QUEUE_FULL;
		d.primary_byte = d.secondary_byte = -1;
		diverge(c, fl, p, &d);
	}
}

void colo_dgram_input(struct colo_comparer *c, struct colo_flow *fl,
		      const struct colo_input *in)
{
	struct colo_dgram_state *g = &fl->u.dgram;

	if (in->pkt->kind == COLO_PKT_UDP && !(g->seen & (1u << in->side))) {
		g->seen |= (uint8_t)(1u << in->side);
		if (!g->both_hold)
			colo_flow_opened(c, fl, in->side,
					 g->seen & (1u << !in->side));
		if (g->seen == 3)
			g->both_hold = true;
	}
	if (in->side == COLO_SECONDARY)
		secondary_input(c, fl, in);
	else
		primary_input(c, fl, in);
}

/* A new epoch (or the flow's end). What the primary had sent on stays
 * open on both replicas after the checkpoint made the secondary its copy. */
void colo_dgram_reset(struct colo_comparer *c, struct colo_flow *fl)
{
	free_secondary(c, fl);
	if (fl->u.dgram.seen & (1u << COLO_PRIMARY))
		fl->u.dgram.both_hold = true;
	fl->u.dgram.seen = 0;
}
