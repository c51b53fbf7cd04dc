/*
 * test_sock_spec_notify.c - SOCK string parsing, the notify protocol
 * logic and the output buffer: the daemon's pure parts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sys/socket.h>
#include <unistd.h>

#include "notify.h"
#include "outbuf.h"
#include "sock_spec.h"

static void test_sock_good(void **state)
{
	struct colo_sock_spec s;
	char err[128], txt[200];

	(void)state;
	assert_int_equal(colo_sock_spec_parse("tcp-listen:127.0.0.1:9000", &s,
					      err, sizeof(err)),
			 0);
	assert_int_equal(s.kind, COLO_SOCK_TCP_LISTEN);
	assert_string_equal(s.host, "127.0.0.1");
	assert_string_equal(s.port, "9000");
	assert_true(colo_sock_spec_is_listen(&s));

	assert_int_equal(
		colo_sock_spec_parse("tcp-listen::9000", &s, err, sizeof(err)),
		0);
	assert_string_equal(s.host, "");

	assert_int_equal(
		colo_sock_spec_parse("tcp:[::1]:65535", &s, err, sizeof(err)),
		0);
	assert_int_equal(s.kind, COLO_SOCK_TCP_CONNECT);
	assert_string_equal(s.host, "::1");
	assert_string_equal(s.port, "65535");
	assert_false(colo_sock_spec_is_listen(&s));
	colo_sock_spec_format(&s, txt, sizeof(txt));
	assert_string_equal(txt, "tcp:[::1]:65535");

	assert_int_equal(colo_sock_spec_parse("tcp:host.example:1", &s, err,
					      sizeof(err)),
			 0);
	assert_string_equal(s.host, "host.example");

	assert_int_equal(colo_sock_spec_parse("unix-listen:/run/colo/p.sock",
					      &s, err, sizeof(err)),
			 0);
	assert_int_equal(s.kind, COLO_SOCK_UNIX_LISTEN);
	assert_string_equal(s.path, "/run/colo/p.sock");

	assert_int_equal(
		colo_sock_spec_parse("unix:rel/a:b", &s, err, sizeof(err)), 0);
	assert_int_equal(s.kind, COLO_SOCK_UNIX_CONNECT);
	assert_string_equal(s.path, "rel/a:b");
}

static void test_sock_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"tcp",
		"udp:1.2.3.4:5",
		"tcp:1.2.3.4",
		"tcp:1.2.3.4:",
		"tcp:1.2.3.4:0",
		"tcp:1.2.3.4:65536",
		"tcp:1.2.3.4:123456",
		"tcp:1.2.3.4:-1",
		"tcp:1.2.3.4:80x",
		"tcp::80",
		"tcp:::1:80",
		"tcp:[::1:80",
		"tcp:[::1]80",
		"tcp:[]:80",
		"tcp:a b:80",
		"unix:",
		"unix-listen:",
		"TCP:1.2.3.4:5",
	};
	struct colo_sock_spec s;
	char err[128];
	char longpath[200];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(
			colo_sock_spec_parse(bad[i], &s, err, sizeof(err)), -1);
		assert_true(strlen(err) > 0);
	}
	memcpy(longpath, "unix:", 5);
	memset(longpath + 5, 'a', 120);
	longpath[125] = '\0';
	assert_int_equal(colo_sock_spec_parse(longpath, &s, err, sizeof(err)),
			 -1);
}

static void test_sock_resolve(void **state)
{
	struct colo_sock_spec s;
	struct colo_sock_addr a;
	char err[128];

	(void)state;
	assert_int_equal(
		colo_sock_spec_parse("tcp:127.0.0.1:80", &s, err, sizeof(err)),
		0);
	assert_int_equal(colo_sock_resolve(&s, &a, err, sizeof(err)), 0);
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(
		colo_sock_spec_parse("unix:/tmp/x", &s, err, sizeof(err)), 0);
	assert_int_equal(colo_sock_resolve(&s, &a, err, sizeof(err)), 0);
	assert_int_equal(a.ss.ss_family, AF_UNIX);
}

#define MSG(s) (const uint8_t *)(s), strlen(s)

static void test_notify_parse(void **state)
{
	(void)state;
	assert_int_equal(colo_notify_parse(MSG("COLO_USERSPACE_PROXY_INIT")),
			 COLO_NOTIFY_MSG_PROXY_INIT);
	assert_int_equal(colo_notify_parse(MSG("COLO_CHECKPOINT")),
			 COLO_NOTIFY_MSG_CHECKPOINT);
	assert_int_equal(colo_notify_parse(MSG("DO_CHECKPOINT")),
			 COLO_NOTIFY_MSG_DO_CHECKPOINT);
	/* exact length: no prefix, no NUL, no trailing bytes */
	assert_int_equal(colo_notify_parse(MSG("COLO_CHECKPOIN")),
			 COLO_NOTIFY_MSG_UNKNOWN);
	assert_int_equal(
		colo_notify_parse((const uint8_t *)"COLO_CHECKPOINT", 16),
		COLO_NOTIFY_MSG_UNKNOWN);
	assert_int_equal(colo_notify_parse(MSG("COLO_CHECKPOINTX")),
			 COLO_NOTIFY_MSG_UNKNOWN);
	assert_int_equal(colo_notify_parse(MSG("colo_checkpoint")),
			 COLO_NOTIFY_MSG_UNKNOWN);
	assert_int_equal(colo_notify_parse(NULL, 0), COLO_NOTIFY_MSG_UNKNOWN);
}

static void test_notify_session(void **state)
{
	struct colo_notify_session s;
	unsigned int act;

	(void)state;
	memset(&s, 0, sizeof(s));
	act = colo_notify_on_message(&s, MSG("COLO_USERSPACE_PROXY_INIT"),
				     false);
	assert_int_equal(act, COLO_NOTIFY_SEND_INIT_REPLY);
	assert_true(s.initialised);
	assert_true(colo_notify_want_checkpoint(&s, true));
	act = colo_notify_on_message(&s, MSG("COLO_CHECKPOINT"), true);
	assert_int_equal(act, COLO_NOTIFY_CHECKPOINT_DONE);
	act = colo_notify_on_message(&s, MSG("HELLO"), false);
	assert_int_equal(act, COLO_NOTIFY_UNKNOWN);
	assert_int_equal(s.unknown, 1);

	/* Asked while disconnected: owed until the next handshake. */
	assert_false(colo_notify_want_checkpoint(&s, false));
	act = colo_notify_on_message(&s, MSG("COLO_USERSPACE_PROXY_INIT"),
				     true);
	assert_int_equal(act, COLO_NOTIFY_SEND_INIT_REPLY |
				      COLO_NOTIFY_SEND_DO_CHECKPOINT);
	/* ... but not if the checkpoint is no longer wanted. */
	assert_false(colo_notify_want_checkpoint(&s, false));
	act = colo_notify_on_message(&s, MSG("COLO_USERSPACE_PROXY_INIT"),
				     false);
	assert_int_equal(act, COLO_NOTIFY_SEND_INIT_REPLY);
	assert_int_equal(s.sent_do_checkpoint, 2);
}

static void test_notify_describe(void **state)
{
	char buf[64];
	uint8_t bin[100];

	(void)state;
	colo_notify_describe(MSG("A\n\\"), buf, sizeof(buf));
	assert_string_equal(buf, "A\\x0a\\x5c");
	memset(bin, 0, sizeof(bin));
	colo_notify_describe(bin, sizeof(bin), buf, sizeof(buf));
	assert_true(strlen(buf) < sizeof(buf));
	colo_notify_describe(bin, sizeof(bin), buf, 3);
	assert_true(strlen(buf) < 3);
}

static void test_outbuf_boundaries(void **state)
{
	struct colo_outbuf o;
	uint8_t frame[1000];

	(void)state;
	memset(frame, 7, sizeof(frame));
	assert_int_equal(colo_outbuf_init(&o, 64, true), 0);
	/* Grows past its initial size rather than dropping. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(colo_outbuf_append(&o, frame, 100 + i, 10), 0);
	assert_int_equal(colo_outbuf_pending(&o), 10 * 8 + 1045);
	assert_int_equal(o.buf[7], 10);
	/* Nothing sent yet: a disconnect cuts nothing. */
	assert_false(colo_outbuf_drop_partial(&o));
	colo_outbuf_free(&o);
}

/* A peer leaving mid-frame costs that frame only: what stays queued starts
 * on a frame boundary. */
static void test_outbuf_partial(void **state)
{
	static uint8_t frame[100000];
	struct colo_outbuf o;
	int sv[2], small = 4096;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	assert_int_equal(colo_outbuf_init(&o, 1024, false), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(
			colo_outbuf_append(&o, frame, sizeof(frame), 0), 0);
	assert_int_equal(colo_outbuf_flush(&o, sv[0]), 0);
	assert_true(colo_outbuf_pending(&o) < 3 * (sizeof(frame) + 4));
	assert_true(colo_outbuf_drop_partial(&o));
	assert_int_equal(colo_outbuf_pending(&o) % (sizeof(frame) + 4), 0);
	assert_int_equal(colo_outbuf_pending(&o), 2 * (sizeof(frame) + 4));
	assert_int_equal(o.truncated, 1);
	/* Appending after the cut compacts around the kept frames. */
	assert_int_equal(colo_outbuf_append(&o, frame, 10, 0), 0);
	assert_int_equal(colo_outbuf_pending(&o), 2 * (sizeof(frame) + 4) + 14);
	close(sv[0]);
	close(sv[1]);
	colo_outbuf_free(&o);
}

/* A burst (a checkpoint releasing everything held) grows the buffer;
 * once it is sent the memory goes back, so one burst does not pin
 * megabytes per stream for the life of the daemon. */
static void test_outbuf_shrinks(void **state)
{
	static uint8_t frame[60000], sink[65536];
	struct colo_outbuf o;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(colo_outbuf_init(&o, 4096, false), 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(
			colo_outbuf_append(&o, frame, sizeof(frame), 0), 0);
	assert_true(o.cap >= 64 * sizeof(frame));
	while (colo_outbuf_pending(&o)) {
		assert_int_equal(colo_outbuf_flush(&o, sv[0]), 0);
		while (recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
	}
	assert_int_equal(o.cap, 4096);
	assert_int_equal(o.shrinks, 1);
	/* Still usable at its normal size. */
	assert_int_equal(colo_outbuf_append(&o, frame, 100, 0), 0);
	assert_int_equal(colo_outbuf_pending(&o), 104);
	close(sv[0]);
	close(sv[1]);
	colo_outbuf_free(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sock_good),
		cmocka_unit_test(test_sock_bad),
		cmocka_unit_test(test_sock_resolve),
		cmocka_unit_test(test_notify_parse),
		cmocka_unit_test(test_notify_session),
		cmocka_unit_test(test_notify_describe),
		cmocka_unit_test(test_outbuf_boundaries),
		cmocka_unit_test(test_outbuf_partial),
		cmocka_unit_test(test_outbuf_shrinks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
