/*
 * checksum.c - Internet checksum and RFC 1624 updates, see checksum.h.
 *
 * Incremental updates use RFC 1624 eqn. 3 rather than RFC 1141's
 * HC' = HC + m - m', which can get the representation of zero wrong; the
 * result verifies like a checksum computed from scratch.
 */
#include <string.h>

#include "checksum.h"

uint64_t colo_csum_partial(const void *data, size_t len, uint64_t sum)
{
	const uint8_t *p = data;
	uint32_t w;
	uint16_t h = 0;

	while (len >= 32) {
		uint32_t a[8];

		memcpy(a, p, sizeof(a));
		sum += (uint64_t)a[0] + a[1] + a[2] + a[3] + a[4] + a[5] +
		       a[6] + a[7];
		p += 32;
		len -= 32;
	}
	while (len >= 4) {
		memcpy(&w, p, 4);
		sum += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&h, p, 2);
		sum += h;
		p += 2;
		len -= 2;
	}
	if (len) {
		h = 0;
		memcpy(&h, p, 1); /* the odd byte pads with a zero after it */
		sum += h;
	}
	return sum;
}

/* Folds to 16 bits without complementing. */
static uint16_t fold64(uint64_t sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

uint16_t colo_csum_finish(uint64_t sum)
{
	return (uint16_t)~fold64(sum);
}

/* The memory-order 16 bits of a folded sum, read as a big-endian number. */
static uint16_t to_numeric(uint16_t mem)
{
	uint8_t b[2];

	memcpy(b, &mem, 2);
	return (uint16_t)(b[0] << 8 | b[1]);
}

uint32_t colo_csum_add(uint32_t sum, const void *data, size_t len)
{
	uint64_t s = sum + (uint64_t)to_numeric(
				   fold64(colo_csum_partial(data, len, 0)));

	/* Keep the running sum small so callers can add integers to it. */
	return fold64(s);
}

uint16_t colo_csum_fold(uint32_t sum)
{
	return (uint16_t)~fold64(sum);
}

uint16_t colo_csum_bytes_at(const uint8_t *p, size_t off, size_t n)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += ((off + i) & 1) ? p[i] : (uint32_t)p[i] << 8;
	return fold64(sum);
}

uint16_t colo_csum_update(uint16_t csum, uint16_t old_sum, uint16_t new_sum)
{
	uint32_t sum = (uint16_t)~csum;

	sum += (uint16_t)~old_sum;
	sum += new_sum;
	return (uint16_t)~fold64(sum);
}

static void set_bytes(uint8_t *region, size_t off, const uint8_t *v, size_t n,
		      uint16_t *csum)
{
	uint8_t *p = region + off;
	uint16_t old_sum = 0;

	if (csum)
		old_sum = colo_csum_bytes_at(p, off, n);
	memcpy(p, v, n);
	if (csum)
		*csum = colo_csum_update(*csum, old_sum,
					 colo_csum_bytes_at(p, off, n));
}

void colo_csum_set32(uint8_t *region, size_t off, uint32_t v, uint16_t *csum)
{
	const uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
			       (uint8_t)(v >> 8), (uint8_t)v };

	set_bytes(region, off, b, 4, csum);
}

void colo_csum_set16(uint8_t *region, size_t off, uint16_t v, uint16_t *csum)
{
	const uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	set_bytes(region, off, b, 2, csum);
}
