/*
 * link_steps.c - the secondary's TLS handshake and HELLO exchange on a
 * connected socket, driven by the event loop.
 *
 * Why: a rejoin try (secondary.c) runs while the daemon serves its
 * control socket, and `colo up` may ask it for a failover at any moment.
 * A primary host that accepts and then says nothing (or half a HELLO, or
 * stalls mid-handshake) must not hold that request: each step waits for
 * readiness on the loop, never in poll(), and gives up at its bound.
 * The checks are the blocking start's (secondary.c shares the HELLO
 * helpers below): the peer's certificate, its role, its identity.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/evloop.h"
#include "common/log.h"
#include "vm.h"

struct colo_vm_steps {
	struct colo_vm *v;
	struct colo_flink *link;
	struct colo_loop_fd *h;
	struct colo_timer *timer; /* the current step's bound */
	uint64_t step_ns;
	bool hello; /* false: TLS handshake; true: waiting for the HELLO */
	colo_vm_steps_fn fn;
};

int colo_vm_hello_send(struct colo_vm *v, struct colo_flink *l,
		       uint64_t deadline, char *err, size_t errlen)
{
	uint8_t buf[COLO_FLINK_HDR_LEN + COLO_FLINK_HELLO_LEN];
	struct colo_flink_hello mine;
	size_t n;

	colo_vm_hello(v, &mine);
	n = colo_flink_encode_hello(buf, &mine);
	if (colo_flink_send(l, COLO_FLINK_HELLO, buf + COLO_FLINK_HDR_LEN,
			    (uint32_t)(n - COLO_FLINK_HDR_LEN), deadline) < 0) {
		snprintf(err, errlen, "link lost during the handshake");
		return -1;
	}
	return 0;
}

int colo_vm_hello_verdict(struct colo_vm *v, int r,
			  const struct colo_flink_frame *f, char *err,
			  size_t errlen)
{
	struct colo_flink_hello peer;
	struct colo_flink_msg m;

	if (r > 0 && f->type == COLO_FLINK_ABORT &&
	    colo_flink_parse_msg(f, &m) == 0) {
		snprintf(err, errlen, "primary refused: %s", m.text);
		return -2;
	}
	if (r < 0 && v->creds) {
		snprintf(err, errlen,
			 "the primary closed the link (did its TLS check "
			 "refuse our certificate?)");
		return -1;
	}
	if (r <= 0 || colo_flink_parse_hello(f, &peer) < 0 ||
	    peer.role != COLO_FLINK_PRIMARY) {
		snprintf(err, errlen, "no valid HELLO from the primary");
		return -1;
	}
	return colo_vm_check_peer(v, &peer, err, errlen) < 0 ? -2 : 0;
}

/* Frees the steps, then reports: fn may start another try. The link
 * goes to fn on success, is closed otherwise. */
static void finish(struct colo_vm_steps *s, int r, const char *err)
{
	struct colo_flink *link = r == 0 ? s->link : NULL;
	colo_vm_steps_fn fn = s->fn;
	struct colo_vm *v = s->v;
	char e[256];

	snprintf(e, sizeof(e), "%s", err);
	if (r != 0)
		colo_flink_free(s->link);
	s->link = NULL;
	colo_vm_steps_cancel(s);
	fn(v, link, r, e);
}

/* The HELLO step: ours goes at once (a fresh socket has room for it:
 * the deadline "now" never waits), the primary's is read as its bytes
 * arrive. -1 when the try ended (s is freed). */
static int begin_hello(struct colo_vm_steps *s)
{
	char err[256] = "frame link: epoll";

	s->hello = true;
	colo_timer_arm_in(s->timer, s->step_ns);
	if (colo_vm_hello_send(s->v, s->link, colo_now_ns(), err, sizeof(err)) <
		    0 ||
	    colo_loop_mod_fd(s->h, EPOLLIN) < 0) {
		finish(s, -1, err);
		return -1;
	}
	return 0;
}

/* The TLS step: 1 done, 0 call again on readiness, -1 the try ended. */
static int tls_step(struct colo_vm_steps *s)
{
	uint32_t want = EPOLLIN;
	char err[256], e[200];
	int r = colo_flink_tls_step(s->link, &want, e, sizeof(e));

	if (r < 0) {
		snprintf(err, sizeof(err), "frame link to the primary: %s", e);
		finish(s, -1, err);
		return -1;
	}
	if (r == 0) {
		if (colo_loop_mod_fd(s->h, want) < 0) {
			finish(s, -1, "frame link to the primary: epoll");
			return -1;
		}
		return 0;
	}
	colo_log_info("frame link: TLS peer verified as %s", s->v->tls_peer);
	return 1;
}

static void on_event(void *opaque, uint32_t events)
{
	struct colo_vm_steps *s = opaque;
	struct colo_flink_frame f;
	char err[256];
	int r;

	(void)events;
	if (!s->hello) {
		if (s->v->creds && tls_step(s) <= 0)
			return;
		if (begin_hello(s) < 0)
			return;
		/* Bytes the TLS session read ahead show on no fd. */
		if (!colo_flink_pending(s->link))
			return;
	}
	/* Deadline "now": what is buffered or readable, never a wait. */
	r = colo_flink_recv(s->link, &f, colo_now_ns());
	if (r == 0)
		return; /* not whole yet */
	r = colo_vm_hello_verdict(s->v, r, &f, err, sizeof(err));
	finish(s, r, err);
}

static void on_timeout(void *opaque)
{
	struct colo_vm_steps *s = opaque;
	char err[128];

	snprintf(err, sizeof(err), "%s",
		 s->hello ? "no HELLO from the primary in time"
			  : "frame link to the primary: TLS handshake: timed "
			    "out");
	finish(s, -1, err);
}

struct colo_vm_steps *colo_vm_steps_start(struct colo_vm *v, int fd,
					  uint64_t step_ns, colo_vm_steps_fn fn,
					  char *err, size_t errlen)
{
	struct colo_vm_steps *s = calloc(1, sizeof(*s));
	char e[200];

	if (!s || !(s->link = colo_flink_new(fd))) {
		free(s);
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->v = v;
	s->fn = fn;
	s->step_ns = step_ns;
	s->timer = colo_timer_new(v->loop, on_timeout, s);
	s->h = s->timer ? colo_loop_add_fd(v->loop, fd, EPOLLOUT, on_event, s)
			: NULL;
	if (!s->h) {
		snprintf(err, errlen, "frame link: %s", strerror(errno));
		colo_vm_steps_cancel(s);
		return NULL;
	}
	if (v->creds && colo_flink_tls_begin(s->link, v->creds, false,
					     v->tls_peer, e, sizeof(e)) < 0) {
		snprintf(err, errlen, "frame link to the primary: %s", e);
		colo_vm_steps_cancel(s);
		return NULL;
	}
	/* Writable starts the first step from the loop (the client speaks
	 * first in both): fn is never called from inside this call. */
	colo_timer_arm_in(s->timer, step_ns);
	return s;
}

const char *colo_vm_steps_name(const struct colo_vm_steps *s)
{
	return s->hello || !s->v->creds ? "hello" : "tls";
}

void colo_vm_steps_cancel(struct colo_vm_steps *s)
{
	if (!s)
		return;
	colo_loop_del_fd(s->h);
	colo_timer_free(s->timer);
	colo_flink_free(s->link);
	free(s);
}
