/*
 * free_cache.h - a free list of same-sized objects that keeps what the
 * recent past needed and gives back the rest.
 *
 * Pools that keep their peak pin the memory of one burst forever; pools
 * that free at once call malloc per packet. This one does neither: it
 * remembers the fewest objects it held at any moment of a period (`low`).
 * Those objects sat unused through the whole period, so when the period
 * ends (the comparer's tick, once a second) they become `excess`, and
 * trims free them, a bounded number per call so that returning a large
 * burst never stalls the caller's event loop. A steady load keeps its
 * working set cached and allocates nothing; after a burst the cache is
 * empty again within two periods plus the ticks the budget needs.
 *
 * The link is stored in the first pointer-sized bytes of a free object,
 * so objects need no field for it. Objects come from malloc.
 */
#ifndef COLO_FREE_CACHE_H
#define COLO_FREE_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct colo_free_cache {
	void *head;
	uint32_t n;	 /* objects on the list now */
	uint32_t low;	 /* fewest on the list since the period began */
	uint32_t excess; /* unused through a whole period: to be freed */
	uint32_t max;	 /* bound on n: beyond it, put() refuses */
};

/* A cached object, or NULL when the list is empty. */
static inline void *colo_fc_get(struct colo_free_cache *fc)
{
	void *o = fc->head;

	if (!o)
		return NULL;
	memcpy(&fc->head, o, sizeof(fc->head));
	fc->n--;
	if (fc->n < fc->low)
		fc->low = fc->n;
	return o;
}

/* Keeps o for reuse; false when the list is full (the caller frees). */
static inline bool colo_fc_put(struct colo_free_cache *fc, void *o)
{
	if (fc->n >= fc->max)
		return false;
	memcpy(o, &fc->head, sizeof(fc->head));
	fc->head = o;
	fc->n++;
	return true;
}

/* free_cache.c APIs: */
/* Ends a period: what stayed unused through it becomes excess. */
void colo_fc_period(struct colo_free_cache *fc);
/* Frees up to *budget excess objects and takes them off *budget;
 * returns how many were freed. */
uint32_t colo_fc_trim(struct colo_free_cache *fc, uint32_t *budget);
/* Frees every cached object. */
void colo_fc_destroy(struct colo_free_cache *fc);

#endif
