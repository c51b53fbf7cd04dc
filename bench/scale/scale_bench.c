/*
 * scale_bench.c - memory per connection of the comparison engine, driven
 * directly (no sockets), and a divergence still caught among them all.
 *
 * Opens N TCP connections (one flow of guest output each) and moves 128
 * bytes over each in two 64-byte segments, once with the secondary ahead
 * (its bytes wait in the flow's byte ring) and once with the primary ahead
 * (its frame is held), so both holding paths have run on every flow;
 * -r repeats that R times (few connections and many rounds measure the
 * steady per-segment cost, with every flow in cache). Then
 * every flow is idle and matched: RSS per connection is what an idle
 * connection costs. A burst follows: a tenth of the flows get 1448 bytes
 * from the secondary alone and another tenth 1448 bytes from the primary
 * alone, then the other side catches up. RSS is printed while the bytes
 * are held, just after they matched, and once the engine's ticks (one a
 * second) have given back what it cached for the burst. Last, one byte
 * of a 64-byte segment on a random idle connection is flipped on the
 * primary: the engine must report exactly that sequence number. Then all
 * connections go idle until the engine reclaims them, and RSS shows what
 * is left.
 *
 * Only the engine's time is measured for the throughput figure: frames
 * are built in batches beforehand, and the clock (this thread's CPU time)
 * runs around the colo_comparer_input() calls alone.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comparer.h"
#include "packet_build.h"

#define BATCH 4096
#define SLOT  1600 /* room for one 1448-byte segment with headers */
#define SEG   64
#define BURST 1448
#define NS    1000000000ULL

enum { P = COLO_PRIMARY, S = COLO_SECONDARY };

struct bench {
	struct colo_comparer *c;
	uint64_t now;
	/* frames built, waiting to be fed */
	uint8_t *buf;
	uint32_t len[BATCH];
	uint8_t side[BATCH];
	size_t nq;
	uint64_t feed_ns, fed;
	uint64_t tick_max_ns;
	uint64_t released, events;
	struct colo_divergence last;
};

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

/* The engine's time is CPU time of this thread: the machine is shared,
 * and time spent preempted is not the engine's. */
static uint64_t cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static uint64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* Resident set size in bytes, from /proc/self/statm. */
static uint64_t rss_bytes(void)
{
	unsigned long size, res;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void on_release(void *opaque, const uint8_t *frame, size_t len,
		       size_t vnet)
{
	(void)frame, (void)len, (void)vnet;
	((struct bench *)opaque)->released++;
}

static void on_event(void *opaque, const struct colo_divergence *d)
{
	struct bench *b = opaque;

	b->events++;
	b->last = *d;
}

/* A tick, timed: trims and reclaiming run there, and the event loop
 * that calls it waits meanwhile. */
static void tick(struct bench *b)
{
	uint64_t t0 = cpu_ns();

	colo_comparer_tick(b->c, b->now);
	uint64_t dt = cpu_ns() - t0;
	if (dt > b->tick_max_ns)
		b->tick_max_ns = dt;
}

static void flush(struct bench *b)
{
	uint64_t t0 = cpu_ns();

	for (size_t i = 0; i < b->nq; i++)
		colo_comparer_input(b->c, (enum colo_side)b->side[i],
				    b->buf + i * SLOT, b->len[i], 0, b->now);
	b->feed_ns += cpu_ns() - t0;
	b->fed += b->nq;
	b->nq = 0;
}

/* The guest's side of connection i: 10.0.0.1:80 -> client 11.x.y.z. */
static void conn_spec(struct colo_pkt_spec *s, uint32_t i, uint32_t seq)
{
	colo_pkt_spec_default(s);
	s->src[0] = 10, s->src[1] = 0, s->src[2] = 0, s->src[3] = 1;
	s->dst[0] = 11;
	s->dst[1] = (uint8_t)(i >> 16);
	s->dst[2] = (uint8_t)(i >> 8);
	s->dst[3] = (uint8_t)i;
	s->sport = 80;
	s->dport = (uint16_t)(40000 + (i >> 24));
	s->seq = seq;
	s->ack = 1;
	s->tcp_flags = COLO_TCP_ACK;
}

static uint32_t conn_isn(uint32_t i)
{
	return i * 2654435761u;
}

static void queue(struct bench *b, int side, uint32_t conn, uint32_t seq,
		  const uint8_t *payload, size_t n)
{
	struct colo_pkt_spec s;

	if (b->nq == BATCH)
		flush(b);
	conn_spec(&s, conn, seq);
	b->len[b->nq] = (uint32_t)colo_pkt_build(&s, payload, n,
						 b->buf + b->nq * SLOT, SLOT);
	b->side[b->nq] = (uint8_t)side;
	b->nq++;
}

static void fill(uint8_t *p, size_t n, uint32_t conn, uint32_t seq)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (uint8_t)(conn * 31 + seq + k);
}

static double per_conn(uint64_t rss, uint64_t base, uint32_t n)
{
	return rss > base ? (double)(rss - base) / n : 0.0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: scale_bench [-n CONNECTIONS] [-r ROUNDS] [-s SEED]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct bench b = { 0 };
	struct colo_comparer_config cfg;
	struct colo_comparer_ops ops = { on_release, on_event };
	uint8_t pay[BURST];
	uint32_t n = 100000, seed = 1, rounds = 1;
	int opt;

	while ((opt = getopt(argc, argv, "n:r:s:")) != -1) {
		char *end;
		unsigned long v = strtoul(optarg, &end, 10);
		if (*end || !v || v > 16000000)
			usage();
		if (opt == 'n')
			n = (uint32_t)v;
		else if (opt == 'r')
			rounds = (uint32_t)v;
		else if (opt == 's')
			seed = (uint32_t)v;
		else
			usage();
	}
	b.buf = malloc((size_t)BATCH * SLOT);
	if (!b.buf)
		return 1;
	/* Touched before the baseline is read, with a nonzero byte (a zero
	 * memset after malloc may become a calloc that touches nothing). */
	memset(b.buf, 0xa5, (size_t)BATCH * SLOT);
	colo_comparer_config_default(&cfg);
	cfg.hash_key[0] = 7;
	b.c = colo_comparer_new(&cfg, &ops, &b);
	if (!b.c)
		return 1;
	b.now = NS;
	uint64_t rss0 = rss_bytes();
	uint64_t wall0 = mono_ns();

	/* Every connection, each round: secondary ahead, then primary. */
	for (uint32_t r = 0; r < rounds; r++) {
		for (uint32_t i = 0; i < n; i++) {
			uint32_t s0 = conn_isn(i) + 2 * SEG * r, s1 = s0 + SEG;
			fill(pay, SEG, i, s0);
			queue(&b, S, i, s0, pay, SEG);
			queue(&b, P, i, s0, pay, SEG);
			fill(pay, SEG, i, s1);
			queue(&b, P, i, s1, pay, SEG);
			queue(&b, S, i, s1, pay, SEG);
		}
	}
	flush(&b);
	uint64_t open_frames = b.fed;
	uint64_t rss_idle = rss_bytes();
	uint64_t tracked = colo_comparer_stats(b.c)->flows;
	double open_rate = (double)b.fed / ((double)b.feed_ns / NS);
	double open_ns = (double)b.feed_ns / (double)b.fed;
	uint32_t base = 2 * SEG * rounds; /* stream offset after the rounds */

	/* Burst: a tenth held in rings, a tenth held as primary frames. */
	uint32_t burst_n = 0;
	for (uint32_t i = 0; i < n; i += 10) {
		uint32_t s2 = conn_isn(i) + base;
		fill(pay, BURST, i, s2);
		queue(&b, S, i, s2, pay, BURST);
		if (i + 5 < n) {
			uint32_t t2 = conn_isn(i + 5) + base;
			fill(pay, BURST, i + 5, t2);
			queue(&b, P, i + 5, t2, pay, BURST);
		}
		burst_n++;
	}
	flush(&b);
	const struct colo_stats *st = colo_comparer_stats(b.c);
	uint64_t rss_burst = rss_bytes();
	uint64_t held_bytes = st->held_bytes + st->secondary_buffered_bytes;
	for (uint32_t i = 0; i < n; i += 10) {
		uint32_t s2 = conn_isn(i) + base;
		fill(pay, BURST, i, s2);
		queue(&b, P, i, s2, pay, BURST);
		if (i + 5 < n) {
			uint32_t t2 = conn_isn(i + 5) + base;
			fill(pay, BURST, i + 5, t2);
			queue(&b, S, i + 5, t2, pay, BURST);
		}
	}
	flush(&b);
	uint64_t rss_matched = rss_bytes();
	/* Scan intervals of a comparer holding nothing, until the engine
	 * has given back all it cached for the burst. */
	uint32_t burst_ticks = 0;
	do {
		b.now += NS;
		tick(&b);
		burst_ticks++;
	} while (colo_comparer_stats(b.c)->cached_bytes && burst_ticks < 1000);
	uint64_t rss_after = rss_bytes();
	uint64_t tick_burst_ns = b.tick_max_ns;

	/* A divergence on one random idle connection. */
	srand(seed);
	uint32_t j =
		(uint32_t)(((uint64_t)rand() << 16 ^ (uint64_t)rand()) % n);
	uint32_t off = (uint32_t)rand() % SEG;
	uint32_t sj = conn_isn(j) + base + (j % 5 == 0 ? BURST : 0);
	uint64_t events_before = b.events;
	fill(pay, SEG, j, sj);
	queue(&b, S, j, sj, pay, SEG);
	pay[off] ^= 0x5a;
	queue(&b, P, j, sj, pay, SEG);
	flush(&b);
	colo_comparer_checkpoint_done(b.c, b.now);

	/* Every connection goes quiet: reclaimed by the idle timeout, a
	 * bounded number per tick, one tick per second. */
	b.now += cfg.idle_timeout_ns;
	uint32_t ticks = 0;
	while (colo_comparer_stats(b.c)->flows && ticks < 100000) {
		b.now += NS;
		tick(&b);
		ticks++;
	}
	for (int k = 0; k < 2; k++) {
		b.now += NS;
		tick(&b);
	}
	uint64_t rss_gone = rss_bytes();
	uint64_t wall = mono_ns() - wall0;

	st = colo_comparer_stats(b.c);
	printf("connections        %u (flows tracked %llu)\n", n,
	       (unsigned long long)tracked);
	printf("engine throughput  %.2f Mframes/s (%.0f ns CPU/frame, %llu "
	       "frames of 64 bytes)\n",
	       open_rate / 1e6, open_ns, (unsigned long long)open_frames);
	printf("rss idle           %.1f MB, %.0f bytes/connection\n",
	       rss_idle / 1e6, per_conn(rss_idle, rss0, n));
	printf("rss burst held     %.1f MB, %.0f bytes/connection (%u+%u "
	       "flows holding %.1f MB)\n",
	       rss_burst / 1e6, per_conn(rss_burst, rss0, n), burst_n, burst_n,
	       held_bytes / 1e6);
	printf("rss burst matched  %.1f MB, %.0f bytes/connection\n",
	       rss_matched / 1e6, per_conn(rss_matched, rss0, n));
	printf("rss after burst    %.1f MB, %.0f bytes/connection (caches "
	       "empty after %u ticks, 1 s apart)\n",
	       rss_after / 1e6, per_conn(rss_after, rss0, n), burst_ticks);
	char line[512];
	bool exact = b.events == events_before + 1 &&
		     b.last.cause == COLO_CAUSE_PAYLOAD &&
		     b.last.seq == sj + off;
	if (b.events > events_before)
		colo_divergence_format(&b.last, line, sizeof(line));
	else
		snprintf(line, sizeof(line), "(none reported)");
	printf("divergence         injected on connection %u at seq %u "
	       "(offset %u): %s\n",
	       j, sj + off, off, exact ? "caught exactly" : "MISSED");
	printf("                   %s\n", line);
	printf("rss after reclaim  %.1f MB, %.0f bytes/connection (all "
	       "flows idle-reclaimed in %u ticks)\n",
	       rss_gone / 1e6, per_conn(rss_gone, rss0, n), ticks);
	printf("longest tick       %.2f ms after the burst, %.2f ms while "
	       "reclaiming (CPU time)\n",
	       tick_burst_ns / 1e6, b.tick_max_ns / 1e6);
	printf("released frames    %llu, events %llu, wall %.1f s\n",
	       (unsigned long long)b.released, (unsigned long long)b.events,
	       wall / 1e9);
	colo_comparer_free(b.c);
	free(b.buf);
	return exact && b.events == 1 ? 0 : 1;
}
