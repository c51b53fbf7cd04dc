/*
 * fuzz_gso.c - libFuzzer target for software GSO and checksum completion.
 *
 * The input is a virtio-net header (10 bytes) followed by a frame. The
 * segmenter must either refuse the frame or emit segments that lie in its
 * scratch (or are the input itself), each no longer than the frame's
 * headers plus gso_size; checksum completion runs on a copy of exactly
 * the frame's length so ASan catches a byte written past it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gso.h"
#include "port.h"
#include "vnet.h"

struct emit_check {
	const uint8_t *in, *scratch;
	size_t in_len, scratch_len;
	size_t max_seg;
	uint64_t total;
};

static int check_emit(void *ctx, const uint8_t *f, size_t len)
{
	struct emit_check *c = ctx;
	volatile uint8_t sink = 0;
	size_t i;

	if (!len)
		abort();
	if (!((f >= c->scratch && f + len <= c->scratch + c->scratch_len) ||
	      (f >= c->in && f + len <= c->in + c->in_len)))
		abort();
	if (len > c->max_seg)
		abort();
	for (i = 0; i < len; i += 512)
		sink ^= f[i];
	sink ^= f[len - 1];
	(void)sink;
	c->total += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t scratch[COLO_GSO_SCRATCH];
	struct colo_vnet_hdr h;
	struct emit_check c;
	uint8_t *copy;
	size_t len;
	int rc;

	if (size < COLO_VNET_HDR_LEN)
		return 0;
	(void)colo_vnet_check(data, size);
	colo_vnet_parse(data, &h);
	data += COLO_VNET_HDR_LEN;
	len = size - COLO_VNET_HDR_LEN;

	memset(&c, 0, sizeof(c));
	c.in = data;
	c.in_len = len;
	c.scratch = scratch;
	c.scratch_len = sizeof(scratch);
	c.max_seg = len; /* a segment is never longer than its source */
	rc = colo_gso_segment(data, len, &h, scratch, sizeof(scratch),
			      check_emit, &c);
	if (rc < -1)
		abort();
	/* Segments never carry more payload than the super-frame did: the
	 * headers are repeated, the bytes after them are not. */
	if (rc > 0 && colo_vnet_is_gso(&h) && c.total > (uint64_t)rc * len)
		abort();

	copy = malloc(len ? len : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, len);
	h.flags |= VIRTIO_NET_HDR_F_NEEDS_CSUM;
	if (colo_vnet_csum_complete(copy, len, &h) == 0 &&
	    (size_t)h.csum_start + h.csum_offset + 2 > len)
		abort();
	free(copy);
	return 0;
}
