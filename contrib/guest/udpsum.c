/*
 * udpsum.c - the test guest's UDP service (colo_udpsum=PORT in init): it
 * answers every datagram with the number of datagrams it has received so
 * far and an FNV-1a hash over all their bytes, in order. Its answer thus
 * depends on every datagram before it: a datagram lost or doubled on one
 * VM makes every later answer of that VM differ from the other VM's, and
 * from what the client expects. UDP has no retransmission to hide it.
 *
 * Answer: be64 count, be64 hash, then the datagram's first 64 bytes (so a
 * client can tell which datagram it answers). Static, libc only: the
 * guest has busybox, which cannot serve UDP.
 *
 * The receive buffer is made large (8 MiB, forced: init runs as root): a
 * checkpoint hands the guest what was held meanwhile in one burst, and
 * the default buffer (about 200 KiB, a few dozen small datagrams as the
 * kernel counts them) would drop some if this process is slow to run.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define ECHO_MAX 64

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	uint64_t count = 0, hash = 0xcbf29ce484222325ull;
	uint8_t in[2048], out[16 + ECHO_MAX];
	int fd, rcvbuf = 8 << 20;

	if (argc != 2)
		return 2;
	a.sin_port = htons((uint16_t)atoi(argv[1]));
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return 1;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, in, sizeof(in), 0,
				     (struct sockaddr *)&from, &fl);
		size_t e;

		if (n < 0)
			continue;
		count++;
		for (ssize_t i = 0; i < n; i++)
			hash = (hash ^ in[i]) * 0x100000001b3ull;
		e = (size_t)n < ECHO_MAX ? (size_t)n : ECHO_MAX;
		put_be64(out, count);
		put_be64(out + 8, hash);
		memcpy(out + 16, in, e);
		sendto(fd, out, 16 + e, 0, (struct sockaddr *)&from, fl);
	}
}
