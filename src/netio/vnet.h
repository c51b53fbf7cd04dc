/*
 * vnet.h - the 10-byte virtio-net header that AF_PACKET (PACKET_VNET_HDR)
 * and TAP (IFF_VNET_HDR) put in front of each frame.
 *
 * The header tells what the kernel left undone: a checksum to complete
 * (NEEDS_CSUM: the field at csum_start + csum_offset holds the folded
 * pseudo-header sum, the rest of the sum from csum_start on is missing)
 * and a segmentation to perform (gso_type, gso_size). Over these two
 * interfaces it is in host byte order (legacy virtio); we keep it so.
 */
#ifndef COLO_VNET_H
#define COLO_VNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_net.h>

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5 /* USO, Linux >= 4.18 */
#endif

struct colo_vnet_hdr {
	uint8_t flags;	  /* VIRTIO_NET_HDR_F_* */
	uint8_t gso_type; /* VIRTIO_NET_HDR_GSO_*, ECN bit included */
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
};

/* vnet.c APIs: */
/* Reads the header at p (COLO_VNET_HDR_LEN bytes). */
void colo_vnet_parse(const uint8_t *p, struct colo_vnet_hdr *h);
void colo_vnet_build(const struct colo_vnet_hdr *h, uint8_t *p);
/* True when the frame must be segmented before it can go on a wire. */
bool colo_vnet_is_gso(const struct colo_vnet_hdr *h);
/* Completes the partial checksum of a NEEDS_CSUM frame (frame without the
 * vnet header) in place. Returns 0, or -1 when csum_start/csum_offset
 * point outside the frame (the frame is left untouched). */
int colo_vnet_csum_complete(uint8_t *frame, size_t len,
			    const struct colo_vnet_hdr *h);
/* A header (at p, then the frame: len bytes in all) that did not come
 * from our own kernel, e.g. over the replication link: true when it is
 * one a guest could have written and the kernel would accept: known flags
 * and GSO type, a GSO size, checksum start and field and header length
 * inside a frame of at least an Ethernet header. */
bool colo_vnet_check(const uint8_t *p, size_t len);

#endif
