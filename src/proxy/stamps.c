/*
 * stamps.c - per-stage latency histograms of a proxy's path (stamps.h).
 *
 * A stage is measured between two edges of one process (a read and a
 * write, or a write and the next read), never across processes, so no
 * frame carries an id or a stamp on the wire: with one request in flight
 * (an echo) the edges pair up exactly, under load they give each
 * wake-up's share.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"
#include "stamps.h"

static unsigned bucket_of(uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned k = 0;

	if (us < COLO_LAT_LINEAR_US)
		return (unsigned)us;
	us /= COLO_LAT_LINEAR_US;
	while (us > 1 && k < COLO_LAT_LOG - 1) {
		us >>= 1;
		k++;
	}
	return COLO_LAT_LINEAR_US + k;
}

/* The bucket's upper edge in ns. */
static uint64_t bucket_top(unsigned b)
{
	if (b < COLO_LAT_LINEAR_US)
		return (uint64_t)(b + 1) * 1000;
	return (uint64_t)COLO_LAT_LINEAR_US * 1000
	       << (b - COLO_LAT_LINEAR_US + 1);
}

void colo_lat_add(struct colo_lat_hist *h, uint64_t ns)
{
	h->n++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
	h->b[bucket_of(ns)]++;
}

uint64_t colo_lat_quantile(const struct colo_lat_hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->n)
		return 0;
	want = (uint64_t)(q * (double)h->n);
	if (want >= h->n)
		want = h->n - 1;
	for (unsigned b = 0; b < COLO_LAT_BUCKETS; b++) {
		seen += h->b[b];
		if (seen > want)
			return bucket_top(b) < h->max_ns ? bucket_top(b)
							 : h->max_ns;
	}
	return h->max_ns;
}

void colo_stamps_read(struct colo_stamps *s, enum colo_stamp_io io,
		      uint64_t wake_ns, uint64_t kernel_real_ns)
{
	uint64_t now;

	if (!s->on)
		return;
	now = colo_now_ns();
	if (s->wake_ns != wake_ns) {
		/* First read of this wake-up: the wall clock's offset is
		 * sampled here, for the kernel's receive timestamps. */
		s->wake_ns = wake_ns;
		s->real_off = (int64_t)(colo_wall_ns() - now);
	}
	s->read_mask |= (uint8_t)(1u << io);
	if (kernel_real_ns) {
		int64_t k = (int64_t)kernel_real_ns - s->real_off;

		if (k > 0 && (uint64_t)k <= now)
			colo_lat_add(&s->kernel[io], now - (uint64_t)k);
	}
	/* A write later than this wake-up's start was not what woke us. */
	if (s->last_out_ns[io] && s->last_out_ns[io] <= wake_ns) {
		colo_lat_add(&s->answer[io], wake_ns - s->last_out_ns[io]);
		s->last_out_ns[io] = 0;
	}
}

bool colo_stamps_tx(struct colo_stamps *s, enum colo_stamp_io io,
		    uint64_t tx_count)
{
	uint64_t now;

	if (!s->on || tx_count == s->tx_seen[io])
		return false;
	s->tx_seen[io] = tx_count;
	now = colo_now_ns();
	for (unsigned in = 0; in < COLO_STAMP_IO_N; in++)
		if (s->read_mask & (1u << in))
			colo_lat_add(&s->through[in][io], now - s->wake_ns);
	s->last_out_ns[io] = now;
	return true;
}

void colo_stamps_end(struct colo_stamps *s, enum colo_stamp_call c, uint64_t t0)
{
	if (s->on && t0)
		colo_lat_add(&s->call[c], colo_now_ns() - t0);
}

void colo_stamps_sleep(struct colo_stamps *s)
{
	if (!s->on || !s->read_mask)
		return;
	colo_lat_add(&s->wake, colo_now_ns() - s->wake_ns);
	s->read_mask = 0;
}

static void add_hist(struct json_object *r, const char *name,
		     const struct colo_lat_hist *h)
{
	struct json_object *o;

	if (!h->n)
		return;
	o = json_object_new_object();
	json_object_object_add(o, "n", json_object_new_int64((int64_t)h->n));
	json_object_object_add(
		o, "mean_us",
		json_object_new_double((double)h->sum_ns / (double)h->n / 1e3));
	json_object_object_add(
		o, "p50_us",
		json_object_new_double((double)colo_lat_quantile(h, 0.5) /
				       1e3));
	json_object_object_add(
		o, "p99_us",
		json_object_new_double((double)colo_lat_quantile(h, 0.99) /
				       1e3));
	json_object_object_add(o, "max_us",
			       json_object_new_double((double)h->max_ns / 1e3));
	json_object_object_add(r, name, o);
}

void colo_stamps_add_stats(struct json_object *r, const struct colo_stamps *s)
{
	static const char *const io[] = { "client", "guest", "link" };
	static const char *const call[] = { "call_link_read", "call_link_write",
					    "call_guest_write",
					    "call_client_write" };
	struct json_object *o;
	char name[48];

	if (!s->on)
		return;
	o = json_object_new_object();
	for (unsigned i = 0; i < COLO_STAMP_IO_N; i++) {
		snprintf(name, sizeof(name), "kernel_%s", io[i]);
		add_hist(o, name, &s->kernel[i]);
		snprintf(name, sizeof(name), "answer_%s", io[i]);
		add_hist(o, name, &s->answer[i]);
		for (unsigned k = 0; k < COLO_STAMP_IO_N; k++) {
			snprintf(name, sizeof(name), "%s_to_%s", io[i], io[k]);
			add_hist(o, name, &s->through[i][k]);
		}
	}
	add_hist(o, "held", &s->held);
	add_hist(o, "wake", &s->wake);
	for (unsigned c = 0; c < COLO_CALL_N; c++)
		add_hist(o, call[c], &s->call[c]);
	json_object_object_add(r, "stamps", o);
}
