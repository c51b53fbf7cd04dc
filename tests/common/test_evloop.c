/*
 * test_evloop.c - the common event loop: descriptors, timers in deadline
 * order, signals through the signalfd, before-sleep hooks, and deleting
 * records from inside a dispatch.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "evloop.h"

struct rec {
	struct colo_loop *l;
	int order[8];
	int n;
	struct colo_loop_fd *victim;
	struct colo_timer *tvictim;
	int fd;
};

static struct rec g;

static void tfire(void *opaque)
{
	g.order[g.n++] = (int)(intptr_t)opaque;
}

static void test_timer_order(void **state)
{
	(void)state;
	memset(&g, 0, sizeof(g));
	struct colo_loop *l = colo_loop_new();
	struct colo_timer *t1 = colo_timer_new(l, tfire, (void *)1);
	struct colo_timer *t2 = colo_timer_new(l, tfire, (void *)2);
	struct colo_timer *t3 = colo_timer_new(l, tfire, (void *)3);
	uint64_t start = colo_now_ns();

	colo_timer_arm_in(t3, 30 * COLO_NS_PER_MS);
	colo_timer_arm_in(t1, 10 * COLO_NS_PER_MS);
	colo_timer_arm_in(t2, 20 * COLO_NS_PER_MS);
	colo_timer_disarm(t2);
	colo_timer_arm_in(t2, 20 * COLO_NS_PER_MS);
	while (g.n < 3)
		assert_int_equal(colo_loop_run_once(l, 1000), 0);
	assert_int_equal(g.order[0], 1);
	assert_int_equal(g.order[1], 2);
	assert_int_equal(g.order[2], 3);
	/* the loop slept until the deadlines, no earlier */
	assert_true(colo_now_ns() - start >= 30 * COLO_NS_PER_MS);
	assert_false(colo_timer_armed(t1));
	colo_timer_free(t2);
	colo_loop_free(l);
}

static void on_read_delete_other(void *opaque, uint32_t ev)
{
	struct rec *r = opaque;
	char buf[8];
	(void)ev;
	assert_true(read(r->fd, buf, sizeof(buf)) > 0);
	r->order[r->n++] = 10;
	colo_loop_del_fd(r->victim);
	colo_timer_free(r->tvictim);
}

static void on_victim(void *opaque, uint32_t ev)
{
	struct rec *r = opaque;
	(void)ev;
	r->order[r->n++] = 99;
}

static void hook(void *opaque)
{
	struct rec *r = opaque;
	r->order[r->n++] = 50;
	colo_loop_stop(r->l);
}

static void test_delete_during_dispatch(void **state)
{
	(void)state;
	struct rec r = { 0 };
	int p1[2], p2[2];
	struct colo_loop *l = colo_loop_new();

	r.l = l;
	assert_int_equal(pipe(p1), 0);
	assert_int_equal(pipe(p2), 0);
	r.fd = p1[0];
	/* both readable in the same wake-up; whichever runs first deletes the
	 * other, which must then not run */
	assert_non_null(
		colo_loop_add_fd(l, p1[0], EPOLLIN, on_read_delete_other, &r));
	r.victim = colo_loop_add_fd(l, p2[0], EPOLLIN, on_victim, &r);
	r.tvictim = colo_timer_new(l, tfire, NULL);
	colo_timer_arm_in(r.tvictim, 0);
	assert_non_null(r.victim);
	assert_int_equal(colo_loop_before_sleep(l, hook, &r), 0);
	assert_int_equal(write(p1[1], "x", 1), 1);
	assert_int_equal(write(p2[1], "y", 1), 1);
	usleep(1000);
	/* epoll picks the order; whichever ran first, a record deleted
	 * during the wake-up is never dispatched afterwards */
	assert_int_equal(colo_loop_run(l), 0);
	assert_true(r.n >= 2);
	assert_int_equal(r.order[r.n - 1], 50);
	for (int i = 0; i < r.n; i++)
		if (r.order[i] == 10)
			for (int j = i + 1; j < r.n; j++)
				assert_int_not_equal(r.order[j], 99);
	colo_loop_free(l);
	close(p1[0]);
	close(p1[1]);
	close(p2[0]);
	close(p2[1]);
}

static int sig_seen;

static void on_sig(void *opaque, const struct signalfd_siginfo *si)
{
	struct colo_loop *l = opaque;
	sig_seen = (int)si->ssi_signo;
	colo_loop_stop(l);
}

static void test_signal(void **state)
{
	(void)state;
	struct colo_loop *l = colo_loop_new();

	assert_int_equal(colo_loop_on_signal(l, SIGUSR1, on_sig, l), 0);
	assert_int_equal(colo_loop_on_signal(l, SIGUSR2, on_sig, l), 0);
	raise(SIGUSR2);
	assert_int_equal(colo_loop_run(l), 0);
	assert_int_equal(sig_seen, SIGUSR2);
	colo_loop_free(l);
}

static int hooks;

static void count_hook(void *opaque)
{
	(void)opaque;
	hooks++;
}

static void stop_loop(void *opaque)
{
	colo_loop_stop(opaque);
}

static void drain(void *opaque, uint32_t events)
{
	char b[8];

	(void)events;
	assert_true(read(*(int *)opaque, b, sizeof(b)) > 0);
}

/* One byte on a pipe, then a timer stopping the loop 30 ms later: with
 * busy polling the loop polls in between without sleeping (counted) and
 * runs its hooks only for the two wake-ups that had work; without, it
 * sleeps. */
static int busy_run(uint64_t busy_ns, uint64_t *empty)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_timer *t = colo_timer_new(l, stop_loop, l);
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_non_null(colo_loop_add_fd(l, p[0], EPOLLIN, drain, &p[0]));
	assert_int_equal(colo_loop_before_sleep(l, count_hook, NULL), 0);
	colo_loop_set_busy_poll(l, busy_ns);
	hooks = 0;
	assert_int_equal(write(p[1], "x", 1), 1);
	colo_timer_arm_in(t, 30 * COLO_NS_PER_MS);
	assert_int_equal(colo_loop_run(l), 0);
	*empty = colo_loop_busy_empty(l);
	colo_loop_free(l);
	close(p[0]);
	close(p[1]);
	return hooks;
}

static void test_busy_poll(void **state)
{
	uint64_t empty;
	int h;

	(void)state;
	h = busy_run(0, &empty);
	assert_int_equal(empty, 0);
	assert_true(h >= 1 && h <= 2);
	h = busy_run(COLO_NS_PER_S, &empty);
	assert_true(empty > 0);
	assert_true(h >= 1 && h <= 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_order),
		cmocka_unit_test(test_busy_poll),
		cmocka_unit_test(test_delete_during_dispatch),
		cmocka_unit_test(test_signal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
