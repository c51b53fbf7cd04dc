/*
 * memdev.h - test images for the replication unit tests: a colo_blk_dev
 * over a sparse unnamed file, with a switch to make I/O fail.
 */
#ifndef COLO_TEST_MEMDEV_H
#define COLO_TEST_MEMDEV_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "blk_dev.h"

struct test_img {
	struct colo_blk_dev dev;
	int fd;
	int fail; /* nonzero: every op returns -fail */
};

static int ti_pread(struct colo_blk_dev *d, void *buf, uint32_t len,
		    uint64_t off)
{
	struct test_img *t = d->priv;

	if (t->fail)
		return -t->fail;
	return pread(t->fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
}

static int ti_pwrite(struct colo_blk_dev *d, const void *buf, uint32_t len,
		     uint64_t off, bool fua)
{
	struct test_img *t = d->priv;

	(void)fua;
	if (t->fail)
		return -t->fail;
	return pwrite(t->fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
}

static int ti_flush(struct colo_blk_dev *d)
{
	struct test_img *t = d->priv;

	return t->fail ? -t->fail : 0;
}

static int ti_zero(struct colo_blk_dev *d, uint32_t len, uint64_t off, bool fua,
		   bool may_trim)
{
	void *z = calloc(1, len ? len : 1);
	int r = ti_pwrite(d, z, len, off, fua);

	(void)may_trim;
	free(z);
	return r;
}

static const struct colo_blk_dev_ops ti_ops = {
	.pread = ti_pread,
	.pwrite = ti_pwrite,
	.flush = ti_flush,
	.write_zeroes = ti_zero,
};

static inline struct test_img *test_img_new(uint64_t size)
{
	struct test_img *t = calloc(1, sizeof(*t));

	t->fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	if (t->fd < 0 || ftruncate(t->fd, (off_t)size) < 0)
		abort();
	t->dev.ops = &ti_ops;
	t->dev.size = size;
	t->dev.priv = t;
	return t;
}

static inline void test_img_free(struct test_img *t)
{
	close(t->fd);
	free(t);
}

#endif
