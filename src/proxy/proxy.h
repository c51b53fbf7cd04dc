/*
 * proxy.h - the COLO network proxy: the table of contents of src/proxy.
 *
 * The packet path, primary host:
 *   client port -> (filter) -> mirror over the link -> primary guest port
 *   primary guest port -> comparer (primary side) --\
 *   link EGRESS -------> comparer (secondary side) --> release -> client port
 * and secondary host:
 *   link INGRESS -> rewriter (ingress) -> secondary guest port
 *   secondary guest port -> rewriter (egress) -> link EGRESS
 * After failover the secondary wires its guest to its client port through
 * the rewriter; after losing the secondary the primary passes its guest's
 * traffic straight through.
 */
#ifndef COLO_PROXY_H
#define COLO_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>

#include "port.h"

#include "control.h"

struct json_object;

struct colo_proxy_opts {
	const char *client_spec, *guest_spec;
	const char *link;    /* HOST:PORT */
	const char *control; /* UNIX socket path or NULL */
	uint64_t compare_timeout_ms;
	uint32_t max_queue;
	uint64_t ping_ms, peer_timeout_ms;
};

static inline uint64_t colo_proxy_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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

/* A port in the owner's epoll set. Its fd may change (a qemu: port
 * accepting or losing its peer); _sync follows it after every recv. */
struct colo_port_watch {
	struct colo_port *port;
	int fd;
	uint32_t tag;
	bool paused; /* input held back (back-pressure) */
	bool registered_paused;
};

static inline void colo_port_watch_sync(int epfd, struct colo_port_watch *w)
{
	int fd = colo_port_fd(w->port);
	struct epoll_event ev = { .data.u32 = w->tag };

	if (fd < 0)
		fd = colo_port_listen_fd(w->port);
	ev.events = w->paused && fd == colo_port_fd(w->port) ? 0 : EPOLLIN;
	if (fd == w->fd) {
		if (fd >= 0 && w->paused != w->registered_paused)
			epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
		w->registered_paused = w->paused;
		return;
	}
	if (w->fd >= 0)
		epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->fd = fd;
	w->registered_paused = w->paused;
	if (fd >= 0)
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* primary.c APIs: */
int colo_proxy_primary_run(const struct colo_proxy_opts *o);

/* secondary.c APIs: */
int colo_proxy_secondary_run(const struct colo_proxy_opts *o);

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

/* proxy_control.c APIs: the JSON control socket inside the event loop.
 * Requests run on the loop's thread, so handlers need no locking. A
 * client that sends {"cmd":"events"} gets every later event as a line. */
struct colo_pctl;
struct colo_pctl *colo_pctl_new(const char *path,
				const struct colo_control_table *t, char *err,
				size_t errlen);
void colo_pctl_free(struct colo_pctl *c);
/* One fd for the owner's epoll (EPOLLIN); call _run when it is ready. */
int colo_pctl_fd(const struct colo_pctl *c);
void colo_pctl_run(struct colo_pctl *c);
/* Sends {"event": name, ...fields} to every subscriber; takes fields
 * (may be NULL). */
void colo_pctl_emit(struct colo_pctl *c, const char *name,
		    struct json_object *fields);
/* Adds a port's counters to a stats reply as object `name`. */
void colo_pctl_add_port_stats(struct json_object *r, const char *name,
			      const struct colo_port *port);

#endif
