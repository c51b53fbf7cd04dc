/*
 * test_rewriter.c - the secondary's TCP rewriter: learning offsets in
 * either order, rewriting seq/ack/SACK/timestamps with checksums that
 * verify from scratch (IPv4, IPv6 with extension headers, VLANs), partial
 * checksums, checkpoint, failover, reclaim, and random input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "packet.h"
#include "packet_build.h"
#include "byteorder.h"
#include "checksum.h"
#include "tcp_rewriter.h"

#define S_NS 1000000000ULL
#define VNET 10

/* Guest 10.0.0.1:80 (or [fd00::1]:80), client 10.0.0.2:40000. */
enum variant { V4, V4_VLAN, V4_QINQ, V6, V6_EXT, V6_VLAN, NVARIANTS };

struct frame {
	uint8_t b[2048];
	size_t len;
	size_t vnet;
};

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void spec_for(struct colo_pkt_spec *s, enum variant v, bool egress)
{
	colo_pkt_spec_default(s);
	if (v >= V6) {
		s->ipver = 6;
		memset(s->src, 0, 16);
		memset(s->dst, 0, 16);
		s->src[0] = 0xfd, s->src[15] = 1;
		s->dst[0] = 0xfd, s->dst[15] = 2;
	}
	if (v == V4_VLAN || v == V6_VLAN)
		s->vlan_outer = 7;
	if (v == V4_QINQ) {
		s->vlan_outer = 100;
		s->vlan_inner = 7;
	}
	if (!egress) {
		uint8_t a[16];

		memcpy(a, s->src, 16);
		memcpy(s->src, s->dst, 16);
		memcpy(s->dst, a, 16);
		s->sport = 40000;
		s->dport = 80;
	}
}

/* The TCP segment's offset in the frame and its length. */
static uint8_t *tcp_of(struct frame *f, size_t *l4_len, struct colo_packet *p)
{
	assert_int_equal(colo_packet_parse(f->b + f->vnet, f->len - f->vnet, p),
			 COLO_PKT_TCP);
	*l4_len = p->l4_len;
	return f->b + f->vnet + (size_t)(p->l4 - (f->b + f->vnet));
}

static uint32_t pseudo(const struct colo_packet *p, size_t l4_len)
{
	uint8_t t[8] = { 0 };
	size_t alen = p->ipver == 6 ? 16 : 4;
	uint32_t sum = colo_csum_add(0, p->src, alen);

	sum = colo_csum_add(sum, p->dst, alen);
	put32(t, (uint32_t)l4_len);
	t[7] = 6;
	return colo_csum_add(sum, t, 8);
}

static void fix_csum(struct frame *f)
{
	struct colo_packet p;
	size_t n;
	uint8_t *t = tcp_of(f, &n, &p);

	t[16] = t[17] = 0;
	uint16_t c = colo_csum_fold(colo_csum_add(pseudo(&p, n), t, n));
	t[16] = (uint8_t)(c >> 8);
	t[17] = (uint8_t)c;
}

/* Verifies the TCP checksum from scratch (and the IPv4 header's). */
static void assert_csum_ok(struct frame *f)
{
	struct colo_packet p;
	size_t n;
	uint8_t *t = tcp_of(f, &n, &p);

	assert_int_equal(colo_csum_fold(colo_csum_add(pseudo(&p, n), t, n)), 0);
	if (p.ipver == 4)
		assert_int_equal(colo_csum_fold(colo_csum_add(0, p.l3, 20)), 0);
}

/* Inserts an 8-byte destination-options header after the IPv6 header. */
static void add_v6_ext(struct frame *f)
{
	size_t ip = f->vnet + 14;

	while (f->b[ip - 2] == 0x81 || f->b[ip - 2] == 0x88)
		ip += 4;
	assert_int_equal(f->b[ip - 2] << 8 | f->b[ip - 1], 0x86dd);
	memmove(f->b + ip + 48, f->b + ip + 40, f->len - ip - 40);
	uint8_t *x = f->b + ip + 40;
	x[0] = f->b[ip + 6];
	x[1] = 0;
	x[2] = 1; /* PadN */
	x[3] = 4;
	memset(x + 4, 0, 4);
	f->b[ip + 6] = 60;
	uint16_t plen = (uint16_t)(f->b[ip + 4] << 8 | f->b[ip + 5]) + 8;
	f->b[ip + 4] = (uint8_t)(plen >> 8);
	f->b[ip + 5] = (uint8_t)plen;
	f->len += 8;
}

struct seg_opts {
	bool ts;
	uint32_t tsval, tsecr;
	unsigned nsack;
	uint32_t sack[8];
	bool vnet_partial; /* virtio-net header with NEEDS_CSUM */
	bool vnet;	   /* virtio-net header without flags */
};

/* Builds a TCP segment. Options are laid out as NOP, NOP, TS, NOP, SACK,
 * so that the SACK blocks sit at odd offsets, then padded with EOL. */
static void build(struct frame *f, enum variant v, bool egress, uint8_t flags,
		  uint32_t seq, uint32_t ack, const struct seg_opts *o,
		  const char *data)
{
	struct colo_pkt_spec s;
	uint8_t body[1500];
	size_t ol = 0, dl = data ? strlen(data) : 0;

	spec_for(&s, v, egress);
	s.tcp_flags = flags;
	s.seq = seq;
	s.ack = ack;
	if (o && o->ts) {
		body[ol++] = 1;
		body[ol++] = 1;
		body[ol++] = 8;
		body[ol++] = 10;
		put32(body + ol, o->tsval);
		put32(body + ol + 4, o->tsecr);
		ol += 8;
	}
	if (o && o->nsack) {
		body[ol++] = 1;
		body[ol++] = 5;
		body[ol++] = (uint8_t)(2 + 8 * o->nsack);
		for (unsigned i = 0; i < 2 * o->nsack; i++, ol += 4)
			put32(body + ol, o->sack[i]);
	}
	while (ol % 4)
		body[ol++] = 0;
	memcpy(body + ol, data ? data : "", dl);
	f->vnet = o && (o->vnet || o->vnet_partial) ? VNET : 0;
	memset(f->b, 0, f->vnet);
	if (o && o->vnet_partial)
		f->b[0] = 1;
	f->len = colo_pkt_build(&s, body, ol + dl, f->b + f->vnet,
				sizeof(f->b) - f->vnet - 8);
	assert_true(f->len > 0);
	f->len += f->vnet;
	size_t n;
	struct colo_packet p;
	uint8_t *t = tcp_of(f, &n, &p);
	t[12] = (uint8_t)((20 + ol) / 4 << 4);
	if (v == V6_EXT)
		add_v6_ext(f);
	fix_csum(f);
	if (o && o->vnet_partial) {
		/* What a guest with checksum offload emits: the field holds
		 * the pseudo-header sum only. */
		t = tcp_of(f, &n, &p);
		uint16_t ph = (uint16_t)~colo_csum_fold(pseudo(&p, n));
		t[16] = (uint8_t)(ph >> 8);
		t[17] = (uint8_t)ph;
	}
}

struct parsed {
	uint32_t seq, ack, tsval, tsecr;
	uint32_t sack[8];
	unsigned nsack;
	uint16_t csum;
};

static void parse(struct frame *f, struct parsed *r)
{
	struct colo_packet p;
	size_t n;
	uint8_t *t = tcp_of(f, &n, &p);
	size_t doff = (size_t)(t[12] >> 4) * 4, i = 20;

	memset(r, 0, sizeof(*r));
	r->seq = p.seq;
	r->ack = p.ack;
	r->csum = colo_get_be16(t + 16);
	while (i < doff && t[i]) {
		if (t[i] == 1) {
			i++;
			continue;
		}
		if (t[i] == 8) {
			r->tsval = colo_get_be32(t + i + 2);
			r->tsecr = colo_get_be32(t + i + 6);
		} else if (t[i] == 5) {
			r->nsack = (t[i + 1] - 2u) / 8;
			for (unsigned k = 0; k < 2 * r->nsack; k++)
				r->sack[k] = colo_get_be32(t + i + 2 + 4 * k);
		}
		i += t[i + 1];
	}
}

static struct colo_conn_meta meta_of(struct frame *f)
{
	struct colo_conn_meta m;

	assert_true(colo_conn_meta_from_frame(f->b, f->len, f->vnet, &m));
	return m;
}

/* The two guests of one connection. */
#define P_ISN 0x10000000u
#define S_ISN 0x7abc0000u
#define P_TS  1000u
#define S_TS  5000000u
#define C_ISN 0x55550000u
#define C_TS  777u

static struct seg_opts ts_opts(uint32_t tsval, uint32_t tsecr)
{
	struct seg_opts o = { .ts = true, .tsval = tsval, .tsecr = tsecr };

	return o;
}

/* Passive open; meta_first chooses the order. Leaves the connection
 * established. */
static void passive_open(struct colo_rewriter *rw, enum variant v,
			 bool meta_first)
{
	struct frame f, pf;
	struct parsed r;
	struct seg_opts o = ts_opts(C_TS, 0);

	build(&f, v, false, COLO_TCP_SYN, C_ISN, 0, &o, NULL);
	colo_rewriter_ingress(rw, f.b, f.len, f.vnet, S_NS);

	o = ts_opts(P_TS, C_TS);
	build(&pf, v, true, COLO_TCP_SYN | COLO_TCP_ACK, P_ISN, C_ISN + 1, &o,
	      NULL);
	struct colo_conn_meta m = meta_of(&pf);
	assert_int_equal(m.isn, P_ISN);
	assert_true(m.has_ts);
	assert_int_equal(m.tsval, P_TS);

	o = ts_opts(S_TS, C_TS);
	build(&f, v, true, COLO_TCP_SYN | COLO_TCP_ACK, S_ISN, C_ISN + 1, &o,
	      NULL);
	if (meta_first) {
		colo_rewriter_learn(rw, &m, S_NS);
	} else {
		assert_int_equal(
			colo_rewriter_egress(rw, f.b, f.len, f.vnet, S_NS),
			COLO_RW_WAIT);
		/* WAIT leaves the frame alone. */
		parse(&f, &r);
		assert_int_equal(r.seq, S_ISN);
		colo_rewriter_learn(rw, &m, S_NS);
	}
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, f.vnet, S_NS),
			 COLO_RW_PASS);
	assert_memory_equal(f.b, pf.b, f.len); /* same as the primary's */
	assert_csum_ok(&f);

	/* The client's ACK, in the primary's space, reaches the secondary
	 * in its own. */
	o = ts_opts(C_TS + 1, P_TS);
	build(&f, v, false, COLO_TCP_ACK, C_ISN + 1, P_ISN + 1, &o, NULL);
	colo_rewriter_ingress(rw, f.b, f.len, f.vnet, S_NS);
	parse(&f, &r);
	assert_int_equal(r.ack, S_ISN + 1);
	assert_int_equal(r.tsecr, S_TS);
	assert_int_equal(r.tsval, C_TS + 1);
	assert_int_equal(r.seq, C_ISN + 1);
	assert_csum_ok(&f);
}

static void passive_open_all_variants(void **state)
{
	(void)state;
	for (int order = 0; order < 2; order++) {
		for (int v = 0; v < NVARIANTS; v++) {
			struct colo_rewriter *rw = colo_rewriter_new();
			struct frame f;
			struct parsed r;
			struct seg_opts o = ts_opts(S_TS + 10, C_TS + 1);

			assert_non_null(rw);
			passive_open(rw, (enum variant)v, order);
			build(&f, (enum variant)v, true,
			      COLO_TCP_ACK | COLO_TCP_PSH, S_ISN + 1, C_ISN + 1,
			      &o, "hello");
			assert_int_equal(colo_rewriter_egress(rw, f.b, f.len,
							      f.vnet, S_NS),
					 COLO_RW_PASS);
			parse(&f, &r);
			assert_int_equal(r.seq, P_ISN + 1);
			assert_int_equal(r.tsval, P_TS + 10);
			assert_int_equal(r.tsecr, C_TS + 1); /* client's */
			assert_int_equal(r.ack, C_ISN + 1);  /* client's */
			assert_csum_ok(&f);
			const struct colo_rewriter_stats *st =
				colo_rewriter_stats(rw);
			assert_int_equal(st->conns, 1);
			assert_int_equal(st->waits, order ? 0 : 1);
			assert_int_equal(st->fallback_learns, 0);
			colo_rewriter_free(rw);
		}
	}
}

static void active_open(void **state)
{
	(void)state;
	for (int order = 0; order < 2; order++) {
		struct colo_rewriter *rw = colo_rewriter_new();
		struct frame f, pf;
		struct parsed r;
		struct seg_opts o = ts_opts(P_TS, 0);

		build(&pf, V6_EXT, true, COLO_TCP_SYN, P_ISN, 0, &o, NULL);
		struct colo_conn_meta m = meta_of(&pf);
		o = ts_opts(S_TS, 0);
		build(&f, V6_EXT, true, COLO_TCP_SYN, S_ISN, 0, &o, NULL);
		if (order)
			colo_rewriter_learn(rw, &m, S_NS);
		else
			assert_int_equal(
				colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
				COLO_RW_WAIT);
		colo_rewriter_learn(rw, &m, S_NS); /* duplicates are fine */
		assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
				 COLO_RW_PASS);
		assert_memory_equal(f.b, pf.b, f.len);

		/* The client's SYN/ACK acknowledges the primary's SYN. */
		o = ts_opts(C_TS, P_TS);
		build(&f, V6_EXT, false, COLO_TCP_SYN | COLO_TCP_ACK, C_ISN,
		      P_ISN + 1, &o, NULL);
		colo_rewriter_ingress(rw, f.b, f.len, 0, S_NS);
		parse(&f, &r);
		assert_int_equal(r.ack, S_ISN + 1);
		assert_int_equal(r.tsecr, S_TS);
		assert_int_equal(r.seq, C_ISN);
		assert_csum_ok(&f);
		colo_rewriter_free(rw);
	}
}

/* SACK edges at odd offsets, several blocks, and D-SACK below ack. */
static void sack_and_timestamps(void **state)
{
	(void)state;
	for (int v = 0; v < NVARIANTS; v++) {
		struct colo_rewriter *rw = colo_rewriter_new();
		struct frame f;
		struct parsed r;
		struct seg_opts o = ts_opts(C_TS + 5, P_TS + 3);

		passive_open(rw, (enum variant)v, true);
		o.nsack = 3;
		uint32_t edges[6] = { P_ISN + 1001, P_ISN + 2001, P_ISN + 3001,
				      P_ISN + 4001, P_ISN - 5,	  P_ISN + 1 };
		memcpy(o.sack, edges, sizeof(edges));
		build(&f, (enum variant)v, false, COLO_TCP_ACK, C_ISN + 1,
		      P_ISN + 1, &o, NULL);
		colo_rewriter_ingress(rw, f.b, f.len, 0, S_NS);
		parse(&f, &r);
		assert_int_equal(r.nsack, 3);
		for (int i = 0; i < 6; i++)
			assert_int_equal(r.sack[i], edges[i] - P_ISN + S_ISN);
		assert_int_equal(r.tsecr, S_TS + 3);
		assert_int_equal(r.tsval, C_TS + 5);
		assert_csum_ok(&f);
		colo_rewriter_free(rw);
	}
}

/* NEEDS_CSUM: the field is the pseudo-header sum and must not move; a
 * virtio header without the flag keeps a full checksum valid. */
static void partial_checksum_left_alone(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();
	struct frame f;
	struct parsed r, before;
	struct seg_opts o = ts_opts(S_TS + 1, C_TS);

	passive_open(rw, V4_VLAN, true);
	o.vnet_partial = true;
	build(&f, V4_VLAN, true, COLO_TCP_ACK, S_ISN + 1, C_ISN + 1, &o,
	      "data");
	parse(&f, &before);
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, f.vnet, S_NS),
			 COLO_RW_PASS);
	parse(&f, &r);
	assert_int_equal(r.seq, P_ISN + 1);
	assert_int_equal(r.tsval, P_TS + 1);
	assert_int_equal(r.csum, before.csum);

	o = ts_opts(C_TS, P_TS);
	o.vnet_partial = true;
	o.nsack = 1;
	o.sack[0] = P_ISN + 100;
	o.sack[1] = P_ISN + 200;
	build(&f, V4_VLAN, false, COLO_TCP_ACK, C_ISN + 1, P_ISN + 1, &o, NULL);
	parse(&f, &before);
	colo_rewriter_ingress(rw, f.b, f.len, f.vnet, S_NS);
	parse(&f, &r);
	assert_int_equal(r.ack, S_ISN + 1);
	assert_int_equal(r.sack[0], S_ISN + 100);
	assert_int_equal(r.csum, before.csum);

	o = ts_opts(S_TS + 2, C_TS);
	o.vnet = true;
	build(&f, V4_VLAN, true, COLO_TCP_ACK, S_ISN + 1, C_ISN + 1, &o, "x");
	colo_rewriter_egress(rw, f.b, f.len, f.vnet, S_NS);
	parse(&f, &r);
	assert_int_equal(r.seq, P_ISN + 1);
	assert_csum_ok(&f);
	colo_rewriter_free(rw);
}

static void sequence_wraparound(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();
	struct frame f, pf;
	struct parsed r;
	const uint32_t s_isn = 0xfffffff0u, p_isn = 0x00000010u;

	build(&pf, V4, true, COLO_TCP_SYN | COLO_TCP_ACK, p_isn, 1, NULL, NULL);
	struct colo_conn_meta m = meta_of(&pf);
	assert_false(m.has_ts);
	colo_rewriter_learn(rw, &m, S_NS);
	build(&f, V4, true, COLO_TCP_SYN | COLO_TCP_ACK, s_isn, 1, NULL, NULL);
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
			 COLO_RW_PASS);
	for (uint32_t i = 0; i < 64; i++) {
		build(&f, V4, true, COLO_TCP_ACK, s_isn + 1 + 8 * i, 1, NULL,
		      "8 bytes!");
		colo_rewriter_egress(rw, f.b, f.len, 0, S_NS);
		parse(&f, &r);
		assert_int_equal(r.seq, p_isn + 1 + 8 * i);
		assert_csum_ok(&f);
		build(&f, V4, false, COLO_TCP_ACK, 1, p_isn + 9 + 8 * i, NULL,
		      NULL);
		colo_rewriter_ingress(rw, f.b, f.len, 0, S_NS);
		parse(&f, &r);
		assert_int_equal(r.ack, s_isn + 9 + 8 * i);
		assert_csum_ok(&f);
	}
	colo_rewriter_free(rw);
}

static void checkpoint_resets_offsets(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();
	struct frame f, g;
	struct seg_opts o = ts_opts(P_TS + 9, C_TS);

	passive_open(rw, V6, false);
	colo_rewriter_checkpoint(rw);
	/* Now the secondary uses the primary's numbers. */
	build(&f, V6, true, COLO_TCP_ACK, P_ISN + 1, C_ISN + 1, &o, "abc");
	g = f;
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
			 COLO_RW_PASS);
	assert_memory_equal(f.b, g.b, f.len);
	o = ts_opts(C_TS, P_TS + 9);
	build(&f, V6, false, COLO_TCP_ACK, C_ISN + 1, P_ISN + 4, &o, NULL);
	g = f;
	colo_rewriter_ingress(rw, f.b, f.len, 0, S_NS);
	assert_memory_equal(f.b, g.b, f.len);

	/* A connection halfway through its handshake at the checkpoint
	 * does not wait for metadata any more. */
	struct colo_pkt_spec s;
	spec_for(&s, V4, true);
	s.dport = 40001;
	s.tcp_flags = COLO_TCP_SYN | COLO_TCP_ACK;
	s.seq = S_ISN;
	f.vnet = 0;
	f.len = colo_pkt_build(&s, NULL, 0, f.b, sizeof(f.b));
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
			 COLO_RW_WAIT);
	colo_rewriter_checkpoint(rw);
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
			 COLO_RW_PASS);
	assert_int_equal(colo_rewriter_stats(rw)->checkpoints, 2);

	/* Connections opened after the checkpoint are shifted again. */
	passive_open(rw, V4_QINQ, true);
	colo_rewriter_free(rw);
}

static void failover_behaviour(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();
	struct frame f, g;
	struct parsed r;
	struct colo_pkt_spec s;

	passive_open(rw, V4, true);
	/* A handshake whose metadata never came. */
	spec_for(&s, V4, true);
	s.dport = 40002;
	s.tcp_flags = COLO_TCP_SYN | COLO_TCP_ACK;
	s.seq = 12345;
	f.vnet = 0;
	f.len = colo_pkt_build(&s, NULL, 0, f.b, sizeof(f.b));
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
			 COLO_RW_WAIT);

	colo_rewriter_failover(rw);
	g = f;
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
			 COLO_RW_PASS);
	assert_memory_equal(f.b, g.b, f.len);

	/* New connections pass untouched and are not tracked. */
	uint64_t conns = colo_rewriter_stats(rw)->conns;
	s.dport = 40003;
	f.len = colo_pkt_build(&s, NULL, 0, f.b, sizeof(f.b));
	g = f;
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
			 COLO_RW_PASS);
	assert_memory_equal(f.b, g.b, f.len);
	struct colo_conn_meta m = meta_of(&f);
	m.isn = 1;
	colo_rewriter_learn(rw, &m, S_NS);
	assert_int_equal(colo_rewriter_stats(rw)->conns, conns);

	/* The shifted connection keeps being rewritten, even idle for
	 * hours. */
	colo_rewriter_tick(rw, 10000 * S_NS);
	struct seg_opts o = ts_opts(S_TS + 50, C_TS);
	build(&f, V4, true, COLO_TCP_ACK, S_ISN + 1, C_ISN + 1, &o, "late");
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, 10000 * S_NS),
			 COLO_RW_PASS);
	parse(&f, &r);
	assert_int_equal(r.seq, P_ISN + 1);
	assert_int_equal(r.tsval, P_TS + 50);
	assert_csum_ok(&f);
	assert_int_equal(colo_rewriter_stats(rw)->conns, 1);
	colo_rewriter_free(rw);
}

static void close_conn(struct colo_rewriter *rw, enum variant v, bool rst,
		       uint64_t now)
{
	struct frame f;

	if (rst) {
		build(&f, v, false, COLO_TCP_RST | COLO_TCP_ACK, C_ISN + 1,
		      P_ISN + 1, NULL, NULL);
		colo_rewriter_ingress(rw, f.b, f.len, 0, now);
		return;
	}
	build(&f, v, true, COLO_TCP_FIN | COLO_TCP_ACK, S_ISN + 1, C_ISN + 1,
	      NULL, NULL);
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, now),
			 COLO_RW_PASS);
	build(&f, v, false, COLO_TCP_FIN | COLO_TCP_ACK, C_ISN + 1, P_ISN + 2,
	      NULL, NULL);
	colo_rewriter_ingress(rw, f.b, f.len, 0, now);
	/* The last ACK, after both FINs, is still shifted. */
	build(&f, v, false, COLO_TCP_ACK, C_ISN + 2, P_ISN + 2, NULL, NULL);
	colo_rewriter_ingress(rw, f.b, f.len, 0, now);
	struct parsed r;
	parse(&f, &r);
	assert_int_equal(r.ack, S_ISN + 2);
}

static void reclaim(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();
	const struct colo_rewriter_stats *st = colo_rewriter_stats(rw);

	passive_open(rw, V4, true);
	close_conn(rw, V4, false, S_NS);
	colo_rewriter_tick(rw, 2 * S_NS);
	assert_int_equal(st->conns, 1); /* lingers for the last ACK */
	colo_rewriter_tick(rw, 20 * S_NS);
	assert_int_equal(st->conns, 0);
	assert_int_equal(st->conns_reclaimed, 1);

	passive_open(rw, V6_VLAN, true);
	close_conn(rw, V6_VLAN, true, S_NS);
	colo_rewriter_tick(rw, 20 * S_NS);
	assert_int_equal(st->conns, 0);

	/* Half-closed: the guest may still send for a long time. */
	struct frame f;
	passive_open(rw, V4_QINQ, false);
	build(&f, V4_QINQ, false, COLO_TCP_FIN | COLO_TCP_ACK, C_ISN + 1,
	      P_ISN + 1, NULL, NULL);
	colo_rewriter_ingress(rw, f.b, f.len, 0, S_NS);
	colo_rewriter_tick(rw, 200 * S_NS);
	assert_int_equal(st->conns, 1);
	colo_rewriter_tick(rw, 302 * S_NS);
	assert_int_equal(st->conns, 0);
	assert_int_equal(st->conns_created, 3);
	assert_int_equal(st->conns_reclaimed, 3);
	colo_rewriter_free(rw);
}

/* shifted: the open connections whose offsets are not 0, what `colo up`
 * waits for before it replaces a failed-over proxy (re-protection). */
static void shifted_count(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();
	const struct colo_rewriter_stats *st = colo_rewriter_stats(rw);

	passive_open(rw, V4, true);
	colo_rewriter_failover(rw);
	/* Counted on demand, before any tick has seen the connection (colo
	 * up asks right after a switch-over). */
	assert_int_equal(st->shifted, 0);
	assert_int_equal(colo_rewriter_count_shifted(rw), 1);
	assert_int_equal(st->shifted, 1);
	colo_rewriter_tick(rw, 2 * S_NS);
	assert_int_equal(st->shifted, 1);
	close_conn(rw, V4, false, 3 * S_NS);
	assert_int_equal(colo_rewriter_count_shifted(rw), 0);
	colo_rewriter_tick(rw, 4 * S_NS);
	assert_int_equal(st->shifted, 0); /* closed: lingers, not counted */
	assert_int_equal(st->conns, 1);
	colo_rewriter_free(rw);
}

/* The tuple is reused after close with new ISNs on both sides. */
static void reopened_tuple_relearned(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();

	passive_open(rw, V4, true);
	close_conn(rw, V4, false, S_NS);
	passive_open(rw, V4, false);
	close_conn(rw, V4, true, S_NS);
	passive_open(rw, V4, true);
	assert_int_equal(colo_rewriter_stats(rw)->conns, 1);
	colo_rewriter_free(rw);
}

/* Without metadata, the client's ACK of the SYN/ACK teaches the
 * primary's ISN and TSval, as QEMU does. */
static void fallback_from_client_ack(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();
	struct frame f;
	struct parsed r;
	struct seg_opts o = ts_opts(S_TS, C_TS);

	build(&f, V6_EXT, true, COLO_TCP_SYN | COLO_TCP_ACK, S_ISN, C_ISN + 1,
	      &o, NULL);
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
			 COLO_RW_WAIT);
	o = ts_opts(C_TS + 1, P_TS);
	build(&f, V6_EXT, false, COLO_TCP_ACK, C_ISN + 1, P_ISN + 1, &o, NULL);
	colo_rewriter_ingress(rw, f.b, f.len, 0, S_NS);
	parse(&f, &r);
	assert_int_equal(r.ack, S_ISN + 1);
	assert_int_equal(r.tsecr, S_TS);
	assert_csum_ok(&f);
	assert_int_equal(colo_rewriter_stats(rw)->fallback_learns, 1);
	o = ts_opts(S_TS + 1, C_TS + 1);
	build(&f, V6_EXT, true, COLO_TCP_ACK, S_ISN + 1, C_ISN + 1, &o, "x");
	assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
			 COLO_RW_PASS);
	parse(&f, &r);
	assert_int_equal(r.seq, P_ISN + 1);
	assert_int_equal(r.tsval, P_TS + 1);
	colo_rewriter_free(rw);
}

static void non_tcp_untouched(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();
	struct colo_pkt_spec s;
	struct frame f, g;
	struct colo_conn_meta m;
	const uint8_t protos[] = { 17, 1, 58, 47 };

	passive_open(rw, V4, true);
	for (size_t i = 0; i < sizeof(protos); i++) {
		for (int v6 = 0; v6 < 2; v6++) {
			spec_for(&s, v6 ? V6 : V4, true);
			s.proto = protos[i];
			f.len = colo_pkt_build(&s, (const uint8_t *)"payload",
					       7, f.b, sizeof(f.b));
			assert_true(f.len > 0);
			g = f;
			assert_int_equal(
				colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
				COLO_RW_PASS);
			colo_rewriter_ingress(rw, f.b, f.len, 0, S_NS);
			assert_memory_equal(f.b, g.b, f.len);
			assert_false(
				colo_conn_meta_from_frame(f.b, f.len, 0, &m));
		}
	}
	/* ARP */
	memset(f.b, 0xab, 60);
	f.b[12] = 0x08;
	f.b[13] = 0x06;
	g = f;
	colo_rewriter_egress(rw, f.b, 60, 0, S_NS);
	colo_rewriter_ingress(rw, f.b, 60, 0, S_NS);
	assert_memory_equal(f.b, g.b, 60);
	/* A non-SYN TCP segment is no metadata. */
	build(&f, V4, true, COLO_TCP_ACK, 1, 1, NULL, NULL);
	assert_false(colo_conn_meta_from_frame(f.b, f.len, 0, &m));
	assert_false(colo_conn_meta_from_frame(f.b, f.len, f.len + 1, &m));
	colo_rewriter_free(rw);
}

static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)*s;
}

static void random_frames_never_crash(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();
	uint64_t seed = 0x1234567887654321ULL;
	struct frame base[4];
	uint8_t *buf = malloc(2048);

	assert_non_null(buf);
	passive_open(rw, V4, true);
	build(&base[0], V4, true, COLO_TCP_ACK, S_ISN + 1, C_ISN + 1, NULL,
	      "x");
	struct seg_opts o = ts_opts(1, 2);
	o.nsack = 2;
	build(&base[1], V4_QINQ, false, COLO_TCP_ACK, 1, 2, &o, "y");
	build(&base[2], V6_EXT, true, COLO_TCP_SYN, S_ISN, 0, &o, NULL);
	o.vnet_partial = true;
	build(&base[3], V6_VLAN, false, COLO_TCP_ACK, 1, 2, &o, NULL);
	for (int i = 0; i < 200000; i++) {
		size_t len;
		struct frame *b = &base[rnd(&seed) % 4];

		if (rnd(&seed) % 3 == 0) {
			len = rnd(&seed) % 200;
			for (size_t k = 0; k < len; k++)
				buf[k] = (uint8_t)rnd(&seed);
		} else {
			len = b->len;
			memcpy(buf, b->b, len);
			for (int k = rnd(&seed) % 4; k >= 0; k--)
				buf[rnd(&seed) % len] = (uint8_t)rnd(&seed);
			if (rnd(&seed) % 4 == 0)
				len = rnd(&seed) % (len + 1);
		}
		/* An exactly sized heap copy, so ASan sees any overread. */
		uint8_t *x = malloc(len ? len : 1);
		assert_non_null(x);
		memcpy(x, buf, len);
		size_t vnet = rnd(&seed) % 3 == 0 ? rnd(&seed) % 16 : b->vnet;
		struct colo_conn_meta m;
		switch (rnd(&seed) % 4) {
		case 0:
			colo_rewriter_egress(rw, x, len, vnet, (uint64_t)i);
			break;
		case 1:
			colo_rewriter_ingress(rw, x, len, vnet, (uint64_t)i);
			break;
		case 2:
			if (colo_conn_meta_from_frame(x, len, vnet, &m))
				colo_rewriter_learn(rw, &m, (uint64_t)i);
			break;
		default:
			memcpy(&m, buf, len < sizeof(m) ? len : sizeof(m));
			colo_rewriter_learn(rw, &m, (uint64_t)i);
			break;
		}
		free(x);
		if (i % 50000 == 0)
			colo_rewriter_checkpoint(rw);
		if (i % 1000 == 0)
			colo_rewriter_tick(rw, (uint64_t)i * S_NS);
		if (i == 150000)
			colo_rewriter_failover(rw);
	}
	free(buf);
	colo_rewriter_free(rw);
}

/*
 * Two TCP senders with different ISNs and timestamp clocks send the same
 * byte stream in the same segments: after the secondary's egress is
 * rewritten, every segment's seq and TSval equal the primary's, and the
 * frames are byte-identical.
 */
static void two_senders_same_stream(void **state)
{
	(void)state;
	uint64_t seed = 42;
	char data[1001];

	for (size_t i = 0; i < sizeof(data) - 1; i++)
		data[i] = (char)('a' + i % 26);
	data[sizeof(data) - 1] = 0;
	for (int conn = 0; conn < 60; conn++) {
		struct colo_rewriter *rw = colo_rewriter_new();
		uint32_t p_isn = rnd(&seed), s_isn = rnd(&seed);
		uint32_t p_ts = rnd(&seed), s_ts = rnd(&seed);
		enum variant v = (enum variant)(conn % NVARIANTS);
		struct frame pf, sf;
		struct seg_opts o;

		if (conn % 3 == 0)
			p_isn = 0xffffff00u; /* the stream crosses the wrap */
		o = ts_opts(p_ts, 9);
		build(&pf, v, true, COLO_TCP_SYN | COLO_TCP_ACK, p_isn, 1, &o,
		      NULL);
		o = ts_opts(s_ts, 9);
		build(&sf, v, true, COLO_TCP_SYN | COLO_TCP_ACK, s_isn, 1, &o,
		      NULL);
		struct colo_conn_meta m = meta_of(&pf);
		if (conn & 1)
			colo_rewriter_learn(rw, &m, S_NS);
		if (colo_rewriter_egress(rw, sf.b, sf.len, 0, S_NS) ==
		    COLO_RW_WAIT) {
			colo_rewriter_learn(rw, &m, S_NS);
			assert_int_equal(
				colo_rewriter_egress(rw, sf.b, sf.len, 0, S_NS),
				COLO_RW_PASS);
		}
		assert_memory_equal(sf.b, pf.b, pf.len);

		uint32_t off = 1, tick = 1;
		for (int k = 0; k < 300; k++) {
			size_t n = rnd(&seed) % 1000;
			uint32_t at = off;

			if (rnd(&seed) % 8 == 0 && off > 1)
				at = off -
				     (uint32_t)(rnd(&seed) % off); /* rexmit */
			char save = data[n];
			data[n] = 0;
			uint8_t fl = COLO_TCP_ACK | (n ? COLO_TCP_PSH : 0);
			o = ts_opts(p_ts + tick, 9 + tick);
			build(&pf, v, true, fl, p_isn + at, 1 + tick, &o, data);
			o = ts_opts(s_ts + tick, 9 + tick);
			build(&sf, v, true, fl, s_isn + at, 1 + tick, &o, data);
			data[n] = save;
			assert_int_equal(colo_rewriter_egress(rw, sf.b, sf.len,
							      0, S_NS + tick),
					 COLO_RW_PASS);
			assert_int_equal(sf.len, pf.len);
			assert_memory_equal(sf.b, pf.b, pf.len);
			if (at == off)
				off += (uint32_t)n;
			tick += rnd(&seed) % 3;
		}
		colo_rewriter_free(rw);
	}
}

/* The table grows far past its first size; every entry keeps its own
 * offset. */
static void many_connections(void **state)
{
	(void)state;
	struct colo_rewriter *rw = colo_rewriter_new();
	struct colo_pkt_spec s;
	struct frame f;
	struct parsed r;
	enum { N = 20000 };

	spec_for(&s, V4, true);
	f.vnet = 0;
	for (uint32_t i = 0; i < N; i++) {
		struct colo_conn_meta m;

		s.dport = (uint16_t)(1024 + i % 50000);
		s.dst[2] = (uint8_t)(i / 50000 + 1);
		s.tcp_flags = COLO_TCP_SYN | COLO_TCP_ACK;
		s.seq = i * 7919;
		f.len = colo_pkt_build(&s, NULL, 0, f.b, sizeof(f.b));
		m = meta_of(&f);
		colo_rewriter_learn(rw, &m, S_NS);
		s.seq = i * 7919 + i * 3 + 1;
		f.len = colo_pkt_build(&s, NULL, 0, f.b, sizeof(f.b));
		assert_int_equal(colo_rewriter_egress(rw, f.b, f.len, 0, S_NS),
				 COLO_RW_PASS);
	}
	assert_int_equal(colo_rewriter_stats(rw)->conns, N);
	for (uint32_t i = 0; i < N; i++) {
		s.dport = (uint16_t)(1024 + i % 50000);
		s.dst[2] = (uint8_t)(i / 50000 + 1);
		s.tcp_flags = COLO_TCP_ACK;
		s.seq = i * 7919 + i * 3 + 2;
		f.len = colo_pkt_build(&s, NULL, 0, f.b, sizeof(f.b));
		colo_rewriter_egress(rw, f.b, f.len, 0, S_NS);
		parse(&f, &r);
		assert_int_equal(r.seq, i * 7919 + 1);
		assert_csum_ok(&f);
	}
	colo_rewriter_free(rw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(passive_open_all_variants),
		cmocka_unit_test(active_open),
		cmocka_unit_test(sack_and_timestamps),
		cmocka_unit_test(partial_checksum_left_alone),
		cmocka_unit_test(sequence_wraparound),
		cmocka_unit_test(checkpoint_resets_offsets),
		cmocka_unit_test(failover_behaviour),
		cmocka_unit_test(reclaim),
		cmocka_unit_test(shifted_count),
		cmocka_unit_test(reopened_tuple_relearned),
		cmocka_unit_test(fallback_from_client_ack),
		cmocka_unit_test(non_tcp_untouched),
		cmocka_unit_test(random_frames_never_crash),
		cmocka_unit_test(two_senders_same_stream),
		cmocka_unit_test(many_connections),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
