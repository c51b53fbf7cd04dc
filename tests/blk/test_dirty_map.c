/* test_dirty_map.c - the changed-region bitmap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <cmocka.h>

#include "dirty_map.h"

static void test_mark_and_walk(void **state)
{
	struct colo_dirty_map m;
	uint64_t pos = 0, off;
	uint32_t len;

	(void)state;
	assert_int_equal(colo_dirty_map_init(&m, 10 * 4096 + 100, 4096), 0);
	colo_dirty_map_mark(&m, 4095, 2);	/* granules 0 and 1 */
	colo_dirty_map_mark(&m, 10 * 4096, 50); /* the short tail */
	colo_dirty_map_mark(&m, 1 << 30, 10);	/* past the end: ignored */
	colo_dirty_map_mark(&m, 4096, 0);	/* empty: ignored */
	assert_int_equal(m.ndirty, 3);
	assert_true(colo_dirty_map_test(&m, 0));
	assert_false(colo_dirty_map_test(&m, 2 * 4096));
	assert_true(colo_dirty_map_next(&m, &pos, &off, &len));
	assert_int_equal(off, 0);
	assert_int_equal(len, 4096);
	assert_true(colo_dirty_map_next(&m, &pos, &off, &len));
	assert_int_equal(off, 4096);
	assert_true(colo_dirty_map_next(&m, &pos, &off, &len));
	assert_int_equal(off, 10 * 4096);
	assert_int_equal(len, 100);
	assert_false(colo_dirty_map_next(&m, &pos, &off, &len));
	colo_dirty_map_destroy(&m);
}

static void test_merge_clear_all(void **state)
{
	struct colo_dirty_map a, b;

	(void)state;
	assert_int_equal(colo_dirty_map_init(&a, 1 << 20, 512), 0);
	assert_int_equal(colo_dirty_map_init(&b, 1 << 20, 512), 0);
	colo_dirty_map_mark(&a, 0, 1024);
	colo_dirty_map_mark(&b, 512, 1024);
	colo_dirty_map_merge(&a, &b);
	assert_int_equal(a.ndirty, 3);
	colo_dirty_map_mark_all(&b);
	assert_int_equal(colo_dirty_map_bytes(&b), 1 << 20);
	colo_dirty_map_clear_all(&b);
	assert_int_equal(b.ndirty, 0);
	colo_dirty_map_destroy(&a);
	colo_dirty_map_destroy(&b);
}

/* 1 TiB at 64 KiB: 16 Mi bits, 2 MiB. */
static void test_large_disk(void **state)
{
	struct colo_dirty_map m;
	uint64_t pos = 0, off;
	uint32_t len;

	(void)state;
	assert_int_equal(colo_dirty_map_init(&m, 1ULL << 40, 65536), 0);
	assert_int_equal(m.nbits, 1 << 24);
	colo_dirty_map_mark(&m, (1ULL << 40) - 1, 1);
	assert_true(colo_dirty_map_next(&m, &pos, &off, &len));
	assert_int_equal(off, (1ULL << 40) - 65536);
	assert_false(colo_dirty_map_next(&m, &pos, &off, &len));
	colo_dirty_map_destroy(&m);
	assert_int_equal(colo_dirty_map_init(&m, 1 << 20, 1000), -EINVAL);
	assert_int_equal(colo_dirty_map_init(&m, 1 << 20, 256), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mark_and_walk),
		cmocka_unit_test(test_merge_clear_all),
		cmocka_unit_test(test_large_disk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
