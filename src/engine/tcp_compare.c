/*
 * tcp_compare.c - TCP compared as two byte streams by sequence number.
 *
 * Segment boundaries are ignored: a primary sending 3+7 bytes and a
 * secondary sending 10 compare equal, and so do GSO super-frames against
 * MSS-sized frames. Only payload bytes are compared; headers that the two
 * guests are free to choose differently (IP ID, TTL, options, window,
 * checksums, PSH) never matter.
 *
 * Whichever side is ahead keeps its unmatched bytes: the primary's stay in
 * its held frames (it holds every frame with an unmatched byte anyway), the
 * secondary's are copied into the flow's ring. A segment from the side
 * behind is compared straight against those. So only secondary bytes are
 * ever copied, every byte is compared once whatever the segmentation, and
 * the work per segment is proportional to its size.
 *
 * A primary frame leaves when all its payload bytes have matched AND the
 * secondary has acknowledged at least as much as the frame acknowledges:
 * otherwise the client could see an acknowledgement that the secondary
 * never made, and after a failover the secondary would not have the data
 * the client believes delivered. A FIN also needs the secondary's FIN at
 * the same sequence number. A SYN without ACK (the guest opens a
 * connection) needs the secondary's SYN: released alone, the server's
 * SYN/ACK can reach a secondary guest that has not sent its own SYN yet,
 * which answers with a reset and then never gets the connection.
 */
#include <string.h>

#include "comparer_internal.h"

enum add_result { ADD_OK, ADD_RETRANSMIT, ADD_GAP, ADD_DIVERGED };

/* Per-flow bound on unmatched bytes held in the ring. */
static size_t ring_max(const struct colo_comparer *c)
{
	return (size_t)c->cfg.max_queue * 65536;
}

static uint64_t secondary_bytes(const struct colo_tcp_state *t)
{
	return t->lead == COLO_SECONDARY ? colo_ring_len(t->ring) : 0;
}

static void diverge_at(struct colo_comparer *c, struct colo_flow *fl,
		       enum colo_cause cause, uint32_t seq, int pbyte,
		       int sbyte)
{
	struct colo_divergence d = {
		.cause = cause,
		.kind = COLO_PKT_TCP,
		.seq = seq,
		.primary_byte = pbyte,
		.secondary_byte = sbyte,
	};
	colo_cmp_diverge(c, fl, &d);
}

/* The held primary frame carrying stream byte x, searching from `from`
 * (frames are in sequence order, so the walk stops at the first frame
 * starting beyond x); NULL when none does. */
static struct colo_frame *held_cover(struct colo_frame *from, uint32_t x)
{
	for (struct colo_frame *f = from; f; f = f->next) {
		if (seq_gt(f->seq, x))
			break;
		if (!f->ooo && seq_lt(x, f->seq_end) &&
		    seq_le(f->seq + f->sent, x))
			return f;
	}
	return NULL;
}

/* Compares data[0..k) with the primary's stream bytes from e, which sit
 * in the held frames. Returns how many leading bytes are equal; on a
 * difference *theirs is the primary's byte (-1 if no frame has it, which
 * the hold rules make impossible, so it is reported as a divergence
 * rather than trusted). */
static size_t compare_held(struct colo_flow *fl, uint32_t e,
			   const uint8_t *data, size_t k, int *theirs)
{
	struct colo_tcp_state *t = &fl->u.tcp;
	struct colo_frame *f = t->pcur;
	size_t done = 0;

	while (done < k) {
		uint32_t x = e + (uint32_t)done;
		struct colo_frame *g = f ? held_cover(f, x) : NULL;
		if (!g)
			g = held_cover(fl->p_head, x);
		if (!g) {
			*theirs = -1;
			t->pcur = NULL;
			return done;
		}
		f = g;
		size_t off = x - f->seq;
		size_t len = f->payload_len - off;
		const uint8_t *pp = f->data + f->payload_off + off;
		if (len > k - done)
			len = k - done;
		if (memcmp(pp, data + done, len)) {
			size_t i = 0;
			while (pp[i] == data[done + i])
				i++;
			*theirs = pp[i];
			t->pcur = f;
			return done + i;
		}
		done += len;
	}
	t->pcur = f;
	return done;
}

/* Adds side's bytes [start, start+n) to its stream, comparing whatever
 * the other side already has there. */
static enum add_result stream_add(struct colo_comparer *c, struct colo_flow *fl,
				  int side, uint32_t start, const uint8_t *data,
				  size_t n)
{
	struct colo_tcp_state *t = &fl->u.tcp;
	int other = !side;

	if (!n)
		return ADD_OK;
	if (!t->synced) {
		t->synced = true;
		t->m = t->end[0] = t->end[1] = t->p_high = start;
		t->lead = (uint8_t)side;
	}
	uint32_t e = t->end[side];
	if (seq_le(start + (uint32_t)n, e))
		return ADD_RETRANSMIT;
	if (seq_gt(start, e))
		return ADD_GAP;
	size_t skip = e - start;
	data += skip;
	n -= skip;

	if (seq_lt(e, t->end[other])) {
		/* The other side is ahead: its bytes from m (== e) are in
		 * the ring (secondary) or in the held frames (primary). */
		size_t avail = t->end[other] - e;
		size_t k = n < avail ? n : avail;
		int theirs = -1;
		size_t d = other == COLO_SECONDARY
				   ? colo_ring_compare(t->ring, data, k)
				   : compare_held(fl, e, data, k, &theirs);
		if (d < k) {
			int mine = data[d];
			if (other == COLO_SECONDARY)
				theirs = colo_ring_byte(t->ring, d);
			diverge_at(c, fl, COLO_CAUSE_PAYLOAD, e + (uint32_t)d,
				   side == COLO_PRIMARY ? mine : theirs,
				   side == COLO_PRIMARY ? theirs : mine);
			return ADD_DIVERGED;
		}
		if (other == COLO_SECONDARY)
			colo_ring_consume(&c->rings, &t->ring, k);
		t->m += (uint32_t)k;
		t->end[side] += (uint32_t)k;
		c->st.matched_bytes += k;
		data += k;
		n -= k;
	}
	if (n) {
		/* This side is now ahead (the ring holds nothing of the
		 * other's): keep the excess until the other catches up. The
		 * primary's bytes stay where they are, in its held frames
		 * (every unmatched primary byte is in one), so only the
		 * secondary's are copied. */
		if (side == COLO_SECONDARY &&
		    colo_ring_push(&c->rings, &t->ring, data, n, ring_max(c)) <
			    0) {
			diverge_at(c, fl, COLO_CAUSE_QUEUE_FULL, t->end[side],
				   -1, -1);
			return ADD_DIVERGED;
		}
		t->lead = (uint8_t)side;
		t->end[side] += (uint32_t)n;
	}
	/* Data past the other side's FIN can never match. */
	if (t->fin_seen[other] && seq_gt(t->end[side], t->fin_seq[other])) {
		diverge_at(c, fl, COLO_CAUSE_CONTROL, t->fin_seq[other], -1,
			   -1);
		return ADD_DIVERGED;
	}
	return ADD_OK;
}

/* Feeds segments that were waiting beyond a hole once the hole is filled.
 * Holes are rare (guests send in order), so a linear walk is fine. */
static void absorb_ooo(struct colo_comparer *c, struct colo_flow *fl, int side)
{
	struct colo_tcp_state *t = &fl->u.tcp;
	bool progress = true;

	while (progress && t->nooo[side] && !fl->diverged) {
		progress = false;
		if (side == COLO_PRIMARY) {
			for (struct colo_frame *f = fl->p_head; f;
			     f = f->next) {
				if (!f->ooo || seq_gt(f->seq, t->end[side]))
					continue;
				f->ooo = 0;
				t->nooo[side]--;
				progress = true;
				if (stream_add(c, fl, side, f->seq,
					       f->data + f->payload_off,
					       f->payload_len) == ADD_DIVERGED)
					return;
			}
			continue;
		}
		struct colo_frame **pp = &t->s_ooo;
		while (*pp) {
			struct colo_frame *f = *pp;
			if (seq_gt(f->seq, t->end[side])) {
				pp = &f->next;
				continue;
			}
			*pp = f->next;
			t->nooo[side]--;
			progress = true;
			enum add_result r = stream_add(c, fl, side, f->seq,
						       f->data + f->payload_off,
						       f->payload_len);
			colo_frame_put(&c->pool, f);
			if (r == ADD_DIVERGED)
				return;
		}
	}
}

static void note_fin(struct colo_comparer *c, struct colo_flow *fl, int side,
		     uint32_t seq)
{
	struct colo_tcp_state *t = &fl->u.tcp;
	int other = !side;

	if (t->fin_seen[side])
		return; /* a retransmitted FIN */
	t->fin_seen[side] = true;
	t->fin_seq[side] = seq;
	if (fl->diverged || !t->synced)
		return;
	if ((t->fin_seen[other] && t->fin_seq[other] != seq) ||
	    seq_lt(seq, t->end[other]))
		diverge_at(c, fl, COLO_CAUSE_CONTROL, seq, -1, -1);
}

/* The ACK rule: the frame acknowledges nothing the secondary has not. */
static bool ack_covered(const struct colo_tcp_state *t, uint32_t ack,
			uint8_t flags)
{
	return !(flags & COLO_TCP_ACK) ||
	       (t->have_ack[COLO_SECONDARY] &&
		!seq_gt(ack, t->max_ack[COLO_SECONDARY]));
}

static bool releasable(const struct colo_tcp_state *t, uint32_t seq_end,
		       uint32_t payload_len, uint32_t ack, uint8_t flags)
{
	if ((flags & (COLO_TCP_SYN | COLO_TCP_ACK)) == COLO_TCP_SYN &&
	    !t->syn_seen[COLO_SECONDARY])
		return false;
	if (payload_len && (!t->synced || seq_gt(seq_end, t->m)))
		return false;
	if (!ack_covered(t, ack, flags))
		return false;
	if ((flags & COLO_TCP_FIN) && (!t->fin_seen[COLO_SECONDARY] ||
				       t->fin_seq[COLO_SECONDARY] != seq_end))
		return false;
	return true;
}

/* Releases matched frames from the head of the flow's queue. Of the first
 * frame only partly matched, the matched front leaves too (tcp_split.c)
 * when the frame is a GSO super-frame, which the kernel segments anyway,
 * or when `stuck`: the secondary retransmitted, so it may be waiting for
 * an ACK of bytes the client has not got. Other frames keep their
 * boundaries, as QEMU's comparer does. */
static void release_ready(struct colo_comparer *c, struct colo_flow *fl,
			  bool stuck)
{
	struct colo_tcp_state *t = &fl->u.tcp;

	while (fl->p_head && !fl->diverged && !fl->p_head->ooo) {
		struct colo_frame *f = fl->p_head;
		if (releasable(t, f->seq_end, f->payload_len, f->ack,
			       f->tcp_flags)) {
			colo_cmp_release(c, f);
			continue;
		}
		if ((stuck || f->gso_type) && t->synced &&
		    seq_lt(t->m, f->seq_end) &&
		    seq_gt(t->m, f->seq + f->sent) && colo_tcp_splittable(f) &&
		    ack_covered(t, f->ack, f->tcp_flags))
			colo_tcp_release_part(c, f, t->m - f->seq);
		break;
	}
}

static void secondary_input(struct colo_comparer *c, struct colo_flow *fl,
			    const struct colo_input *in, uint32_t start)
{
	struct colo_tcp_state *t = &fl->u.tcp;
	const struct colo_packet *p = in->pkt;
	bool stuck = false;

	if (fl->diverged) {
		c->st.secondary_dropped++;
		return;
	}
	/* A secondary SYN's sequence number may still be in the
	 * secondary's own space (QEMU's rewriter learns the offset only
	 * from the client's ACK). Its data may sync the stream (TCP Fast
	 * Open, the secondary first), but the primary's SYN syncs it again
	 * at its own number should they differ (primary_input). */
	if (p->payload_len) {
		enum add_result r = stream_add(c, fl, COLO_SECONDARY, start,
					       p->payload, p->payload_len);
		if (r == ADD_GAP) {
			struct colo_frame *f;
			if (t->nooo[COLO_SECONDARY] >= c->cfg.max_queue ||
			    !(f = colo_frame_get(&c->pool, in->raw, in->len))) {
				diverge_at(c, fl, COLO_CAUSE_QUEUE_FULL, start,
					   -1, -1);
				return;
			}
			f->seq = start;
			f->payload_off = (uint32_t)(p->payload - in->raw);
			f->payload_len = (uint32_t)p->payload_len;
			f->next = t->s_ooo;
			t->s_ooo = f;
			t->nooo[COLO_SECONDARY]++;
		} else if (r == ADD_OK) {
			absorb_ooo(c, fl, COLO_SECONDARY);
		} else if (r == ADD_RETRANSMIT) {
			stuck = true;
		}
	}
	if (p->tcp_flags & COLO_TCP_FIN)
		note_fin(c, fl, COLO_SECONDARY,
			 start + (uint32_t)p->payload_len);
	release_ready(c, fl, stuck);
}

/* Moves the frame just queued at the tail back to its place by sequence
 * number. A retransmission arriving behind later segments must not wait
 * for them: those are unmatched while the secondary, its window used up,
 * waits for the client to ACK the very bytes the retransmission (or its
 * matched front) carries. In-order frames stay at the tail in O(1). */
static void order_by_seq(struct colo_flow *fl, struct colo_frame *f)
{
	struct colo_frame *at = f->prev;

	if (!at || !seq_lt(f->seq, at->seq))
		return;
	while (at->prev && seq_lt(f->seq, at->prev->seq))
		at = at->prev;
	/* unlink f from the tail ... */
	fl->p_tail = f->prev;
	fl->p_tail->next = NULL;
	/* ... and put it in front of `at` */
	f->prev = at->prev;
	f->next = at;
	if (at->prev)
		at->prev->next = f;
	else
		fl->p_head = f;
	at->prev = f;
}

/* Forgets the secondary's unmatched bytes: its ring and the segments
 * beyond a hole. */
static void drop_secondary(struct colo_comparer *c, struct colo_tcp_state *t)
{
	colo_ring_release(&c->rings, &t->ring);
	while (t->s_ooo) {
		struct colo_frame *f = t->s_ooo;
		t->s_ooo = f->next;
		colo_frame_put(&c->pool, f);
	}
	t->nooo[COLO_SECONDARY] = 0;
}

static void primary_input(struct colo_comparer *c, struct colo_flow *fl,
			  const struct colo_input *in, uint32_t start)
{
	struct colo_tcp_state *t = &fl->u.tcp;
	const struct colo_packet *p = in->pkt;
	uint32_t end = start + (uint32_t)p->payload_len;
	bool gap = false;

	if ((p->tcp_flags & COLO_TCP_SYN) &&
	    (!t->synced || (!t->p_in && start != t->m))) {
		/* What the secondary put in the stream before was in another
		 * sequence space: its shifted copy comes again. */
		drop_secondary(c, t);
		t->synced = true;
		t->m = t->end[0] = t->end[1] = t->p_high = start;
		t->lead = COLO_PRIMARY;
	}
	t->p_in = true;
	if (p->payload_len && !fl->diverged) {
		enum add_result r = stream_add(c, fl, COLO_PRIMARY, start,
					       p->payload, p->payload_len);
		if (r == ADD_GAP)
			gap = true;
		else if (r == ADD_RETRANSMIT)
			c->st.retransmits++;
		else if (r == ADD_OK)
			absorb_ooo(c, fl, COLO_PRIMARY);
	}
	if (p->payload_len && t->synced && seq_gt(end, t->p_high))
		t->p_high = end;
	if (p->tcp_flags & COLO_TCP_FIN)
		note_fin(c, fl, COLO_PRIMARY, end);
	if (p->tcp_flags & COLO_TCP_RST)
		fl->closed = true;
	if (t->fin_seen[0] && t->fin_seen[1])
		fl->closed = true;

	if (!fl->p_head && !gap && !fl->diverged &&
	    releasable(t, end, (uint32_t)p->payload_len, p->ack,
		       p->tcp_flags)) {
		colo_cmp_release_raw(c, in);
		return;
	}
	struct colo_frame *f = colo_cmp_hold(c, fl, in);
	if (!f) {
		/* Out of memory: release rather than lose, and resync. */
		colo_cmp_release_raw(c, in);
		diverge_at(c, fl, COLO_CAUSE_QUEUE_FULL, start, -1, -1);
		return;
	}
	f->seq = start;
	f->seq_end = end;
	f->ack = p->ack;
	f->tcp_flags = p->tcp_flags;
	f->payload_off = (uint32_t)(p->payload - in->raw);
	f->payload_len = (uint32_t)p->payload_len;
	colo_tcp_split_note(f, in);
	if (gap) {
		f->ooo = 1;
		t->nooo[COLO_PRIMARY]++;
	}
	order_by_seq(fl, f);
	if (fl->p_count == c->cfg.max_queue + 1 && !fl->diverged)
		diverge_at(c, fl, COLO_CAUSE_QUEUE_FULL, start, -1, -1);
	release_ready(c, fl, false);
}

/* Forgets a finished connection when its 4-tuple starts a new one. */
static void reincarnate(struct colo_comparer *c, struct colo_flow *fl)
{
	bool s_syn = fl->u.tcp.s_syn_reopen;

	colo_tcp_reset(c, fl); /* gives the ring back */
	memset(&fl->u.tcp, 0, sizeof(fl->u.tcp));
	fl->u.tcp.syn_seen[COLO_SECONDARY] = s_syn;
	fl->closed = false;
}

void colo_tcp_input(struct colo_comparer *c, struct colo_flow *fl,
		    const struct colo_input *in)
{
	struct colo_tcp_state *t = &fl->u.tcp;
	const struct colo_packet *p = in->pkt;
	int side = in->side;
	uint64_t before;
	uint32_t start = p->seq + ((p->tcp_flags & COLO_TCP_SYN) ? 1 : 0);
	bool opens =
		(p->tcp_flags & (COLO_TCP_SYN | COLO_TCP_ACK)) == COLO_TCP_SYN;

	if (side == COLO_SECONDARY && opens && fl->closed)
		t->s_syn_reopen = true; /* the next incarnation's SYN */
	if (side == COLO_PRIMARY && opens && fl->closed && !fl->p_head)
		reincarnate(c, fl);
	if (opens && !t->syn_seen[side]) {
		t->syn_seen[side] = true;
		colo_flow_opened(c, fl, side, t->syn_seen[!side]);
	}
	before = secondary_bytes(t);
	if ((p->tcp_flags & COLO_TCP_ACK) &&
	    (!t->have_ack[side] || seq_gt(p->ack, t->max_ack[side]))) {
		t->max_ack[side] = p->ack;
		t->have_ack[side] = true;
	}
	if (side == COLO_SECONDARY)
		secondary_input(c, fl, in, start);
	else
		primary_input(c, fl, in, start);
	c->st.secondary_buffered_bytes += secondary_bytes(t) - before;
}

/* After a checkpoint the secondary is a copy of the primary: its stream,
 * acknowledgements and FIN state are the primary's. */
void colo_tcp_reset(struct colo_comparer *c, struct colo_flow *fl)
{
	struct colo_tcp_state *t = &fl->u.tcp;

	c->st.secondary_buffered_bytes -= secondary_bytes(t);
	drop_secondary(c, t);
	t->pcur = NULL;
	/* primary out-of-order frames were released with everything else */
	t->nooo[COLO_PRIMARY] = 0;
	if (t->synced)
		t->m = t->end[COLO_SECONDARY] = t->end[COLO_PRIMARY] =
			t->p_high;
	t->lead = COLO_PRIMARY;
	t->have_ack[COLO_SECONDARY] = t->have_ack[COLO_PRIMARY];
	t->max_ack[COLO_SECONDARY] = t->max_ack[COLO_PRIMARY];
	t->fin_seen[COLO_SECONDARY] = t->fin_seen[COLO_PRIMARY];
	t->fin_seq[COLO_SECONDARY] = t->fin_seq[COLO_PRIMARY];
	t->syn_seen[COLO_SECONDARY] = t->syn_seen[COLO_PRIMARY];
	t->s_syn_reopen = false; /* that SYN came from the retired VM */
}

void colo_tcp_destroy(struct colo_comparer *c, struct colo_flow *fl)
{
	colo_tcp_reset(c, fl);
}
