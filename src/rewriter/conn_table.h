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

/* colo_conn_table_init, _destroy, _count, _hash, _find, _insert, _remove
 * and _sweep (visits every struct colo_rw_conn; removes those for which
 * fn returns true) over the connections keyed by the guest's egress
 * direction. */
COLO_KT_TYPED(colo_conn_table, struct colo_rw_conn, hn, struct colo_flow_key,
	      key)

#endif
