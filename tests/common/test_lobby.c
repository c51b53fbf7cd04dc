/*
 * test_lobby.c - the lobby's seat choice: a free seat first, else the
 * oldest stranger gives way (a silent one before one that spoke), and a
 * proven host never does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lobby.h"

static void test_free_then_oldest_stranger(void **state)
{
	struct colo_lobby_seat s[3] = { 0 };
	bool evict;

	(void)state;
	assert_int_equal(colo_lobby_pick(s, 3, &evict), 0);
	assert_false(evict);
	colo_lobby_take(&s[0], 30, false);
	assert_int_equal(colo_lobby_pick(s, 3, &evict), 1);
	colo_lobby_take(&s[1], 10, false);
	colo_lobby_take(&s[2], 20, false);
	/* Full: the one taken first (seat 1) gives way. */
	assert_int_equal(colo_lobby_pick(s, 3, &evict), 1);
	assert_true(evict);
	/* Once proven it stays; the next oldest stranger goes. */
	s[1].proven = true;
	assert_int_equal(colo_lobby_pick(s, 3, &evict), 2);
	assert_true(evict);
	colo_lobby_leave(&s[0]);
	assert_int_equal(colo_lobby_pick(s, 3, &evict), 0);
	assert_false(evict);
}

/* A connection that sent bytes outlasts older silent ones. */
static void test_silent_strangers_go_first(void **state)
{
	struct colo_lobby_seat s[3] = { 0 };
	bool evict;

	(void)state;
	colo_lobby_take(&s[0], 10, false);
	colo_lobby_take(&s[1], 20, false);
	colo_lobby_take(&s[2], 30, false);
	s[0].heard = true;
	assert_int_equal(colo_lobby_pick(s, 3, &evict), 1);
	assert_true(evict);
	s[1].heard = s[2].heard = true;
	assert_int_equal(colo_lobby_pick(s, 3, &evict), 0);
	assert_true(evict);
}

static void test_proven_hosts_never_give_way(void **state)
{
	struct colo_lobby_seat s[2] = { 0 };
	bool evict = false;

	(void)state;
	colo_lobby_take(&s[0], 1, true);
	colo_lobby_take(&s[1], 2, true);
	assert_int_equal(colo_lobby_pick(s, 2, &evict), -1);
	assert_false(evict);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_free_then_oldest_stranger),
		cmocka_unit_test(test_silent_strangers_go_first),
		cmocka_unit_test(test_proven_hosts_never_give_way),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
