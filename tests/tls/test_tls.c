/*
 * test_tls.c - the TLS wrapper against real peers over loopback TCP:
 * the pair authenticates both ways and moves data; a certificate from
 * another CA, a valid certificate of the wrong host, plain TCP and a
 * replay of a recorded real session are all refused before a byte of
 * application data is delivered.
 *
 * The credentials are made per run by mkcreds.sh (its path is argv[1]).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tls.h"
#include "tls_fixture.h"

static const char *mkcreds;
static char root[64];
static struct colo_tls_creds *alpha, *beta, *mallory, *evil;

static struct colo_tls_creds *load(const char *name)
{
	char dir[128], err[256];
	struct colo_tls_creds *c;

	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	c = colo_tls_creds_load(dir, err, sizeof(err));
	if (!c)
		fprintf(stderr, "%s: %s\n", dir, err);
	return c;
}

static int run(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/colo-tls-test.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	/* evil: another CA's certificate that claims to be beta. */
	if (run("%s ca %s/ca && %s ca %s/ca2", mkcreds, root, mkcreds, root) ||
	    run("%s host %s/ca %s/alpha alpha", mkcreds, root, root) ||
	    run("%s host %s/ca %s/beta beta", mkcreds, root, root) ||
	    run("%s host %s/ca %s/mallory mallory", mkcreds, root, root) ||
	    run("%s host %s/ca2 %s/evil beta", mkcreds, root, root))
		return -1;
	alpha = load("alpha");
	beta = load("beta");
	mallory = load("mallory");
	evil = load("evil");
	return alpha && beta && mallory && evil ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	colo_tls_creds_free(alpha);
	colo_tls_creds_free(beta);
	colo_tls_creds_free(mallory);
	colo_tls_creds_free(evil);
	return run("rm -rf %s", root);
}

/* A connected loopback TCP pair (tls_fixture.c), both ends
 * non-blocking: fds[0] the accepted (server) end, fds[1] the connecting
 * one. */
static void tcp_pair(int fds[2])
{
	tls_tcp_pair(fds);
	for (int i = 0; i < 2; i++)
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
}

/* Drives both handshakes until each side finished or failed; a side
 * that fails shuts its socket down as a daemon would close it. r[i]: 1
 * or -1. */
static void drive(struct colo_tls *t[2], int fds[2], int r[2])
{
	char err[256];

	r[0] = r[1] = 0;
	for (int round = 0; round < 1000 && (!r[0] || !r[1]); round++) {
		struct pollfd p[2];

		for (int i = 0; i < 2; i++) {
			uint32_t want = 0;

			p[i] = (struct pollfd){ .fd = -1 };
			if (r[i])
				continue;
			r[i] = colo_tls_handshake(t[i], &want, err,
						  sizeof(err));
			if (r[i] < 0) {
				fprintf(stderr, "side %d: %s\n", i, err);
				shutdown(fds[i], SHUT_RDWR);
			} else if (r[i] == 0) {
				p[i] = (struct pollfd){
					.fd = fds[i],
					.events = want == EPOLLIN ? POLLIN
								  : POLLOUT,
				};
			}
		}
		poll(p, 2, 100);
	}
}

static void pair_new(struct colo_tls *t[2], int fds[2],
		     struct colo_tls_creds *srv, const char *srv_expects,
		     struct colo_tls_creds *cli, const char *cli_expects)
{
	char err[256];

	tcp_pair(fds);
	t[0] = colo_tls_new(srv, fds[0], true, srv_expects, err, sizeof(err));
	t[1] = colo_tls_new(cli, fds[1], false, cli_expects, err, sizeof(err));
	assert_non_null(t[0]);
	assert_non_null(t[1]);
}

static void pair_free(struct colo_tls *t[2], int fds[2])
{
	for (int i = 0; i < 2; i++) {
		colo_tls_free(t[i]);
		close(fds[i]);
	}
}

/* Moves n bytes from t[src] to t[!src], each side non-blocking. */
static void transfer(struct colo_tls *t[2], int fds[2], int src, size_t n)
{
	uint8_t *out = malloc(n), *in = malloc(n);
	size_t sent = 0, got = 0;

	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(i * 7 + 3);
	while (got < n) {
		struct pollfd p[2] = {
			{ .fd = fds[src], .events = sent < n ? POLLOUT : 0 },
			{ .fd = fds[!src], .events = POLLIN },
		};
		ssize_t w =
			sent < n ? colo_tls_write(t[src], out + sent, n - sent)
				 : 0;
		ssize_t r;

		if (w > 0)
			sent += (size_t)w;
		else if (w < 0)
			assert_int_equal(errno, EAGAIN);
		r = colo_tls_read(t[!src], in + got, n - got);
		if (r > 0)
			got += (size_t)r;
		else {
			assert_int_equal(r, -1);
			assert_int_equal(errno, EAGAIN);
			poll(p, 2, 100);
		}
	}
	assert_memory_equal(in, out, n);
	free(out);
	free(in);
}

static void test_pair_authenticates(void **state)
{
	struct colo_tls *t[2];
	int fds[2], r[2];

	(void)state;
	pair_new(t, fds, alpha, "beta", beta, "alpha");
	/* Gathered records are sent as bytes: a kernel-encrypting socket
	 * would encrypt them twice (Debian's OpenSSL has kernel TLS). */
	assert_false(colo_tls_ktls_allowed(t[0]));
	assert_false(colo_tls_ktls_allowed(t[1]));
	drive(t, fds, r);
	assert_int_equal(r[0], 1);
	assert_int_equal(r[1], 1);
	transfer(t, fds, 1, 100);
	transfer(t, fds, 0, 4 << 20);
	transfer(t, fds, 1, 1 << 20);
	pair_free(t, fds);
}

/* Asserts the server refused the client and reads no application data
 * from it. */
static void refused(struct colo_tls *t[2], int fds[2])
{
	uint8_t buf[64];
	int r[2];

	drive(t, fds, r);
	assert_int_equal(r[0], -1);
	assert_false(colo_tls_established(t[0]));
	assert_true(colo_tls_read(t[0], buf, sizeof(buf)) <= 0);
	/* In TLS 1.3 the client is done before the server checked its
	 * certificate: it learns of the refusal on its first read. */
	if (r[1] == 1) {
		struct pollfd p = { .fd = fds[1], .events = POLLIN };
		ssize_t n;

		poll(&p, 1, 1000);
		n = colo_tls_read(t[1], buf, sizeof(buf));
		assert_true(n == 0 || (n < 0 && errno != EAGAIN));
	}
	pair_free(t, fds);
}

static void test_other_ca_refused(void **state)
{
	struct colo_tls *t[2];
	int fds[2];

	(void)state;
	pair_new(t, fds, alpha, "beta", evil, "alpha");
	refused(t, fds);
}

static void test_wrong_host_refused(void **state)
{
	struct colo_tls *t[2];
	int fds[2];

	(void)state;
	pair_new(t, fds, alpha, "beta", mallory, "alpha");
	refused(t, fds);
}

/* The connecting side also checks the listener: beta expecting alpha
 * does not talk to mallory's listener. */
static void test_client_checks_server(void **state)
{
	struct colo_tls *t[2];
	int fds[2], r[2];

	(void)state;
	pair_new(t, fds, mallory, "beta", beta, "alpha");
	drive(t, fds, r);
	assert_int_equal(r[1], -1);
	assert_int_not_equal(r[0], 1);
	pair_free(t, fds);
}

static void test_plain_tcp_refused(void **state)
{
	static const char frame[] =
		"COLOLINK\x01\x00\x00\x00hello in the clear";
	char err[256];
	uint32_t want;
	int fds[2], r = 0;
	struct colo_tls *t;

	(void)state;
	tcp_pair(fds);
	t = colo_tls_new(alpha, fds[0], true, "beta", err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(write(fds[1], frame, sizeof(frame)),
			 (ssize_t)sizeof(frame));
	for (int i = 0; i < 100 && r == 0; i++) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };

		r = colo_tls_handshake(t, &want, err, sizeof(err));
		if (r == 0)
			poll(&p, 1, 100);
	}
	assert_int_equal(r, -1);
	colo_tls_free(t);
	close(fds[0]);
	close(fds[1]);
}

/* Relays one direction (client to server) while recording it. */
static void relay(int from, int to, uint8_t *rec, size_t *reclen, size_t cap)
{
	uint8_t buf[16384];
	ssize_t n;

	while ((n = read(from, buf, sizeof(buf))) > 0) {
		assert_true(*reclen + (size_t)n <= cap);
		memcpy(rec + *reclen, buf, (size_t)n);
		*reclen += (size_t)n;
		assert_int_equal(write(to, buf, (size_t)n), n);
	}
}

/* A real session recorded on the wire (handshake and data), played
 * back on a new connection: the server's fresh randomness makes the
 * recorded Finished (and the keys) wrong, so no byte gets through. */
static void test_replay_refused(void **state)
{
	static uint8_t rec[1 << 16];
	size_t reclen = 0;
	struct colo_tls *t[2];
	int srv[2], cli[2];
	char err[256];
	int r[2] = { 0, 0 };

	(void)state;
	tcp_pair(srv); /* srv[1] stands for the client on the wire */
	tcp_pair(cli); /* cli[0] is the recorder's end facing the client */
	t[0] = colo_tls_new(alpha, srv[0], true, "beta", err, sizeof(err));
	t[1] = colo_tls_new(beta, cli[1], false, "alpha", err, sizeof(err));
	for (int round = 0; round < 1000 && (r[0] != 1 || r[1] != 1); round++) {
		uint32_t want;
		uint8_t buf[16384];
		ssize_t n;

		if (r[0] != 1)
			r[0] = colo_tls_handshake(t[0], &want, err,
						  sizeof(err));
		if (r[1] != 1)
			r[1] = colo_tls_handshake(t[1], &want, err,
						  sizeof(err));
		assert_true(r[0] >= 0 && r[1] >= 0);
		relay(cli[0], srv[1], rec, &reclen, sizeof(rec));
		while ((n = read(srv[1], buf, sizeof(buf))) > 0)
			assert_int_equal(write(cli[0], buf, (size_t)n), n);
		poll(NULL, 0, 1);
	}
	assert_int_equal(colo_tls_write(t[1], "COLOLINK-secret", 15), 15);
	for (int i = 0; i < 100; i++) {
		uint8_t buf[64];
		ssize_t n;

		relay(cli[0], srv[1], rec, &reclen, sizeof(rec));
		n = colo_tls_read(t[0], buf, sizeof(buf));
		if (n > 0) {
			assert_int_equal(n, 15);
			break;
		}
		poll(NULL, 0, 1);
	}
	colo_tls_free(t[0]);
	colo_tls_free(t[1]);
	for (int i = 0; i < 2; i++) {
		close(srv[i]);
		close(cli[i]);
	}

	/* The replay. */
	{
		struct colo_tls *v;
		uint8_t buf[64];
		int fds[2], rv = 0;
		uint32_t want;

		tcp_pair(fds);
		v = colo_tls_new(alpha, fds[0], true, "beta", err, sizeof(err));
		assert_non_null(v);
		assert_int_equal(write(fds[1], rec, reclen), (ssize_t)reclen);
		for (int i = 0; i < 100 && rv == 0; i++) {
			struct pollfd p = { .fd = fds[0], .events = POLLIN };

			rv = colo_tls_handshake(v, &want, err, sizeof(err));
			if (rv == 0)
				poll(&p, 1, 100);
		}
		assert_int_equal(rv, -1);
		assert_true(colo_tls_read(v, buf, sizeof(buf)) <= 0);
		colo_tls_free(v);
		close(fds[0]);
		close(fds[1]);
	}
}

static void test_creds_errors(void **state)
{
	char dir[128], err[256];

	(void)state;
	assert_null(colo_tls_creds_load("/nonexistent-colo-creds", err,
					sizeof(err)));
	assert_non_null(strstr(err, "ca-cert.pem"));
	/* A directory with only the CA cannot authenticate us. */
	snprintf(dir, sizeof(dir), "%s/ca2", root);
	assert_null(colo_tls_creds_load(dir, err, sizeof(err)));
	assert_true(colo_tls_creds_can(alpha, true));
	assert_true(colo_tls_creds_can(alpha, false));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pair_authenticates),
		cmocka_unit_test(test_other_ca_refused),
		cmocka_unit_test(test_wrong_host_refused),
		cmocka_unit_test(test_client_checks_server),
		cmocka_unit_test(test_plain_tcp_refused),
		cmocka_unit_test(test_replay_refused),
		cmocka_unit_test(test_creds_errors),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: test_tls MKCREDS.SH\n");
		return 2;
	}
	mkcreds = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
