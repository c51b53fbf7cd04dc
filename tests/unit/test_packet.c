/*
 * test_packet.c - the parser: every header kind, and any truncation of
 * any frame is safe and never reads past the end.
 */
#include "harness.h"

static uint8_t buf[70000];

static size_t build(const struct colo_pkt_spec *s, const char *pl)
{
	size_t n = colo_pkt_build(s, (const uint8_t *)pl, pl ? strlen(pl) : 0,
				  buf, sizeof(buf));
	assert_true(n > 0);
	return n;
}

static void ipv4_tcp(void **state)
{
	(void)state;
	struct colo_pkt_spec s;
	struct colo_packet p;

	colo_pkt_spec_default(&s);
	s.seq = 0xdeadbeef;
	s.ack = 42;
	s.tcp_timestamp = 1;
	size_t n = build(&s, "payload");
	/* Ethernet padding must not be part of the payload */
	memset(buf + n, 0xee, 20);
	assert_int_equal(colo_packet_parse(buf, n + 20, &p), COLO_PKT_TCP);
	assert_int_equal(p.ipver, 4);
	assert_int_equal(p.seq, 0xdeadbeef);
	assert_int_equal(p.ack, 42);
	assert_int_equal(p.payload_len, 7);
	assert_memory_equal(p.payload, "payload", 7);
	assert_int_equal(p.sport, 80);
	assert_int_equal(p.dport, 40000);
}

static void ipv4_options_and_fragments(void **state)
{
	(void)state;
	struct colo_pkt_spec s;
	struct colo_packet p;

	colo_pkt_spec_default(&s);
	s.proto = 17;
	size_t n = build(&s, "abcdef");
	/* insert 4 bytes of IP options (NOP x4): ihl 6 */
	memmove(buf + 14 + 24, buf + 14 + 20, n - 34);
	memset(buf + 14 + 20, 1, 4);
	buf[14] = 0x46;
	uint16_t tot = (uint16_t)(n - 14 + 4);
	buf[16] = tot >> 8;
	buf[17] = tot & 0xff;
	assert_int_equal(colo_packet_parse(buf, n + 4, &p), COLO_PKT_UDP);
	assert_int_equal(p.payload_len, 6);
	assert_memory_equal(p.payload, "abcdef", 6);
	/* a non-first fragment: opaque payload */
	buf[20] = 0x00;
	buf[21] = 0x10; /* offset 16*8 */
	assert_int_equal(colo_packet_parse(buf, n + 4, &p), COLO_PKT_OTHER_IP);
	assert_true(p.is_fragment);
	assert_int_equal(p.frag_offset, 128);
	/* first fragment (MF): not compared as a UDP datagram either */
	buf[20] = 0x20;
	buf[21] = 0;
	assert_int_equal(colo_packet_parse(buf, n + 4, &p), COLO_PKT_OTHER_IP);
	assert_true(p.more_fragments);
	/* bad ihl */
	buf[14] = 0x44;
	assert_int_equal(colo_packet_parse(buf, n + 4, &p), COLO_PKT_MALFORMED);
}

static void ipv6_extension_headers(void **state)
{
	(void)state;
	struct colo_pkt_spec s;
	struct colo_packet p;

	colo_pkt_spec_default(&s);
	s.ipver = 6;
	s.proto = 6;
	size_t n = build(&s, "v6data");
	/* insert a hop-by-hop (8 bytes) and a destination-options header */
	size_t l3 = 14, l4 = l3 + 40;
	memmove(buf + l4 + 16, buf + l4, n - l4);
	uint8_t hbh[8] = { 60, 0, 1, 4, 0, 0, 0, 0 };
	uint8_t dst[8] = { 6, 0, 1, 4, 0, 0, 0, 0 };
	memcpy(buf + l4, hbh, 8);
	memcpy(buf + l4 + 8, dst, 8);
	buf[l3 + 6] = 0;
	uint16_t plen = (uint16_t)(n - l4 + 16);
	buf[l3 + 4] = plen >> 8;
	buf[l3 + 5] = plen & 0xff;
	assert_int_equal(colo_packet_parse(buf, n + 16, &p), COLO_PKT_TCP);
	assert_int_equal(p.ipver, 6);
	assert_int_equal(p.proto, 6);
	assert_int_equal(p.payload_len, 6);
	/* one AH header in place of the two: its length field counts
	 * 4-octet units minus 2, so 2 means 16 bytes */
	uint8_t ah[16] = { 6, 2, 0, 0 };
	memcpy(buf + l4, ah, 16);
	buf[l3 + 6] = 51;
	assert_int_equal(colo_packet_parse(buf, n + 16, &p), COLO_PKT_TCP);
	assert_int_equal(p.payload_len, 6);
	/* a first fragment header (8 bytes, MF set) then the destination
	 * options: a fragment is not compared as TCP */
	uint8_t frag[8] = { 60, 0, 0, 1, 0, 0, 0, 7 };
	memcpy(buf + l4, frag, 8);
	memcpy(buf + l4 + 8, dst, 8);
	buf[l3 + 6] = 44;
	colo_packet_parse(buf, n + 16, &p);
	assert_true(p.is_fragment);
	assert_true(p.more_fragments);
	assert_int_equal(p.frag_offset, 0);
	/* extension header longer than the datagram */
	memcpy(buf + l4, hbh, 8);
	buf[l3 + 6] = 0;
	buf[l4 + 1] = 200;
	assert_int_equal(colo_packet_parse(buf, n + 16, &p),
			 COLO_PKT_MALFORMED);
}

static void vlan_tags(void **state)
{
	(void)state;
	struct colo_pkt_spec s;
	struct colo_packet p;
	struct colo_flow_key k;
	char txt[200];

	colo_pkt_spec_default(&s);
	s.vlan_outer = 10;
	s.vlan_inner = 20;
	s.proto = 17;
	size_t n = build(&s, "qinq");
	assert_int_equal(colo_packet_parse(buf, n, &p), COLO_PKT_UDP);
	assert_int_equal(p.nvlan, 2);
	assert_int_equal(p.vlan[0] & 0xfff, 10);
	assert_int_equal(p.vlan[1] & 0xfff, 20);
	colo_flow_key_from_packet(&k, &p);
	colo_flow_format(&k, txt, sizeof(txt));
	assert_string_equal(txt,
			    "udp 10.0.0.1:80 -> 10.0.0.2:40000 vlan 10.20");
}

static void icmpv6(void **state)
{
	(void)state;
	struct colo_pkt_spec s;
	struct colo_packet p;

	colo_pkt_spec_default(&s);
	s.ipver = 6;
	s.proto = 58;
	s.icmp_type = 129;
	s.icmp_id = 9;
	size_t n = build(&s, "echo");
	assert_int_equal(colo_packet_parse(buf, n, &p), COLO_PKT_ICMP);
	assert_int_equal(p.icmp_id, 9);
	assert_int_equal(p.payload_len, 8); /* id, seq, data */
}

/* Every prefix of every kind of frame parses without reading past it
 * (ASan checks the reads in the sanitizer build). */
static void every_truncation_is_safe(void **state)
{
	(void)state;
	struct colo_pkt_spec s;
	struct colo_packet p;
	const uint8_t protos[] = { 6, 17, 1, 58, 47 };

	for (int v = 4; v <= 6; v += 2) {
		for (size_t i = 0; i < sizeof(protos); i++) {
			colo_pkt_spec_default(&s);
			s.ipver = (uint8_t)v;
			s.proto = protos[i];
			s.vlan_outer = 5;
			uint8_t frame[300];
			size_t n = colo_pkt_build(&s, (const uint8_t *)"xyz", 3,
						  frame, sizeof(frame));
			assert_true(n > 0);
			for (size_t cut = 0; cut <= n; cut++) {
				uint8_t *copy = malloc(cut ? cut : 1);
				memcpy(copy, frame, cut);
				colo_packet_parse(copy, cut, &p);
				if (p.payload)
					assert_true(p.payload + p.payload_len <=
						    copy + cut);
				free(copy);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ipv4_tcp),
		cmocka_unit_test(ipv4_options_and_fragments),
		cmocka_unit_test(ipv6_extension_headers),
		cmocka_unit_test(vlan_tags),
		cmocka_unit_test(icmpv6),
		cmocka_unit_test(every_truncation_is_safe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
