/*
 * test_plink_tls.c - the proxy link (src/proxy/link.c) under TLS: a
 * wake-up's batch of frames leaves in one send(), not one write() per
 * 16 KiB record, and leaves at that flush (nothing waits for a later
 * one); a backlog larger than the socket takes goes out in order over
 * partial sends, as the owner would drive them on EPOLLOUT.
 *
 * The credentials are made per run by mkcreds.sh (its path is argv[1]).
 */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "link.h"
#include "tls_fixture.h"

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

/* What the receiving end saw: INGRESS frames numbered by their first four
 * bytes, each payload checked against the pattern of its number. */
struct seen {
	unsigned int frames, bad;
	uint64_t bytes;
};

static uint8_t byte_at(uint32_t seq, size_t i)
{
	return (uint8_t)(seq * 13 + i * 7 + (i >> 11));
}

static void fill(uint8_t *p, size_t len, uint32_t seq)
{
	memcpy(p, &seq, 4);
	for (size_t i = 4; i < len; i++)
		p[i] = byte_at(seq, i);
}

static int on_frame(void *opaque, const struct colo_plink_frame *f)
{
	struct seen *s = opaque;
	uint32_t seq;

	if (f->type != COLO_PLINK_INGRESS)
		return 0;
	memcpy(&seq, f->payload, 4);
	if (seq != s->frames)
		s->bad++;
	for (size_t i = 4; i < f->len; i++)
		if (f->payload[i] != byte_at(seq, i)) {
			s->bad++;
			break;
		}
	s->frames++;
	s->bytes += f->len;
	return 0;
}

static void nonblocking(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK),
			 0);
}

/* Links on fds[0] (the secondary: accepts, alpha) and fds[1] (the primary:
 * connects, beta), driven until both verified the other's HELLO. */
static void links_up(int fds[2], struct colo_plink l[2])
{
	char err[256];
	struct seen s = { 0 };

	for (int i = 0; i < 2; i++) {
		char e[256];
		struct colo_tls *t =
			colo_tls_new(i ? fx.beta : fx.alpha, fds[i], i == 0,
				     i ? "alpha" : "beta", e, sizeof(e));

		assert_non_null(t);
		nonblocking(fds[i]);
		assert_int_equal(colo_plink_init(&l[i]), 0);
		colo_plink_attach(&l[i], fds[i],
				  i ? COLO_PLINK_ROLE_PRIMARY
				    : COLO_PLINK_ROLE_SECONDARY,
				  (uint64_t)i + 1, 0, t);
	}
	for (int round = 0; round < 5000; round++) {
		if (colo_plink_verified(&l[0]) && colo_plink_verified(&l[1]) &&
		    !colo_plink_pending(&l[0]) && !colo_plink_pending(&l[1]))
			return;
		for (int i = 0; i < 2; i++) {
			assert_int_equal(colo_plink_flush(&l[i], 1), 0);
			assert_int_equal(colo_plink_read(&l[i], on_frame, &s, 1,
							 err, sizeof(err)),
					 0);
		}
		poll(NULL, 0, 1);
	}
	fail_msg("the links did not come up");
}

/* Reads on l until it saw want INGRESS frames. */
static void read_until(struct colo_plink *l, struct seen *s, unsigned want)
{
	char err[256];

	for (int round = 0; round < 5000 && s->frames < want; round++) {
		struct pollfd pf = { l->fd, POLLIN, 0 };

		if (!l->rx_more)
			poll(&pf, 1, 10);
		assert_int_equal(
			colo_plink_read(l, on_frame, s, 1, err, sizeof(err)),
			0);
	}
	assert_int_equal(s->frames, want);
	assert_int_equal(s->bad, 0);
}

/* One wake-up's batch (ten frames, about twelve records) leaves in one
 * send() at the flush that ends the wake-up, and so does a lone small
 * frame (an echo's): nothing is left for a later flush. */
static void test_batch_leaves_in_one_send(void **state)
{
	enum { FRAMES = 10, PAYLOAD = 20000 };
	static uint8_t p[PAYLOAD];
	struct colo_plink l[2];
	struct seen s = { 0 };
	struct tls_relay r;
	unsigned long before;

	(void)state;
	tls_relay_start(&r);
	links_up(r.ends, l);
	before = tls_relay_msgs(&r);
	for (uint32_t f = 0; f < FRAMES; f++) {
		fill(p, sizeof(p), f);
		assert_int_equal(colo_plink_queue(&l[1], COLO_PLINK_INGRESS, 0,
						  p, 100, p + 100,
						  sizeof(p) - 100),
				 0);
	}
	assert_int_equal(colo_plink_flush(&l[1], 2), 0);
	assert_int_equal(colo_plink_pending(&l[1]), 0);
	assert_false(colo_plink_want_out(&l[1]));
	read_until(&l[0], &s, FRAMES);
	assert_int_equal(s.bytes, (uint64_t)FRAMES * PAYLOAD);
	assert_int_equal(tls_relay_msgs(&r) - before, 1);
	/* A lone echo-sized frame: one send, at once. */
	fill(p, 64, FRAMES);
	assert_int_equal(
		colo_plink_queue(&l[1], COLO_PLINK_INGRESS, 0, p, 64, NULL, 0),
		0);
	assert_int_equal(colo_plink_flush(&l[1], 3), 0);
	assert_int_equal(colo_plink_pending(&l[1]), 0);
	read_until(&l[0], &s, FRAMES + 1);
	assert_int_equal(tls_relay_msgs(&r) - before, 2);
	for (int i = 0; i < 2; i++)
		colo_plink_free(&l[i]);
	tls_relay_stop(&r);
}

/* The peer does not read: frames queued and flushed one by one until the
 * socket is full leave the last one's records partly sent, gathered but
 * not queued any more; the link must still say so (pending, EPOLLOUT).
 * Then 16 MiB more queued at once: flushes on POLLOUT while the peer
 * reads deliver every frame once, in order, intact. */
static void test_backlog_over_partial_sends(void **state)
{
	enum { FRAMES = 256, EXTRA = 256, PAYLOAD = 65536 };
	static uint8_t p[PAYLOAD];
	struct colo_plink l[2];
	struct seen s = { 0 };
	char err[256];
	uint32_t n = 0;
	int fds[2];

	(void)state;
	tls_tcp_pair(fds);
	links_up(fds, l);
	while (n < FRAMES && !colo_plink_pending(&l[1])) {
		fill(p, sizeof(p), n++);
		assert_int_equal(colo_plink_queue(&l[1], COLO_PLINK_INGRESS, 0,
						  p, sizeof(p), NULL, 0),
				 0);
		assert_int_equal(colo_plink_flush(&l[1], 2), 0);
	}
	assert_true(n < FRAMES); /* the socket filled up */
	assert_true(colo_plink_want_out(&l[1]));
	n += EXTRA;
	for (uint32_t f = n - EXTRA; f < n; f++) {
		fill(p, sizeof(p), f);
		assert_int_equal(colo_plink_queue(&l[1], COLO_PLINK_INGRESS, 0,
						  p, sizeof(p), NULL, 0),
				 0);
	}
	for (int round = 0; round < 20000 && s.frames < n; round++) {
		struct pollfd pf[2] = { { l[0].fd, POLLIN, 0 },
					{ l[1].fd, POLLOUT, 0 } };

		pf[1].events = colo_plink_want_out(&l[1]) ? POLLOUT : 0;
		if (!l[0].rx_more)
			assert_true(poll(pf, 2, 1000) > 0);
		if (pf[1].revents & POLLOUT)
			assert_int_equal(colo_plink_flush(&l[1], 3), 0);
		assert_int_equal(colo_plink_read(&l[0], on_frame, &s, 3, err,
						 sizeof(err)),
				 0);
	}
	assert_int_equal(s.frames, n);
	assert_int_equal(s.bad, 0);
	assert_int_equal(colo_plink_pending(&l[1]), 0);
	assert_false(colo_plink_want_out(&l[1]));
	for (int i = 0; i < 2; i++)
		colo_plink_free(&l[i]);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_leaves_in_one_send),
		cmocka_unit_test(test_backlog_over_partial_sends),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: test_plink_tls MKCREDS_SH\n");
		return 2;
	}
	mkcreds = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
