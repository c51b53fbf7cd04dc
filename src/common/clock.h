/*
 * clock.h - the clocks colo uses. Every interval, timeout and deadline is
 * on CLOCK_MONOTONIC (immune to the wall clock being set); CLOCK_REALTIME
 * only for what a person reads (log lines, reports).
 */
#ifndef COLO_CLOCK_H
#define COLO_CLOCK_H

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

#endif
