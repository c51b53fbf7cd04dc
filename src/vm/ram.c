/*
 * ram.c - the RAM file, its cache, and the threaded changed-page scan.
 * See ram.h for why the scan compares bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ram.h"

int colo_ram_open(struct colo_ram *r, const char *path, uint64_t size,
		  char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (r->fd < 0 || ftruncate(r->fd, (off_t)size) < 0) {
		snprintf(err, errlen, "RAM file %s: %s", path, strerror(errno));
		if (r->fd >= 0)
			close(r->fd);
		return -1;
	}
	r->size = size;
	r->guest =
		mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	r->cache = mmap(NULL, size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->guest == MAP_FAILED || r->cache == MAP_FAILED) {
		snprintf(err, errlen, "mapping %s: %s", path, strerror(errno));
		if (r->guest != MAP_FAILED)
			munmap(r->guest, size);
		if (r->cache != MAP_FAILED)
			munmap(r->cache, size);
		close(r->fd);
		return -1;
	}
	return 0;
}

void colo_ram_close(struct colo_ram *r)
{
	if (!r->size)
		return;
	munmap(r->guest, r->size);
	munmap(r->cache, r->size);
	close(r->fd);
	r->size = 0;
}

struct scan_part {
	const struct colo_ram *r;
	uint32_t first, end; /* page range */
	uint32_t *pages;     /* found, ascending */
	uint32_t n;
};

static void *scan(void *arg)
{
	struct scan_part *p = arg;
	const uint8_t *g = p->r->guest, *c = p->r->cache;

	for (uint32_t i = p->first; i < p->end; i++) {
		size_t off = (size_t)i * COLO_RAM_PAGE;

		if (memcmp(g + off, c + off, COLO_RAM_PAGE))
			p->pages[p->n++] = i;
	}
	return NULL;
}

long colo_ram_changed(const struct colo_ram *r, unsigned int threads,
		      uint32_t **pages)
{
	uint32_t npages = (uint32_t)(r->size / COLO_RAM_PAGE);
	struct scan_part parts[16];
	pthread_t tids[16];
	uint32_t *out;
	long total = 0;

	if (threads < 1)
		threads = 1;
	if (threads > 16)
		threads = 16;
	/* Each part writes into its own slice of out, then slices are
	 * packed: no locking, no second buffer. */
	out = malloc(((size_t)npages + 1) * sizeof(*out));
	if (!out)
		return -1;
	for (unsigned int t = 0; t < threads; t++) {
		parts[t] = (struct scan_part){
			.r = r,
			.first = (uint32_t)((uint64_t)npages * t / threads),
			.end = (uint32_t)((uint64_t)npages * (t + 1) / threads),
		};
		parts[t].pages = out + parts[t].first;
	}
	for (unsigned int t = 1; t < threads; t++)
		if (pthread_create(&tids[t], NULL, scan, &parts[t]) != 0) {
			/* No thread: this one does that part too. */
			tids[t] = 0;
		}
	scan(&parts[0]);
	for (unsigned int t = 1; t < threads; t++) {
		if (tids[t])
			pthread_join(tids[t], NULL);
		else
			scan(&parts[t]);
	}
	for (unsigned int t = 0; t < threads; t++) {
		memmove(out + total, parts[t].pages, parts[t].n * sizeof(*out));
		total += parts[t].n;
	}
	*pages = out;
	return total;
}

void colo_ram_forget(struct colo_ram *r)
{
	/* A private anonymous mapping reads as zero again once dropped. */
	madvise(r->cache, r->size, MADV_DONTNEED);
}
