/*
 * test_dial.c - dial.c and control_ask.c on a real event loop: a connect
 * that succeeds, one refused, one to a listener whose accept queue is
 * full (its SYNs dropped: the deadline answers), and a control request
 * answered, refused, unanswered and to no socket. Each outcome comes from
 * the loop, never from inside the starting call.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "clock.h"
#include "control.h"
#include "dial.h"
#include "evloop.h"

struct outcome {
	int calls, fd, err, rc;
	char text[256];
};

static void on_dialed(void *opaque, int fd, int err)
{
	struct outcome *o = opaque;

	o->calls++;
	o->fd = fd;
	o->err = err;
}

static void on_answer(void *opaque, int rc, const char *err)
{
	struct outcome *o = opaque;

	o->calls++;
	o->rc = rc;
	snprintf(o->text, sizeof(o->text), "%s", err);
}

/* colo_control_ask_line: the verdict and the reply line itself (NULL:
 * none came). */
static void on_line(void *opaque, int rc, const char *err, const char *line)
{
	struct outcome *o = opaque;

	o->calls++;
	o->rc = rc;
	snprintf(o->text, sizeof(o->text), "%s", line ? line : err);
}

/* Runs the loop until o has an outcome (10 s at most). */
static void run_until(struct colo_loop *l, struct outcome *o)
{
	uint64_t end = colo_now_ns() + 10 * COLO_NS_PER_S;

	while (!o->calls && colo_now_ns() < end)
		colo_loop_run_once(l, 100);
}

/* A loopback listener with backlog n; its address in a. */
static int listener(int n, struct colo_sock_addr *a)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(a, 0, sizeof(*a));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->len = sizeof(*sin);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)sin, a->len), 0);
	assert_int_equal(listen(fd, n), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &a->len), 0);
	return fd;
}

static void test_dial_connects(void **state)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_sock_addr a;
	struct outcome o = { 0 };
	int ls = listener(4, &a);

	(void)state;
	assert_non_null(colo_dial_start(l, &a, COLO_NS_PER_S, on_dialed, &o));
	assert_int_equal(o.calls, 0); /* never from inside the start */
	run_until(l, &o);
	assert_int_equal(o.calls, 1);
	assert_true(o.fd >= 0);
	assert_int_equal(o.err, 0);
	close(o.fd);
	close(ls);
	colo_loop_free(l);
}

static void test_dial_refused(void **state)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_sock_addr a;
	struct outcome o = { 0 };

	(void)state;
	close(listener(1, &a)); /* a port nobody listens on */
	assert_non_null(colo_dial_start(l, &a, COLO_NS_PER_S, on_dialed, &o));
	assert_int_equal(o.calls, 0);
	run_until(l, &o);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.fd, -1);
	assert_int_equal(o.err, ECONNREFUSED);
	colo_loop_free(l);
}

/* A full accept queue drops SYNs: the deadline ends the dial, and the
 * loop ran meanwhile: a 50 ms tick fired several times before the
 * outcome (a dial that blocked the loop would let it fire once). */
struct tick {
	struct colo_timer *t;
	struct outcome *o;
	int before;
};

static void on_tick(void *opaque)
{
	struct tick *k = opaque;

	if (!k->o->calls)
		k->before++;
	colo_timer_arm_in(k->t, 50 * COLO_NS_PER_MS);
}

static void test_dial_deadline(void **state)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_sock_addr a;
	struct outcome o = { 0 };
	struct tick k = { .o = &o };
	int ls = listener(0, &a), fill[3];
	bool busy;

	(void)state;
	for (int i = 0; i < 3; i++)
		fill[i] = colo_sock_connect(&a, &busy);
	usleep(100000);
	k.t = colo_timer_new(l, on_tick, &k);
	colo_timer_arm_in(k.t, 50 * COLO_NS_PER_MS);
	assert_non_null(
		colo_dial_start(l, &a, 400 * COLO_NS_PER_MS, on_dialed, &o));
	run_until(l, &o);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.fd, -1);
	assert_int_equal(o.err, ETIMEDOUT);
	assert_true(k.before >= 2);
	colo_timer_free(k.t);
	for (int i = 0; i < 3; i++)
		if (fill[i] >= 0)
			close(fill[i]);
	close(ls);
	colo_loop_free(l);
}

/* A cancelled dial calls nobody. */
static void test_dial_cancel(void **state)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_sock_addr a;
	struct outcome o = { 0 };
	int ls = listener(4, &a);

	(void)state;
	colo_dial_cancel(colo_dial_start(l, &a, COLO_NS_PER_S, on_dialed, &o));
	colo_loop_run_once(l, 50);
	assert_int_equal(o.calls, 0);
	close(ls);
	colo_loop_free(l);
}

/* A control server with one command, failing when asked to. */
static int cmd_fail(void *ctx, struct json_object *req, struct json_object *r,
		    char *err, size_t errlen)
{
	(void)ctx, (void)req, (void)r;
	snprintf(err, errlen, "not now");
	return -1;
}

static int cmd_ok(void *ctx, struct json_object *req, struct json_object *r,
		  char *err, size_t errlen)
{
	(void)ctx, (void)req, (void)r, (void)err, (void)errlen;
	return 0;
}

static int cmd_state(void *ctx, struct json_object *req, struct json_object *r,
		     char *err, size_t errlen)
{
	(void)ctx, (void)req, (void)err, (void)errlen;
	json_object_object_add(r, "state", json_object_new_string("resyncing"));
	return 0;
}

/* The line variant hands the whole reply over, and NULL without one. */
static void test_ask_line(void **state)
{
	static const struct colo_control_cmd cmds[] = {
		{ "status", cmd_state, "" },
	};
	const struct colo_control_table t = { cmds, 1, NULL };
	struct colo_loop *l = colo_loop_new();
	struct colo_control_server *srv;
	struct outcome got = { 0 }, none = { 0 };
	char path[64], err[256];

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-ask-line-%d.sock",
		 (int)getpid());
	srv = colo_control_server_new(l, path, &t, err, sizeof(err));
	assert_non_null(srv);
	assert_non_null(colo_control_ask_line(l, path, "{\"cmd\":\"status\"}",
					      COLO_NS_PER_S, on_line, &got));
	assert_non_null(colo_control_ask_line(l, "/nonexistent/x.sock",
					      "{\"cmd\":\"status\"}",
					      COLO_NS_PER_S, on_line, &none));
	assert_int_equal(got.calls + none.calls, 0);
	run_until(l, &got);
	run_until(l, &none);
	assert_int_equal(got.rc, 0);
	assert_non_null(strstr(got.text, "\"state\":"));
	assert_non_null(strstr(got.text, "resyncing"));
	assert_null(strchr(got.text, '\n'));
	assert_int_equal(none.rc, -1);
	assert_non_null(strstr(none.text, "/nonexistent/x.sock"));
	colo_control_server_free(srv);
	unlink(path);
	colo_loop_free(l);
}

static void test_ask(void **state)
{
	static const struct colo_control_cmd cmds[] = {
		{ "yes", cmd_ok, "" },
		{ "no", cmd_fail, "" },
	};
	const struct colo_control_table t = { cmds, 2, NULL };
	struct colo_loop *l = colo_loop_new();
	struct colo_control_server *srv;
	struct outcome yes = { 0 }, no = { 0 }, none = { 0 }, mute = { 0 };
	char path[64], err[256];
	struct colo_sock_addr a;
	int ls;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-dial-%d.sock", (int)getpid());
	srv = colo_control_server_new(l, path, &t, err, sizeof(err));
	assert_non_null(srv);
	assert_non_null(colo_control_ask(l, path, "{\"cmd\":\"yes\"}",
					 COLO_NS_PER_S, on_answer, &yes));
	assert_non_null(colo_control_ask(l, path, "{\"cmd\":\"no\"}",
					 COLO_NS_PER_S, on_answer, &no));
	assert_non_null(colo_control_ask(l, "/nonexistent/x.sock",
					 "{\"cmd\":\"yes\"}", COLO_NS_PER_S,
					 on_answer, &none));
	assert_int_equal(yes.calls + no.calls + none.calls, 0);
	run_until(l, &yes);
	run_until(l, &no);
	run_until(l, &none);
	assert_int_equal(yes.rc, 0);
	assert_int_equal(no.rc, -1);
	assert_string_equal(no.text, "not now");
	assert_int_equal(none.rc, -1);
	colo_control_server_free(srv);
	/* A daemon that accepts nothing (its loop is busy): the deadline. */
	ls = socket(AF_UNIX, SOCK_STREAM, 0);
	{
		struct colo_sock_spec spec;
		char s[80];

		snprintf(s, sizeof(s), "unix:%s", path);
		assert_int_equal(
			colo_sock_spec_parse(s, &spec, err, sizeof(err)), 0);
		assert_int_equal(colo_sock_resolve(&spec, &a, err, sizeof(err)),
				 0);
	}
	unlink(path);
	assert_int_equal(bind(ls, (struct sockaddr *)&a.ss, a.len), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_non_null(colo_control_ask(l, path, "{\"cmd\":\"yes\"}",
					 200 * COLO_NS_PER_MS, on_answer,
					 &mute));
	run_until(l, &mute);
	assert_int_equal(mute.rc, -1);
	assert_non_null(strstr(mute.text, "timed out"));
	close(ls);
	unlink(path);
	colo_loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dial_connects),
		cmocka_unit_test(test_dial_refused),
		cmocka_unit_test(test_dial_deadline),
		cmocka_unit_test(test_dial_cancel),
		cmocka_unit_test(test_ask),
		cmocka_unit_test(test_ask_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
