/*
 * tcp_blast.c - a TCP sender and sink for bench/netio, lighter than the
 * Python one of the tests so that the sender is not what limits the
 * measurement. run.sh compiles it on the fly.
 *
 *   tcp_blast recv PORT            prints "listening", then "<bytes> <Gbit/s>"
 *   tcp_blast send HOST PORT BYTES
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 20];

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned long long total = 0, want;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	double t0;
	ssize_t n;
	int fd, one = 1;

	if (argc == 3 && !strcmp(argv[1], "recv")) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons(
						 (uint16_t)atoi(argv[2])) };
		int ls = socket(AF_INET, SOCK_STREAM, 0);

		setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1))
			return perror("bind"), 1;
		printf("listening\n");
		fflush(stdout);
		fd = accept(ls, NULL, NULL);
		t0 = now();
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			total += (unsigned long long)n;
		printf("%llu %.2f\n", total,
		       (double)total * 8 / (now() - t0) / 1e9);
		return 0;
	}
	if (argc != 5 || strcmp(argv[1], "send"))
		return fprintf(stderr, "usage: see tcp_blast.c\n"), 2;
	want = strtoull(argv[4], NULL, 10);
	if (getaddrinfo(argv[2], argv[3], &hints, &ai))
		return fprintf(stderr, "bad address\n"), 1;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen))
		return perror("connect"), 1;
	memset(buf, 0x5a, sizeof(buf));
	while (total < want) {
		size_t c =
			want - total < sizeof(buf) ? want - total : sizeof(buf);

		n = write(fd, buf, c);
		if (n <= 0)
			return perror("write"), 1;
		total += (unsigned long long)n;
	}
	shutdown(fd, SHUT_WR);
	n = read(fd, buf, 1);
	close(fd);
	return 0;
}
