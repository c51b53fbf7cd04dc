/*
 * test_ingress_hold.c - the ingress cut's bookkeeping (ingress_hold.c):
 * which frames a guest gets around a checkpoint, whatever order the cut
 * (link) and checkpoint-done (control) arrive in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ingress_hold.h"

/* Frames are one byte: their number. */
static uint8_t got[64];
static size_t ngot;

static void to_guest(void *ctx, uint8_t *f, size_t len, size_t v)
{
	(void)ctx, (void)v;
	assert_int_equal(len, 1);
	got[ngot++] = f[0];
}

/* Feeds frame k: delivered now unless the hold takes it. */
static void frame(struct colo_ingress_hold *h, uint8_t k)
{
	if (!colo_hold_take(h, &k, 1, 0))
		to_guest(NULL, &k, 1, 0);
}

static void expect(const uint8_t *want, size_t n)
{
	assert_int_equal(ngot, n);
	assert_memory_equal(got, want, n);
	ngot = 0;
}

/* CUT, then done: held frames come after, in order, exactly once. */
static void test_cut_then_done(void **state)
{
	struct colo_ingress_hold h = { .secondary = true };

	(void)state;
	frame(&h, 1);
	colo_hold_cut(&h, 5, 0, to_guest, NULL);
	frame(&h, 2);
	frame(&h, 3);
	expect((const uint8_t[]){ 1 }, 1);
	colo_hold_done(&h, 5, 0, to_guest, NULL);
	frame(&h, 4);
	expect((const uint8_t[]){ 2, 3, 4 }, 3);
	assert_int_equal(h.held, 2);
	colo_hold_free(&h);
}

/* The secondary's done before the CUT it belongs to: what is still in
 * front of the CUT was the retired VM's and is dropped. */
static void test_done_before_cut(void **state)
{
	struct colo_ingress_hold h = { .secondary = true };

	(void)state;
	colo_hold_cut(&h, 1, 0, to_guest, NULL);
	colo_hold_done(&h, 1, 0, to_guest, NULL);
	frame(&h, 1);
	colo_hold_done(&h, 2, 0, to_guest, NULL);
	frame(&h, 2); /* before CUT 2: the old VM's */
	colo_hold_cut(&h, 2, 0, to_guest, NULL);
	frame(&h, 3);
	expect((const uint8_t[]){ 1, 3 }, 2);
	assert_int_equal(h.stale, 1);
	colo_hold_free(&h);
}

/* The resume of checkpoint 1 comes after CUT 2 (a slow secondary): it
 * must not release checkpoint 2's frames to the VM checkpoint 2 retires;
 * checkpoint 1's frames go on at CUT 2, checkpoint 2's at its resume. */
static void test_late_done(void **state)
{
	struct colo_ingress_hold h = { .secondary = true };

	(void)state;
	colo_hold_cut(&h, 1, 0, to_guest, NULL);
	frame(&h, 1);
	colo_hold_cut(&h, 2, 0, to_guest, NULL);
	frame(&h, 2);
	colo_hold_done(&h, 1, 0, to_guest, NULL);
	expect((const uint8_t[]){ 1 }, 1);
	colo_hold_done(&h, 2, 0, to_guest, NULL);
	expect((const uint8_t[]){ 2 }, 1);
	colo_hold_free(&h);
}

/* A primary never drops, and a second cut without a done (the checkpoint
 * failed before anyone said done) hands the first cut's frames on first. */
static void test_primary_and_repeated_cut(void **state)
{
	struct colo_ingress_hold h = { 0 };

	(void)state;
	colo_hold_cut(&h, 1, 0, to_guest, NULL);
	colo_hold_done(&h, 1, 0, to_guest, NULL);
	colo_hold_done(&h, 2, 0, to_guest, NULL); /* no cut 2: still passes */
	frame(&h, 1);
	colo_hold_cut(&h, 3, 0, to_guest, NULL);
	frame(&h, 2);
	colo_hold_cut(&h, 4, 0, to_guest, NULL);
	frame(&h, 3);
	expect((const uint8_t[]){ 1, 2 }, 2);
	colo_hold_reset(&h, to_guest, NULL);
	expect((const uint8_t[]){ 3 }, 1);
	assert_int_equal(h.state, COLO_CUT_PASS);
	colo_hold_free(&h);
}

/* A reset link forgets the numbers, not that the primary cuts: a resume
 * before its CUT still keeps the frames in front of the CUT from the new
 * VM. A primary that never cut is never waited for. */
static void test_resume_before_cut_after_reset(void **state)
{
	struct colo_ingress_hold h = { .secondary = true };
	struct colo_ingress_hold nocut = { .secondary = true };

	(void)state;
	colo_hold_cut(&h, 3, 0, to_guest, NULL);
	colo_hold_done(&h, 3, 0, to_guest, NULL);
	colo_hold_reset(&h, to_guest, NULL);
	colo_hold_done(&h, 4, 10, to_guest, NULL);
	frame(&h, 1); /* in front of CUT 4: in the checkpoint already */
	colo_hold_cut(&h, 4, 20, to_guest, NULL);
	frame(&h, 2);
	expect((const uint8_t[]){ 2 }, 1);
	assert_int_equal(h.stale, 1);
	colo_hold_free(&h);

	colo_hold_done(&nocut, 1, 0, to_guest, NULL);
	frame(&nocut, 1);
	expect((const uint8_t[]){ 1 }, 1);
	colo_hold_free(&nocut);
}

/* Deadlines: a cut never resumed lets its frames go at now + wait_ns; a
 * resume whose CUT never comes lets in what it kept, within
 * COLO_HOLD_LATE_CUT_NS; neither ends early. */
static void test_deadlines(void **state)
{
	struct colo_ingress_hold h = { .secondary = true, .wait_ns = 300 };

	(void)state;
	colo_hold_cut(&h, 1, 1000, to_guest, NULL);
	frame(&h, 1);
	assert_false(colo_hold_expire(&h, 1299, to_guest, NULL));
	expect(NULL, 0);
	assert_true(colo_hold_expire(&h, 1300, to_guest, NULL));
	expect((const uint8_t[]){ 1 }, 1);
	colo_hold_done(&h, 1, 1400, to_guest, NULL); /* late: harmless */
	frame(&h, 2);
	expect((const uint8_t[]){ 2 }, 1);

	colo_hold_done(&h, 2, 2000, to_guest, NULL);
	frame(&h, 3);
	assert_false(colo_hold_expire(&h, 1999 + COLO_HOLD_LATE_CUT_NS,
				      to_guest, NULL));
	expect(NULL, 0);
	assert_true(colo_hold_expire(&h, 2000 + COLO_HOLD_LATE_CUT_NS, to_guest,
				     NULL));
	expect((const uint8_t[]){ 3 }, 1);
	frame(&h, 4);
	expect((const uint8_t[]){ 4 }, 1);
	assert_int_equal(h.expired, 2);
	/* That primary seems to cut no more: the next resume waits for
	 * nothing, until a CUT comes again. */
	colo_hold_done(&h, 3, 3000 + COLO_HOLD_LATE_CUT_NS, to_guest, NULL);
	frame(&h, 5);
	expect((const uint8_t[]){ 5 }, 1);
	assert_int_equal(h.stale, 0);
	colo_hold_free(&h);
}

/* A CUT that comes after its resume's drop ran out is for the VM that
 * runs already: it holds nothing (a hold there would starve that VM
 * until the next checkpoint). */
static void test_cut_after_drop_expired(void **state)
{
	struct colo_ingress_hold h = { .secondary = true, .wait_ns = 30000 };

	(void)state;
	colo_hold_cut(&h, 4, 0, to_guest, NULL);
	colo_hold_done(&h, 4, 0, to_guest, NULL);
	colo_hold_done(&h, 5, 100, to_guest, NULL);
	frame(&h, 1);
	assert_true(colo_hold_expire(&h, 100 + COLO_HOLD_LATE_CUT_NS, to_guest,
				     NULL));
	expect((const uint8_t[]){ 1 }, 1);
	colo_hold_cut(&h, 5, 200 + COLO_HOLD_LATE_CUT_NS, to_guest, NULL);
	frame(&h, 2);
	expect((const uint8_t[]){ 2 }, 1);
	assert_int_equal(h.state, COLO_CUT_PASS);
	colo_hold_free(&h);
}

/* A reset between a CUT and its resume: the CUT was seen, so the resume
 * waits for no second one and the new VM's frames pass at once. */
static void test_reset_between_cut_and_resume(void **state)
{
	struct colo_ingress_hold h = { .secondary = true };

	(void)state;
	colo_hold_cut(&h, 3, 0, to_guest, NULL);
	colo_hold_done(&h, 3, 0, to_guest, NULL);
	colo_hold_cut(&h, 4, 10, to_guest, NULL);
	colo_hold_reset(&h, to_guest, NULL);
	colo_hold_done(&h, 4, 20, to_guest, NULL);
	frame(&h, 1);
	expect((const uint8_t[]){ 1 }, 1);
	assert_int_equal(h.state, COLO_CUT_PASS);
	colo_hold_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cut_then_done),
		cmocka_unit_test(test_done_before_cut),
		cmocka_unit_test(test_late_done),
		cmocka_unit_test(test_primary_and_repeated_cut),
		cmocka_unit_test(test_resume_before_cut_after_reset),
		cmocka_unit_test(test_deadlines),
		cmocka_unit_test(test_cut_after_drop_expired),
		cmocka_unit_test(test_reset_between_cut_and_resume),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
