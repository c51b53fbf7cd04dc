/*
 * digest.h - SHA-256 of each granule of a range of a block device: what
 * the two sides of a resync by digest compare (repl_resync.c hashes the
 * primary's image, repl_secondary.c the secondary's).
 */
#ifndef COLO_BLK_DIGEST_H
#define COLO_BLK_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "blk_dev.h"

struct colo_digester;

/* digest.c APIs: */
/* NULL when out of memory. The buffers are allocated once, here. */
struct colo_digester *colo_digester_new(void);
void colo_digester_free(struct colo_digester *d);
/*
 * One COLO_LINK_DIGEST_LEN digest per granule of [off, off + len) of dev
 * into out (granules of gran bytes from off; the last one is what is
 * left of len). 0, or the device's -errno.
 */
int colo_digest_range(struct colo_digester *d, struct colo_blk_dev *dev,
		      uint64_t off, uint32_t len, uint32_t gran, uint8_t *out);
/* The first granule at or after i (of n) whose digests in a and b
 * differ, or n. */
uint32_t colo_digest_next_diff(const uint8_t *a, const uint8_t *b, uint32_t i,
			       uint32_t n);

#endif
