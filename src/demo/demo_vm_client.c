/*
 * demo_vm_client.c - the client of `colo demo` (VM variant). It runs in
 * the client namespace as a child process and reports through a shared
 * page, so the demo's own loop keeps printing while a read blocks here.
 *
 * The echo load is deliberately slow (one small message every 100 ms):
 * the guests run under TCG on a busy machine, and the point is one
 * connection whose every byte is checked across checkpoints and the
 * failover, not throughput.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "demo_util.h"
#include "demo_vm_client.h"

#define MSG_LEN 48

static void fail(struct colo_demo_client *c, const char *fmt, const char *what)
{
	snprintf(c->err, sizeof(c->err), fmt, what);
	c->state = -1;
	_exit(1);
}

static int dial(const char *ip, int port, int timeout_s)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	struct timeval tv = { timeout_s, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, ip, &a.sin_addr);
	/* SO_SNDTIMEO bounds connect() too: a guest still booting does not
	 * answer the SYN, and the next try starts clean. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	tv.tv_sec = 30; /* longer than any checkpoint or failover */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Reads exactly n bytes; 0, or -1 (closed, timeout, error). */
static int read_full(int fd, unsigned char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

void colo_demo_echo_client(struct colo_demo_client *c, const char *ip, int port,
			   int connect_s)
{
	uint64_t deadline = colo_now_ns() + (uint64_t)connect_s * COLO_NS_PER_S;
	unsigned char msg[MSG_LEN], back[MSG_LEN];
	int fd = -1;

	while (fd < 0) {
		if (c->stop || colo_now_ns() > deadline)
			fail(c, "%s",
			     "no answer from the guest's echo service");
		fd = dial(ip, port, 3);
		if (fd < 0)
			sleep(1);
	}
	c->connected = 1;
	c->last_rx_ns = colo_now_ns();
	for (uint64_t n = 0; !c->stop; n++) {
		struct timespec pace = { 0, 100 * 1000 * 1000 };
		uint64_t t;

		/* Numbered and varied: a lost, doubled or reordered byte
		 * anywhere shows as a mismatch. */
		memset(msg, 0, sizeof(msg));
		snprintf((char *)msg, sizeof(msg), "colo demo round %llu ",
			 (unsigned long long)n);
		for (size_t i = 24; i < MSG_LEN - 1; i++)
			msg[i] = (unsigned char)('a' + (n * 7 + i) % 26);
		msg[MSG_LEN - 1] = '\n';
		if (send(fd, msg, sizeof(msg), MSG_NOSIGNAL) != sizeof(msg))
			fail(c, "send on the echo connection: %s",
			     strerror(errno));
		if (read_full(fd, back, sizeof(back)) < 0)
			fail(c, "the echo connection broke: %s",
			     errno ? strerror(errno) : "closed");
		if (memcmp(msg, back, sizeof(msg)) != 0)
			fail(c, "%s", "the echo came back with wrong bytes");
		t = colo_now_ns();
		colo_demo_note_rx(t, c->kill_ns, &c->last_rx_ns, &c->stall_ns);
		c->rounds = n + 1;
		c->bytes += sizeof(msg);
		nanosleep(&pace, NULL);
	}
	close(fd);
	c->state = 1;
	_exit(0);
}

void colo_demo_probe(struct colo_demo_client *c, const char *ip, int port)
{
	char buf[256];
	size_t got = 0;
	int fd = dial(ip, port, 20);

	if (fd < 0) {
		snprintf(c->err, sizeof(c->err), "connect: %s",
			 strerror(errno));
		c->probe_state = -1;
		_exit(1);
	}
	/* The answer ends with the guest's close: a reset or a timeout
	 * instead is a failure. */
	for (;;) {
		ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(c->err, sizeof(c->err), "recv: %s",
				 strerror(errno));
			c->probe_state = -1;
			_exit(1);
		}
		if (r == 0 || (got += (size_t)r) == sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[got] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	buf[sizeof(c->probe_text) - 1] = '\0';
	memcpy(c->probe_text, buf, sizeof(c->probe_text));
	c->probe_len = (int)got;
	c->probe_state = got > 0 ? 1 : -1;
	_exit(0);
}
