/*
 * qmp.c - the QMP connection: handshake, synchronous commands with a
 * deadline, events queued. See qmp.h for why commands are synchronous.
 */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "qmp.h"

#define QMP_EVENTS_MAX 256

struct colo_qmp {
	int fd;
	bool lost;
	long long next_id;
	char *buf; /* bytes read, not yet a whole line */
	size_t len, cap;
	struct json_object *events[QMP_EVENTS_MAX];
	size_t ev_head, ev_count;
};

static void queue_event(struct colo_qmp *q, struct json_object *ev)
{
	if (q->ev_count == QMP_EVENTS_MAX) {
		/* Nobody is reading them: the oldest is the least useful. */
		json_object_put(q->events[q->ev_head]);
		q->ev_head = (q->ev_head + 1) % QMP_EVENTS_MAX;
		q->ev_count--;
	}
	q->events[(q->ev_head + q->ev_count) % QMP_EVENTS_MAX] =
		json_object_get(ev);
	q->ev_count++;
}

/* Reads what is there (waiting at most wait_ms for the first byte).
 * 1 when bytes came, 0 on timeout, -1 when the connection is gone. */
static int fill(struct colo_qmp *q, int wait_ms)
{
	struct pollfd p = { .fd = q->fd, .events = POLLIN };
	ssize_t n;
	int r;

	if (q->lost)
		return -1;
	r = poll(&p, 1, wait_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -1;
	if (r == 0)
		return 0;
	if (q->cap - q->len < 4096) {
		size_t ncap = q->cap ? q->cap * 2 : 8192;
		char *nb;

		if (ncap > COLO_QMP_LINE_MAX * 2)
			ncap = COLO_QMP_LINE_MAX * 2;
		if (ncap - q->len < 1) {
			q->lost = true; /* a line longer than we accept */
			return -1;
		}
		nb = realloc(q->buf, ncap);
		if (!nb)
			return -1;
		q->buf = nb;
		q->cap = ncap;
	}
	n = recv(q->fd, q->buf + q->len, q->cap - q->len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		q->lost = true;
		return -1;
	}
	if (n > 0)
		q->len += (size_t)n;
	return 1;
}

/* Takes the next whole line off the buffer into msg: 1, or 0 when there
 * is no whole line yet. */
static int next_line(struct colo_qmp *q, struct colo_qmp_msg *msg)
{
	char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
	size_t n;

	if (!nl)
		return 0;
	n = (size_t)(nl - q->buf);
	colo_qmp_parse(q->buf, n, msg);
	memmove(q->buf, nl + 1, q->len - n - 1);
	q->len -= n + 1;
	return 1;
}

/* Waits for a message that is not an event (events are queued), until the
 * absolute deadline. 1 with msg, 0 on timeout, -1 when lost. */
static int wait_reply(struct colo_qmp *q, uint64_t deadline,
		      struct colo_qmp_msg *msg)
{
	for (;;) {
		while (next_line(q, msg)) {
			if (msg->kind == COLO_QMP_EVENT) {
				queue_event(q, msg->obj);
				colo_qmp_msg_free(msg);
				continue;
			}
			return 1;
		}
		uint64_t now = colo_now_ns();
		if (now >= deadline)
			return 0;
		uint64_t ms =
			(deadline - now + COLO_NS_PER_MS - 1) / COLO_NS_PER_MS;
		if (fill(q, ms > 60000 ? 60000 : (int)ms) < 0)
			return -1;
	}
}

static int send_all(struct colo_qmp *q, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(q->fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			q->lost = true;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int colo_qmp_exec(struct colo_qmp *q, const char *cmd, struct json_object *args,
		  unsigned int timeout_ms, struct json_object **ret, char *err,
		  size_t errlen)
{
	uint64_t deadline = colo_now_ns() + timeout_ms * COLO_NS_PER_MS;
	struct json_object *req = json_object_new_object();
	long long id = q->next_id++;
	struct colo_qmp_msg msg;
	const char *text;
	int r;

	if (ret)
		*ret = NULL;
	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", args);
	json_object_object_add(req, "id", json_object_new_int64(id));
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	r = send_all(q, text, strlen(text));
	if (r == 0)
		r = send_all(q, "\n", 1);
	json_object_put(req);
	if (r < 0) {
		snprintf(err, errlen, "%s: QMP connection lost", cmd);
		return -1;
	}
	for (;;) {
		r = wait_reply(q, deadline, &msg);
		if (r <= 0) {
			snprintf(err, errlen, "%s: %s", cmd,
				 r == 0 ? "no answer from QEMU in time"
					: "QMP connection lost");
			return -1;
		}
		if (msg.id != id) {
			/* The late answer to a command that timed out. */
			colo_qmp_msg_free(&msg);
			continue;
		}
		break;
	}
	if (msg.kind == COLO_QMP_RETURN) {
		if (ret)
			*ret = json_object_get(msg.value);
		colo_qmp_msg_free(&msg);
		return 0;
	}
	snprintf(err, errlen, "%s: %s", cmd,
		 msg.kind == COLO_QMP_ERROR ? msg.desc : "malformed QMP reply");
	colo_qmp_msg_free(&msg);
	return -1;
}

struct colo_qmp *colo_qmp_connect(const char *path, unsigned int timeout_ms,
				  char *err, size_t errlen)
{
	uint64_t deadline = colo_now_ns() + timeout_ms * COLO_NS_PER_MS;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct colo_qmp *q;
	struct colo_qmp_msg msg;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "QMP socket path too long: %s", path);
		return NULL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->next_id = 1;
	for (;;) {
		q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (q->fd < 0)
			break;
		if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(q->fd);
		q->fd = -1;
		/* QEMU may not have created its socket yet. */
		if ((errno != ENOENT && errno != ECONNREFUSED) ||
		    colo_now_ns() >= deadline)
			break;
		usleep(10000);
	}
	if (q->fd < 0) {
		snprintf(err, errlen, "QMP %s: %s", path, strerror(errno));
		free(q);
		return NULL;
	}
	r = wait_reply(q, deadline, &msg);
	if (r <= 0 || msg.kind != COLO_QMP_GREETING) {
		snprintf(err, errlen, "QMP %s: %s", path,
			 r == 0	 ? "no greeting in time"
			 : r < 0 ? "connection closed before the greeting"
				 : "not a QMP greeting");
		if (r > 0)
			colo_qmp_msg_free(&msg);
		colo_qmp_close(q);
		return NULL;
	}
	colo_qmp_msg_free(&msg);
	uint64_t now = colo_now_ns();
	unsigned int left =
		now < deadline
			? (unsigned int)((deadline - now) / COLO_NS_PER_MS)
			: 0;
	if (colo_qmp_exec(q, "qmp_capabilities", NULL, left + 1, NULL, err,
			  errlen) < 0) {
		colo_qmp_close(q);
		return NULL;
	}
	return q;
}

void colo_qmp_close(struct colo_qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	while (q->ev_count) {
		json_object_put(q->events[q->ev_head]);
		q->ev_head = (q->ev_head + 1) % QMP_EVENTS_MAX;
		q->ev_count--;
	}
	free(q->buf);
	free(q);
}

int colo_qmp_fd(const struct colo_qmp *q)
{
	return q->fd;
}

int colo_qmp_poll_events(struct colo_qmp *q)
{
	struct colo_qmp_msg msg;
	int r;

	while ((r = fill(q, 0)) > 0)
		;
	while (next_line(q, &msg)) {
		if (msg.kind == COLO_QMP_EVENT)
			queue_event(q, msg.obj);
		colo_qmp_msg_free(&msg);
	}
	return r < 0 ? -1 : 0;
}

struct json_object *colo_qmp_next_event(struct colo_qmp *q)
{
	struct json_object *ev;

	if (!q->ev_count)
		return NULL;
	ev = q->events[q->ev_head];
	q->ev_head = (q->ev_head + 1) % QMP_EVENTS_MAX;
	q->ev_count--;
	return ev;
}

bool colo_qmp_lost(const struct colo_qmp *q)
{
	return q->lost;
}
