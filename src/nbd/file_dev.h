/*
 * file_dev.h - a colo_blk_dev over a raw image file or a block device.
 *
 * Writes go through the page cache (like qemu-nbd's default
 * cache=writeback); flush and FUA make them durable with fdatasync.
 */
#ifndef COLO_FILE_DEV_H
#define COLO_FILE_DEV_H

#include <stdbool.h>
#include <stddef.h>

#include "blk_dev.h"

/* file_dev.c APIs: */
/* Opens path (O_RDONLY with read_only). Returns the device, or NULL with
 * a reason in err. The size is the file's size (a block device's for a
 * block device) at open time. */
struct colo_blk_dev *colo_file_dev_open(const char *path, bool read_only,
					char *err, size_t errlen);
/* The open descriptor, for callers that wrap the device. */
int colo_file_dev_fd(const struct colo_blk_dev *d);
void colo_file_dev_close(struct colo_blk_dev *d);

#endif
