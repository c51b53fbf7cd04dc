/*
 * colo_bench.c - throughput of a COLO comparer, measured from outside.
 *
 * Connects to the three sockets of a running comparer (QEMU's colo-compare
 * object or `colo compare`), pumps N TCP connections of identical payload
 * through primary-in and secondary-in, and counts what comes out. The
 * secondary may segment its streams differently from the primary, which
 * makes the comparer match byte streams rather than whole frames.
 *
 * The load generator has to share a small machine with a single-threaded
 * comparer, so it stays light: frames are built straight into large batch
 * buffers, written with one write() per batch, and the two writers are
 * kept in step (neither runs more than a window of bytes ahead of the
 * other), so the comparer's queues stay short and QEMU never drops on
 * max_queue_size. A non-IP probe frame is sent before the clock starts:
 * both comparers forward it at once, and QEMU discards output while its
 * out chardev has no client, so the probe proves the path is live.
 *
 * The result line starting with "RESULT" is parsed by bench/run.sh.
 */
#include <arpa/inet.h>
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
#include <time.h>
#include <unistd.h>

#include "bench_io.h"
#include "byteorder.h"
#include "clock.h"
#include "packet_build.h"

#define BATCH_BYTES   (512 * 1024)
#define PATTERN_BYTES (1 << 20)
#define MAX_SEGS      16
#define MAX_SEG_BYTES 65000

struct bench_config {
	const char *primary, *secondary, *out; /* HOST:PORT */
	const char *label;
	unsigned conns;
	uint64_t total_bytes; /* payload, over all connections */
	unsigned pri_seg[MAX_SEGS], n_pri_seg;
	unsigned sec_seg[MAX_SEGS], n_sec_seg;
	uint64_t window_bytes;	  /* how far one writer may run ahead */
	unsigned idle_timeout_ms; /* give up when nothing came out this long */
};

struct side {
	const struct bench_config *cfg;
	const char *name;
	int fd;
	const unsigned *segs;
	unsigned n_segs;
	_Atomic uint64_t sent_bytes; /* payload bytes written so far */
	uint64_t frames;	     /* frames written (valid after join) */
	struct side *peer;
};

static uint8_t pattern[PATTERN_BYTES + MAX_SEG_BYTES];
static _Atomic bool stop;
static _Atomic bool started;
static _Atomic uint64_t t_first_send;
static _Atomic uint64_t t_last_release;
static _Atomic uint64_t released_frames, released_bytes, released_other;
static _Atomic bool probe_seen;

/* The payload byte at stream offset `off` of connection `conn`; both
 * writers derive the same bytes from it. */
static const uint8_t *stream_bytes(unsigned conn, uint64_t off)
{
	return pattern + (off + (uint64_t)conn * 7919) % PATTERN_BYTES;
}

static void spec_for(struct colo_pkt_spec *s, unsigned conn)
{
	colo_pkt_spec_default(s);
	/* 10.0.0.1:80 -> 10.C.C.C:port: distinct flows, any number of them */
	s->dst[0] = 10;
	s->dst[1] = (uint8_t)(1 + (conn >> 16));
	s->dst[2] = (uint8_t)(conn >> 8);
	s->dst[3] = (uint8_t)conn;
	s->dport = (uint16_t)(10000 + conn % 50000);
	s->tcp_flags = 0x18; /* PSH|ACK */
	s->ack = 1;
}

static void *writer_main(void *arg)
{
	struct side *sd = arg;
	const struct bench_config *cfg = sd->cfg;
	uint64_t per_conn = cfg->total_bytes / cfg->conns;
	uint64_t *off = calloc(cfg->conns, sizeof(*off));
	unsigned *segi = calloc(cfg->conns, sizeof(*segi));
	uint8_t *batch = malloc(BATCH_BYTES + MAX_SEG_BYTES + 256);
	struct colo_pkt_spec spec;
	unsigned conn = 0, done_conns = 0;

	if (!off || !segi || !batch)
		bench_die("%s", "out of memory");
	while (!atomic_load(&started))
		usleep(1000);
	while (done_conns < cfg->conns && !atomic_load(&stop)) {
		size_t used = 0;
		uint64_t batch_payload = 0;

		/* one batch: round-robin over the unfinished connections */
		while (used < BATCH_BYTES && done_conns < cfg->conns) {
			if (off[conn] < per_conn) {
				unsigned seg =
					sd->segs[segi[conn]++ % sd->n_segs];
				uint64_t left = per_conn - off[conn];
				size_t n = seg < left ? seg : (size_t)left;
				size_t len;

				spec_for(&spec, conn);
				spec.seq = (uint32_t)(1000 + off[conn]);
				len = colo_pkt_build(
					&spec, stream_bytes(conn, off[conn]), n,
					batch + used + 4, MAX_SEG_BYTES + 200);
				colo_put_be32(batch + used, (uint32_t)len);
				used += 4 + len;
				off[conn] += n;
				batch_payload += n;
				sd->frames++;
				if (off[conn] == per_conn)
					done_conns++;
			}
			conn = (conn + 1) % cfg->conns;
		}
		/* keep in step with the other writer */
		while (atomic_load(&sd->sent_bytes) >
			       atomic_load(&sd->peer->sent_bytes) +
				       cfg->window_bytes &&
		       !atomic_load(&stop))
			usleep(50);
		if (bench_write_all(sd->fd, batch, used)) {
			fprintf(stderr, "colo_bench: %s write: %s\n", sd->name,
				strerror(errno));
			atomic_store(&stop, true);
			break;
		}
		atomic_fetch_add(&sd->sent_bytes, batch_payload);
	}
	/* a finished writer must not hold back the other one */
	atomic_store(&sd->sent_bytes, UINT64_MAX / 2);
	free(off);
	free(segi);
	free(batch);
	return NULL;
}

static void *reader_main(void *arg)
{
	int fd = *(int *)arg;
	size_t cap = 4 << 20, have = 0;
	uint8_t *buf = malloc(cap);

	if (!buf)
		bench_die("%s", "out of memory");
	while (!atomic_load(&stop)) {
		ssize_t n = read(fd, buf + have, cap - have);
		if (n <= 0) {
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			break;
		}
		have += (size_t)n;
		size_t pos = 0;
		uint64_t frames = 0, bytes = 0;
		while (have - pos >= 4) {
			uint32_t len = (uint32_t)buf[pos] << 24 |
				       (uint32_t)buf[pos + 1] << 16 |
				       (uint32_t)buf[pos + 2] << 8 |
				       buf[pos + 3];
			if (len > cap - 4)
				bench_die("%s", "absurd frame length on out");
			if (have - pos - 4 < len)
				break;
			const uint8_t *f = buf + pos + 4;
			if (len >= 14 && f[12] == 0x08 && f[13] == 0x00) {
				frames++;
				bytes += len;
			} else if (len >= 14 && f[12] == 0x08 &&
				   f[13] == 0x06) {
				atomic_store(&probe_seen, true);
			} else {
				atomic_fetch_add(&released_other, 1);
			}
			pos += 4 + len;
		}
		memmove(buf, buf + pos, have - pos);
		have -= pos;
		if (frames) {
			atomic_fetch_add(&released_bytes, bytes);
			atomic_fetch_add(&released_frames, frames);
			atomic_store(&t_last_release, colo_now_ns());
		}
	}
	free(buf);
	return NULL;
}

static void send_probe(int fd)
{
	uint8_t buf[4 + 60] = { 0 };
	uint8_t *f = buf + 4;

	colo_put_be32(buf, 60);
	memset(f, 0xff, 6); /* broadcast */
	memcpy(f + 6, "\x52\x54\x00\x12\x34\x56", 6);
	f[12] = 0x08, f[13] = 0x06; /* ARP */
	memcpy(f + 14, "\x00\x01\x08\x00\x06\x04\x00\x02", 8);
	memcpy(f + 40, "colo_bench probe", 16);
	if (bench_write_all(fd, buf, sizeof(buf)))
		bench_die("probe write: %s", strerror(errno));
}

static unsigned parse_segs(const char *s, unsigned *out)
{
	unsigned n = 0;
	char *end;

	while (*s && n < MAX_SEGS) {
		unsigned long v = strtoul(s, &end, 10);
		if (end == s || v == 0 || v > 60000)
			bench_die("bad segment size list '%s'", s);
		out[n++] = (unsigned)v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			bench_die("bad segment size list '%s'", s);
	}
	return n;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	switch (*end) {
	case 'k':
	case 'K':
		v *= 1024;
		break;
	case 'm':
	case 'M':
		v *= 1024 * 1024;
		break;
	case 'g':
	case 'G':
		v *= 1024.0 * 1024 * 1024;
		break;
	case 0:
		break;
	default:
		bench_die("bad size '%s'", s);
	}
	return (uint64_t)v;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: colo_bench --primary HOST:PORT --secondary HOST:PORT "
		"--out HOST:PORT\n"
		"                  [--label NAME] [--conns N] [--bytes SIZE]\n"
		"                  [--pri-seg N[,N...]] [--sec-seg N[,N...]]\n"
		"                  [--window SIZE] [--idle-timeout MS]\n"
		"Connects to a running comparer and measures its throughput.\n"
		"Defaults: 64 connections, 1G payload, 1448-byte segments on "
		"both sides,\nwindow 4M, idle timeout 10000 ms.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "primary", required_argument, 0, 'p' },
		{ "secondary", required_argument, 0, 's' },
		{ "out", required_argument, 0, 'o' },
		{ "label", required_argument, 0, 'l' },
		{ "conns", required_argument, 0, 'c' },
		{ "bytes", required_argument, 0, 'b' },
		{ "pri-seg", required_argument, 0, 'P' },
		{ "sec-seg", required_argument, 0, 'S' },
		{ "window", required_argument, 0, 'w' },
		{ "idle-timeout", required_argument, 0, 'i' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct bench_config cfg = {
		.label = "comparer",
		.conns = 64,
		.total_bytes = 1ull << 30,
		.pri_seg = { 1448 },
		.n_pri_seg = 1,
		.sec_seg = { 1448 },
		.n_sec_seg = 1,
		.window_bytes = 4 << 20,
		.idle_timeout_ms = 10000,
	};
	int c;

	bench_set_prog("colo_bench");

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
		case 'c':
			cfg.conns = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			cfg.total_bytes = parse_size(optarg);
			break;
		case 'P':
			cfg.n_pri_seg = parse_segs(optarg, cfg.pri_seg);
			break;
		case 'S':
			cfg.n_sec_seg = parse_segs(optarg, cfg.sec_seg);
			break;
		case 'w':
			cfg.window_bytes = parse_size(optarg);
			break;
		case 'i':
			cfg.idle_timeout_ms =
				(unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!cfg.primary || !cfg.secondary || !cfg.out || !cfg.conns ||
	    cfg.conns > 1000000 || cfg.total_bytes < cfg.conns) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	srand(12345);
	for (size_t i = 0; i < PATTERN_BYTES; i++)
		pattern[i] = (uint8_t)(rand() >> 7);
	/* a segment crossing the end of the period reads on into a copy of
	 * its start, so that any segmentation yields the same stream */
	memcpy(pattern + PATTERN_BYTES, pattern, MAX_SEG_BYTES);

	/* out first: QEMU discards what it releases while out is unconnected */
	int out_fd = bench_connect(cfg.out, 30);
	struct side pri = { .cfg = &cfg,
			    .name = "primary",
			    .segs = cfg.pri_seg,
			    .n_segs = cfg.n_pri_seg };
	struct side sec = { .cfg = &cfg,
			    .name = "secondary",
			    .segs = cfg.sec_seg,
			    .n_segs = cfg.n_sec_seg };
	pri.fd = bench_connect(cfg.primary, 30);
	sec.fd = bench_connect(cfg.secondary, 30);
	pri.peer = &sec;
	sec.peer = &pri;

	pthread_t tr, tp, ts;
	pthread_create(&tr, NULL, reader_main, &out_fd);
	for (int i = 0; !atomic_load(&probe_seen); i++) {
		if (i == 100)
			bench_die("%s", "the probe frame never came out");
		send_probe(pri.fd);
		usleep(100000);
	}
	pthread_create(&tp, NULL, writer_main, &pri);
	pthread_create(&ts, NULL, writer_main, &sec);
	atomic_store(&t_first_send, colo_now_ns());
	atomic_store(&started, true);
	pthread_join(tp, NULL);
	pthread_join(ts, NULL);
	uint64_t t_sent = colo_now_ns();

	/* wait for the last release, or for the comparer to go quiet */
	uint64_t expected = pri.frames, last_seen = 0, last_change = colo_now_ns();
	while (atomic_load(&released_frames) < expected) {
		uint64_t n = atomic_load(&released_frames);
		if (n != last_seen) {
			last_seen = n;
			last_change = colo_now_ns();
		} else if (colo_now_ns() - last_change >
			   (uint64_t)cfg.idle_timeout_ms * 1000000ull) {
			break;
		}
		usleep(1000);
	}
	atomic_store(&stop, true);
	shutdown(out_fd, SHUT_RDWR);
	pthread_join(tr, NULL);

	uint64_t frames = atomic_load(&released_frames);
	uint64_t bytes = atomic_load(&released_bytes);
	uint64_t t_end = atomic_load(&t_last_release);
	uint64_t t0 = atomic_load(&t_first_send);
	double secs = t_end > t0 ? (double)(t_end - t0) / 1e9 : 0;
	double gbps = secs > 0 ? (double)bytes * 8 / secs / 1e9 : 0;
	double fps = secs > 0 ? (double)frames / secs : 0;
	bool complete = frames == expected;

	printf("%s: %u connections, %llu MiB payload, primary frames %llu, "
	       "secondary frames %llu\n",
	       cfg.label, cfg.conns,
	       (unsigned long long)(cfg.total_bytes >> 20),
	       (unsigned long long)pri.frames, (unsigned long long)sec.frames);
	printf("%s: released %llu of %llu frames (%.1f MB) in %.3f s "
	       "(sending took %.3f s): %.2f Gbit/s, %.0f frames/s%s\n",
	       cfg.label, (unsigned long long)frames,
	       (unsigned long long)expected, (double)bytes / 1e6, secs,
	       (double)(t_sent - t0) / 1e9, gbps, fps,
	       complete ? "" : " INCOMPLETE");
	printf("RESULT label=%s conns=%u frames=%llu expected=%llu bytes=%llu "
	       "seconds=%.3f gbps=%.3f fps=%.0f complete=%d\n",
	       cfg.label, cfg.conns, (unsigned long long)frames,
	       (unsigned long long)expected, (unsigned long long)bytes, secs,
	       gbps, fps, complete);
	close(pri.fd);
	close(sec.fd);
	close(out_fd);
	return complete ? 0 : 3;
}
