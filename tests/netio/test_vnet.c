/*
 * test_vnet.c - virtio-net header round trip and the word-at-a-time
 * checksum against the engine's byte-wise one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checksum.h"
#include "packet_build.h"
#include "port.h"
#include "vnet.h"

static void test_roundtrip(void **state)
{
	struct colo_vnet_hdr h = { .flags = 1,
				   .gso_type = 0x84,
				   .hdr_len = 66,
				   .gso_size = 1448,
				   .csum_start = 34,
				   .csum_offset = 16 },
			     g;
	struct virtio_net_hdr v;
	uint8_t buf[COLO_VNET_HDR_LEN];

	(void)state;
	assert_int_equal(sizeof(struct virtio_net_hdr), COLO_VNET_HDR_LEN);
	colo_vnet_build(&h, buf);
	memcpy(&v, buf, sizeof(v));
	assert_int_equal(v.gso_size, 1448); /* host order, as the kernel */
	assert_int_equal(v.csum_start, 34);
	colo_vnet_parse(buf, &g);
	assert_memory_equal(&h, &g, sizeof(h));
	assert_true(colo_vnet_is_gso(&g));
	g.gso_type = VIRTIO_NET_HDR_GSO_ECN;
	assert_false(colo_vnet_is_gso(&g));
	g.gso_type = VIRTIO_NET_HDR_GSO_NONE;
	assert_false(colo_vnet_is_gso(&g));
}

static void test_csum_matches_bytewise(void **state)
{
	static uint8_t buf[70000];
	size_t len, start, i;

	(void)state;
	srand(7);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	for (i = 0; i < 2000; i++) {
		uint16_t mine, ref;

		start = (size_t)rand() % 64;
		len = i < 100 ? i : (size_t)rand() % (sizeof(buf) - 64);
		mine = colo_csum_finish(colo_csum_partial(buf + start, len, 0));
		ref = colo_csum_fold(colo_csum_add(0, buf + start, len));
		/* ours is in memory order: compare as stored */
		assert_int_equal(((const uint8_t *)&mine)[0], ref >> 8);
		assert_int_equal(((const uint8_t *)&mine)[1], ref & 0xff);
	}
	memset(buf, 0xff, 65536);
	assert_int_equal(colo_csum_finish(colo_csum_partial(buf, 65536, 0)), 0);
}

static void test_complete_bounds(void **state)
{
	uint8_t f[100], copy[100];
	struct colo_vnet_hdr h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM };

	(void)state;
	memset(f, 0xab, sizeof(f));
	memcpy(copy, f, sizeof(f));
	h.csum_start = 100;
	assert_int_equal(colo_vnet_csum_complete(f, sizeof(f), &h), -1);
	h.csum_start = 90;
	h.csum_offset = 9;
	assert_int_equal(colo_vnet_csum_complete(f, sizeof(f), &h), -1);
	h.csum_start = 0xffff;
	h.csum_offset = 0xffff;
	assert_int_equal(colo_vnet_csum_complete(f, sizeof(f), &h), -1);
	assert_memory_equal(f, copy, sizeof(f));
	h.csum_start = 90;
	h.csum_offset = 8;
	assert_int_equal(colo_vnet_csum_complete(f, sizeof(f), &h), 0);
	/* without NEEDS_CSUM nothing happens, whatever the offsets */
	h.flags = 0;
	h.csum_start = 0xffff;
	assert_int_equal(colo_vnet_csum_complete(f, 10, &h), 0);
}

static void test_complete_zero_is_ffff(void **state)
{
	/* data summing to 0xffff would give checksum 0: written 0xffff */
	uint8_t f[4] = { 0xff, 0xff, 0, 0 };
	struct colo_vnet_hdr h = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				   .csum_start = 0,
				   .csum_offset = 2 };

	(void)state;
	assert_int_equal(colo_vnet_csum_complete(f, sizeof(f), &h), 0);
	assert_int_equal(f[2], 0xff);
	assert_int_equal(f[3], 0xff);
}

/* A header from outside (the replication link) is checked like one a
 * guest wrote: these reached the secondary guest's port unchecked. */
static void test_check(void **state)
{
	uint8_t f[COLO_VNET_HDR_LEN + 100];
	struct colo_vnet_hdr ok = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				    .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
				    .hdr_len = 54,
				    .gso_size = 1448,
				    .csum_start = 34,
				    .csum_offset = 16 },
			     h;

	(void)state;
	memset(f, 0, sizeof(f));
	colo_vnet_build(&ok, f);
	assert_true(colo_vnet_check(f, sizeof(f)));
	assert_false(colo_vnet_check(f, COLO_VNET_HDR_LEN + 13));
	h = ok;
	h.csum_start = 95; /* field past the frame's end */
	colo_vnet_build(&h, f);
	assert_false(colo_vnet_check(f, sizeof(f)));
	h = ok;
	h.csum_offset = 0xffff;
	colo_vnet_build(&h, f);
	assert_false(colo_vnet_check(f, sizeof(f)));
	h = ok;
	h.csum_start = 2; /* inside the Ethernet header */
	colo_vnet_build(&h, f);
	assert_false(colo_vnet_check(f, sizeof(f)));
	h = ok;
	h.gso_size = 0;
	colo_vnet_build(&h, f);
	assert_false(colo_vnet_check(f, sizeof(f)));
	h = ok;
	h.gso_type = 7; /* unknown */
	colo_vnet_build(&h, f);
	assert_false(colo_vnet_check(f, sizeof(f)));
	h = ok;
	h.flags = 0x80;
	colo_vnet_build(&h, f);
	assert_false(colo_vnet_check(f, sizeof(f)));
	h = ok;
	h.hdr_len = 200;
	colo_vnet_build(&h, f);
	assert_false(colo_vnet_check(f, sizeof(f)));
	h = (struct colo_vnet_hdr){ 0 };
	colo_vnet_build(&h, f);
	assert_true(colo_vnet_check(f, sizeof(f)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_csum_matches_bytewise),
		cmocka_unit_test(test_complete_bounds),
		cmocka_unit_test(test_complete_zero_is_ffff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
