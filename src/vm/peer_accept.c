/*
 * peer_accept.c - the primary's frame link listener and its lobby of
 * connections that have not proven anything yet.
 *
 * Why a lobby driven by the event loop instead of a blocking handshake:
 * anyone who reaches the port can connect and then say nothing. Blocking
 * on that stranger would freeze the primary (and keep the real secondary
 * waiting behind it). Here each connection gets a slot, runs its TLS
 * handshake and sends its HELLO without blocking anything, and is closed
 * when its time is up. Only a connection whose TLS peer is the expected
 * host (with credentials) and whose first frame is a secondary's HELLO
 * becomes the link; while a link is up, newcomers are refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/evloop.h"
#include "common/lobby.h"
#include "common/log.h"
#include "common/sock_spec.h"
#include "vm.h"

/* Few slots: a pair has one secondary; the rest absorb strangers and a
 * secondary that reconnects before its old connection timed out. When
 * they are full, the oldest unproven connection gives way. */
#define LOBBY_SLOTS 8
/* The secondary starts its first standby (a QEMU boot) between the TLS
 * handshake and its HELLO. */
#define HELLO_GRACE_NS (60 * COLO_NS_PER_S)

struct slot {
	struct colo_vm *v;
	struct colo_flink *link; /* NULL: free */
	struct colo_loop_fd *h;
	struct colo_timer *timer;
	/* in the lobby; proven: TLS done (without credentials, never: the
	 * HELLO takes the slot out of the lobby) */
	struct colo_lobby_seat *seat;
	uint64_t hello_by;
};

struct colo_vm_lobby {
	struct slot s[LOBBY_SLOTS];
	struct colo_lobby_seat seat[LOBBY_SLOTS];
};

static void slot_close(struct slot *s)
{
	if (s->h)
		colo_loop_del_fd(s->h);
	s->h = NULL;
	colo_timer_disarm(s->timer);
	colo_flink_free(s->link);
	s->link = NULL;
	colo_lobby_leave(s->seat);
}

static void slot_refuse(struct slot *s, const char *why)
{
	s->v->link_refused++;
	colo_log_warn("frame link: connection refused: %s", why);
	slot_close(s);
}

static void slot_timeout(void *opaque)
{
	struct slot *s = opaque;

	slot_refuse(s, s->seat->proven || !s->v->creds
			       ? "no HELLO in time"
			       : "TLS handshake not finished in time");
}

/* One step of a lobby connection: handshake, then its HELLO. */
static void slot_event(void *opaque, uint32_t events)
{
	struct slot *s = opaque;
	struct colo_vm *v = s->v;
	struct colo_flink_frame f;
	struct colo_flink_hello peer;
	char err[256];
	int r;

	/* It spoke: strangers who only connected give way first. */
	if (events & EPOLLIN)
		s->seat->heard = true;
	if (v->link) {
		slot_refuse(s, "a secondary is already connected");
		return;
	}
	if (v->creds && !s->seat->proven) {
		uint32_t want = EPOLLIN;

		r = colo_flink_tls_step(s->link, &want, err, sizeof(err));
		if (r < 0) {
			slot_refuse(s, err);
			return;
		}
		if (r == 0) {
			colo_loop_mod_fd(s->h, want);
			return;
		}
		s->seat->proven = true;
		s->hello_by = colo_now_ns() + v->timeout_ms * COLO_NS_PER_MS +
			      HELLO_GRACE_NS;
		colo_timer_arm_at(s->timer, s->hello_by);
		colo_loop_mod_fd(s->h, EPOLLIN);
		colo_log_info("frame link: TLS peer verified as %s",
			      v->tls_peer);
	}
	r = colo_flink_recv(s->link, &f, colo_now_ns());
	if (r == 0)
		return; /* the HELLO is not whole yet */
	if (r < 0 || colo_flink_parse_hello(&f, &peer) < 0) {
		slot_refuse(s, r < 0 ? "closed or not the frame link protocol"
				     : "first frame is not a valid HELLO");
		return;
	}
	if (peer.role != COLO_FLINK_SECONDARY) {
		slot_refuse(s, "the peer is not a secondary");
		return;
	}
	struct colo_flink *link = s->link;

	colo_loop_del_fd(s->h);
	s->h = NULL;
	colo_timer_disarm(s->timer);
	s->link = NULL;
	colo_lobby_leave(s->seat);
	/* One secondary: whoever else waits has lost the race. */
	for (int i = 0; i < LOBBY_SLOTS; i++)
		if (v->lobby->s[i].link)
			slot_refuse(&v->lobby->s[i],
				    "another secondary joined");
	colo_vm_primary_joined(v, link, &peer);
}

/* A slot for a newcomer: a free one, else the one whose unproven
 * connection came first, a silent one before one that sent bytes (it is
 * closed; common/lobby.c). A flood of idle connections so
 * keeps no one out: the real secondary's connection gets a slot at once
 * and holds it once its TLS handshake proves the host, which no flood
 * can undo (measured in doc/security.md). NULL when every slot holds a
 * proven host. */
static struct slot *free_or_evict(struct colo_vm *v)
{
	bool evict;
	int i = colo_lobby_pick(v->lobby->seat, LOBBY_SLOTS, &evict);

	if (i < 0)
		return NULL;
	if (evict)
		slot_refuse(&v->lobby->s[i],
			    "not proven yet (TLS or HELLO), slot taken "
			    "by a newer connection (lobby full)");
	return &v->lobby->s[i];
}

static void on_accept(void *opaque, uint32_t events)
{
	struct colo_vm *v = opaque;
	struct slot *s = NULL;
	char err[256];
	int fd;

	(void)events;
	fd = colo_sock_accept(v->listen_fd);
	if (fd < 0)
		return;
	if (v->link) {
		/* A verified peer is never displaced by a newcomer. */
		v->link_refused++;
		colo_log_warn("frame link: refusing a connection: a secondary "
			      "is already connected");
		close(fd);
		return;
	}
	s = free_or_evict(v);
	if (!s) {
		v->link_refused++;
		colo_log_warn("frame link: refusing a connection: %d proven "
			      "hosts wait for their HELLO",
			      LOBBY_SLOTS);
		close(fd);
		return;
	}
	s->link = colo_flink_new(fd);
	if (!s->link) {
		close(fd);
		return;
	}
	/* Without TLS nothing is proven before the HELLO: the seat stays
	 * evictable, or 8 silent strangers would hold the lobby. */
	colo_lobby_take(s->seat, colo_now_ns(), false);
	if (v->creds &&
	    colo_flink_tls_begin(s->link, v->creds, true, v->tls_peer, err,
				 sizeof(err)) < 0) {
		slot_refuse(s, err);
		return;
	}
	s->h = colo_loop_add_fd(v->loop, fd, EPOLLIN, slot_event, s);
	if (!s->h) {
		slot_refuse(s, strerror(errno));
		return;
	}
	/* TLS must be done within one checkpoint's timeout; the HELLO has
	 * more (see HELLO_GRACE_NS), but only once the host is proven. */
	colo_timer_arm_in(s->timer, v->timeout_ms * COLO_NS_PER_MS +
					    (v->creds ? 0 : HELLO_GRACE_NS));
}

int colo_vm_lobby_start(struct colo_vm *v, char *err, size_t errlen)
{
	v->lobby = calloc(1, sizeof(*v->lobby));
	if (!v->lobby) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < LOBBY_SLOTS; i++) {
		v->lobby->s[i].v = v;
		v->lobby->s[i].seat = &v->lobby->seat[i];
		v->lobby->s[i].timer =
			colo_timer_new(v->loop, slot_timeout, &v->lobby->s[i]);
		if (!v->lobby->s[i].timer) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	v->listen_h =
		colo_loop_add_fd(v->loop, v->listen_fd, EPOLLIN, on_accept, v);
	if (!v->listen_h) {
		snprintf(err, errlen, "frame link listener: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

void colo_vm_lobby_stop(struct colo_vm *v)
{
	if (!v->lobby)
		return;
	for (int i = 0; i < LOBBY_SLOTS; i++) {
		slot_close(&v->lobby->s[i]);
		colo_timer_free(v->lobby->s[i].timer);
	}
	free(v->lobby);
	v->lobby = NULL;
}
