/*
 * test_tls_stream.c - one TLS session used by several threads at once, as
 * the blk link and NBD connections use it: on both ends of a loopback TCP
 * connection a thread writes 16 MiB while another reads the peer's
 * 16 MiB at the same time; every byte arrives in order. Also: a read
 * with nothing to read ends at the receive timeout (-EAGAIN), try_read
 * does not wait, the end of the peer reads as an error, and a
 * handshake with a silent peer times out, and a frame of several records
 * leaves in one send().
 *
 * The credentials are made per run by mkcreds.sh (its path is argv[1]).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tls.h"
#include "tls_fixture.h"
#include "tls_stream.h"

#define TOTAL (16u << 20)

static const char *mkcreds;
static struct tls_fixture fx;

static int setup(void **state)
{
	(void)state;
	return tls_fixture_setup(&fx, mkcreds);
}

static int teardown(void **state)
{
	(void)state;
	return tls_fixture_teardown(&fx);
}

struct start_arg {
	int fd;
	struct colo_tls_stream *st;
	char err[256];
};

/* The server's handshake runs here while the client's runs in the test
 * thread: both block until the other answers. */
static void *server_start(void *p)
{
	struct start_arg *a = p;

	a->st = colo_tls_stream_start(a->fd, fx.alpha, true, "beta", 5000, 5000,
				      5000, a->err, sizeof(a->err));
	return NULL;
}

static uint8_t byte_at(unsigned int side, size_t i)
{
	return (uint8_t)(i * 31 + (i >> 13) + side * 101);
}

/* TLS streams on both ends of the connected pair fds. */
static void streams_on(int fds[2], struct colo_tls_stream *st[2],
		       unsigned int recv_ms)
{
	struct start_arg sa;
	pthread_t t;
	char err[256];

	sa = (struct start_arg){ .fd = fds[0] };
	assert_int_equal(pthread_create(&t, NULL, server_start, &sa), 0);
	st[1] = colo_tls_stream_start(fds[1], fx.beta, false, "alpha", 5000,
				      5000, recv_ms, err, sizeof(err));
	pthread_join(t, NULL);
	if (!st[1])
		fprintf(stderr, "client: %s\n", err);
	if (!sa.st)
		fprintf(stderr, "server: %s\n", sa.err);
	assert_non_null(st[1]);
	assert_non_null(sa.st);
	st[0] = sa.st;
	colo_tls_stream_set_recv_timeout(st[0], recv_ms);
}

static void streams(int fds[2], struct colo_tls_stream *st[2],
		    unsigned int recv_ms)
{
	tls_tcp_pair(fds);
	streams_on(fds, st, recv_ms);
}

/* Under TLS one frame (a header and a 64 KiB payload: five records)
 * leaves in one send(), not one write() per record: the cost measured on
 * the blk link (bench/blk/README.md). */
static void test_frame_leaves_in_one_send(void **state)
{
	enum { FRAMES = 8, PAYLOAD = 65536 };
	static uint8_t payload[PAYLOAD], got[PAYLOAD + 32];
	struct colo_tls_stream *st[2];
	struct tls_relay r;
	unsigned long before;
	uint8_t hdr[32];

	(void)state;
	tls_relay_start(&r);
	streams_on(r.ends, st, 5000);
	before = tls_relay_msgs(&r);
	memset(hdr, 0xc0, sizeof(hdr));
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = byte_at(1, i);
	for (int f = 0; f < FRAMES; f++) {
		struct iovec iov[2] = { { hdr, sizeof(hdr) },
					{ payload, sizeof(payload) } };
		size_t have = 0;

		assert_int_equal(colo_tls_stream_writev_all(st[1], iov, 2), 0);
		while (have < sizeof(got)) {
			ssize_t n = colo_tls_stream_read_some(
				st[0], got + have, sizeof(got) - have);

			assert_true(n > 0);
			have += (size_t)n;
		}
		assert_memory_equal(got, hdr, sizeof(hdr));
		assert_memory_equal(got + sizeof(hdr), payload,
				    sizeof(payload));
	}
	assert_int_equal(tls_relay_msgs(&r) - before, FRAMES);
	for (int i = 0; i < 2; i++) {
		colo_tls_stream_free(st[i]);
		close(r.ends[i]);
	}
	tls_relay_stop(&r);
}

struct writer {
	struct colo_tls_stream *st;
	unsigned int side;
	int rc;
};

/* Writes TOTAL bytes in uneven pieces (like frames of different sizes). */
static void *writer_main(void *p)
{
	struct writer *w = p;
	static __thread uint8_t buf[70000];
	size_t done = 0, piece = 1;

	while (done < TOTAL && w->rc == 0) {
		size_t n = piece % sizeof(buf) + 1;

		if (n > TOTAL - done)
			n = TOTAL - done;
		for (size_t i = 0; i < n; i++)
			buf[i] = byte_at(w->side, done + i);
		w->rc = colo_tls_stream_write_all(w->st, buf, n);
		done += n;
		piece = piece * 7 + 13;
	}
	return NULL;
}

struct reader {
	struct colo_tls_stream *st;
	unsigned int peer_side;
	size_t got;
	int bad;
};

static void *reader_main(void *p)
{
	struct reader *r = p;
	static __thread uint8_t buf[50000];

	while (r->got < TOTAL) {
		ssize_t n = colo_tls_stream_read_some(r->st, buf, sizeof(buf));

		if (n <= 0) {
			r->bad = 1;
			return NULL;
		}
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != byte_at(r->peer_side, r->got + i))
				r->bad = 1;
		r->got += (size_t)n;
	}
	return NULL;
}

static void test_full_duplex_threads(void **state)
{
	struct colo_tls_stream *st[2];
	struct writer w[2];
	struct reader r[2];
	pthread_t tw[2], tr[2];
	int fds[2];

	(void)state;
	streams(fds, st, 10000);
	for (unsigned int i = 0; i < 2; i++) {
		w[i] = (struct writer){ .st = st[i], .side = i };
		r[i] = (struct reader){ .st = st[i], .peer_side = 1 - i };
		assert_int_equal(
			pthread_create(&tw[i], NULL, writer_main, &w[i]), 0);
		assert_int_equal(
			pthread_create(&tr[i], NULL, reader_main, &r[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(tw[i], NULL);
		pthread_join(tr[i], NULL);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(w[i].rc, 0);
		assert_int_equal(r[i].bad, 0);
		assert_int_equal(r[i].got, TOTAL);
	}
	for (int i = 0; i < 2; i++) {
		colo_tls_stream_free(st[i]);
		close(fds[i]);
	}
}

static void test_timeouts_and_end(void **state)
{
	struct colo_tls_stream *st[2];
	struct timespec t0, t1;
	uint8_t b[16];
	int fds[2];
	ssize_t n;
	double ms;

	(void)state;
	streams(fds, st, 300);
	assert_int_equal(colo_tls_stream_try_read(st[0], b, sizeof(b)),
			 -EAGAIN);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(colo_tls_stream_read_some(st[0], b, sizeof(b)),
			 -EAGAIN);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 250);
	assert_int_equal(colo_tls_stream_write_all(st[1], "hello", 5), 0);
	assert_int_equal(colo_tls_stream_read_some(st[0], b, sizeof(b)), 5);
	assert_memory_equal(b, "hello", 5);
	colo_tls_stream_free(st[1]);
	close(fds[1]);
	/* The peer went without close_notify: OpenSSL 3 calls that an
	 * unexpected EOF (-EPROTO); a clean close would be -ECONNRESET. */
	n = colo_tls_stream_read_some(st[0], b, sizeof(b));
	assert_true(n == -ECONNRESET || n == -EPROTO);
	colo_tls_stream_free(st[0]);
	close(fds[0]);
}

static void test_silent_peer_times_out(void **state)
{
	char err[256] = "";
	int fds[2];

	(void)state;
	tls_tcp_pair(fds);
	/* The client never speaks: the server's handshake gives up. */
	assert_null(colo_tls_stream_start(fds[0], fx.alpha, true, "beta", 300,
					  0, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "timed out"));
	close(fds[0]);
	close(fds[1]);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_duplex_threads),
		cmocka_unit_test(test_timeouts_and_end),
		cmocka_unit_test(test_silent_peer_times_out),
		cmocka_unit_test(test_frame_leaves_in_one_send),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: test_tls_stream MKCREDS_SH\n");
		return 2;
	}
	mkcreds = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
