/*
 * qmp.h - a QMP client of our own (QEMU Machine Protocol, JSON over a UNIX
 * socket), on json-c.
 *
 * The frame drives its QEMUs through a checkpoint as a fixed sequence of
 * commands (stop, migrate, query-migrate, cont, ...) each with a deadline,
 * so commands are synchronous with a timeout; asynchronous events QEMU
 * sends in between (STOP, RESUME, MIGRATION, SHUTDOWN) are queued for the
 * caller instead of being lost. Replies carry our own "id", so a late reply
 * to a command that timed out is never taken for the answer to the next.
 */
#ifndef COLO_VM_QMP_H
#define COLO_VM_QMP_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

/* The longest line (one JSON message) we accept from QEMU. */
#define COLO_QMP_LINE_MAX (1u << 20)

enum colo_qmp_kind {
	COLO_QMP_INVALID,  /* not JSON, or no known shape */
	COLO_QMP_GREETING, /* {"QMP": {...}} */
	COLO_QMP_RETURN,   /* {"return": ..., "id": ...} */
	COLO_QMP_ERROR,	   /* {"error": {"class", "desc"}, "id": ...} */
	COLO_QMP_EVENT,	   /* {"event": NAME, "data": ..., ...} */
};

/* One parsed message. obj owns everything the other pointers point into. */
struct colo_qmp_msg {
	enum colo_qmp_kind kind;
	struct json_object *obj;
	long long id;		   /* -1 when absent or not an integer */
	const char *name;	   /* event name or error class */
	const char *desc;	   /* error description */
	struct json_object *value; /* "return" or event "data" (may be NULL) */
};

/* qmp_parse.c APIs: pure, for any bytes (fuzzed). */
/* Parses one line (no newline needed). Returns the kind; msg->obj must be
 * released with colo_qmp_msg_free() whatever the kind. */
enum colo_qmp_kind colo_qmp_parse(const char *line, size_t len,
				  struct colo_qmp_msg *msg);
void colo_qmp_msg_free(struct colo_qmp_msg *msg);

/* qmp.c APIs: */
struct colo_qmp;
/* Connects to the monitor socket at path, retrying until timeout_ms while
 * QEMU is still starting, reads the greeting and negotiates capabilities.
 * NULL with a reason in err. */
struct colo_qmp *colo_qmp_connect(const char *path, unsigned int timeout_ms,
				  char *err, size_t errlen);
void colo_qmp_close(struct colo_qmp *q);
int colo_qmp_fd(const struct colo_qmp *q);
/* Runs cmd with args (taken, may be NULL) and waits at most timeout_ms.
 * 0 with the "return" value in *ret (a reference the caller puts; ret may
 * be NULL), or -1 with a reason in err: QEMU's error description, a
 * timeout, or the connection lost. */
int colo_qmp_exec(struct colo_qmp *q, const char *cmd, struct json_object *args,
		  unsigned int timeout_ms, struct json_object **ret, char *err,
		  size_t errlen);
/* Reads whatever is waiting without blocking and queues its events.
 * Returns -1 when the connection is gone. */
int colo_qmp_poll_events(struct colo_qmp *q);
/* Oldest queued event (the caller puts it), or NULL. */
struct json_object *colo_qmp_next_event(struct colo_qmp *q);
/* Whether QEMU closed the connection (it exited). */
bool colo_qmp_lost(const struct colo_qmp *q);

#endif
