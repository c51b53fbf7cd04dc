/*
 * proxy.h - the COLO network proxy: the table of contents of src/proxy.
 *
 * The seed's split, one file per part. Primary host:
 *   client port -> mirror.c -> link INGRESS (to the secondary)
 *                           \-> primary guest port
 *   primary guest port -> primary.c -> comparer (primary side) --\
 *   link EGRESS -> redirector.c -> comparer (secondary side) -----> release
 *                                                    -> client port
 * Secondary host:
 *   link INGRESS -> secondary.c -> rewriter (ingress) -> secondary guest
 *   secondary guest -> redirector.c -> rewriter (egress) -> link EGRESS
 * After failover the secondary wires its guest to its client port through
 * the rewriter (secondary.c, replay.c, announce.c); after losing the
 * secondary the primary passes its guest's traffic straight through.
 *
 * Both roles run on one colo_loop (role.c): ports, the link and the
 * control socket are descriptors of the loop, heartbeats and timeouts are
 * its timers, and everything queued during a wake-up is flushed once,
 * before the loop sleeps again.
 */
#ifndef COLO_PROXY_H
#define COLO_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comparer.h"
#include "ingress_hold.h"
#include "control.h"
#include "evloop.h"
#include "link.h"
#include "port.h"
#include "sock_spec.h"
#include "stamps.h"
#include "tcp_rewriter.h"

struct json_object;
struct colo_packet;

struct colo_proxy_opts {
	const char *client_spec, *guest_spec;
	const char *link;    /* HOST:PORT */
	const char *control; /* UNIX socket path or NULL */
	uint64_t compare_timeout_ms;
	uint32_t max_queue;
	uint64_t ping_ms, peer_timeout_ms;
	/* The link's protection: TLS with the credentials in tls_creds
	 * (QEMU's tls-creds-x509 layout) and the peer host tls_peer must
	 * prove; without, only loopback unless insecure. */
	const char *tls_creds, *tls_peer;
	bool insecure;
	bool lease_required;   /* release nothing before the first lease */
	bool stamps;	       /* per-stage latency stamps (stamps.h) */
	uint32_t busy_poll_us; /* evloop busy polling after work; 0 off */
};

/* The lease the client port obeys (lease.c). */
struct colo_lease_gate {
	bool active; /* --lease-required, or a lease command was seen */
	uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0: no lease */
	uint64_t floor_ns;    /* valid only with a deadline above this */
	uint8_t *hold;	      /* held output, in order */
	size_t hold_len;
	uint64_t leases, held, held_now, released_late, dropped, dropped_now;
};

/* Frames for the guest: its unicast MAC, broadcast and multicast. Until
 * the guest has spoken (its MAC is learned from its egress) every frame
 * is, or a client with a warm neighbour cache could never reach it. */
static inline bool colo_proxy_for_guest(const uint8_t *eth, size_t len,
					const uint8_t mac[6], bool mac_known)
{
	if (len < 14)
		return false;
	if ((eth[0] & 1) || !mac_known)
		return true;
	return __builtin_memcmp(eth, mac, 6) == 0;
}

/* role.c APIs: what both roles run on. */

/* Called for every frame a port yields; f may be modified in place. */
typedef void (*colo_proxy_frame_fn)(void *role, uint8_t *f, size_t len);

/* A port on the loop. Its fd may change (a qemu: port accepting or losing
 * its peer); the watch follows it after every read. */
struct colo_port_watch {
	struct colo_proxy *px;
	struct colo_port *port;
	enum colo_stamp_io io; /* its name in the stamps */
	size_t vnet;	       /* vnet header length of its frames */
	colo_proxy_frame_fn on_frame;
	struct colo_loop_fd *h;
	int fd;
	bool paused; /* input held back while the link backs up */
};

/* One role's runtime; the first member of struct colo_primary and struct
 * colo_secondary, so a control handler's ctx is also a colo_proxy. */
struct colo_tls_creds;
struct colo_sock_addr;

#define COLO_PROXY_MAX_CMDS 12

struct colo_proxy {
	const struct colo_proxy_opts *o;
	struct colo_tls_creds *creds; /* NULL: the link runs in the clear */
	bool peer_verified;	      /* logged once per connection */
	void *role;
	struct colo_loop *loop;
	struct colo_port_watch client, guest;
	struct colo_plink link;
	struct colo_loop_fd *link_h;
	bool connecting;     /* the secondary's connect is in progress */
	uint64_t link_since; /* attach (or connect done): the verify clock */
	/* The port whose input waits while the link's output is above its
	 * high mark (TCP senders slow down instead of us buffering). */
	struct colo_port_watch *throttled;
	struct colo_timer *heartbeat;
	struct colo_timer *rx_resume; /* TLS input left in the session */
	struct colo_control_server *ctl;
	struct colo_control_cmd cmds[COLO_PROXY_MAX_CMDS];
	uint64_t session;
	struct colo_lease_gate lease;
	/* A frame could not be queued on the link: the peer's state would
	 * silently diverge, so the link is dropped at the end of the
	 * wake-up (never inside the link's own read callback). */
	bool link_broken;
	uint64_t queue_failed;
	bool failed;	       /* a descriptor could not be watched: exit 1 */
	struct colo_stamps st; /* --stamps: where frames wait */
	/* Set by the role: the link's fd is ready; the link is gone. */
	colo_io_fn on_link;
	void (*link_lost)(void *role, const char *why);
	/* Optional: the peer just became verified. */
	void (*on_verified)(void *role);
};

/* Loop, signals (SIGINT/SIGTERM stop it), ports and the flush hook. 0, or
 * -1 with a reason in err. */
int colo_proxy_open(struct colo_proxy *px, const struct colo_proxy_opts *o,
		    void *role, colo_proxy_frame_fn client_fn,
		    colo_proxy_frame_fn guest_fn, char *err, size_t errlen);
/* The control socket (if --control) with the role's commands and the
 * ones both roles share (lease, quit); 0, or -1 with a reason in err. */
int colo_proxy_control(struct colo_proxy *px,
		       const struct colo_control_cmd *cmds, size_t n, char *err,
		       size_t errlen);
int colo_proxy_run(struct colo_proxy *px);
void colo_proxy_close(struct colo_proxy *px);
/* The safe default: a link address off loopback needs TLS (or
 * --insecure). 0, or -1 with the reason in err. */
int colo_proxy_link_allowed(const struct colo_proxy *px,
			    const struct colo_sock_addr *a, char *err,
			    size_t errlen);
/* The link takes fd (connected, or connecting when connecting; the
 * connecting side is the TLS client). */
int colo_proxy_link_attach(struct colo_proxy *px, int fd, uint8_t role,
			   bool connecting);
void colo_proxy_link_detach(struct colo_proxy *px);
/* colo_plink_queue, and on failure: counted, the link dropped at the end
 * of this wake-up. Returns colo_plink_queue's result. */
int colo_proxy_queue(struct colo_proxy *px, uint8_t type, uint8_t flags,
		     const void *p1, size_t n1, const void *p2, size_t n2);
/* Up = the peer is verified (TLS host and HELLO): nothing is mirrored,
 * compared or applied before. */
static inline bool colo_proxy_link_up(const struct colo_proxy *px)
{
	return colo_plink_verified(&px->link) && !px->connecting;
}
/* The connect finished: the heartbeat starts. */
void colo_proxy_link_connected(struct colo_proxy *px);
/* Answers a PING; 0 for other kinds it handles (PONG), -1 otherwise. */
int colo_proxy_link_common(struct colo_proxy *px,
			   const struct colo_plink_frame *f);
/* One id per TCP/UDP connection, the same from either direction (the
 * client's address and port and the guest's port); never 0. */
uint64_t colo_proxy_conn_id(const struct colo_packet *p, bool from_client);
/* A role's "stats" reply: its counters, then the link's, the lease's and
 * both ports'. */
void colo_proxy_add_stats(struct json_object *r, const struct colo_proxy *px,
			  const struct colo_counter *c, size_t n);

/* lease.c APIs: every frame to the client port goes through these. */
int colo_lease_gate_init(struct colo_lease_gate *g, bool required);
void colo_lease_gate_free(struct colo_lease_gate *g);
/* The link to the peer is lost: hold until the lease is renewed. */
void colo_lease_gate_link_lost(struct colo_lease_gate *g);
/* A secondary connected: the lease alone rules again. */
void colo_lease_gate_link_up(struct colo_lease_gate *g);
/* To the client port if the lease allows it now, else held (counted). */
void colo_proxy_to_client(struct colo_proxy *px, const uint8_t *f, size_t len,
			  size_t v);
/* Flushes the client port if the lease allows it now. */
void colo_proxy_flush_client(struct colo_proxy *px);
/* {"cmd":"lease","deadline_ns":N}: both roles. */
int colo_proxy_cmd_lease(void *ctx, struct json_object *req,
			 struct json_object *r, char *err, size_t errlen);
void colo_proxy_add_lease_stats(struct json_object *r,
				const struct colo_proxy *px);

/* announce.c APIs: */
#define COLO_ANNOUNCE_ADDRS 8
struct colo_guest_addrs {
	uint8_t mac[6];
	bool mac_known;
	uint32_t n4, n6;
	uint8_t ip4[COLO_ANNOUNCE_ADDRS][4];
	uint8_t ip6[COLO_ANNOUNCE_ADDRS][16];
};
/* Learns the guest's MAC and source addresses from one egress frame. */
void colo_guest_addrs_learn(struct colo_guest_addrs *a, const uint8_t *eth,
			    size_t len);
/* Gratuitous ARP for an IPv4 address; returns the frame length (42). */
size_t colo_announce_garp(uint8_t *out, const uint8_t mac[6],
			  const uint8_t ip[4]);
/* Unsolicited neighbour advertisement for an IPv6 address (86 bytes). */
size_t colo_announce_una(uint8_t *out, const uint8_t mac[6],
			 const uint8_t ip[16]);

/* The secondary guest's address resolution. Its ARP requests and
 * neighbour solicitations go to the comparer, which drops the secondary's
 * non-IP output, and the client only answers the primary guest's: a
 * guest whose cache went cold (or that asks at another moment than the
 * primary) would never reach the client. So the secondary proxy learns
 * (IP, MAC) pairs from the mirrored ingress and answers its guest itself. */
#define COLO_NEIGH_MAX 64
struct colo_neigh {
	uint32_t n, next;
	struct {
		uint8_t ip[16]; /* IPv4 in the first 4 bytes */
		uint8_t ipver;
		uint8_t mac[6];
	} e[COLO_NEIGH_MAX];
};
/* Learns the sender of one ingress frame. */
void colo_neigh_learn(struct colo_neigh *nb, const uint8_t *eth, size_t len);
/* If eth is an ARP request or neighbour solicitation for a known
 * address, writes the answer to out (128 bytes) and returns its length;
 * else 0. */
size_t colo_neigh_answer(const struct colo_neigh *nb, const uint8_t *eth,
			 size_t len, uint8_t *out);

/* primary.c APIs: */
#define COLO_PRIMARY_WINDOWS 4096

struct colo_primary {
	struct colo_proxy px;
	struct colo_comparer *cmp;
	int listen_fd;
	struct colo_loop_fd *listen_h;
	struct colo_timer *housekeeping; /* comparer timeouts, reclaim */
	uint64_t housekeeping_at, timeout_step;
	uint8_t guest_mac[6];
	bool guest_mac_known;
	/* failover command: FAILOVER sent, output silent until the
	 * secondary echoes it (handed_over) or the link drops first (we
	 * serve again: the secondary never took over). */
	bool handing_over;
	bool handed_over; /* the secondary confirmed: it owns the client */
	uint64_t client_frames, client_ignored, mirrored, guest_frames;
	uint64_t passthrough, released, conn_meta, ckpt_requests;
	uint64_t peer_connects, peer_losses, mirror_failed, clamped;
	uint64_t peer_refused; /* connections refused: a verified peer is up */
	uint64_t silent; /* output dropped while handing over or handed over */
	uint64_t failovers_unconfirmed;
	/* The secondary guest's latest receive window per connection. */
	struct {
		uint64_t conn;
		uint16_t win;
	} win[COLO_PRIMARY_WINDOWS];
	uint8_t *scratch; /* a released frame with its window clamped */
	/* For the guest, cut to done; a hold whose checkpoint never ends
	 * (its colo vm died mid-cut) is given up at its deadline (loop
	 * clock), so the client is served on. */
	struct colo_ingress_hold hold;
};

static inline bool colo_primary_protected(const struct colo_primary *p)
{
	return colo_proxy_link_up(&p->px) && !p->handed_over &&
	       !p->handing_over;
}
int colo_proxy_primary_run(const struct colo_proxy_opts *o);
/* Remembers the secondary guest's receive window from one of its frames:
 * a released frame never advertises more (the client must not send what
 * the secondary guest would drop). */
void colo_primary_note_window(struct colo_primary *p, const uint8_t *f,
			      size_t len, size_t v);

/* mirror.c APIs: client ingress for the guest goes to the secondary
 * (while protected) and then to the primary guest. */
void colo_mirror_client_frame(void *primary, uint8_t *f, size_t len);

/* replay.c APIs: the secondary's copy of its guest's unacknowledged TCP
 * output, resent at once on failover. */
struct colo_replay;
struct colo_replay *colo_replay_new(void);
void colo_replay_free(struct colo_replay *t);
/* A client frame (mirrored ingress): its ACK retires kept segments. */
void colo_replay_ack(struct colo_replay *t, const uint8_t *f, size_t len,
		     size_t v);
/* A guest frame headed for the client (primary sequence space). */
void colo_replay_keep(struct colo_replay *t, const uint8_t *f, size_t len,
		      size_t v);
/* Sends every kept segment the client has not acknowledged to port;
 * returns how many. */
uint64_t colo_replay_send(struct colo_replay *t, struct colo_proxy *px);
/* Segments that could not be kept (no memory for a copy). */
uint64_t colo_replay_lost(const struct colo_replay *t);

/* secondary.c APIs: */
#define COLO_WAIT_FRAMES 1024

struct colo_secondary {
	struct colo_proxy px;
	struct colo_rewriter *rw;
	struct colo_sock_addr link_addr;
	struct colo_timer *retry, *housekeeping, *announce;
	struct colo_guest_addrs addrs;
	struct colo_neigh neigh;
	bool failed_over, peer_seen;
	uint64_t failover_at;
	uint32_t announced;
	struct colo_replay *replay;
	uint64_t replayed, replay_lost;
	/* Egress waiting for its connection's primary ISN (a CONN_META
	 * racing the guest's SYN/ACK): a bounded FIFO. */
	struct {
		uint8_t *frame;
		uint32_t len;
		uint8_t vnet;
	} wq[COLO_WAIT_FRAMES];
	uint32_t wq_head, wq_n;
	size_t wq_bytes;
	uint64_t ingress, egress, client_in, client_dropped, to_client;
	uint64_t waited, wait_dropped, announces, peer_losses, meta;
	uint64_t neigh_answers, ingress_bad_vnet;
	struct colo_ingress_hold hold; /* ingress after the cut, to done */
	struct colo_timer *hold_end;   /* the hold's or drop's deadline */
	uint64_t handovers;	       /* guest port passed to a new VM */
};
/* cut.c APIs: the checkpoint's ingress cut (ingress_hold.c holds). */
/* A command's "seq" (the checkpoint's number), 0 when absent. */
uint64_t colo_cut_req_seq(struct json_object *req);
/* A link CUT's checkpoint number and how long its hold may last; -1 when
 * malformed. */
int colo_cut_link_decode(const struct colo_plink_frame *f, uint64_t *seq,
			 uint64_t *wait_ns);
void colo_cut_link_encode(uint8_t b[COLO_PLINK_CUT_LEN], uint64_t seq,
			  uint32_t hold_ms);
/* A hold or drop past its deadline lets the guest's ingress go (fn),
 * logged and counted (h->expired). */
void colo_cut_expire(struct colo_ingress_hold *h, uint64_t now, colo_hold_fn fn,
		     void *ctx);
/* Primary: checkpoint-cut {seq}: hold, CUT on the link, then wait a
 * little for the VM to read its socket ("drained"; repeat until true). */
int colo_primary_cmd_cut(void *ctx, struct json_object *req,
			 struct json_object *r, char *err, size_t errlen);
/* Primary: checkpoint-resume {seq}: the VM runs, the held frames go. */
int colo_primary_cmd_resume(void *ctx, struct json_object *req,
			    struct json_object *r, char *err, size_t errlen);
void colo_primary_hold_to_guest(void *ctx, uint8_t *f, size_t len, size_t v);
int colo_proxy_secondary_run(const struct colo_proxy_opts *o);
/* Where the secondary guest's egress goes: over the link, or to the
 * client after failover. */
void colo_secondary_out(struct colo_secondary *s, const uint8_t *f, size_t len,
			size_t v);

/* redirector.c APIs: the secondary guest's output to the comparer. */
/* Primary: a link EGRESS frame into the comparer's secondary side. */
void colo_redirector_to_comparer(struct colo_primary *p,
				 const struct colo_plink_frame *f);
/* Secondary: a guest frame through the rewriter onto the link. */
void colo_redirector_guest_frame(void *secondary, uint8_t *f, size_t len);
/* Secondary: frames that waited for their connection's primary ISN go
 * again, in order (after a CONN_META, and at failover). */
void colo_redirector_retry(struct colo_secondary *s);
void colo_redirector_free(struct colo_secondary *s);

#endif
