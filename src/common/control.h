/*
 * control.h - the JSON control socket every colo daemon offers: a UNIX
 * stream socket, one JSON object per line each way.
 *   request:  {"cmd": "status", ...}
 *   reply:    {"ok": true, ...}  or  {"ok": false, "error": "..."}
 *   event:    {"event": "peer-lost", ...}  (after {"cmd": "events"})
 * The commands are a table of handlers, so each daemon offers its own
 * set; "help" (the list of commands) and "events" (turn this connection
 * into a stream of the daemon's events) are built in.
 */
#ifndef COLO_CONTROL_H
#define COLO_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
struct colo_loop;

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

/* A named counter of a status or stats reply. */
struct colo_counter {
	const char *name;
	uint64_t v;
};

/* control.c APIs: */
/* Adds each counter as an integer field of o. */
void colo_control_add_counters(struct json_object *o,
			       const struct colo_counter *c, size_t n);
#define COLO_COUNTERS(...)                                                     \
	(const struct colo_counter[]){ __VA_ARGS__ },                          \
		sizeof((const struct colo_counter[]){ __VA_ARGS__ }) /         \
			sizeof(struct colo_counter)
/* One request line (without its newline) to one reply (malloc'd, no
 * newline). Any bytes are safe; NULL only when out of memory. */
char *colo_control_handle(const struct colo_control_table *t, const char *line,
			  size_t len);
/* Whether a request line is {"cmd": "events"}: the one request the table
 * cannot answer, since it changes what the connection is. */
bool colo_control_is_events(const char *line, size_t len);

/* control_server.c APIs: the server inside the owner's event loop. It
 * never blocks: handlers run on the loop's thread (so they need no
 * locking against the data path), replies and events are buffered per
 * client, and a client that does not read them loses its connection
 * rather than stalling the loop. */
struct colo_control_server;
/* Listens on the UNIX socket path (a stale socket there is replaced).
 * NULL with a reason in err. */
struct colo_control_server *
colo_control_server_new(struct colo_loop *l, const char *path,
			const struct colo_control_table *t, char *err,
			size_t errlen);
/* Closes every client and removes the socket path. */
void colo_control_server_free(struct colo_control_server *s);
/* Sends {"event": name, ...fields} to every subscriber; takes fields
 * (may be NULL). s may be NULL (no control socket): fields is freed. */
void colo_control_server_emit(struct colo_control_server *s, const char *name,
			      struct json_object *fields);

/* control_client.c APIs: */
/* Sends one request line to path and returns the reply line (malloc'd,
 * no newline), or NULL with a reason in err. */
char *colo_control_request(const char *path, const char *request,
			   unsigned int timeout_ms, char *err, size_t errlen);
/* A command that must succeed: 0 when the reply says "ok": true;
 * otherwise -1 with the daemon's "error" (or why no reply came) in err. */
int colo_control_command(const char *path, const char *request,
			 unsigned int timeout_ms, char *err, size_t errlen);
/* A reply line's verdict: 0 when it says "ok": true; otherwise -1 with
 * the daemon's "error" (or "bad reply") in err. */
int colo_control_verdict(const char *line, char *err, size_t errlen);
/* For the command-line clients (colo ctl, colo blk ctl): sends req (and
 * releases it), prints the reply line on stdout, and returns the exit
 * status: 0 when the reply says "ok": true, 1 otherwise or when no reply
 * came; errors go to stderr prefixed with prog. */
int colo_control_call(const char *path, struct json_object *req,
		      unsigned int timeout_ms, const char *prog);
/* Subscribes to path's events and calls fn with each event line (with its
 * newline) until fn returns false or the daemon closes the connection.
 * Returns 0, or -1 with a reason in err (no connection, subscription
 * refused). */
typedef bool (*colo_control_event_fn)(void *opaque, const char *line,
				      size_t len);
int colo_control_subscribe(const char *path, unsigned int timeout_ms,
			   colo_control_event_fn fn, void *opaque, char *err,
			   size_t errlen);

/* control_ask.c APIs: one request from inside an event loop. The connect
 * and the send happen in colo_control_ask; fn gets the reply's verdict
 * (as colo_control_command: 0, or -1 and why) from the loop, once, never
 * from inside the call, at the latest timeout_ns later. */
struct colo_control_ask;
typedef void (*colo_control_ask_fn)(void *opaque, int rc, const char *err);
struct colo_control_ask *colo_control_ask(struct colo_loop *l, const char *path,
					  const char *request,
					  uint64_t timeout_ns,
					  colo_control_ask_fn fn, void *opaque);
/* The same, for a question whose answer is more than ok (colo vm asks
 * colo blk whether it is protected): fn also gets the reply line
 * (without its newline; NULL when none came). */
typedef void (*colo_control_ask_line_fn)(void *opaque, int rc, const char *err,
					 const char *line);
struct colo_control_ask *
colo_control_ask_line(struct colo_loop *l, const char *path,
		      const char *request, uint64_t timeout_ns,
		      colo_control_ask_line_fn fn, void *opaque);
/* Gives a request up: fn is not called. NULL is fine. */
void colo_control_ask_cancel(struct colo_control_ask *a);

#endif
