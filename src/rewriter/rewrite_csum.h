/*
 * rewrite_csum.h - incremental Internet checksum updates (RFC 1624) for
 * fields rewritten in place.
 *
 * A TCP option may start at an odd offset, so every helper takes the byte
 * offset of the field inside the checksummed region: the byte's weight in
 * the 16-bit sum (high or low half) depends on that offset's parity, not
 * on the field's own alignment.
 */
#ifndef COLO_REWRITE_CSUM_H
#define COLO_REWRITE_CSUM_H

#include <stddef.h>
#include <stdint.h>

/* rewrite_csum.c APIs: */
/* One's complement sum (folded to 16 bits, not inverted) of n bytes that
 * sit at offset off of a checksummed region. */
uint16_t colo_csum_bytes_at(const uint8_t *p, size_t off, size_t n);
/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m and m' being the one's
 * complement sums of the old and new contents. */
uint16_t colo_csum_update(uint16_t csum, uint16_t old_sum, uint16_t new_sum);
/* Stores v big-endian at region + off; when csum is not NULL it is the
 * region's checksum (host order) and is updated for the change. */
void colo_csum_set32(uint8_t *region, size_t off, uint32_t v, uint16_t *csum);

static inline uint32_t colo_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t colo_rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

#endif
