/*
 * bench_io.c - see bench_io.h.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench_io.h"
#include "clock.h"

static const char *bench_prog = "bench";

void bench_set_prog(const char *prog)
{
	bench_prog = prog;
}

void bench_die(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", bench_prog);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(1);
}

int bench_connect(const char *hostport, unsigned send_timeout_s)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	uint64_t deadline = colo_now_ns() + 10 * COLO_NS_PER_S;

	if (!colon || (size_t)(colon - hostport) >= sizeof(host))
		bench_die("bad address '%s' (want HOST:PORT)", hostport);
	memcpy(host, hostport, colon - hostport);
	host[colon - hostport] = 0;
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		bench_die("cannot resolve '%s'", hostport);
	for (;;) {
		int fd = socket(ai->ai_family, SOCK_STREAM, 0);

		if (fd < 0)
			bench_die("socket: %s", strerror(errno));
		if (!connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			int one = 1;
			struct timeval tv = { .tv_sec = send_timeout_s };

			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
				   sizeof(tv));
			freeaddrinfo(ai);
			return fd;
		}
		close(fd);
		if (colo_now_ns() > deadline)
			bench_die("cannot connect to %s", hostport);
		usleep(50000);
	}
}

int bench_write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}
