/*
 * secondary.c - the secondary host's proxy: inject, take over.
 *
 * Mirrored client ingress arrives over the link, is shifted into the
 * secondary guest's sequence space by the rewriter and injected into the
 * guest; the guest's egress goes back through the redirector
 * (redirector.c). The client port stays silent.
 *
 * Failover (the control command, or FAILOVER from the primary) wires the
 * guest to the client port through the rewriter in failover mode,
 * resends what the client had not acknowledged (replay.c) and announces
 * the guest's addresses (announce.c) so the switch and the client's
 * neighbour cache move to this host.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>

#include "clock.h"
#include "log.h"
#include "proxy.h"
#include "vnet.h"

#define RETRY_NS	(200 * COLO_NS_PER_MS)
#define HOUSEKEEPING_NS (1000 * COLO_NS_PER_MS)
#define ECHO_WAIT_MS	100
/* Announcements after failover, in ms after the first: switches and
 * neighbour caches that missed one still move. */
static const uint32_t announce_at_ms[] = { 0, 20, 100, 500 };
#define ANNOUNCES (sizeof(announce_at_ms) / sizeof(announce_at_ms[0]))

static void hold_to_guest(void *ctx, uint8_t *f, size_t len, size_t v);

/* The hold or drop ends at its deadline (ingress_hold.c): re-armed after
 * every cut and resume. */
static void hold_end_arm(struct colo_secondary *s)
{
	if (s->hold.state != COLO_CUT_PASS && s->hold.deadline)
		colo_timer_arm_at(s->hold_end, s->hold.deadline);
	else
		colo_timer_disarm(s->hold_end);
}

static void hold_end(void *opaque)
{
	struct colo_secondary *s = opaque;

	colo_cut_expire(&s->hold, colo_loop_now(s->px.loop), hold_to_guest, s);
	hold_end_arm(s);
}

static void link_down(struct colo_secondary *s, const char *why)
{
	bool was_up = colo_proxy_link_up(&s->px);

	colo_proxy_link_detach(&s->px);
	/* A new primary numbers its checkpoints anew. */
	colo_hold_reset(&s->hold, hold_to_guest, s);
	if (!s->failed_over)
		colo_timer_arm_in(s->retry, RETRY_NS);
	if (was_up) {
		s->peer_losses++;
		colo_log_warn("primary lost (%s)%s", why,
			      s->failed_over ? "" : ": waiting for failover");
		colo_control_server_emit(s->px.ctl, "peer-lost", NULL);
	}
}

static void link_lost(void *opaque, const char *why)
{
	link_down(opaque, why);
}

static void try_connect(void *opaque)
{
	struct colo_secondary *s = opaque;
	bool in_progress;
	int fd;

	if (s->failed_over || colo_plink_up(&s->px.link))
		return;
	colo_timer_arm_in(s->retry, RETRY_NS);
	fd = colo_sock_connect(&s->link_addr, &in_progress);
	if (fd < 0)
		return;
	/* The link owns the fd from now on; the HELLO waits in its buffer
	 * until the connect completes. */
	if (colo_proxy_link_attach(&s->px, fd, COLO_PLINK_ROLE_SECONDARY,
				   true) < 0)
		colo_log_warn("link to the primary: %s (retrying)",
			      strerror(errno));
}

static bool connect_done(struct colo_secondary *s)
{
	int e = 0;
	socklen_t l = sizeof(e);

	if (getsockopt(s->px.link.fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0 || e) {
		colo_proxy_link_detach(&s->px);
		return false;
	}
	colo_timer_disarm(s->retry);
	colo_proxy_link_connected(&s->px);
	s->peer_seen = true;
	colo_log_info("connected to the primary %s", s->px.o->link);
	colo_control_server_emit(s->px.ctl, "peer-connected", NULL);
	return true;
}

/* ---- egress and ingress */

void colo_secondary_out(struct colo_secondary *s, const uint8_t *f, size_t len,
			size_t v)
{
	if (s->failed_over) {
		s->to_client++;
		colo_proxy_to_client(&s->px, f, len, v);
	} else if (colo_proxy_link_up(&s->px)) {
		s->egress++;
		colo_replay_keep(s->replay, f, len, v);
		colo_proxy_queue(&s->px, COLO_PLINK_EGRESS,
				 v ? COLO_PLINK_F_VNET : 0, f, len, NULL, 0);
	}
	/* No primary and no failover: nobody compares, nothing leaves. */
}

static void to_guest(struct colo_secondary *s, uint8_t *f, size_t len, size_t v)
{
	colo_rewriter_ingress(s->rw, f, len, v, colo_loop_now(s->px.loop));
	colo_port_send(s->px.guest.port, f, len, v);
}

static void hold_to_guest(void *ctx, uint8_t *f, size_t len, size_t v)
{
	to_guest(ctx, f, len, v);
}

/* The client port: silent until failover, then the guest's ingress. */
static void client_frame(void *opaque, uint8_t *f, size_t len)
{
	struct colo_secondary *s = opaque;
	size_t v = s->px.client.vnet;

	s->client_in++;
	if (!s->failed_over || len <= v ||
	    !colo_proxy_for_guest(f + v, len - v, s->addrs.mac,
				  s->addrs.mac_known)) {
		s->client_dropped++;
		return;
	}
	to_guest(s, f, len, v);
}

/* ---- failover */

static void announce(struct colo_secondary *s)
{
	uint8_t buf[128];

	if (!s->addrs.mac_known)
		return;
	for (uint32_t i = 0; i < s->addrs.n4; i++) {
		size_t n =
			colo_announce_garp(buf, s->addrs.mac, s->addrs.ip4[i]);

		colo_proxy_to_client(&s->px, buf, n, 0);
		s->announces++;
	}
	for (uint32_t i = 0; i < s->addrs.n6; i++) {
		size_t n =
			colo_announce_una(buf, s->addrs.mac, s->addrs.ip6[i]);

		colo_proxy_to_client(&s->px, buf, n, 0);
		s->announces++;
	}
}

static void announce_again(void *opaque)
{
	struct colo_secondary *s = opaque;

	announce(s);
	if (++s->announced < ANNOUNCES)
		colo_timer_arm_at(s->announce,
				  s->failover_at +
					  announce_at_ms[s->announced] *
						  COLO_NS_PER_MS);
}

static void failover(struct colo_secondary *s, const char *why)
{
	if (s->failed_over)
		return;
	s->failed_over = true;
	s->failover_at = colo_now_ns();
	/* A checkpoint cut short: the VM that runs on gets what was held. */
	colo_hold_reset(&s->hold, hold_to_guest, s);
	colo_timer_disarm(s->retry);
	colo_rewriter_failover(s->rw);
	if (colo_plink_up(&s->px.link))
		link_down(s, "failover");
	/* The switch must learn the guest's new port before the replayed
	 * segments arrive, or it floods them (harmless) or sends them to the
	 * dead host. */
	s->announced = 0;
	announce_again(s);
	s->replayed += colo_replay_send(s->replay, &s->px);
	s->replay_lost = colo_replay_lost(s->replay);
	colo_replay_free(s->replay);
	s->replay = NULL;
	colo_redirector_retry(s); /* nothing waits any more: all go out */
	colo_proxy_flush_client(&s->px);
	colo_log_warn("failover (%s): guest wired to the client port", why);
	colo_control_server_emit(s->px.ctl, "failover", NULL);
}

/* ---- the link */

/* Queues the FAILOVER echo and waits (once per failover, up to
 * ECHO_WAIT_MS) until the socket took it and all egress before it: the
 * link is closed right after, and a queued echo would be lost with it. */
static bool echo_failover(struct colo_secondary *s)
{
	uint64_t end = colo_now_ns() + ECHO_WAIT_MS * COLO_NS_PER_MS;

	if (colo_plink_queue(&s->px.link, COLO_PLINK_FAILOVER, 0, NULL, 0, NULL,
			     0) < 0)
		return false;
	for (;;) {
		struct pollfd pfd = { .fd = s->px.link.fd, .events = POLLOUT };
		uint64_t now = colo_now_ns();

		if (colo_plink_flush(&s->px.link, now) < 0)
			return false;
		if (!colo_plink_pending(&s->px.link))
			return true;
		if (now >= end)
			return false;
		poll(&pfd, 1, 1);
	}
}

static int link_frame(void *opaque, const struct colo_plink_frame *f)
{
	struct colo_secondary *s = opaque;
	struct colo_conn_meta m;
	size_t v = (f->flags & COLO_PLINK_F_VNET) ? COLO_VNET_HDR_LEN : 0;

	if (s->px.link.peer.role != COLO_PLINK_ROLE_PRIMARY)
		return -1;
	switch (f->type) {
	case COLO_PLINK_INGRESS:
		/* A header from the link is checked like one from a guest
		 * before it reaches our guest's port (and the rewriter). */
		if (v && !colo_vnet_check(f->payload, f->len)) {
			s->ingress_bad_vnet++;
			return 0;
		}
		s->ingress++;
		colo_replay_ack(s->replay, f->payload, f->len, v);
		if (f->len > v)
			colo_neigh_learn(&s->neigh, f->payload + v, f->len - v);
		/* After a cut the frame waits for the VM the checkpoint
		 * makes (rewritten then, with that checkpoint's offsets). */
		if (colo_hold_take(&s->hold, f->payload, f->len, v))
			return 0;
		/* The payload sits in the link's own input buffer: rewriting
		 * it in place is safe. */
		to_guest(s, (uint8_t *)f->payload, f->len, v);
		return 0;
	case COLO_PLINK_CUT: {
		uint64_t seq;

		if (colo_cut_link_decode(f, &seq, &s->hold.wait_ns) < 0)
			return -1;
		colo_hold_cut(&s->hold, seq, colo_loop_now(s->px.loop),
			      hold_to_guest, s);
		hold_end_arm(s);
		return 0;
	}
	case COLO_PLINK_CONN_META:
		if (colo_plink_meta_decode(f->payload, f->len, &m) < 0)
			return -1;
		s->meta++;
		colo_rewriter_learn(s->rw, &m, colo_loop_now(s->px.loop));
		if (s->wq_n)
			colo_redirector_retry(s);
		return 0;
	case COLO_PLINK_CHECKPOINT_DONE:
		colo_rewriter_checkpoint(s->rw);
		colo_control_server_emit(s->px.ctl, "checkpoint-done", NULL);
		return 0;
	case COLO_PLINK_FAILOVER:
		/* The echo first: the primary serves again if the link drops
		 * before it arrives, so we must not take over without it
		 * written to the socket. */
		if (!echo_failover(s)) {
			colo_log_warn("FAILOVER could not be confirmed to the "
				      "primary: not taking over");
			return -1;
		}
		failover(s, "requested by the primary");
		return 0;
	default:
		return colo_proxy_link_common(&s->px, f);
	}
}

static void on_link(void *opaque, uint32_t events)
{
	struct colo_secondary *s = opaque;
	char err[160];

	if (s->px.connecting) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (!connect_done(s))
			return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (colo_plink_read(&s->px.link, link_frame, s,
			    colo_loop_now(s->px.loop), err, sizeof(err)) < 0 &&
	    colo_plink_up(&s->px.link))
		link_down(s, err);
}

static void housekeeping(void *opaque)
{
	struct colo_secondary *s = opaque;

	colo_rewriter_tick(s->rw, colo_loop_now(s->px.loop));
	colo_timer_arm_in(s->housekeeping, HOUSEKEEPING_NS);
}

/* ---- control commands */

static int cmd_status(void *ctx, struct json_object *req, struct json_object *r,
		      char *err, size_t errlen)
{
	struct colo_secondary *s = ctx;
	bool up = colo_proxy_link_up(&s->px);

	(void)req, (void)err, (void)errlen;
	json_object_object_add(r, "role", json_object_new_string("secondary"));
	json_object_object_add(
		r, "mode",
		json_object_new_string(s->failed_over ? "failed-over"
				       : up	      ? "protected"
						      : "waiting-for-primary"));
	json_object_object_add(r, "peer", json_object_new_boolean(up));
	json_object_object_add(r, "failed_over",
			       json_object_new_boolean(s->failed_over));
	return 0;
}

static int cmd_stats(void *ctx, struct json_object *req, struct json_object *r,
		     char *err, size_t errlen)
{
	struct colo_secondary *s = ctx;
	const struct colo_rewriter_stats *rs;

	/* Counted now: the last tick's figure may predate a connection, and
	 * colo up restarts this proxy only when the count is 0. */
	colo_rewriter_count_shifted(s->rw);
	rs = colo_rewriter_stats(s->rw);
	const struct colo_counter c[] = {
		{ "ingress", s->ingress },
		{ "egress", s->egress },
		{ "conn_meta", s->meta },
		{ "waited", s->waited },
		{ "waiting", s->wq_n },
		{ "wait_dropped", s->wait_dropped },
		{ "client_in", s->client_in },
		{ "client_dropped", s->client_dropped },
		{ "to_client", s->to_client },
		{ "announces", s->announces },
		{ "replayed", s->replayed },
		{ "replay_lost",
		  s->replay ? colo_replay_lost(s->replay) : s->replay_lost },
		{ "neigh_answers", s->neigh_answers },
		{ "peer_losses", s->peer_losses },
		{ "link_queue_failed", s->px.queue_failed },
		{ "ingress_bad_vnet", s->ingress_bad_vnet },
		{ "conns", rs->conns },
		{ "shifted_conns", rs->shifted },
		{ "egress_rewritten", rs->egress_rewritten },
		{ "ingress_rewritten", rs->ingress_rewritten },
		{ "checkpoints", rs->checkpoints },
		{ "cuts", s->hold.cuts },
		{ "cut_held", s->hold.held },
		{ "cut_dropped", s->hold.dropped },
		{ "cut_stale", s->hold.stale },
		{ "cut_expired", s->hold.expired },
		{ "handovers", s->handovers },
	};

	cmd_status(ctx, req, r, err, errlen);
	colo_proxy_add_stats(r, &s->px, c, sizeof(c) / sizeof(c[0]));
	return 0;
}

/* From the local colo vm: the checkpoint is loaded (before the new VM
 * runs) or failed. "retire": true: the VM on the guest port is about to
 * be retired for the new one (ingress_hold.c, colo_port_hand_over). */
static int cmd_checkpoint_done(void *ctx, struct json_object *req,
			       struct json_object *r, char *err, size_t errlen)
{
	struct colo_secondary *s = ctx;
	struct json_object *o;

	(void)r, (void)err, (void)errlen;
	colo_rewriter_checkpoint(s->rw);
	/* What waited for an ISN came from the VM just retired: retried,
	 * its SYNs would pass for the new VM's (opened_ports.c). */
	colo_redirector_free(s);
	if (req && json_object_object_get_ex(req, "retire", &o) &&
	    json_object_get_boolean(o) &&
	    colo_port_hand_over(s->px.guest.port) == 0)
		s->handovers++;
	return 0;
}

/* From the local colo vm: the (new) VM runs; the frames held since the
 * cut go to it (sent to a VM not yet running, they would wait in its
 * QEMU, which drops them at its next stop). */
static int cmd_checkpoint_resume(void *ctx, struct json_object *req,
				 struct json_object *r, char *err,
				 size_t errlen)
{
	struct colo_secondary *s = ctx;

	(void)r, (void)err, (void)errlen;
	colo_hold_done(&s->hold, colo_cut_req_seq(req),
		       colo_loop_now(s->px.loop), hold_to_guest, s);
	hold_end_arm(s);
	return 0;
}

static int cmd_failover(void *ctx, struct json_object *req,
			struct json_object *r, char *err, size_t errlen)
{
	(void)req, (void)r, (void)err, (void)errlen;
	failover(ctx, "control command");
	return 0;
}

static const struct colo_control_cmd commands[] = {
	{ "status", cmd_status, "role, mode (protected/failed-over), peer" },
	{ "stats", cmd_stats, "counters of the rewriter and the link" },
	{ "checkpoint-resume", cmd_checkpoint_resume,
	  "the VM runs: the ingress held since the cut goes to it" },
	{ "checkpoint-done", cmd_checkpoint_done,
	  "a checkpoint finished: rewriter offsets reset" },
	{ "failover", cmd_failover,
	  "take over: wire the guest to the client interface" },
};

/* ---- set-up */

static int setup(struct colo_secondary *s, const struct colo_proxy_opts *o,
		 char *err, size_t errlen)
{
	struct colo_sock_spec spec;
	char sp[300], e[256];

	s->rw = colo_rewriter_new();
	s->replay = colo_replay_new();
	if (!s->rw || !s->replay) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(sp, sizeof(sp), "tcp:%s", o->link);
	if (colo_sock_spec_parse(sp, &spec, e, sizeof(e)) < 0 ||
	    colo_sock_resolve(&spec, &s->link_addr, e, sizeof(e)) < 0) {
		snprintf(err, errlen, "--link-connect: %s", e);
		return -1;
	}
	if (colo_proxy_open(&s->px, o, s, client_frame,
			    colo_redirector_guest_frame, err, errlen) < 0 ||
	    colo_proxy_link_allowed(&s->px, &s->link_addr, err, errlen) < 0)
		return -1;
	s->px.on_link = on_link;
	s->px.link_lost = link_lost;
	s->px.throttled = &s->px.guest;
	s->retry = colo_timer_new(s->px.loop, try_connect, s);
	s->housekeeping = colo_timer_new(s->px.loop, housekeeping, s);
	s->announce = colo_timer_new(s->px.loop, announce_again, s);
	s->hold_end = colo_timer_new(s->px.loop, hold_end, s);
	if (!s->retry || !s->housekeeping || !s->announce || !s->hold_end) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	colo_timer_arm_in(s->housekeeping, HOUSEKEEPING_NS);
	return colo_proxy_control(&s->px, commands,
				  sizeof(commands) / sizeof(commands[0]), err,
				  errlen);
}

int colo_proxy_secondary_run(const struct colo_proxy_opts *o)
{
	struct colo_secondary *s = calloc(1, sizeof(*s));
	char err[300];
	int rc = 1;

	if (!s) {
		fprintf(stderr, "colo proxy: out of memory\n");
		return 1;
	}
	s->hold.secondary = true;
	if (setup(s, o, err, sizeof(err)) < 0) {
		fprintf(stderr, "colo proxy: %s\n", err);
		goto out;
	}
	colo_log_info("secondary: client %s (silent until failover), guest %s, "
		      "link to %s",
		      o->client_spec, o->guest_spec, o->link);
	try_connect(s);
	if (colo_proxy_run(&s->px) < 0)
		colo_log_warn("event loop failed: %s", strerror(errno));
	else
		rc = 0;
out:
	colo_redirector_free(s);
	colo_proxy_close(&s->px);
	colo_rewriter_free(s->rw);
	colo_replay_free(s->replay);
	colo_hold_free(&s->hold);
	free(s);
	return rc;
}
