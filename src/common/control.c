/*
 * control.c - the control protocol: one request line to one reply line
 * through a daemon's table of handlers. Pure (no sockets), so the
 * servers, the unit tests and the fuzzer share it.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

static char *reply_error(const char *msg)
{
	struct json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(msg));
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static int help(const struct colo_control_table *t, struct json_object *reply)
{
	struct json_object *cmds = json_object_new_object();

	json_object_object_add(cmds, "help",
			       json_object_new_string("list the commands"));
	for (size_t i = 0; i < t->n; i++)
		json_object_object_add(
			cmds, t->cmds[i].name,
			json_object_new_string(t->cmds[i].help ? t->cmds[i].help
							       : ""));
	json_object_object_add(reply, "commands", cmds);
	return 0;
}

/* One JSON value filling the whole line (blanks around it allowed), or
 * NULL. The caller checked len and NUL bytes. */
static struct json_object *parse_line(const char *line, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;

	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, line, (int)len);
	if (o && tok->char_offset < (int)len &&
	    strspn(line + tok->char_offset, " \t\r") !=
		    len - (size_t)tok->char_offset) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

bool colo_control_is_events(const char *line, size_t len)
{
	struct json_object *o, *cmd;
	bool r;

	if (len > COLO_CONTROL_LINE_MAX || !memmem(line, len, "events", 6) ||
	    memchr(line, '\0', len))
		return false;
	o = parse_line(line, len);
	r = o && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "cmd", &cmd) &&
	    json_object_is_type(cmd, json_type_string) &&
	    strcmp(json_object_get_string(cmd), "events") == 0;
	json_object_put(o);
	return r;
}

char *colo_control_handle(const struct colo_control_table *t, const char *line,
			  size_t len)
{
	struct json_object *req, *cmd, *reply;
	const char *name;
	char err[256] = "";
	char *out;
	int r = -1;

	if (len > COLO_CONTROL_LINE_MAX)
		return reply_error("request too long");
	if (memchr(line, '\0', len))
		return reply_error("NUL byte in request");
	req = parse_line(line, len);
	if (!req)
		return reply_error("not a JSON object");
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		json_object_put(req);
		return reply_error("expected {\"cmd\": \"NAME\", ...}");
	}
	name = json_object_get_string(cmd);
	reply = json_object_new_object();
	json_object_object_add(reply, "ok", json_object_new_boolean(1));
	if (strcmp(name, "help") == 0) {
		r = help(t, reply);
	} else {
		snprintf(err, sizeof(err), "unknown command (try help)");
		for (size_t i = 0; i < t->n; i++) {
			if (strcmp(name, t->cmds[i].name) == 0) {
				err[0] = '\0';
				r = t->cmds[i].fn(t->ctx, req, reply, err,
						  sizeof(err));
				if (r < 0 && !err[0])
					snprintf(err, sizeof(err), "failed");
				break;
			}
		}
	}
	if (r < 0)
		out = reply_error(err);
	else
		out = strdup(json_object_to_json_string_ext(
			reply, JSON_C_TO_STRING_PLAIN));
	json_object_put(reply);
	json_object_put(req);
	return out;
}

void colo_control_add_counters(struct json_object *o,
			       const struct colo_counter *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_object_object_add(o, c[i].name,
				       json_object_new_int64((int64_t)c[i].v));
}
