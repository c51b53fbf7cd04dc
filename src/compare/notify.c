/*
 * notify.c - Xen userspace proxy protocol: recognise, answer, encode.
 *
 * A DO_CHECKPOINT that cannot be delivered (no peer) is not lost: it is
 * owed and sent after the next peer's PROXY_INIT handshake, because the
 * comparer holds primary output until the checkpoint happens. It is not
 * sent straight on connect: libxl expects the init reply first.
 */
#include <stdio.h>
#include <string.h>

#include "notify.h"

static const char *const texts[] = {
	[COLO_NOTIFY_MSG_UNKNOWN] = NULL,
	[COLO_NOTIFY_MSG_PROXY_INIT] = COLO_NOTIFY_PROXY_INIT,
	[COLO_NOTIFY_MSG_INIT_REPLY] = COLO_NOTIFY_INIT_REPLY,
	[COLO_NOTIFY_MSG_DO_CHECKPOINT] = COLO_NOTIFY_DO_CHECKPOINT,
	[COLO_NOTIFY_MSG_CHECKPOINT] = COLO_NOTIFY_CHECKPOINT,
};

enum colo_notify_msg colo_notify_parse(const uint8_t *msg, size_t len)
{
	for (size_t i = 1; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (len == strlen(texts[i]) && !memcmp(msg, texts[i], len))
			return (enum colo_notify_msg)i;
	return COLO_NOTIFY_MSG_UNKNOWN;
}

const char *colo_notify_msg_text(enum colo_notify_msg m)
{
	if ((size_t)m >= sizeof(texts) / sizeof(texts[0]) || !texts[m])
		return "unknown";
	return texts[m];
}

unsigned int colo_notify_on_message(struct colo_notify_session *s,
				    const uint8_t *msg, size_t len,
				    bool checkpoint_pending)
{
	unsigned int act = 0;

	s->received++;
	switch (colo_notify_parse(msg, len)) {
	case COLO_NOTIFY_MSG_PROXY_INIT:
		s->initialised = true;
		act |= COLO_NOTIFY_SEND_INIT_REPLY;
		if (s->checkpoint_owed && checkpoint_pending) {
			act |= COLO_NOTIFY_SEND_DO_CHECKPOINT;
			s->sent_do_checkpoint++;
		}
		s->checkpoint_owed = false;
		break;
	case COLO_NOTIFY_MSG_CHECKPOINT:
		s->checkpoint_owed = false;
		s->checkpoints_done++;
		act |= COLO_NOTIFY_CHECKPOINT_DONE;
		break;
	default:
		s->unknown++;
		act |= COLO_NOTIFY_UNKNOWN;
		break;
	}
	return act;
}

bool colo_notify_want_checkpoint(struct colo_notify_session *s, bool connected)
{
	/* A peer that never said PROXY_INIT (a QEMU-style notifier, a
	 * script) is told at once: the handshake is Xen's, not a rule. */
	if (connected) {
		s->sent_do_checkpoint++;
		return true;
	}
	s->checkpoint_owed = true;
	return false;
}

void colo_notify_describe(const uint8_t *msg, size_t len, char *buf, size_t n)
{
	size_t o = 0, shown = len < 48 ? len : 48;

	if (!n)
		return;
	for (size_t i = 0; i < shown && o + 5 < n; i++) {
		if (msg[i] >= 0x20 && msg[i] < 0x7f && msg[i] != '\\') {
			buf[o++] = (char)msg[i];
		} else {
			snprintf(buf + o, n - o, "\\x%02x", msg[i]);
			o += 4;
		}
	}
	buf[o] = '\0';
	if (shown < len && o + 4 < n)
		strcat(buf, "...");
}
