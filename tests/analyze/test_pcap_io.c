/*
 * test_pcap_io.c - pcap reading and writing: what goes out comes back,
 * and every kind of bad file is an error message, not a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pcap_io.h"

static char dir[] = "/tmp/colo-test-pcap-XXXXXX";

static char *path_of(const char *name)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static void fill(struct colo_capture *c)
{
	uint8_t frame[1600];

	for (size_t i = 0; i < 5; i++) {
		for (size_t j = 0; j < sizeof(frame); j++)
			frame[j] = (uint8_t)(i * 31 + j);
		/* whole microseconds: the writer keeps microseconds */
		assert_int_equal(colo_capture_add(c,
						  1700000000123456000ull +
							  i * 1000000ull,
						  frame, 60 + i * 300,
						  60 + i * 300 + (i == 3) * 40),
				 0);
	}
}

static void test_round_trip(void **state)
{
	struct colo_capture out, in;
	char err[256];

	(void)state;
	colo_capture_init(&out);
	colo_capture_init(&in);
	fill(&out);
	assert_int_equal(colo_pcap_write(path_of("rt.pcap"), &out, err,
					 sizeof(err)),
			 0);
	assert_int_equal(colo_pcap_read(path_of("rt.pcap"), &in, err,
					sizeof(err)),
			 0);
	assert_int_equal(in.n, out.n);
	assert_int_equal(in.bytes, out.bytes);
	assert_int_equal(in.truncated, 1);
	for (size_t i = 0; i < out.n; i++) {
		assert_int_equal(in.frames[i].ts_ns, out.frames[i].ts_ns);
		assert_int_equal(in.frames[i].len, out.frames[i].len);
		assert_int_equal(in.frames[i].wire_len, out.frames[i].wire_len);
		assert_memory_equal(in.frames[i].data, out.frames[i].data,
				    out.frames[i].len);
	}
	colo_capture_free(&out);
	colo_capture_free(&in);
}

static void test_empty_capture(void **state)
{
	struct colo_capture c;
	char err[256];

	(void)state;
	colo_capture_init(&c);
	assert_int_equal(colo_pcap_write(path_of("empty.pcap"), &c, err,
					 sizeof(err)),
			 0);
	assert_int_equal(colo_pcap_read(path_of("empty.pcap"), &c, err,
					sizeof(err)),
			 0);
	assert_int_equal(c.n, 0);
}

static void test_truncated(void **state)
{
	struct colo_capture out, in;
	char err[256] = "";
	long size;
	FILE *f;

	(void)state;
	colo_capture_init(&out);
	colo_capture_init(&in);
	fill(&out);
	assert_int_equal(colo_pcap_write(path_of("tr.pcap"), &out, err,
					 sizeof(err)),
			 0);
	f = fopen(path_of("tr.pcap"), "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fclose(f);
	/* cut the last frame in half */
	assert_int_equal(truncate(path_of("tr.pcap"), size - 700), 0);
	assert_int_equal(colo_pcap_read(path_of("tr.pcap"), &in, err,
					sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "tr.pcap"));
	assert_non_null(strstr(err, "truncated"));
	assert_int_equal(in.n, 4); /* frames before the cut were kept */
	/* a header cut short */
	colo_capture_free(&in);
	assert_int_equal(truncate(path_of("tr.pcap"), 10), 0);
	assert_int_equal(colo_pcap_read(path_of("tr.pcap"), &in, err,
					sizeof(err)),
			 -1);
	assert_int_equal(in.n, 0);
	colo_capture_free(&out);
	colo_capture_free(&in);
}

static void test_wrong_linktype(void **state)
{
	/* classic pcap header, link type 101 (raw IP) */
	static const uint8_t hdr[24] = {
		0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0,
		0,    0,    0,    0,    0, 0, 4, 0, 101, 0, 0, 0,
	};
	struct colo_capture c;
	char err[256] = "";
	FILE *f;

	(void)state;
	f = fopen(path_of("raw.pcap"), "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(hdr, 1, sizeof(hdr), f), sizeof(hdr));
	fclose(f);
	colo_capture_init(&c);
	assert_int_equal(colo_pcap_read(path_of("raw.pcap"), &c, err,
					sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "link type"));
	assert_non_null(strstr(err, "Ethernet"));
}

static void test_missing_and_not_pcap(void **state)
{
	struct colo_capture c;
	char err[256] = "";
	FILE *f;

	(void)state;
	colo_capture_init(&c);
	assert_int_equal(colo_pcap_read(path_of("nonexistent.pcap"), &c, err,
					sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "No such file"));

	f = fopen(path_of("text.pcap"), "w");
	assert_non_null(f);
	fputs("this is not a capture file, just some text\n", f);
	fclose(f);
	assert_int_equal(colo_pcap_read(path_of("text.pcap"), &c, err,
					sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "text.pcap"));

	assert_int_equal(colo_pcap_read(dir, &c, err, sizeof(err)), -1);
	assert_int_equal(c.n, 0);
}

static void test_write_error(void **state)
{
	struct colo_capture c;
	char err[256] = "";

	(void)state;
	colo_capture_init(&c);
	assert_int_equal(colo_pcap_write(path_of("no/such/dir.pcap"), &c, err,
					 sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "No such file"));
	if (access("/dev/full", W_OK) == 0) {
		fill(&c);
		assert_int_equal(colo_pcap_write("/dev/full", &c, err,
						 sizeof(err)),
				 -1);
		assert_non_null(strstr(err, "write failed"));
		colo_capture_free(&c);
	}
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	static const char *const names[] = { "rt.pcap", "empty.pcap",
					     "tr.pcap", "raw.pcap",
					     "text.pcap" };

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(path_of(names[i]));
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_empty_capture),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_wrong_linktype),
		cmocka_unit_test(test_missing_and_not_pcap),
		cmocka_unit_test(test_write_error),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
