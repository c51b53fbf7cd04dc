/*
 * test_flow_table.c - the keyed flow table: SipHash vectors, growth far
 * past QEMU's 16384-connection reset, and reclaiming idle/closed flows.
 */
#include "harness.h"
#include "siphash.h"

#define P COLO_PRIMARY
#define S COLO_SECONDARY
#define MS 1000000ULL

static void siphash_vectors(void **state)
{
	(void)state;
	uint64_t key[2];
	uint8_t k[16], msg[15];

	for (int i = 0; i < 16; i++)
		k[i] = (uint8_t)i;
	for (int i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	memcpy(&key[0], k, 8); /* little-endian host */
	memcpy(&key[1], k + 8, 8);
	assert_true(colo_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
	assert_true(colo_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL);
}

/* 40000 connections each with a held frame: none is lost, all are
 * released when their secondary catches up. */
static void many_flows_never_reset(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f;
	enum { N = 40000 };

	colo_pkt_spec_default(&f);
	for (int i = 0; i < N; i++) {
		f.dport = (uint16_t)(1024 + i % 60000);
		f.dst[2] = (uint8_t)(i / 60000);
		h_tcp(h, P, &f, 1, 1, COLO_TCP_ACK, "req", 3, 0);
	}
	assert_int_equal(h_stats(h)->flows, N);
	assert_int_equal(h_stats(h)->held_frames, N);
	for (int i = 0; i < N; i++) {
		f.dport = (uint16_t)(1024 + i % 60000);
		f.dst[2] = (uint8_t)(i / 60000);
		h_tcp(h, S, &f, 1, 1, COLO_TCP_ACK, "req", 3, 0);
	}
	assert_int_equal(h->nrel, N);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

static void idle_and_closed_flows_reclaimed(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f, g;

	colo_pkt_spec_default(&f);
	g = f;
	g.dport = 9;
	/* a closed connection: FIN both ways */
	h_tcp(h, S, &f, 1, 1, COLO_TCP_ACK | COLO_TCP_FIN, "bye", 3, 0);
	h_tcp(h, P, &f, 1, 1, COLO_TCP_ACK | COLO_TCP_FIN, "bye", 3, 0);
	assert_int_equal(h->nrel, 1);
	/* an open idle one */
	h_tcp(h, S, &g, 1, 1, COLO_TCP_ACK, "hi", 2, 0);
	h_tcp(h, P, &g, 1, 1, COLO_TCP_ACK, "hi", 2, 0);
	assert_int_equal(h_stats(h)->flows, 2);
	colo_comparer_tick(h->c, h->now + 11000 * MS);
	assert_int_equal(h_stats(h)->flows, 1);
	colo_comparer_tick(h->c, h->now + 121000 * MS);
	assert_int_equal(h_stats(h)->flows, 0);
	assert_int_equal(h_stats(h)->flows_reclaimed, 2);
	h_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(siphash_vectors),
		cmocka_unit_test(many_flows_never_reset),
		cmocka_unit_test(idle_and_closed_flows_reclaimed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
