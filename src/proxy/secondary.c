/*
 * secondary.c - the secondary host's proxy: rewrite, inject, capture.
 *
 * Mirrored client ingress arrives over the link, is shifted into the
 * secondary guest's sequence space by the rewriter and injected into the
 * guest. The guest's egress is shifted into the primary's sequence space
 * and sent over the link to the primary's comparer. Egress of a
 * connection whose primary ISN has not arrived yet (a CONN_META racing the
 * guest's SYN/ACK) waits in a bounded FIFO that is retried, in order,
 * after every CONN_META. The client port stays silent.
 *
 * Failover (the control command, or FAILOVER from the primary) wires the
 * guest to the client port through the rewriter in failover mode and
 * announces the guest's addresses so the switch and the client's
 * neighbour cache move to this host.
 *
 * What the guest sent just before the primary died went to a comparer
 * that is gone; the guest would resend it only when its retransmission
 * timer fires (200 ms or more, doubling). So the proxy keeps a copy of
 * the guest's recent TCP output (bounded) and the client's latest ACK per
 * connection, and on failover resends at once what the client has not
 * acknowledged. Duplicates are harmless to TCP; a stall is not.
 */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link.h"
#include "packet.h"
#include "log.h"
#include "port.h"
#include "proxy.h"
#include "sock_spec.h"
#include "tcp_rewriter.h"

enum { T_CLIENT, T_GUEST, T_LINK, T_CTL };

#define WAIT_FRAMES 1024
#define WAIT_BYTES  (16u << 20)
#define LINK_HIGH   (8u << 20)
#define LINK_LOW    (2u << 20)
#define RETRY_NS    (200 * 1000000ull)
#define TICK_NS	    (20 * 1000000ull)
/* Announcements after failover, in ms after the first: switches and
 * neighbour caches that missed one still move. */
static const uint32_t announce_at_ms[] = { 0, 20, 100, 500 };

/* The replay tail: recent TCP segments of the guest (primary sequence
 * space, as the client will see them), and the client's ACKs. Segments
 * leave the tail as soon as the client acknowledged them and their
 * buffers are reused last-freed-first, so the copies stay in the cache:
 * the working set is what is in flight, not the tail's bound. */
#define TAIL_SLOTS 4096
#define TAIL_BYTES (32u << 20)
#define ACKS	   4096
#define SMALL	   2048

struct tail_slot {
	uint8_t *frame;
	uint32_t len;
	uint8_t vnet;
	uint64_t conn;
	uint32_t end_seq;
};

struct tail {
	struct tail_slot s[TAIL_SLOTS];
	uint32_t head, n;
	size_t bytes;
	/* free buffers: [0] SMALL bytes, [1] COLO_PORT_FRAME_MAX bytes */
	uint8_t *free[2][TAIL_SLOTS];
	uint32_t nfree[2];
	struct {
		uint64_t conn;
		uint32_t ack;
	} acks[ACKS];
};

struct waiting {
	uint8_t *frame;
	uint32_t len;
	uint8_t vnet;
};

struct secondary {
	const struct colo_proxy_opts *o;
	int epfd;
	struct colo_port_watch client, guest;
	size_t client_vnet, guest_vnet;
	struct colo_rewriter *rw;
	struct colo_plink link;
	struct colo_sock_addr link_addr;
	bool connecting;
	uint32_t link_events;
	uint64_t retry_at;
	struct colo_pctl *ctl;
	struct colo_guest_addrs addrs;
	struct colo_neigh neigh;
	bool failed_over, quit, peer_seen;
	uint64_t failover_at;
	uint32_t announced;
	struct tail *tail;
	uint64_t replayed;
	struct waiting wq[WAIT_FRAMES];
	uint32_t wq_head, wq_n;
	size_t wq_bytes;
	uint64_t session, now, last_tick;
	uint64_t ingress, egress, client_in, client_dropped, to_client;
	uint64_t waited, wait_dropped, announces, peer_losses, meta;
	uint64_t neigh_answers;
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void link_watch(struct secondary *s)
{
	uint32_t want = EPOLLIN;
	struct epoll_event ev = { .data.u32 = T_LINK };

	if (s->link.fd < 0)
		return;
	if (s->connecting || colo_plink_pending(&s->link))
		want |= EPOLLOUT;
	if (want == s->link_events)
		return;
	ev.events = want;
	epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->link.fd, &ev);
	s->link_events = want;
}

static void link_down(struct secondary *s, const char *why)
{
	bool was_up = !s->connecting && s->link.fd >= 0;

	if (s->link.fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->link.fd, NULL);
	colo_plink_detach(&s->link);
	s->connecting = false;
	s->retry_at = s->now + RETRY_NS;
	if (was_up) {
		s->peer_losses++;
		colo_log_warn("primary lost (%s)%s", why,
			      s->failed_over ? "" : ": waiting for failover");
		colo_pctl_emit(s->ctl, "peer-lost", NULL);
	}
}

static void try_connect(struct secondary *s)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
				  .data.u32 = T_LINK };
	bool in_progress;
	int fd = colo_sock_connect(&s->link_addr, &in_progress);

	s->retry_at = s->now + RETRY_NS;
	if (fd < 0)
		return;
	/* The link owns the fd from now on; the HELLO waits in its buffer
	 * until the connect completes. */
	colo_plink_attach(&s->link, fd, COLO_PLINK_ROLE_SECONDARY, s->session,
			  s->now);
	s->connecting = true;
	s->link_events = ev.events;
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void connect_done(struct secondary *s)
{
	int e = 0;
	socklen_t l = sizeof(e);

	if (getsockopt(s->link.fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0 || e) {
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->link.fd, NULL);
		colo_plink_detach(&s->link);
		s->connecting = false;
		return;
	}
	s->connecting = false;
	s->link.last_rx_ns = s->now;
	s->peer_seen = true;
	colo_log_info("connected to the primary %s", s->o->link);
	colo_pctl_emit(s->ctl, "peer-connected", NULL);
}

/* ---- the replay tail */

/* The connection, the same from either direction: the client's address
 * and port and the guest's port. */
static uint64_t conn_id(const struct colo_packet *p, bool from_client)
{
	const uint8_t *ip = from_client ? p->src : p->dst;
	size_t n = p->ipver == 6 ? 16 : 4;
	uint64_t h = 14695981039346656037ull;
	uint16_t cport = from_client ? p->sport : p->dport;
	uint16_t gport = from_client ? p->dport : p->sport;

	for (size_t i = 0; i < n; i++)
		h = (h ^ ip[i]) * 1099511628211ull;
	h = (h ^ cport) * 1099511628211ull;
	h = (h ^ gport) * 1099511628211ull;
	return h | 1; /* 0 marks a free ack entry */
}

static bool tcp_of(const uint8_t *f, size_t len, size_t v,
		   struct colo_packet *p)
{
	return len > v && colo_packet_parse(f + v, len - v, p) == COLO_PKT_TCP;
}

static void tail_pop(struct tail *t)
{
	struct tail_slot *sl = &t->s[t->head];
	int c = sl->len > SMALL;

	if (t->nfree[c] < TAIL_SLOTS)
		t->free[c][t->nfree[c]++] = sl->frame;
	else
		free(sl->frame);
	sl->frame = NULL;
	t->bytes -= sl->len;
	t->head = (t->head + 1) % TAIL_SLOTS;
	t->n--;
}

static bool tail_acked(const struct tail *t, const struct tail_slot *sl)
{
	uint32_t i = (uint32_t)(sl->conn % ACKS);

	return t->acks[i].conn == sl->conn &&
	       (int32_t)(sl->end_seq - t->acks[i].ack) <= 0;
}

static void tail_ack(struct secondary *s, const uint8_t *f, size_t len,
		     size_t v)
{
	struct tail *t = s->tail;
	struct colo_packet p;
	uint64_t id;
	uint32_t i;

	if (!t || !tcp_of(f, len, v, &p) || !(p.tcp_flags & COLO_TCP_ACK))
		return;
	id = conn_id(&p, true);
	i = (uint32_t)(id % ACKS);
	if (t->acks[i].conn != id || (int32_t)(p.ack - t->acks[i].ack) > 0) {
		t->acks[i].conn = id;
		t->acks[i].ack = p.ack;
	}
	while (t->n && tail_acked(t, &t->s[t->head]))
		tail_pop(t);
}

static void tail_keep(struct secondary *s, const uint8_t *f, size_t len,
		      size_t v)
{
	struct tail *t = s->tail;
	struct tail_slot *sl;
	struct colo_packet p;
	uint32_t seglen;
	int c = len > SMALL;

	if (!t || len > COLO_PORT_FRAME_MAX || !tcp_of(f, len, v, &p))
		return;
	seglen = (uint32_t)p.payload_len + !!(p.tcp_flags & COLO_TCP_FIN);
	if (!seglen || (p.tcp_flags & (COLO_TCP_SYN | COLO_TCP_RST)))
		return;
	while (t->n && (t->n == TAIL_SLOTS || t->bytes + len > TAIL_BYTES))
		tail_pop(t);
	sl = &t->s[(t->head + t->n) % TAIL_SLOTS];
	sl->frame = t->nfree[c] ? t->free[c][--t->nfree[c]]
				: malloc(c ? COLO_PORT_FRAME_MAX : SMALL);
	if (!sl->frame)
		return;
	memcpy(sl->frame, f, len);
	sl->len = (uint32_t)len;
	sl->vnet = (uint8_t)v;
	sl->conn = conn_id(&p, false);
	sl->end_seq = p.seq + seglen;
	t->n++;
	t->bytes += len;
}

static void tail_free(struct tail *t)
{
	if (!t)
		return;
	while (t->n)
		tail_pop(t);
	for (int c = 0; c < 2; c++)
		for (uint32_t k = 0; k < t->nfree[c]; k++)
			free(t->free[c][k]);
	free(t);
}

/* Failover: everything the client has not acknowledged leaves now. */
static void tail_replay(struct secondary *s)
{
	struct tail *t = s->tail;

	if (!t)
		return;
	for (uint32_t k = 0; k < t->n; k++) {
		struct tail_slot *sl = &t->s[(t->head + k) % TAIL_SLOTS];

		if (tail_acked(t, sl))
			continue;
		colo_port_send(s->client.port, sl->frame, sl->len, sl->vnet);
		s->replayed++;
	}
	tail_free(t);
	s->tail = NULL;
}

/* ---- egress: guest -> link (or client after failover) */

static void out_egress(struct secondary *s, const uint8_t *f, size_t len,
		       size_t v)
{
	if (s->failed_over) {
		s->to_client++;
		colo_port_send(s->client.port, f, len, v);
	} else if (s->link.fd >= 0 && !s->connecting) {
		s->egress++;
		tail_keep(s, f, len, v);
		colo_plink_queue(&s->link, COLO_PLINK_EGRESS,
				 v ? COLO_PLINK_F_VNET : 0, f, len, NULL, 0);
	}
	/* No primary and no failover: nobody compares, nothing leaves. */
}

static void wait_push(struct secondary *s, const uint8_t *f, size_t len,
		      size_t v)
{
	struct waiting *w;

	if (s->wq_n == WAIT_FRAMES || s->wq_bytes + len > WAIT_BYTES) {
		/* Oldest goes: TCP retransmits it. */
		w = &s->wq[s->wq_head];
		s->wq_bytes -= w->len;
		free(w->frame);
		s->wq_head = (s->wq_head + 1) % WAIT_FRAMES;
		s->wq_n--;
		s->wait_dropped++;
	}
	w = &s->wq[(s->wq_head + s->wq_n) % WAIT_FRAMES];
	w->frame = malloc(len);
	if (!w->frame) {
		s->wait_dropped++;
		return;
	}
	memcpy(w->frame, f, len);
	w->len = (uint32_t)len;
	w->vnet = (uint8_t)v;
	s->wq_n++;
	s->wq_bytes += len;
	s->waited++;
}

/* Retries every waiting frame once, in order; those still waiting keep
 * their order. Linear, but the queue is short-lived and bounded. */
static void wait_retry(struct secondary *s)
{
	uint32_t n = s->wq_n;

	for (uint32_t i = 0; i < n; i++) {
		struct waiting w = s->wq[s->wq_head];

		s->wq_head = (s->wq_head + 1) % WAIT_FRAMES;
		s->wq_n--;
		s->wq_bytes -= w.len;
		if (colo_rewriter_egress(s->rw, w.frame, w.len, w.vnet,
					 s->now) == COLO_RW_PASS) {
			out_egress(s, w.frame, w.len, w.vnet);
		} else {
			s->wq[(s->wq_head + s->wq_n) % WAIT_FRAMES] = w;
			s->wq_n++;
			s->wq_bytes += w.len;
			continue;
		}
		free(w.frame);
	}
}

static uint32_t read_guest_batch(struct secondary *s)
{
	struct colo_rx_batch b;
	size_t v = s->guest_vnet;

	if (colo_port_recv(s->guest.port, &b) < 0)
		colo_log_warn("guest port failed");
	for (uint32_t i = 0; i < b.n; i++) {
		uint8_t *f = b.f[i].data;
		size_t len = b.f[i].len;

		if (len < v + 14)
			continue;
		colo_guest_addrs_learn(&s->addrs, f + v, len - v);
		if (!s->failed_over) {
			uint8_t ans[128];
			size_t n = colo_neigh_answer(&s->neigh, f + v, len - v,
						     ans);

			if (n) {
				colo_port_send(s->guest.port, ans, n, 0);
				s->neigh_answers++;
			}
		}
		if (colo_rewriter_egress(s->rw, f, len, v, s->now) ==
		    COLO_RW_WAIT)
			wait_push(s, f, len, v);
		else
			out_egress(s, f, len, v);
	}
	colo_port_watch_sync(s->epfd, &s->guest);
	return b.n;
}

/* Up to a few batches per wake-up: fewer epoll round trips under load,
 * bounded so the other ports are served. */
static void read_guest(struct secondary *s)
{
	for (int i = 0; i < 4 && read_guest_batch(s) == COLO_PORT_BATCH; i++)
		;
}

/* ---- ingress: link (or client after failover) -> guest */

static void in_ingress(struct secondary *s, uint8_t *f, size_t len, size_t v)
{
	colo_rewriter_ingress(s->rw, f, len, v, s->now);
	colo_port_send(s->guest.port, f, len, v);
}

static uint32_t read_client_batch(struct secondary *s)
{
	struct colo_rx_batch b;
	size_t v = s->client_vnet;

	if (colo_port_recv(s->client.port, &b) < 0)
		colo_log_warn("client port failed");
	for (uint32_t i = 0; i < b.n; i++) {
		uint8_t *f = b.f[i].data;
		size_t len = b.f[i].len;

		s->client_in++;
		if (!s->failed_over || len <= v ||
		    !colo_proxy_for_guest(f + v, len - v, s->addrs.mac,
					  s->addrs.mac_known)) {
			s->client_dropped++;
			continue;
		}
		in_ingress(s, f, len, v);
	}
	colo_port_watch_sync(s->epfd, &s->client);
	return b.n;
}

/* Up to a few batches per wake-up: fewer epoll round trips under load,
 * bounded so the other ports are served. */
static void read_client(struct secondary *s)
{
	for (int i = 0; i < 4 && read_client_batch(s) == COLO_PORT_BATCH; i++)
		;
}

static void announce(struct secondary *s)
{
	uint8_t buf[128];

	if (!s->addrs.mac_known)
		return;
	for (uint32_t i = 0; i < s->addrs.n4; i++) {
		size_t n =
			colo_announce_garp(buf, s->addrs.mac, s->addrs.ip4[i]);

		colo_port_send(s->client.port, buf, n, 0);
		s->announces++;
	}
	for (uint32_t i = 0; i < s->addrs.n6; i++) {
		size_t n =
			colo_announce_una(buf, s->addrs.mac, s->addrs.ip6[i]);

		colo_port_send(s->client.port, buf, n, 0);
		s->announces++;
	}
}

static void failover(struct secondary *s, const char *why)
{
	if (s->failed_over)
		return;
	s->failed_over = true;
	s->failover_at = s->now = colo_proxy_now_ns();
	colo_rewriter_failover(s->rw);
	if (s->link.fd >= 0)
		link_down(s, "failover");
	/* The switch must learn the guest's new port before the replayed
	 * segments arrive, or it floods them (harmless) or sends them to the
	 * dead host. */
	announce(s);
	s->announced = 1;
	tail_replay(s);
	wait_retry(s); /* nothing waits any more: all go to the client */
	colo_port_flush(s->client.port);
	colo_log_warn("failover (%s): guest wired to the client port", why);
	colo_pctl_emit(s->ctl, "failover", NULL);
}

static int link_frame(void *opaque, const struct colo_plink_frame *f)
{
	struct secondary *s = opaque;
	struct colo_conn_meta m;
	size_t v = (f->flags & COLO_PLINK_F_VNET) ? COLO_VNET_HDR_LEN : 0;

	if (s->link.peer.role != COLO_PLINK_ROLE_PRIMARY)
		return -1;
	switch (f->type) {
	case COLO_PLINK_INGRESS:
		s->ingress++;
		tail_ack(s, f->payload, f->len, v);
		if (f->len > v)
			colo_neigh_learn(&s->neigh, f->payload + v, f->len - v);
		/* The payload sits in the link's own input buffer: rewriting
		 * it in place is safe. */
		in_ingress(s, (uint8_t *)f->payload, f->len, v);
		return 0;
	case COLO_PLINK_CONN_META:
		if (colo_plink_meta_decode(f->payload, f->len, &m) < 0)
			return -1;
		s->meta++;
		colo_rewriter_learn(s->rw, &m, s->now);
		if (s->wq_n)
			wait_retry(s);
		return 0;
	case COLO_PLINK_CHECKPOINT_DONE:
		colo_rewriter_checkpoint(s->rw);
		colo_pctl_emit(s->ctl, "checkpoint-done", NULL);
		return 0;
	case COLO_PLINK_FAILOVER:
		failover(s, "requested by the primary");
		return 0;
	case COLO_PLINK_PING:
		return colo_plink_queue(&s->link, COLO_PLINK_PONG, 0,
					f->payload, f->len, NULL, 0);
	case COLO_PLINK_PONG:
		return 0;
	default:
		return -1;
	}
}

static void on_link(struct secondary *s, uint32_t events)
{
	char err[160];

	if (s->connecting) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		connect_done(s);
		if (s->link.fd < 0)
			return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (colo_plink_read(&s->link, link_frame, s, s->now, err, sizeof(err)) <
		    0 &&
	    s->link.fd >= 0)
		link_down(s, err);
}

static void tick(struct secondary *s)
{
	colo_rewriter_tick(s->rw, s->now);
	if (s->failed_over) {
		uint64_t since = (s->now - s->failover_at) / 1000000;

		while (s->announced < sizeof(announce_at_ms) /
					      sizeof(announce_at_ms[0]) &&
		       since >= announce_at_ms[s->announced]) {
			announce(s);
			s->announced++;
		}
		return;
	}
	if (s->link.fd < 0) {
		if (s->now >= s->retry_at)
			try_connect(s);
		return;
	}
	if (s->connecting)
		return;
	if (s->now - s->link.last_rx_ns > s->o->peer_timeout_ms * 1000000ull) {
		link_down(s, "no data within the peer timeout");
		return;
	}
	if (s->now - s->link.last_tx_ns >= s->o->ping_ms * 1000000ull &&
	    !colo_plink_pending(&s->link))
		colo_plink_queue(&s->link, COLO_PLINK_PING, 0, NULL, 0, NULL,
				 0);
}

static void flush_all(struct secondary *s)
{
	if (s->link.fd >= 0 && !s->connecting) {
		if (colo_plink_flush(&s->link, s->now) < 0)
			link_down(s, strerror(errno));
	}
	link_watch(s);
	colo_port_flush(s->guest.port);
	colo_port_flush(s->client.port);
	if (!s->guest.paused && colo_plink_pending(&s->link) > LINK_HIGH)
		s->guest.paused = true;
	else if (s->guest.paused && colo_plink_pending(&s->link) < LINK_LOW)
		s->guest.paused = false;
	colo_port_watch_sync(s->epfd, &s->guest);
}

/* ---- control commands */

#define ADD_U64(o, name, v)                                                    \
	json_object_object_add(o, name, json_object_new_int64((int64_t)(v)))

static int cmd_status(void *ctx, struct json_object *req, struct json_object *r,
		      char *err, size_t errlen)
{
	struct secondary *s = ctx;
	bool up = s->link.fd >= 0 && !s->connecting;

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
	struct secondary *s = ctx;
	const struct colo_rewriter_stats *rs = colo_rewriter_stats(s->rw);

	cmd_status(ctx, req, r, err, errlen);
	ADD_U64(r, "ingress", s->ingress);
	ADD_U64(r, "egress", s->egress);
	ADD_U64(r, "conn_meta", s->meta);
	ADD_U64(r, "waited", s->waited);
	ADD_U64(r, "waiting", s->wq_n);
	ADD_U64(r, "wait_dropped", s->wait_dropped);
	ADD_U64(r, "client_in", s->client_in);
	ADD_U64(r, "client_dropped", s->client_dropped);
	ADD_U64(r, "to_client", s->to_client);
	ADD_U64(r, "announces", s->announces);
	ADD_U64(r, "replayed", s->replayed);
	ADD_U64(r, "neigh_answers", s->neigh_answers);
	ADD_U64(r, "peer_losses", s->peer_losses);
	ADD_U64(r, "conns", rs->conns);
	ADD_U64(r, "egress_rewritten", rs->egress_rewritten);
	ADD_U64(r, "ingress_rewritten", rs->ingress_rewritten);
	ADD_U64(r, "checkpoints", rs->checkpoints);
	ADD_U64(r, "link_bytes_tx", s->link.bytes_tx);
	ADD_U64(r, "link_bytes_rx", s->link.bytes_rx);
	colo_pctl_add_port_stats(r, "client_port", s->client.port);
	colo_pctl_add_port_stats(r, "guest_port", s->guest.port);
	return 0;
}

static int cmd_checkpoint_done(void *ctx, struct json_object *req,
			       struct json_object *r, char *err, size_t errlen)
{
	(void)req, (void)r, (void)err, (void)errlen;
	colo_rewriter_checkpoint(((struct secondary *)ctx)->rw);
	return 0;
}

static int cmd_failover(void *ctx, struct json_object *req,
			struct json_object *r, char *err, size_t errlen)
{
	(void)req, (void)r, (void)err, (void)errlen;
	failover(ctx, "control command");
	return 0;
}

static int cmd_quit(void *ctx, struct json_object *req, struct json_object *r,
		    char *err, size_t errlen)
{
	(void)req, (void)r, (void)err, (void)errlen;
	((struct secondary *)ctx)->quit = true;
	return 0;
}

static const struct colo_control_cmd commands[] = {
	{ "status", cmd_status, "role, mode (protected/failed-over), peer" },
	{ "stats", cmd_stats, "counters of the rewriter and the link" },
	{ "checkpoint-done", cmd_checkpoint_done,
	  "a checkpoint finished: rewriter offsets reset" },
	{ "failover", cmd_failover,
	  "take over: wire the guest to the client interface" },
	{ "quit", cmd_quit, "exit" },
};

/* ---- set-up */

static void loop(struct secondary *s)
{
	struct epoll_event evs[16];

	while (!s->quit && !got_signal) {
		int n = epoll_wait(s->epfd, evs, 16, 10);

		s->now = colo_proxy_now_ns();
		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u32) {
			case T_CLIENT:
				read_client(s);
				break;
			case T_GUEST:
				if (!s->guest.paused)
					read_guest(s);
				break;
			case T_LINK:
				if (s->link.fd >= 0)
					on_link(s, evs[i].events);
				break;
			case T_CTL:
				colo_pctl_run(s->ctl);
				break;
			}
		}
		if (s->now - s->last_tick >= TICK_NS) {
			s->last_tick = s->now;
			tick(s);
		}
		flush_all(s);
	}
}

int colo_proxy_secondary_run(const struct colo_proxy_opts *o)
{
	struct secondary *s = calloc(1, sizeof(*s));
	struct colo_control_table t = { commands,
					sizeof(commands) / sizeof(commands[0]),
					NULL };
	struct colo_sock_spec spec;
	char err[256], sp[300];
	int rc = 1;

	if (!s || colo_plink_init(&s->link) < 0) {
		fprintf(stderr, "colo proxy: out of memory\n");
		free(s);
		return 1;
	}
	s->o = o;
	t.ctx = s;
	s->client.fd = s->guest.fd = -1;
	s->client.tag = T_CLIENT;
	s->guest.tag = T_GUEST;
	s->rw = colo_rewriter_new();
	s->tail = calloc(1, sizeof(*s->tail));
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->session = colo_proxy_now_ns() ^ ((uint64_t)getpid() << 32);
	if (!s->rw || s->epfd < 0) {
		fprintf(stderr, "colo proxy: out of memory\n");
		goto out;
	}
	snprintf(sp, sizeof(sp), "tcp:%s", o->link);
	if (colo_sock_spec_parse(sp, &spec, err, sizeof(err)) < 0 ||
	    colo_sock_resolve(&spec, &s->link_addr, err, sizeof(err)) < 0) {
		fprintf(stderr, "colo proxy: --link-connect: %s\n", err);
		goto out;
	}
	s->client.port = colo_port_open(o->client_spec, err, sizeof(err));
	if (s->client.port)
		s->guest.port = colo_port_open(o->guest_spec, err, sizeof(err));
	if (!s->client.port || !s->guest.port) {
		fprintf(stderr, "colo proxy: %s\n", err);
		goto out;
	}
	s->client_vnet = colo_port_vnet_hdr_len(s->client.port);
	s->guest_vnet = colo_port_vnet_hdr_len(s->guest.port);
	colo_port_watch_sync(s->epfd, &s->client);
	colo_port_watch_sync(s->epfd, &s->guest);
	if (o->control) {
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u32 = T_CTL };

		s->ctl = colo_pctl_new(o->control, &t, err, sizeof(err));
		if (!s->ctl) {
			fprintf(stderr, "colo proxy: --control %s\n", err);
			goto out;
		}
		epoll_ctl(s->epfd, EPOLL_CTL_ADD, colo_pctl_fd(s->ctl), &ev);
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	colo_log_info("secondary: client %s (silent until failover), guest %s, "
		      "link to %s",
		      o->client_spec, o->guest_spec, o->link);
	s->now = colo_proxy_now_ns();
	try_connect(s);
	loop(s);
	rc = 0;
out:
	while (s->wq_n) {
		free(s->wq[s->wq_head].frame);
		s->wq_head = (s->wq_head + 1) % WAIT_FRAMES;
		s->wq_n--;
	}
	colo_pctl_free(s->ctl);
	colo_plink_free(&s->link);
	colo_port_close(s->client.port);
	colo_port_close(s->guest.port);
	colo_rewriter_free(s->rw);
	tail_free(s->tail);
	if (s->epfd >= 0)
		close(s->epfd);
	free(s);
	return rc;
}
