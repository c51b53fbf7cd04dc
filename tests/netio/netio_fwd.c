/*
 * netio_fwd.c - the smallest proxy: moves frames both ways between two
 * ports, for the netio integration test and bench/netio.
 *
 *   netio_fwd [-q] [NETNS@]SPEC [NETNS@]SPEC
 *
 * Each port is opened inside the named network namespace (/run/netns),
 * so one process can join interfaces of different namespaces. Prints
 * "ready" once both are open and its counters on SIGINT/SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "port.h"

static volatile sig_atomic_t stop;

struct side {
	const char *spec;
	struct colo_port *port;
	uint32_t max_len;
	uint64_t hist[4]; /* batch sizes: 1, 2-8, 9-32, 33-64 */
};

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int enter_netns(const char *name)
{
	char path[256];
	int fd, rc;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

static struct colo_port *open_in_netns(const char *arg, const char **spec)
{
	const char *at = strchr(arg, '@');
	char err[256], ns[128];
	struct colo_port *p;
	int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);

	*spec = arg;
	if (at) {
		snprintf(ns, sizeof(ns), "%.*s", (int)(at - arg), arg);
		*spec = at + 1;
		if (enter_netns(ns)) {
			fprintf(stderr, "netns %s: %s\n", ns, strerror(errno));
			return NULL;
		}
	}
	p = colo_port_open(*spec, err, sizeof(err));
	if (!p)
		fprintf(stderr, "%s\n", err);
	if (home >= 0) {
		if (setns(home, CLONE_NEWNET))
			perror("setns back");
		close(home);
	}
	return p;
}

/* Moves what in has to out; returns -1 when a port failed. */
static int forward(struct side *in, struct side *out)
{
	static struct colo_rx_batch b;
	size_t vnet = colo_port_vnet_hdr_len(in->port);
	int n, rounds = 0;
	uint32_t i;

	do {
		n = colo_port_recv(in->port, &b);
		if (n < 0)
			return -1;
		if (!n)
			break;
		in->hist[n == 1 ? 0 : n <= 8 ? 1 : n <= 32 ? 2 : 3]++;
		for (i = 0; i < b.n; i++) {
			if (b.f[i].len - vnet > in->max_len)
				in->max_len = b.f[i].len - (uint32_t)vnet;
			colo_port_send(out->port, b.f[i].data, b.f[i].len,
				       vnet);
		}
		if (colo_port_flush(out->port) < 0)
			return -1;
	} while (n == COLO_PORT_BATCH && ++rounds < 8);
	return 0;
}

static void report(const struct side *s)
{
	const struct colo_port_stats *st = colo_port_stats(s->port);

	printf("port %s rx_frames=%llu rx_gso=%llu rx_calls=%llu "
	       "avg_batch=%.1f avg_len=%llu max_len=%u "
	       "batches[1,2-8,9-32,33-64]=%llu,%llu,"
	       "%llu,%llu rx_dropped=%llu tx_frames=%llu tx_gso=%llu "
	       "tx_segments=%llu tx_calls=%llu tx_dropped=%llu\n",
	       s->spec, (unsigned long long)st->rx_frames,
	       (unsigned long long)st->rx_gso, (unsigned long long)st->rx_calls,
	       st->rx_calls ? (double)st->rx_frames / (double)st->rx_calls : 0,
	       st->rx_frames
		       ? (unsigned long long)(st->rx_bytes / st->rx_frames)
		       : 0ULL,
	       s->max_len, (unsigned long long)s->hist[0],
	       (unsigned long long)s->hist[1], (unsigned long long)s->hist[2],
	       (unsigned long long)s->hist[3],
	       (unsigned long long)st->rx_dropped,
	       (unsigned long long)st->tx_frames,
	       (unsigned long long)st->tx_gso,
	       (unsigned long long)st->tx_segments,
	       (unsigned long long)st->tx_calls,
	       (unsigned long long)st->tx_dropped);
}

int main(int argc, char **argv)
{
	struct side s[2] = { 0 };
	struct timespec t0, t1;
	struct rusage ru;
	int i, rc = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: %s [NETNS@]SPEC [NETNS@]SPEC\n",
			argv[0]);
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < 2; i++) {
		s[i].port = open_in_netns(argv[i + 1], &s[i].spec);
		if (!s[i].port)
			return 1;
	}
	printf("ready\n");
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop) {
		struct pollfd pfd[2];

		for (i = 0; i < 2; i++) {
			pfd[i].fd = colo_port_fd(s[i].port);
			if (pfd[i].fd < 0)
				pfd[i].fd = colo_port_listen_fd(s[i].port);
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		if (poll(pfd, 2, 100) < 0 && errno != EINTR)
			break;
		for (i = 0; i < 2; i++) {
			if (!pfd[i].revents)
				continue;
			if (forward(&s[i], &s[!i])) {
				fprintf(stderr, "%s: port failed\n", s[i].spec);
				rc = 1;
				stop = 1;
			}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	getrusage(RUSAGE_SELF, &ru);
	for (i = 0; i < 2; i++)
		report(&s[i]);
	printf("cpu user=%.2fs sys=%.2fs wall=%.2fs\n",
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	       (double)(t1.tv_sec - t0.tv_sec) +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	for (i = 0; i < 2; i++)
		colo_port_close(s[i].port);
	return rc;
}
