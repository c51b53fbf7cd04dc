/*
 * blk_dev.h - a byte-addressed block device, the one interface between
 * the NBD server (which speaks the protocol) and what an export serves:
 * a plain image file, the primary's replicating image, or the secondary's
 * disk-buffer view.
 *
 * Calls may come from several threads; an implementation serialises what
 * it must. Every call returns 0 or a negative errno (-EIO, -ENOSPC,
 * -EINVAL, -EPERM, -ENOMEM, -ESHUTDOWN), which the server maps to NBD
 * errors. Ranges are already checked against `size` by the server.
 */
#ifndef COLO_BLK_DEV_H
#define COLO_BLK_DEV_H

#include <stdbool.h>
#include <stdint.h>

struct colo_blk_dev;

struct colo_blk_dev_ops {
	int (*pread)(struct colo_blk_dev *d, void *buf, uint32_t len,
		     uint64_t off);
	int (*pwrite)(struct colo_blk_dev *d, const void *buf, uint32_t len,
		      uint64_t off, bool fua);
	int (*flush)(struct colo_blk_dev *d);
	int (*trim)(struct colo_blk_dev *d, uint32_t len, uint64_t off);
	/* may_trim: the client allows punching a hole instead */
	int (*write_zeroes)(struct colo_blk_dev *d, uint32_t len, uint64_t off,
			    bool fua, bool may_trim);
	/*
	 * Optional (NULL: use pwrite). A write whose completion comes
	 * later, so that a server can have many in flight. buf is consumed
	 * and the write ordered before any later call (a later pread sees
	 * it) by the time this returns. Returns <0 on an immediate error
	 * (done is not called), or 0 and calls done(arg, 0 or -errno)
	 * exactly once, from any thread, maybe before returning.
	 */
	int (*pwrite_async)(struct colo_blk_dev *d, const void *buf,
			    uint32_t len, uint64_t off, bool fua,
			    void (*done)(void *arg, int result), void *arg);
};

struct colo_blk_dev {
	/* May be replaced while served (a failed-over secondary's view that
	 * becomes a primary's): servers read it with colo_blk_dev_ops(). */
	const struct colo_blk_dev_ops *ops;
	uint64_t size;
	bool read_only;
	bool can_trim;
	void *priv;
};

static inline const struct colo_blk_dev_ops *
colo_blk_dev_ops(const struct colo_blk_dev *d)
{
	return __atomic_load_n(&d->ops, __ATOMIC_ACQUIRE);
}

#endif
