/*
 * test_control.c - the control protocol (request to reply), the server on
 * a colo_loop (replies, event subscribers, clients that half-close or stop
 * reading) and the client helper against that server.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "control.h"
#include "evloop.h"

static int calls;

static int echo(void *ctx, struct json_object *req, struct json_object *reply,
		char *err, size_t errlen)
{
	struct json_object *v;

	(void)ctx, (void)err, (void)errlen;
	calls++;
	if (json_object_object_get_ex(req, "x", &v))
		json_object_object_add(reply, "x", json_object_get(v));
	return 0;
}

static int refuse(void *ctx, struct json_object *req, struct json_object *reply,
		  char *err, size_t errlen)
{
	(void)ctx, (void)req, (void)reply;
	snprintf(err, errlen, "nope");
	return -1;
}

static const struct colo_control_cmd cmds[] = {
	{ "echo", echo, "echo x" },
	{ "fail", refuse, NULL },
};
static const struct colo_control_table table = { cmds, 2, NULL };

static void expect(const char *req, const char *want)
{
	char *r = colo_control_handle(&table, req, strlen(req));

	assert_non_null(r);
	assert_string_equal(r, want);
	free(r);
}

static void test_requests(void **state)
{
	(void)state;
	expect("{\"cmd\":\"echo\",\"x\":[1,2]}", "{\"ok\":true,\"x\":[1,2]}");
	expect(" {\"cmd\":\"echo\"} \r", "{\"ok\":true}");
	expect("{\"cmd\":\"fail\"}", "{\"ok\":false,\"error\":\"nope\"}");
	expect("{\"cmd\":\"zz\"}",
	       "{\"ok\":false,\"error\":\"unknown command (try help)\"}");
	expect("", "{\"ok\":false,\"error\":\"not a JSON object\"}");
	expect("{\"cmd\":", "{\"ok\":false,\"error\":\"not a JSON object\"}");
	expect("{} {}", "{\"ok\":false,\"error\":\"not a JSON object\"}");
	expect("[\"cmd\"]", "{\"ok\":false,\"error\":\"expected {\\\"cmd\\\": "
			    "\\\"NAME\\\", ...}\"}");
	expect("{\"cmd\":1}",
	       "{\"ok\":false,\"error\":\"expected {\\\"cmd\\\": "
	       "\\\"NAME\\\", ...}\"}");
	expect("{\"cmd\":\"help\"}",
	       "{\"ok\":true,\"commands\":{\"help\":\"list the commands\","
	       "\"echo\":\"echo x\",\"fail\":\"\"}}");
}

static void test_hostile(void **state)
{
	char *deep = malloc(100001), *r;

	(void)state;
	memset(deep, '[', 100000);
	deep[100000] = '\0';
	r = colo_control_handle(&table, deep, 100000);
	assert_non_null(strstr(r, "\"ok\":false"));
	free(r);
	r = colo_control_handle(&table, deep, 5000);
	assert_non_null(strstr(r, "\"ok\":false"));
	free(r);
	r = colo_control_handle(&table, "{\"cmd\":\"echo\"}\0x", 16);
	assert_non_null(strstr(r, "NUL"));
	free(r);
	free(deep);
}

static void test_is_events(void **state)
{
	(void)state;
	assert_true(colo_control_is_events("{\"cmd\":\"events\"}", 16));
	assert_true(colo_control_is_events(" {\"cmd\": \"events\"} ", 19));
	assert_false(colo_control_is_events("{\"cmd\":\"events2\"}", 17));
	assert_false(colo_control_is_events("{\"x\":\"events\"}", 14));
	assert_false(colo_control_is_events("{\"cmd\":\"events\"} x", 18));
	assert_false(colo_control_is_events("events", 6));
}

static void sock_path(char *path, size_t n, const char *what)
{
	snprintf(path, n, "/tmp/colo-ctl-test-%d-%s", getpid(), what);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void send_str(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL),
			 (ssize_t)strlen(s));
}

/* Runs the loop until want_lines lines (or EOF) arrived on fd; returns
 * what came, NUL-terminated. *eof says whether the server closed. */
static char *await(struct colo_loop *l, int fd, int want_lines, bool *eof)
{
	static char buf[8192];
	size_t len = 0;
	int lines = 0, rounds = 0;

	*eof = false;
	while (lines < want_lines && !*eof && rounds++ < 1000) {
		ssize_t n;

		assert_int_equal(colo_loop_run_once(l, 10), 0);
		while ((n = recv(fd, buf + len, sizeof(buf) - 1 - len,
				 MSG_DONTWAIT)) > 0) {
			for (ssize_t i = 0; i < n; i++)
				lines += buf[len + (size_t)i] == '\n';
			len += (size_t)n;
		}
		if (n == 0)
			*eof = true;
	}
	buf[len] = '\0';
	return buf;
}

static void test_server(void **state)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_control_server *s;
	char path[64], err[256];
	bool eof;
	int a, b;

	(void)state;
	sock_path(path, sizeof(path), "srv");
	s = colo_control_server_new(l, path, &table, err, sizeof(err));
	assert_non_null(s);
	a = connect_to(path);
	b = connect_to(path);

	/* Two requests in one segment, two replies in order. */
	send_str(a, "{\"cmd\":\"echo\",\"x\":1}\n{\"cmd\":\"fail\"}\n");
	assert_string_equal(await(l, a, 2, &eof),
			    "{\"ok\":true,\"x\":1}\n"
			    "{\"ok\":false,\"error\":\"nope\"}\n");

	/* Only subscribers get events. */
	send_str(b, "{\"cmd\":\"events\"}\n");
	assert_string_equal(await(l, b, 1, &eof),
			    "{\"ok\":true,\"events\":true}\n");
	colo_control_server_emit(s, "peer-lost", NULL);
	assert_string_equal(await(l, b, 1, &eof),
			    "{\"event\":\"peer-lost\"}\n");
	assert_int_equal(colo_loop_run_once(l, 50), 0);
	assert_int_equal(recv(a, err, sizeof(err), MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);

	/* A request, then a half-close: answered, then closed. */
	send_str(a, "{\"cmd\":\"echo\",\"x\":2}\n");
	shutdown(a, SHUT_WR);
	assert_string_equal(await(l, a, 2, &eof), "{\"ok\":true,\"x\":2}\n");
	if (!eof)
		await(l, a, 1, &eof);
	assert_true(eof);
	close(a);

	/* A line longer than the limit loses the connection. */
	a = connect_to(path);
	{
		char *big = malloc(COLO_CONTROL_LINE_MAX);
		size_t sent = 0;

		memset(big, ' ', COLO_CONTROL_LINE_MAX);
		while (sent < COLO_CONTROL_LINE_MAX) {
			ssize_t n = send(a, big + sent,
					 COLO_CONTROL_LINE_MAX - sent,
					 MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n > 0)
				sent += (size_t)n;
			else
				colo_loop_run_once(l, 10);
		}
		free(big);
	}
	assert_non_null(strstr(await(l, a, 1, &eof), "request too long"));
	close(a);

	colo_control_server_free(s);
	assert_int_not_equal(access(path, F_OK), 0);
	close(b);
	colo_loop_free(l);
}

/* A subscriber that stops reading is dropped; the server never waits. */
static void test_slow_subscriber(void **state)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_control_server *s;
	char path[64], err[256], pad[1001], buf[65536];
	bool eof;
	int fd;
	ssize_t n;

	(void)state;
	sock_path(path, sizeof(path), "slow");
	s = colo_control_server_new(l, path, &table, err, sizeof(err));
	assert_non_null(s);
	fd = connect_to(path);
	send_str(fd, "{\"cmd\":\"events\"}\n");
	await(l, fd, 1, &eof);
	memset(pad, 'x', 1000);
	pad[1000] = '\0';
	for (int i = 0; i < 4000; i++) {
		struct json_object *f = json_object_new_object();

		json_object_object_add(f, "pad", json_object_new_string(pad));
		colo_control_server_emit(s, "big", f);
	}
	/* Whatever was buffered in the socket, then EOF. */
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		;
	assert_int_equal(n, 0);
	close(fd);
	colo_control_server_free(s);
	colo_loop_free(l);
}

/* The client helper, blocking on a thread of its own, against the
 * server on the main thread's loop, as `colo ctl` meets a daemon. */
struct client_job {
	const char *path;
	char *reply;
	char err[256];
	int done_fd;
};

static void *client_main(void *arg)
{
	struct client_job *j = arg;
	ssize_t n;

	j->reply = colo_control_request(j->path, "{\"cmd\":\"echo\",\"x\":5}",
					5000, j->err, sizeof(j->err));
	n = write(j->done_fd, "x", 1);
	(void)n;
	return NULL;
}

static void client_done(void *opaque, uint32_t events)
{
	(void)events;
	colo_loop_stop(opaque);
}

static void test_socket(void **state)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_control_server *s;
	struct client_job j = { 0 };
	struct colo_loop_fd *h;
	char path[64], err[256];
	pthread_t t;
	int done[2];

	(void)state;
	sock_path(path, sizeof(path), "client");
	s = colo_control_server_new(l, path, &table, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(pipe2(done, O_CLOEXEC), 0);
	h = colo_loop_add_fd(l, done[0], EPOLLIN, client_done, l);
	assert_non_null(h);
	j.path = path;
	j.done_fd = done[1];
	calls = 0;
	assert_int_equal(pthread_create(&t, NULL, client_main, &j), 0);
	assert_int_equal(colo_loop_run(l), 0);
	pthread_join(t, NULL);
	assert_non_null(j.reply);
	assert_string_equal(j.reply, "{\"ok\":true,\"x\":5}");
	assert_int_equal(calls, 1);
	free(j.reply);
	colo_loop_del_fd(h);
	close(done[0]);
	close(done[1]);
	colo_control_server_free(s);
	colo_loop_free(l);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_null(colo_control_request(path, "{}", 1000, err, sizeof(err)));
}

/* The socket is the owner's alone: mode 0600 whatever the umask. */
static void test_mode(void **state)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_control_server *s;
	char path[64], err[256];
	struct stat st;
	mode_t old = umask(0);

	(void)state;
	sock_path(path, sizeof(path), "mode");
	s = colo_control_server_new(l, path, &table, err, sizeof(err));
	umask(old);
	assert_non_null(s);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	colo_control_server_free(s);
	colo_loop_free(l);
}

/* A second instance on the path of a live one refuses to start and
 * leaves the first one reachable; a stale file (nobody listening) is
 * replaced. */
static void test_in_use(void **state)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_control_server *s, *s2;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[64], err[256];
	bool eof;
	int fd;

	(void)state;
	sock_path(path, sizeof(path), "inuse");
	s = colo_control_server_new(l, path, &table, err, sizeof(err));
	assert_non_null(s);
	s2 = colo_control_server_new(l, path, &table, err, sizeof(err));
	assert_null(s2);
	assert_non_null(strstr(err, "in use by a running instance"));
	fd = connect_to(path);
	send_str(fd, "{\"cmd\":\"echo\",\"x\":7}\n");
	assert_string_equal(await(l, fd, 1, &eof), "{\"ok\":true,\"x\":7}\n");
	close(fd);
	colo_control_server_free(s);

	/* Stale: a socket file whose owner is gone. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(access(path, F_OK), 0);
	s = colo_control_server_new(l, path, &table, err, sizeof(err));
	assert_non_null(s);
	fd = connect_to(path);
	send_str(fd, "{\"cmd\":\"echo\",\"x\":8}\n");
	assert_string_equal(await(l, fd, 1, &eof), "{\"ok\":true,\"x\":8}\n");
	close(fd);
	colo_control_server_free(s);
	colo_loop_free(l);
}

/* Another user reaching the socket (here: a child that became nobody,
 * the socket opened to it) gets a refusal and no command runs. */
static void test_peer_check(void **state)
{
	struct colo_loop *l = colo_loop_new();
	struct colo_control_server *s;
	char path[64], err[256];
	int sv[2], status;
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		colo_loop_free(l);
		skip();
	}
	sock_path(path, sizeof(path), "peer");
	s = colo_control_server_new(l, path, &table, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(chmod(path, 0777), 0); /* only the check is left */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[512] = "";
		int fd;
		ssize_t n, got = 0;

		close(sv[0]);
		if (setgid(65534) || setuid(65534))
			_exit(2);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		{
			struct sockaddr_un sa = { .sun_family = AF_UNIX };

			snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
			struct timeval tv = { .tv_sec = 2 };

			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
				_exit(3);
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
				   sizeof(tv));
		}
		if (send(fd, "{\"cmd\":\"echo\",\"x\":9}\n", 21,
			 MSG_NOSIGNAL) != 21)
			_exit(4);
		if (write(sv[1], "c", 1) != 1)
			_exit(5);
		while ((n = recv(fd, buf + got, sizeof(buf) - 1 - (size_t)got,
				 0)) > 0)
			got += n;
		buf[got] = '\0';
		if (write(sv[1], buf, (size_t)got + 1) < 0)
			_exit(6);
		_exit(0);
	}
	close(sv[1]);
	{
		char buf[512];
		ssize_t n = 0, got = 0;
		int rounds = 0;

		calls = 0;
		assert_int_equal(recv(sv[0], buf, 1, 0), 1); /* connected */
		/* Serve until the child has its answer (or EOF). */
		while ((got == 0 || buf[got - 1] != '\0') && rounds++ < 500) {
			colo_loop_run_once(l, 10);
			n = recv(sv[0], buf + got, sizeof(buf) - (size_t)got,
				 MSG_DONTWAIT);
			if (n == 0)
				break;
			if (n > 0)
				got += n;
		}
		assert_true(got > 0);
		assert_non_null(strstr(buf, "\"ok\":false"));
		assert_non_null(strstr(buf, "permission denied"));
		assert_int_equal(calls, 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(sv[0]);
	colo_control_server_free(s);
	colo_loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_is_events),
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_slow_subscriber),
		cmocka_unit_test(test_socket),
		cmocka_unit_test(test_mode),
		cmocka_unit_test(test_in_use),
		cmocka_unit_test(test_peer_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
