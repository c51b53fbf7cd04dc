/*
 * fuzz_repl_link.c - the replication link decoder on arbitrary bytes:
 * frames are parsed one after another the way a receiver would, and any
 * HELLO payload is decoded too, and every DIGEST_REQ's range is checked
 * against an image and granularity taken from the input's first frame
 * (as the secondary checks it against the HELLO's). Every accepted frame
 * must re-encode to the same header bytes; an accepted span must fit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repl_link.h"

/* A span the checker accepted covers whole granules inside the image. */
static void check_span(const struct colo_link_hdr *h, uint32_t gran,
		       uint64_t img)
{
	uint32_t count = 0;

	if (colo_link_digest_span(h->off, h->len, gran, img, &count) != 0)
		return;
	if (count == 0 || count > COLO_LINK_MAX_DIGESTS || h->off % gran ||
	    h->off > img || h->len > img - h->off ||
	    (uint64_t)count * gran < h->len ||
	    (uint64_t)(count - 1) * gran >= h->len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the geometry the ranges are checked against */
	uint32_t gran = 1U << (9 + (size ? data[0] % 23 : 7)); /* <= 2^31 */
	uint64_t img =
		size > 8 ? ((uint64_t)data[1] << 32 | (uint64_t)data[2] << 24 |
			    (uint64_t)data[3] << 8)
			 : 1ULL << 30;

	while (size) {
		struct colo_link_hdr h;
		struct colo_link_hello hello;
		uint8_t again[COLO_LINK_HDR_LEN];
		const uint8_t *payload;
		long n = colo_link_parse(data, size, &h, &payload);

		if (n <= 0)
			break;
		if (h.type == COLO_LINK_HELLO &&
		    colo_link_decode_hello(payload, h.len, &hello) != 0)
			abort();
		colo_link_encode_hdr(again, &h);
		if (memcmp(again, data, COLO_LINK_HDR_LEN) != 0 ||
		    (size_t)n > size ||
		    colo_link_payload_len(&h) > COLO_LINK_MAX_PAYLOAD)
			abort();
		if (h.type == COLO_LINK_DIGEST_REQ)
			check_span(&h, gran, img);
		if (h.type == COLO_LINK_DIGEST &&
		    (h.len % COLO_LINK_DIGEST_LEN ||
		     h.len > COLO_LINK_MAX_DIGESTS * COLO_LINK_DIGEST_LEN))
			abort();
		(void)colo_link_type_name(h.type);
		data += n;
		size -= (size_t)n;
	}
	return 0;
}
