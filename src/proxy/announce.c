/*
 * announce.c - telling the network that the guest moved to this host.
 *
 * After failover the secondary guest answers on the secondary host's
 * client-facing interface. Switches learn MAC addresses from source
 * addresses and neighbour caches may hold the primary's path, so the
 * proxy sends, in the guest's name, a gratuitous ARP for every IPv4
 * address and an unsolicited neighbour advertisement (override flag) for
 * every IPv6 address the guest has used as a source. The addresses are
 * learned from the guest's own egress: no configuration to get wrong.
 */
#include <string.h>

#include "checksum.h"
#include "proxy.h"

/* Remembers a unicast address (len 4 or 16) the guest used, once. */
static void learn(uint8_t *table, uint32_t *n, const uint8_t *ip, size_t len)
{
	static const uint8_t zero[16];

	if (memcmp(ip, zero, len) == 0 || ip[0] == 0xff ||
	    (len == 4 && (ip[0] == 127 || ip[0] >= 224)))
		return;
	for (uint32_t i = 0; i < *n; i++)
		if (memcmp(table + i * len, ip, len) == 0)
			return;
	if (*n < COLO_ANNOUNCE_ADDRS)
		memcpy(table + (*n)++ * len, ip, len);
}

void colo_guest_addrs_learn(struct colo_guest_addrs *a, const uint8_t *eth,
			    size_t len)
{
	size_t off = 12;
	uint16_t type;

	if (len < 14)
		return;
	if (!(eth[6] & 1)) {
		memcpy(a->mac, eth + 6, 6);
		a->mac_known = true;
	}
	type = (uint16_t)(eth[12] << 8 | eth[13]);
	while ((type == 0x8100 || type == 0x88a8) && len >= off + 8) {
		off += 4;
		type = (uint16_t)(eth[off] << 8 | eth[off + 1]);
	}
	off += 2;
	if (type == 0x0800 && len >= off + 20 && (eth[off] >> 4) == 4)
		learn(a->ip4[0], &a->n4, eth + off + 12, 4);
	else if (type == 0x86dd && len >= off + 40 && (eth[off] >> 4) == 6)
		learn(a->ip6[0], &a->n6, eth + off + 8, 16);
	else if (type == 0x0806 && len >= off + 28 && eth[off + 4] == 6 &&
		 eth[off + 5] == 4)
		learn(a->ip4[0], &a->n4, eth + off + 14, 4);
}

size_t colo_announce_garp(uint8_t *out, const uint8_t mac[6],
			  const uint8_t ip[4])
{
	static const uint8_t hdr[8] = { 0, 1, 8, 0, 6, 4, 0, 1 };

	memset(out, 0xff, 6);
	memcpy(out + 6, mac, 6);
	out[12] = 0x08;
	out[13] = 0x06;
	memcpy(out + 14, hdr, 8); /* Ethernet/IPv4, request */
	memcpy(out + 22, mac, 6);
	memcpy(out + 28, ip, 4);
	memset(out + 32, 0, 6);
	memcpy(out + 38, ip, 4);
	return 42;
}

size_t colo_announce_una(uint8_t *out, const uint8_t mac[6],
			 const uint8_t ip[16])
{
	static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 1 };
	uint8_t *ip6 = out + 14, *icmp = out + 54;
	const size_t icmp_len = 32; /* NA 24 + target link-layer option 8 */
	uint32_t s;

	out[0] = 0x33;
	out[1] = 0x33;
	out[2] = out[3] = out[4] = 0;
	out[5] = 1;
	memcpy(out + 6, mac, 6);
	out[12] = 0x86;
	out[13] = 0xdd;
	memset(ip6, 0, 40);
	ip6[0] = 0x60;
	ip6[5] = (uint8_t)icmp_len;
	ip6[6] = 58;  /* ICMPv6 */
	ip6[7] = 255; /* hop limit: neighbour discovery requires it */
	memcpy(ip6 + 8, ip, 16);
	memcpy(ip6 + 24, all_nodes, 16);
	memset(icmp, 0, icmp_len);
	icmp[0] = 136;	/* neighbour advertisement */
	icmp[4] = 0x20; /* override */
	memcpy(icmp + 8, ip, 16);
	icmp[24] = 2; /* target link-layer address */
	icmp[25] = 1;
	memcpy(icmp + 26, mac, 6);
	s = colo_csum_add(0, ip6 + 8, 32);
	s += (uint32_t)icmp_len + 58;
	s = colo_csum_add(s, icmp, icmp_len);
	s = colo_csum_fold(s);
	icmp[2] = (uint8_t)(s >> 8);
	icmp[3] = (uint8_t)s;
	return 14 + 40 + icmp_len;
}

/* ---- answering the secondary guest's address resolution */

static void neigh_put(struct colo_neigh *nb, const uint8_t *ip, uint8_t ipver,
		      const uint8_t mac[6])
{
	size_t n = ipver == 4 ? 4 : 16;
	uint32_t i;

	if (mac[0] & 1)
		return;
	for (i = 0; i < nb->n; i++) {
		if (nb->e[i].ipver == ipver &&
		    memcmp(nb->e[i].ip, ip, n) == 0) {
			memcpy(nb->e[i].mac, mac, 6);
			return;
		}
	}
	if (nb->n < COLO_NEIGH_MAX) {
		i = nb->n++;
	} else {
		i = nb->next;
		nb->next = (nb->next + 1) % COLO_NEIGH_MAX;
	}
	memset(nb->e[i].ip, 0, 16);
	memcpy(nb->e[i].ip, ip, n);
	nb->e[i].ipver = ipver;
	memcpy(nb->e[i].mac, mac, 6);
}

static const uint8_t *neigh_get(const struct colo_neigh *nb, const uint8_t *ip,
				uint8_t ipver)
{
	size_t n = ipver == 4 ? 4 : 16;

	for (uint32_t i = 0; i < nb->n; i++)
		if (nb->e[i].ipver == ipver && memcmp(nb->e[i].ip, ip, n) == 0)
			return nb->e[i].mac;
	return NULL;
}

void colo_neigh_learn(struct colo_neigh *nb, const uint8_t *eth, size_t len)
{
	uint16_t type;

	if (len < 14)
		return;
	type = (uint16_t)(eth[12] << 8 | eth[13]);
	if (type == 0x0800 && len >= 34 && (eth[14] >> 4) == 4 && eth[26] &&
	    eth[26] < 224)
		neigh_put(nb, eth + 26, 4, eth + 6);
	else if (type == 0x86dd && len >= 54 && (eth[14] >> 4) == 6 &&
		 eth[22] != 0xff && (eth[22] | eth[23] | eth[24] | eth[25]))
		neigh_put(nb, eth + 22, 6, eth + 6);
	else if (type == 0x0806 && len >= 42 && eth[18] == 6 && eth[19] == 4 &&
		 (eth[28] | eth[29] | eth[30] | eth[31]))
		neigh_put(nb, eth + 28, 4, eth + 22);
}

size_t colo_neigh_answer(const struct colo_neigh *nb, const uint8_t *eth,
			 size_t len, uint8_t *out)
{
	const uint8_t *mac;
	uint16_t type;

	if (len < 14)
		return 0;
	type = (uint16_t)(eth[12] << 8 | eth[13]);
	if (type == 0x0806 && len >= 42 && eth[18] == 6 && eth[19] == 4 &&
	    eth[20] == 0 && eth[21] == 1) {
		mac = neigh_get(nb, eth + 38, 4);
		if (!mac)
			return 0;
		memcpy(out, eth + 6, 6); /* to the asking guest */
		memcpy(out + 6, mac, 6);
		out[12] = 0x08;
		out[13] = 0x06;
		memcpy(out + 14, eth + 14, 6); /* hw/proto types and sizes */
		out[20] = 0;
		out[21] = 2; /* reply */
		memcpy(out + 22, mac, 6);
		memcpy(out + 28, eth + 38, 4);
		memcpy(out + 32, eth + 22, 10); /* the asker's MAC and IP */
		return 42;
	}
	/* IPv6 neighbour solicitation: ICMPv6 type 135, hop limit 255. */
	if (type == 0x86dd && len >= 78 && eth[20] == 58 && eth[21] == 255 &&
	    eth[54] == 135) {
		size_t n;

		static const uint8_t unspecified[16];

		mac = neigh_get(nb, eth + 62, 6);
		if (!mac || memcmp(eth + 22, unspecified, 16) == 0)
			return 0; /* unknown, or duplicate address detection */
		n = colo_announce_una(out, mac, eth + 62);
		/* Solicited: to the asker, from the target, S and O set. */
		memcpy(out, eth + 6, 6);
		memcpy(out + 38, eth + 22, 16);
		out[54 + 4] = 0x60;
		out[54 + 2] = out[54 + 3] = 0;
		{
			uint32_t s = colo_csum_add(0, out + 22, 32) + 32 + 58;

			s = colo_csum_fold(colo_csum_add(s, out + 54, 32));
			out[56] = (uint8_t)(s >> 8);
			out[57] = (uint8_t)s;
		}
		return n;
	}
	return 0;
}
