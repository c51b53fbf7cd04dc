/*
 * test_qmp.c - the QMP client against a real QEMU (`-machine none`, a peer
 * that starts in milliseconds): handshake, a command's return value, a
 * QEMU error passed through, an event queued while a command waits, and
 * the connection loss seen when QEMU exits.
 */
#include <json-c/json.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "qmp.h"

static char sock_path[108];
static pid_t qemu_pid;

static int start_qemu(void **state)
{
	char arg[160];

	(void)state;
	snprintf(sock_path, sizeof(sock_path), "/tmp/colo-test-qmp-%d.sock",
		 (int)getpid());
	snprintf(arg, sizeof(arg), "unix:%s,server=on,wait=off", sock_path);
	qemu_pid = fork();
	if (qemu_pid == 0) {
		execlp("qemu-system-x86_64", "qemu-system-x86_64", "-machine",
		       "none", "-nodefaults", "-display", "none", "-S", "-qmp",
		       arg, (char *)NULL);
		_exit(127);
	}
	return qemu_pid > 0 ? 0 : -1;
}

static int stop_qemu(void **state)
{
	(void)state;
	if (qemu_pid > 0) {
		kill(qemu_pid, SIGKILL);
		waitpid(qemu_pid, NULL, 0);
	}
	unlink(sock_path);
	return 0;
}

static void test_session(void **state)
{
	char err[256];
	struct json_object *ret, *v, *ev;
	struct colo_qmp *q;

	(void)state;
	q = colo_qmp_connect(sock_path, 10000, err, sizeof(err));
	assert_non_null(q);

	assert_int_equal(colo_qmp_exec(q, "query-version", NULL, 5000, &ret,
				       err, sizeof(err)),
			 0);
	assert_true(json_object_object_get_ex(ret, "qemu", &v));
	assert_true(json_object_object_get_ex(v, "major", &v));
	assert_true(json_object_get_int(v) >= 7);
	json_object_put(ret);

	/* QEMU's own error text reaches the caller. */
	assert_int_equal(colo_qmp_exec(q, "no-such-command", NULL, 5000, &ret,
				       err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "no-such-command"));
	assert_null(ret);

	/* `cont` on a -S machine emits RESUME before its return: the event
	 * is queued, not mistaken for the reply. */
	assert_int_equal(
		colo_qmp_exec(q, "cont", NULL, 5000, NULL, err, sizeof(err)),
		0);
	assert_int_equal(
		colo_qmp_exec(q, "stop", NULL, 5000, NULL, err, sizeof(err)),
		0);
	assert_int_equal(colo_qmp_poll_events(q), 0);
	ev = colo_qmp_next_event(q);
	assert_non_null(ev);
	assert_true(json_object_object_get_ex(ev, "event", &v));
	assert_string_equal(json_object_get_string(v), "RESUME");
	json_object_put(ev);

	/* quit: the reply may or may not come before the socket closes;
	 * either way the loss is seen. */
	colo_qmp_exec(q, "quit", NULL, 5000, NULL, err, sizeof(err));
	waitpid(qemu_pid, NULL, 0);
	qemu_pid = 0;
	assert_int_equal(colo_qmp_exec(q, "query-status", NULL, 2000, NULL, err,
				       sizeof(err)),
			 -1);
	assert_true(colo_qmp_lost(q));
	colo_qmp_close(q);
}

static void test_parse_shapes(void **state)
{
	static const char *lines[] = {
		"{\"QMP\": {\"version\": {}, \"capabilities\": []}}",
		"{\"return\": {}, \"id\": 7}",
		"{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}",
		"{\"event\": \"STOP\", \"timestamp\": {}}",
		"[1,2]",
		"{\"error\": 5}",
		"not json",
	};
	static const enum colo_qmp_kind kinds[] = {
		COLO_QMP_GREETING, COLO_QMP_RETURN,  COLO_QMP_ERROR,
		COLO_QMP_EVENT,	   COLO_QMP_INVALID, COLO_QMP_INVALID,
		COLO_QMP_INVALID,
	};
	struct colo_qmp_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(colo_qmp_parse(lines[i], strlen(lines[i]), &m),
				 kinds[i]);
		if (i == 1)
			assert_int_equal(m.id, 7);
		if (i == 2)
			assert_string_equal(m.desc, "x");
		colo_qmp_msg_free(&m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_shapes),
		cmocka_unit_test_setup_teardown(test_session, start_qemu,
						stop_qemu),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
