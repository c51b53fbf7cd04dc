/*
 * fuzz_frame_link.c - the frame link decoder on arbitrary bytes: frames
 * are cut and every message parsed; a PAGES frame that parses has every
 * page inside the (small) RAM it is checked against.
 */
#include <stdint.h>
#include <stdlib.h>

#include "byteorder.h"
#include "frame_link.h"

#define RAM_SIZE (64u * COLO_FLINK_PAGE)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct colo_flink_frame f;
	size_t used;

	while (colo_flink_decode(data, size, &f, &used) == 1) {
		struct colo_flink_hello h;
		struct colo_flink_msg m;
		const uint8_t *recs;
		uint64_t seq;
		uint32_t n;

		if (used > size || used != COLO_FLINK_HDR_LEN + f.len)
			abort();
		colo_flink_parse_hello(&f, &h);
		colo_flink_parse_msg(&f, &m);
		if (colo_flink_parse_pages(&f, RAM_SIZE, &seq, &n, &recs) == 0)
			for (uint32_t i = 0; i < n; i++) {
				uint64_t off = colo_get_be64(
					recs + (size_t)i * COLO_FLINK_PAGE_REC);
				if (off + COLO_FLINK_PAGE > RAM_SIZE)
					abort();
			}
		data += used;
		size -= used;
	}
	return 0;
}
