/*
 * file_dev.c - the plain image device: a raw file served byte for byte.
 *
 * pread/pwrite are thread-safe on one descriptor, so the device needs no
 * lock of its own and concurrent requests from several connections go to
 * the kernel in parallel. Trim is advisory: a filesystem that cannot
 * punch holes just keeps the data.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_dev.h"

struct file_dev {
	struct colo_blk_dev dev;
	int fd;
};

static int fd_of(struct colo_blk_dev *d)
{
	return ((struct file_dev *)d->priv)->fd;
}

static int file_pread(struct colo_blk_dev *d, void *buf, uint32_t len,
		      uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd_of(d), p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) /* the file shrank under us */
			return -EIO;
		p += n;
		len -= (uint32_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int file_flush(struct colo_blk_dev *d)
{
	while (fdatasync(fd_of(d))) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int write_all(int fd, const uint8_t *p, uint32_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOSPC;
		p += n;
		len -= (uint32_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int file_pwrite(struct colo_blk_dev *d, const void *buf, uint32_t len,
		       uint64_t off, bool fua)
{
	int rc = write_all(fd_of(d), buf, len, off);

	return rc ? rc : fua ? file_flush(d) : 0;
}

static bool unsupported(int e)
{
	return e == EOPNOTSUPP || e == ENOSYS || e == EINVAL || e == ENODEV;
}

static int file_trim(struct colo_blk_dev *d, uint32_t len, uint64_t off)
{
	if (!len ||
	    !fallocate(fd_of(d), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		       (off_t)off, len))
		return 0;
	return unsupported(errno) ? 0 : -errno;
}

static int write_zero_bytes(int fd, uint32_t len, uint64_t off)
{
	static const uint8_t zeroes[64 * 1024];

	while (len) {
		uint32_t n = len < sizeof(zeroes) ? len : sizeof(zeroes);
		int rc = write_all(fd, zeroes, n, off);

		if (rc)
			return rc;
		len -= n;
		off += n;
	}
	return 0;
}

static int file_write_zeroes(struct colo_blk_dev *d, uint32_t len, uint64_t off,
			     bool fua, bool may_trim)
{
	int fd = fd_of(d), rc = 0;

	if (!len)
		return 0;
	/* A punched hole reads back as zeroes and frees the space. */
	if (may_trim &&
	    !fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		       (off_t)off, len))
		goto done;
	if (!fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		       (off_t)off, len))
		goto done;
	if (!unsupported(errno))
		return -errno;
	rc = write_zero_bytes(fd, len, off);
	if (rc)
		return rc;
done:
	return fua ? file_flush(d) : 0;
}

static const struct colo_blk_dev_ops file_ops = {
	.pread = file_pread,
	.pwrite = file_pwrite,
	.flush = file_flush,
	.trim = file_trim,
	.write_zeroes = file_write_zeroes,
};

struct colo_blk_dev *colo_file_dev_open(const char *path, bool read_only,
					char *err, size_t errlen)
{
	struct file_dev *f;
	struct stat st;
	uint64_t size;
	int fd = open(path, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st))
		goto fail;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size))
			goto fail;
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else {
		snprintf(err, errlen, "%s: not a regular file or block device",
			 path);
		close(fd);
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		errno = ENOMEM;
		goto fail;
	}
	f->fd = fd;
	f->dev.ops = &file_ops;
	f->dev.size = size;
	f->dev.read_only = read_only;
	f->dev.can_trim = !read_only;
	f->dev.priv = f;
	return &f->dev;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	close(fd);
	return NULL;
}

int colo_file_dev_fd(const struct colo_blk_dev *d)
{
	return ((const struct file_dev *)d->priv)->fd;
}

void colo_file_dev_close(struct colo_blk_dev *d)
{
	struct file_dev *f;

	if (!d)
		return;
	f = d->priv;
	close(f->fd);
	free(f);
}
