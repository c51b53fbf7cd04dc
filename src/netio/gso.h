/*
 * gso.h - software segmentation of GSO super-frames for a port that
 * cannot take a virtio-net header (QEMU's socket netdev).
 *
 * A super-frame is cut into wire frames the way the kernel's GSO would:
 * TCP over IPv4/IPv6 (any number of VLAN tags) into gso_size payloads,
 * with IP length/ID/checksum, TCP sequence numbers, flags and checksums
 * fixed per segment; UDP_L4 (USO) into separate datagrams. Every segment
 * is built in a caller-provided scratch buffer and handed to a callback,
 * so nothing is allocated. All offsets come from the frame and are
 * checked: no input makes the segmenter read or write out of bounds.
 */
#ifndef COLO_GSO_H
#define COLO_GSO_H

#include <stddef.h>
#include <stdint.h>

#include "vnet.h"

/* Called once per wire frame; a non-zero return stops segmentation and
 * is returned by colo_gso_segment. */
typedef int (*colo_gso_emit_fn)(void *ctx, const uint8_t *frame, size_t len);

/* Scratch of this size fits any segment of any accepted super-frame. */
#define COLO_GSO_SCRATCH (65536 + 256)

/* gso.c APIs: */
/* Segments frame (len bytes, no vnet header in front) as h says. A
 * non-GSO frame (of 14 bytes or more) is emitted once, its checksum
 * completed if NEEDS_CSUM.
 * Returns the number of frames emitted, -1 when the frame is malformed or
 * of an unsupported GSO type (nothing emitted then), or the callback's
 * non-zero value. */
int colo_gso_segment(const uint8_t *frame, size_t len,
		     const struct colo_vnet_hdr *h, uint8_t *scratch,
		     size_t scratch_len, colo_gso_emit_fn emit, void *ctx);

#endif
