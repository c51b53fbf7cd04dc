/*
 * fuzz_pair_msg.c - the CPG message decoder on arbitrary bytes: it
 * accepts only what re-encodes to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pair_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct colo_pair_msg m;
	uint8_t again[COLO_PAIR_MSG_LEN];

	if (colo_pair_msg_decode(data, size, &m))
		return 0;
	colo_pair_msg_encode(&m, again);
	if (size != COLO_PAIR_MSG_LEN || memcmp(again, data, 7))
		abort();
	return 0;
}
