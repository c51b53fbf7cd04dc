/*
 * test_pair_msg.c - the CPG message codec: every type round-trips
 * (SWITCH and YIELD carry a switch-over), and a frame of another length,
 * magic, version, type or role is refused, never half-decoded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "daemons.h"
#include "pair_msg.h"

static void test_round_trip(void **state)
{
	static const uint8_t types[] = { COLO_MSG_STATE, COLO_MSG_CLAIM,
					 COLO_MSG_SWITCH, COLO_MSG_YIELD };

	(void)state;
	for (size_t i = 0; i < sizeof(types); i++) {
		struct colo_pair_msg m = { .type = types[i],
					   .role = COLO_ROLE_SECONDARY,
					   .epoch = 0x0102030405060708ull,
					   .sent_ns = 42 + i },
				     d;
		uint8_t buf[COLO_PAIR_MSG_LEN];

		colo_pair_msg_encode(&m, buf);
		memset(&d, 0xff, sizeof(d));
		assert_int_equal(colo_pair_msg_decode(buf, sizeof(buf), &d), 0);
		assert_int_equal(d.type, m.type);
		assert_int_equal(d.role, m.role);
		assert_int_equal(d.epoch, m.epoch);
		assert_int_equal(d.sent_ns, m.sent_ns);
	}
}

static void test_refused(void **state)
{
	struct colo_pair_msg m = { .type = COLO_MSG_YIELD,
				   .role = COLO_ROLE_PRIMARY,
				   .epoch = 3 },
			     d;
	uint8_t buf[COLO_PAIR_MSG_LEN + 1], bad[COLO_PAIR_MSG_LEN];

	(void)state;
	colo_pair_msg_encode(&m, buf);
	assert_int_equal(colo_pair_msg_decode(buf, COLO_PAIR_MSG_LEN - 1, &d),
			 -1);
	buf[COLO_PAIR_MSG_LEN] = 0;
	assert_int_equal(colo_pair_msg_decode(buf, COLO_PAIR_MSG_LEN + 1, &d),
			 -1);
	/* magic, version, type 0 and 5, role 3 */
	static const struct {
		size_t at;
		uint8_t v;
	} flips[] = { { 0, 'X' }, { 4, 2 }, { 5, 0 }, { 5, 5 }, { 6, 3 } };
	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		memcpy(bad, buf, sizeof(bad));
		bad[flips[i].at] = flips[i].v;
		assert_int_equal(colo_pair_msg_decode(bad, sizeof(bad), &d),
				 -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
