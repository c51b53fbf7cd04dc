/*
 * colo_latency.c - release latency of a COLO comparer at a fixed offered
 * load, measured from outside.
 *
 * colo_bench measures how fast a comparer can go; this measures how long a
 * frame waits in it when it is not saturated, which is what a client of a
 * protected service feels. One flow (TCP, or UDP with --udp) of
 * equal-sized frames is offered at --rate frames/s in bursts of --burst:
 * each burst is built once and written to primary-in, then the same bytes
 * to secondary-in, so both replicas "agree" and every frame must be
 * released. The first 16 payload bytes carry the send time and the frame
 * index; the reader thread takes the time when a read() returns and
 * records, per released frame, how long ago it was sent. Percentiles are
 * printed over the frames after a warm-up (the first --warmup percent).
 *
 * The sender paces by absolute deadlines (clock_nanosleep), so a late
 * wake-up sends the next burst at once rather than lowering the rate;
 * when the comparer cannot keep up, its socket buffers fill, write()
 * blocks and the achieved rate printed next to the offered one shows it.
 *
 * The result line starting with "RESULT" is parsed by bench/run.sh.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bench_io.h"
#include "byteorder.h"
#include "clock.h"
#include "packet_build.h"

#define MAX_PAYLOAD 8192
#define MAX_BURST   256
#define STAMP_BYTES 16

struct lat_config {
	const char *primary, *secondary, *out; /* HOST:PORT */
	const char *label;
	unsigned rate;	  /* frames/s offered */
	unsigned burst;	  /* frames per write */
	unsigned payload; /* bytes per frame */
	double seconds;	  /* how long to offer the load */
	unsigned warmup;  /* percent of frames not counted */
	bool udp;
};

static _Atomic bool stop;
static _Atomic bool probe_seen;
static _Atomic uint64_t released;
static uint64_t *lat_ns;      /* per frame index; written by the reader */
static uint64_t n_frames;     /* frames the sender will send */
static _Atomic uint64_t sent; /* frames written to primary so far */

static void send_probe(int fd)
{
	uint8_t buf[4 + 60] = { 0 };
	uint8_t *f = buf + 4;

	colo_put_be32(buf, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, "\x52\x54\x00\x12\x34\x56", 6);
	f[12] = 0x08, f[13] = 0x06; /* ARP: both comparers pass it at once */
	memcpy(f + 14, "\x00\x01\x08\x00\x06\x04\x00\x02", 8);
	if (bench_write_all(fd, buf, sizeof(buf)))
		bench_die("probe write: %s", strerror(errno));
}

/* Offset of the L4 payload in an untagged IPv4 frame, or 0. */
static size_t payload_off(const uint8_t *f, size_t len)
{
	size_t ip = 14, l4;

	if (len < ip + 20 || f[12] != 0x08 || f[13] != 0x00)
		return 0;
	l4 = ip + (size_t)(f[ip] & 0x0f) * 4;
	if (f[ip + 9] == 17)
		return l4 + 8 <= len ? l4 + 8 : 0;
	if (f[ip + 9] == 6 && l4 + 20 <= len)
		return l4 + (size_t)(f[l4 + 12] >> 4) * 4;
	return 0;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void record(const uint8_t *f, size_t len, uint64_t t)
{
	size_t off = payload_off(f, len);
	uint64_t idx;

	if (!off || off + STAMP_BYTES > len)
		return;
	idx = get_u64(f + off + 8);
	if (idx < n_frames && !lat_ns[idx])
		lat_ns[idx] = t - get_u64(f + off);
	atomic_fetch_add(&released, 1);
}

static void *reader_main(void *arg)
{
	int fd = *(int *)arg;
	size_t cap = 1 << 20, have = 0;
	uint8_t *buf = malloc(cap);

	if (!buf)
		bench_die("%s", "out of memory");
	while (!atomic_load(&stop)) {
		ssize_t n = read(fd, buf + have, cap - have);
		uint64_t t = colo_now_ns();
		size_t pos = 0;

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		have += (size_t)n;
		while (have - pos >= 4) {
			uint32_t len = (uint32_t)buf[pos] << 24 |
				       (uint32_t)buf[pos + 1] << 16 |
				       (uint32_t)buf[pos + 2] << 8 |
				       buf[pos + 3];
			const uint8_t *f = buf + pos + 4;

			if (len > cap - 4)
				bench_die("%s", "absurd frame length on out");
			if (have - pos - 4 < len)
				break;
			if (len >= 14 && f[12] == 0x08 && f[13] == 0x06)
				atomic_store(&probe_seen, true);
			else
				record(f, len, t);
			pos += 4 + len;
		}
		memmove(buf, buf + pos, have - pos);
		have -= pos;
	}
	free(buf);
	return NULL;
}

struct sender {
	const struct lat_config *cfg;
	int pri_fd, sec_fd;
	double achieved_fps;
};

/* Builds bursts into one buffer and writes it to both inputs at absolute
 * deadlines, so that lateness does not accumulate into a lower rate. */
static void *sender_main(void *arg)
{
	struct sender *sd = arg;
	const struct lat_config *cfg = sd->cfg;
	size_t frame_cap = cfg->payload + 128;
	uint8_t *buf = malloc((size_t)cfg->burst * (frame_cap + 4));
	uint8_t payload[MAX_PAYLOAD];
	struct colo_pkt_spec spec;
	uint64_t period = (uint64_t)cfg->burst * 1000000000ull / cfg->rate;
	uint64_t t0 = colo_now_ns(), idx = 0, k = 0;
	uint32_t seq = 1000;

	if (!buf)
		bench_die("%s", "out of memory");
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 31 + 7);
	colo_pkt_spec_default(&spec);
	spec.proto = cfg->udp ? 17 : 6;
	spec.sport = 80;
	spec.dport = 40000;
	spec.tcp_flags = 0x18; /* PSH|ACK */
	spec.ack = 1;
	while (idx < n_frames && !atomic_load(&stop)) {
		uint64_t due = t0 + k++ * period, t;
		struct timespec ts = { .tv_sec = (time_t)(due / 1000000000ull),
				       .tv_nsec = (long)(due % 1000000000ull) };
		size_t used = 0;

		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
				       NULL) == EINTR)
			;
		t = colo_now_ns();
		for (unsigned i = 0; i < cfg->burst && idx < n_frames; i++) {
			size_t len;

			memcpy(payload, &t, 8);
			memcpy(payload + 8, &idx, 8);
			spec.seq = seq;
			spec.ip_id = (uint16_t)idx;
			len = colo_pkt_build(&spec, payload, cfg->payload,
					     buf + used + 4, frame_cap);
			colo_put_be32(buf + used, (uint32_t)len);
			used += 4 + len;
			seq += cfg->payload;
			idx++;
		}
		if (bench_write_all(sd->pri_fd, buf, used) ||
		    bench_write_all(sd->sec_fd, buf, used)) {
			fprintf(stderr, "colo_latency: write: %s\n",
				strerror(errno));
			break;
		}
		atomic_store(&sent, idx);
	}
	sd->achieved_fps = (double)idx * 1e9 / (double)(colo_now_ns() - t0);
	free(buf);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: colo_latency --primary HOST:PORT --secondary HOST:PORT "
		"--out HOST:PORT\n"
		"                    [--label NAME] [--rate FPS] [--burst N] "
		"[--payload BYTES]\n"
		"                    [--seconds S] [--warmup PERCENT] [--udp]\n"
		"Offers one flow at a fixed rate to a running comparer and "
		"prints the\nrelease latency (p50, p90, p99, max) of its "
		"frames.\nDefaults: TCP, 20000 frames/s, bursts of 8, "
		"1448-byte "
		"payloads, 3 s,\nwarm-up 10 %%.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "primary", required_argument, 0, 'p' },
		{ "secondary", required_argument, 0, 's' },
		{ "out", required_argument, 0, 'o' },
		{ "label", required_argument, 0, 'l' },
		{ "rate", required_argument, 0, 'r' },
		{ "burst", required_argument, 0, 'b' },
		{ "payload", required_argument, 0, 'P' },
		{ "seconds", required_argument, 0, 't' },
		{ "warmup", required_argument, 0, 'w' },
		{ "udp", no_argument, 0, 'u' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct lat_config cfg = {
		.label = "comparer",
		.rate = 20000,
		.burst = 8,
		.payload = 1448,
		.seconds = 3,
		.warmup = 10,
	};
	int c;

	bench_set_prog("colo_latency");

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			cfg.primary = optarg;
			break;
		case 's':
			cfg.secondary = optarg;
			break;
		case 'o':
			cfg.out = optarg;
			break;
		case 'l':
			cfg.label = optarg;
			break;
		case 'r':
			cfg.rate = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			cfg.burst = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'P':
			cfg.payload = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			cfg.seconds = strtod(optarg, NULL);
			break;
		case 'w':
			cfg.warmup = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'u':
			cfg.udp = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!cfg.primary || !cfg.secondary || !cfg.out || !cfg.rate ||
	    !cfg.burst || cfg.burst > MAX_BURST || cfg.payload < STAMP_BYTES ||
	    cfg.payload > MAX_PAYLOAD || cfg.seconds <= 0 ||
	    cfg.warmup >= 100) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	n_frames = (uint64_t)(cfg.rate * cfg.seconds);
	if (n_frames < 100)
		n_frames = 100;
	lat_ns = calloc(n_frames, sizeof(*lat_ns));
	if (!lat_ns)
		bench_die("%s", "out of memory");

	/* out first: QEMU discards what it releases while out is unconnected */
	int out_fd = bench_connect(cfg.out, 5);
	struct sender sd = { .cfg = &cfg };
	sd.pri_fd = bench_connect(cfg.primary, 5);
	sd.sec_fd = bench_connect(cfg.secondary, 5);

	pthread_t tr, tsend;
	pthread_create(&tr, NULL, reader_main, &out_fd);
	for (int i = 0; !atomic_load(&probe_seen); i++) {
		if (i == 100)
			bench_die("%s", "the probe frame never came out");
		send_probe(sd.pri_fd);
		usleep(100000);
	}
	pthread_create(&tsend, NULL, sender_main, &sd);
	pthread_join(tsend, NULL);

	/* wait for the last release, 2 s of silence, or 10 s in all (a
	 * saturated QEMU drains its backlog for minutes) */
	uint64_t last = 0, last_change = colo_now_ns();
	uint64_t give_up = last_change + 10000000000ull;
	while (atomic_load(&released) < atomic_load(&sent) &&
	       colo_now_ns() < give_up) {
		uint64_t n = atomic_load(&released);
		if (n != last) {
			last = n;
			last_change = colo_now_ns();
		} else if (colo_now_ns() - last_change > 2000000000ull) {
			break;
		}
		usleep(1000);
	}
	atomic_store(&stop, true);
	shutdown(out_fd, SHUT_RDWR);
	pthread_join(tr, NULL);

	uint64_t total = atomic_load(&sent), first = total * cfg.warmup / 100;
	uint64_t n = 0, lost = 0;
	for (uint64_t i = first; i < total; i++) {
		if (lat_ns[i])
			lat_ns[n++] = lat_ns[i];
		else
			lost++;
	}
	qsort(lat_ns, n, sizeof(*lat_ns), cmp_u64);
	double p50 = n ? lat_ns[n / 2] / 1e3 : 0;
	double p90 = n ? lat_ns[n * 9 / 10] / 1e3 : 0;
	double p99 = n ? lat_ns[n * 99 / 100] / 1e3 : 0;
	double max = n ? lat_ns[n - 1] / 1e3 : 0;

	printf("%s: %s %u frames/s offered (%.0f achieved), bursts of %u, "
	       "%u-byte payloads: released %llu of %llu\n",
	       cfg.label, cfg.udp ? "UDP" : "TCP", cfg.rate, sd.achieved_fps,
	       cfg.burst, cfg.payload,
	       (unsigned long long)atomic_load(&released),
	       (unsigned long long)total);
	printf("%s: latency us p50 %.1f p90 %.1f p99 %.1f max %.1f "
	       "(%llu frames after warm-up, %llu not released)\n",
	       cfg.label, p50, p90, p99, max, (unsigned long long)n,
	       (unsigned long long)lost);
	printf("RESULT label=%s rate=%u achieved=%.0f p50=%.1f p90=%.1f "
	       "p99=%.1f max=%.1f counted=%llu lost=%llu\n",
	       cfg.label, cfg.rate, sd.achieved_fps, p50, p90, p99, max,
	       (unsigned long long)n, (unsigned long long)lost);
	close(sd.pri_fd);
	close(sd.sec_fd);
	close(out_fd);
	free(lat_ns);
	return lost ? 3 : 0;
}
