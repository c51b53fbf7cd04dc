/*
 * checksum.h - the Internet checksum (RFC 1071) and its incremental update
 * (RFC 1624): the one implementation every part of colo uses.
 *
 * Two ways to accumulate, one summing loop underneath:
 *   colo_csum_partial/colo_csum_finish work in memory order: the result is
 *     stored with memcpy. Fast (eight words per step); used to complete
 *     checksums of whole frames.
 *   colo_csum_add/colo_csum_fold work on 16-bit numbers as read big-endian,
 *     so pseudo-header fields (protocol, length) can be added as plain
 *     integers; the result is stored with colo_put_be16.
 * The one's complement sum does not depend on byte order up to a swap of
 * the two halves (RFC 1071 2.B), which is what links the two.
 *
 * Incremental updates take the byte offset of the rewritten field inside
 * the checksummed region: a TCP option may start at an odd offset, and a
 * byte's weight (high or low half) follows that offset's parity.
 */
#ifndef COLO_CHECKSUM_H
#define COLO_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* checksum.c APIs: */
/* Adds data to a memory-order accumulator (not folded). An odd last byte
 * is padded with a zero after it. */
uint64_t colo_csum_partial(const void *data, size_t len, uint64_t sum);
/* Folds and complements a memory-order sum: the 16 bits to memcpy. */
uint16_t colo_csum_finish(uint64_t sum);

/* Adds data as big-endian 16-bit words to a numeric sum (not folded). */
uint32_t colo_csum_add(uint32_t sum, const void *data, size_t len);
/* Folds and complements a numeric sum: the value to store big-endian. */
uint16_t colo_csum_fold(uint32_t sum);

/* Folded (not complemented) numeric sum of n bytes that sit at offset off
 * of a checksummed region. */
uint16_t colo_csum_bytes_at(const uint8_t *p, size_t off, size_t n);
/* RFC 1624 eqn. 3: the checksum after bytes summing to old_sum became
 * bytes summing to new_sum. Numeric (host order) values throughout. */
uint16_t colo_csum_update(uint16_t csum, uint16_t old_sum, uint16_t new_sum);
/* Stores v big-endian at region + off; when csum is not NULL it is the
 * region's checksum (host order) and is updated for the change. */
void colo_csum_set32(uint8_t *region, size_t off, uint32_t v, uint16_t *csum);
/* Same for a 16-bit field. */
void colo_csum_set16(uint8_t *region, size_t off, uint16_t v, uint16_t *csum);

#endif
