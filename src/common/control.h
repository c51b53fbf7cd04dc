/*
 * control.h - a JSON control socket: a UNIX stream socket, one JSON
 * object per line each way.
 *   request:  {"cmd": "status", ...}
 *   reply:    {"ok": true, ...}  or  {"ok": false, "error": "..."}
 * The commands are a table of handlers, so any colo daemon can offer its
 * own set; "help" (the list of commands) is built in.
 */
#ifndef COLO_BLK_CONTROL_H
#define COLO_BLK_CONTROL_H

#include <stddef.h>

struct json_object;

/* Adds its fields to reply; returns 0, or -1 with a reason in err. */
typedef int (*colo_control_fn)(void *ctx, struct json_object *req,
			       struct json_object *reply, char *err,
			       size_t errlen);

struct colo_control_cmd {
	const char *name;
	colo_control_fn fn;
	const char *help;
};

struct colo_control_table {
	const struct colo_control_cmd *cmds;
	size_t n;
	void *ctx;
};

#define COLO_CONTROL_LINE_MAX 65536

struct colo_control;

/* control.c APIs: */
/* One request line (without its newline) to one reply (malloc'd, no
 * newline). Any bytes are safe; NULL only when out of memory. */
char *colo_control_handle(const struct colo_control_table *t, const char *line,
			  size_t len);
struct colo_control *colo_control_new(const struct colo_control_table *t);
/* Listens on the UNIX socket path. 0, or -1 with a reason in err. */
int colo_control_listen(struct colo_control *c, const char *path, char *err,
			size_t errlen);
/* A thread answers requests, one at a time, until _free. */
int colo_control_start(struct colo_control *c);
void colo_control_free(struct colo_control *c);
/* Client: send one request line to path and return the reply (malloc'd),
 * or NULL with a reason in err. */
/* For the command-line clients (colo ctl, colo blk ctl): sends req (and
 * releases it), prints the reply line on stdout, and returns the exit
 * status: 0 when the reply says "ok": true, 1 otherwise or when no reply
 * came; errors go to stderr prefixed with prog. */
struct json_object;
int colo_control_call(const char *path, struct json_object *req,
		      unsigned int timeout_ms, const char *prog);
char *colo_control_request(const char *path, const char *request,
			   unsigned int timeout_ms, char *err, size_t errlen);

#endif
