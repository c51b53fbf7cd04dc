/*
 * packet.h - parse one Ethernet frame into the fields the comparer needs.
 *
 * The parser never trusts a length: every header is bounds-checked against
 * the captured frame and against the IP length fields, and the result only
 * points into the caller's buffer (no copies, no allocation). Ethernet
 * padding after the IP datagram is excluded, since primary and secondary
 * may pad differently.
 */
#ifndef COLO_PACKET_H
#define COLO_PACKET_H

#include <stddef.h>
#include <stdint.h>

enum colo_pkt_kind {
	COLO_PKT_NON_IP,    /* ARP, LLDP, ...: forwarded / dropped, not compared */
	COLO_PKT_MALFORMED, /* claims to be IP but fails a length check */
	COLO_PKT_TCP,
	COLO_PKT_UDP,
	COLO_PKT_ICMP, /* ICMPv4 or ICMPv6 */
	COLO_PKT_OTHER_IP, /* other protocol, or a non-first fragment */
};

enum {
	COLO_TCP_FIN = 0x01,
	COLO_TCP_SYN = 0x02,
	COLO_TCP_RST = 0x04,
	COLO_TCP_PSH = 0x08,
	COLO_TCP_ACK = 0x10,
	COLO_TCP_URG = 0x20,
};

struct colo_packet {
	enum colo_pkt_kind kind;
	uint16_t ethertype;  /* innermost ethertype */
	uint8_t nvlan;       /* 0..2 tags parsed */
	uint16_t vlan[2];    /* TCI of outer, inner tag (VID in low 12 bits) */
	uint8_t ipver;       /* 4 or 6, 0 when not IP */
	uint8_t proto;       /* final L4 protocol number */
	const uint8_t *src;  /* 4 or 16 bytes, inside the frame */
	const uint8_t *dst;
	const uint8_t *l3;   /* IP header */
	size_t l3_len;       /* IP datagram length (header + payload), no padding */
	int is_fragment;     /* IPv4 MF/offset or IPv6 fragment header */
	uint32_t frag_offset; /* in bytes */
	int more_fragments;
	const uint8_t *l4;   /* first byte after all IP headers */
	size_t l4_len;
	/* TCP/UDP */
	uint16_t sport, dport;
	/* TCP */
	uint32_t seq, ack;
	uint8_t tcp_flags;
	uint16_t window;
	/* ICMP: type, code and echo identifier */
	uint8_t icmp_type, icmp_code;
	uint16_t icmp_id;
	/* What is compared: TCP/UDP payload, ICMP body after the checksum,
	 * whole IP payload for other protocols and fragments. */
	const uint8_t *payload;
	size_t payload_len;
};

/* packet.c APIs: */
/* Parses frame[0..len) (starting at the Ethernet header). Always fills
 * p->kind; never reads outside the buffer. */
enum colo_pkt_kind colo_packet_parse(const uint8_t *frame, size_t len,
				     struct colo_packet *p);
const char *colo_pkt_kind_name(enum colo_pkt_kind k);

#endif
