/*
 * ram.c - the RAM file, its cache, and the pipelined changed-page scan.
 * See ram.h for why the scan compares bytes and how it is shared out.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/* Pages per chunk: small enough that the caller gets its first pages
 * to send almost at once and a late helper holds up little at the end,
 * large enough that claiming costs nothing (1 MiB of RAM). */
#define SCAN_CHUNK	 256u
#define SCAN_THREADS_MAX 16u

struct colo_ram_scan {
	const struct colo_ram *r;
	uint32_t npages, nchunks;
	atomic_uint next_chunk;	 /* next chunk to claim */
	uint32_t *found;	 /* chunk c's finds at found[c * SCAN_CHUNK] */
	uint64_t *data;		 /* bit per page: allocated in the file */
	uint32_t *count;	 /* finds of chunk c, once ready[c] */
	atomic_uchar *ready;	 /* chunk c compared (release/acquire) */
	unsigned char *consumed; /* caller only: chunk given out whole */
	uint32_t low;		 /* caller only: chunks below are consumed */
	uint32_t cur, cur_off;	 /* caller only: chunk being given out */
	bool have_cur;
	unsigned int nhelpers;
	pthread_t helpers[SCAN_THREADS_MAX];
};

static const uint8_t zero_page[COLO_RAM_PAGE];

/* Marks in bits the pages of the RAM file that hold data; the rest are
 * holes, which read as zero. One pass of SEEK_DATA/SEEK_HOLE over the
 * file: each call walks the file's pages from the offset given, so asking
 * per chunk would walk a dense file once per chunk. When the file system
 * cannot tell, every page counts as data, which is always safe. */
static void find_data(const struct colo_ram *r, uint64_t *bits, uint32_t npages)
{
	uint64_t off = 0;

	while (off < r->size) {
		off_t d = lseek(r->fd, (off_t)off, SEEK_DATA), h;

		if (d < 0 && errno == ENXIO)
			return; /* hole to the end */
		h = d < 0 ? -1 : lseek(r->fd, d, SEEK_HOLE);
		if (d < 0 || h < 0) {
			d = (off_t)off;
			h = (off_t)r->size;
		}
		for (uint64_t p = (uint64_t)d / COLO_RAM_PAGE;
		     p < npages && p * COLO_RAM_PAGE < (uint64_t)h; p++)
			bits[p / 64] |= 1ull << (p % 64);
		off = (uint64_t)h;
	}
}

/* Compares one chunk. Pages in holes of the RAM file are zero and are
 * only checked against the cache (whose never-written pages are the one
 * zero page, so that costs no memory bandwidth): a guest that has not
 * touched all its RAM is not charged for the rest, and reading a hole
 * through the mapping would allocate it. */
static void scan_chunk(struct colo_ram_scan *s, uint32_t c)
{
	const uint8_t *g = s->r->guest, *k = s->r->cache;
	uint32_t first = c * SCAN_CHUNK, n = 0;
	uint32_t end =
		first + SCAN_CHUNK < s->npages ? first + SCAN_CHUNK : s->npages;

	for (uint32_t i = first; i < end; i++) {
		size_t off = (size_t)i * COLO_RAM_PAGE;
		bool data = s->data[i / 64] >> (i % 64) & 1;

		if (memcmp(data ? g + off : zero_page, k + off, COLO_RAM_PAGE))
			s->found[first + n++] = i;
	}
	s->count[c] = n;
	atomic_store_explicit(&s->ready[c], 1, memory_order_release);
}

/* Claims the next chunk, or returns false when none is left. */
static bool claim(struct colo_ram_scan *s, uint32_t *c)
{
	*c = atomic_fetch_add_explicit(&s->next_chunk, 1, memory_order_relaxed);
	return *c < s->nchunks;
}

static void *helper(void *arg)
{
	struct colo_ram_scan *s = arg;
	uint32_t c;

	while (claim(s, &c))
		scan_chunk(s, c);
	return NULL;
}

struct colo_ram_scan *colo_ram_scan_start(const struct colo_ram *r,
					  unsigned int threads)
{
	struct colo_ram_scan *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->r = r;
	s->npages = (uint32_t)(r->size / COLO_RAM_PAGE);
	s->nchunks = (s->npages + SCAN_CHUNK - 1) / SCAN_CHUNK;
	s->found = malloc(((size_t)s->npages + 1) * sizeof(*s->found));
	s->count = malloc(((size_t)s->nchunks + 1) * sizeof(*s->count));
	s->ready = calloc((size_t)s->nchunks + 1, sizeof(*s->ready));
	s->consumed = calloc((size_t)s->nchunks + 1, 1);
	s->data = calloc((size_t)s->npages / 64 + 1, sizeof(*s->data));
	if (!s->found || !s->count || !s->ready || !s->consumed || !s->data) {
		colo_ram_scan_end(s);
		return NULL;
	}
	find_data(r, s->data, s->npages);
	atomic_init(&s->next_chunk, 0);
	if (threads > SCAN_THREADS_MAX)
		threads = SCAN_THREADS_MAX;
	/* Without a helper thread the caller scans all: slower, not wrong. */
	for (unsigned int t = 1; t < threads; t++)
		if (pthread_create(&s->helpers[s->nhelpers], NULL, helper, s) ==
		    0)
			s->nhelpers++;
	return s;
}

/* A compared chunk not given out yet, lowest first; false if none. */
static bool ready_chunk(struct colo_ram_scan *s, uint32_t *c)
{
	uint32_t claimed =
		atomic_load_explicit(&s->next_chunk, memory_order_relaxed);

	if (claimed > s->nchunks)
		claimed = s->nchunks;
	while (s->low < s->nchunks && s->consumed[s->low])
		s->low++;
	for (uint32_t i = s->low; i < claimed; i++)
		if (!s->consumed[i] &&
		    atomic_load_explicit(&s->ready[i], memory_order_acquire)) {
			*c = i;
			return true;
		}
	return false;
}

uint32_t colo_ram_scan_next(struct colo_ram_scan *s, uint32_t *pages,
			    uint32_t max)
{
	uint32_t k = 0, c;

	while (k < max) {
		if (!s->have_cur && ready_chunk(s, &s->cur)) {
			s->have_cur = true;
			s->cur_off = 0;
		}
		if (s->have_cur) {
			uint32_t left = s->count[s->cur] - s->cur_off;
			uint32_t take = left < max - k ? left : max - k;

			memcpy(pages + k,
			       s->found + s->cur * SCAN_CHUNK + s->cur_off,
			       take * sizeof(*pages));
			k += take;
			s->cur_off += take;
			if (s->cur_off == s->count[s->cur]) {
				s->consumed[s->cur] = 1;
				s->have_cur = false;
			}
			continue;
		}
		/* Nothing compared is waiting: give out what we have (the
		 * caller sends it) before comparing more. */
		if (k)
			break;
		if (claim(s, &c)) {
			scan_chunk(s, c);
			continue;
		}
		if (s->low >= s->nchunks)
			break; /* all given out */
		/* A helper is finishing its last chunk (at most 1 MiB). */
		usleep(20);
	}
	return k;
}

void colo_ram_scan_end(struct colo_ram_scan *s)
{
	if (!s)
		return;
	/* Helpers stop at their next claim. */
	atomic_store(&s->next_chunk, s->nchunks);
	for (unsigned int t = 0; t < s->nhelpers; t++)
		pthread_join(s->helpers[t], NULL);
	free(s->found);
	free(s->count);
	free(s->ready);
	free(s->consumed);
	free(s->data);
	free(s);
}

long colo_ram_changed(const struct colo_ram *r, unsigned int threads,
		      uint32_t **pages)
{
	uint32_t npages = (uint32_t)(r->size / COLO_RAM_PAGE), n;
	struct colo_ram_scan *s = colo_ram_scan_start(r, threads);
	uint32_t *out = malloc(((size_t)npages + 1) * sizeof(*out));
	long total = 0;

	if (!s || !out) {
		colo_ram_scan_end(s);
		free(out);
		return -1;
	}
	while ((n = colo_ram_scan_next(s, out + total,
				       npages - (uint32_t)total)))
		total += n;
	colo_ram_scan_end(s);
	*pages = out;
	return total;
}

int colo_ram_dump(const struct colo_ram *r, const char *path, char *err,
		  size_t errlen)
{
	static uint8_t buf[1 << 20];
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	uint64_t off = 0;

	if (out < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* pread, not the mapping: a hole reads as zeros and stays a hole. */
	while (off < r->size) {
		ssize_t n = pread(r->fd, buf, sizeof(buf), (off_t)off);

		if (n <= 0 || write(out, buf, (size_t)n) != n) {
			snprintf(err, errlen, "dumping RAM to %s: %s", path,
				 n == 0 ? "short file" : strerror(errno));
			close(out);
			return -1;
		}
		off += (uint64_t)n;
	}
	if (close(out) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void colo_ram_forget(struct colo_ram *r)
{
	/* A private anonymous mapping reads as zero again once dropped. */
	madvise(r->cache, r->size, MADV_DONTNEED);
}
