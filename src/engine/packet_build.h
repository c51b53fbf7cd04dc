/*
 * packet_build.h - build well-formed Ethernet/IP/TCP/UDP/ICMP frames.
 *
 * Used by the sample-traffic generator, the tests, the benchmark and the
 * fuzz corpus, so that all of them speak of the same frames. Checksums are
 * computed (IPv4 header, TCP/UDP/ICMP over the pseudo-header).
 */
#ifndef COLO_PACKET_BUILD_H
#define COLO_PACKET_BUILD_H

#include <stddef.h>
#include <stdint.h>

struct colo_pkt_spec {
	uint8_t ipver;	 /* 4 or 6 */
	uint8_t src[16]; /* first 4 bytes used for IPv4 */
	uint8_t dst[16];
	uint8_t src_mac[6], dst_mac[6];
	uint16_t vlan_outer; /* 0: none; else 802.1ad (0x88a8) tag when
				vlan_inner is set, 802.1Q otherwise */
	uint16_t vlan_inner; /* 0: none */
	uint8_t proto;	     /* 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, other */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t tcp_flags;
	uint16_t window;
	uint8_t ttl; /* 0: 64 */
	uint16_t ip_id;
	int tcp_timestamp; /* add a TCP timestamp option with these values */
	uint32_t ts_val, ts_ecr;
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id, icmp_seq;
};

/* packet_build.c APIs: */
/* Fills spec with defaults: IPv4 10.0.0.1 -> 10.0.0.2, TCP, ACK flag,
 * window 65535, TTL 64, fixed MACs. */
void colo_pkt_spec_default(struct colo_pkt_spec *s);
/* Writes the frame into out (capacity cap); returns its length, or 0 if it
 * does not fit. */
size_t colo_pkt_build(const struct colo_pkt_spec *s, const uint8_t *payload,
		      size_t payload_len, uint8_t *out, size_t cap);

/* tcp_split.c APIs: */
/* Writes into out (capacity cap) TCP frame `frame` (vnet: its virtio-net
 * header's length) without its payload: lengths and checksums made
 * right, sequence number and flags kept. Returns its length, 0 when the
 * frame is no TCP or its headers do not fit. */
size_t colo_tcp_headers_only(const uint8_t *frame, size_t len, size_t vnet,
			     uint8_t *out, size_t cap);

#endif
