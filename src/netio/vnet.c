/*
 * vnet.c - virtio-net header helpers and the Internet checksum.
 *
 * The checksum is summed in memory order (native loads, byte order does
 * not matter to a one's complement sum) and stored back with memcpy, so
 * no byte swapping happens on the data path.
 */
#include <string.h>

#include "checksum.h"
#include "vnet.h"

void colo_vnet_parse(const uint8_t *p, struct colo_vnet_hdr *h)
{
	struct virtio_net_hdr v;

	memcpy(&v, p, sizeof(v));
	h->flags = v.flags;
	h->gso_type = v.gso_type;
	h->hdr_len = v.hdr_len;
	h->gso_size = v.gso_size;
	h->csum_start = v.csum_start;
	h->csum_offset = v.csum_offset;
}

void colo_vnet_build(const struct colo_vnet_hdr *h, uint8_t *p)
{
	struct virtio_net_hdr v = {
		.flags = h->flags,
		.gso_type = h->gso_type,
		.hdr_len = h->hdr_len,
		.gso_size = h->gso_size,
		.csum_start = h->csum_start,
		.csum_offset = h->csum_offset,
	};

	memcpy(p, &v, sizeof(v));
}

bool colo_vnet_is_gso(const struct colo_vnet_hdr *h)
{
	return (h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) !=
	       VIRTIO_NET_HDR_GSO_NONE;
}

int colo_vnet_csum_complete(uint8_t *frame, size_t len,
			    const struct colo_vnet_hdr *h)
{
	size_t start = h->csum_start, field = start + h->csum_offset;
	uint16_t c;

	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return 0;
	if (start >= len || field + 2 > len)
		return -1;
	/* The field holds the pseudo-header sum: it is summed with the rest. */
	c = colo_csum_finish(colo_csum_partial(frame + start, len - start, 0));
	if (!c)
		c = 0xffff; /* as the kernel: 0 means "none" to UDP */
	memcpy(frame + field, &c, 2);
	return 0;
}

bool colo_vnet_check(const uint8_t *p, size_t len)
{
	struct colo_vnet_hdr h;
	size_t flen;

	if (len < sizeof(struct virtio_net_hdr) + 14)
		return false;
	flen = len - sizeof(struct virtio_net_hdr);
	colo_vnet_parse(p, &h);
	if (h.flags &
	    ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		return false;
	if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		size_t field = (size_t)h.csum_start + h.csum_offset;

		if (h.csum_start < 14 || field + 2 > flen)
			return false;
	}
	switch (h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return !(h.gso_type & VIRTIO_NET_HDR_GSO_ECN);
	case VIRTIO_NET_HDR_GSO_TCPV4:
	case VIRTIO_NET_HDR_GSO_TCPV6:
	case VIRTIO_NET_HDR_GSO_UDP:
	case VIRTIO_NET_HDR_GSO_UDP_L4:
		return h.gso_size != 0 && h.hdr_len <= flen;
	default:
		return false;
	}
}
