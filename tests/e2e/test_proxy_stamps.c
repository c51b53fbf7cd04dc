/*
 * test_proxy_stamps.c - the proxy's latency stamps (src/proxy/stamps.c):
 * the histograms' quantiles, every stage moving when its edges happen,
 * and nothing moving while stamps are off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "clock.h"
#include "stamps.h"

static struct colo_stamps st;

static void test_quantiles(void **state)
{
	struct colo_lat_hist h;

	(void)state;
	memset(&h, 0, sizeof(h));
	assert_int_equal(colo_lat_quantile(&h, 0.5), 0);
	for (uint64_t us = 1; us <= 100; us++)
		colo_lat_add(&h, us * 1000 + 500);
	assert_int_equal(h.n, 100);
	/* 1 us buckets: the median is the 51st value's bucket top. */
	assert_int_equal(colo_lat_quantile(&h, 0.5), 52000);
	assert_int_equal(colo_lat_quantile(&h, 0.99), 100500);
	assert_int_equal(h.max_ns, 100500);
	/* Beyond the linear range: a power-of-two bucket, capped by max. */
	colo_lat_add(&h, 10 * COLO_NS_PER_MS);
	assert_int_equal(colo_lat_quantile(&h, 1.0), 10 * COLO_NS_PER_MS);
	assert_true(colo_lat_quantile(&h, 0.999) >= 10 * COLO_NS_PER_MS);
}

static void test_off_moves_nothing(void **state)
{
	struct colo_stamps zero;
	struct json_object *o = json_object_new_object();

	(void)state;
	memset(&st, 0, sizeof(st));
	memset(&zero, 0, sizeof(zero));
	colo_stamps_read(&st, COLO_STAMP_CLIENT, colo_now_ns(), colo_wall_ns());
	assert_false(colo_stamps_tx(&st, COLO_STAMP_LINK, 100));
	colo_stamps_hold(&st, true);
	colo_stamps_release(&st);
	colo_stamps_end(&st, COLO_CALL_LINK_READ, colo_stamps_begin(&st));
	colo_stamps_sleep(&st);
	assert_memory_equal(&st, &zero, sizeof(st));
	colo_stamps_add_stats(o, &st);
	assert_null(json_object_object_get(o, "stamps"));
	json_object_put(o);
}

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };

	nanosleep(&ts, NULL);
}

static void test_stages_move(void **state)
{
	uint64_t wake, t0;
	struct json_object *o = json_object_new_object(), *s, *h, *n;

	(void)state;
	memset(&st, 0, sizeof(st));
	st.on = true;
	/* A client frame (the kernel got it 5 us ago) mirrored to the link
	 * and delivered to the guest in one wake-up. */
	wake = colo_now_ns();
	colo_stamps_read(&st, COLO_STAMP_CLIENT, wake, colo_wall_ns() - 5000);
	assert_int_equal(st.kernel[COLO_STAMP_CLIENT].n, 1);
	assert_true(st.kernel[COLO_STAMP_CLIENT].max_ns >= 4000);
	assert_true(st.kernel[COLO_STAMP_CLIENT].max_ns < COLO_NS_PER_S);
	assert_true(colo_stamps_tx(&st, COLO_STAMP_LINK, 148));
	assert_true(colo_stamps_tx(&st, COLO_STAMP_GUEST, 1));
	assert_false(colo_stamps_tx(&st, COLO_STAMP_CLIENT, 0));
	assert_int_equal(st.through[COLO_STAMP_CLIENT][COLO_STAMP_LINK].n, 1);
	assert_int_equal(st.through[COLO_STAMP_CLIENT][COLO_STAMP_GUEST].n, 1);
	/* The same count again: that output took nothing new. */
	assert_false(colo_stamps_tx(&st, COLO_STAMP_LINK, 148));
	assert_int_equal(st.through[COLO_STAMP_CLIENT][COLO_STAMP_LINK].n, 1);
	colo_stamps_sleep(&st);
	assert_int_equal(st.wake.n, 1);
	assert_int_equal(st.read_mask, 0);
	/* The guest answers and is held; the secondary's copy arrives over
	 * the link in a later wake-up and releases it. */
	pause_us(50);
	colo_stamps_read(&st, COLO_STAMP_GUEST, colo_now_ns(), 0);
	assert_int_equal(st.answer[COLO_STAMP_GUEST].n, 1);
	assert_int_equal(st.kernel[COLO_STAMP_GUEST].n, 0);
	colo_stamps_hold(&st, true);
	colo_stamps_sleep(&st);
	pause_us(50);
	wake = colo_now_ns();
	colo_stamps_read(&st, COLO_STAMP_LINK, wake, 0);
	assert_int_equal(st.answer[COLO_STAMP_LINK].n, 1);
	assert_true(st.answer[COLO_STAMP_LINK].max_ns >= 100000);
	t0 = colo_stamps_begin(&st);
	assert_true(t0 != 0);
	colo_stamps_end(&st, COLO_CALL_LINK_READ, t0);
	assert_int_equal(st.call[COLO_CALL_LINK_READ].n, 1);
	colo_stamps_release(&st);
	colo_stamps_release(&st); /* a second release has no hold left */
	assert_int_equal(st.held.n, 1);
	assert_true(st.held.max_ns >= 50000);
	assert_true(colo_stamps_tx(&st, COLO_STAMP_CLIENT, 1));
	assert_int_equal(st.through[COLO_STAMP_LINK][COLO_STAMP_CLIENT].n, 1);
	/* The guest's read happened in an earlier wake-up: not counted. */
	assert_int_equal(st.through[COLO_STAMP_GUEST][COLO_STAMP_CLIENT].n, 0);
	colo_stamps_sleep(&st);
	assert_int_equal(st.wake.n, 3);

	colo_stamps_add_stats(o, &st);
	assert_true(json_object_object_get_ex(o, "stamps", &s));
	assert_true(json_object_object_get_ex(s, "client_to_link", &h));
	assert_true(json_object_object_get_ex(h, "n", &n));
	assert_int_equal(json_object_get_int64(n), 1);
	assert_true(json_object_object_get_ex(s, "held", &h));
	assert_true(json_object_object_get_ex(s, "call_link_read", &h));
	assert_false(json_object_object_get_ex(s, "guest_to_client", &h));
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_off_moves_nothing),
		cmocka_unit_test(test_stages_move),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
