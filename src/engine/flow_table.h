/*
 * flow_table.h - the comparer's flows, found by key in O(1): typed
 * wrappers over keyed_table.h (SipHash chains, growth, recycling).
 */
#ifndef COLO_FLOW_TABLE_H
#define COLO_FLOW_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "flow_state.h"
#include "keyed_table.h"

struct colo_flow_table {
	struct colo_keyed_table kt;
};

static inline int colo_flow_table_init(struct colo_flow_table *t,
				       const uint64_t key[2])
{
	return colo_kt_init(&t->kt, key, sizeof(struct colo_flow),
			    offsetof(struct colo_flow, hn),
			    offsetof(struct colo_flow, key),
			    sizeof(struct colo_flow_key));
}

static inline void colo_flow_table_destroy(struct colo_flow_table *t)
{
	colo_kt_destroy(&t->kt);
}

static inline size_t colo_flow_table_count(const struct colo_flow_table *t)
{
	return t->kt.count;
}

static inline uint64_t colo_flow_table_hash(const struct colo_flow_table *t,
					    const struct colo_flow_key *k)
{
	return colo_kt_hash(&t->kt, k);
}

static inline struct colo_flow *
colo_flow_table_find(struct colo_flow_table *t, const struct colo_flow_key *k,
		     uint64_t hash)
{
	return colo_kt_find(&t->kt, k, hash);
}

/* Inserts a zeroed flow for k; NULL when memory is exhausted. */
static inline struct colo_flow *
colo_flow_table_insert(struct colo_flow_table *t,
		       const struct colo_flow_key *k, uint64_t hash)
{
	return colo_kt_insert(&t->kt, k, hash);
}

/* Unlinks f and keeps its memory for reuse. */
static inline void colo_flow_table_remove(struct colo_flow_table *t,
					  struct colo_flow *f)
{
	colo_kt_remove(&t->kt, f);
}

#endif
