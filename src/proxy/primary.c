/*
 * primary.c - the primary host's proxy: compare and release.
 *
 * The primary guest's egress goes to the comparer's primary side (after
 * telling the secondary the ISN of each new connection); the secondary
 * guest's egress arrives over the link (redirector.c) into the secondary
 * side, client ingress is copied to both guests (mirror.c), and what the
 * comparer releases leaves on the client port.
 *
 * The client obeys the receive window of the frames it is given, the
 * primary guest's; a secondary guest whose application reads more slowly
 * has a smaller one and would drop what the client sends beyond it, which
 * the comparer could only resolve with a checkpoint. So a released frame
 * never advertises more window than the secondary's latest frame of the
 * same connection did (its acknowledgement is already at least as far,
 * the comparer sees to that).
 *
 * Without a secondary (none connected yet, or lost: no data for the peer
 * timeout) the proxy is degraded: everything held is released, mirroring
 * and comparing stop, and the guest's traffic passes straight through. A
 * secondary connecting again makes it protected again.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checksum.h"
#include "clock.h"
#include "log.h"
#include "packet.h"
#include "proxy.h"

/* How often held frames are checked against the compare timeout, as a
 * fraction of it (and at most HOUSEKEEPING_IDLE_NS apart otherwise, for
 * reclaiming idle flows). */
#define TIMEOUT_STEPS	     16
#define HOUSEKEEPING_IDLE_NS (1000 * COLO_NS_PER_MS)

static bool tcp_ack_of(const uint8_t *f, size_t len, size_t v,
		       struct colo_packet *pk)
{
	return len > v + 14 &&
	       colo_packet_parse(f + v, len - v, pk) == COLO_PKT_TCP &&
	       (pk->tcp_flags & COLO_TCP_ACK) &&
	       !(pk->tcp_flags & (COLO_TCP_SYN | COLO_TCP_RST));
}

/* Remembers the secondary guest's window of one of its frames. */
void colo_primary_note_window(struct colo_primary *p, const uint8_t *f,
			      size_t len, size_t v)
{
	struct colo_packet pk;
	uint64_t id;

	if (!tcp_ack_of(f, len, v, &pk))
		return;
	id = colo_proxy_conn_id(&pk, false);
	p->win[id % COLO_PRIMARY_WINDOWS].conn = id;
	p->win[id % COLO_PRIMARY_WINDOWS].win = pk.window;
}

/* Returns the frame to send: the original, or a clamped copy. */
static const uint8_t *clamp_window(struct colo_primary *p, const uint8_t *f,
				   size_t len, size_t v)
{
	struct colo_packet pk;
	uint64_t id;
	uint16_t win;
	uint8_t *tcp;
	uint32_t sum;

	if (!tcp_ack_of(f, len, v, &pk))
		return f;
	id = colo_proxy_conn_id(&pk, false);
	win = p->win[id % COLO_PRIMARY_WINDOWS].win;
	if (p->win[id % COLO_PRIMARY_WINDOWS].conn != id || win >= pk.window)
		return f;
	memcpy(p->scratch, f, len);
	tcp = p->scratch + v + (size_t)(pk.l4 - (f + v));
	tcp[14] = (uint8_t)(win >> 8);
	tcp[15] = (uint8_t)win;
	/* With NEEDS_CSUM the field holds the pseudo-header sum only, which
	 * does not cover the window; otherwise update it (RFC 1624). */
	if (!(v && (f[0] & 1))) {
		sum = colo_csum_update((uint16_t)(tcp[16] << 8 | tcp[17]),
				       pk.window, win);
		tcp[16] = (uint8_t)(sum >> 8);
		tcp[17] = (uint8_t)sum;
	}
	p->clamped++;
	return p->scratch;
}

static void release(void *opaque, const uint8_t *frame, size_t len,
		    size_t vnet_hdr_len)
{
	struct colo_primary *p = opaque;

	p->released++;
	colo_stamps_release(&p->px.st);
	if (p->handed_over || p->handing_over) {
		p->silent++;
		return;
	}
	if (colo_primary_protected(p) && len <= COLO_PORT_FRAME_MAX)
		frame = clamp_window(p, frame, len, vnet_hdr_len);
	colo_proxy_to_client(&p->px, frame, len, vnet_hdr_len);
}

/* Checks held frames against the compare timeout soon enough: called
 * whenever frames may have become held. */
static void housekeeping_soon(struct colo_primary *p)
{
	uint64_t at = colo_loop_now(p->px.loop) + p->timeout_step;

	if (p->housekeeping_at > at) {
		p->housekeeping_at = at;
		colo_timer_arm_at(p->housekeeping, at);
	}
}

static void housekeeping(void *opaque)
{
	struct colo_primary *p = opaque;
	uint64_t now = colo_loop_now(p->px.loop);

	colo_comparer_tick(p->cmp, now);
	colo_cut_expire(&p->hold, now, colo_primary_hold_to_guest, p);
	p->housekeeping_at = now + HOUSEKEEPING_IDLE_NS;
	colo_timer_arm_at(p->housekeeping, p->housekeeping_at);
	if (colo_comparer_stats(p->cmp)->held_frames)
		housekeeping_soon(p);
}

static void on_divergence(void *opaque, const struct colo_divergence *d)
{
	struct colo_primary *p = opaque;
	struct json_object *ev = json_object_new_object();
	char line[512];

	colo_divergence_format(d, line, sizeof(line));
	colo_log_info("%s%s", line,
		      d->requested ? " (checkpoint requested)" : "");
	json_object_object_add(
		ev, "cause", json_object_new_string(colo_cause_name(d->cause)));
	json_object_object_add(ev, "detail", json_object_new_string(line));
	json_object_object_add(ev, "requested",
			       json_object_new_boolean(d->requested));
	colo_control_server_emit(p->px.ctl, "divergence", ev);
	if (d->requested) {
		p->ckpt_requests++;
		ev = json_object_new_object();
		json_object_object_add(
			ev, "cause",
			json_object_new_string(colo_cause_name(d->cause)));
		colo_control_server_emit(p->px.ctl, "checkpoint-request", ev);
	}
}

static void degrade(void *opaque, const char *why)
{
	struct colo_primary *p = opaque;
	bool was_up = colo_proxy_link_up(&p->px);

	colo_proxy_link_detach(&p->px);
	if (!was_up) {
		/* Never verified: nothing was mirrored, nothing is lost. */
		colo_log_warn("link: connection dropped before it was "
			      "verified (%s)",
			      why);
		return;
	}
	colo_lease_gate_link_lost(&p->px.lease);
	colo_comparer_release_all(p->cmp);
	p->peer_losses++;
	if (p->handing_over) {
		/* The secondary never echoed FAILOVER: it did not take over
		 * (it takes over only after echoing). Silence now would
		 * leave the client with nobody. */
		p->handing_over = false;
		p->failovers_unconfirmed++;
		colo_log_warn("failover not confirmed by the secondary: "
			      "serving again");
		colo_control_server_emit(p->px.ctl, "failover-failed", NULL);
	}
	if (p->handed_over)
		colo_log_info("secondary link closed after the hand-over");
	else
		colo_log_warn("secondary lost (%s): degraded, passing "
			      "traffic through",
			      why);
	colo_control_server_emit(p->px.ctl, "peer-lost", NULL);
}

static void accept_peer(void *opaque, uint32_t events)
{
	struct colo_primary *p = opaque;
	int fd = colo_sock_accept(p->listen_fd);

	(void)events;
	if (fd < 0)
		return;
	if (colo_proxy_link_up(&p->px)) {
		/* A verified peer is never displaced by a stranger: a real
		 * secondary that restarted finds its old connection closed
		 * (or timed out) first. */
		close(fd);
		p->peer_refused++;
		colo_log_warn("link: refused a connection while the "
			      "secondary is connected");
		return;
	}
	if (colo_plink_up(&p->px.link)) {
		/* An unverified connection (handshake or HELLO pending) gives
		 * way: it cannot hold the one slot. */
		colo_proxy_link_detach(&p->px);
		colo_comparer_release_all(p->cmp);
	}
	if (colo_proxy_link_attach(&p->px, fd, COLO_PLINK_ROLE_PRIMARY, false) <
	    0) {
		colo_log_warn("secondary: %s", strerror(errno));
		return;
	}
}

/* The connection proved to be our secondary (TLS host and HELLO): only
 * now does it count, for the lease too (a stranger must not clear its
 * floor). */
static void peer_verified(void *opaque)
{
	struct colo_primary *p = opaque;

	p->peer_connects++;
	colo_lease_gate_link_up(&p->px.lease);
	colo_log_info("secondary connected: protected");
	colo_control_server_emit(p->px.ctl, "peer-connected", NULL);
}

static int link_frame(void *opaque, const struct colo_plink_frame *f)
{
	struct colo_primary *p = opaque;

	if (f->type == COLO_PLINK_EGRESS) {
		if (p->px.link.peer.role != COLO_PLINK_ROLE_SECONDARY)
			return -1;
		colo_redirector_to_comparer(p, f);
		housekeeping_soon(p);
		return 0;
	}
	if (f->type == COLO_PLINK_FAILOVER) {
		/* The secondary's echo: it is taking over now. */
		if (!p->handing_over)
			return -1;
		p->handing_over = false;
		p->handed_over = true;
		colo_log_warn("the secondary confirmed the hand-over: client "
			      "port silent");
		colo_control_server_emit(p->px.ctl, "handed-over", NULL);
		return 0;
	}
	/* The secondary sends only EGRESS and heartbeats. */
	return colo_proxy_link_common(&p->px, f);
}

static void on_link(void *opaque, uint32_t events)
{
	struct colo_primary *p = opaque;
	char err[160];

	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (colo_plink_read(&p->px.link, link_frame, p,
			    colo_loop_now(p->px.loop), err, sizeof(err)) < 0)
		degrade(p, err);
}

/* The primary guest's egress: to the comparer while protected, straight
 * to the client otherwise. */
static void guest_frame(void *opaque, uint8_t *f, size_t len)
{
	struct colo_primary *p = opaque;
	size_t v = p->px.guest.vnet;
	struct colo_conn_meta m;

	p->guest_frames++;
	if (len < v + 14)
		return;
	if (!(f[v + 6] & 1) && !p->guest_mac_known) {
		memcpy(p->guest_mac, f + v + 6, 6);
		p->guest_mac_known = true;
	}
	if (p->handed_over || p->handing_over) {
		p->silent++;
		return;
	}
	if (!colo_primary_protected(p)) {
		p->passthrough++;
		colo_proxy_to_client(&p->px, f, len, v);
		return;
	}
	if (colo_conn_meta_from_frame(f, len, v, &m)) {
		uint8_t buf[COLO_PLINK_META_LEN];

		colo_plink_meta_encode(buf, &m);
		if (colo_proxy_queue(&p->px, COLO_PLINK_CONN_META, 0, buf,
				     sizeof(buf), NULL, 0) == 0)
			p->conn_meta++;
	}
	colo_comparer_input(p->cmp, COLO_PRIMARY, f, len, v,
			    colo_loop_now(p->px.loop));
	colo_stamps_hold(&p->px.st, colo_comparer_stats(p->cmp)->held_frames);
	housekeeping_soon(p);
}

/* ---- control commands */

static const char *mode_name(const struct colo_primary *p)
{
	if (p->handed_over)
		return "handed-over";
	if (p->handing_over)
		return "handing-over";
	return colo_primary_protected(p) ? "protected" : "degraded";
}

static int cmd_status(void *ctx, struct json_object *req, struct json_object *r,
		      char *err, size_t errlen)
{
	struct colo_primary *p = ctx;
	char mac[18] = "";

	(void)req, (void)err, (void)errlen;
	if (p->guest_mac_known)
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x",
			 p->guest_mac[0], p->guest_mac[1], p->guest_mac[2],
			 p->guest_mac[3], p->guest_mac[4], p->guest_mac[5]);
	json_object_object_add(r, "role", json_object_new_string("primary"));
	json_object_object_add(r, "mode", json_object_new_string(mode_name(p)));
	json_object_object_add(
		r, "peer", json_object_new_boolean(colo_proxy_link_up(&p->px)));
	json_object_object_add(
		r, "degraded",
		json_object_new_boolean(!colo_primary_protected(p)));
	json_object_object_add(
		r, "checkpoint_pending",
		json_object_new_boolean(
			colo_comparer_checkpoint_pending(p->cmp)));
	json_object_object_add(r, "guest_mac", json_object_new_string(mac));
	return 0;
}

static int cmd_stats(void *ctx, struct json_object *req, struct json_object *r,
		     char *err, size_t errlen)
{
	struct colo_primary *p = ctx;
	const struct colo_stats *s = colo_comparer_stats(p->cmp);
	uint64_t req_total = 0, div_total = 0;

	for (int i = 0; i < COLO_CAUSE_COUNT; i++) {
		req_total += s->checkpoint_requests[i];
		div_total += s->divergences[i];
	}
	const struct colo_counter c[] = {
		{ "client_frames", p->client_frames },
		{ "client_ignored", p->client_ignored },
		{ "mirrored", p->mirrored },
		{ "mirror_failed", p->mirror_failed },
		{ "guest_frames", p->guest_frames },
		{ "passthrough", p->passthrough },
		{ "silent", p->silent },
		{ "failovers_unconfirmed", p->failovers_unconfirmed },
		{ "link_queue_failed", p->px.queue_failed },
		{ "conn_meta", p->conn_meta },
		{ "released_frames", s->released_frames },
		{ "released_bytes", s->released_bytes },
		{ "released_parts", s->released_parts },
		{ "compared_bytes", s->matched_bytes },
		{ "matched_datagrams", s->matched_datagrams },
		{ "secondary_frames", s->frames_in[COLO_SECONDARY] },
		{ "held_frames", s->held_frames },
		{ "divergences", div_total },
		{ "checkpoint_requests", req_total },
		{ "checkpoints_done", s->checkpoints_done },
		{ "flows", s->flows },
		{ "windows_clamped", p->clamped },
		{ "peer_connects", p->peer_connects },
		{ "peer_refused", p->peer_refused },
		{ "peer_losses", p->peer_losses },
		{ "cuts", p->hold.cuts },
		{ "cut_held", p->hold.held },
		{ "cut_dropped", p->hold.dropped },
		{ "cut_expired", p->hold.expired },
	};

	cmd_status(ctx, req, r, err, errlen);
	colo_proxy_add_stats(r, &p->px, c, sizeof(c) / sizeof(c[0]));
	return 0;
}

static int cmd_checkpoint_done(void *ctx, struct json_object *req,
			       struct json_object *r, char *err, size_t errlen)
{
	struct colo_primary *p = ctx;

	(void)req, (void)r, (void)err, (void)errlen;
	colo_comparer_checkpoint_done(p->cmp, colo_now_ns());
	if (colo_proxy_link_up(&p->px))
		colo_proxy_queue(&p->px, COLO_PLINK_CHECKPOINT_DONE, 0, NULL, 0,
				 NULL, 0);
	return 0;
}

/* A planned switch-over: the secondary takes the client interface, we go
 * silent. (Losing the secondary needs no command: it degrades alone.) */
static int cmd_failover(void *ctx, struct json_object *req,
			struct json_object *r, char *err, size_t errlen)
{
	struct colo_primary *p = ctx;

	(void)req, (void)r;
	if (!colo_proxy_link_up(&p->px)) {
		snprintf(err, errlen, "no secondary to hand over to");
		return -1;
	}
	if (p->handing_over || p->handed_over)
		return 0;
	if (colo_proxy_queue(&p->px, COLO_PLINK_FAILOVER, 0, NULL, 0, NULL, 0) <
	    0) {
		snprintf(err, errlen, "cannot queue FAILOVER: out of memory");
		return -1;
	}
	colo_comparer_release_all(p->cmp);
	/* Silent from now on: the secondary may start at any moment. Only
	 * its echo makes this final; a link lost before it undoes it. */
	p->handing_over = true;
	colo_log_warn("handing over to the secondary: client port silent");
	return 0;
}

static const struct colo_control_cmd commands[] = {
	{ "status", cmd_status, "role, mode (protected/degraded), peer" },
	{ "stats", cmd_stats, "counters of ports, comparer and link" },
	{ "checkpoint-resume", colo_primary_cmd_resume,
	  "the VM runs again: the ingress held since the cut goes to it" },
	{ "checkpoint-cut", colo_primary_cmd_cut,
	  "hold the guest's ingress from here to checkpoint-done (cut)" },
	{ "checkpoint-done", cmd_checkpoint_done,
	  "a checkpoint finished: release held frames, reset offsets" },
	{ "failover", cmd_failover,
	  "hand the client interface over to the secondary" },
};

/* ---- set-up */

static int open_listen(struct colo_primary *p, char *err, size_t errlen)
{
	struct colo_sock_spec spec;
	struct colo_sock_addr a;
	char s[300];

	snprintf(s, sizeof(s), "tcp-listen:%s", p->px.o->link);
	if (colo_sock_spec_parse(s, &spec, err, errlen) < 0 ||
	    colo_sock_resolve(&spec, &a, err, errlen) < 0 ||
	    colo_proxy_link_allowed(&p->px, &a, err, errlen) < 0)
		return -1;
	p->listen_fd = colo_sock_listen(&a);
	if (p->listen_fd >= 0)
		p->listen_h = colo_loop_add_fd(p->px.loop, p->listen_fd,
					       EPOLLIN, accept_peer, p);
	if (!p->listen_h) {
		snprintf(err, errlen, "--link-listen %s: %s", p->px.o->link,
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int setup(struct colo_primary *p, const struct colo_proxy_opts *o,
		 char *err, size_t errlen)
{
	struct colo_comparer_config cfg;
	struct colo_comparer_ops ops = { .release = release,
					 .event = on_divergence };

	colo_comparer_config_default(&cfg);
	if (o->compare_timeout_ms)
		cfg.compare_timeout_ns = o->compare_timeout_ms * COLO_NS_PER_MS;
	if (o->max_queue)
		cfg.max_queue = o->max_queue;
	p->timeout_step = cfg.compare_timeout_ns / TIMEOUT_STEPS + 1;
	p->cmp = colo_comparer_new(&cfg, &ops, p);
	p->scratch = malloc(COLO_PORT_FRAME_MAX);
	if (!p->cmp || !p->scratch) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (colo_proxy_open(&p->px, o, p, colo_mirror_client_frame, guest_frame,
			    err, errlen) < 0)
		return -1;
	p->px.on_link = on_link;
	p->px.link_lost = degrade;
	p->px.on_verified = peer_verified;
	p->px.throttled = &p->px.client;
	p->housekeeping = colo_timer_new(p->px.loop, housekeeping, p);
	if (!p->housekeeping) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->housekeeping_at = colo_loop_now(p->px.loop) + HOUSEKEEPING_IDLE_NS;
	colo_timer_arm_at(p->housekeeping, p->housekeeping_at);
	if (open_listen(p, err, errlen) < 0)
		return -1;
	return colo_proxy_control(&p->px, commands,
				  sizeof(commands) / sizeof(commands[0]), err,
				  errlen);
}

int colo_proxy_primary_run(const struct colo_proxy_opts *o)
{
	struct colo_primary *p = calloc(1, sizeof(*p));
	char err[300];
	int rc = 1;

	if (!p) {
		fprintf(stderr, "colo proxy: out of memory\n");
		return 1;
	}
	p->listen_fd = -1;
	if (setup(p, o, err, sizeof(err)) < 0) {
		fprintf(stderr, "colo proxy: %s\n", err);
		goto out;
	}
	colo_log_info("primary: client %s, guest %s, link %s: degraded until "
		      "the secondary connects",
		      o->client_spec, o->guest_spec, o->link);
	if (colo_proxy_run(&p->px) < 0)
		colo_log_warn("event loop failed: %s", strerror(errno));
	else
		rc = 0;
	colo_comparer_release_all(p->cmp);
	colo_proxy_flush_client(&p->px);
out:
	if (p->listen_fd >= 0) {
		colo_loop_del_fd(p->listen_h);
		close(p->listen_fd);
	}
	colo_proxy_close(&p->px);
	colo_comparer_free(p->cmp);
	free(p->scratch);
	colo_hold_free(&p->hold);
	free(p);
	return rc;
}
