/*
 * dirty_map.c - a flat bitmap of changed granules.
 *
 * A flat array rather than a sparse structure: its size is fixed by the
 * disk and the granularity (1 bit per granule), never by the write load,
 * so a long outage under heavy writes cannot make it grow.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dirty_map.h"

int colo_dirty_map_init(struct colo_dirty_map *m, uint64_t size, uint32_t gran)
{
	uint64_t nwords;

	memset(m, 0, sizeof(*m));
	if (gran < 512 || (gran & (gran - 1)))
		return -EINVAL;
	m->size = size;
	m->gran = gran;
	m->shift = (unsigned int)__builtin_ctz(gran);
	m->nbits = (size + gran - 1) >> m->shift;
	nwords = (m->nbits + 63) / 64;
	m->words = calloc(nwords ? nwords : 1, sizeof(uint64_t));
	return m->words ? 0 : -ENOMEM;
}

void colo_dirty_map_destroy(struct colo_dirty_map *m)
{
	free(m->words);
	m->words = NULL;
}

static void set_bit(struct colo_dirty_map *m, uint64_t i)
{
	uint64_t bit = 1ULL << (i & 63);

	if (!(m->words[i / 64] & bit)) {
		m->words[i / 64] |= bit;
		m->ndirty++;
	}
}

void colo_dirty_map_mark(struct colo_dirty_map *m, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (!len || off >= m->size)
		return;
	if (len > m->size - off)
		len = m->size - off;
	first = off >> m->shift;
	last = (off + len - 1) >> m->shift;
	for (uint64_t i = first; i <= last; i++)
		set_bit(m, i);
}

void colo_dirty_map_mark_all(struct colo_dirty_map *m)
{
	colo_dirty_map_mark(m, 0, m->size);
}

void colo_dirty_map_clear_all(struct colo_dirty_map *m)
{
	memset(m->words, 0, ((m->nbits + 63) / 64) * sizeof(uint64_t));
	m->ndirty = 0;
}

bool colo_dirty_map_test(const struct colo_dirty_map *m, uint64_t off)
{
	uint64_t i = off >> m->shift;

	if (off >= m->size)
		return false;
	return m->words[i / 64] & (1ULL << (i & 63));
}

void colo_dirty_map_merge(struct colo_dirty_map *dst,
			  const struct colo_dirty_map *src)
{
	uint64_t nwords = (dst->nbits + 63) / 64;

	dst->ndirty = 0;
	for (uint64_t w = 0; w < nwords; w++) {
		dst->words[w] |= src->words[w];
		dst->ndirty += (uint64_t)__builtin_popcountll(dst->words[w]);
	}
}

bool colo_dirty_map_next(const struct colo_dirty_map *m, uint64_t *pos,
			 uint64_t *off, uint32_t *len)
{
	uint64_t i = *pos >> m->shift;
	uint64_t nwords = (m->nbits + 63) / 64;

	if (*pos >= m->size)
		return false;
	for (uint64_t w = i / 64; w < nwords; w++) {
		uint64_t word = m->words[w];

		if (w == i / 64)
			word &= ~0ULL << (i & 63);
		if (!word)
			continue;
		i = w * 64 + (uint64_t)__builtin_ctzll(word);
		if (i >= m->nbits)
			return false;
		*off = i << m->shift;
		*len = m->gran;
		if (*off + *len > m->size)
			*len = (uint32_t)(m->size - *off);
		*pos = *off + m->gran;
		return true;
	}
	return false;
}
