/*
 * test_digest.c - the granule digests a resync by digest compares: each
 * granule's SHA-256 (a large granule hashed in pieces must equal the
 * one-shot hash), a short last granule, which granules differ, and a
 * read error passed on.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "digest.h"
#include "memdev.h"
#include "repl_link.h"

static void sha256(const void *buf, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	assert_true(EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL));
	assert_int_equal(n, 32);
}

static void put(struct test_img *t, uint64_t off, uint8_t v)
{
	assert_int_equal(ti_pwrite(&t->dev, &v, 1, off, false), 0);
}

static void test_granules_and_diff(void **state)
{
	const uint32_t gran = 4096;
	const uint64_t size = 3 * gran + 100; /* a short fourth granule */
	struct test_img *a = test_img_new(size), *b = test_img_new(size);
	struct colo_digester *d = colo_digester_new();
	uint8_t da[4 * 32], db[4 * 32], want[32];
	uint8_t *zero = calloc(1, gran);

	(void)state;
	assert_non_null(d);
	assert_int_equal(
		colo_digest_range(d, &a->dev, 0, (uint32_t)size, gran, da), 0);
	sha256(zero, gran, want);
	assert_memory_equal(da, want, 32);
	sha256(zero, 100, want);
	assert_memory_equal(da + 3 * 32, want, 32);
	assert_int_equal(
		colo_digest_range(d, &b->dev, 0, (uint32_t)size, gran, db), 0);
	assert_int_equal(colo_digest_next_diff(da, db, 0, 4), 4);
	put(b, gran + 17, 1);	/* granule 1 */
	put(b, size - 1, 0xee); /* the short last one */
	assert_int_equal(
		colo_digest_range(d, &b->dev, 0, (uint32_t)size, gran, db), 0);
	assert_int_equal(colo_digest_next_diff(da, db, 0, 4), 1);
	assert_int_equal(colo_digest_next_diff(da, db, 2, 4), 3);
	assert_int_equal(colo_digest_next_diff(da, db, 4, 4), 4);
	/* a range from the middle: granules 1..2 of b */
	assert_int_equal(
		colo_digest_range(d, &b->dev, gran, 2 * gran, gran, db), 0);
	assert_int_equal(colo_digest_next_diff(da + 32, db, 0, 2), 0);
	assert_int_equal(colo_digest_next_diff(da + 32, db, 1, 2), 2);
	b->fail = EIO;
	assert_int_equal(colo_digest_range(d, &b->dev, 0, gran, gran, db),
			 -EIO);
	colo_digester_free(d);
	test_img_free(a);
	test_img_free(b);
	free(zero);
}

/* A granule larger than the digester's read buffer. */
static void test_large_granule(void **state)
{
	const uint32_t gran = 4U << 20;
	struct test_img *a = test_img_new(gran);
	struct colo_digester *d = colo_digester_new();
	uint8_t *buf = malloc(gran), got[32], want[32];

	(void)state;
	for (uint32_t i = 0; i < gran; i++)
		buf[i] = (uint8_t)(i * 31 + (i >> 20));
	assert_int_equal(ti_pwrite(&a->dev, buf, gran, 0, false), 0);
	assert_int_equal(colo_digest_range(d, &a->dev, 0, gran, gran, got), 0);
	sha256(buf, gran, want);
	assert_memory_equal(got, want, 32);
	colo_digester_free(d);
	test_img_free(a);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_granules_and_diff),
		cmocka_unit_test(test_large_granule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
