/*
 * gso.c - cut GSO super-frames into wire frames in software.
 *
 * The layout (VLAN tags, IP header, L4 header) is parsed from the frame
 * itself rather than trusted from hdr_len/csum_start: the header is
 * advice from a guest, the bytes are what will go on the wire. Each
 * segment gets fresh checksums computed from scratch, so a super-frame
 * with or without NEEDS_CSUM comes out right either way.
 */
#include <string.h>

#include "checksum.h"
#include "gso.h"
#include "byteorder.h"

#define ETH_TYPE_IPV4	  0x0800
#define ETH_TYPE_IPV6	  0x86dd
#define ETH_TYPE_VLAN	  0x8100
#define ETH_TYPE_QINQ	  0x88a8
#define ETH_TYPE_QINQ_OLD 0x9100
#define GSO_MAX_VLAN	  8
#define GSO_MAX_IPV6_EXT  8

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

struct gso_layout {
	size_t l3;   /* IP header */
	size_t l4;   /* TCP/UDP header */
	size_t hlen; /* all headers: l4 + TCP/UDP header length */
	int ipver;
	uint8_t proto;
};

static int parse_ipv6(const uint8_t *f, size_t len, struct gso_layout *l)
{
	size_t off = l->l3 + 40;
	uint8_t nh;
	int i;

	if (off > len || f[l->l3] >> 4 != 6)
		return -1;
	nh = f[l->l3 + 6];
	for (i = 0; nh == 0 || nh == 43 || nh == 60; i++) {
		if (i == GSO_MAX_IPV6_EXT || off + 8 > len)
			return -1;
		nh = f[off];
		off += ((size_t)f[off + 1] + 1) * 8;
	}
	l->proto = nh;
	l->l4 = off;
	return 0;
}

static int parse_ipv4(const uint8_t *f, size_t len, struct gso_layout *l)
{
	const uint8_t *ip = f + l->l3;
	size_t ihl;

	if (l->l3 + 20 > len || ip[0] >> 4 != 4)
		return -1;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	/* A fragment cannot be segmented: its L4 header is elsewhere. */
	if (ihl < 20 || (colo_get_be16(ip + 6) & 0x3fff))
		return -1;
	l->proto = ip[9];
	l->l4 = l->l3 + ihl;
	return 0;
}

static int parse_layout(const uint8_t *f, size_t len, struct gso_layout *l)
{
	size_t off = 12;
	uint16_t type;
	int tags = 0;

	for (;;) {
		if (off + 2 > len)
			return -1;
		type = colo_get_be16(f + off);
		if (type != ETH_TYPE_VLAN && type != ETH_TYPE_QINQ &&
		    type != ETH_TYPE_QINQ_OLD)
			break;
		if (++tags > GSO_MAX_VLAN)
			return -1;
		off += 4;
	}
	l->l3 = off + 2;
	if (type == ETH_TYPE_IPV4) {
		l->ipver = 4;
		if (parse_ipv4(f, len, l))
			return -1;
	} else if (type == ETH_TYPE_IPV6) {
		l->ipver = 6;
		if (parse_ipv6(f, len, l))
			return -1;
	} else {
		return -1;
	}
	if (l->proto == 6) {
		size_t thl;

		if (l->l4 + 20 > len)
			return -1;
		thl = (size_t)(f[l->l4 + 12] >> 4) * 4;
		if (thl < 20)
			return -1;
		l->hlen = l->l4 + thl;
	} else if (l->proto == 17) {
		l->hlen = l->l4 + 8;
	} else {
		return -1;
	}
	return l->hlen <= len ? 0 : -1;
}

/* The sum of the pseudo-header of a segment with l4len bytes of L4. */
static uint64_t pseudo_sum(const uint8_t *f, const struct gso_layout *l,
			   size_t l4len)
{
	uint8_t ph[40];

	if (l->ipver == 4) {
		memcpy(ph, f + l->l3 + 12, 8);
		ph[8] = 0;
		ph[9] = l->proto;
		colo_put_be16(ph + 10, (uint16_t)l4len);
		return colo_csum_partial(ph, 12, 0);
	}
	memcpy(ph, f + l->l3 + 8, 32);
	colo_put_be32(ph + 32, (uint32_t)l4len);
	memset(ph + 36, 0, 3);
	ph[39] = l->proto;
	return colo_csum_partial(ph, 40, 0);
}

/* Fixes the headers of one segment built in s with seg payload bytes. */
static void fix_segment(uint8_t *s, const struct gso_layout *l, size_t seg,
			uint32_t idx, size_t off, bool last)
{
	size_t l4len = l->hlen - l->l4 + seg;
	uint8_t *ip = s + l->l3, *l4 = s + l->l4;
	uint16_t c, csum_off;
	uint64_t sum;

	if (l->ipver == 4) {
		colo_put_be16(ip + 2, (uint16_t)(l->l4 - l->l3 + l4len));
		colo_put_be16(ip + 4, (uint16_t)(colo_get_be16(ip + 4) + idx));
		memset(ip + 10, 0, 2);
		c = colo_csum_finish(
			colo_csum_partial(ip, l->l4 - l->l3, 0));
		memcpy(ip + 10, &c, 2);
	} else {
		colo_put_be16(ip + 4, (uint16_t)(l->l4 - l->l3 - 40 + l4len));
	}
	if (l->proto == 6) {
		colo_put_be32(l4 + 4, colo_get_be32(l4 + 4) + (uint32_t)off);
		if (!last)
			l4[13] &= (uint8_t) ~(TCP_FIN | TCP_PSH);
		if (idx)
			l4[13] &= (uint8_t)~TCP_CWR;
		csum_off = 16;
	} else {
		colo_put_be16(l4 + 4, (uint16_t)l4len);
		csum_off = 6;
	}
	memset(l4 + csum_off, 0, 2);
	sum = pseudo_sum(s, l, l4len);
	sum = colo_csum_partial(l4, l4len, sum);
	c = colo_csum_finish(sum);
	if (!c && l->proto == 17)
		c = 0xffff;
	memcpy(l4 + csum_off, &c, 2);
}

static int emit_plain(const uint8_t *frame, size_t len,
		      const struct colo_vnet_hdr *h, uint8_t *scratch,
		      size_t scratch_len, colo_gso_emit_fn emit, void *ctx)
{
	int rc;

	if (len < 14)
		return -1; /* not even an Ethernet header */
	if (!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)) {
		rc = emit(ctx, frame, len);
		return rc ? rc : 1;
	}
	if (len > scratch_len)
		return -1;
	memcpy(scratch, frame, len);
	if (colo_vnet_csum_complete(scratch, len, h))
		return -1;
	rc = emit(ctx, scratch, len);
	return rc ? rc : 1;
}

int colo_gso_segment(const uint8_t *frame, size_t len,
		     const struct colo_vnet_hdr *h, uint8_t *scratch,
		     size_t scratch_len, colo_gso_emit_fn emit, void *ctx)
{
	uint8_t type = h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
	struct gso_layout l;
	size_t payload, off, seg, mss = h->gso_size;
	uint32_t idx;
	int rc;

	if (type == VIRTIO_NET_HDR_GSO_NONE)
		return emit_plain(frame, len, h, scratch, scratch_len, emit,
				  ctx);
	if (parse_layout(frame, len, &l))
		return -1;
	if (type == VIRTIO_NET_HDR_GSO_TCPV4 ||
	    type == VIRTIO_NET_HDR_GSO_TCPV6) {
		if (l.proto != 6)
			return -1;
	} else if (type == VIRTIO_NET_HDR_GSO_UDP_L4) {
		if (l.proto != 17)
			return -1;
	} else {
		return -1; /* UFO: IP fragmentation, not done here */
	}
	payload = len - l.hlen;
	if (!mss || l.hlen + (mss < payload ? mss : payload) > scratch_len)
		return -1;
	/* The IP length fields are 16 bits wide. */
	if (l.hlen - l.l3 + (mss < payload ? mss : payload) > 65535)
		return -1;
	idx = 0;
	off = 0;
	do {
		seg = payload - off < mss ? payload - off : mss;
		memcpy(scratch, frame, l.hlen);
		memcpy(scratch + l.hlen, frame + l.hlen + off, seg);
		fix_segment(scratch, &l, seg, idx, off, off + seg >= payload);
		rc = emit(ctx, scratch, l.hlen + seg);
		if (rc)
			return rc;
		idx++;
		off += seg;
	} while (off < payload);
	return (int)idx;
}
