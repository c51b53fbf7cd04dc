/*
 * test_tcp_split.c - a held primary frame leaves in parts as the secondary
 * catches up (tcp_split.c). The parts must be frames a kernel accepts:
 * virtio-net GSO super-frames with an offloaded (partial) checksum, as
 * AF_PACKET hands them over, and plain frames with full checksums, over
 * IPv4 and IPv6, with VLAN tags.
 */
#include "checksum.h"
#include "harness.h"

#define P    COLO_PRIMARY
#define S    COLO_SECONDARY
#define VNET 12
#define MSS  1448

struct part {
	uint8_t f[70000];
	size_t len;
};

static struct part parts[64];
static size_t nparts;

static void rec_release(void *opaque, const uint8_t *frame, size_t len,
			size_t vnet)
{
	(void)opaque;
	assert_int_equal(vnet, VNET);
	assert_true(nparts < 64);
	memcpy(parts[nparts].f, frame, len);
	parts[nparts++].len = len;
}

static uint32_t pseudo(const struct colo_packet *p, size_t tcp_len)
{
	size_t alen = p->ipver == 4 ? 4 : 16;
	uint32_t sum = colo_csum_add(0, p->src, alen);

	sum = colo_csum_add(sum, p->dst, alen);
	return sum + 6 + (uint32_t)tcp_len;
}

/* Builds spec's segment carrying payload behind a virtio-net header the
 * way Linux hands a TSO frame to AF_PACKET: NEEDS_CSUM with the TCP
 * field holding the pseudo-header sum, and gso_type/gso_size set when
 * the payload is bigger than one MSS. */
static size_t vnet_frame(const struct colo_pkt_spec *s, const uint8_t *pl,
			 size_t n, uint8_t gso_type, uint8_t *out)
{
	struct colo_packet p;
	size_t len = colo_pkt_build(s, pl, n, out + VNET, 70000);

	assert_true(len > 0);
	memset(out, 0, VNET);
	assert_int_equal(colo_packet_parse(out + VNET, len, &p), COLO_PKT_TCP);
	uint16_t cs = (uint16_t)(p.l4 - (out + VNET));
	out[0] = 1; /* NEEDS_CSUM */
	out[1] = n > MSS ? gso_type : 0;
	out[4] = MSS & 0xff;
	out[5] = MSS >> 8;
	out[6] = (uint8_t)cs;
	out[7] = (uint8_t)(cs >> 8);
	out[8] = 16;
	uint16_t v = (uint16_t)~colo_csum_fold(pseudo(&p, p.l4_len));
	uint8_t *tcp = (uint8_t *)p.l4;
	tcp[16] = (uint8_t)(v >> 8);
	tcp[17] = (uint8_t)v;
	return len + VNET;
}

/* Checks every recorded part against the original stream. */
static void check_parts(const uint8_t *data, size_t total, uint32_t seq0,
			uint8_t gso_type, size_t vlan_tags)
{
	size_t off = 0;

	for (size_t i = 0; i < nparts; i++) {
		struct colo_packet p;
		const uint8_t *f = parts[i].f;
		bool last = i == nparts - 1;

		assert_int_equal(
			colo_packet_parse(f + VNET, parts[i].len - VNET, &p),
			COLO_PKT_TCP);
		assert_int_equal(p.nvlan, vlan_tags);
		assert_int_equal(p.seq, seq0 + (uint32_t)off);
		assert_memory_equal(p.payload, data + off, p.payload_len);
		/* nothing after the payload: lengths say exactly this much */
		assert_ptr_equal(p.payload + p.payload_len, f + parts[i].len);
		if (p.ipver == 4)
			assert_int_equal(colo_csum_fold(colo_csum_add(
						 0, p.l3, (p.l3[0] & 15) * 4u)),
					 0);
		assert_int_equal(f[0], 1);
		assert_int_equal(f[1], p.payload_len > MSS ? gso_type : 0);
		uint16_t want = (uint16_t)~colo_csum_fold(pseudo(&p, p.l4_len));
		assert_int_equal(p.l4[16] << 8 | p.l4[17], want);
		assert_int_equal(p.tcp_flags & (COLO_TCP_PSH | COLO_TCP_FIN),
				 last ? (COLO_TCP_PSH | COLO_TCP_FIN) : 0);
		off += p.payload_len;
	}
	assert_int_equal(off, total);
}

static void run(uint8_t ipver, uint16_t vlan, uint8_t gso_type)
{
	static uint8_t data[40000], frame[70000 + VNET];
	struct colo_comparer_ops ops = { rec_release, NULL };
	struct colo_comparer *c = colo_comparer_new(NULL, &ops, NULL);
	struct colo_pkt_spec s;
	const uint32_t seq0 = 0xfffff000u; /* wraps inside the frame */
	const size_t sec[] = { MSS, 3 * MSS, 100, MSS, 40000 };
	size_t off = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 5);
	colo_pkt_spec_default(&s);
	s.ipver = ipver;
	if (ipver == 6) {
		s.src[15] = 1;
		s.dst[15] = 2;
	}
	s.vlan_outer = vlan;
	s.tcp_timestamp = 1;
	s.ts_val = 7;
	s.seq = seq0;
	s.ack = 1;
	s.tcp_flags = COLO_TCP_ACK | COLO_TCP_PSH | COLO_TCP_FIN;
	nparts = 0;
	size_t n = vnet_frame(&s, data, sizeof(data), gso_type, frame);
	colo_comparer_input(c, P, frame, n, VNET, 1);
	assert_int_equal(nparts, 0);

	/* the secondary's segments, one by one: each releases its bytes */
	for (size_t i = 0; i < 5; i++) {
		struct colo_pkt_spec t = s;
		size_t k = sec[i];
		if (k > sizeof(data) - off)
			k = sizeof(data) - off;
		t.seq = seq0 + (uint32_t)off;
		t.tcp_flags = COLO_TCP_ACK;
		if (off + k == sizeof(data))
			t.tcp_flags |= COLO_TCP_PSH | COLO_TCP_FIN;
		n = vnet_frame(&t, data + off, k, gso_type, frame);
		colo_comparer_input(c, S, frame, n, VNET, 2);
		off += k;
		assert_int_equal(nparts, i + 1);
	}
	check_parts(data, sizeof(data), seq0, gso_type, vlan ? 1 : 0);
	const struct colo_stats *st = colo_comparer_stats(c);
	assert_int_equal(st->released_frames, 1);
	assert_int_equal(st->released_parts, 4);
	assert_int_equal(st->held_frames, 0);
	colo_comparer_free(c);
}

static void split_ipv4_gso(void **state)
{
	(void)state;
	run(4, 0, 1); /* VIRTIO_NET_HDR_GSO_TCPV4 */
}

static void split_ipv6_vlan_gso_ecn(void **state)
{
	(void)state;
	run(6, 42, 4 | 0x80); /* TCPV6 with the ECN bit */
}

/* A checkpoint releases the rest of a frame whose front already left. */
static void checkpoint_sends_rest(void **state)
{
	(void)state;
	static uint8_t data[9000], frame[70000 + VNET];
	struct colo_comparer_ops ops = { rec_release, NULL };
	struct colo_comparer *c = colo_comparer_new(NULL, &ops, NULL);
	struct colo_pkt_spec s;

	memset(data, 'x', sizeof(data));
	colo_pkt_spec_default(&s);
	s.seq = 100;
	s.ack = 1;
	s.tcp_flags = COLO_TCP_ACK | COLO_TCP_PSH | COLO_TCP_FIN;
	nparts = 0;
	size_t n = vnet_frame(&s, data, sizeof(data), 1, frame);
	colo_comparer_input(c, P, frame, n, VNET, 1);
	s.tcp_flags = COLO_TCP_ACK;
	n = vnet_frame(&s, data, 3000, 1, frame);
	colo_comparer_input(c, S, frame, n, VNET, 2);
	assert_int_equal(nparts, 1);
	colo_comparer_checkpoint_done(c, 3);
	assert_int_equal(nparts, 2);
	check_parts(data, sizeof(data), 100, 1, 0);
	colo_comparer_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split_ipv4_gso),
		cmocka_unit_test(split_ipv6_vlan_gso_ecn),
		cmocka_unit_test(checkpoint_sends_rest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
