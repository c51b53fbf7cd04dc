/*
 * test_memory.c - memory the engine holds only while it needs it: byte
 * rings lent to a flow while its secondary leads and given back when
 * drained, free lists that keep a steady working set but return a burst,
 * a flow table that shrinks after a wave of connections, and a compact
 * idle flow.
 */
#include "harness.h"
#include "byte_ring.h"
#include "flow_state.h"
#include "free_cache.h"
#include "keyed_table.h"

#define P  COLO_PRIMARY
#define S  COLO_SECONDARY
#define MS 1000000ULL

/* At the end of a period, the objects that stayed on the list through it
 * become excess; trims free them, no more than their budget each. */
static void free_cache_trims_what_stayed_unused(void **state)
{
	(void)state;
	struct colo_free_cache fc = { .max = 10 };
	uint32_t budget = 100;
	void *o[11];

	for (int i = 0; i < 11; i++)
		o[i] = malloc(64);
	for (int i = 0; i < 10; i++)
		assert_true(colo_fc_put(&fc, o[i]));
	assert_false(colo_fc_put(&fc, o[10])); /* past the bound */
	free(o[10]);
	assert_int_equal(fc.n, 10);
	/* All ten arrived during this period: none was idle through it. */
	colo_fc_period(&fc);
	assert_int_equal(colo_fc_trim(&fc, &budget), 0);
	void *a = colo_fc_get(&fc), *b = colo_fc_get(&fc),
	     *c = colo_fc_get(&fc);
	assert_non_null(a);
	assert_true(a != b && b != c);
	assert_true(colo_fc_put(&fc, a) && colo_fc_put(&fc, b) &&
		    colo_fc_put(&fc, c));
	/* Seven never left the list this period; three were in use. With a
	 * budget of 4 per trim, they go in two trims. */
	colo_fc_period(&fc);
	budget = 4;
	assert_int_equal(colo_fc_trim(&fc, &budget), 4);
	assert_int_equal(budget, 0);
	assert_int_equal(colo_fc_trim(&fc, &budget), 0);
	budget = 4;
	assert_int_equal(colo_fc_trim(&fc, &budget), 3);
	assert_int_equal(budget, 1);
	assert_int_equal(fc.n, 3);
	/* A quiet period gives back the rest. */
	budget = 100;
	colo_fc_period(&fc);
	assert_int_equal(colo_fc_trim(&fc, &budget), 3);
	assert_int_equal(fc.n, 0);
	assert_null(colo_fc_get(&fc));
	colo_fc_destroy(&fc);
}

/* A ring exists only while it holds bytes; a drained one goes back to
 * the pool and the next push reuses it. */
static void ring_released_when_drained(void **state)
{
	(void)state;
	struct colo_ring_pool pool;
	struct colo_byte_ring *r = NULL;
	uint8_t data[100];

	memset(data, 'x', sizeof(data));
	colo_ring_pool_init(&pool);
	assert_int_equal(colo_ring_len(r), 0);
	assert_int_equal(colo_ring_push(&pool, &r, data, 100, 1 << 20), 0);
	assert_non_null(r);
	assert_int_equal(pool.in_use_bytes, COLO_RING_MIN);
	struct colo_byte_ring *first = r;
	colo_ring_consume(&pool, &r, 60);
	assert_non_null(r);
	assert_int_equal(colo_ring_len(r), 40);
	colo_ring_consume(&pool, &r, 40);
	assert_null(r);
	assert_int_equal(pool.in_use_bytes, 0);
	assert_int_equal(colo_ring_pool_cached(&pool), COLO_RING_MIN);
	assert_int_equal(colo_ring_push(&pool, &r, data, 10, 1 << 20), 0);
	assert_ptr_equal(r, first); /* from the pool, not malloc */
	assert_int_equal(colo_ring_pool_cached(&pool), 0);
	colo_ring_release(&pool, &r);
	assert_null(r);
	/* Two quiet periods: the cached ring is freed. */
	uint32_t budget = 100;
	colo_ring_pool_trim(&pool, true, &budget);
	assert_int_equal(colo_ring_pool_trim(&pool, true, &budget),
			 COLO_RING_MIN);
	assert_int_equal(budget, 99);
	assert_int_equal(colo_ring_pool_cached(&pool), 0);
	colo_ring_pool_destroy(&pool);
}

/* Growing keeps the bytes in order across the wrap, moves the ring to a
 * larger class, gives the small one back, and respects the bound. */
static void ring_grows_across_wrap(void **state)
{
	(void)state;
	struct colo_ring_pool pool;
	struct colo_byte_ring *r = NULL;
	static uint8_t in[20000];
	size_t head = 0, tail = 0;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + i / 251);
	colo_ring_pool_init(&pool);
	const size_t q = COLO_RING_MIN / 4;
	assert_int_equal(colo_ring_push(&pool, &r, in, 3 * q, 65536), 0);
	tail = 3 * q;
	colo_ring_consume(&pool, &r, 2 * q);
	head = 2 * q;
	assert_int_equal(colo_ring_push(&pool, &r, in + tail, 3 * q, 65536), 0);
	tail += 3 * q; /* wrapped inside the smallest ring, now full */
	assert_int_equal(r->cap, COLO_RING_MIN);
	assert_int_equal(colo_ring_push(&pool, &r, in + tail, 8 * q, 65536), 0);
	tail += 8 * q;
	assert_int_equal(r->cap, 4 * COLO_RING_MIN);
	assert_int_equal(pool.in_use_bytes, 4 * COLO_RING_MIN);
	assert_int_equal(colo_ring_pool_cached(&pool), COLO_RING_MIN);
	assert_int_equal(colo_ring_len(r), tail - head);
	assert_int_equal(colo_ring_compare(r, in + head, tail - head),
			 tail - head);
	assert_int_equal(colo_ring_byte(r, 5), in[head + 5]);
	/* Past the bound: refused, ring unchanged. */
	assert_int_equal(
		colo_ring_push(&pool, &r, in, 20000, 4 * COLO_RING_MIN), -1);
	assert_int_equal(colo_ring_len(r), tail - head);
	/* One differing byte is found at its index. */
	uint8_t probe[100];
	memcpy(probe, in + head, sizeof(probe));
	probe[77] ^= 1;
	assert_int_equal(colo_ring_compare(r, probe, sizeof(probe)), 77);
	colo_ring_consume(&pool, &r, tail - head);
	assert_null(r);
	colo_ring_pool_destroy(&pool);
}

static void flow_spec(struct colo_pkt_spec *f, int i)
{
	colo_pkt_spec_default(f);
	f->dport = (uint16_t)(1024 + i);
}

/* A burst of secondary bytes and held primary frames over many flows:
 * rings exist while bytes wait, go back when matched, and two scan
 * periods later nothing of the burst is cached any more. The flows are
 * still tracked and still compared. */
static void burst_returned_after_two_periods(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f;
	uint8_t data[1000];
	enum { N = 500 };

	memset(data, 'd', sizeof(data));
	for (int i = 0; i < N; i++) {
		flow_spec(&f, i);
		/* even flows: secondary ahead; odd: primary ahead */
		h_tcp(h, i % 2 ? P : S, &f, 1, 1, COLO_TCP_ACK, data, 1000, 0);
	}
	const struct colo_stats *st = h_stats(h);
	assert_int_equal(st->ring_bytes, (uint64_t)N / 2 * COLO_RING_MIN);
	assert_int_equal(st->secondary_buffered_bytes, N / 2 * 1000);
	assert_int_equal(st->held_frames, N / 2);
	for (int i = 0; i < N; i++) {
		flow_spec(&f, i);
		h_tcp(h, i % 2 ? S : P, &f, 1, 1, COLO_TCP_ACK, data, 1000, 0);
	}
	st = h_stats(h);
	assert_int_equal(h->nrel, N);
	assert_int_equal(h->nev, 0);
	assert_int_equal(st->ring_bytes, 0);
	assert_int_equal(st->held_frames, 0);
	assert_true(st->cached_bytes >= (uint64_t)N / 2 * COLO_RING_MIN);
	colo_comparer_tick(h->c, h->now);
	colo_comparer_tick(h->c, h->now + 1000 * MS);
	st = h_stats(h);
	assert_int_equal(st->cached_bytes, 0);
	assert_true(st->trimmed_bytes >= (uint64_t)N / 2 * COLO_RING_MIN);
	assert_int_equal(st->flows, N);
	/* Still compared: a difference at byte 1000+3 is found there. */
	flow_spec(&f, 42);
	h_tcp(h, S, &f, 1001, 1, COLO_TCP_ACK, "abcdef", 6, 0);
	h_tcp(h, P, &f, 1001, 1, COLO_TCP_ACK, "abcXef", 6, 0);
	assert_int_equal(h->nev, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_PAYLOAD);
	assert_int_equal(h->last.seq, 1004);
	h_free(h);
}

/* A connection that keeps alternating which side leads reuses one cached
 * ring period after period: nothing is freed, so nothing is allocated
 * again. */
static void steady_flow_keeps_its_ring(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f;
	uint8_t data[500];
	uint32_t seq = 1;

	memset(data, 's', sizeof(data));
	flow_spec(&f, 7);
	for (int period = 0; period < 5; period++) {
		for (int k = 0; k < 20; k++) {
			h_tcp(h, S, &f, seq, 1, COLO_TCP_ACK, data, 500, 0);
			assert_int_equal(h_stats(h)->ring_bytes, COLO_RING_MIN);
			h_tcp(h, P, &f, seq, 1, COLO_TCP_ACK, data, 500, 0);
			assert_int_equal(h_stats(h)->ring_bytes, 0);
			seq += 500;
		}
		h->now += 1000 * MS;
		colo_comparer_tick(h->c, h->now);
	}
	assert_int_equal(h->nrel, 100);
	assert_int_equal(h_stats(h)->trimmed_bytes, 0);
	assert_int_equal(h_stats(h)->cached_bytes, COLO_RING_MIN);
	h_free(h);
}

struct entry {
	struct colo_hnode hn;
	uint32_t key;
};

/* After a wave of entries leaves, the trim frees the cached entries and
 * shrinks the bucket array back to its floor; lookups still work. */
static void keyed_table_shrinks_after_wave(void **state)
{
	(void)state;
	struct colo_keyed_table t;
	const uint64_t key[2] = { 1, 2 };
	enum { N = 20000 };
	static struct entry *e[N];

	assert_int_equal(colo_kt_init(&t, key, sizeof(struct entry),
				      offsetof(struct entry, hn),
				      offsetof(struct entry, key),
				      sizeof(uint32_t)),
			 0);
	for (uint32_t i = 0; i < N; i++) {
		e[i] = colo_kt_insert(&t, &i, colo_kt_hash(&t, &i));
		assert_non_null(e[i]);
	}
	assert_true(t.nbuckets >= N);
	for (uint32_t i = 10; i < N; i++)
		colo_kt_remove(&t, e[i]);
	assert_int_equal(t.count, 10);
	assert_true(colo_kt_cached(&t) > 0);
	uint32_t budget = 1000000;
	colo_kt_trim(&t, true, &budget);
	assert_int_equal(t.nbuckets, 1024);
	colo_kt_trim(&t, true, &budget);
	assert_int_equal(colo_kt_cached(&t), 0);
	for (uint32_t i = 0; i < 10; i++)
		assert_ptr_equal(colo_kt_find(&t, &i, colo_kt_hash(&t, &i)),
				 e[i]);
	uint32_t gone = 500;
	assert_null(colo_kt_find(&t, &gone, colo_kt_hash(&t, &gone)));
	colo_kt_destroy(&t);
}

/* What an idle flow costs the engine: its entry and nothing else. */
static void idle_flow_is_compact(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f;

	assert_true(sizeof(struct colo_flow) <= 192);
	flow_spec(&f, 1);
	h_tcp(h, S, &f, 1, 1, COLO_TCP_ACK, "hello", 5, 0);
	h_tcp(h, P, &f, 1, 1, COLO_TCP_ACK, "hello", 5, 0);
	assert_int_equal(h_stats(h)->flows, 1);
	assert_int_equal(h_stats(h)->ring_bytes, 0);
	assert_int_equal(h_stats(h)->held_frames, 0);
	h_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(free_cache_trims_what_stayed_unused),
		cmocka_unit_test(ring_released_when_drained),
		cmocka_unit_test(ring_grows_across_wrap),
		cmocka_unit_test(burst_returned_after_two_periods),
		cmocka_unit_test(steady_flow_keeps_its_ring),
		cmocka_unit_test(keyed_table_shrinks_after_wave),
		cmocka_unit_test(idle_flow_is_compact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
