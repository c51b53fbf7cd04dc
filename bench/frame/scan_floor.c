/*
 * scan_floor.c - the floor under the frame's pause on this machine: how
 * fast colo_ram_changed() (ram.c) can compare guest RAM with the cache of
 * the last checkpoint, with 1 and 2 threads, side by side with merely
 * reading the RAM once (what any scheme without a dirty log must at least
 * do). The RAM is a file in /dev/shm mapped shared, as QEMU's backend is.
 *
 *   scan_floor [MB] [rounds]     (default 256 MB, 7 rounds; medians)
 *
 * The ~1% of pages made different is what a loaded guest dirties; the
 * scan stops early on those, so it is close to the all-equal worst case.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "ram.h"

struct sum_part {
	const uint64_t *p;
	size_t n;
	uint64_t sum;
};

/* 16-byte vector words, so the read runs at memory speed, not at the
 * speed of a scalar add loop. */
typedef uint64_t v2u64 __attribute__((vector_size(16)));

static void *sum_words(void *arg)
{
	struct sum_part *s = arg;
	const v2u64 *p = (const v2u64 *)s->p;
	v2u64 a = { 0, 0 }, b = a, c = a, d = a;
	size_t n = s->n / 2;

	for (size_t i = 0; i + 4 <= n; i += 4) {
		a ^= p[i];
		b ^= p[i + 1];
		c ^= p[i + 2];
		d ^= p[i + 3];
	}
	a ^= b ^ c ^ d;
	s->sum = a[0] ^ a[1];
	return NULL;
}

/* Reads size bytes once with threads threads; returns the nanoseconds. */
static uint64_t read_once(const uint8_t *p, uint64_t size, unsigned threads,
			  uint64_t *sink)
{
	struct sum_part parts[2];
	pthread_t t1;
	uint64_t t0 = colo_now_ns();
	size_t words = size / 8;

	for (unsigned t = 0; t < threads; t++)
		parts[t] = (struct sum_part){
			.p = (const uint64_t *)p + words * t / threads,
			.n = words / threads,
		};
	if (threads == 2 && pthread_create(&t1, NULL, sum_words, &parts[1]))
		threads = 1;
	sum_words(&parts[0]);
	if (threads == 2)
		pthread_join(t1, NULL);
	*sink += parts[0].sum + (threads == 2 ? parts[1].sum : 0);
	return colo_now_ns() - t0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double median_ms(uint64_t *ns, int n)
{
	qsort(ns, (size_t)n, sizeof(*ns), cmp_u64);
	return ns[n / 2] / 1e6;
}

int main(int argc, char **argv)
{
	uint64_t mb = argc > 1 ? strtoull(argv[1], NULL, 10) : 256;
	int rounds = argc > 2 ? atoi(argv[2]) : 7;
	char path[64], err[256];
	struct colo_ram r;
	uint64_t sink = 0, size;
	uint64_t ns[4][64];
	long found = 0;

	if (mb < 1 || mb > 65536 || rounds < 1 || rounds > 64) {
		fprintf(stderr,
			"usage: scan_floor [MB 1..65536] [rounds 1..64]\n");
		return 2;
	}
	size = mb << 20;
	snprintf(path, sizeof(path), "/dev/shm/colo-scan-floor-%d", getpid());
	if (colo_ram_open(&r, path, size, err, sizeof(err)) < 0) {
		fprintf(stderr, "scan_floor: %s\n", err);
		return 1;
	}
	unlink(path);
	/* Non-zero contents everywhere (a guest that touched all its RAM),
	 * equal in guest and cache except every 97th page. */
	for (uint64_t i = 0; i < size / 8; i++)
		((uint64_t *)r.guest)[i] = i * 0x9e3779b97f4a7c15ull;
	memcpy(r.cache, r.guest, size);
	for (uint64_t pg = 0; pg < size / COLO_RAM_PAGE; pg += 97)
		r.guest[pg * COLO_RAM_PAGE + 2048] ^= 1;

	for (int i = 0; i < rounds; i++) {
		for (unsigned t = 1; t <= 2; t++) {
			uint32_t *pages;
			uint64_t t0 = colo_now_ns();
			long n = colo_ram_changed(&r, t, &pages);

			ns[t - 1][i] = colo_now_ns() - t0;
			if (n < 0) {
				fprintf(stderr, "scan_floor: out of memory\n");
				return 1;
			}
			found = n;
			free(pages);
			ns[t + 1][i] = read_once(r.guest, size, t, &sink);
		}
	}
	printf("scan floor: %llu MB guest RAM vs %llu MB cache, %d rounds, "
	       "medians (sink %llx)\n",
	       (unsigned long long)mb, (unsigned long long)mb, rounds,
	       (unsigned long long)(sink & 0xf));
	const char *names[4] = { "memcmp scan, 1 thread",
				 "memcmp scan, 2 threads",
				 "read RAM once, 1 thread",
				 "read RAM once, 2 threads" };
	for (int k = 0; k < 4; k++) {
		double ms = median_ms(ns[k], rounds);
		double bytes = (double)size * (k < 2 ? 2 : 1);

		printf("%-26s %7.1f ms  %5.1f GB/s read\n", names[k], ms,
		       bytes / ms / 1e6);
	}
	printf("changed pages found: %ld of %llu\n", found,
	       (unsigned long long)(size / COLO_RAM_PAGE));
	colo_ram_close(&r);
	return 0;
}
