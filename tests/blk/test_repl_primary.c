/*
 * test_repl_primary.c - the primary's link loss against a completion that
 * blocks. An async write's completion sends the NBD reply; to a client
 * that stopped reading, that send blocks. When the link drops with such a
 * write in flight, the rest of the primary (other writers, `status` on
 * the control socket) must not wait for that client: the completion has
 * to run outside the primary's lock. A fake secondary (real sockets, the
 * real handshake) drops the link; the completion blocks on a semaphore
 * the way the send would.
 *
 * And the supervisor's drop (colo up, when the peer left the quorate
 * group): with the link's timeout far away, a write waiting for an ack
 * that never comes completes once the secondary is dropped, recorded
 * for the resync, the reason in the stats.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "memdev.h"
#include "repl_link.h"
#include "repl_primary.h"

struct blocked {
	sem_t entered, release, stats_done;
	struct colo_repl_primary *p;
	int result;
	bool stats_returned;
};

/* The NBD reply to a reader that stopped reading. */
static void stuck_done(void *arg, int result)
{
	struct blocked *b = arg;

	b->result = result;
	sem_post(&b->entered);
	sem_wait(&b->release);
}

static void *stats_main(void *arg)
{
	struct blocked *b = arg;
	struct colo_repl_primary_stats st;

	colo_repl_primary_get_stats(b->p, &st);
	__atomic_store_n(&b->stats_returned, true, __ATOMIC_SEQ_CST);
	sem_post(&b->stats_done);
	return NULL;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	return fd;
}

/* A fake secondary's side of the handshake on fd, then silence. */
static void fake_hello(int fd, uint64_t size)
{
	struct colo_link_hello hello = { 0 };
	struct colo_link_hdr h;
	uint8_t buf[64];

	assert_int_equal(colo_link_recv(fd, &h, buf, sizeof(buf)), 0);
	assert_int_equal(h.type, COLO_LINK_HELLO);
	hello.version = COLO_LINK_VERSION;
	hello.size = size;
	hello.granularity = 65536;
	colo_link_encode_hello(buf, &hello);
	h = (struct colo_link_hdr){ .type = COLO_LINK_HELLO,
				    .len = COLO_LINK_HELLO_LEN };
	assert_int_equal(colo_link_send(fd, &h, buf), 0);
}

static void wait_linked(struct colo_repl_primary *p)
{
	struct colo_repl_primary_stats st;

	for (;;) {
		colo_repl_primary_get_stats(p, &st);
		if (st.state != COLO_REPL_DEGRADED)
			return;
		usleep(1000);
	}
}

static void test_drop_secondary(void **state)
{
	struct test_img *img = test_img_new(1 << 20);
	struct colo_repl_primary_cfg cfg = { 0 };
	struct colo_repl_primary_stats st;
	struct colo_blk_dev *dev;
	struct timespec dl;
	struct blocked b;
	uint8_t buf[4096];
	char path[64], spec[80], err[256];
	int lfd, fd, r;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/colo-blk-drop-%d", getpid());
	snprintf(spec, sizeof(spec), "unix:%s", path);
	lfd = listen_unix(path);
	cfg.image = &img->dev;
	cfg.secondary = spec;
	cfg.timeout_ms = 600000; /* only the drop can end this link */
	cfg.reconnect_ms = 50;
	b.p = colo_repl_primary_new(&cfg, err, sizeof(err));
	assert_non_null(b.p);
	sem_init(&b.entered, 0, 0);
	sem_init(&b.release, 0, 0);
	b.result = -1;
	/* nothing to drop before a secondary linked */
	assert_int_equal(colo_repl_primary_drop(b.p, "early"), -ENOTCONN);
	assert_int_equal(colo_repl_primary_start(b.p), 0);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	fake_hello(fd, img->dev.size);
	wait_linked(b.p);

	/* A write waits for the secondary's ack, which never comes; its
	 * completion (the NBD reply) then blocks, as to a client that
	 * stopped reading: the drop must not run it on its caller's thread
	 * (blk's control loop), or this test hangs. */
	dev = colo_repl_primary_dev(b.p);
	memset(buf, 0xa5, sizeof(buf));
	assert_int_equal(dev->ops->pwrite_async(dev, buf, sizeof(buf), 131072,
						false, stuck_done, &b),
			 0);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 1;
	assert_int_equal(sem_timedwait(&b.entered, &dl), -1); /* waits */

	assert_int_equal(colo_repl_primary_drop(b.p, "the peer left"), 0);
	/* The generous deadline turns a hang into a failure only. */
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	while ((r = sem_timedwait(&b.entered, &dl)) < 0 && errno == EINTR)
		;
	sem_post(&b.release);
	assert_int_equal(r, 0);
	assert_int_equal(b.result, 0);
	colo_repl_primary_get_stats(b.p, &st);
	assert_int_equal(st.drops, 1);
	assert_int_equal(st.link_losses, 1);
	assert_string_equal(st.last_loss, "dropped: the peer left");
	assert_true(st.dirty_bytes >= sizeof(buf));
	/* dropped already: nothing more to give up, nothing counted twice */
	if (st.state == COLO_REPL_DEGRADED)
		assert_int_equal(colo_repl_primary_drop(b.p, "again"),
				 -ENOTCONN);
	colo_repl_primary_get_stats(b.p, &st);
	assert_int_equal(st.drops, 1);

	/* The link is tried again as after any loss: a new connection. */
	close(fd);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	close(fd);
	close(lfd);
	unlink(path);
	colo_repl_primary_free(b.p);
	test_img_free(img);
}

static void test_lost_link_blocked_completion(void **state)
{
	struct test_img *img = test_img_new(1 << 20);
	struct colo_repl_primary_cfg cfg = { 0 };
	struct colo_repl_primary_stats st;
	struct blocked b;
	struct colo_blk_dev *dev;
	struct timespec dl;
	uint8_t buf[4096];
	char path[64], spec[80], err[256];
	pthread_t t;
	int lfd, fd, r;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/colo-blk-lost-%d", getpid());
	snprintf(spec, sizeof(spec), "unix:%s", path);
	lfd = listen_unix(path);
	cfg.image = &img->dev;
	cfg.secondary = spec;
	cfg.timeout_ms = 30000;
	cfg.reconnect_ms = 50;
	b.p = colo_repl_primary_new(&cfg, err, sizeof(err));
	assert_non_null(b.p);
	sem_init(&b.entered, 0, 0);
	sem_init(&b.release, 0, 0);
	sem_init(&b.stats_done, 0, 0);
	b.stats_returned = false;
	assert_int_equal(colo_repl_primary_start(b.p), 0);

	/* The secondary's side of the handshake, then silence: no acks. */
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	close(lfd); /* reconnects are refused at once */
	unlink(path);
	fake_hello(fd, img->dev.size);
	wait_linked(b.p);

	/* A write waits for the secondary's ack that never comes. */
	dev = colo_repl_primary_dev(b.p);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(dev->ops->pwrite_async(dev, buf, sizeof(buf), 0, false,
						stuck_done, &b),
			 0);
	/* The link drops: the write completes (recorded for the resync),
	 * and its completion blocks. */
	close(fd);
	sem_wait(&b.entered);
	assert_int_equal(b.result, 0);

	/* Everything else goes on meanwhile. The generous deadline only
	 * turns a deadlock into a failure instead of a hang. */
	assert_int_equal(pthread_create(&t, NULL, stats_main, &b), 0);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	while ((r = sem_timedwait(&b.stats_done, &dl)) < 0 && errno == EINTR)
		;
	sem_post(&b.release);
	pthread_join(t, NULL);
	assert_int_equal(r, 0); /* status answered while the reply blocked */

	colo_repl_primary_get_stats(b.p, &st);
	assert_int_equal(st.state, COLO_REPL_DEGRADED);
	assert_true(st.dirty_bytes >= sizeof(buf));
	colo_repl_primary_free(b.p);
	test_img_free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lost_link_blocked_completion),
		cmocka_unit_test(test_drop_secondary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
