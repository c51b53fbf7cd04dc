/*
 * flow.h - the identity of one flow of guest output.
 *
 * The comparer only sees the guests' egress, so a flow is directional:
 * no normalisation of (src, dst) is needed. VLAN tags and the IP version
 * are part of the key so that overlapping address plans in different
 * VLANs never share comparison state.
 */
#ifndef COLO_FLOW_H
#define COLO_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "packet.h"

struct colo_flow_key {
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport; /* TCP/UDP port, ICMP echo id, 0 otherwise */
	uint16_t dport;
	uint16_t vlan[2]; /* VIDs, 0 when untagged */
	uint8_t proto;
	uint8_t ipver;
	uint8_t fragment; /* 1: fragments of this (src,dst,proto) */
	uint8_t pad;      /* always 0: the key is hashed as bytes */
};

/* flow.c APIs: */
void colo_flow_key_from_packet(struct colo_flow_key *k,
			       const struct colo_packet *p);
/* "tcp 10.0.0.1:80 -> 10.0.0.2:5555 vlan 7"; returns strlen like snprintf */
int colo_flow_format(const struct colo_flow_key *k, char *buf, size_t n);

#endif
