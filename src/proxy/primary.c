/*
 * primary.c - the primary host's proxy: mirror, compare, release.
 *
 * Client ingress for the guest is mirrored to the secondary before it is
 * delivered, so the secondary guest never sees less than the primary
 * guest did. The primary guest's egress goes to the comparer's primary
 * side (after telling the secondary the ISN of each new connection), the
 * secondary guest's egress arrives over the link into the secondary side,
 * and what the comparer releases leaves on the client port.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "checksum.h"
#include "comparer.h"
#include "packet.h"
#include "link.h"
#include "log.h"
#include "port.h"
#include "proxy.h"
#include "sock_spec.h"
#include "tcp_rewriter.h"

enum { T_CLIENT, T_GUEST, T_LISTEN, T_LINK, T_CTL };

#define LINK_HIGH (8u << 20) /* stop reading the client above this */
#define LINK_LOW  (2u << 20)
#define TICK_NS	  (20 * 1000000ull)

#define WINDOWS 4096

/* The secondary guest's latest receive window per connection. */
struct sec_window {
	uint64_t conn;
	uint16_t win;
};

struct primary {
	const struct colo_proxy_opts *o;
	int epfd;
	struct colo_port_watch client, guest;
	size_t client_vnet, guest_vnet;
	struct colo_comparer *cmp;
	struct colo_plink link;
	int listen_fd;
	uint32_t link_events;
	struct colo_pctl *ctl;
	uint8_t guest_mac[6];
	bool guest_mac_known;
	bool handed_over; /* failover command: the secondary owns the client */
	bool quit;
	uint64_t session, now, last_tick;
	uint64_t client_frames, client_ignored, mirrored, guest_frames;
	uint64_t passthrough, released, conn_meta, ckpt_requests;
	uint64_t peer_connects, peer_losses, mirror_failed, clamped;
	struct sec_window win[WINDOWS];
	uint8_t *scratch; /* a released frame with its window clamped */
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static bool protected(const struct primary *p)
{
	return colo_plink_up(&p->link) && !p->handed_over;
}

static uint64_t conn_of(const struct colo_packet *pk)
{
	size_t n = pk->ipver == 6 ? 16 : 4;
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ pk->src[i] ^ ((uint64_t)pk->dst[i] << 8)) *
		    1099511628211ull;
	h = (h ^ pk->sport ^ ((uint64_t)pk->dport << 16)) * 1099511628211ull;
	return h | 1;
}

static bool tcp_ack_of(const uint8_t *f, size_t len, size_t v,
		       struct colo_packet *pk)
{
	return len > v + 14 &&
	       colo_packet_parse(f + v, len - v, pk) == COLO_PKT_TCP &&
	       (pk->tcp_flags & COLO_TCP_ACK) &&
	       !(pk->tcp_flags & (COLO_TCP_SYN | COLO_TCP_RST));
}

static void note_sec_window(struct primary *p, const uint8_t *f, size_t len,
			    size_t v)
{
	struct colo_packet pk;
	struct sec_window *w;
	uint64_t id;

	if (!tcp_ack_of(f, len, v, &pk))
		return;
	id = conn_of(&pk);
	w = &p->win[id % WINDOWS];
	w->conn = id;
	w->win = pk.window;
}

/* Returns the frame to send: the original, or a clamped copy. */
static const uint8_t *clamp_window(struct primary *p, const uint8_t *f,
				   size_t len, size_t v)
{
	struct colo_packet pk;
	const struct sec_window *w;
	uint8_t *tcp;
	uint32_t sum;

	if (!tcp_ack_of(f, len, v, &pk))
		return f;
	w = &p->win[conn_of(&pk) % WINDOWS];
	if (w->conn != conn_of(&pk) || w->win >= pk.window)
		return f;
	memcpy(p->scratch, f, len);
	tcp = p->scratch + v + (size_t)(pk.l4 - (f + v));
	tcp[14] = (uint8_t)(w->win >> 8);
	tcp[15] = (uint8_t)w->win;
	/* With NEEDS_CSUM the field holds the pseudo-header sum only, which
	 * does not cover the window; otherwise update it (RFC 1624). */
	if (!(v && (f[0] & 1))) {
		sum = colo_csum_update((uint16_t)(tcp[16] << 8 | tcp[17]),
				       pk.window, w->win);
		tcp[16] = (uint8_t)(sum >> 8);
		tcp[17] = (uint8_t)sum;
	}
	p->clamped++;
	return p->scratch;
}

static void release(void *opaque, const uint8_t *frame, size_t len,
		    size_t vnet_hdr_len)
{
	struct primary *p = opaque;

	p->released++;
	if (p->handed_over)
		return;
	if (protected(p) && len <= COLO_PORT_FRAME_MAX)
		frame = clamp_window(p, frame, len, vnet_hdr_len);
	colo_port_send(p->client.port, frame, len, vnet_hdr_len);
}

static void on_divergence(void *opaque, const struct colo_divergence *d)
{
	struct primary *p = opaque;
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
	colo_pctl_emit(p->ctl, "divergence", ev);
	if (d->requested) {
		p->ckpt_requests++;
		ev = json_object_new_object();
		json_object_object_add(
			ev, "cause",
			json_object_new_string(colo_cause_name(d->cause)));
		colo_pctl_emit(p->ctl, "checkpoint-request", ev);
	}
}

static void link_watch(struct primary *p)
{
	uint32_t want = EPOLLIN | (colo_plink_pending(&p->link) ? EPOLLOUT : 0);
	struct epoll_event ev = { .events = want, .data.u32 = T_LINK };

	if (!colo_plink_up(&p->link) || want == p->link_events)
		return;
	epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->link.fd, &ev);
	p->link_events = want;
}

static void degrade(struct primary *p, const char *why)
{
	if (colo_plink_up(&p->link)) {
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, p->link.fd, NULL);
		colo_plink_detach(&p->link);
	}
	colo_comparer_release_all(p->cmp);
	p->client.paused = false;
	p->peer_losses++;
	colo_log_warn("secondary lost (%s): degraded, passing traffic through",
		      why);
	colo_pctl_emit(p->ctl, "peer-lost", NULL);
}

static void accept_peer(struct primary *p)
{
	int fd = colo_sock_accept(p->listen_fd);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
				  .data.u32 = T_LINK };

	if (fd < 0)
		return;
	if (colo_plink_up(&p->link)) {
		/* A new connection wins: the old peer restarted or its
		 * connection is half dead. */
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, p->link.fd, NULL);
		colo_plink_detach(&p->link);
		colo_comparer_release_all(p->cmp);
	}
	colo_plink_attach(&p->link, fd, COLO_PLINK_ROLE_PRIMARY, p->session,
			  p->now);
	p->link_events = ev.events;
	epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
	p->peer_connects++;
	colo_log_info("secondary connected: protected");
	colo_pctl_emit(p->ctl, "peer-connected", NULL);
}

static int link_frame(void *opaque, const struct colo_plink_frame *f)
{
	struct primary *p = opaque;
	size_t v;

	switch (f->type) {
	case COLO_PLINK_EGRESS:
		if (p->link.peer.role != COLO_PLINK_ROLE_SECONDARY)
			return -1;
		v = (f->flags & COLO_PLINK_F_VNET) ? COLO_VNET_HDR_LEN : 0;
		note_sec_window(p, f->payload, f->len, v);
		colo_comparer_input(p->cmp, COLO_SECONDARY, f->payload, f->len,
				    v, p->now);
		return 0;
	case COLO_PLINK_PING:
		return colo_plink_queue(&p->link, COLO_PLINK_PONG, 0,
					f->payload, f->len, NULL, 0);
	case COLO_PLINK_PONG:
		return 0;
	default:
		return -1; /* only the primary sends the other kinds */
	}
}

static void read_link(struct primary *p)
{
	char err[160];

	if (colo_plink_read(&p->link, link_frame, p, p->now, err, sizeof(err)) <
	    0)
		degrade(p, err);
}

static uint32_t read_client_batch(struct primary *p)
{
	struct colo_rx_batch b;
	bool prot = protected(p);

	if (colo_port_recv(p->client.port, &b) < 0)
		colo_log_warn("client port failed");
	for (uint32_t i = 0; i < b.n; i++) {
		uint8_t *f = b.f[i].data;
		size_t len = b.f[i].len;

		p->client_frames++;
		if (len <= p->client_vnet ||
		    !colo_proxy_for_guest(f + p->client_vnet,
					  len - p->client_vnet, p->guest_mac,
					  p->guest_mac_known)) {
			p->client_ignored++;
			continue;
		}
		if (prot) {
			if (colo_plink_queue(&p->link, COLO_PLINK_INGRESS,
					     p->client_vnet ? COLO_PLINK_F_VNET
							    : 0,
					     f, len, NULL, 0) < 0)
				p->mirror_failed++;
			else
				p->mirrored++;
		}
		colo_port_send(p->guest.port, f, len, p->client_vnet);
	}
	colo_port_watch_sync(p->epfd, &p->client);
	return b.n;
}

/* Up to a few batches per wake-up: fewer epoll round trips under load,
 * bounded so the other ports are served. */
static void read_client(struct primary *p)
{
	for (int i = 0; i < 4 && read_client_batch(p) == COLO_PORT_BATCH; i++)
		;
}

static uint32_t read_guest_batch(struct primary *p)
{
	struct colo_rx_batch b;
	bool prot = protected(p);

	if (colo_port_recv(p->guest.port, &b) < 0)
		colo_log_warn("guest port failed");
	for (uint32_t i = 0; i < b.n; i++) {
		uint8_t *f = b.f[i].data;
		size_t len = b.f[i].len, v = p->guest_vnet;
		struct colo_conn_meta m;

		p->guest_frames++;
		if (len < v + 14)
			continue;
		if (!(f[v + 6] & 1) && !p->guest_mac_known) {
			memcpy(p->guest_mac, f + v + 6, 6);
			p->guest_mac_known = true;
		}
		if (p->handed_over)
			continue;
		if (!prot) {
			p->passthrough++;
			colo_port_send(p->client.port, f, len, v);
			continue;
		}
		if (colo_conn_meta_from_frame(f, len, v, &m)) {
			uint8_t buf[COLO_PLINK_META_LEN];

			colo_plink_meta_encode(buf, &m);
			colo_plink_queue(&p->link, COLO_PLINK_CONN_META, 0, buf,
					 sizeof(buf), NULL, 0);
			p->conn_meta++;
		}
		colo_comparer_input(p->cmp, COLO_PRIMARY, f, len, v, p->now);
	}
	colo_port_watch_sync(p->epfd, &p->guest);
	return b.n;
}

/* Up to a few batches per wake-up: fewer epoll round trips under load,
 * bounded so the other ports are served. */
static void read_guest(struct primary *p)
{
	for (int i = 0; i < 4 && read_guest_batch(p) == COLO_PORT_BATCH; i++)
		;
}

static void tick(struct primary *p)
{
	colo_comparer_tick(p->cmp, p->now);
	if (!colo_plink_up(&p->link))
		return;
	if (p->now - p->link.last_rx_ns > p->o->peer_timeout_ms * 1000000ull) {
		degrade(p, "no data within the peer timeout");
		return;
	}
	if (p->now - p->link.last_tx_ns >= p->o->ping_ms * 1000000ull &&
	    !colo_plink_pending(&p->link))
		colo_plink_queue(&p->link, COLO_PLINK_PING, 0, NULL, 0, NULL,
				 0);
}

static void flush_all(struct primary *p)
{
	if (colo_plink_up(&p->link)) {
		if (colo_plink_flush(&p->link, p->now) < 0)
			degrade(p, strerror(errno));
		else
			link_watch(p);
	}
	colo_port_flush(p->guest.port);
	colo_port_flush(p->client.port);
	/* Back-pressure: a slow link holds the client's input back rather
	 * than buffering without bound; TCP clients slow down. */
	if (!p->client.paused && colo_plink_pending(&p->link) > LINK_HIGH)
		p->client.paused = true;
	else if (p->client.paused && colo_plink_pending(&p->link) < LINK_LOW)
		p->client.paused = false;
	colo_port_watch_sync(p->epfd, &p->client);
}

/* ---- control commands */

static const char *mode_name(const struct primary *p)
{
	if (p->handed_over)
		return "handed-over";
	return protected(p) ? "protected" : "degraded";
}

static int cmd_status(void *ctx, struct json_object *req, struct json_object *r,
		      char *err, size_t errlen)
{
	struct primary *p = ctx;
	char mac[18] = "";

	(void)req, (void)err, (void)errlen;
	if (p->guest_mac_known)
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x",
			 p->guest_mac[0], p->guest_mac[1], p->guest_mac[2],
			 p->guest_mac[3], p->guest_mac[4], p->guest_mac[5]);
	json_object_object_add(r, "role", json_object_new_string("primary"));
	json_object_object_add(r, "mode", json_object_new_string(mode_name(p)));
	json_object_object_add(
		r, "peer", json_object_new_boolean(colo_plink_up(&p->link)));
	json_object_object_add(r, "degraded",
			       json_object_new_boolean(!protected(p)));
	json_object_object_add(
		r, "checkpoint_pending",
		json_object_new_boolean(
			colo_comparer_checkpoint_pending(p->cmp)));
	json_object_object_add(r, "guest_mac", json_object_new_string(mac));
	return 0;
}

#define ADD_U64(o, name, v)                                                    \
	json_object_object_add(o, name, json_object_new_int64((int64_t)(v)))

static int cmd_stats(void *ctx, struct json_object *req, struct json_object *r,
		     char *err, size_t errlen)
{
	struct primary *p = ctx;
	const struct colo_stats *s = colo_comparer_stats(p->cmp);
	uint64_t req_total = 0, div_total = 0;

	(void)req, (void)err, (void)errlen;
	for (int i = 0; i < COLO_CAUSE_COUNT; i++) {
		req_total += s->checkpoint_requests[i];
		div_total += s->divergences[i];
	}
	cmd_status(ctx, req, r, err, errlen);
	ADD_U64(r, "client_frames", p->client_frames);
	ADD_U64(r, "client_ignored", p->client_ignored);
	ADD_U64(r, "mirrored", p->mirrored);
	ADD_U64(r, "mirror_failed", p->mirror_failed);
	ADD_U64(r, "guest_frames", p->guest_frames);
	ADD_U64(r, "passthrough", p->passthrough);
	ADD_U64(r, "conn_meta", p->conn_meta);
	ADD_U64(r, "released_frames", s->released_frames);
	ADD_U64(r, "released_bytes", s->released_bytes);
	ADD_U64(r, "released_parts", s->released_parts);
	ADD_U64(r, "compared_bytes", s->matched_bytes);
	ADD_U64(r, "matched_datagrams", s->matched_datagrams);
	ADD_U64(r, "secondary_frames", s->frames_in[COLO_SECONDARY]);
	ADD_U64(r, "held_frames", s->held_frames);
	ADD_U64(r, "divergences", div_total);
	ADD_U64(r, "checkpoint_requests", req_total);
	ADD_U64(r, "checkpoints_done", s->checkpoints_done);
	ADD_U64(r, "flows", s->flows);
	ADD_U64(r, "windows_clamped", p->clamped);
	ADD_U64(r, "peer_connects", p->peer_connects);
	ADD_U64(r, "peer_losses", p->peer_losses);
	ADD_U64(r, "link_bytes_tx", p->link.bytes_tx);
	ADD_U64(r, "link_bytes_rx", p->link.bytes_rx);
	colo_pctl_add_port_stats(r, "client_port", p->client.port);
	colo_pctl_add_port_stats(r, "guest_port", p->guest.port);
	return 0;
}

static int cmd_checkpoint_done(void *ctx, struct json_object *req,
			       struct json_object *r, char *err, size_t errlen)
{
	struct primary *p = ctx;

	(void)req, (void)r, (void)err, (void)errlen;
	p->now = colo_proxy_now_ns();
	colo_comparer_checkpoint_done(p->cmp, p->now);
	if (colo_plink_up(&p->link))
		colo_plink_queue(&p->link, COLO_PLINK_CHECKPOINT_DONE, 0, NULL,
				 0, NULL, 0);
	return 0;
}

/* A planned switch-over: the secondary takes the client interface, we go
 * silent. (Losing the secondary needs no command: it degrades alone.) */
static int cmd_failover(void *ctx, struct json_object *req,
			struct json_object *r, char *err, size_t errlen)
{
	struct primary *p = ctx;

	(void)req, (void)r;
	if (!colo_plink_up(&p->link)) {
		snprintf(err, errlen, "no secondary to hand over to");
		return -1;
	}
	colo_plink_queue(&p->link, COLO_PLINK_FAILOVER, 0, NULL, 0, NULL, 0);
	colo_plink_flush(&p->link, p->now);
	colo_comparer_release_all(p->cmp);
	p->handed_over = true;
	colo_log_warn("handed over to the secondary: client port silent");
	return 0;
}

static int cmd_quit(void *ctx, struct json_object *req, struct json_object *r,
		    char *err, size_t errlen)
{
	(void)req, (void)r, (void)err, (void)errlen;
	((struct primary *)ctx)->quit = true;
	return 0;
}

static const struct colo_control_cmd commands[] = {
	{ "status", cmd_status, "role, mode (protected/degraded), peer" },
	{ "stats", cmd_stats, "counters of ports, comparer and link" },
	{ "checkpoint-done", cmd_checkpoint_done,
	  "a checkpoint finished: release held frames, reset offsets" },
	{ "failover", cmd_failover,
	  "hand the client interface over to the secondary" },
	{ "quit", cmd_quit, "exit" },
};

/* ---- set-up */

static int open_ports(struct primary *p, char *err, size_t errlen)
{
	p->client.port = colo_port_open(p->o->client_spec, err, errlen);
	if (!p->client.port)
		return -1;
	p->guest.port = colo_port_open(p->o->guest_spec, err, errlen);
	if (!p->guest.port)
		return -1;
	p->client.fd = p->guest.fd = -1;
	p->client.tag = T_CLIENT;
	p->guest.tag = T_GUEST;
	p->client_vnet = colo_port_vnet_hdr_len(p->client.port);
	p->guest_vnet = colo_port_vnet_hdr_len(p->guest.port);
	colo_port_watch_sync(p->epfd, &p->client);
	colo_port_watch_sync(p->epfd, &p->guest);
	return 0;
}

static int open_listen(struct primary *p, char *err, size_t errlen)
{
	struct colo_sock_spec spec;
	struct colo_sock_addr a;
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = T_LISTEN };
	char s[300];

	snprintf(s, sizeof(s), "tcp-listen:%s", p->o->link);
	if (colo_sock_spec_parse(s, &spec, err, errlen) < 0 ||
	    colo_sock_resolve(&spec, &a, err, errlen) < 0)
		return -1;
	p->listen_fd = colo_sock_listen(&a);
	if (p->listen_fd < 0) {
		snprintf(err, errlen, "--link-listen %s: %s", p->o->link,
			 strerror(errno));
		return -1;
	}
	return epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->listen_fd, &ev);
}

static void loop(struct primary *p)
{
	struct epoll_event evs[16];

	while (!p->quit && !got_signal) {
		int n = epoll_wait(p->epfd, evs, 16, 10);

		p->now = colo_proxy_now_ns();
		for (int i = 0; i < n; i++) {
			switch (evs[i].data.u32) {
			case T_CLIENT:
				if (!p->client.paused)
					read_client(p);
				break;
			case T_GUEST:
				read_guest(p);
				break;
			case T_LISTEN:
				accept_peer(p);
				break;
			case T_LINK:
				if (colo_plink_up(&p->link) &&
				    (evs[i].events &
				     (EPOLLIN | EPOLLHUP | EPOLLERR)))
					read_link(p);
				break;
			case T_CTL:
				colo_pctl_run(p->ctl);
				break;
			}
		}
		if (p->now - p->last_tick >= TICK_NS) {
			p->last_tick = p->now;
			tick(p);
		}
		flush_all(p);
	}
}

int colo_proxy_primary_run(const struct colo_proxy_opts *o)
{
	struct primary *p = calloc(1, sizeof(*p));
	struct colo_comparer_config cfg;
	struct colo_comparer_ops ops = { .release = release,
					 .event = on_divergence };
	struct colo_control_table t = { commands,
					sizeof(commands) / sizeof(commands[0]),
					NULL };
	char err[256];
	int rc = 1;

	if (!p || colo_plink_init(&p->link) < 0) {
		fprintf(stderr, "colo proxy: out of memory\n");
		free(p);
		return 1;
	}
	p->o = o;
	p->listen_fd = -1;
	p->client.fd = p->guest.fd = -1;
	t.ctx = p;
	colo_comparer_config_default(&cfg);
	if (o->compare_timeout_ms)
		cfg.compare_timeout_ns = o->compare_timeout_ms * 1000000ull;
	if (o->max_queue)
		cfg.max_queue = o->max_queue;
	p->cmp = colo_comparer_new(&cfg, &ops, p);
	p->scratch = malloc(COLO_PORT_FRAME_MAX);
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	p->session = colo_proxy_now_ns() ^ ((uint64_t)getpid() << 32);
	if (!p->cmp || p->epfd < 0 || !p->scratch) {
		fprintf(stderr, "colo proxy: out of memory\n");
		goto out;
	}
	if (open_ports(p, err, sizeof(err)) < 0 ||
	    open_listen(p, err, sizeof(err)) < 0) {
		fprintf(stderr, "colo proxy: %s\n", err);
		goto out;
	}
	if (o->control) {
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u32 = T_CTL };

		p->ctl = colo_pctl_new(o->control, &t, err, sizeof(err));
		if (!p->ctl) {
			fprintf(stderr, "colo proxy: --control %s\n", err);
			goto out;
		}
		epoll_ctl(p->epfd, EPOLL_CTL_ADD, colo_pctl_fd(p->ctl), &ev);
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	colo_log_info("primary: client %s, guest %s, link %s: degraded until "
		      "the secondary connects",
		      o->client_spec, o->guest_spec, o->link);
	loop(p);
	colo_comparer_release_all(p->cmp);
	colo_port_flush(p->client.port);
	rc = 0;
out:
	colo_pctl_free(p->ctl);
	colo_plink_free(&p->link);
	if (p->listen_fd >= 0)
		close(p->listen_fd);
	colo_port_close(p->client.port);
	colo_port_close(p->guest.port);
	colo_comparer_free(p->cmp);
	free(p->scratch);
	if (p->epfd >= 0)
		close(p->epfd);
	free(p);
	return rc;
}
