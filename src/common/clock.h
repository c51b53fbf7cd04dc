/*
 * clock.h - the clocks colo uses. Every interval, timeout and deadline is
 * on CLOCK_MONOTONIC (immune to the wall clock being set); CLOCK_REALTIME
 * only for what a person reads (log lines, reports).
 */
#ifndef COLO_CLOCK_H
#define COLO_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define COLO_NS_PER_MS 1000000ull
#define COLO_NS_PER_S  1000000000ull

static inline uint64_t colo_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * COLO_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline uint64_t colo_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * COLO_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline struct timespec colo_ns_to_timespec(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / COLO_NS_PER_S),
			       (long)(ns % COLO_NS_PER_S) };
	return ts;
}

/* The CLOCK_MONOTONIC instant delay_ns from now, as
 * pthread_cond_timedwait wants it for a condition made by
 * colo_cond_init_monotonic. */
static inline struct timespec colo_deadline_in(uint64_t delay_ns)
{
	return colo_ns_to_timespec(colo_now_ns() + delay_ns);
}

/* A condition variable whose timed waits run on CLOCK_MONOTONIC, so that
 * setting the wall clock neither cuts a timeout short nor stretches it. */
static inline int colo_cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t a;
	int r;

	r = pthread_condattr_init(&a);
	if (r)
		return r;
	r = pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	if (!r)
		r = pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return r;
}

#endif
