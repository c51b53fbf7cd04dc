/*
 * packet_build.c - construct valid frames for samples, tests and benchmarks.
 *
 * Kept in the engine library so that the generator of the shipped sample
 * captures, the unit tests and the benchmark all produce byte-identical
 * frames from the same description.
 */
#include <string.h>

#include "packet_build.h"
#include "byteorder.h"
#include "checksum.h"

void colo_pkt_spec_default(struct colo_pkt_spec *s)
{
	static const uint8_t smac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	static const uint8_t dmac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };

	memset(s, 0, sizeof(*s));
	s->ipver = 4;
	s->src[0] = 10, s->src[3] = 1;
	s->dst[0] = 10, s->dst[3] = 2;
	memcpy(s->src_mac, smac, 6);
	memcpy(s->dst_mac, dmac, 6);
	s->proto = 6;
	s->sport = 80;
	s->dport = 40000;
	s->tcp_flags = 0x10;
	s->window = 65535;
	s->ttl = 64;
}

/* Pseudo-header sum for TCP/UDP/ICMPv6 checksums. */
static uint32_t pseudo_sum(const struct colo_pkt_spec *s, size_t l4_len)
{
	uint32_t sum = 0;
	uint8_t tail[4];
	size_t alen = s->ipver == 6 ? 16 : 4;

	sum = colo_csum_add(sum, s->src, alen);
	sum = colo_csum_add(sum, s->dst, alen);
	if (s->ipver == 6) {
		colo_put_be32(tail, (uint32_t)l4_len);
		sum = colo_csum_add(sum, tail, 4);
		colo_put_be32(tail, s->proto);
		sum = colo_csum_add(sum, tail, 4);
	} else {
		tail[0] = 0;
		tail[1] = s->proto;
		colo_put_be16(tail + 2, (uint16_t)l4_len);
		sum = colo_csum_add(sum, tail, 4);
	}
	return sum;
}

size_t colo_pkt_build(const struct colo_pkt_spec *s, const uint8_t *payload,
		      size_t payload_len, uint8_t *out, size_t cap)
{
	size_t l2 = 14 + (s->vlan_outer ? 4 : 0) + (s->vlan_inner ? 4 : 0);
	size_t l3 = s->ipver == 6 ? 40 : 20;
	size_t l4;
	uint8_t *p;

	switch (s->proto) {
	case 6:
		l4 = 20 + (s->tcp_timestamp ? 12 : 0);
		break;
	case 17:
		l4 = 8;
		break;
	case 1:
	case 58:
		l4 = 8;
		break;
	default:
		l4 = 0;
		break;
	}
	if (l2 + l3 + l4 + payload_len > cap || l3 + l4 + payload_len > 65535)
		return 0;
	memset(out, 0, l2 + l3 + l4);

	/* Ethernet and VLAN tags */
	p = out;
	memcpy(p, s->dst_mac, 6);
	memcpy(p + 6, s->src_mac, 6);
	p += 12;
	if (s->vlan_outer) {
		colo_put_be16(p, s->vlan_inner ? 0x88a8 : 0x8100);
		colo_put_be16(p + 2, s->vlan_outer);
		p += 4;
	}
	if (s->vlan_inner) {
		colo_put_be16(p, 0x8100);
		colo_put_be16(p + 2, s->vlan_inner);
		p += 4;
	}
	colo_put_be16(p, s->ipver == 6 ? 0x86dd : 0x0800);
	p += 2;

	/* IP */
	uint8_t *ip = p;
	size_t l4_total = l4 + payload_len;
	if (s->ipver == 6) {
		ip[0] = 0x60;
		colo_put_be16(ip + 4, (uint16_t)l4_total);
		ip[6] = s->proto;
		ip[7] = s->ttl ? s->ttl : 64;
		memcpy(ip + 8, s->src, 16);
		memcpy(ip + 24, s->dst, 16);
	} else {
		ip[0] = 0x45;
		colo_put_be16(ip + 2, (uint16_t)(l3 + l4_total));
		colo_put_be16(ip + 4, s->ip_id);
		colo_put_be16(ip + 6, 0x4000); /* DF */
		ip[8] = s->ttl ? s->ttl : 64;
		ip[9] = s->proto;
		memcpy(ip + 12, s->src, 4);
		memcpy(ip + 16, s->dst, 4);
		colo_put_be16(ip + 10,
			      colo_csum_fold(colo_csum_add(0, ip, 20)));
	}
	p += l3;

	/* L4 header, then payload, then checksum over both */
	uint8_t *l4h = p;
	if (payload_len)
		memcpy(l4h + l4, payload, payload_len);
	size_t csum_off = 0;
	int has_csum = 1;
	switch (s->proto) {
	case 6:
		colo_put_be16(l4h, s->sport);
		colo_put_be16(l4h + 2, s->dport);
		colo_put_be32(l4h + 4, s->seq);
		colo_put_be32(l4h + 8, s->ack);
		l4h[12] = (uint8_t)((l4 / 4) << 4);
		l4h[13] = s->tcp_flags;
		colo_put_be16(l4h + 14, s->window);
		if (s->tcp_timestamp) {
			l4h[20] = 1; /* NOP */
			l4h[21] = 1;
			l4h[22] = 8; /* timestamp */
			l4h[23] = 10;
			colo_put_be32(l4h + 24, s->ts_val);
			colo_put_be32(l4h + 28, s->ts_ecr);
		}
		csum_off = 16;
		break;
	case 17:
		colo_put_be16(l4h, s->sport);
		colo_put_be16(l4h + 2, s->dport);
		colo_put_be16(l4h + 4, (uint16_t)l4_total);
		csum_off = 6;
		break;
	case 1:
	case 58:
		l4h[0] = s->icmp_type;
		l4h[1] = s->icmp_code;
		colo_put_be16(l4h + 4, s->icmp_id);
		colo_put_be16(l4h + 6, s->icmp_seq);
		csum_off = 2;
		break;
	default:
		has_csum = 0;
		break;
	}
	if (has_csum) {
		uint32_t sum = 0;
		if (!(s->proto == 1 && s->ipver == 4))
			sum = pseudo_sum(s, l4_total);
		sum = colo_csum_add(sum, l4h, l4_total);
		uint16_t c = colo_csum_fold(sum);
		if (s->proto == 17 && c == 0)
			c = 0xffff;
		colo_put_be16(l4h + csum_off, c);
	}
	return l2 + l3 + l4_total;
}
