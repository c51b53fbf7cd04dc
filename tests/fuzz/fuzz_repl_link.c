/*
 * fuzz_repl_link.c - the replication link decoder on arbitrary bytes:
 * frames are parsed one after another the way a receiver would, and any
 * HELLO payload is decoded too. Every accepted frame must re-encode to
 * the same header bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repl_link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
		(void)colo_link_type_name(h.type);
		data += n;
		size -= (size_t)n;
	}
	return 0;
}
