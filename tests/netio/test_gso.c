/*
 * test_gso.c - software GSO against an independent reading of the
 * segments: every header field, length and checksum is recomputed with
 * the engine's byte-wise checksum (packet_build.c), not gso.c's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checksum.h"
#include "gso.h"
#include "packet_build.h"
#include "vnet.h"

#define MAX_SEGS 128
#define SEG_CAP	 2048

struct segs {
	size_t n;
	size_t len[MAX_SEGS];
	uint8_t data[MAX_SEGS][SEG_CAP];
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static int collect(void *ctx, const uint8_t *f, size_t len)
{
	struct segs *s = ctx;

	assert_true(s->n < MAX_SEGS);
	assert_true(len <= SEG_CAP);
	memcpy(s->data[s->n], f, len);
	s->len[s->n++] = len;
	return 0;
}

/* Sum of the pseudo-header, big-endian words (packet_build.c style). */
static uint32_t pseudo(const uint8_t *ip, int ipver, uint8_t proto,
		       size_t l4len)
{
	uint8_t tail[4] = { 0, proto, 0, 0 };
	uint32_t sum;

	if (ipver == 4) {
		sum = colo_csum_add(0, ip + 12, 8);
		put16(tail + 2, (uint16_t)l4len);
		return colo_csum_add(sum, tail, 4);
	}
	sum = colo_csum_add(0, ip + 8, 32);
	sum += (uint32_t)(l4len >> 16) + (uint32_t)(l4len & 0xffff);
	return sum + proto;
}

struct shape {
	int ipver;
	int vlans;
	int tcp_ts;
	uint8_t proto;
};

static uint8_t frame[70000];
static uint8_t payload[70000];
static uint8_t scratch[COLO_GSO_SCRATCH];
static struct segs segs;

static size_t build(const struct shape *sh, size_t plen, uint8_t flags)
{
	struct colo_pkt_spec s;
	size_t i, len;

	colo_pkt_spec_default(&s);
	s.ipver = (uint8_t)sh->ipver;
	if (sh->ipver == 6) {
		memset(s.src, 0, 16);
		memset(s.dst, 0, 16);
		s.src[0] = s.dst[0] = 0xfd;
		s.src[15] = 1;
		s.dst[15] = 2;
	}
	if (sh->vlans >= 1)
		s.vlan_outer = 100;
	if (sh->vlans >= 2)
		s.vlan_inner = 200;
	s.proto = sh->proto;
	s.seq = 0xfffff000; /* wraps during the segmentation */
	s.ip_id = 0xfffe;
	s.tcp_flags = flags;
	s.tcp_timestamp = sh->tcp_ts;
	s.ts_val = 1234;
	for (i = 0; i < plen; i++)
		payload[i] = (uint8_t)(i * 7 + (i >> 8));
	len = colo_pkt_build(&s, payload, plen, frame, sizeof(frame));
	assert_true(len > plen);
	return len;
}

static void check_segments(const struct shape *sh, size_t plen, size_t mss,
			   uint8_t flags)
{
	size_t l3 = 14 + 4 * (size_t)sh->vlans;
	size_t iphl = sh->ipver == 4 ? 20 : 40;
	size_t l4 = l3 + iphl;
	size_t l4hl = sh->proto == 6 ? 20 + (sh->tcp_ts ? 12 : 0) : 8;
	size_t hl = l4 + l4hl, off = 0, i, want = (plen + mss - 1) / mss;

	assert_int_equal(segs.n, want);
	for (i = 0; i < segs.n; i++) {
		const uint8_t *f = segs.data[i], *ip = f + l3, *th = f + l4;
		size_t seg = segs.len[i] - hl;
		uint32_t sum;

		assert_int_equal(seg, i + 1 < want ? mss : plen - off);
		/* L2 and every header byte we do not fix are unchanged. */
		assert_memory_equal(f, frame, l3);
		if (sh->ipver == 4) {
			assert_int_equal(get16(ip + 2), iphl + l4hl + seg);
			assert_int_equal(get16(ip + 4), (uint16_t)(0xfffe + i));
			assert_int_equal(
				colo_csum_fold(colo_csum_add(0, ip, 20)), 0);
		} else {
			assert_int_equal(get16(ip + 4), l4hl + seg);
		}
		sum = pseudo(ip, sh->ipver, sh->proto, l4hl + seg);
		sum = colo_csum_add(sum, th, l4hl + seg);
		assert_int_equal(colo_csum_fold(sum), 0);
		if (sh->proto == 6) {
			uint8_t fl = th[13], exp = flags;

			assert_int_equal(get32(th + 4),
					 (uint32_t)(0xfffff000u + off));
			if (i + 1 < want)
				exp &= (uint8_t)~0x09;
			if (i)
				exp &= (uint8_t)~0x80;
			assert_int_equal(fl, exp);
			assert_memory_equal(th + 20, frame + l4 + 20,
					    l4hl - 20);
		} else {
			assert_int_equal(get16(th + 4), 8 + seg);
			assert_memory_equal(th, frame + l4, 4);
		}
		assert_memory_equal(f + hl, payload + off, seg);
		off += seg;
	}
	assert_int_equal(off, plen);
}

static void run_tcp(const struct shape *sh, size_t plen, size_t mss,
		    bool needs_csum)
{
	uint8_t flags = 0x80 | 0x10 | 0x08 | 0x01; /* CWR ACK PSH FIN */
	size_t len = build(sh, plen, flags);
	size_t l4 = 14 + 4 * (size_t)sh->vlans + (sh->ipver == 4 ? 20 : 40);
	struct colo_vnet_hdr h = {
		.gso_type = sh->ipver == 4 ? VIRTIO_NET_HDR_GSO_TCPV4
					   : VIRTIO_NET_HDR_GSO_TCPV6,
		.gso_size = (uint16_t)mss,
		.hdr_len = (uint16_t)(l4 + 20),
	};
	int rc;

	if (needs_csum) {
		h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h.csum_start = (uint16_t)l4;
		h.csum_offset = 16;
		frame[l4 + 16] = 0x12; /* a stale partial sum */
	}
	memset(&segs, 0, sizeof(segs));
	rc = colo_gso_segment(frame, len, &h, scratch, sizeof(scratch), collect,
			      &segs);
	assert_int_equal(rc, (int)((plen + mss - 1) / mss));
	check_segments(sh, plen, mss, flags);
}

static void test_tcp4_64k(void **state)
{
	struct shape sh = { .ipver = 4, .proto = 6 };

	(void)state;
	run_tcp(&sh, 65495, 1448, true);
	run_tcp(&sh, 65495, 1460, false);
	sh.tcp_ts = 1;
	run_tcp(&sh, 65483, 1448, true);
}

static void test_tcp4_vlan(void **state)
{
	struct shape sh = { .ipver = 4, .proto = 6, .vlans = 1 };

	(void)state;
	run_tcp(&sh, 65495, 1448, true);
	sh.vlans = 2;
	sh.tcp_ts = 1;
	run_tcp(&sh, 40000, 1000, true);
}

static void test_tcp6_64k(void **state)
{
	struct shape sh = { .ipver = 6, .proto = 6 };

	(void)state;
	run_tcp(&sh, 65475, 1440, true);
	sh.vlans = 1;
	run_tcp(&sh, 65475, 1428, true);
	sh.vlans = 2;
	sh.tcp_ts = 1;
	run_tcp(&sh, 65000, 1416, false);
}

static void test_tcp_single_segment(void **state)
{
	struct shape sh = { .ipver = 4, .proto = 6 };

	(void)state;
	run_tcp(&sh, 1000, 1448, true);
	run_tcp(&sh, 1448, 1448, true);
	run_tcp(&sh, 1449, 1448, true);
}

static void test_uso(void **state)
{
	struct shape sh = { .ipver = 4, .proto = 17 };
	size_t len, l4;
	struct colo_vnet_hdr h = { .gso_type = VIRTIO_NET_HDR_GSO_UDP_L4,
				   .gso_size = 1000 };

	(void)state;
	len = build(&sh, 4500, 0);
	memset(&segs, 0, sizeof(segs));
	assert_int_equal(colo_gso_segment(frame, len, &h, scratch,
					  sizeof(scratch), collect, &segs),
			 5);
	check_segments(&sh, 4500, 1000, 0);
	sh.ipver = 6;
	sh.vlans = 1;
	len = build(&sh, 3000, 0);
	l4 = 18 + 40;
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.csum_start = (uint16_t)l4;
	h.csum_offset = 6;
	memset(&segs, 0, sizeof(segs));
	assert_int_equal(colo_gso_segment(frame, len, &h, scratch,
					  sizeof(scratch), collect, &segs),
			 3);
	check_segments(&sh, 3000, 1000, 0);
}

/* A NEEDS_CSUM frame as the kernel hands it: the field holds the
 * pseudo-header sum, not complemented. */
static void test_partial_csum(void **state)
{
	struct shape shapes[] = {
		{ .ipver = 4, .proto = 6 },
		{ .ipver = 6, .proto = 6, .vlans = 1 },
		{ .ipver = 4, .proto = 17, .vlans = 2 },
		{ .ipver = 6, .proto = 17 },
	};
	size_t i, plens[] = { 0, 1, 333, 1400 };

	(void)state;
	for (i = 0; i < 16; i++) {
		const struct shape *sh = &shapes[i % 4];
		size_t plen = plens[i / 4], len = build(sh, plen, 0x18);
		size_t l3 = 14 + 4 * (size_t)sh->vlans;
		size_t l4 = l3 + (sh->ipver == 4 ? 20 : 40);
		size_t field = l4 + (sh->proto == 6 ? 16 : 6);
		size_t l4len = len - l4;
		uint8_t good[2];
		struct colo_vnet_hdr h = {
			.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
			.csum_start = (uint16_t)l4,
			.csum_offset = (uint16_t)(field - l4),
		};
		uint16_t partial = (uint16_t)~colo_csum_fold(
			pseudo(frame + l3, sh->ipver, sh->proto, l4len));

		memcpy(good, frame + field, 2);
		put16(frame + field, partial);
		memset(&segs, 0, sizeof(segs));
		assert_int_equal(colo_gso_segment(frame, len, &h, scratch,
						  sizeof(scratch), collect,
						  &segs),
				 1);
		assert_int_equal(segs.len[0], len);
		assert_memory_equal(segs.data[0] + field, good, 2);
		/* the input is const: untouched */
		assert_int_equal(get16(frame + field), partial);
		/* and in place */
		assert_int_equal(colo_vnet_csum_complete(frame, len, &h), 0);
		assert_memory_equal(frame + field, good, 2);
	}
}

static void test_plain_passes(void **state)
{
	struct shape sh = { .ipver = 4, .proto = 6 };
	size_t len = build(&sh, 100, 0x10);
	struct colo_vnet_hdr h = { 0 };

	(void)state;
	memset(&segs, 0, sizeof(segs));
	assert_int_equal(colo_gso_segment(frame, len, &h, scratch,
					  sizeof(scratch), collect, &segs),
			 1);
	assert_memory_equal(segs.data[0], frame, len);
}

static void test_malformed(void **state)
{
	struct shape sh = { .ipver = 4, .proto = 6 };
	size_t len = build(&sh, 5000, 0x10), cut;
	struct colo_vnet_hdr h = { .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
				   .gso_size = 1448 };

	(void)state;
	memset(&segs, 0, sizeof(segs));
	/* any truncation inside the headers */
	for (cut = 0; cut < 54; cut++)
		assert_int_equal(colo_gso_segment(frame, cut, &h, scratch,
						  sizeof(scratch), collect,
						  &segs),
				 -1);
	h.gso_size = 0;
	assert_int_equal(colo_gso_segment(frame, len, &h, scratch,
					  sizeof(scratch), collect, &segs),
			 -1);
	h.gso_size = 1448;
	h.gso_type = VIRTIO_NET_HDR_GSO_UDP; /* UFO: not supported */
	assert_int_equal(colo_gso_segment(frame, len, &h, scratch,
					  sizeof(scratch), collect, &segs),
			 -1);
	h.gso_type = VIRTIO_NET_HDR_GSO_UDP_L4; /* but it is TCP */
	assert_int_equal(colo_gso_segment(frame, len, &h, scratch,
					  sizeof(scratch), collect, &segs),
			 -1);
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	frame[14 + 6] = 0x20; /* a fragment (MF) */
	assert_int_equal(colo_gso_segment(frame, len, &h, scratch,
					  sizeof(scratch), collect, &segs),
			 -1);
	frame[14 + 6] = 0;
	frame[14 + 20 + 12] = 0x40; /* TCP data offset 16 bytes */
	assert_int_equal(colo_gso_segment(frame, len, &h, scratch,
					  sizeof(scratch), collect, &segs),
			 -1);
	/* scratch too small for a segment */
	frame[14 + 20 + 12] = 0x50;
	assert_int_equal(
		colo_gso_segment(frame, len, &h, scratch, 1000, collect, &segs),
		-1);
	assert_int_equal(segs.n, 0);
}

static int stop_after_two(void *ctx, const uint8_t *f, size_t len)
{
	int *n = ctx;

	(void)f;
	(void)len;
	return ++*n == 2 ? 7 : 0;
}

static void test_emit_error_stops(void **state)
{
	struct shape sh = { .ipver = 4, .proto = 6 };
	size_t len = build(&sh, 10000, 0x10);
	struct colo_vnet_hdr h = { .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
				   .gso_size = 1000 };
	int n = 0;

	(void)state;
	assert_int_equal(colo_gso_segment(frame, len, &h, scratch,
					  sizeof(scratch), stop_after_two, &n),
			 7);
	assert_int_equal(n, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp4_64k),
		cmocka_unit_test(test_tcp4_vlan),
		cmocka_unit_test(test_tcp6_64k),
		cmocka_unit_test(test_tcp_single_segment),
		cmocka_unit_test(test_uso),
		cmocka_unit_test(test_partial_csum),
		cmocka_unit_test(test_plain_passes),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_emit_error_stops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
