/*
 * disk_buffer.h - the secondary's disk buffer.
 *
 * The secondary image follows the primary's writes; the secondary guest
 * must keep seeing the disk as it was at the last checkpoint plus its own
 * writes. Two buffers make that so:
 *   hidden - the original content of a granule, saved just before the
 *            first primary write since the last checkpoint overwrote it;
 *   active - the secondary guest's own writes.
 * The guest reads active, else hidden, else the image; it writes to active
 * only. A checkpoint drops both (the image then equals the primary's
 * disk); a failover folds them into the image, which from then on is
 * served directly.
 */
#ifndef COLO_BLK_DISK_BUFFER_H
#define COLO_BLK_DISK_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk_dev.h"

#define COLO_DISK_BUFFER_DEFAULT_GRAN (64 * 1024)

struct colo_disk_buffer;

struct colo_disk_buffer_stats {
	uint32_t granularity;
	uint64_t hidden_granules; /* buffered now */
	uint64_t active_granules;
	uint64_t map_bytes; /* memory held by both maps */
	uint64_t primary_writes;
	uint64_t primary_bytes;
	uint64_t originals_saved; /* granules copied into hidden, all time */
	uint64_t guest_writes;
	uint64_t guest_reads;
	uint64_t checkpoints;
	bool failed_over;
	bool prepared;		       /* a checkpoint awaits commit or abort */
	uint64_t writes_since_prepare; /* primary writes after the prepare */
};

/* disk_buffer.c APIs: */
/*
 * Buffer the image `image` (not owned) at `gran` bytes per granule (a
 * power of two >= 512). The two buffer files are unnamed files in
 * `buffer_dir`. NULL with a reason in err on failure.
 */
struct colo_disk_buffer *colo_disk_buffer_new(struct colo_blk_dev *image,
					      uint32_t gran,
					      const char *buffer_dir, char *err,
					      size_t errlen);
void colo_disk_buffer_free(struct colo_disk_buffer *db);
/* The secondary guest's view, to be exported. */
struct colo_blk_dev *colo_disk_buffer_dev(struct colo_disk_buffer *db);
/*
 * A write of the primary (data NULL: zeroes): save the originals not yet
 * saved since the last checkpoint into hidden, then write the image.
 * -ESHUTDOWN after failover.
 */
int colo_disk_buffer_apply_primary_write(struct colo_disk_buffer *db,
					 uint64_t off, uint32_t len,
					 const void *data);
/*
 * Resynchronisation data after the secondary was lost: written straight
 * to the image. The guest view is meaningless until the checkpoint that
 * ends a resync (a new secondary VM starts from that checkpoint).
 */
int colo_disk_buffer_apply_resync(struct colo_disk_buffer *db, uint64_t off,
				  uint32_t len, const void *data);
/* Make the primary's writes applied so far durable on the image. */
int colo_disk_buffer_flush_image(struct colo_disk_buffer *db);
/* Drop both buffers, guest requests held meanwhile (and forget a
 * prepared checkpoint: this one covers it). */
int colo_disk_buffer_checkpoint(struct colo_disk_buffer *db);
/*
 * A checkpoint in two steps, for a secondary VM that is replaced in
 * between: prepare marks the point of the primary's write stream the
 * checkpoint covers, dropping nothing (a failover meanwhile still folds
 * back to the previous checkpoint); commit drops both buffers once the
 * new secondary VM is loaded. prepare: -EALREADY when one is prepared,
 * -ESHUTDOWN after failover. commit: -ENOENT when none is prepared,
 * -ESTALE (nothing dropped, none prepared any more) when primary writes
 * came after the prepare, which the checkpoint does not cover,
 * -ESHUTDOWN after failover. abort forgets the prepared checkpoint and
 * keeps buffering; true when there was one.
 */
int colo_disk_buffer_prepare(struct colo_disk_buffer *db);
int colo_disk_buffer_commit(struct colo_disk_buffer *db);
bool colo_disk_buffer_abort(struct colo_disk_buffer *db);
/*
 * Make the image equal the guest's view and serve it directly from now
 * on. Idempotent; on error the buffers are kept and it may be retried.
 */
int colo_disk_buffer_failover(struct colo_disk_buffer *db);
/*
 * The other way to stop buffering, for a secondary whose guest is not
 * going to run on (it restarts from this disk, or there never was one):
 * drop both buffers, so the image keeps every primary write applied, and
 * serve it directly. Idempotent.
 */
int colo_disk_buffer_takeover(struct colo_disk_buffer *db);
bool colo_disk_buffer_failed_over(struct colo_disk_buffer *db);
/*
 * After failover: from now on the guest's requests go to `to` (the
 * replicating primary wrapping the image, not owned, same size) instead
 * of the image, so the export that served the secondary guest becomes a
 * primary's without a client noticing. Every request that went to the
 * image directly has finished when this returns. 0, -EINVAL before
 * failover, -EALREADY when routed already, -ERANGE on a size mismatch.
 */
int colo_disk_buffer_route(struct colo_disk_buffer *db,
			   struct colo_blk_dev *to);
/* The image under the buffers (the secondary's link hashes it). */
struct colo_blk_dev *colo_disk_buffer_image(struct colo_disk_buffer *db);
void colo_disk_buffer_get_stats(struct colo_disk_buffer *db,
				struct colo_disk_buffer_stats *st);

#endif
