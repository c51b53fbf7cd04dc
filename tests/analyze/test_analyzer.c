/*
 * test_analyzer.c - the replay loop, the frame locator and the sample
 * traffic, through the analyzer's internal API.
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
#include "sample_traffic.h"

#define MS 1000000ull
#define T0 (1700000000ull * 1000000000ull)

struct pair {
	struct colo_capture cap[2];
	const struct colo_capture *side[2];
	struct colo_analysis a;
};

static void pair_init(struct pair *p)
{
	memset(p, 0, sizeof(*p));
	colo_capture_init(&p->cap[0]);
	colo_capture_init(&p->cap[1]);
	p->side[0] = &p->cap[0];
	p->side[1] = &p->cap[1];
}

static void pair_free(struct pair *p)
{
	colo_analysis_free(&p->a);
	colo_capture_free(&p->cap[0]);
	colo_capture_free(&p->cap[1]);
}

static void run(struct pair *p, uint64_t delay_ms)
{
	struct colo_analyze_config cfg;

	colo_analyze_config_default(&cfg);
	cfg.checkpoint_delay_ns = delay_ms * MS;
	assert_int_equal(colo_analyze_run(p->side, &cfg, &p->a), 0);
}

static uint64_t total(const uint64_t *by_cause)
{
	uint64_t n = 0;

	for (int i = 0; i < COLO_CAUSE_COUNT; i++)
		n += by_cause[i];
	return n;
}

static void add_udp_port(struct colo_capture *c, uint64_t t_ms,
			 uint16_t sport, const char *msg)
{
	struct colo_pkt_spec s;
	uint8_t frame[256];
	size_t n;

	colo_pkt_spec_default(&s);
	s.proto = 17;
	s.sport = sport;
	s.dport = 6000;
	n = colo_pkt_build(&s, (const uint8_t *)msg, strlen(msg), frame,
			   sizeof(frame));
	assert_true(n > 0);
	assert_int_equal(colo_capture_add(c, T0 + t_ms * MS, frame, n, n), 0);
}

static void add_udp(struct colo_capture *c, uint64_t t_ms, const char *msg)
{
	add_udp_port(c, t_ms, 5000, msg);
}

static const uint8_t *payload_byte(const struct pair *p, int s, size_t i,
				   size_t off)
{
	const struct colo_frame *f = &p->cap[s].frames[i];
	struct colo_packet pk;

	colo_packet_parse(f->data, f->len, &pk);
	assert_true(off < pk.payload_len);
	return pk.payload + off;
}

/* The shipped scenario: one payload checkpoint (the Date header),
 * everything the primary sent released. */
static void test_sample(void **state)
{
	struct colo_side_frame *list;
	const struct colo_finding *f;
	struct pair p;

	(void)state;
	pair_init(&p);
	assert_int_equal(colo_sample_generate(&p.cap[0], &p.cap[1]), 0);
	assert_int_equal(p.cap[0].n, 30);
	assert_int_equal(p.cap[1].n, 41);
	run(&p, 0);

	assert_int_equal(p.a.checkpoints, 1);
	assert_int_equal(p.a.n, 1);
	f = &p.a.findings[0];
	assert_true(f->d.requested);
	assert_int_equal(f->d.cause, COLO_CAUSE_PAYLOAD);
	assert_int_equal(f->d.kind, COLO_PKT_TCP);
	assert_int_equal(f->d.key.sport, 80);
	assert_int_equal(f->d.key.dport, 40002);
	assert_int_equal(f->d.primary_byte, '1');
	assert_int_equal(f->d.secondary_byte, '2');
	assert_int_equal(f->done_ns, f->d.now_ns);
	/* both frames found; the byte they point at is the reported one */
	assert_int_not_equal(f->frame[0], COLO_NO_FRAME);
	assert_int_not_equal(f->frame[1], COLO_NO_FRAME);
	assert_int_equal(*payload_byte(&p, 0, f->frame[0], f->byte[0]), '1');
	assert_int_equal(*payload_byte(&p, 1, f->frame[1], f->byte[1]), '2');
	assert_memory_equal(payload_byte(&p, 0, f->frame[0], f->byte[0] - 30),
			    "Date: ", 6);

	assert_int_equal(p.a.stats.frames_in[0], 30);
	assert_int_equal(p.a.stats.frames_in[1], 41);
	assert_int_equal(p.a.stats.released_frames, 30);
	assert_int_equal(p.a.stats.released_bytes, p.cap[0].bytes);
	assert_int_equal(total(p.a.stats.checkpoint_requests), 1);
	assert_int_equal(p.a.stats.checkpoint_requests[COLO_CAUSE_PAYLOAD], 1);
	assert_int_equal(total(p.a.stats.divergences), 1);
	assert_int_equal(p.a.stats.checkpoints_done, 1);
	assert_int_equal(p.a.stats.retransmits, 1);
	assert_int_equal(p.a.stats.non_ip[0], 2);
	assert_int_equal(p.a.stats.malformed[0] + p.a.stats.malformed[1], 0);
	assert_int_equal(p.a.stats.held_frames, 0);
	assert_int_equal(p.a.stats.flows_created, 7);

	assert_int_equal(colo_analysis_frames(&p.a, p.side, &list), 2);
	assert_int_equal(list[0].side, 0);
	assert_int_equal(list[1].side, 1);
	free(list);
	pair_free(&p);
}

/* Frames in time order, all parse, and the same bytes every time. */
static void test_sample_well_formed(void **state)
{
	struct pair p, q;

	(void)state;
	pair_init(&p);
	pair_init(&q);
	assert_int_equal(colo_sample_generate(&p.cap[0], &p.cap[1]), 0);
	assert_int_equal(colo_sample_generate(&q.cap[0], &q.cap[1]), 0);
	for (int s = 0; s < 2; s++) {
		size_t non_ip = 0;

		assert_int_equal(p.cap[s].n, q.cap[s].n);
		assert_true(p.cap[s].bytes < 100000);
		for (size_t i = 0; i < p.cap[s].n; i++) {
			const struct colo_frame *f = &p.cap[s].frames[i];
			struct colo_packet pk;

			if (i)
				assert_true(f[-1].ts_ns <= f->ts_ns);
			assert_int_equal(f->ts_ns % 1000, 0);
			assert_int_equal(f->len, q.cap[s].frames[i].len);
			assert_int_equal(f->ts_ns, q.cap[s].frames[i].ts_ns);
			assert_memory_equal(f->data, q.cap[s].frames[i].data,
					    f->len);
			colo_packet_parse(f->data, f->len, &pk);
			assert_int_not_equal(pk.kind, COLO_PKT_MALFORMED);
			assert_int_not_equal(pk.kind, COLO_PKT_OTHER_IP);
			non_ip += pk.kind == COLO_PKT_NON_IP;
		}
		assert_int_equal(non_ip, 2);
	}
	pair_free(&p);
	pair_free(&q);
}

/* A primary datagram the secondary never sends times out after the
 * capture ends; the held frame is found. */
static void test_timeout(void **state)
{
	const struct colo_finding *f;
	struct pair p;

	(void)state;
	pair_init(&p);
	add_udp(&p.cap[0], 0, "same");
	add_udp(&p.cap[1], 1, "same");
	add_udp(&p.cap[0], 10, "only the primary");
	run(&p, 0);
	assert_int_equal(p.a.n, 1);
	f = &p.a.findings[0];
	assert_int_equal(f->d.cause, COLO_CAUSE_TIMEOUT);
	assert_true(f->d.held_ns >= 3000 * MS);
	assert_int_equal(f->frame[0], 1);
	assert_int_equal(f->frame[1], COLO_NO_FRAME);
	assert_int_equal(p.a.stats.released_frames, 2);
	assert_int_equal(p.a.stats.held_frames, 0);
	pair_free(&p);
}

/* The third datagram differs at offset 5: both third frames are named. */
static void test_datagram_locate(void **state)
{
	const struct colo_finding *f;
	struct pair p;

	(void)state;
	pair_init(&p);
	for (int i = 0; i < 3; i++) {
		add_udp(&p.cap[0], 10 * (uint64_t)i, i < 2 ? "hello" : "hello!");
		add_udp(&p.cap[1], 10 * (uint64_t)i + 1,
			i < 2 ? "hello" : "hello?");
	}
	run(&p, 0);
	assert_int_equal(p.a.n, 1);
	f = &p.a.findings[0];
	assert_int_equal(f->d.cause, COLO_CAUSE_PAYLOAD);
	assert_int_equal(f->d.offset, 5);
	assert_int_equal(f->frame[0], 2);
	assert_int_equal(f->frame[1], 2);
	assert_int_equal(f->byte[0], 5);
	assert_int_equal(p.a.stats.released_frames, 3);
	pair_free(&p);
}

/* While a checkpoint is pending, a divergence in another flow does not
 * request a second one; with no delay, each divergence gets its own. */
static void test_checkpoint_delay(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p);
	add_udp(&p.cap[0], 0, "one A");
	add_udp(&p.cap[1], 1, "one B");
	add_udp_port(&p.cap[0], 20, 5001, "two A");
	add_udp_port(&p.cap[1], 21, 5001, "two B");
	run(&p, 100);
	assert_int_equal(p.a.checkpoints, 1);
	assert_int_equal(p.a.n, 2);
	assert_true(p.a.findings[0].d.requested);
	assert_false(p.a.findings[1].d.requested);
	assert_int_equal(p.a.findings[1].checkpoint, 1);
	assert_int_equal(p.a.findings[0].done_ns,
			 p.a.findings[0].d.now_ns + 100 * MS);
	assert_int_equal(p.a.stats.released_frames, 2);
	colo_analysis_free(&p.a);

	run(&p, 0);
	assert_int_equal(p.a.checkpoints, 2);
	assert_int_equal(p.a.stats.checkpoints_done, 2);
	assert_int_equal(p.a.stats.released_frames, 2);
	pair_free(&p);
}

static void test_empty(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p);
	run(&p, 0);
	assert_int_equal(p.a.n, 0);
	assert_int_equal(p.a.stats.frames_in[0], 0);
	pair_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_sample_well_formed),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_datagram_locate),
		cmocka_unit_test(test_checkpoint_delay),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
