/*
 * control_thread.c - the control server on a thread of its own, for a
 * daemon whose main thread does not run a colo_loop: a private loop
 * carries the server, and a pipe tells it to stop. Handlers run on that
 * thread one at a time, so a slow one (a checkpoint waiting for the
 * secondary) delays other control requests, never the data path.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "control.h"
#include "evloop.h"

struct colo_control {
	struct colo_control_table t;
	struct colo_loop *loop;
	struct colo_control_server *srv;
	int wake[2];
	struct colo_loop_fd *wake_h;
	pthread_t thread;
	bool started;
};

static void woken(void *opaque, uint32_t events)
{
	struct colo_control *c = opaque;

	(void)events;
	colo_loop_stop(c->loop);
}

struct colo_control *colo_control_new(const struct colo_control_table *t)
{
	struct colo_control *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->t = *t;
	c->wake[0] = c->wake[1] = -1;
	c->loop = colo_loop_new();
	if (!c->loop || pipe2(c->wake, O_CLOEXEC) < 0)
		goto fail;
	c->wake_h = colo_loop_add_fd(c->loop, c->wake[0], EPOLLIN, woken, c);
	if (!c->wake_h)
		goto fail;
	return c;
fail:
	colo_control_free(c);
	return NULL;
}

int colo_control_listen(struct colo_control *c, const char *path, char *err,
			size_t errlen)
{
	c->srv = colo_control_server_new(c->loop, path, &c->t, err, errlen);
	return c->srv ? 0 : -1;
}

static void *control_main(void *arg)
{
	struct colo_control *c = arg;

	colo_loop_run(c->loop);
	return NULL;
}

int colo_control_start(struct colo_control *c)
{
	int r = pthread_create(&c->thread, NULL, control_main, c);

	if (r)
		return -r;
	c->started = true;
	return 0;
}

void colo_control_free(struct colo_control *c)
{
	if (!c)
		return;
	if (c->started) {
		char b = 1;

		if (write(c->wake[1], &b, 1) < 0)
			(void)0;
		pthread_join(c->thread, NULL);
	}
	colo_control_server_free(c->srv);
	colo_loop_del_fd(c->wake_h);
	colo_loop_free(c->loop);
	if (c->wake[0] >= 0) {
		close(c->wake[0]);
		close(c->wake[1]);
	}
	free(c);
}
