/*
 * ingress_hold.c - the ingress cut of a checkpoint. When `colo vm` is
 * about to stop the primary VM, the primary proxy cuts the mirrored
 * ingress stream (a CUT on the link): frames before the cut were given to
 * the primary VM while it ran and are in the state the checkpoint copies
 * (at worst in its receive ring, which is guest RAM); frames after it are
 * held, on the primary for the primary VM and on the secondary for the
 * VM that the checkpoint makes, and released at checkpoint-done, when
 * both VMs are at the checkpoint and before they run. So the new
 * secondary VM gets exactly the frames after the cut, as the primary VM
 * does. Frames are kept as [be32 len][u8 vnet_len][bytes] in one buffer
 * that grows by doubling, so holding costs no malloc per frame.
 */
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "ingress_hold.h"

#define REC_HDR 5

int colo_hold_add(struct colo_ingress_hold *h, const uint8_t *frame, size_t len,
		  size_t vnet_len)
{
	size_t need = REC_HDR + len;

	if (vnet_len > 255 || len > UINT32_MAX ||
	    h->len + need > COLO_HOLD_MAX) {
		h->dropped++;
		return -1;
	}
	if (h->len + need > h->cap) {
		size_t cap = h->cap ? h->cap : 64 * 1024;
		uint8_t *b;

		while (cap < h->len + need)
			cap *= 2;
		b = realloc(h->buf, cap);
		if (!b) {
			h->dropped++;
			return -1;
		}
		h->buf = b;
		h->cap = cap;
	}
	colo_put_be32(h->buf + h->len, (uint32_t)len);
	h->buf[h->len + 4] = (uint8_t)vnet_len;
	memcpy(h->buf + h->len + REC_HDR, frame, len);
	h->len += need;
	h->held++;
	return 0;
}

void colo_hold_release(struct colo_ingress_hold *h,
		       void (*fn)(void *ctx, uint8_t *f, size_t len,
				  size_t vnet_len),
		       void *ctx)
{
	size_t off = 0;

	while (off + REC_HDR <= h->len) {
		uint32_t len = colo_get_be32(h->buf + off);

		fn(ctx, h->buf + off + REC_HDR, len, h->buf[off + 4]);
		off += REC_HDR + len;
	}
	h->len = 0;
	h->active = false;
}

void colo_hold_free(struct colo_ingress_hold *h)
{
	free(h->buf);
	memset(h, 0, sizeof(*h));
}
