/*
 * dirty_map.h - which regions of a disk changed while they could not be
 * replicated: one bit per granule, so 1 TiB at 64 KiB costs 2 MiB.
 *
 * Not locked: the owner (the primary) guards it with its own lock.
 */
#ifndef COLO_BLK_DIRTY_MAP_H
#define COLO_BLK_DIRTY_MAP_H

#include <stdbool.h>
#include <stdint.h>

struct colo_dirty_map {
	uint64_t size;	    /* bytes covered */
	uint32_t gran;	    /* bytes per bit, a power of two */
	unsigned int shift; /* log2(gran) */
	uint64_t nbits;
	uint64_t ndirty; /* bits set */
	uint64_t *words;
};

/* dirty_map.c APIs: */
/* 0, or -EINVAL (granularity not a power of two >= 512) or -ENOMEM. */
int colo_dirty_map_init(struct colo_dirty_map *m, uint64_t size, uint32_t gran);
void colo_dirty_map_destroy(struct colo_dirty_map *m);
/* Mark every granule that [off, off + len) touches; clipped to size. */
void colo_dirty_map_mark(struct colo_dirty_map *m, uint64_t off, uint64_t len);
void colo_dirty_map_mark_all(struct colo_dirty_map *m);
void colo_dirty_map_clear_all(struct colo_dirty_map *m);
bool colo_dirty_map_test(const struct colo_dirty_map *m, uint64_t off);
/* Set every bit of src in dst (same geometry). */
void colo_dirty_map_merge(struct colo_dirty_map *dst,
			  const struct colo_dirty_map *src);
/*
 * The first dirty granule at or after byte *pos: true with its range in
 * *off / *len (len clipped to the end of the disk), false when none is
 * left. *pos is advanced past it, so a loop visits each granule once.
 */
bool colo_dirty_map_next(const struct colo_dirty_map *m, uint64_t *pos,
			 uint64_t *off, uint32_t *len);
static inline uint64_t colo_dirty_map_bytes(const struct colo_dirty_map *m)
{
	return m->ndirty * m->gran;
}

#endif
