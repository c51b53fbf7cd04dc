/*
 * test_align.c - per-flow sequence alignment and clock alignment of two
 * captures (align.c), and that the replay then finds what the live
 * comparer would: handshakes (passive and active opens), captures that
 * begin mid-connection (one candidate offset, or a repeating stream with
 * several), and a secondary clock seconds ahead.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyzer.h"
#include "packet.h"
#include "packet_build.h"

#define MS	 1000000ull
#define T0	 (1700000000ull * 1000000000ull)
#define DATA_LEN 4000

struct pair {
	struct colo_capture cap[2];
	struct colo_capture *rw[2];
	const struct colo_capture *side[2];
	struct colo_alignment al;
	struct colo_analysis a;
	uint8_t data[DATA_LEN];
};

/* What the guests send: pseudo-random (no repeats), or a period. */
static void pair_init(struct pair *p, size_t period)
{
	uint32_t x = 12345;

	memset(p, 0, sizeof(*p));
	for (int s = 0; s < 2; s++) {
		colo_capture_init(&p->cap[s]);
		p->rw[s] = &p->cap[s];
		p->side[s] = &p->cap[s];
	}
	for (size_t i = 0; i < DATA_LEN; i++) {
		x = x * 1103515245u + 12345u;
		p->data[i] = period ? (uint8_t)('a' + i % period % 26)
				    : (uint8_t)(x >> 16);
	}
}

static void pair_free(struct pair *p)
{
	colo_alignment_free(&p->al);
	colo_analysis_free(&p->a);
	colo_capture_free(&p->cap[0]);
	colo_capture_free(&p->cap[1]);
}

static void spec(struct colo_pkt_spec *s, uint32_t seq, uint8_t flags,
		 uint32_t tsval)
{
	colo_pkt_spec_default(s);
	s->sport = 80;
	s->dport = 40000;
	s->seq = seq;
	s->ack = 777;
	s->tcp_flags = flags;
	s->tcp_timestamp = 1;
	s->ts_val = tsval;
	s->ts_ecr = 99;
}

static size_t build(uint8_t *frame, uint32_t seq, uint8_t flags, uint32_t tsval,
		    const uint8_t *pl, size_t len)
{
	struct colo_pkt_spec s;
	size_t n;

	spec(&s, seq, flags, tsval);
	n = colo_pkt_build(&s, pl, len, frame, 2048);
	assert_true(n > 0);
	return n;
}

static void add(struct colo_capture *c, uint64_t t_ms, uint32_t seq,
		uint8_t flags, uint32_t tsval, const uint8_t *pl, size_t len)
{
	uint8_t frame[2048];
	size_t n = build(frame, seq, flags, tsval, pl, len);

	assert_int_equal(colo_capture_add(c, T0 + t_ms * MS, frame, n, n), 0);
}

/* Stream bytes [from, to) in segments of seg bytes, stream byte 0 at
 * sequence number seq0, one frame per millisecond from t_ms. */
static void add_stream(struct pair *p, int side, uint64_t t_ms, uint32_t seq0,
		       size_t from, size_t to, size_t seg, uint32_t ts)
{
	for (size_t at = from; at < to; at += seg, t_ms++) {
		size_t n = to - at < seg ? to - at : seg;

		add(&p->cap[side], t_ms, seq0 + (uint32_t)at,
		    COLO_TCP_ACK | COLO_TCP_PSH, ts, p->data + at, n);
	}
}

static void align(struct pair *p, enum colo_align_mode mode, bool skew_auto,
		  int64_t skew_ns)
{
	struct colo_align_config cfg;

	colo_align_config_default(&cfg);
	cfg.mode = mode;
	cfg.skew_auto = skew_auto;
	cfg.skew_ns = skew_ns;
	assert_int_equal(colo_align(p->rw, &cfg, &p->al), 0);
}

static void replay(struct pair *p)
{
	struct colo_analyze_config cfg;

	colo_analyze_config_default(&cfg);
	assert_int_equal(colo_analyze_run(p->side, &cfg, &p->a), 0);
}

static uint64_t requests(const struct pair *p)
{
	uint64_t n = 0;

	for (int i = 0; i < COLO_CAUSE_COUNT; i++)
		n += p->a.stats.checkpoint_requests[i];
	return n;
}

/* Passive open: the offset from the two SYN/ACKs, seq and TSval; the
 * shifted secondary frames are byte for byte what a guest using the
 * primary's numbers would send (checksums included). */
static void test_handshake_passive(void **state)
{
	struct pair *p = malloc(sizeof(*p));
	uint8_t want[2048];
	size_t n;

	(void)state;
	pair_init(p, 0);
	add(&p->cap[0], 0, 1000, COLO_TCP_SYN | COLO_TCP_ACK, 500, NULL, 0);
	add_stream(p, 0, 1, 1001, 0, 3000, 1448, 510);
	add(&p->cap[1], 0, 3000000000u, COLO_TCP_SYN | COLO_TCP_ACK, 77, NULL,
	    0);
	add_stream(p, 1, 1, 3000000001u, 0, 3000, 1000, 87);
	align(p, COLO_ALIGN_AUTO, true, 0);

	assert_int_equal(p->al.n, 1);
	assert_int_equal(p->al.flows[0].how, COLO_ALIGNED_HANDSHAKE);
	assert_int_equal(p->al.flows[0].off.seq, 3000000000u - 1000);
	assert_true(p->al.flows[0].off.ts_ok);
	assert_int_equal(p->al.flows[0].off.ts, 77u - 500u);
	n = build(want, 1001 + 1000, COLO_TCP_ACK | COLO_TCP_PSH, 510,
		  p->data + 1000, 1000);
	assert_int_equal(p->cap[1].frames[2].len, n);
	assert_memory_equal(p->cap[1].frames[2].data, want, n);

	replay(p);
	assert_int_equal(p->a.stats.matched_bytes, 3000);
	assert_int_equal(requests(p), 0);
	pair_free(p);
	free(p);
}

/* Active open (the guest's SYN), segments of different sizes. */
static void test_handshake_active(void **state)
{
	struct pair *p = malloc(sizeof(*p));

	(void)state;
	pair_init(p, 0);
	add(&p->cap[0], 0, 5, COLO_TCP_SYN, 1, NULL, 0);
	add_stream(p, 0, 1, 6, 0, 2000, 700, 2);
	add(&p->cap[1], 0, 0xfffffff0u, COLO_TCP_SYN, 1, NULL, 0);
	add_stream(p, 1, 1, 0xfffffff1u, 0, 2000, 300, 2);
	align(p, COLO_ALIGN_AUTO, true, 0);
	assert_int_equal(p->al.flows[0].how, COLO_ALIGNED_HANDSHAKE);
	assert_int_equal(p->al.flows[0].off.seq, 0xfffffff0u - 5);
	replay(p);
	assert_int_equal(p->a.stats.matched_bytes, 2000);
	assert_int_equal(requests(p), 0);
	pair_free(p);
	free(p);
}

/* Without alignment the same captures diverge: the check above is not
 * vacuous. */
static void test_none_keeps_raw(void **state)
{
	struct pair *p = malloc(sizeof(*p));

	(void)state;
	pair_init(p, 0);
	add(&p->cap[0], 0, 1000, COLO_TCP_SYN | COLO_TCP_ACK, 500, NULL, 0);
	add_stream(p, 0, 1, 1001, 0, 1000, 500, 510);
	add(&p->cap[1], 0, 9000, COLO_TCP_SYN | COLO_TCP_ACK, 77, NULL, 0);
	add_stream(p, 1, 1, 9001, 0, 1000, 500, 87);
	align(p, COLO_ALIGN_NONE, true, 0);
	assert_int_equal(p->al.flows[0].how, COLO_ALIGN_AS_CAPTURED);
	replay(p);
	assert_int_equal(p->a.stats.matched_bytes, 0);
	assert_true(requests(p) > 0);
	pair_free(p);
	free(p);
}

/* Mid-connection, unique data: the primary's first bytes are found once
 * in the secondary's stream, which began earlier. */
static void test_inferred_unique(void **state)
{
	struct pair *p = malloc(sizeof(*p));
	const struct colo_flow_align *fa;
	uint8_t want[2048];
	size_t n;

	(void)state;
	pair_init(p, 0);
	add_stream(p, 0, 0, 70000, 1200, DATA_LEN, 1448, 1);
	add_stream(p, 1, 0, 123456789, 1000, DATA_LEN, 1000, 1);
	align(p, COLO_ALIGN_AUTO, true, 0);
	fa = &p->al.flows[0];
	assert_int_equal(fa->how, COLO_ALIGNED_INFERRED);
	assert_int_equal(fa->off.seq, 123456789u - 70000u);
	assert_int_equal(fa->pri_seq, 70000 + 1200);
	assert_int_equal(fa->sec_seq, 123456789 + 1200);
	assert_false(fa->off.ts_ok);
	assert_int_equal(fa->anchor[0], 0);
	assert_int_equal(fa->anchor[1], 0); /* holds secondary byte 1200 */
	replay(p);
	assert_int_equal(p->a.stats.matched_bytes, DATA_LEN - 1200);
	assert_int_equal(requests(p), 0);

	/* The other way round: the secondary's capture began later. */
	pair_free(p);
	pair_init(p, 0);
	add_stream(p, 0, 0, 70000, 0, DATA_LEN, 1448, 1);
	add_stream(p, 1, 0, 5, 2500, DATA_LEN, 1000, 1);
	align(p, COLO_ALIGN_AUTO, true, 0);
	fa = &p->al.flows[0];
	assert_int_equal(fa->how, COLO_ALIGNED_INFERRED);
	assert_int_equal(fa->off.seq, 5u - 70000u);
	assert_int_equal(fa->pri_seq, 70000 + 2500);
	assert_int_equal(fa->anchor[0], 1); /* 1448..2896 holds 2500 */
	/* replayed from the first primary frame after the match on */
	assert_int_equal(fa->start[0], 2);
	assert_int_equal(fa->skipped[0], 2);
	assert_int_equal(fa->skipped[1], 0);
	/* the secondary frame holding 2896 is cut to start there, with
	 * valid checksums */
	n = build(want, 70000 + 2896, COLO_TCP_ACK | COLO_TCP_PSH, 1,
		  p->data + 2896, 3500 - 2896);
	assert_int_equal(p->cap[1].frames[0].len, n);
	assert_memory_equal(p->cap[1].frames[0].data, want, n);
	replay(p);
	assert_int_equal(p->a.stats.matched_bytes, DATA_LEN - 2 * 1448);
	assert_int_equal(requests(p), 0);

	/* --align handshake leaves such a flow as captured */
	pair_free(p);
	pair_init(p, 0);
	add_stream(p, 0, 0, 70000, 0, DATA_LEN, 1448, 1);
	add_stream(p, 1, 0, 5, 0, DATA_LEN, 1000, 1);
	align(p, COLO_ALIGN_HANDSHAKE, true, 0);
	assert_int_equal(p->al.flows[0].how, COLO_ALIGN_AS_CAPTURED);
	pair_free(p);
	free(p);
}

/* A stream with a 100-byte period: every shift by 100 bytes fits, so the
 * flow is ambiguous, left as captured and not replayed. */
static void test_ambiguous(void **state)
{
	struct pair *p = malloc(sizeof(*p));
	const struct colo_flow_align *fa;

	(void)state;
	pair_init(p, 100);
	add_stream(p, 0, 0, 70000, 1000, DATA_LEN, 1448, 1);
	add_stream(p, 1, 0, 90000, 500, DATA_LEN, 1000, 1);
	align(p, COLO_ALIGN_AUTO, true, 0);
	fa = &p->al.flows[0];
	assert_int_equal(fa->how, COLO_ALIGN_AMBIGUOUS);
	assert_int_not_equal(fa->off.seq, fa->alt_seq);
	assert_int_equal((uint32_t)(fa->alt_seq - fa->off.seq) % 100, 0);
	{
		struct colo_packet pk;

		colo_packet_parse(p->cap[1].frames[0].data,
				  p->cap[1].frames[0].len, &pk);
		assert_int_equal(pk.seq, 90000 + 500); /* not shifted */
	}
	assert_true(p->cap[0].frames[0].skip && p->cap[1].frames[0].skip);
	replay(p);
	assert_int_equal(p->a.stats.frames_in[0], 0);
	assert_int_equal(requests(p), 0);
	pair_free(p);
	free(p);
}

/* Too few bytes to infer from, and a flow in one capture only. */
static void test_no_data_one_side(void **state)
{
	struct pair *p = malloc(sizeof(*p));

	(void)state;
	pair_init(p, 0);
	add_stream(p, 0, 0, 70000, 0, 8, 8, 1);
	add_stream(p, 1, 0, 5, 0, 8, 8, 1);
	add(&p->cap[0], 1, 1, COLO_TCP_ACK, 1, NULL, 0);
	p->cap[0].frames[1].data[34 + 1] ^= 1; /* another source port */
	align(p, COLO_ALIGN_AUTO, true, 0);
	assert_int_equal(p->al.n, 2);
	assert_int_equal(p->al.flows[0].how, COLO_ALIGN_NO_DATA);
	assert_int_equal(p->al.flows[1].how, COLO_ALIGN_ONE_SIDE);
	pair_free(p);
	free(p);
}

/* The secondary's clock is 5 s ahead: aligned on the first matching
 * frames, nothing times out; with one clock assumed, the primary's
 * frames wait 5 s for their match and time out. */
static void test_skew(void **state)
{
	struct pair *p = malloc(sizeof(*p));

	(void)state;
	for (int mode = 0; mode < 3; mode++) {
		pair_init(p, 0);
		add(&p->cap[0], 0, 1000, COLO_TCP_SYN | COLO_TCP_ACK, 5, NULL,
		    0);
		add_stream(p, 0, 1, 1001, 0, 3000, 1000, 5);
		add(&p->cap[1], 5002, 1000, COLO_TCP_SYN | COLO_TCP_ACK, 5,
		    NULL, 0);
		add_stream(p, 1, 5003, 1001, 0, 3000, 1000, 5);
		if (mode == 0)
			align(p, COLO_ALIGN_AUTO, true, 0);
		else if (mode == 1)
			align(p, COLO_ALIGN_AUTO, false, 5002 * MS);
		else
			align(p, COLO_ALIGN_AUTO, false, 0);
		if (mode == 0) {
			assert_true(p->al.skew_found);
			assert_int_equal(p->al.skew_ns, 5002 * MS);
			assert_int_equal(p->al.anchor[0], 0);
			assert_int_equal(p->al.anchor[1], 0);
		}
		replay(p);
		if (mode < 2) {
			assert_int_equal(p->cap[1].frames[0].ts_ns, T0);
			assert_int_equal(requests(p), 0);
			assert_int_equal(p->a.stats.matched_bytes, 3000);
		} else {
			assert_true(p->a.stats.checkpoint_requests
					    [COLO_CAUSE_TIMEOUT] > 0);
		}
		pair_free(p);
	}
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_passive),
		cmocka_unit_test(test_handshake_active),
		cmocka_unit_test(test_none_keeps_raw),
		cmocka_unit_test(test_inferred_unique),
		cmocka_unit_test(test_ambiguous),
		cmocka_unit_test(test_no_data_one_side),
		cmocka_unit_test(test_skew),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
