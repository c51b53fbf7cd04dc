/*
 * packet.c - bounds-checked parsing of Ethernet, VLAN, IPv4/IPv6, TCP,
 * UDP and ICMP headers.
 *
 * Every length field is checked against what was captured before it is
 * used, and the IP length fields bound everything after them, so that
 * Ethernet padding (which two guests need not produce alike) is never
 * compared. A frame that claims to be IP but fails a check is MALFORMED,
 * which the comparer still compares as raw bytes: nothing is ever dropped
 * on a parse failure.
 */
#include <stdbool.h>
#include <string.h>

#include "packet.h"
#include "byteorder.h"
#include "names.h"

static const char *const kind_names[] = {
	[COLO_PKT_NON_IP] = "non-ip", [COLO_PKT_MALFORMED] = "malformed",
	[COLO_PKT_TCP] = "tcp",	      [COLO_PKT_UDP] = "udp",
	[COLO_PKT_ICMP] = "icmp",     [COLO_PKT_OTHER_IP] = "ip"
};

const char *colo_pkt_kind_name(enum colo_pkt_kind k)
{
	return COLO_NAME_OF(kind_names, k);
}

/* Fills the L4 fields once the IP layer has located l4/l4_len. */
static enum colo_pkt_kind parse_l4(struct colo_packet *p)
{
	const uint8_t *l4 = p->l4;
	size_t n = p->l4_len;

	if (p->is_fragment && p->frag_offset != 0) {
		p->payload = l4;
		p->payload_len = n;
		return COLO_PKT_OTHER_IP;
	}
	switch (p->proto) {
	case 6: {
		if (n < 20)
			return COLO_PKT_MALFORMED;
		size_t doff = (size_t)(l4[12] >> 4) * 4;
		if (doff < 20 || doff > n)
			return COLO_PKT_MALFORMED;
		p->sport = colo_get_be16(l4);
		p->dport = colo_get_be16(l4 + 2);
		p->seq = colo_get_be32(l4 + 4);
		p->ack = colo_get_be32(l4 + 8);
		p->tcp_flags = l4[13];
		p->window = colo_get_be16(l4 + 14);
		p->payload = l4 + doff;
		p->payload_len = n - doff;
		/* A fragmented TCP segment cannot be compared as a stream. */
		return p->is_fragment ? COLO_PKT_OTHER_IP : COLO_PKT_TCP;
	}
	case 17:
		if (n < 8)
			return COLO_PKT_MALFORMED;
		p->sport = colo_get_be16(l4);
		p->dport = colo_get_be16(l4 + 2);
		p->payload = l4 + 8;
		p->payload_len = n - 8;
		return p->is_fragment ? COLO_PKT_OTHER_IP : COLO_PKT_UDP;
	case 1:
	case 58:
		if ((p->proto == 1) != (p->ipver == 4))
			break;
		if (n < 4)
			return COLO_PKT_MALFORMED;
		p->icmp_type = l4[0];
		p->icmp_code = l4[1];
		/* Echo request/reply (v4: 8/0, v6: 128/129) carry an id that
		 * separates ping sessions into flows. */
		if (n >= 8 && (p->icmp_type == 0 || p->icmp_type == 8 ||
			       p->icmp_type == 128 || p->icmp_type == 129))
			p->icmp_id = colo_get_be16(l4 + 4);
		/* Everything but the checksum, which offload may leave unset.
		 */
		p->payload = l4 + 4;
		p->payload_len = n - 4;
		return p->is_fragment ? COLO_PKT_OTHER_IP : COLO_PKT_ICMP;
	default:
		break;
	}
	p->payload = l4;
	p->payload_len = n;
	return COLO_PKT_OTHER_IP;
}

static enum colo_pkt_kind parse_ipv4(struct colo_packet *p, const uint8_t *ip,
				     size_t n)
{
	if (n < 20 || (ip[0] >> 4) != 4)
		return COLO_PKT_MALFORMED;
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
	size_t tot = colo_get_be16(ip + 2);
	/* TSO super-frames may carry total length 0: take the frame. */
	if (tot == 0)
		tot = n;
	if (ihl < 20 || tot < ihl || tot > n)
		return COLO_PKT_MALFORMED;
	uint16_t frag = colo_get_be16(ip + 6);
	p->ipver = 4;
	p->l3 = ip;
	p->l3_len = tot;
	p->proto = ip[9];
	p->src = ip + 12;
	p->dst = ip + 16;
	p->frag_offset = (uint32_t)(frag & 0x1fff) * 8;
	p->more_fragments = !!(frag & 0x2000);
	p->is_fragment = p->more_fragments || p->frag_offset;
	p->l4 = ip + ihl;
	p->l4_len = tot - ihl;
	return parse_l4(p);
}

/* Whether an IPv6 next-header value is an extension header the walk
 * steps over (ESP and unknown ones end it). */
static bool is_ext_header(uint8_t next)
{
	switch (next) {
	case 0:	  /* hop-by-hop */
	case 43:  /* routing */
	case 60:  /* destination options */
	case 135: /* mobility */
	case 44:  /* fragment */
	case 51:  /* AH */
		return true;
	default:
		return false;
	}
}

/* Walks the IPv6 extension header chain. ESP and unknown headers end the
 * walk: what follows is compared as opaque payload. */
static enum colo_pkt_kind parse_ipv6(struct colo_packet *p, const uint8_t *ip,
				     size_t n)
{
	if (n < 40 || (ip[0] >> 4) != 6)
		return COLO_PKT_MALFORMED;
	size_t plen = colo_get_be16(ip + 4);
	/* plen 0 is a jumbogram or a GSO super-frame: take the frame. */
	if (plen == 0)
		plen = n - 40;
	if (40 + plen > n)
		return COLO_PKT_MALFORMED;
	p->ipver = 6;
	p->l3 = ip;
	p->l3_len = 40 + plen;
	p->src = ip + 8;
	p->dst = ip + 24;

	uint8_t next = ip[6];
	size_t off = 40, end = 40 + plen;
	for (int hops = 0; hops < 16 && is_ext_header(next); hops++) {
		size_t hl;

		if (end - off < 8)
			return COLO_PKT_MALFORMED;
		if (next == 44)
			hl = 8;
		else if (next == 51)
			hl = ((size_t)ip[off + 1] + 2) * 4;
		else
			hl = ((size_t)ip[off + 1] + 1) * 8;
		if (hl > end - off)
			return COLO_PKT_MALFORMED;
		if (next == 44) {
			uint16_t fo = colo_get_be16(ip + off + 2);

			p->is_fragment = 1;
			p->frag_offset = (uint32_t)(fo & 0xfff8);
			p->more_fragments = fo & 1;
		}
		next = ip[off];
		off += hl;
	}
	p->proto = next;
	p->l4 = ip + off;
	p->l4_len = end - off;
	return parse_l4(p);
}

enum colo_pkt_kind colo_packet_parse(const uint8_t *frame, size_t len,
				     struct colo_packet *p)
{
	memset(p, 0, sizeof(*p));
	p->kind = COLO_PKT_NON_IP;
	if (len < 14)
		return p->kind;

	size_t off = 12;
	uint16_t type = colo_get_be16(frame + off);
	/* Up to two tags (802.1ad outer + 802.1Q inner, or QinQ with 0x8100
	 * twice); a third tag is not parsed and the frame is non-IP. */
	while ((type == 0x8100 || type == 0x88a8 || type == 0x9100) &&
	       p->nvlan < 2) {
		if (len < off + 6)
			return p->kind;
		p->vlan[p->nvlan++] = colo_get_be16(frame + off + 2);
		off += 4;
		type = colo_get_be16(frame + off);
	}
	p->ethertype = type;
	off += 2;

	if (type == 0x0800)
		p->kind = parse_ipv4(p, frame + off, len - off);
	else if (type == 0x86dd)
		p->kind = parse_ipv6(p, frame + off, len - off);
	return p->kind;
}
