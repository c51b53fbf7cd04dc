/* test_control.c - the control socket's request handling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "control.h"

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

/* Over a real socket, with the client helper. */
static void test_socket(void **state)
{
	struct colo_control *c = colo_control_new(&table);
	char path[64], err[256], *r;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/colo-ctl-test-%d", getpid());
	assert_int_equal(colo_control_listen(c, path, err, sizeof(err)), 0);
	assert_int_equal(colo_control_start(c), 0);
	calls = 0;
	r = colo_control_request(path, "{\"cmd\":\"echo\",\"x\":5}", 5000, err,
				 sizeof(err));
	assert_non_null(r);
	assert_string_equal(r, "{\"ok\":true,\"x\":5}");
	assert_int_equal(calls, 1);
	free(r);
	colo_control_free(c);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_null(colo_control_request(path, "{}", 1000, err, sizeof(err)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
