/*
 * control_ask.c - one request to a daemon's control socket from inside an
 * event loop (see control.h): the supervisor asks colo vm for its failover
 * this way. colo vm may be busy for a while (finishing a checkpoint the
 * dead primary left), and the supervisor's loop must go on renewing the
 * lease and serving its own control socket meanwhile.
 *
 * The connect and the send happen inside colo_control_ask (a UNIX socket
 * connects at once or not at all), so the request is in the daemon's
 * socket before the caller's next step; only the reply is waited for on
 * the loop. One allocation per request: rare, never per packet.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"
#include "evloop.h"
#include "sock_spec.h"

/* Replies to the questions asked this way are short ({"ok":true}). */
#define ASK_REPLY_MAX 4096

struct colo_control_ask {
	struct colo_loop_fd *h;
	struct colo_timer *timer;
	colo_control_ask_fn fn;
	colo_control_ask_line_fn line_fn; /* set: fn is not, the line goes */
	void *opaque;
	int fd;
	size_t len;
	char err[200]; /* set: the outcome is a failure known at start */
	char buf[ASK_REPLY_MAX];
};

static void ask_free(struct colo_control_ask *a)
{
	colo_loop_del_fd(a->h);
	colo_timer_free(a->timer);
	if (a->fd >= 0)
		close(a->fd);
	free(a);
}

/* Frees the request, then reports (fn may ask again). line is the
 * reply (NULL: none came), for a caller that reads more than the
 * verdict. */
static void finish(struct colo_control_ask *a, int rc, const char *err,
		   const char *line)
{
	colo_control_ask_fn fn = a->fn;
	colo_control_ask_line_fn line_fn = a->line_fn;
	void *opaque = a->opaque;
	char e[256], reply[ASK_REPLY_MAX];

	snprintf(e, sizeof(e), "%s", err);
	snprintf(reply, sizeof(reply), "%s", line ? line : "");
	ask_free(a);
	if (line_fn)
		line_fn(opaque, rc, e, line ? reply : NULL);
	else
		fn(opaque, rc, e);
}

static void on_readable(void *opaque, uint32_t events)
{
	struct colo_control_ask *a = opaque;
	char err[256];
	ssize_t n;
	char *nl;

	(void)events;
	n = recv(a->fd, a->buf + a->len, sizeof(a->buf) - 1 - a->len,
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		snprintf(err, sizeof(err), "no reply (%s)",
			 n == 0 ? "closed" : strerror(errno));
		finish(a, -1, err, NULL);
		return;
	}
	a->len += (size_t)n;
	a->buf[a->len] = '\0';
	nl = memchr(a->buf, '\n', a->len);
	if (!nl) {
		if (a->len == sizeof(a->buf) - 1)
			finish(a, -1, "reply too long", NULL);
		return;
	}
	*nl = '\0';
	finish(a, colo_control_verdict(a->buf, err, sizeof(err)), err, a->buf);
}

/* The deadline, or a failure known at start. */
static void on_timer(void *opaque)
{
	struct colo_control_ask *a = opaque;

	finish(a, -1, a->err[0] ? a->err : "no reply (timed out)", NULL);
}

/* Connects and sends at once; a failure is kept for the timer. */
static void ask_send(struct colo_control_ask *a, const char *path,
		     const char *request)
{
	struct colo_sock_spec spec;
	struct colo_sock_addr addr;
	char s[COLO_SOCK_PATH_MAX + 16], line[512];
	bool busy;
	int n;

	snprintf(s, sizeof(s), "unix:%s", path);
	n = snprintf(line, sizeof(line), "%s\n", request);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		snprintf(a->err, sizeof(a->err), "request too long");
		return;
	}
	if (colo_sock_spec_parse(s, &spec, a->err, sizeof(a->err)) < 0 ||
	    colo_sock_resolve(&spec, &addr, a->err, sizeof(a->err)) < 0)
		return;
	a->fd = colo_sock_connect(&addr, &busy);
	if (a->fd < 0 || busy) {
		snprintf(a->err, sizeof(a->err), "%s: %s", path,
			 a->fd < 0 ? strerror(errno) : "connect in progress");
		return;
	}
	if (send(a->fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
		snprintf(a->err, sizeof(a->err), "%s: send: %s", path,
			 strerror(errno));
}

/* Either callback: the verdict (fn) or the reply line (line_fn). */
static struct colo_control_ask *
ask_start(struct colo_loop *l, const char *path, const char *request,
	  uint64_t timeout_ns, colo_control_ask_fn fn,
	  colo_control_ask_line_fn line_fn, void *opaque)
{
	struct colo_control_ask *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->fd = -1;
	a->fn = fn;
	a->line_fn = line_fn;
	a->opaque = opaque;
	a->timer = colo_timer_new(l, on_timer, a);
	if (!a->timer) {
		free(a);
		return NULL;
	}
	ask_send(a, path, request);
	if (!a->err[0]) {
		a->h = colo_loop_add_fd(l, a->fd, EPOLLIN, on_readable, a);
		if (!a->h)
			snprintf(a->err, sizeof(a->err), "%s: %s", path,
				 strerror(errno));
	}
	colo_timer_arm_in(a->timer, a->err[0] ? 0 : timeout_ns);
	return a;
}

struct colo_control_ask *colo_control_ask(struct colo_loop *l, const char *path,
					  const char *request,
					  uint64_t timeout_ns,
					  colo_control_ask_fn fn, void *opaque)
{
	return ask_start(l, path, request, timeout_ns, fn, NULL, opaque);
}

struct colo_control_ask *
colo_control_ask_line(struct colo_loop *l, const char *path,
		      const char *request, uint64_t timeout_ns,
		      colo_control_ask_line_fn fn, void *opaque)
{
	return ask_start(l, path, request, timeout_ns, NULL, fn, opaque);
}

void colo_control_ask_cancel(struct colo_control_ask *a)
{
	if (a)
		ask_free(a);
}
