/*
 * notify.h - Xen's userspace COLO proxy protocol on the notify socket.
 *
 * libxl talks to colo-compare through a chardev with the usual framing;
 * each frame is one ASCII message without a NUL, recognised by exact
 * length and bytes:
 *   peer -> us  COLO_USERSPACE_PROXY_INIT   we answer COLO_COMPARE_GET_XEN_INIT
 *   us -> peer  DO_CHECKPOINT               we want a checkpoint
 *   peer -> us  COLO_CHECKPOINT             a checkpoint finished
 * This file is the protocol logic only; the daemon does the I/O.
 */
#ifndef COLO_NOTIFY_H
#define COLO_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COLO_NOTIFY_PROXY_INIT	  "COLO_USERSPACE_PROXY_INIT"
#define COLO_NOTIFY_INIT_REPLY	  "COLO_COMPARE_GET_XEN_INIT"
#define COLO_NOTIFY_DO_CHECKPOINT "DO_CHECKPOINT"
#define COLO_NOTIFY_CHECKPOINT	  "COLO_CHECKPOINT"

enum colo_notify_msg {
	COLO_NOTIFY_MSG_UNKNOWN,
	COLO_NOTIFY_MSG_PROXY_INIT,
	COLO_NOTIFY_MSG_INIT_REPLY,
	COLO_NOTIFY_MSG_DO_CHECKPOINT,
	COLO_NOTIFY_MSG_CHECKPOINT,
};

/* What the daemon has to do after one inbound message (a bit set). */
enum {
	COLO_NOTIFY_SEND_INIT_REPLY = 1 << 0,
	COLO_NOTIFY_SEND_DO_CHECKPOINT = 1 << 1, /* one was owed */
	COLO_NOTIFY_CHECKPOINT_DONE = 1 << 2,
	COLO_NOTIFY_UNKNOWN = 1 << 3, /* log and ignore */
};

/* One per daemon; `initialised` is cleared when a new peer connects. */
struct colo_notify_session {
	bool initialised;     /* the peer sent PROXY_INIT */
	bool checkpoint_owed; /* wanted while the peer could not be told */
	uint64_t received, unknown, sent_do_checkpoint, checkpoints_done;
};

/* notify.c APIs: */
enum colo_notify_msg colo_notify_parse(const uint8_t *msg, size_t len);
const char *colo_notify_msg_text(enum colo_notify_msg m);
/* One inbound message; returns the COLO_NOTIFY_* actions to take.
 * checkpoint_pending: the comparer still waits for a checkpoint. */
unsigned int colo_notify_on_message(struct colo_notify_session *s,
				    const uint8_t *msg, size_t len,
				    bool checkpoint_pending);
/* The comparer asks for a checkpoint. Returns true if DO_CHECKPOINT is to
 * be sent now; false if it is owed until the peer says PROXY_INIT. */
bool colo_notify_want_checkpoint(struct colo_notify_session *s, bool connected);
/* Printable, bounded rendering of an unknown message for the log. */
void colo_notify_describe(const uint8_t *msg, size_t len, char *buf, size_t n);

#endif
