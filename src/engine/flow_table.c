/*
 * flow_table.c - keyed-hash table of flows.
 *
 * Growing rehashes every flow at once: amortised O(1), and a doubling is
 * rare (at 1M flows it moves 1M pointers, a few milliseconds).
 */
#include <stdlib.h>
#include <string.h>

#include "flow_table.h"
#include "siphash.h"

int colo_flow_table_init(struct colo_flow_table *t, const uint64_t key[2])
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

void colo_flow_table_destroy(struct colo_flow_table *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct colo_flow *f = t->buckets[i];
		while (f) {
			struct colo_flow *n = f->hnext;
			free(f);
			f = n;
		}
	}
	while (t->free_list) {
		struct colo_flow *n = t->free_list->hnext;
		free(t->free_list);
		t->free_list = n;
	}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

uint64_t colo_flow_table_hash(const struct colo_flow_table *t,
			      const struct colo_flow_key *k)
{
	return colo_siphash(t->key, k, sizeof(*k));
}

struct colo_flow *colo_flow_table_find(struct colo_flow_table *t,
				       const struct colo_flow_key *k,
				       uint64_t hash)
{
	struct colo_flow *f = t->buckets[hash & (t->nbuckets - 1)];

	for (; f; f = f->hnext)
		if (f->hash == hash && !memcmp(&f->key, k, sizeof(*k)))
			return f;
	return NULL;
}

static void grow(struct colo_flow_table *t)
{
	size_t n = t->nbuckets * 2;
	struct colo_flow **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return; /* keep working with longer chains */
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct colo_flow *f = t->buckets[i];
		while (f) {
			struct colo_flow *next = f->hnext;
			size_t b = f->hash & (n - 1);
			f->hnext = nb[b];
			nb[b] = f;
			f = next;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

struct colo_flow *colo_flow_table_insert(struct colo_flow_table *t,
					 const struct colo_flow_key *k,
					 uint64_t hash)
{
	struct colo_flow *f = t->free_list;

	if (f) {
		t->free_list = f->hnext;
		t->nfree--;
	} else {
		f = malloc(sizeof(*f));
		if (!f)
			return NULL;
	}
	memset(f, 0, sizeof(*f));
	f->key = *k;
	f->hash = hash;
	if (t->count >= t->nbuckets)
		grow(t);
	size_t b = hash & (t->nbuckets - 1);
	f->hnext = t->buckets[b];
	t->buckets[b] = f;
	t->count++;
	return f;
}

void colo_flow_table_remove(struct colo_flow_table *t, struct colo_flow *f)
{
	struct colo_flow **pp = &t->buckets[f->hash & (t->nbuckets - 1)];

	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (!*pp)
		return;
	*pp = f->hnext;
	t->count--;
	if (t->nfree < 4096) {
		f->hnext = t->free_list;
		t->free_list = f;
		t->nfree++;
	} else {
		free(f);
	}
}
