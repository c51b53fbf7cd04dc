/*
 * conn_table.h - the rewriter's connections, found by key in O(1).
 *
 * Chained hashing keyed by SipHash with a random key, so that no client
 * can pile connections into one bucket. The table doubles when it holds as
 * many connections as buckets and is never cleared wholesale: entries
 * leave one by one and are recycled through a free list, so the steady
 * state allocates nothing per packet.
 */
#ifndef COLO_CONN_TABLE_H
#define COLO_CONN_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flow.h"

/* What one guest's SYN or SYN/ACK told us. */
struct colo_rw_side {
	uint32_t isn;
	uint32_t tsval;
	bool have;
	bool has_ts;
	bool fallback; /* primary side guessed from the client's ACK */
};

struct colo_rw_conn {
	struct colo_rw_conn *hnext;
	uint64_t hash;
	struct colo_flow_key key; /* the guest's egress direction */
	uint64_t epoch;		  /* rewriter epoch the offsets belong to */
	uint64_t last_ns;
	uint32_t seq_off; /* secondary ISN - primary ISN */
	uint32_t ts_off;  /* secondary TSval - primary TSval */
	struct colo_rw_side sec, pri;
	bool ready;	  /* seq_off/ts_off valid: egress may pass */
	bool ts_ok;	  /* both SYN(/ACK)s carried timestamps */
	bool cp_zero;	  /* a checkpoint made the offsets 0 */
	bool established; /* past the handshake: ISNs are fixed for life */
	bool fin_out, fin_in, rst;
};

struct colo_conn_table {
	struct colo_rw_conn **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	uint64_t key[2];
	struct colo_rw_conn *free_list;
	size_t nfree;
};

/* Returns true to remove the entry. */
typedef bool (*colo_conn_visit_fn)(void *opaque, struct colo_rw_conn *c);

/* conn_table.c APIs: */
int colo_conn_table_init(struct colo_conn_table *t, const uint64_t key[2]);
void colo_conn_table_destroy(struct colo_conn_table *t);
uint64_t colo_conn_table_hash(const struct colo_conn_table *t,
			      const struct colo_flow_key *k);
struct colo_rw_conn *colo_conn_table_find(struct colo_conn_table *t,
					  const struct colo_flow_key *k,
					  uint64_t hash);
/* Inserts a zeroed entry for k; NULL when memory is exhausted. */
struct colo_rw_conn *colo_conn_table_insert(struct colo_conn_table *t,
					    const struct colo_flow_key *k,
					    uint64_t hash);
void colo_conn_table_remove(struct colo_conn_table *t, struct colo_rw_conn *c);
/* Visits every entry; removes those for which fn returns true. Returns
 * how many were removed. */
size_t colo_conn_table_sweep(struct colo_conn_table *t, colo_conn_visit_fn fn,
			     void *opaque);

#endif
