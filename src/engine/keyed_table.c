/*
 * keyed_table.c - the chained SipHash table behind flow_table.h and the
 * rewriter's conn_table.h.
 *
 * Growing rehashes every entry at once: amortised O(1) per insert, and a
 * doubling is rare (at 1M entries it moves 1M pointers, a few
 * milliseconds). A failed growth is not an error, chains just get longer.
 */
#include <stdlib.h>
#include <string.h>

#include "keyed_table.h"
#include "siphash.h"

/* Entries kept for reuse beyond this are given back to the allocator. */
#define FREE_LIST_MAX 4096
#define MIN_BUCKETS   1024

static struct colo_hnode *node_of(const struct colo_keyed_table *t, void *e)
{
	return (struct colo_hnode *)((char *)e + t->node_off);
}

static void *entry_of(const struct colo_keyed_table *t, struct colo_hnode *n)
{
	return (char *)n - t->node_off;
}

static const void *key_of(const struct colo_keyed_table *t,
			  struct colo_hnode *n)
{
	return (const char *)entry_of(t, n) + t->key_off;
}

int colo_kt_init(struct colo_keyed_table *t, const uint64_t key[2],
		 size_t entry_size, size_t node_off, size_t key_off,
		 size_t key_len)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = MIN_BUCKETS;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets)
		return -1;
	t->key[0] = key[0];
	t->key[1] = key[1];
	t->entry_size = entry_size;
	t->node_off = node_off;
	t->key_off = key_off;
	t->key_len = key_len;
	t->free_entries.max = FREE_LIST_MAX;
	return 0;
}

static void free_chain(struct colo_keyed_table *t, struct colo_hnode *n)
{
	while (n) {
		struct colo_hnode *next = n->next;

		free(entry_of(t, n));
		n = next;
	}
}

void colo_kt_destroy(struct colo_keyed_table *t)
{
	if (t->buckets)
		for (size_t i = 0; i < t->nbuckets; i++)
			free_chain(t, t->buckets[i]);
	colo_fc_destroy(&t->free_entries);
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

uint64_t colo_kt_hash(const struct colo_keyed_table *t, const void *key)
{
	return colo_siphash(t->key, key, t->key_len);
}

void *colo_kt_find(const struct colo_keyed_table *t, const void *key,
		   uint64_t hash)
{
	struct colo_hnode *n = t->buckets[hash & (t->nbuckets - 1)];

	for (; n; n = n->next)
		if (n->hash == hash && !memcmp(key_of(t, n), key, t->key_len))
			return entry_of(t, n);
	return NULL;
}

/* Rehashes every entry into nb_count buckets; keeps the old array when
 * memory is short. */
static void resize(struct colo_keyed_table *t, size_t nb_count)
{
	struct colo_hnode **nb = calloc(nb_count, sizeof(*nb));

	if (!nb)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct colo_hnode *n = t->buckets[i];

		while (n) {
			struct colo_hnode *next = n->next;
			size_t b = n->hash & (nb_count - 1);

			n->next = nb[b];
			nb[b] = n;
			n = next;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = nb_count;
}

void *colo_kt_insert(struct colo_keyed_table *t, const void *key, uint64_t hash)
{
	void *e = colo_fc_get(&t->free_entries);
	struct colo_hnode *n;

	if (!e) {
		e = malloc(t->entry_size);
		if (!e)
			return NULL;
	}
	memset(e, 0, t->entry_size);
	memcpy((char *)e + t->key_off, key, t->key_len);
	n = node_of(t, e);
	n->hash = hash;
	if (t->count >= t->nbuckets)
		resize(t, t->nbuckets * 2);
	size_t b = hash & (t->nbuckets - 1);
	n->next = t->buckets[b];
	t->buckets[b] = n;
	t->count++;
	return e;
}

static void recycle(struct colo_keyed_table *t, struct colo_hnode *n)
{
	t->count--;
	if (!colo_fc_put(&t->free_entries, entry_of(t, n)))
		free(entry_of(t, n));
}

void colo_kt_remove(struct colo_keyed_table *t, void *entry)
{
	struct colo_hnode *n = node_of(t, entry);
	struct colo_hnode **pp = &t->buckets[n->hash & (t->nbuckets - 1)];

	while (*pp && *pp != n)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	*pp = n->next;
	recycle(t, n);
}

size_t colo_kt_trim(struct colo_keyed_table *t, bool period, uint32_t *budget)
{
	size_t freed, nb = t->nbuckets;

	if (period)
		colo_fc_period(&t->free_entries);
	freed = colo_fc_trim(&t->free_entries, budget) * t->entry_size;
	if (!period)
		return freed;
	/* Halved while more than four buckets per entry: between 2 and 4
	 * are left, so a table that shrank is not doubled again by the next
	 * few inserts. */
	while (nb > MIN_BUCKETS && t->count * 4 < nb)
		nb /= 2;
	if (nb < t->nbuckets) {
		size_t before = t->nbuckets;

		resize(t, nb);
		if (t->nbuckets < before)
			freed += (before - t->nbuckets) * sizeof(*t->buckets);
	}
	return freed;
}

size_t colo_kt_cached(const struct colo_keyed_table *t)
{
	return (size_t)t->free_entries.n * t->entry_size;
}

size_t colo_kt_sweep(struct colo_keyed_table *t, colo_kt_visit_fn fn,
		     void *opaque)
{
	size_t removed = 0;

	for (size_t i = 0; i < t->nbuckets; i++) {
		struct colo_hnode **pp = &t->buckets[i];

		while (*pp) {
			struct colo_hnode *n = *pp;

			if (fn(opaque, entry_of(t, n))) {
				*pp = n->next;
				recycle(t, n);
				removed++;
			} else {
				pp = &n->next;
			}
		}
	}
	return removed;
}
