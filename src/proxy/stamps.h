/*
 * stamps.h - where a frame waits inside a proxy: CLOCK_MONOTONIC stamps
 * at the edges of the path (read from a port or the link, written to
 * one), turned into per-stage latency histograms for the control
 * socket's "stats" reply.
 *
 * Stages, per input X and output Y of {client, guest, link}:
 *   kernel X     the kernel received the frame -> we read it (our
 *                wake-up; from the socket's receive timestamp)
 *   X->Y         read from X -> what it produced written to Y, within
 *                one wake-up (parse, mirror, rewrite, compare, flush)
 *   answer X     written to X -> the next frame read from X: the guest's
 *                own service time, or (primary, link) the secondary's
 *                whole round trip as the primary sees it
 *   held         primary: its guest's frame held by the comparer -> the
 *                release the secondary's copy triggered
 *   wake         epoll returned -> everything flushed
 *   call_*       how long one call took: reading the link (TLS record
 *                decryption, parsing, the frames' handling), writing it,
 *                writing a port (on a veth the receiver's stack runs in
 *                that call)
 *
 * Off by default (--stamps): then every hook is one predictable branch
 * and no clock is read. Nothing allocates after colo_stamps_init.
 */
#ifndef COLO_PROXY_STAMPS_H
#define COLO_PROXY_STAMPS_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"

struct json_object;

enum colo_stamp_io {
	COLO_STAMP_CLIENT,
	COLO_STAMP_GUEST,
	COLO_STAMP_LINK,
	COLO_STAMP_IO_N
};

/* 1 us buckets up to COLO_LAT_LINEAR_US, then one per power of two. */
#define COLO_LAT_LINEAR_US 256
#define COLO_LAT_LOG	   24
#define COLO_LAT_BUCKETS   (COLO_LAT_LINEAR_US + COLO_LAT_LOG)

enum colo_stamp_call {
	COLO_CALL_LINK_READ,
	COLO_CALL_LINK_WRITE,
	COLO_CALL_GUEST_WRITE,
	COLO_CALL_CLIENT_WRITE,
	COLO_CALL_N
};

struct colo_lat_hist {
	uint64_t n, sum_ns, max_ns;
	uint32_t b[COLO_LAT_BUCKETS];
};

/* stamps.c APIs (pure): */
void colo_lat_add(struct colo_lat_hist *h, uint64_t ns);
/* The q-quantile (0..1) in ns, to the bucket's upper edge; 0 if empty. */
uint64_t colo_lat_quantile(const struct colo_lat_hist *h, double q);

struct colo_stamps {
	bool on;
	/* CLOCK_REALTIME - CLOCK_MONOTONIC: socket receive timestamps are
	 * wall-clock, ours monotonic. Sampled at every wake-up. */
	int64_t real_off;
	uint64_t wake_ns;  /* this wake-up's epoll return */
	uint8_t read_mask; /* inputs read during this wake-up */
	uint64_t last_out_ns[COLO_STAMP_IO_N]; /* awaiting an answer */
	uint64_t tx_seen[COLO_STAMP_IO_N];
	uint64_t hold_since;
	struct colo_lat_hist kernel[COLO_STAMP_IO_N];
	struct colo_lat_hist through[COLO_STAMP_IO_N][COLO_STAMP_IO_N];
	struct colo_lat_hist answer[COLO_STAMP_IO_N];
	struct colo_lat_hist held, wake;
	struct colo_lat_hist call[COLO_CALL_N];
};

/* The hooks; each returns at once when stamps are off. */
/* Something was read from io in the wake-up that began at wake_ns;
 * kernel_real_ns: its socket receive timestamp (CLOCK_REALTIME), 0 when
 * unknown. */
void colo_stamps_read(struct colo_stamps *s, enum colo_stamp_io io,
		      uint64_t wake_ns, uint64_t kernel_real_ns);
/* After flushing output io: tx_count is its running count of bytes or
 * send calls; a change since the last call means it took frames now
 * (then true). */
bool colo_stamps_tx(struct colo_stamps *s, enum colo_stamp_io io,
		    uint64_t tx_count);
/* Primary: the comparer holds frames (held) after its guest's frame. */
static inline void colo_stamps_hold(struct colo_stamps *s, bool held)
{
	if (s->on && held && !s->hold_since)
		s->hold_since = colo_now_ns();
}
/* Primary: the comparer released a frame. */
static inline void colo_stamps_release(struct colo_stamps *s)
{
	if (s->on && s->hold_since) {
		colo_lat_add(&s->held, colo_now_ns() - s->hold_since);
		s->hold_since = 0;
	}
}
/* Times one call: t0 = colo_stamps_begin() before it (0 when off),
 * colo_stamps_end() after. */
static inline uint64_t colo_stamps_begin(const struct colo_stamps *s)
{
	return s->on ? colo_now_ns() : 0;
}
void colo_stamps_end(struct colo_stamps *s, enum colo_stamp_call c,
		     uint64_t t0);
/* The wake-up's work is flushed: closes it. */
void colo_stamps_sleep(struct colo_stamps *s);
/* {"stage": {"n", "mean_us", "p50_us", "p99_us", "max_us"}, ...} for
 * every stage that has samples; counters only, so cheap to ask for. */
void colo_stamps_add_stats(struct json_object *r, const struct colo_stamps *s);

#endif
