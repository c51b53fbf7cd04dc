/*
 * tls_fixture.c - credentials, sockets and the counting relay of the TLS
 * unit tests (see tls_fixture.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tls_fixture.h"

static struct colo_tls_creds *load(const char *root, const char *name)
{
	char dir[128], err[256];
	struct colo_tls_creds *c;

	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	c = colo_tls_creds_load(dir, err, sizeof(err));
	if (!c)
		fprintf(stderr, "%s: %s\n", dir, err);
	return c;
}

int tls_fixture_setup(struct tls_fixture *f, const char *mkcreds)
{
	const char *r = f->root;
	char cmd[512];

	snprintf(f->root, sizeof(f->root), "/tmp/colo-tls-test.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "%s ca %s/ca && %s host %s/ca %s/alpha alpha && "
		 "%s host %s/ca %s/beta beta",
		 mkcreds, r, mkcreds, r, r, mkcreds, r, r);
	if (system(cmd))
		return -1;
	f->alpha = load(r, "alpha");
	f->beta = load(r, "beta");
	return f->alpha && f->beta ? 0 : -1;
}

int tls_fixture_teardown(struct tls_fixture *f)
{
	char cmd[128];

	colo_tls_creds_free(f->alpha);
	colo_tls_creds_free(f->beta);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->root);
	return system(cmd) ? -1 : 0;
}

void tls_tcp_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	fds[1] = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fds[1], (struct sockaddr *)&a, sizeof(a)), 0);
	fds[0] = accept(l, NULL, NULL);
	assert_true(fds[0] >= 0);
	close(l);
}

static void *relay_main(void *p)
{
	struct tls_relay *r = p;
	static uint8_t buf[1 << 19];

	for (;;) {
		struct pollfd pf[2] = { { r->client_side, POLLIN, 0 },
					{ r->server_side, POLLIN, 0 } };

		if (poll(pf, 2, -1) < 0)
			return NULL;
		for (int i = 0; i < 2; i++) {
			int from = i ? r->server_side : r->client_side;
			int to = i ? r->client_side : r->server_side;
			ssize_t n;

			if (!pf[i].revents)
				continue;
			n = recv(from, buf, sizeof(buf), 0);
			if (n <= 0)
				return NULL;
			if (!i)
				__atomic_add_fetch(&r->msgs, 1,
						   __ATOMIC_RELAXED);
			if (send(to, buf, (size_t)n, MSG_NOSIGNAL) != n)
				return NULL;
		}
	}
}

void tls_relay_start(struct tls_relay *r)
{
	int a[2], b[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	r->client_side = a[0];
	r->server_side = b[0];
	r->ends[0] = b[1];
	r->ends[1] = a[1];
	r->msgs = 0;
	assert_int_equal(pthread_create(&r->thread, NULL, relay_main, r), 0);
}

unsigned long tls_relay_msgs(struct tls_relay *r)
{
	return __atomic_load_n(&r->msgs, __ATOMIC_RELAXED);
}

void tls_relay_stop(struct tls_relay *r)
{
	pthread_join(r->thread, NULL);
	close(r->client_side);
	close(r->server_side);
}
