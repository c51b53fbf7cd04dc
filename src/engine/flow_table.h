/*
 * flow_table.h - the flows, found by key in O(1).
 *
 * Chained hashing with a SipHash key chosen at start, so that no traffic
 * pattern can make lookups linear. The table doubles when it holds as many
 * flows as buckets and is never cleared wholesale; flows leave one by one
 * when the comparer reclaims them. Flow structs are recycled.
 */
#ifndef COLO_FLOW_TABLE_H
#define COLO_FLOW_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "flow_state.h"

struct colo_flow_table {
	struct colo_flow **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	uint64_t key[2];
	struct colo_flow *free_list;
	size_t nfree;
};

/* flow_table.c APIs: */
int colo_flow_table_init(struct colo_flow_table *t, const uint64_t key[2]);
void colo_flow_table_destroy(struct colo_flow_table *t);
uint64_t colo_flow_table_hash(const struct colo_flow_table *t,
			      const struct colo_flow_key *k);
struct colo_flow *colo_flow_table_find(struct colo_flow_table *t,
				       const struct colo_flow_key *k,
				       uint64_t hash);
/* Inserts a zeroed flow for k; NULL when memory is exhausted. */
struct colo_flow *colo_flow_table_insert(struct colo_flow_table *t,
					 const struct colo_flow_key *k,
					 uint64_t hash);
/* Unlinks f and keeps its memory for reuse. */
void colo_flow_table_remove(struct colo_flow_table *t, struct colo_flow *f);

#endif
