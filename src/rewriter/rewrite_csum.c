/*
 * rewrite_csum.c - RFC 1624 incremental checksum updates.
 *
 * Eqn. 3 rather than RFC 1141's HC' = HC + m - m', which can get the
 * representation of zero wrong (RFC 1624 section 3). The result verifies
 * like a checksum computed from scratch.
 */
#include "rewrite_csum.h"

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

uint16_t colo_csum_bytes_at(const uint8_t *p, size_t off, size_t n)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += ((off + i) & 1) ? p[i] : (uint32_t)p[i] << 8;
	return fold(sum);
}

uint16_t colo_csum_update(uint16_t csum, uint16_t old_sum, uint16_t new_sum)
{
	uint32_t sum = (uint16_t)~csum;

	sum += (uint16_t)~old_sum;
	sum += new_sum;
	return (uint16_t)~fold(sum);
}

void colo_csum_set32(uint8_t *region, size_t off, uint32_t v, uint16_t *csum)
{
	uint8_t *p = region + off;
	uint16_t old_sum = 0;

	if (csum)
		old_sum = colo_csum_bytes_at(p, off, 4);
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	if (csum)
		*csum = colo_csum_update(*csum, old_sum,
					 colo_csum_bytes_at(p, off, 4));
}
