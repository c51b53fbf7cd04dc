/*
 * test_disk_buffer.c - the disk buffer's rules, checked against a model.
 *
 * The model is two byte arrays: what the primary's disk holds and what
 * the secondary guest must see. Primary writes change the first, guest
 * writes the second, a checkpoint copies the first into the second, and
 * after failover the image must equal the second byte for byte.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "disk_buffer.h"
#include "memdev.h"

struct model {
	struct test_img *img;
	struct colo_disk_buffer *db;
	struct colo_blk_dev *guest;
	uint64_t size;
	uint8_t *prim; /* the primary's disk */
	uint8_t *view; /* what the secondary guest must read */
};

static void model_init(struct model *m, uint64_t size, uint32_t gran)
{
	char err[256];

	m->size = size;
	m->img = test_img_new(size);
	m->db = colo_disk_buffer_new(&m->img->dev, gran, "/tmp", err,
				     sizeof(err));
	assert_non_null(m->db);
	m->guest = colo_disk_buffer_dev(m->db);
	m->prim = calloc(1, size);
	m->view = calloc(1, size);
}

static void model_free(struct model *m)
{
	colo_disk_buffer_free(m->db);
	test_img_free(m->img);
	free(m->prim);
	free(m->view);
}

static void fill(uint8_t *p, uint32_t len, uint8_t tag)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(tag + i * 7);
}

static void primary_write(struct model *m, uint64_t off, uint32_t len,
			  uint8_t tag)
{
	uint8_t *b = malloc(len);

	fill(b, len, tag);
	assert_int_equal(
		colo_disk_buffer_apply_primary_write(m->db, off, len, b), 0);
	memcpy(m->prim + off, b, len);
	free(b);
}

static void guest_write(struct model *m, uint64_t off, uint32_t len,
			uint8_t tag)
{
	uint8_t *b = malloc(len);

	fill(b, len, tag);
	assert_int_equal(m->guest->ops->pwrite(m->guest, b, len, off, false),
			 0);
	memcpy(m->view + off, b, len);
	free(b);
}

static void guest_zero(struct model *m, uint64_t off, uint32_t len)
{
	assert_int_equal(
		m->guest->ops->write_zeroes(m->guest, len, off, false, true),
		0);
	memset(m->view + off, 0, len);
}

static void checkpoint(struct model *m)
{
	assert_int_equal(colo_disk_buffer_checkpoint(m->db), 0);
	memcpy(m->view, m->prim, m->size);
}

static void check_view(struct model *m)
{
	uint8_t *b = malloc(m->size);

	assert_int_equal(
		m->guest->ops->pread(m->guest, b, (uint32_t)m->size, 0), 0);
	assert_memory_equal(b, m->view, m->size);
	free(b);
}

static void check_range(struct model *m, uint64_t off, uint32_t len)
{
	uint8_t *b = malloc(len);

	assert_int_equal(m->guest->ops->pread(m->guest, b, len, off), 0);
	assert_memory_equal(b, m->view + off, len);
	free(b);
}

static void check_image_after_failover(struct model *m)
{
	uint8_t *b = malloc(m->size);

	assert_int_equal(colo_disk_buffer_failover(m->db), 0);
	assert_int_equal(pread(m->img->fd, b, m->size, 0), (ssize_t)m->size);
	assert_memory_equal(b, m->view, m->size);
	free(b);
	/* and the guest now sees the image directly */
	check_view(m);
}

/* Primary and guest write the same granules, partly overlapping. */
static void test_overlap_scenario(void **state)
{
	struct model m;

	(void)state;
	model_init(&m, 1 << 20, 4096);
	primary_write(&m, 0, 65536, 1); /* before any checkpoint */
	checkpoint(&m);
	check_view(&m);
	primary_write(&m, 1000, 5000, 2); /* guest keeps the old data */
	check_view(&m);
	guest_write(&m, 3000, 3000, 3); /* overlaps, partial granules */
	check_view(&m);
	primary_write(&m, 2000, 9000, 4); /* original already saved */
	check_view(&m);
	guest_write(&m, 8192, 100, 5); /* over a hidden granule */
	check_view(&m);
	checkpoint(&m);
	check_view(&m);
	primary_write(&m, 4096, 4096, 6);
	guest_write(&m, 4000, 200, 7);
	primary_write(&m, 0, 12288, 8); /* over active: nothing saved */
	guest_write(&m, 12000, 9000, 9);
	guest_zero(&m, 100, 9000);
	check_view(&m);
	check_range(&m, 4090, 20);
	check_image_after_failover(&m);
	/* after failover the image is served directly */
	guest_write(&m, 777, 3333, 10);
	check_view(&m);
	assert_int_equal(
		colo_disk_buffer_apply_primary_write(m.db, 0, 10, m.prim),
		-ESHUTDOWN);
	model_free(&m);
}

/* Failover restores originals where the guest did not write. */
static void test_failover_restores_hidden(void **state)
{
	struct model m;
	struct colo_disk_buffer_stats st;

	(void)state;
	model_init(&m, 256 * 1024, 65536);
	primary_write(&m, 0, 256 * 1024, 1);
	checkpoint(&m);
	primary_write(&m, 65536 + 10, 20, 2);
	primary_write(&m, 100, 20, 3);
	guest_write(&m, 65536 + 512, 512, 4);
	colo_disk_buffer_get_stats(m.db, &st);
	assert_int_equal(st.hidden_granules, 2);
	assert_int_equal(st.active_granules, 1);
	check_image_after_failover(&m);
	model_free(&m);
}

/* Two-step checkpoint: prepare drops nothing, commit drops both
 * buffers (the guest then sees the primary's disk), and the misuses get
 * their own errors. */
static void test_prepare_commit(void **state)
{
	struct model m;
	struct colo_disk_buffer_stats st;

	(void)state;
	model_init(&m, 256 * 1024, 4096);
	assert_int_equal(colo_disk_buffer_commit(m.db), -ENOENT);
	primary_write(&m, 0, 20000, 1);
	guest_write(&m, 10000, 5000, 2);
	assert_int_equal(colo_disk_buffer_prepare(m.db), 0);
	assert_int_equal(colo_disk_buffer_prepare(m.db), -EALREADY);
	colo_disk_buffer_get_stats(m.db, &st);
	assert_true(st.prepared);
	assert_true(st.hidden_granules > 0 && st.active_granules > 0);
	check_view(&m);			/* nothing dropped yet */
	guest_write(&m, 30000, 100, 3); /* the old VM may still write */
	assert_int_equal(colo_disk_buffer_commit(m.db), 0);
	memcpy(m.view, m.prim, m.size);
	check_view(&m);
	colo_disk_buffer_get_stats(m.db, &st);
	assert_false(st.prepared);
	assert_int_equal(st.hidden_granules, 0);
	assert_int_equal(st.active_granules, 0);
	assert_int_equal(colo_disk_buffer_commit(m.db), -ENOENT);

	/* A primary write after the prepare: the commit is refused and
	 * drops nothing, so a failover still rolls every write back. */
	primary_write(&m, 50000, 3000, 4);
	assert_int_equal(colo_disk_buffer_prepare(m.db), 0);
	primary_write(&m, 60000, 3000, 5);
	assert_int_equal(colo_disk_buffer_commit(m.db), -ESTALE);
	colo_disk_buffer_get_stats(m.db, &st);
	assert_false(st.prepared);
	check_view(&m);

	/* abort: forgotten, buffers kept; a new prepare is accepted */
	assert_int_equal(colo_disk_buffer_prepare(m.db), 0);
	assert_true(colo_disk_buffer_abort(m.db));
	assert_false(colo_disk_buffer_abort(m.db));
	check_view(&m);
	assert_int_equal(colo_disk_buffer_prepare(m.db), 0);
	/* the one-step checkpoint covers a prepared one */
	checkpoint(&m);
	colo_disk_buffer_get_stats(m.db, &st);
	assert_false(st.prepared);
	model_free(&m);
}

/* The primary dies between prepare and commit: failover folds back to
 * the last committed checkpoint (plus the guest's own writes), not to
 * the prepared point. */
static void test_failover_while_prepared(void **state)
{
	struct model m;

	(void)state;
	model_init(&m, 256 * 1024, 4096);
	primary_write(&m, 0, 100000, 1);
	checkpoint(&m); /* checkpoint N */
	primary_write(&m, 5000, 30000, 2);
	guest_write(&m, 20000, 4000, 3);
	primary_write(&m, 90000, 20000, 4);
	assert_int_equal(colo_disk_buffer_prepare(m.db), 0); /* N + 1 */
	guest_write(&m, 95000, 100, 5);
	check_view(&m);
	check_image_after_failover(&m); /* N + the guest's writes */
	assert_int_equal(colo_disk_buffer_prepare(m.db), -ESHUTDOWN);
	assert_int_equal(colo_disk_buffer_commit(m.db), -ESHUTDOWN);
	model_free(&m);
}

/* A disk whose size is not a multiple of the granularity. */
static void test_tail_granule(void **state)
{
	struct model m;

	(void)state;
	model_init(&m, 10000, 4096);
	primary_write(&m, 9000, 1000, 1);
	guest_write(&m, 8190, 1810, 2);
	primary_write(&m, 8192, 1808, 3);
	check_view(&m);
	checkpoint(&m);
	guest_write(&m, 9999, 1, 4);
	primary_write(&m, 8000, 2000, 5);
	check_view(&m);
	check_image_after_failover(&m);
	model_free(&m);
}

/* Random interleavings against the model. */
static void test_random_model(void **state)
{
	const uint32_t grans[] = { 512, 4096, 65536 };

	(void)state;
	srand(12345);
	for (int round = 0; round < 30; round++) {
		struct model m;
		uint64_t size = 512 * 1024 + (uint64_t)(rand() % 3) * 777;

		model_init(&m, size, grans[round % 3]);
		for (int op = 0; op < 200; op++) {
			uint64_t off = (uint64_t)rand() % size;
			uint32_t len = 1 + (uint32_t)rand() % 70000;
			int k = rand() % 100;

			if (len > size - off)
				len = (uint32_t)(size - off);
			if (k < 40)
				primary_write(&m, off, len, (uint8_t)op);
			else if (k < 75)
				guest_write(&m, off, len, (uint8_t)(op + 99));
			else if (k < 80)
				guest_zero(&m, off, len);
			else if (k < 85)
				checkpoint(&m);
			else
				check_range(&m, off, len);
		}
		check_view(&m);
		check_image_after_failover(&m);
		model_free(&m);
	}
}

/* 1 TiB disk, scattered writes: memory follows the buffered granules. */
static void test_large_sparse_bounded(void **state)
{
	struct test_img *img = test_img_new(1ULL << 40);
	struct colo_disk_buffer_stats st;
	struct colo_disk_buffer *db;
	struct colo_blk_dev *g;
	uint8_t buf[4096], back[4096];
	char err[256];

	(void)state;
	db = colo_disk_buffer_new(&img->dev, 65536, "/tmp", err, sizeof(err));
	assert_non_null(db);
	g = colo_disk_buffer_dev(db);
	for (int i = 0; i < 1000; i++) {
		uint64_t off = (uint64_t)i * 1000003 * 65536 % (1ULL << 40);

		memset(buf, i & 0xff, sizeof(buf));
		assert_int_equal(colo_disk_buffer_apply_primary_write(
					 db, off, sizeof(buf), buf),
				 0);
		assert_int_equal(
			g->ops->pwrite(g, buf, 100, off + 50000, false), 0);
	}
	colo_disk_buffer_get_stats(db, &st);
	assert_int_equal(st.hidden_granules, 1000);
	assert_int_equal(st.active_granules, 1000);
	assert_true(st.map_bytes < 128 * 1024);
	/* the guest still sees zeroes where the primary wrote */
	assert_int_equal(
		g->ops->pread(g, back, sizeof(back),
			      (uint64_t)7 * 1000003 * 65536 % (1ULL << 40)),
		0);
	memset(buf, 0, sizeof(buf));
	assert_memory_equal(back, buf, sizeof(buf));
	assert_int_equal(colo_disk_buffer_checkpoint(db), 0);
	colo_disk_buffer_get_stats(db, &st);
	assert_int_equal(st.hidden_granules + st.active_granules, 0);
	assert_int_equal(st.map_bytes, 0);
	colo_disk_buffer_free(db);
	test_img_free(img);
}

static void test_bad_granularity(void **state)
{
	struct test_img *img = test_img_new(1 << 20);
	char err[256];

	(void)state;
	assert_null(
		colo_disk_buffer_new(&img->dev, 256, "/tmp", err, sizeof(err)));
	assert_null(colo_disk_buffer_new(&img->dev, 3000, "/tmp", err,
					 sizeof(err)));
	assert_null(colo_disk_buffer_new(&img->dev, 4096, "/nonexistent/x", err,
					 sizeof(err)));
	test_img_free(img);
}

/* An image error is reported and leaves the buffers usable. */
static void test_image_error(void **state)
{
	struct model m;

	(void)state;
	model_init(&m, 1 << 20, 4096);
	m.img->fail = EIO;
	uint8_t b[100] = { 0 };
	assert_int_equal(colo_disk_buffer_apply_primary_write(m.db, 0, 100, b),
			 -EIO);
	assert_int_equal(m.guest->ops->pwrite(m.guest, b, 100, 50, false),
			 -EIO);
	assert_int_equal(colo_disk_buffer_failover(m.db), -EIO);
	m.img->fail = 0;
	guest_write(&m, 50, 100, 1);
	check_view(&m);
	check_image_after_failover(&m);
	model_free(&m);
}

static void count_done(void *arg, int result)
{
	int *n = arg;

	assert_int_equal(result, 0);
	(*n)++;
}

/* After failover the view may be routed through another device (the
 * primary a "replicate" creates): every call of the guest's device goes
 * there, the async write included, and none to the image directly. */
static void test_route(void **state)
{
	struct model m;
	struct test_img *to = test_img_new(1 << 20),
			*small = test_img_new(4096);
	const struct colo_blk_dev_ops *ops;
	uint8_t buf[4096], back[4096];
	int done = 0;

	(void)state;
	model_init(&m, 1 << 20, 4096);
	assert_int_equal(colo_disk_buffer_route(m.db, &to->dev), -EINVAL);
	assert_null(m.guest->ops->pwrite_async); /* unrouted: synchronous */
	assert_int_equal(colo_disk_buffer_failover(m.db), 0);
	assert_int_equal(colo_disk_buffer_route(m.db, &small->dev), -ERANGE);
	assert_int_equal(colo_disk_buffer_route(m.db, &to->dev), 0);
	assert_int_equal(colo_disk_buffer_route(m.db, &to->dev), -EALREADY);
	ops = colo_blk_dev_ops(m.guest);
	memset(buf, 0x3c, sizeof(buf));
	assert_int_equal(ops->pwrite(m.guest, buf, 4096, 8192, false), 0);
	assert_int_equal(ti_pread(&to->dev, back, 4096, 8192), 0);
	assert_memory_equal(back, buf, 4096);
	assert_int_equal(ti_pread(&m.img->dev, back, 4096, 8192), 0);
	assert_int_equal(back[0], 0); /* not behind the route's back */
	memset(buf, 0x4d, sizeof(buf));
	assert_int_equal(ops->pwrite_async(m.guest, buf, 4096, 0, false,
					   count_done, &done),
			 0);
	assert_int_equal(done, 1);
	assert_int_equal(ops->pread(m.guest, back, 4096, 0), 0);
	assert_memory_equal(back, buf, 4096);
	assert_int_equal(ops->write_zeroes(m.guest, 4096, 0, false, true), 0);
	assert_int_equal(ti_pread(&to->dev, back, 4096, 0), 0);
	assert_int_equal(back[0], 0);
	assert_int_equal(ops->flush(m.guest), 0);
	to->fail = EIO; /* the route's errors reach the client */
	assert_int_equal(ops->pread(m.guest, back, 4096, 0), -EIO);
	assert_int_equal(ops->flush(m.guest), -EIO);
	to->fail = 0;
	model_free(&m);
	test_img_free(to);
	test_img_free(small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_overlap_scenario),
		cmocka_unit_test(test_failover_restores_hidden),
		cmocka_unit_test(test_tail_granule),
		cmocka_unit_test(test_prepare_commit),
		cmocka_unit_test(test_failover_while_prepared),
		cmocka_unit_test(test_random_model),
		cmocka_unit_test(test_large_sparse_bounded),
		cmocka_unit_test(test_bad_granularity),
		cmocka_unit_test(test_image_error),
		cmocka_unit_test(test_route),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
