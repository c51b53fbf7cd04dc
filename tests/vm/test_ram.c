/*
 * test_ram.c - the pipelined changed-page scan (ram.c) finds exactly the
 * pages that differ, each once, whatever the thread count and however
 * little the caller takes at a time, skipping holes of the RAM file
 * without allocating them; the dump leaves them holes too; and
 * colo_flink_sendv puts a gathered
 * PAGES frame on the wire byte for byte as the receiver parses it, also
 * when the socket takes it in many partial writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/byteorder.h"
#include "common/clock.h"
#include "frame_link.h"
#include "ram.h"

#define MB 8u

static void open_ram(struct colo_ram *r)
{
	char path[64], err[256];

	snprintf(path, sizeof(path), "/dev/shm/colo-test-ram-%d", getpid());
	assert_int_equal(colo_ram_open(r, path, MB << 20, err, sizeof(err)), 0);
	unlink(path);
}

/* Marks a pseudo-random set of pages changed (first and last included,
 * a byte at the page's very end so memcmp must read all of it); returns
 * the expected membership. */
static unsigned char *dirty_some(struct colo_ram *r, unsigned seed)
{
	uint32_t npages = (uint32_t)(r->size / COLO_RAM_PAGE);
	unsigned char *want = calloc(npages, 1);

	assert_non_null(want);
	srand(seed);
	for (uint32_t i = 0; i < npages; i++)
		if (i == 0 || i == npages - 1 || rand() % 7 == 0) {
			r->guest[(size_t)i * COLO_RAM_PAGE + COLO_RAM_PAGE -
				 1] ^= (uint8_t)(1 + rand() % 255);
			want[i] = 1;
		}
	return want;
}

static void check_scan(struct colo_ram *r, const unsigned char *want,
		       unsigned threads, uint32_t max)
{
	uint32_t npages = (uint32_t)(r->size / COLO_RAM_PAGE), n;
	unsigned char *seen = calloc(npages, 1);
	uint32_t *pages = malloc(max * sizeof(*pages));
	struct colo_ram_scan *s = colo_ram_scan_start(r, threads);
	uint32_t total = 0, expect = 0;

	assert_non_null(s);
	while ((n = colo_ram_scan_next(s, pages, max))) {
		assert_true(n <= max);
		for (uint32_t i = 0; i < n; i++) {
			assert_true(pages[i] < npages);
			assert_int_equal(seen[pages[i]], 0);
			seen[pages[i]] = 1;
		}
		total += n;
	}
	assert_int_equal(colo_ram_scan_next(s, pages, max), 0);
	colo_ram_scan_end(s);
	for (uint32_t i = 0; i < npages; i++) {
		assert_int_equal(seen[i], want[i]);
		expect += want[i];
	}
	assert_int_equal(total, expect);
	free(seen);
	free(pages);
}

static void test_scan_finds_exactly(void **state)
{
	struct colo_ram r;
	unsigned char *want;

	(void)state;
	open_ram(&r);
	/* Nothing changed: a fresh file equals the zero cache. */
	unsigned char *none = calloc(r.size / COLO_RAM_PAGE, 1);
	check_scan(&r, none, 2, 128);
	free(none);
	want = dirty_some(&r, 7);
	for (unsigned t = 1; t <= 4; t++) {
		check_scan(&r, want, t, 128);
		check_scan(&r, want, t, 1);
		check_scan(&r, want, t, 100000);
	}
	/* colo_ram_changed is the same scan in one call. */
	uint32_t *pages;
	long n = colo_ram_changed(&r, 2, &pages);
	long expect = 0;
	for (size_t i = 0; i < r.size / COLO_RAM_PAGE; i++)
		expect += want[i];
	assert_int_equal(n, expect);
	free(pages);
	/* Once the cache holds the guest, nothing differs. */
	memcpy(r.cache, r.guest, r.size);
	memset(want, 0, r.size / COLO_RAM_PAGE);
	check_scan(&r, want, 2, 128);
	free(want);
	colo_ram_close(&r);
}

static uint64_t allocated(const struct colo_ram *r)
{
	struct stat st;

	assert_int_equal(fstat(r->fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* Holes of the RAM file are zero: skipped unless the cache says the page
 * was not zero at the last checkpoint; neither the scan nor the dump
 * allocates them. */
static void test_holes(void **state)
{
	uint32_t npages;
	struct colo_ram r;
	unsigned char *want;
	char path[64], err[256];

	(void)state;
	open_ram(&r);
	npages = (uint32_t)(r.size / COLO_RAM_PAGE);
	want = calloc(npages, 1);
	/* Guest wrote pages 3 and 700; the cache had pages 5 (now a hole,
	 * e.g. discarded) and 700 non-zero. */
	r.guest[3 * COLO_RAM_PAGE + 9] = 1;
	r.guest[700 * COLO_RAM_PAGE] = 2;
	r.cache[700 * COLO_RAM_PAGE] = 3;
	r.cache[5 * COLO_RAM_PAGE + 4095] = 4;
	want[3] = want[5] = want[700] = 1;
	assert_int_equal(allocated(&r), 2 * COLO_RAM_PAGE);
	check_scan(&r, want, 2, 128);
	assert_int_equal(allocated(&r), 2 * COLO_RAM_PAGE);
	/* A page equal in both is not sent. */
	r.cache[700 * COLO_RAM_PAGE] = 2;
	want[700] = 0;
	check_scan(&r, want, 1, 128);

	snprintf(path, sizeof(path), "/dev/shm/colo-test-dump-%d", getpid());
	assert_int_equal(colo_ram_dump(&r, path, err, sizeof(err)), 0);
	assert_int_equal(allocated(&r), 2 * COLO_RAM_PAGE);
	FILE *f = fopen(path, "rb");
	uint8_t *back = malloc(r.size);
	assert_non_null(f);
	assert_int_equal(fread(back, 1, r.size, f), r.size);
	fclose(f);
	unlink(path);
	assert_memory_equal(back, r.guest, r.size);
	free(back);
	/* An unwritable place is an error, not a crash. */
	assert_int_equal(colo_ram_dump(&r, "/nonexistent/x", err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "/nonexistent/x"));
	free(want);
	colo_ram_close(&r);
}

static void test_scan_ended_early(void **state)
{
	struct colo_ram r;
	uint32_t pages[4];

	(void)state;
	open_ram(&r);
	free(dirty_some(&r, 3));
	/* A checkpoint that fails mid-send ends the scan with helpers
	 * still comparing: they must stop and be joined. */
	for (unsigned t = 1; t <= 3; t++) {
		struct colo_ram_scan *s = colo_ram_scan_start(&r, t);

		assert_non_null(s);
		assert_true(colo_ram_scan_next(s, pages, 4) > 0);
		colo_ram_scan_end(s);
	}
	colo_ram_close(&r);
}

static void test_sendv_frame(void **state)
{
	enum { N = 100 };
	static uint8_t ram[N * COLO_RAM_PAGE];
	uint8_t head[12], offs[N][8];
	struct iovec iov[1 + 2 * N];
	struct colo_flink *a, *b;
	struct colo_flink_frame f;
	const uint8_t *recs;
	uint64_t seq;
	uint32_t count;
	int sv[2], small = 4096;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* Small buffers: the frame goes out in many partial writes. */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	a = colo_flink_new(sv[0]);
	b = colo_flink_new(sv[1]);
	assert_non_null(a);
	assert_non_null(b);
	for (size_t i = 0; i < sizeof(ram); i++)
		ram[i] = (uint8_t)(i * 31 + i / 4096);
	colo_put_be64(head, 42);
	colo_put_be32(head + 8, N);
	iov[0] = (struct iovec){ head, sizeof(head) };
	for (int i = 0; i < N; i++) {
		/* Pages sent in reverse order of their place in RAM. */
		uint64_t off = (uint64_t)(N - 1 - i) * COLO_RAM_PAGE;

		colo_put_be64(offs[i], off);
		iov[1 + 2 * i] = (struct iovec){ offs[i], 8 };
		iov[2 + 2 * i] = (struct iovec){ ram + off, COLO_RAM_PAGE };
	}
	/* The receiver must read while the sender blocks: a child sends. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(colo_flink_sendv(a, COLO_FLINK_PAGES, iov, 1 + 2 * N,
				       colo_now_ns() + 10 * COLO_NS_PER_S) < 0);
	assert_int_equal(
		colo_flink_recv(b, &f, colo_now_ns() + 10 * COLO_NS_PER_S), 1);
	assert_int_equal(
		colo_flink_parse_pages(&f, sizeof(ram), &seq, &count, &recs),
		0);
	assert_int_equal(seq, 42);
	assert_int_equal(count, N);
	for (int i = 0; i < N; i++) {
		const uint8_t *rec = recs + (size_t)i * COLO_FLINK_PAGE_REC;
		uint64_t off = colo_get_be64(rec);

		assert_int_equal(off, (uint64_t)(N - 1 - i) * COLO_RAM_PAGE);
		assert_memory_equal(rec + 8, ram + off, COLO_RAM_PAGE);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* Too many pieces, or a payload over the frame limit: refused. */
	assert_int_equal(colo_flink_sendv(a, COLO_FLINK_PAGES, iov,
					  COLO_FLINK_IOV_MAX + 1,
					  colo_now_ns() + COLO_NS_PER_S),
			 -1);
	struct iovec big = { ram, COLO_FLINK_PAYLOAD_MAX + 1 };
	static uint8_t huge[COLO_FLINK_PAYLOAD_MAX + 1];
	big.iov_base = huge;
	assert_int_equal(colo_flink_sendv(a, COLO_FLINK_PAGES, &big, 1,
					  colo_now_ns() + COLO_NS_PER_S),
			 -1);
	colo_flink_free(a);
	colo_flink_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_finds_exactly),
		cmocka_unit_test(test_holes),
		cmocka_unit_test(test_scan_ended_early),
		cmocka_unit_test(test_sendv_frame),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
