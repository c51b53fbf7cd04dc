/*
 * fuzz_control.c - the control socket's request handler on arbitrary
 * bytes: every input gets a reply that is itself valid JSON with "ok",
 * and the events test agrees with it on what the command is.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

static int echo(void *ctx, struct json_object *req, struct json_object *reply,
		char *err, size_t errlen)
{
	struct json_object *v;

	(void)ctx, (void)err, (void)errlen;
	if (json_object_object_get_ex(req, "arg", &v))
		json_object_object_add(reply, "arg", json_object_get(v));
	return 0;
}

static int refuse(void *ctx, struct json_object *req, struct json_object *reply,
		  char *err, size_t errlen)
{
	(void)ctx, (void)req, (void)reply, (void)err, (void)errlen;
	return -1;
}

static const struct colo_control_cmd cmds[] = {
	{ "status", echo, "echo arg" },
	{ "checkpoint", refuse, "always fails" },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct colo_control_table t = { cmds, 2, NULL };
	char *reply = colo_control_handle(&t, (const char *)data, size);
	struct json_object *o, *ok;

	if (!reply)
		abort();
	o = json_tokener_parse(reply);
	if (!o || !json_object_object_get_ex(o, "ok", &ok))
		abort();
	json_object_put(o);
	/* "events" is not in the table: the handler must call it unknown. */
	if (colo_control_is_events((const char *)data, size) &&
	    !strstr(reply, "unknown command"))
		abort();
	free(reply);
	return 0;
}
