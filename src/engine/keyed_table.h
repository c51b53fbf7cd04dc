/*
 * keyed_table.h - entries found by a fixed-size key in O(1), for the
 * comparer's flows and the rewriter's connections alike.
 *
 * Chained hashing with a SipHash key chosen at start, so that no traffic
 * pattern can make lookups linear. The table doubles when it holds as many
 * entries as buckets and is never cleared wholesale: entries leave one by
 * one and are recycled through a free list, so the steady state allocates
 * nothing per packet; colo_kt_trim() gives back what a wave of
 * connections left behind (cached entries, surplus buckets). Entries embed
 * a struct colo_hnode and their key; the table knows where both are
 * (offsets) and how big an entry is.
 */
#ifndef COLO_KEYED_TABLE_H
#define COLO_KEYED_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "free_cache.h"

struct colo_hnode {
	struct colo_hnode *next; /* hash chain */
	uint64_t hash;
};

struct colo_keyed_table {
	struct colo_hnode **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	uint64_t key[2];
	size_t entry_size, node_off, key_off, key_len;
	struct colo_free_cache free_entries;
};

/* Returns true to remove the entry. */
typedef bool (*colo_kt_visit_fn)(void *opaque, void *entry);

/* keyed_table.c APIs: */
int colo_kt_init(struct colo_keyed_table *t, const uint64_t key[2],
		 size_t entry_size, size_t node_off, size_t key_off,
		 size_t key_len);
void colo_kt_destroy(struct colo_keyed_table *t);
uint64_t colo_kt_hash(const struct colo_keyed_table *t, const void *key);
void *colo_kt_find(const struct colo_keyed_table *t, const void *key,
		   uint64_t hash);
/* Inserts a zeroed entry holding key; NULL when memory is exhausted. */
void *colo_kt_insert(struct colo_keyed_table *t, const void *key,
		     uint64_t hash);
/* Unlinks entry and keeps its memory for reuse. */
void colo_kt_remove(struct colo_keyed_table *t, void *entry);
/* Frees up to *budget cached entries that stayed unused for a period
 * (see free_cache.h). When `period` (once a period, not per packet: it
 * is O(buckets) when it shrinks), first ends the period and halves the
 * bucket array while it has over four buckets per entry. Returns bytes
 * freed. */
size_t colo_kt_trim(struct colo_keyed_table *t, bool period, uint32_t *budget);
/* Bytes of entries cached for reuse. */
size_t colo_kt_cached(const struct colo_keyed_table *t);
/* Visits every entry; removes those for which fn returns true. Returns
 * how many were removed. */
size_t colo_kt_sweep(struct colo_keyed_table *t, colo_kt_visit_fn fn,
		     void *opaque);

/* Typed wrappers for one kind of entry: struct NAME { kt }, and
 * NAME_init, _destroy, _count, _hash, _find, _insert (a zeroed entry
 * holding the key; NULL when memory is exhausted), _remove (the memory is
 * kept for reuse) and _sweep, taking and returning ENTRY pointers. The
 * entry holds its struct colo_hnode in NODE and its key (of type KEYTYPE)
 * in KEY. */
#define COLO_KT_TYPED(NAME, ENTRY, NODE, KEYTYPE, KEY)                         \
	struct NAME {                                                          \
		struct colo_keyed_table kt;                                    \
	};                                                                     \
	static inline int NAME##_init(struct NAME *t, const uint64_t k[2])     \
	{                                                                      \
		return colo_kt_init(&t->kt, k, sizeof(ENTRY),                  \
				    offsetof(ENTRY, NODE),                     \
				    offsetof(ENTRY, KEY), sizeof(KEYTYPE));    \
	}                                                                      \
	static inline void NAME##_destroy(struct NAME *t)                      \
	{                                                                      \
		colo_kt_destroy(&t->kt);                                       \
	}                                                                      \
	static inline size_t NAME##_count(const struct NAME *t)                \
	{                                                                      \
		return t->kt.count;                                            \
	}                                                                      \
	static inline uint64_t NAME##_hash(const struct NAME *t,               \
					   const KEYTYPE *k)                   \
	{                                                                      \
		return colo_kt_hash(&t->kt, k);                                \
	}                                                                      \
	static inline ENTRY *NAME##_find(struct NAME *t, const KEYTYPE *k,     \
					 uint64_t hash)                        \
	{                                                                      \
		return colo_kt_find(&t->kt, k, hash);                          \
	}                                                                      \
	static inline ENTRY *NAME##_insert(struct NAME *t, const KEYTYPE *k,   \
					   uint64_t hash)                      \
	{                                                                      \
		return colo_kt_insert(&t->kt, k, hash);                        \
	}                                                                      \
	static inline void NAME##_remove(struct NAME *t, ENTRY *e)             \
	{                                                                      \
		colo_kt_remove(&t->kt, e);                                     \
	}                                                                      \
	static inline size_t NAME##_sweep(struct NAME *t, colo_kt_visit_fn fn, \
					  void *opaque)                        \
	{                                                                      \
		return colo_kt_sweep(&t->kt, fn, opaque);                      \
	}

#endif
