/*
 * test_frame_reader.c - the chardev framing parser against every way a
 * frame can arrive: split at any byte, batched, malformed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "frame_reader.h"

static size_t put_frame(uint8_t *out, const uint8_t *frame, uint32_t len,
			bool vnet, uint32_t vnet_len)
{
	size_t o = 0;

	out[o++] = (uint8_t)(len >> 24);
	out[o++] = (uint8_t)(len >> 16);
	out[o++] = (uint8_t)(len >> 8);
	out[o++] = (uint8_t)len;
	if (vnet) {
		out[o++] = (uint8_t)(vnet_len >> 24);
		out[o++] = (uint8_t)(vnet_len >> 16);
		out[o++] = (uint8_t)(vnet_len >> 8);
		out[o++] = (uint8_t)vnet_len;
	}
	if (len)
		memcpy(out + o, frame, len);
	return o + len;
}

static struct colo_frame_reader *new_reader(enum colo_framing fr)
{
	static struct colo_frame_reader r;

	assert_int_equal(
		colo_frame_reader_init(&r, fr, COLO_FRAME_READER_DEFAULT_CAP),
		0);
	return &r;
}

/* Three frames, fed in two pieces split at every byte boundary. */
static void split_everywhere(bool vnet)
{
	uint8_t f1[60], f2[1], f3[300], wire[512];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(f1); i++)
		f1[i] = (uint8_t)i;
	f2[0] = 0xAB;
	memset(f3, 0x5A, sizeof(f3));
	n += put_frame(wire + n, f1, sizeof(f1), vnet, 10);
	n += put_frame(wire + n, f2, sizeof(f2), vnet, 0);
	n += put_frame(wire + n, f3, sizeof(f3), vnet, 12);

	for (size_t cut = 0; cut <= n; cut++) {
		struct colo_frame_reader *r = new_reader(
			vnet ? COLO_FRAMING_VNET : COLO_FRAMING_PLAIN);
		struct colo_frame f;
		int got = 0;

		assert_int_equal(colo_frame_reader_feed(r, wire, cut), cut);
		while (colo_frame_reader_next(r, &f) == COLO_FRAME_OK)
			got++;
		assert_int_equal(colo_frame_reader_feed(r, wire + cut, n - cut),
				 n - cut);
		for (;;) {
			enum colo_frame_status st =
				colo_frame_reader_next(r, &f);

			if (st == COLO_FRAME_NEED_MORE)
				break;
			assert_int_equal(st, COLO_FRAME_OK);
			got++;
			if (f.len == sizeof(f3)) {
				assert_memory_equal(f.data, f3, sizeof(f3));
				assert_int_equal(f.vnet_hdr_len, vnet ? 12 : 0);
			}
		}
		assert_int_equal(got, 3);
		assert_int_equal(r->count.frames, 3);
		assert_int_equal(colo_frame_reader_pending(r), 0);
		assert_false(colo_frame_reader_eof(r));
		colo_frame_reader_free(r);
	}
}

static void test_split_plain(void **state)
{
	(void)state;
	split_everywhere(false);
}

static void test_split_vnet(void **state)
{
	(void)state;
	split_everywhere(true);
}

/* One byte at a time, checking the frame content each time. */
static void test_byte_by_byte(void **state)
{
	struct colo_frame_reader *r = new_reader(COLO_FRAMING_VNET);
	uint8_t frame[100], wire[200];
	struct colo_frame f;
	size_t n;
	int got = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)(i * 7);
	n = put_frame(wire, frame, sizeof(frame), true, 10);
	for (size_t i = 0; i < n; i++) {
		colo_frame_reader_feed(r, wire + i, 1);
		if (colo_frame_reader_next(r, &f) == COLO_FRAME_OK) {
			assert_int_equal(i, n - 1);
			assert_int_equal(f.len, sizeof(frame));
			assert_int_equal(f.vnet_hdr_len, 10);
			assert_memory_equal(f.data, frame, sizeof(frame));
			got++;
		}
	}
	assert_int_equal(got, 1);
	colo_frame_reader_free(r);
}

static void test_many_frames(void **state)
{
	struct colo_frame_reader *r = new_reader(COLO_FRAMING_PLAIN);
	static uint8_t wire[200000];
	uint8_t frame[1500];
	struct colo_frame f;
	size_t n = 0, off = 0;
	unsigned int got = 0;

	(void)state;
	for (unsigned int i = 0; i < 120; i++) {
		memset(frame, (int)i, sizeof(frame));
		n += put_frame(wire + n, frame, 60 + i * 10, false, 0);
	}
	/* Read-style: space/commit in big chunks, then drain. */
	while (off < n) {
		size_t avail, take;
		uint8_t *sp = colo_frame_reader_space(r, &avail);

		take = n - off < avail ? n - off : avail;
		memcpy(sp, wire + off, take);
		colo_frame_reader_commit(r, take);
		off += take;
		while (colo_frame_reader_next(r, &f) == COLO_FRAME_OK) {
			assert_int_equal(f.len, 60 + got * 10);
			assert_int_equal(f.data[0], (uint8_t)got);
			assert_int_equal(f.data[f.len - 1], (uint8_t)got);
			got++;
		}
	}
	assert_int_equal(got, 120);
	colo_frame_reader_free(r);
}

static void test_zero_length(void **state)
{
	for (int vnet = 0; vnet < 2; vnet++) {
		struct colo_frame_reader *r = new_reader(
			vnet ? COLO_FRAMING_VNET : COLO_FRAMING_PLAIN);
		uint8_t wire[64], one = 0x42;
		struct colo_frame f;
		size_t n = put_frame(wire, NULL, 0, vnet, 0);

		(void)state;
		n += put_frame(wire + n, &one, 1, vnet, 0);
		colo_frame_reader_feed(r, wire, n);
		assert_int_equal(colo_frame_reader_next(r, &f),
				 COLO_FRAME_SKIPPED);
		assert_int_equal(colo_frame_reader_next(r, &f), COLO_FRAME_OK);
		assert_int_equal(f.len, 1);
		assert_int_equal(f.data[0], 0x42);
		assert_int_equal(r->count.zero_len, 1);
		colo_frame_reader_free(r);
	}
}

static void test_oversize(void **state)
{
	struct colo_frame_reader *r = new_reader(COLO_FRAMING_PLAIN);
	uint8_t wire[64] = { 0 }, one = 1;
	struct colo_frame f;
	size_t avail;
	uint32_t big = COLO_FRAME_MAX + 1;

	(void)state;
	wire[0] = (uint8_t)(big >> 24);
	wire[1] = (uint8_t)(big >> 16);
	wire[2] = (uint8_t)(big >> 8);
	wire[3] = (uint8_t)big;
	colo_frame_reader_feed(r, wire, 20);
	assert_int_equal(colo_frame_reader_next(r, &f), COLO_FRAME_DESYNC);
	assert_int_equal(colo_frame_reader_next(r, &f), COLO_FRAME_DESYNC);
	assert_int_equal(r->count.oversize, 1);
	/* Dead until reset: takes nothing more. */
	colo_frame_reader_space(r, &avail);
	assert_int_equal(avail, 0);
	assert_int_equal(colo_frame_reader_feed(r, wire, 4), 0);
	colo_frame_reader_reset(r);
	colo_frame_reader_feed(r, wire, put_frame(wire, &one, 1, false, 0));
	assert_int_equal(colo_frame_reader_next(r, &f), COLO_FRAME_OK);

	/* Exactly the maximum is fine. */
	colo_frame_reader_reset(r);
	{
		static uint8_t max[COLO_FRAME_MAX + 4];
		size_t n = put_frame(max, max + 4, 0, false, 0);

		(void)n;
		max[0] = (uint8_t)(COLO_FRAME_MAX >> 24);
		max[1] = (uint8_t)(COLO_FRAME_MAX >> 16);
		max[2] = (uint8_t)(COLO_FRAME_MAX >> 8);
		max[3] = (uint8_t)COLO_FRAME_MAX;
		assert_int_equal(colo_frame_reader_feed(r, max, sizeof(max)),
				 sizeof(max));
		assert_int_equal(colo_frame_reader_next(r, &f), COLO_FRAME_OK);
		assert_int_equal(f.len, COLO_FRAME_MAX);
	}
	colo_frame_reader_free(r);
}

static void test_bad_vnet_len(void **state)
{
	struct colo_frame_reader *r = new_reader(COLO_FRAMING_VNET);
	uint8_t wire[128], frame[20] = { 0 };
	struct colo_frame f;
	size_t n = put_frame(wire, frame, sizeof(frame), true, 21);

	(void)state;
	n += put_frame(wire + n, frame, sizeof(frame), true, 20);
	colo_frame_reader_feed(r, wire, n);
	assert_int_equal(colo_frame_reader_next(r, &f), COLO_FRAME_SKIPPED);
	assert_int_equal(r->count.bad_vnet, 1);
	assert_int_equal(colo_frame_reader_next(r, &f), COLO_FRAME_OK);
	assert_int_equal(f.vnet_hdr_len, 20);
	assert_int_equal(colo_frame_reader_next(r, &f), COLO_FRAME_NEED_MORE);
	colo_frame_reader_free(r);
}

static void test_truncated_at_eof(void **state)
{
	struct colo_frame_reader *r = new_reader(COLO_FRAMING_PLAIN);
	uint8_t wire[2] = { 0, 0 };
	struct colo_frame f;

	(void)state;
	colo_frame_reader_feed(r, wire, 2);
	assert_int_equal(colo_frame_reader_next(r, &f), COLO_FRAME_NEED_MORE);
	assert_true(colo_frame_reader_eof(r));
	assert_int_equal(r->count.truncated, 1);
	assert_int_equal(colo_frame_reader_pending(r), 0);
	assert_false(colo_frame_reader_eof(r));
	colo_frame_reader_free(r);
}

/* Notify input: the vnet word may or may not be there. */
static void test_vnet_optional(void **state)
{
	struct colo_frame_reader *r = new_reader(COLO_FRAMING_VNET_OPTIONAL);
	const char *msg = "COLO_CHECKPOINT";
	uint8_t wire[128];
	struct colo_frame f;
	size_t n = 0;

	(void)state;
	n += put_frame(wire + n, (const uint8_t *)msg, 15, true, 0);
	n += put_frame(wire + n, (const uint8_t *)msg, 15, false, 0);
	n += put_frame(wire + n, NULL, 0, false, 0);
	n += put_frame(wire + n, (const uint8_t *)msg, 15, true, 0);
	for (size_t i = 0; i < n; i++)
		colo_frame_reader_feed(r, wire + i, 1);
	for (int i = 0; i < 3; i++) {
		enum colo_frame_status st = colo_frame_reader_next(r, &f);

		if (i == 2) {
			assert_int_equal(st, COLO_FRAME_SKIPPED);
			assert_int_equal(colo_frame_reader_next(r, &f),
					 COLO_FRAME_OK);
		} else {
			assert_int_equal(st, COLO_FRAME_OK);
		}
		assert_int_equal(f.len, 15);
		assert_memory_equal(f.data, msg, 15);
	}
	assert_int_equal(colo_frame_reader_next(r, &f), COLO_FRAME_NEED_MORE);
	colo_frame_reader_free(r);
}

static void test_init_rejects_small_cap(void **state)
{
	struct colo_frame_reader r;

	(void)state;
	assert_int_equal(colo_frame_reader_init(&r, COLO_FRAMING_PLAIN, 100),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_plain),
		cmocka_unit_test(test_split_vnet),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_many_frames),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_bad_vnet_len),
		cmocka_unit_test(test_truncated_at_eof),
		cmocka_unit_test(test_vnet_optional),
		cmocka_unit_test(test_init_rejects_small_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
