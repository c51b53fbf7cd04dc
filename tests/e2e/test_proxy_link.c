/*
 * test_proxy_link.c - the replication link: framing, HELLO, metadata and
 * the buffered socket side over a socketpair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "link.h"
#include "proxy.h"

static void test_hdr_roundtrip(void **state)
{
	uint8_t buf[COLO_PLINK_HDR_LEN + 20];
	struct colo_plink_frame f;

	(void)state;
	colo_plink_encode_hdr(buf, COLO_PLINK_INGRESS, 0, 20);
	memset(buf + 8, 0xab, 20);
	assert_int_equal(colo_plink_decode(buf, sizeof(buf), &f), 28);
	assert_int_equal(f.type, COLO_PLINK_INGRESS);
	assert_int_equal(f.len, 20);
	assert_ptr_equal(f.payload, buf + 8);
	/* Every shorter prefix asks for more bytes. */
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(colo_plink_decode(buf, i, &f), 0);
}

static void test_rejects(void **state)
{
	uint8_t buf[64] = { 0 };
	struct colo_plink_frame f;

	(void)state;
	colo_plink_encode_hdr(buf, 0, 0, 0);
	assert_int_equal(colo_plink_decode(buf, 8, &f), -1);
	colo_plink_encode_hdr(buf, COLO_PLINK_TYPE_MAX + 1, 0, 0);
	assert_int_equal(colo_plink_decode(buf, 8, &f), -1);
	colo_plink_encode_hdr(buf, COLO_PLINK_INGRESS, 0,
			      COLO_PLINK_PAYLOAD_MAX + 1);
	assert_int_equal(colo_plink_decode(buf, 8, &f), -1);
	colo_plink_encode_hdr(buf, COLO_PLINK_INGRESS, 0, 10); /* < Ethernet */
	assert_int_equal(colo_plink_decode(buf, 8, &f), -1);
	colo_plink_encode_hdr(buf, COLO_PLINK_CHECKPOINT_DONE, 0, 1);
	assert_int_equal(colo_plink_decode(buf, 9, &f), -1);
	colo_plink_encode_hdr(buf, COLO_PLINK_PING, 0x80, 0); /* flags */
	assert_int_equal(colo_plink_decode(buf, 8, &f), -1);
	colo_plink_encode_hdr(buf, COLO_PLINK_PING, COLO_PLINK_F_VNET, 0);
	assert_int_equal(colo_plink_decode(buf, 8, &f), -1);
	colo_plink_encode_hdr(buf, COLO_PLINK_PING, 0, 0);
	buf[3] = 1; /* reserved */
	assert_int_equal(colo_plink_decode(buf, 8, &f), -1);
	colo_plink_encode_hdr(buf, COLO_PLINK_CONN_META, 0, 55);
	assert_int_equal(colo_plink_decode(buf, 63, &f), -1);
}

static void test_hello_meta(void **state)
{
	struct colo_plink_hello h = { 1, COLO_PLINK_ROLE_SECONDARY, 0,
				      0x0102030405060708ull },
				h2;
	uint8_t b[COLO_PLINK_HELLO_LEN], mb[COLO_PLINK_META_LEN];
	struct colo_conn_meta m = { 0 }, m2;

	(void)state;
	colo_plink_hello_encode(b, &h);
	assert_int_equal(colo_plink_hello_decode(b, sizeof(b), &h2), 0);
	assert_int_equal(h2.session, h.session);
	assert_int_equal(h2.role, COLO_PLINK_ROLE_SECONDARY);
	b[0] = 'X';
	assert_int_equal(colo_plink_hello_decode(b, sizeof(b), &h2), -1);

	m.key.ipver = 4;
	m.key.proto = 6;
	m.key.src[0] = 10;
	m.key.sport = 80;
	m.key.dport = 40000;
	m.isn = 0xdeadbeef;
	m.tsval = 1234;
	m.has_ts = true;
	colo_plink_meta_encode(mb, &m);
	assert_int_equal(colo_plink_meta_decode(mb, sizeof(mb), &m2), 0);
	assert_memory_equal(&m.key, &m2.key, sizeof(m.key));
	assert_int_equal(m2.isn, 0xdeadbeef);
	assert_true(m2.has_ts);
	mb[41] = 5;
	assert_int_equal(colo_plink_meta_decode(mb, sizeof(mb), &m2), -1);
}

struct seen {
	int n;
	uint8_t types[16];
	uint32_t lens[16];
};

static int on_frame(void *opaque, const struct colo_plink_frame *f)
{
	struct seen *s = opaque;

	s->types[s->n] = f->type;
	s->lens[s->n++] = f->len;
	return 0;
}

static void test_socket(void **state)
{
	struct colo_plink a, b;
	struct seen s = { 0 };
	static uint8_t big[65536 + 24];
	char err[128];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(colo_plink_init(&a), 0);
	assert_int_equal(colo_plink_init(&b), 0);
	colo_plink_attach(&a, sv[0], COLO_PLINK_ROLE_PRIMARY, 1, 0, NULL);
	colo_plink_attach(&b, sv[1], COLO_PLINK_ROLE_SECONDARY, 2, 0, NULL);
	memset(big, 0x5a, sizeof(big));
	assert_int_equal(colo_plink_queue(&a, COLO_PLINK_INGRESS,
					  COLO_PLINK_F_VNET, big, 10, big + 10,
					  sizeof(big) - 10),
			 0);
	assert_int_equal(
		colo_plink_queue(&a, COLO_PLINK_PING, 0, NULL, 0, NULL, 0), 0);
	for (int i = 0; i < 50 && s.n < 2; i++) {
		assert_int_equal(colo_plink_flush(&a, 1), 0);
		assert_int_equal(
			colo_plink_read(&b, on_frame, &s, 1, err, sizeof(err)),
			0);
	}
	assert_int_equal(s.n, 2);
	assert_true(b.hello_rx);
	assert_int_equal(b.peer.role, COLO_PLINK_ROLE_PRIMARY);
	assert_int_equal(s.types[0], COLO_PLINK_INGRESS);
	assert_int_equal(s.lens[0], sizeof(big));
	assert_int_equal(s.types[1], COLO_PLINK_PING);
	/* A peer that closes is an error with a reason. */
	colo_plink_detach(&a);
	assert_int_equal(colo_plink_read(&b, on_frame, &s, 2, err, sizeof(err)),
			 -1);
	colo_plink_free(&a);
	colo_plink_free(&b);
}

/* The HELLO must match the pair: two primaries (or a peer that runs in
 * the clear against our TLS, which says auth 0) are refused before any
 * frame is handed on. */
static void test_hello_must_match(void **state)
{
	struct colo_plink a, b;
	struct seen s = { 0 };
	char err[128] = "";
	int sv[2], r = 0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(colo_plink_init(&a), 0);
	assert_int_equal(colo_plink_init(&b), 0);
	colo_plink_attach(&a, sv[0], COLO_PLINK_ROLE_PRIMARY, 1, 0, NULL);
	colo_plink_attach(&b, sv[1], COLO_PLINK_ROLE_PRIMARY, 2, 0, NULL);
	assert_int_equal(
		colo_plink_queue(&a, COLO_PLINK_FAILOVER, 0, NULL, 0, NULL, 0),
		0);
	assert_int_equal(colo_plink_flush(&a, 1), 0);
	for (int i = 0; i < 10 && r == 0; i++)
		r = colo_plink_read(&b, on_frame, &s, 1, err, sizeof(err));
	assert_int_equal(r, -1);
	assert_non_null(strstr(err, "primary too"));
	assert_false(colo_plink_verified(&b));
	assert_int_equal(s.n, 0);
	colo_plink_free(&a);
	colo_plink_free(&b);
}

static void test_announce(void **state)
{
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 0x10 };
	static const uint8_t ip4[4] = { 10, 77, 0, 10 };
	uint8_t ip6[16] = { 0xfd, 0x77 }, out[128];
	struct colo_guest_addrs a = { 0 };
	uint32_t s = 0;

	(void)state;
	ip6[15] = 0x10;
	assert_int_equal(colo_announce_garp(out, mac, ip4), 42);
	assert_memory_equal(out + 28, ip4, 4);
	assert_memory_equal(out + 38, ip4, 4);
	colo_guest_addrs_learn(&a, out, 42); /* ARP teaches the address */
	assert_int_equal(a.n4, 1);
	assert_true(a.mac_known);
	assert_int_equal(colo_announce_una(out, mac, ip6), 86);
	colo_guest_addrs_learn(&a, out, 86);
	assert_int_equal(a.n6, 1);
	/* The ICMPv6 checksum verifies over the pseudo-header. */
	for (int i = 22; i < 54; i += 2)
		s += (uint32_t)(out[i] << 8 | out[i + 1]);
	s += 32 + 58;
	for (int i = 54; i < 86; i += 2)
		s += (uint32_t)(out[i] << 8 | out[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	assert_int_equal(s, 0xffff);
}

static void test_neigh(void **state)
{
	static const uint8_t cmac[6] = { 2, 0, 0, 0, 0, 1 };
	static const uint8_t gmac[6] = { 2, 0, 0, 0, 0, 0x10 };
	static const uint8_t cip[4] = { 10, 77, 0, 1 };
	static const uint8_t gip[4] = { 10, 77, 0, 10 };
	struct colo_neigh nb = { 0 };
	uint8_t in[64] = { 0 }, req[42], out[128];

	(void)state;
	/* An IPv4 frame from the client teaches (10.77.0.1, its MAC). */
	memcpy(in, gmac, 6);
	memcpy(in + 6, cmac, 6);
	in[12] = 0x08;
	in[14] = 0x45;
	memcpy(in + 26, cip, 4);
	memcpy(in + 30, gip, 4);
	colo_neigh_learn(&nb, in, sizeof(in));
	assert_int_equal(nb.n, 1);
	/* The guest asks who has 10.77.0.1: answered from the table. */
	colo_announce_garp(req, gmac, gip);
	memcpy(req + 38, cip, 4);
	assert_int_equal(colo_neigh_answer(&nb, req, sizeof(req), out), 42);
	assert_memory_equal(out, gmac, 6);     /* to the guest */
	assert_memory_equal(out + 6, cmac, 6); /* from the client */
	assert_int_equal(out[21], 2);	       /* reply */
	assert_memory_equal(out + 22, cmac, 6);
	assert_memory_equal(out + 28, cip, 4);
	assert_memory_equal(out + 38, gip, 4);
	/* Unknown addresses stay unanswered. */
	req[41] = 99;
	assert_int_equal(colo_neigh_answer(&nb, req, sizeof(req), out), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_roundtrip),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_hello_meta),
		cmocka_unit_test(test_socket),
		cmocka_unit_test(test_hello_must_match),
		cmocka_unit_test(test_announce),
		cmocka_unit_test(test_neigh),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
