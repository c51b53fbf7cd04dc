/*
 * flow.c - flow keys and their printable form for logs and reports.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "flow.h"

void colo_flow_key_from_packet(struct colo_flow_key *k,
			       const struct colo_packet *p)
{
	memset(k, 0, sizeof(*k));
	k->ipver = p->ipver;
	k->proto = p->proto;
	k->vlan[0] = p->nvlan > 0 ? (p->vlan[0] & 0x0fff) : 0;
	k->vlan[1] = p->nvlan > 1 ? (p->vlan[1] & 0x0fff) : 0;
	if (p->ipver) {
		size_t alen = p->ipver == 6 ? 16 : 4;
		memcpy(k->src, p->src, alen);
		memcpy(k->dst, p->dst, alen);
	}
	switch (p->kind) {
	case COLO_PKT_TCP:
	case COLO_PKT_UDP:
		k->sport = p->sport;
		k->dport = p->dport;
		break;
	case COLO_PKT_ICMP:
		k->sport = p->icmp_id;
		break;
	case COLO_PKT_OTHER_IP:
		/* All fragments of a (src, dst, proto) form one ordered flow:
		 * their IP IDs differ between guests, their order does not. */
		k->fragment = p->is_fragment ? 1 : 0;
		break;
	case COLO_PKT_MALFORMED:
		/* Keyed by ethertype alone: compared as raw frames. */
		k->sport = p->ethertype;
		k->fragment = 2;
		break;
	case COLO_PKT_NON_IP:
		break;
	}
}

static const char *proto_name(uint8_t proto, char *buf, size_t n)
{
	switch (proto) {
	case 6:
		return "tcp";
	case 17:
		return "udp";
	case 1:
		return "icmp";
	case 58:
		return "icmpv6";
	default:
		snprintf(buf, n, "proto %u", proto);
		return buf;
	}
}

int colo_flow_format(const struct colo_flow_key *k, char *buf, size_t n)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], pb[16], vb[32] = "";
	int af = k->ipver == 6 ? AF_INET6 : AF_INET;

	if (k->fragment == 2)
		return snprintf(buf, n, "malformed ethertype 0x%04x", k->sport);
	if (!inet_ntop(af, k->src, s, sizeof(s)))
		strcpy(s, "?");
	if (!inet_ntop(af, k->dst, d, sizeof(d)))
		strcpy(d, "?");
	if (k->vlan[1])
		snprintf(vb, sizeof(vb), " vlan %u.%u", k->vlan[0], k->vlan[1]);
	else if (k->vlan[0])
		snprintf(vb, sizeof(vb), " vlan %u", k->vlan[0]);
	const char *pn = proto_name(k->proto, pb, sizeof(pb));
	const char *frag = k->fragment ? " fragments" : "";
	if (k->proto == 6 || k->proto == 17) {
		if (k->ipver == 6)
			return snprintf(buf, n, "%s [%s]:%u -> [%s]:%u%s%s", pn,
					s, k->sport, d, k->dport, vb, frag);
		return snprintf(buf, n, "%s %s:%u -> %s:%u%s%s", pn, s,
				k->sport, d, k->dport, vb, frag);
	}
	if ((k->proto == 1 || k->proto == 58) && k->sport)
		return snprintf(buf, n, "%s %s -> %s id %u%s%s", pn, s, d,
				k->sport, vb, frag);
	return snprintf(buf, n, "%s %s -> %s%s%s", pn, s, d, vb, frag);
}
