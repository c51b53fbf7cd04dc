/*
 * ingress_hold.c - the ingress cut of a checkpoint. Right before `colo vm`
 * stops the primary VM, the primary proxy cuts the mirrored ingress
 * stream (a CUT carrying the checkpoint's number on the link, in order
 * with the mirrored frames). Frames before the cut were given to the
 * primary VM while it ran (the cut waits until its socket is drained), so
 * they are in the state the checkpoint copies; frames after it are held,
 * on the primary for the primary VM and on the secondary for the VM the
 * checkpoint makes, and released at checkpoint-done. So the new secondary
 * VM gets exactly the frames after the cut, as the primary VM does. They
 * are released once the VM runs (checkpoint-resume): QEMU keeps frames
 * for a stopped VM in a queue that it drops at the VM's next stop.
 *
 * The secondary's checkpoint-resume (from its colo vm, seq attached) may
 * come before the CUT does: the link and the frame link are two streams.
 * Then the frames still in front of the CUT were for the retired VM, and
 * are dropped when it comes (COLO_CUT_DROP). That holds too after a reset
 * link made the secondary forget its numbers, once it saw its primary cut
 * at all (a primary run without cuts never sends one).
 *
 * Every hold and drop has a deadline: a checkpoint whose resume never
 * comes (its colo vm died) must not starve the guest, and a resume whose
 * CUT never comes (lost with a link) must not either. A drop that ends
 * so lets in what it kept: nothing is lost, at worst let in twice.
 *
 * Frames are kept as [be32 len][u8 vnet_len][bytes] in one buffer that
 * grows by doubling: no malloc per frame once it has grown.
 */
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "ingress_hold.h"

#define REC_HDR 5

static bool hold_add(struct colo_ingress_hold *h, const uint8_t *frame,
		     size_t len, size_t vnet_len)
{
	size_t need = REC_HDR + len;

	if (vnet_len > 255 || len > UINT32_MAX ||
	    h->len + need > COLO_HOLD_MAX) {
		h->dropped++;
		return true;
	}
	if (h->len + need > h->cap) {
		size_t cap = h->cap ? h->cap : 64 * 1024;
		uint8_t *b;

		while (cap < h->len + need)
			cap *= 2;
		b = realloc(h->buf, cap);
		if (!b) {
			h->dropped++;
			return true;
		}
		h->buf = b;
		h->cap = cap;
	}
	colo_put_be32(h->buf + h->len, (uint32_t)len);
	h->buf[h->len + 4] = (uint8_t)vnet_len;
	memcpy(h->buf + h->len + REC_HDR, frame, len);
	h->len += need;
	h->held++;
	h->held_now++;
	return true;
}

bool colo_hold_take_slow(struct colo_ingress_hold *h, const uint8_t *f,
			 size_t len, size_t vnet_len)
{
	return hold_add(h, f, len, vnet_len);
}

/* What was kept came before the CUT: the retired VM's. */
static void forget(struct colo_ingress_hold *h)
{
	h->stale += h->held_now;
	h->len = 0;
	h->held_now = 0;
}

static void release(struct colo_ingress_hold *h, colo_hold_fn fn, void *ctx)
{
	size_t off = 0;

	while (off + REC_HDR <= h->len) {
		uint32_t len = colo_get_be32(h->buf + off);

		fn(ctx, h->buf + off + REC_HDR, len, h->buf[off + 4]);
		off += REC_HDR + len;
	}
	h->len = 0;
	h->held_now = 0;
	h->state = COLO_CUT_PASS;
}

void colo_hold_cut(struct colo_ingress_hold *h, uint64_t seq, uint64_t now,
		   colo_hold_fn fn, void *ctx)
{
	h->cuts++;
	h->cuts_seen = true;
	h->cut_seq = seq;
	h->reset_cut_seq = 0;
	if (h->secondary && seq && seq == h->done_seq) {
		/* Its checkpoint was resumed already: what was kept in
		 * front of the CUT (drop) was the retired VM's, and the VM
		 * now running is the one this CUT was for, so nothing waits
		 * (also when the drop ran out before this late CUT). */
		if (h->state == COLO_CUT_DROP)
			forget(h);
		h->state = COLO_CUT_PASS;
		return;
	}
	release(h, fn, ctx);
	h->state = COLO_CUT_HOLD;
	h->deadline = h->wait_ns ? now + h->wait_ns : 0;
}

/* A done names its checkpoint: one for an earlier checkpoint than the
 * cut being held (it came late, after the next CUT) must not release the
 * next checkpoint's frames to the VM that checkpoint retires. */
void colo_hold_done(struct colo_ingress_hold *h, uint64_t seq, uint64_t now,
		    colo_hold_fn fn, void *ctx)
{
	if (seq && h->cut_seq && seq < h->cut_seq)
		return;
	h->done_seq = seq;
	if (h->state == COLO_CUT_HOLD &&
	    !(h->secondary && seq && seq > h->cut_seq)) {
		release(h, fn, ctx);
		return;
	}
	if (h->secondary && seq && seq != h->cut_seq &&
	    seq != h->reset_cut_seq && h->cuts_seen) {
		/* Its CUT is still to come: what is held or comes until
		 * then was for the VM this checkpoint retired. */
		forget(h);
		h->state = COLO_CUT_DROP;
		h->deadline = now + COLO_HOLD_LATE_CUT_NS;
	}
}

bool colo_hold_expire(struct colo_ingress_hold *h, uint64_t now,
		      colo_hold_fn fn, void *ctx)
{
	if (h->state == COLO_CUT_PASS || !h->deadline || now < h->deadline)
		return false;
	h->expired++;
	/* No CUT in time: perhaps the primary stopped cutting (colo vm
	 * --no-ingress-cut); its next CUT teaches it again. */
	if (h->state == COLO_CUT_DROP)
		h->cuts_seen = false;
	release(h, fn, ctx);
	return true;
}

void colo_hold_reset(struct colo_ingress_hold *h, colo_hold_fn fn, void *ctx)
{
	release(h, fn, ctx);
	if (h->cut_seq)
		h->reset_cut_seq = h->cut_seq;
	h->cut_seq = h->done_seq = 0;
}

void colo_hold_free(struct colo_ingress_hold *h)
{
	free(h->buf);
	memset(h, 0, sizeof(*h));
}
