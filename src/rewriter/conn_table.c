/*
 * conn_table.c - keyed-hash table of rewritten connections.
 *
 * Growing rehashes every entry at once: amortised O(1) per insert, and a
 * doubling is rare. A failed growth is not an error, chains just get
 * longer.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_table.h"
#include "siphash.h"

/* Entries kept for reuse beyond this are given back to the allocator. */
#define FREE_LIST_MAX 4096

int colo_conn_table_init(struct colo_conn_table *t, const uint64_t key[2])
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = 1024;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets)
		return -1;
	t->key[0] = key[0];
	t->key[1] = key[1];
	return 0;
}

static void free_chain(struct colo_rw_conn *c)
{
	while (c) {
		struct colo_rw_conn *n = c->hnext;

		free(c);
		c = n;
	}
}

void colo_conn_table_destroy(struct colo_conn_table *t)
{
	if (t->buckets)
		for (size_t i = 0; i < t->nbuckets; i++)
			free_chain(t->buckets[i]);
	free_chain(t->free_list);
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

uint64_t colo_conn_table_hash(const struct colo_conn_table *t,
			      const struct colo_flow_key *k)
{
	return colo_siphash(t->key, k, sizeof(*k));
}

struct colo_rw_conn *colo_conn_table_find(struct colo_conn_table *t,
					  const struct colo_flow_key *k,
					  uint64_t hash)
{
	struct colo_rw_conn *c = t->buckets[hash & (t->nbuckets - 1)];

	for (; c; c = c->hnext)
		if (c->hash == hash && !memcmp(&c->key, k, sizeof(*k)))
			return c;
	return NULL;
}

static void grow(struct colo_conn_table *t)
{
	size_t n = t->nbuckets * 2;
	struct colo_rw_conn **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct colo_rw_conn *c = t->buckets[i];

		while (c) {
			struct colo_rw_conn *next = c->hnext;
			size_t b = c->hash & (n - 1);

			c->hnext = nb[b];
			nb[b] = c;
			c = next;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

struct colo_rw_conn *colo_conn_table_insert(struct colo_conn_table *t,
					    const struct colo_flow_key *k,
					    uint64_t hash)
{
	struct colo_rw_conn *c = t->free_list;

	if (c) {
		t->free_list = c->hnext;
		t->nfree--;
	} else {
		c = malloc(sizeof(*c));
		if (!c)
			return NULL;
	}
	memset(c, 0, sizeof(*c));
	c->key = *k;
	c->hash = hash;
	if (t->count >= t->nbuckets)
		grow(t);
	size_t b = hash & (t->nbuckets - 1);
	c->hnext = t->buckets[b];
	t->buckets[b] = c;
	t->count++;
	return c;
}

static void recycle(struct colo_conn_table *t, struct colo_rw_conn *c)
{
	t->count--;
	if (t->nfree < FREE_LIST_MAX) {
		c->hnext = t->free_list;
		t->free_list = c;
		t->nfree++;
	} else {
		free(c);
	}
}

void colo_conn_table_remove(struct colo_conn_table *t, struct colo_rw_conn *c)
{
	struct colo_rw_conn **pp = &t->buckets[c->hash & (t->nbuckets - 1)];

	while (*pp && *pp != c)
		pp = &(*pp)->hnext;
	if (!*pp)
		return;
	*pp = c->hnext;
	recycle(t, c);
}

size_t colo_conn_table_sweep(struct colo_conn_table *t, colo_conn_visit_fn fn,
			     void *opaque)
{
	size_t removed = 0;

	for (size_t i = 0; i < t->nbuckets; i++) {
		struct colo_rw_conn **pp = &t->buckets[i];

		while (*pp) {
			struct colo_rw_conn *c = *pp;

			if (fn(opaque, c)) {
				*pp = c->hnext;
				recycle(t, c);
				removed++;
			} else {
				pp = &c->hnext;
			}
		}
	}
	return removed;
}
