/*
 * dial.c - see dial.h. One allocation per dial: dials are rare (a rejoin
 * try a second, a supervisor's question), never per packet.
 */
#include "dial.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "evloop.h"

struct colo_dial {
	struct colo_loop_fd *h;
	struct colo_timer *timer;
	colo_dial_fn fn;
	void *opaque;
	int fd;
	int err; /* a result known at start: reported by the timer */
	bool done;
};

static void dial_free(struct colo_dial *d)
{
	colo_loop_del_fd(d->h);
	colo_timer_free(d->timer);
	free(d);
}

/* Frees the dial, then reports: fn may start the next one. */
static void finish(struct colo_dial *d, int fd, int err)
{
	colo_dial_fn fn = d->fn;
	void *opaque = d->opaque;

	if (fd < 0 && d->fd >= 0)
		close(d->fd);
	dial_free(d);
	fn(opaque, fd, err);
}

static void on_writable(void *opaque, uint32_t events)
{
	struct colo_dial *d = opaque;
	int e = 0;
	socklen_t el = sizeof(e);

	(void)events;
	if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		e = errno;
	if (e)
		finish(d, -1, e);
	else
		finish(d, d->fd, 0);
}

/* The deadline, or a result that was known at start. */
static void on_timer(void *opaque)
{
	struct colo_dial *d = opaque;

	if (d->done)
		finish(d, d->err ? -1 : d->fd, d->err);
	else
		finish(d, -1, ETIMEDOUT);
}

struct colo_dial *colo_dial_start(struct colo_loop *l,
				  const struct colo_sock_addr *a,
				  uint64_t timeout_ns, colo_dial_fn fn,
				  void *opaque)
{
	struct colo_dial *d = calloc(1, sizeof(*d));
	bool busy = false;

	if (!d)
		return NULL;
	d->fn = fn;
	d->opaque = opaque;
	d->timer = colo_timer_new(l, on_timer, d);
	if (!d->timer) {
		free(d);
		return NULL;
	}
	d->fd = colo_sock_connect(a, &busy);
	if (d->fd >= 0 && busy) {
		d->h = colo_loop_add_fd(l, d->fd, EPOLLOUT, on_writable, d);
		if (d->h) {
			colo_timer_arm_in(d->timer, timeout_ns);
			return d;
		}
	}
	/* Connected, refused or unwatchable at once: said from the loop. */
	d->done = true;
	d->err = d->fd < 0 || busy ? errno : 0;
	colo_timer_arm_in(d->timer, 0);
	return d;
}

void colo_dial_cancel(struct colo_dial *d)
{
	if (!d)
		return;
	if (d->fd >= 0)
		close(d->fd);
	dial_free(d);
}
