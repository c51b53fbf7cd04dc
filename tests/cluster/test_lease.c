/*
 * test_lease.c - the lease rules on a fake monotonic clock: renewal only
 * while quorate, expiry at release time after a freeze, and the
 * secondary's takeover only after lease + margin from the primary's
 * departure, never while it is a member or without quorum.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lease.h"

#define MS 1000000ull

static void test_release_needs_a_renewal(void **state)
{
	struct colo_lease l;

	(void)state;
	colo_lease_init(&l, 1500 * MS, 500 * MS);
	assert_false(colo_lease_may_release(&l, 0));
	assert_false(colo_lease_may_release(&l, 10 * MS));
	colo_lease_renewed(&l, 100 * MS, true);
	assert_true(colo_lease_may_release(&l, 100 * MS));
	assert_true(colo_lease_may_release(&l, 1599 * MS));
	assert_false(colo_lease_may_release(&l, 1600 * MS));
}

static void test_renewal_without_quorum_drops(void **state)
{
	struct colo_lease l;

	(void)state;
	colo_lease_init(&l, 1500 * MS, 500 * MS);
	colo_lease_renewed(&l, 100 * MS, true);
	colo_lease_renewed(&l, 400 * MS, false);
	assert_false(colo_lease_may_release(&l, 401 * MS));
	colo_lease_renewed(&l, 500 * MS, true);
	colo_lease_drop(&l);
	assert_false(colo_lease_may_release(&l, 501 * MS));
}

/* The deadline runs from the sending time, and an old renewal delivered
 * late never moves it back. */
static void test_deadline_from_sending_time(void **state)
{
	struct colo_lease l;

	(void)state;
	colo_lease_init(&l, 1000 * MS, 200 * MS);
	colo_lease_renewed(&l, 5000 * MS, true);
	colo_lease_renewed(&l, 4000 * MS, true);
	assert_int_equal(colo_lease_deadline(&l), 6000 * MS);
}

/* A primary frozen (SIGSTOP) with a valid lease, resumed 3 s later,
 * learns nothing new before its next release: the check against the
 * clock alone stops it. */
static void test_freeze_and_resume(void **state)
{
	struct colo_lease l;
	uint64_t t = 10000 * MS;

	(void)state;
	colo_lease_init(&l, 1500 * MS, 500 * MS);
	for (int i = 0; i < 8; i++, t += 375 * MS)
		colo_lease_renewed(&l, t, true);
	assert_true(colo_lease_may_release(&l, t));
	t += 3000 * MS; /* SIGSTOP ... SIGCONT */
	assert_false(colo_lease_may_release(&l, t));
	/* a renewal sent just before the freeze, delivered after it */
	colo_lease_renewed(&l, t - 3000 * MS, true);
	assert_false(colo_lease_may_release(&l, t));
}

static void test_takeover_waits_for_leave_lease_and_margin(void **state)
{
	struct colo_lease l;

	(void)state;
	colo_lease_init(&l, 1500 * MS, 500 * MS);
	colo_lease_peer_renewed(&l, 1000 * MS);
	/* still a member: never, however long the silence */
	assert_int_equal(colo_lease_takeover_at(&l), 0);
	assert_false(colo_lease_may_take_over(&l, 100000 * MS, true));
	colo_lease_peer_left(&l, 3000 * MS);
	assert_int_equal(colo_lease_takeover_at(&l), 5000 * MS);
	assert_false(colo_lease_may_take_over(&l, 4999 * MS, true));
	assert_true(colo_lease_may_take_over(&l, 5000 * MS, true));
	/* without quorum, never */
	assert_false(colo_lease_may_take_over(&l, 9000 * MS, false));
	/* it came back: the count starts over at the next departure */
	colo_lease_peer_joined(&l);
	assert_false(colo_lease_may_take_over(&l, 9000 * MS, true));
}

/* A renewal seen after the departure was noted (delivery order across
 * corosync services) counts from the later of the two. */
static void test_takeover_from_later_sight(void **state)
{
	struct colo_lease l;

	(void)state;
	colo_lease_init(&l, 1500 * MS, 500 * MS);
	colo_lease_peer_left(&l, 3000 * MS);
	colo_lease_peer_renewed(&l, 3100 * MS);
	assert_int_equal(colo_lease_takeover_at(&l), 5100 * MS);
	/* a second departure notice does not restart the count */
	colo_lease_peer_left(&l, 4000 * MS);
	assert_int_equal(colo_lease_takeover_at(&l), 5100 * MS);
}

/* The two rules together: at every instant of a partition, at most one
 * side may serve, whatever the order of events on the fake clock. */
static void test_never_two_at_once(void **state)
{
	struct colo_lease a, b;
	uint64_t cut = 20000 * MS, t;

	(void)state;
	colo_lease_init(&a, 1500 * MS, 500 * MS);
	colo_lease_init(&b, 1500 * MS, 500 * MS);
	for (t = 0; t < cut; t += 375 * MS) {
		colo_lease_renewed(&a, t, true);
		colo_lease_peer_renewed(&b, t + 1 * MS);
	}
	/* A's last renewal before its ring breaks, unseen by B */
	colo_lease_renewed(&a, cut + 900 * MS, true);
	colo_lease_peer_left(&b, cut + 1000 * MS);
	for (t = cut; t < cut + 10000 * MS; t += 1 * MS)
		assert_false(colo_lease_may_release(&a, t) &&
			     colo_lease_may_take_over(&b, t, true));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_release_needs_a_renewal),
		cmocka_unit_test(test_renewal_without_quorum_drops),
		cmocka_unit_test(test_deadline_from_sending_time),
		cmocka_unit_test(test_freeze_and_resume),
		cmocka_unit_test(
			test_takeover_waits_for_leave_lease_and_margin),
		cmocka_unit_test(test_takeover_from_later_sight),
		cmocka_unit_test(test_never_two_at_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
