/*
 * floor_compare.c - the latency floor under any comparer, for
 * bench/run.sh's latency-at-rate rows.
 *
 * A comparer cannot release a primary frame before the secondary's copy
 * has arrived. This program does only that, with no parsing at all: it
 * accepts the three connections a comparer has (primary-in,
 * secondary-in, out; QEMU's framing passes through untouched) and writes
 * the primary's bytes to out as soon as the secondary has sent as many
 * bytes, in one poll() loop with TCP_NODELAY everywhere. With identical
 * streams (colo_latency sends the same bytes to both) that is a comparer
 * that trusts lengths and does no work. Like the comparers it lets a
 * non-IP frame (colo_latency's ARP probe, sent to the primary only) go
 * at once: frames are delimited by their be32 length to find them, and
 * nothing else is read. What the floor adds is the machine's
 * own cost of the hand-offs (wake-ups, scheduling on shared CPUs), which
 * is what `colo compare`'s figures should be read against.
 *
 * usage: floor_compare PRIMARY_PORT SECONDARY_PORT OUT_PORT (127.0.0.1)
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_LEN (4u << 20)

static void die(const char *what)
{
	fprintf(stderr, "floor_compare: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int listen_on(const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	char *end;
	long p = strtol(port, &end, 10);

	if (*end || p <= 0 || p > 65535) {
		fprintf(stderr, "floor_compare: bad port %s\n", port);
		exit(2);
	}
	if (fd < 0)
		die("socket");
	a.sin_port = htons((uint16_t)p);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0)
		die("bind/listen");
	return fd;
}

/* The bench connects the three in its own order: accept whichever comes. */
static void accept_all(int lfd[3], int cfd[3])
{
	struct pollfd pf[3];
	int left = 3, one = 1;

	while (left) {
		for (int i = 0; i < 3; i++)
			pf[i] = (struct pollfd){ .fd = cfd[i] < 0 ? lfd[i] : -1,
						 .events = POLLIN };
		if (poll(pf, 3, -1) < 0 && errno != EINTR)
			die("poll");
		for (int i = 0; i < 3; i++) {
			if (!(pf[i].revents & POLLIN))
				continue;
			cfd[i] = accept(lfd[i], NULL, NULL);
			if (cfd[i] < 0)
				die("accept");
			setsockopt(cfd[i], IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			left--;
		}
	}
}

int main(int argc, char **argv)
{
	int lfd[3], cfd[3] = { -1, -1, -1 };
	static uint8_t pbuf[BUF_LEN], sink[BUF_LEN];
	size_t head = 0, tail = 0; /* primary bytes buffered: [tail, head) */
	uint64_t sec = 0, rel = 0, pri = 0;
	/* stream offsets: pbuf[0]'s, the next frame to look at; bytes of
	 * non-IP frames, which need no secondary copy */
	uint64_t base = 0, parsed = 0, alone = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: floor_compare PRIMARY_PORT "
				"SECONDARY_PORT OUT_PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < 3; i++)
		lfd[i] = listen_on(argv[i + 1]);
	accept_all(lfd, cfd);
	for (;;) {
		struct pollfd pf[2] = {
			{ .fd = head < BUF_LEN ? cfd[0] : -1,
			  .events = POLLIN },
			{ .fd = cfd[1], .events = POLLIN },
		};
		ssize_t n;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pf[0].revents) {
			n = read(cfd[0], pbuf + head, BUF_LEN - head);
			if (n <= 0)
				return 0;
			head += (size_t)n;
			pri += (uint64_t)n;
		}
		if (pf[1].revents) {
			n = read(cfd[1], sink, sizeof(sink));
			if (n <= 0)
				return 0;
			sec += (uint64_t)n;
		}
		/* frames whole in pbuf: a non-IP one needs no secondary */
		while (parsed + 4 + 14 <= pri) {
			const uint8_t *f = pbuf + (parsed - base);
			uint64_t flen = 4 + ((uint64_t)f[0] << 24 |
					     (uint64_t)f[1] << 16 |
					     (uint64_t)f[2] << 8 | f[3]);

			if (!(f[4 + 12] == 0x08 && f[4 + 13] == 0x00))
				alone += flen;
			parsed += flen;
		}
		/* release what both sides have sent */
		while (rel < pri && rel < sec + alone) {
			uint64_t both = pri < sec + alone ? pri : sec + alone;
			uint64_t can = both - rel;

			n = write(cfd[2], pbuf + tail, can);
			if (n <= 0)
				return n < 0 ? 1 : 0;
			tail += (size_t)n;
			rel += (uint64_t)n;
		}
		/* keep the frame being looked at (parsed) in pbuf */
		size_t keep = tail;

		if (parsed - base < keep)
			keep = (size_t)(parsed - base);
		if (keep == head) {
			base += head;
			head = tail = 0;
		} else if (keep > BUF_LEN / 2) {
			memmove(pbuf, pbuf + keep, head - keep);
			head -= keep;
			tail -= keep;
			base += keep;
		}
	}
}
