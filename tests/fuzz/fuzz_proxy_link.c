/*
 * fuzz_proxy_link.c - the replication link decoder on arbitrary bytes:
 * frames, HELLOs and connection metadata, as the other host could send.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct colo_plink_frame f;
		struct colo_plink_hello h;
		struct colo_conn_meta m;
		uint8_t re[COLO_PLINK_META_LEN];
		int n = colo_plink_decode(data + off, size - off, &f);

		if (n <= 0)
			break;
		if (f.len > size - off - COLO_PLINK_HDR_LEN)
			abort();
		if (f.type == COLO_PLINK_HELLO &&
		    colo_plink_hello_decode(f.payload, f.len, &h) == 0) {
			uint8_t b[COLO_PLINK_HELLO_LEN];

			colo_plink_hello_encode(b, &h);
			if (memcmp(b, f.payload, sizeof(b)))
				abort();
		}
		if (f.type == COLO_PLINK_CONN_META &&
		    colo_plink_meta_decode(f.payload, f.len, &m) == 0) {
			colo_plink_meta_encode(re, &m);
			if (memcmp(re, f.payload, sizeof(re)))
				abort();
		}
		off += (size_t)n;
	}
	return 0;
}
