/*
 * test_port_spec.c - port specs that must be refused before any device is
 * touched (so no root is needed): the tap: options in particular.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "port.h"

/* Opens SPEC, which must fail with an error message containing WANT. */
static void refused(const char *spec, const char *want)
{
	char err[256] = "";

	assert_null(colo_port_open(spec, err, sizeof(err)));
	if (!strstr(err, want))
		fail_msg("%s: error '%s' lacks '%s'", spec, err, want);
}

static void test_tap_bad_specs(void **state)
{
	(void)state;
	refused("tap:", "bad interface name");
	refused("tap:,mac=02:00:00:00:00:01", "bad interface name");
	refused("tap:averyveryverylongname", "bad interface name");
	refused("tap:t0,", "tap:IFNAME[,mac=");
	refused("tap:t0,up", "tap:IFNAME[,mac=");
	refused("tap:t0,mac=02:00:00:00:00", "tap:IFNAME[,mac=");
	refused("tap:t0,mac=02:00:00:00:00:01:02", "tap:IFNAME[,mac=");
	refused("tap:t0,mac=02:00:00:00:00:0g", "tap:IFNAME[,mac=");
	/* a multicast MAC cannot be a NIC's */
	refused("tap:t0,mac=01:00:5e:00:00:01", "unicast");
}

static void test_unknown_kind(void **state)
{
	(void)state;
	refused("vde:x", "unknown kind");
	refused("eth0", "expected packet:IFNAME");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tap_bad_specs),
		cmocka_unit_test(test_unknown_kind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
