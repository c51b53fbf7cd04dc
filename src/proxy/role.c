/*
 * role.c - what the primary and the secondary proxy both run on: one
 * colo_loop carrying the two ports, the replication link and the control
 * socket.
 *
 * Frames handled during a wake-up are only queued (ports batch their
 * sends, the link its output buffer); one before-sleep hook flushes them
 * all, so a frame that can leave leaves in the wake-up that produced it,
 * in as few syscalls as the batch allows. The same hook applies
 * back-pressure: while the link's output is above LINK_HIGH the throttled
 * port's input stays unread (its TCP senders slow down) until it drains
 * below LINK_LOW.
 *
 * The heartbeat is one timer per link: it fires when a PING is due or the
 * peer timeout could have passed, and re-arms itself from the link's own
 * last_rx/last_tx, so traffic never has to touch it.
 */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "packet.h"
#include "proxy.h"
#include "sock_spec.h"
#include "tls.h"

#define LINK_HIGH (8u << 20)
#define LINK_LOW  (2u << 20)
/* Batches read per wake-up and port: fewer epoll round trips under
 * load, bounded so the other descriptors are served. */
#define READ_BATCHES 4

/* ---- ports */

static void watch_sync(struct colo_port_watch *w);

/* A port we cannot watch leaves the proxy deaf on it (or never paused):
 * nothing to go on with, so the proxy exits with an error and its
 * supervisor decides. */
static void watch_failed(struct colo_port_watch *w)
{
	colo_log_warn("cannot watch the %s port: %s: exiting",
		      w == &w->px->client ? "client" : "guest",
		      strerror(errno));
	w->px->failed = true;
	colo_loop_stop(w->px->loop);
}

static void port_ready(void *opaque, uint32_t events)
{
	struct colo_port_watch *w = opaque;
	void *role = w->px->role;

	(void)events;
	for (int i = 0; i < READ_BATCHES && !w->paused; i++) {
		struct colo_rx_batch b;
		int n = colo_port_recv(w->port, &b);

		if (n < 0)
			colo_log_warn("%s port failed",
				      w == &w->px->client ? "client" : "guest");
		if (b.n && w->px->st.on)
			colo_stamps_read(&w->px->st, w->io,
					 colo_loop_now(w->px->loop),
					 colo_port_rx_stamp(w->port));
		for (uint32_t k = 0; k < b.n; k++)
			w->on_frame(role, b.f[k].data, b.f[k].len);
		if (b.n < COLO_PORT_BATCH)
			break;
	}
	watch_sync(w);
}

/* Follows the port's fd (a qemu: port without a peer is watched through
 * its listening socket) and its pause state. */
static void watch_sync(struct colo_port_watch *w)
{
	int fd = colo_port_fd(w->port);
	uint32_t ev;

	if (fd < 0)
		fd = colo_port_listen_fd(w->port);
	ev = w->paused && fd == colo_port_fd(w->port) ? 0 : EPOLLIN;
	if (fd != w->fd) {
		colo_loop_del_fd(w->h);
		w->h = NULL;
		w->fd = fd;
		if (fd >= 0) {
			w->h = colo_loop_add_fd(w->px->loop, fd, ev, port_ready,
						w);
			if (!w->h)
				watch_failed(w);
		}
		return;
	}
	if (w->h && colo_loop_mod_fd(w->h, ev) < 0)
		watch_failed(w);
}

static int watch_open(struct colo_proxy *px, struct colo_port_watch *w,
		      const char *spec, colo_proxy_frame_fn fn, char *err,
		      size_t errlen)
{
	w->px = px;
	w->io = w == &px->client ? COLO_STAMP_CLIENT : COLO_STAMP_GUEST;
	w->fd = -1;
	w->on_frame = fn;
	w->port = colo_port_open(spec, err, errlen);
	if (!w->port)
		return -1;
	w->vnet = colo_port_vnet_hdr_len(w->port);
	watch_sync(w);
	return 0;
}

/* ---- the link */

/* With --stamps: when the link's next bytes reached the kernel, taken
 * before they are read, and the read itself. */
static void link_stamped(struct colo_proxy *px, uint32_t events)
{
	uint64_t k = colo_plink_rx_stamp(&px->link), rx = px->link.frames_rx;
	uint64_t t0;

	/* Bytes waited in the socket: read now. Else TLS may hold records
	 * it read ahead, counted if frames come out of them. */
	if (k)
		colo_stamps_read(&px->st, COLO_STAMP_LINK,
				 colo_loop_now(px->loop), k);
	t0 = colo_stamps_begin(&px->st);
	px->on_link(px->role, events);
	colo_stamps_end(&px->st, COLO_CALL_LINK_READ, t0);
	if (!k && px->link.frames_rx != rx)
		colo_stamps_read(&px->st, COLO_STAMP_LINK,
				 colo_loop_now(px->loop), 0);
}

static void link_ready(void *opaque, uint32_t events)
{
	struct colo_proxy *px = opaque;

	if (colo_plink_up(&px->link) && px->st.on)
		link_stamped(px, events);
	else if (colo_plink_up(&px->link))
		px->on_link(px->role, events);
	/* Come back right after the ports had their turn. */
	if (colo_plink_up(&px->link) && px->link.rx_more)
		colo_timer_arm_in(px->rx_resume, 0);
	if (!px->peer_verified && colo_proxy_link_up(px)) {
		px->peer_verified = true;
		colo_log_info("link: peer verified (%s)",
			      px->creds ? px->o->tls_peer : "no TLS");
		if (px->on_verified)
			px->on_verified(px->role);
	}
}

static void rx_resume(void *opaque)
{
	link_ready(opaque, EPOLLIN);
}

/* Fires when a PING may be due or the peer may have timed out; re-arms
 * for the earlier of the two from the link's own timestamps. */
static void heartbeat(void *opaque)
{
	struct colo_proxy *px = opaque;
	uint64_t now = colo_loop_now(px->loop);
	uint64_t ping = px->o->ping_ms * COLO_NS_PER_MS;
	uint64_t timeout = px->o->peer_timeout_ms * COLO_NS_PER_MS;
	uint64_t next;

	if (!colo_plink_up(&px->link))
		return;
	if (px->connecting) {
		colo_timer_arm_at(px->heartbeat, now + ping);
		return;
	}
	/* A peer gets the peer timeout to finish TLS and send its HELLO:
	 * a silent or trickling stranger cannot hold the link. */
	if (!colo_plink_verified(&px->link) && now - px->link_since > timeout) {
		px->link_lost(px->role, "not verified within the peer timeout");
		return;
	}
	if (!colo_plink_verified(&px->link)) {
		colo_timer_arm_at(px->heartbeat, px->link_since + timeout + 1);
		return;
	}
	if (now - px->link.last_rx_ns > timeout) {
		px->link_lost(px->role, "no data within the peer timeout");
		return;
	}
	if (now - px->link.last_tx_ns >= ping && !colo_plink_pending(&px->link))
		colo_proxy_queue(px, COLO_PLINK_PING, 0, NULL, 0, NULL, 0);
	next = px->link.last_rx_ns + timeout + 1;
	if (px->link.last_tx_ns + ping < next)
		next = px->link.last_tx_ns + ping;
	if (next <= now) /* a PING just queued leaves at this wake-up's end */
		next = now + ping;
	colo_timer_arm_at(px->heartbeat, next);
}

int colo_proxy_link_allowed(const struct colo_proxy *px,
			    const struct colo_sock_addr *a, char *err,
			    size_t errlen)
{
	if (px->creds || px->o->insecure || colo_sock_addr_is_loopback(a))
		return 0;
	snprintf(err, errlen,
		 "%s is not a loopback address: the link needs --tls-creds "
		 "DIR and --tls-peer HOST (or --insecure to run it in the "
		 "clear)",
		 px->o->link);
	return -1;
}

int colo_proxy_link_attach(struct colo_proxy *px, int fd, uint8_t role,
			   bool connecting)
{
	uint64_t now = colo_loop_now(px->loop);
	struct colo_tls *tls = NULL;
	char err[256];

	colo_proxy_link_detach(px);
	if (px->creds) {
		tls = colo_tls_new(px->creds, fd, !connecting, px->o->tls_peer,
				   err, sizeof(err));
		if (!tls) {
			colo_log_warn("link: %s", err);
			close(fd);
			errno = ENOMEM;
			return -1;
		}
	}
	colo_plink_attach(&px->link, fd, role, px->session, now, tls);
	if (px->st.on) {
		int one = 1;

		setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	}
	px->connecting = connecting;
	px->link_since = now;
	px->link_h = colo_loop_add_fd(px->loop, fd, EPOLLIN | EPOLLOUT,
				      link_ready, px);
	if (!px->link_h) {
		colo_plink_detach(&px->link);
		px->connecting = false;
		return -1;
	}
	colo_timer_arm_at(px->heartbeat, now + px->o->ping_ms * COLO_NS_PER_MS);
	return 0;
}

void colo_proxy_link_connected(struct colo_proxy *px)
{
	px->connecting = false;
	px->link_since = px->link.last_rx_ns = colo_loop_now(px->loop);
	colo_timer_arm_at(px->heartbeat, px->link.last_rx_ns);
}

void colo_proxy_link_detach(struct colo_proxy *px)
{
	colo_loop_del_fd(px->link_h);
	px->link_h = NULL;
	colo_plink_detach(&px->link);
	px->connecting = false;
	px->peer_verified = false;
	if (px->heartbeat)
		colo_timer_disarm(px->heartbeat);
}

int colo_proxy_link_common(struct colo_proxy *px,
			   const struct colo_plink_frame *f)
{
	switch (f->type) {
	case COLO_PLINK_PING:
		return colo_proxy_queue(px, COLO_PLINK_PONG, 0, f->payload,
					f->len, NULL, 0);
	case COLO_PLINK_PONG:
		return 0;
	default:
		return -1;
	}
}

int colo_proxy_queue(struct colo_proxy *px, uint8_t type, uint8_t flags,
		     const void *p1, size_t n1, const void *p2, size_t n2)
{
	int rc = colo_plink_queue(&px->link, type, flags, p1, n1, p2, n2);

	if (rc < 0) {
		px->queue_failed++;
		px->link_broken = true;
	}
	return rc;
}

/* ---- once per wake-up */

/* --stamps: output io took frames since t0 if its running count moved:
 * the stages ending there, and the write call's duration. */
static void stamp_out(struct colo_proxy *px, enum colo_stamp_io io,
		      enum colo_stamp_call c, uint64_t count, uint64_t t0)
{
	if (colo_stamps_tx(&px->st, io, count))
		colo_stamps_end(&px->st, c, t0);
}

static void flush_all(void *opaque)
{
	struct colo_proxy *px = opaque;
	struct colo_port_watch *w = px->throttled;
	size_t pending;
	uint64_t t0;

	if (px->link_broken) {
		px->link_broken = false;
		if (colo_plink_up(&px->link))
			px->link_lost(
				px->role,
				"a frame could not be queued on the link");
	}
	/* Flushing also drives the TLS handshake of an unverified link. */
	t0 = colo_stamps_begin(&px->st);
	if (colo_plink_up(&px->link) && !px->connecting &&
	    colo_plink_flush(&px->link, colo_loop_now(px->loop)) < 0)
		px->link_lost(px->role, errno == EACCES ? "TLS handshake failed"
							: strerror(errno));
	if (t0)
		stamp_out(px, COLO_STAMP_LINK, COLO_CALL_LINK_WRITE,
			  px->link.bytes_tx, t0);
	pending = colo_plink_pending(&px->link);
	if (px->link_h &&
	    colo_loop_mod_fd(
		    px->link_h,
		    EPOLLIN | (px->connecting || colo_plink_want_out(&px->link)
				       ? EPOLLOUT
				       : 0)) < 0)
		px->link_lost(px->role, "cannot watch the link");
	t0 = colo_stamps_begin(&px->st);
	colo_port_flush(px->guest.port);
	if (t0)
		stamp_out(px, COLO_STAMP_GUEST, COLO_CALL_GUEST_WRITE,
			  colo_port_stats(px->guest.port)->tx_calls, t0);
	t0 = colo_stamps_begin(&px->st);
	colo_proxy_flush_client(px);
	if (t0) {
		stamp_out(px, COLO_STAMP_CLIENT, COLO_CALL_CLIENT_WRITE,
			  colo_port_stats(px->client.port)->tx_calls, t0);
		colo_stamps_sleep(&px->st);
	}
	if (w && !w->paused && pending > LINK_HIGH) {
		w->paused = true;
		watch_sync(w);
	} else if (w && w->paused && pending < LINK_LOW) {
		w->paused = false;
		watch_sync(w);
		/* Level-triggered epoll reports what queued meanwhile. */
	}
}

/* ---- set-up */

static void on_stop_signal(void *opaque, const struct signalfd_siginfo *si)
{
	struct colo_proxy *px = opaque;

	colo_log_info("signal %u: exiting", si->ssi_signo);
	colo_loop_stop(px->loop);
}

int colo_proxy_open(struct colo_proxy *px, const struct colo_proxy_opts *o,
		    void *role, colo_proxy_frame_fn client_fn,
		    colo_proxy_frame_fn guest_fn, char *err, size_t errlen)
{
	px->o = o;
	px->role = role;
	px->st.on = o->stamps;
	px->client.fd = px->guest.fd = -1;
	px->session = colo_now_ns() ^ ((uint64_t)getpid() << 32);
	if (o->tls_creds) {
		char e[256];

		px->creds = colo_tls_creds_load(o->tls_creds, e, sizeof(e));
		if (!px->creds) {
			snprintf(err, errlen, "--tls-creds: %s", e);
			return -1;
		}
	}
	if (colo_lease_gate_init(&px->lease, o->lease_required) < 0)
		goto oom;
	if (colo_plink_init(&px->link) < 0)
		goto oom;
	px->loop = colo_loop_new();
	if (!px->loop)
		goto oom;
	px->heartbeat = colo_timer_new(px->loop, heartbeat, px);
	px->rx_resume = colo_timer_new(px->loop, rx_resume, px);
	colo_loop_set_busy_poll(px->loop, (uint64_t)o->busy_poll_us * 1000);
	if (!px->heartbeat || !px->rx_resume ||
	    colo_loop_before_sleep(px->loop, flush_all, px) < 0)
		goto oom;
	colo_ignore_sigpipe();
	if (colo_loop_on_signal(px->loop, SIGINT, on_stop_signal, px) < 0 ||
	    colo_loop_on_signal(px->loop, SIGTERM, on_stop_signal, px) < 0) {
		snprintf(err, errlen, "signals: %s", strerror(errno));
		return -1;
	}
	if (watch_open(px, &px->client, o->client_spec, client_fn, err,
		       errlen) < 0 ||
	    watch_open(px, &px->guest, o->guest_spec, guest_fn, err, errlen) <
		    0)
		return -1;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static int quit(void *ctx, struct json_object *req, struct json_object *r,
		char *err, size_t errlen)
{
	(void)req, (void)r, (void)err, (void)errlen;
	colo_loop_stop(((struct colo_proxy *)ctx)->loop);
	return 0;
}

int colo_proxy_control(struct colo_proxy *px,
		       const struct colo_control_cmd *cmds, size_t n, char *err,
		       size_t errlen)
{
	static const struct colo_control_cmd shared[] = {
		{ "lease", colo_proxy_cmd_lease,
		  "deadline_ns: release to the client only before it (0: "
		  "never)" },
		{ "quit", quit, "exit" },
	};
	const size_t ns = sizeof(shared) / sizeof(shared[0]);
	struct colo_control_table t = { px->cmds, n + ns, px->role };
	char e[256];

	if (!px->o->control)
		return 0;
	if (n + ns > COLO_PROXY_MAX_CMDS) {
		snprintf(err, errlen, "too many control commands");
		return -1;
	}
	memcpy(px->cmds, cmds, n * sizeof(*cmds));
	memcpy(px->cmds + n, shared, sizeof(shared));
	px->ctl = colo_control_server_new(px->loop, px->o->control, &t, e,
					  sizeof(e));
	if (!px->ctl)
		snprintf(err, errlen, "--control %s", e);
	return px->ctl ? 0 : -1;
}

int colo_proxy_run(struct colo_proxy *px)
{
	int rc = colo_loop_run(px->loop);

	return px->failed ? -1 : rc;
}

void colo_proxy_close(struct colo_proxy *px)
{
	colo_control_server_free(px->ctl);
	px->ctl = NULL;
	if (px->loop)
		colo_proxy_link_detach(px);
	colo_plink_free(&px->link);
	colo_tls_creds_free(px->creds);
	px->creds = NULL;
	colo_loop_del_fd(px->client.h);
	colo_loop_del_fd(px->guest.h);
	colo_port_close(px->client.port);
	colo_port_close(px->guest.port);
	colo_loop_free(px->loop); /* frees the timers too */
	px->loop = NULL;
	colo_lease_gate_free(&px->lease);
}

/* ---- helpers both roles' handlers use */

uint64_t colo_proxy_conn_id(const struct colo_packet *p, bool from_client)
{
	const uint8_t *ip = from_client ? p->src : p->dst;
	size_t n = p->ipver == 6 ? 16 : 4;
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	uint16_t cport = from_client ? p->sport : p->dport;
	uint16_t gport = from_client ? p->dport : p->sport;

	for (size_t i = 0; i < n; i++)
		h = (h ^ ip[i]) * 1099511628211ull;
	h = (h ^ cport) * 1099511628211ull;
	h = (h ^ gport) * 1099511628211ull;
	return h | 1; /* 0 marks a free table entry */
}

static void add_port_stats(struct json_object *r, const char *name,
			   const struct colo_port *port)
{
	const struct colo_port_stats *ps = colo_port_stats(port);
	struct json_object *o = json_object_new_object();

	colo_control_add_counters(
		o, COLO_COUNTERS({ "rx_frames", ps->rx_frames },
				 { "rx_bytes", ps->rx_bytes },
				 { "rx_gso", ps->rx_gso },
				 { "rx_dropped", ps->rx_dropped },
				 { "tx_frames", ps->tx_frames },
				 { "tx_bytes", ps->tx_bytes },
				 { "tx_gso", ps->tx_gso },
				 { "tx_dropped", ps->tx_dropped }));
	json_object_object_add(r, name, o);
}

void colo_proxy_add_stats(struct json_object *r, const struct colo_proxy *px,
			  const struct colo_counter *c, size_t n)
{
	colo_control_add_counters(r, c, n);
	colo_control_add_counters(
		r, COLO_COUNTERS({ "link_bytes_tx", px->link.bytes_tx },
				 { "link_bytes_rx", px->link.bytes_rx }));
	colo_proxy_add_lease_stats(r, px);
	colo_stamps_add_stats(r, &px->st);
	if (px->o->busy_poll_us)
		colo_control_add_counters(
			r, COLO_COUNTERS({ "busy_polls_empty",
					   colo_loop_busy_empty(px->loop) }));
	add_port_stats(r, "client_port", px->client.port);
	add_port_stats(r, "guest_port", px->guest.port);
}
