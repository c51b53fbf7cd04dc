/*
 * conn_table.h - the rewriter's connections, found by key in O(1): typed
 * wrappers over keyed_table.h (SipHash chains with a random key, so no
 * client can pile connections into one bucket; growth; recycling).
 */
#ifndef COLO_CONN_TABLE_H
#define COLO_CONN_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flow.h"
#include "keyed_table.h"

/* What one guest's SYN or SYN/ACK told us. */
struct colo_rw_side {
	uint32_t isn;
	uint32_t tsval;
	bool have;
	bool has_ts;
	bool fallback; /* primary side guessed from the client's ACK */
};

struct colo_rw_conn {
	struct colo_hnode hn;	  /* conn_table.h */
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
	struct colo_keyed_table kt;
};

static inline int colo_conn_table_init(struct colo_conn_table *t,
				       const uint64_t key[2])
{
	return colo_kt_init(&t->kt, key, sizeof(struct colo_rw_conn),
			    offsetof(struct colo_rw_conn, hn),
			    offsetof(struct colo_rw_conn, key),
			    sizeof(struct colo_flow_key));
}

static inline void colo_conn_table_destroy(struct colo_conn_table *t)
{
	colo_kt_destroy(&t->kt);
}

static inline size_t colo_conn_table_count(const struct colo_conn_table *t)
{
	return t->kt.count;
}

static inline uint64_t colo_conn_table_hash(const struct colo_conn_table *t,
					    const struct colo_flow_key *k)
{
	return colo_kt_hash(&t->kt, k);
}

static inline struct colo_rw_conn *
colo_conn_table_find(struct colo_conn_table *t, const struct colo_flow_key *k,
		     uint64_t hash)
{
	return colo_kt_find(&t->kt, k, hash);
}

/* Inserts a zeroed entry for k; NULL when memory is exhausted. */
static inline struct colo_rw_conn *
colo_conn_table_insert(struct colo_conn_table *t,
		       const struct colo_flow_key *k, uint64_t hash)
{
	return colo_kt_insert(&t->kt, k, hash);
}

static inline void colo_conn_table_remove(struct colo_conn_table *t,
					  struct colo_rw_conn *c)
{
	colo_kt_remove(&t->kt, c);
}

/* Visits every entry (a struct colo_rw_conn *); removes those for which
 * fn returns true. Returns how many were removed. */
static inline size_t colo_conn_table_sweep(struct colo_conn_table *t,
					   colo_kt_visit_fn fn, void *opaque)
{
	return colo_kt_sweep(&t->kt, fn, opaque);
}

#endif
