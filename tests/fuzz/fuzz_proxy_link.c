/*
 * fuzz_proxy_link.c - the replication link decoder on arbitrary bytes:
 * frames, HELLOs, connection metadata and checkpoint cuts, as the other
 * host could send. The secondary's ingress cut (ingress_hold.c) follows
 * the INGRESS, CUT and CHECKPOINT_DONE frames: every frame it is given
 * is passed, held and released, or counted as dropped, exactly once.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "byteorder.h"
#include "proxy.h"

static uint64_t released;

static void count_release(void *ctx, uint8_t *f, size_t len, size_t v)
{
	(void)ctx, (void)f, (void)len, (void)v;
	released++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct colo_ingress_hold hold = { .secondary = true };
	uint64_t ingress = 0, passed = 0, seq = 0, now = 0;
	size_t off = 0;

	released = 0;

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
		if (f.type == COLO_PLINK_CUT) {
			uint8_t b[COLO_PLINK_CUT_LEN];
			uint64_t wait;

			if (colo_cut_link_decode(&f, &seq, &wait) < 0)
				abort(); /* the decoder checked the length */
			colo_cut_link_encode(b, seq,
					     (uint32_t)(wait / 1000000));
			if (memcmp(b, f.payload, 8) || wait < 1000000 ||
			    wait > 600000ull * 1000000)
				abort();
			hold.wait_ns = wait;
			colo_hold_cut(&hold, seq, now, count_release, NULL);
		}
		if (f.type == COLO_PLINK_INGRESS) {
			ingress++;
			if (!colo_hold_take(&hold, f.payload, f.len, 0))
				passed++;
		}
		/* A done for this cut, or (after an odd number of INGRESS)
		 * for the next one, whose CUT is late. */
		if (f.type == COLO_PLINK_CHECKPOINT_DONE)
			colo_hold_done(&hold, seq + (ingress & 1), now,
				       count_release, NULL);
		/* Time passes with each PING by its length (in seconds):
		 * holds and drops end at their deadlines. */
		if (f.type == COLO_PLINK_PING) {
			now += (uint64_t)f.len * 1000000000ull;
			colo_hold_expire(&hold, now, count_release, NULL);
		}
		off += (size_t)n;
	}
	colo_hold_reset(&hold, count_release, NULL);
	if (passed + released + hold.dropped + hold.stale != ingress ||
	    hold.len != 0 || hold.state != COLO_CUT_PASS)
		abort();
	colo_hold_free(&hold);
	return 0;
}
