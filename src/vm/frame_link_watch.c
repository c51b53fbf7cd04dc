/*
 * frame_link_watch.c - the frame link's heartbeat and idle timeout
 * between checkpoints.
 *
 * Why: between checkpoints neither side has anything to say, so a peer
 * whose host froze or whose daemon hangs (the kernel still acknowledging
 * TCP) was found dead only when the next checkpoint timed out, and a
 * secondary never noticed at all. Each side now sends a HEARTBEAT when
 * it has sent nothing for a quarter of the idle timeout, and gives the
 * link up when it has received nothing for the whole of it. Heartbeats
 * are consumed by colo_flink_recv, so no reader ever sees one.
 */
#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/evloop.h"
#include "frame_link.h"

struct colo_flink_watch {
	struct colo_flink *link;
	struct colo_timer *timer;
	uint64_t idle_ns;
	colo_flink_dead_fn dead;
	void *opaque;
};

static void watch_fire(void *opaque)
{
	struct colo_flink_watch *w = opaque;
	uint64_t now = colo_now_ns(), beat = w->idle_ns / 4;
	char why[96];

	if (now - colo_flink_last_rx(w->link) >= w->idle_ns) {
		snprintf(why, sizeof(why), "link silent for %llu ms",
			 (unsigned long long)(w->idle_ns / COLO_NS_PER_MS));
		w->dead(w->opaque, why); /* may free the link and us */
		return;
	}
	if (now - colo_flink_last_tx(w->link) >= beat &&
	    colo_flink_send(w->link, COLO_FLINK_HEARTBEAT, NULL, 0,
			    now + beat) < 0) {
		w->dead(w->opaque, "link lost (heartbeat not sent)");
		return;
	}
	colo_timer_arm_in(w->timer, beat);
}

int colo_flink_watch(struct colo_flink *l, struct colo_loop *loop,
		     unsigned int idle_ms, colo_flink_dead_fn dead,
		     void *opaque)
{
	struct colo_flink_watch *w;

	if (colo_flink_get_watch(l))
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->timer = colo_timer_new(loop, watch_fire, w);
	if (!w->timer) {
		free(w);
		return -1;
	}
	w->link = l;
	w->idle_ns = (uint64_t)(idle_ms ? idle_ms : 1) * COLO_NS_PER_MS;
	w->dead = dead;
	w->opaque = opaque;
	colo_flink_set_watch(l, w);
	colo_timer_arm_in(w->timer, w->idle_ns / 4);
	return 0;
}

void colo_flink_watch_free(struct colo_flink_watch *w)
{
	if (!w)
		return;
	colo_timer_free(w->timer);
	free(w);
}
