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

/* colo_flow_table_init, _destroy, _count, _hash, _find, _insert, _remove
 * and _sweep over struct colo_flow entries keyed by their 5-tuple. */
COLO_KT_TYPED(colo_flow_table, struct colo_flow, hn, struct colo_flow_key, key)

#endif
