/*
 * repl_lobby.c - the blk secondary proves several connections at once.
 *
 * Why: the link is one connection, and serving candidates one by one
 * (each with its own deadline) let a stranger who connects and says
 * nothing hold the only place while the real primary waited behind
 * it: 200 idle connections kept a primary out for more than 45 s. Here
 * every connection gets a seat (common/lobby.c picks it, and the
 * stranger who came first gives way when all are taken, a silent one
 * before one that sent bytes, as a primary's TLS client does at once),
 * runs its TLS
 * handshake and sends its HELLO without blocking the others, and is
 * closed at its deadline. The first whose host is the expected peer and
 * whose HELLO matches the pair leaves as the link; nothing is written to
 * any connection before that, and no buffer beyond the HELLO's bytes is
 * held for it.
 */
#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "lobby.h"
#include "log.h"
#include "repl_lobby.h"
#include "sock_spec.h"
#include "tls.h"

#define HELLO_FRAME (COLO_LINK_HDR_LEN + COLO_LINK_HELLO_LEN)

struct guest {
	int fd;
	struct colo_tls *tls; /* NULL: plain, or not yet */
	short want;	      /* POLLIN or POLLOUT */
	uint64_t deadline;
	uint8_t hello[HELLO_FRAME];
	size_t got;
};

struct colo_repl_lobby {
	const struct colo_tls_creds *creds;
	const char *tls_peer;
	uint64_t timeout_ns;
	struct colo_lobby_seat seat[COLO_REPL_LOBBY_SEATS];
	struct guest g[COLO_REPL_LOBBY_SEATS];
	struct colo_repl_lobby_stats st; /* __atomic */
};

static void count(uint64_t *c)
{
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

static void leave(struct colo_repl_lobby *l, int i)
{
	colo_tls_free(l->g[i].tls);
	l->g[i].tls = NULL;
	if (l->g[i].fd >= 0)
		close(l->g[i].fd);
	l->g[i].fd = -1;
	colo_lobby_leave(&l->seat[i]);
}

static void refuse(struct colo_repl_lobby *l, int i, const char *why)
{
	count(&l->st.refused);
	colo_log_warn("blk secondary: connection refused: %s", why);
	leave(l, i);
}

/* Reads what there is of the HELLO frame: 1 whole and matching, 0 more
 * to come, -1 refused (the guest is gone). Reads no byte past it: what
 * follows stays in the socket or the TLS session for the link. */
static int read_hello(struct colo_repl_lobby *l, int i)
{
	struct guest *g = &l->g[i];
	struct colo_link_hello hello;
	struct colo_link_hdr h;
	uint32_t auth = l->creds ? COLO_LINK_AUTH_TLS : COLO_LINK_AUTH_NONE;

	while (g->got < HELLO_FRAME) {
		ssize_t n = g->tls ? colo_tls_read(g->tls, g->hello + g->got,
						   HELLO_FRAME - g->got)
				   : recv(g->fd, g->hello + g->got,
					  HELLO_FRAME - g->got, MSG_DONTWAIT);

		if (n > 0) {
			g->got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			g->want = POLLIN;
			return 0;
		}
		refuse(l, i,
		       n == 0 ? "closed before its HELLO"
			      : "receive failed before the HELLO");
		return -1;
	}
	if (colo_link_decode_hdr(g->hello, &h) < 0 ||
	    h.type != COLO_LINK_HELLO ||
	    colo_link_decode_hello(g->hello + COLO_LINK_HDR_LEN, h.len,
				   &hello) < 0) {
		refuse(l, i, "first frame is not a valid HELLO");
		return -1;
	}
	if (hello.version != COLO_LINK_VERSION || hello.auth != auth) {
		refuse(l, i, "HELLO of another version or authentication");
		return -1;
	}
	return 1;
}

/* One step of guest i: its TLS handshake, then its HELLO. 1: it joins. */
static int step(struct colo_repl_lobby *l, int i, uint64_t now)
{
	struct guest *g = &l->g[i];
	char err[256];

	if (g->tls && !l->seat[i].proven) {
		uint32_t want = EPOLLIN;
		int r = colo_tls_handshake(g->tls, &want, err, sizeof(err));

		if (r < 0) {
			refuse(l, i, err);
			return 0;
		}
		if (r == 0) {
			g->want = want == EPOLLOUT ? POLLOUT : POLLIN;
			return 0;
		}
		/* The host is proven: it never gives way to a newcomer, and
		 * its HELLO has a deadline of its own. */
		l->seat[i].proven = true;
		g->deadline = now + l->timeout_ns;
		colo_log_info("blk secondary: TLS peer verified as %s",
			      l->tls_peer);
	}
	return read_hello(l, i) > 0;
}

static void expire(struct colo_repl_lobby *l, int i)
{
	if (l->g[i].tls && !l->seat[i].proven) {
		refuse(l, i, "TLS handshake not finished in time");
		return;
	}
	count(&l->st.hello_timeouts);
	colo_log_warn("blk secondary: no HELLO within %llu ms: dropping the "
		      "connection",
		      (unsigned long long)(l->timeout_ns / COLO_NS_PER_MS));
	leave(l, i);
}

/* Seats the connection waiting on listen_fd, if any. */
static void admit(struct colo_repl_lobby *l, int listen_fd, uint64_t now)
{
	char err[256];
	bool evict;
	int fd = colo_sock_accept(listen_fd), i;

	if (fd < 0)
		return;
	i = colo_lobby_pick(l->seat, COLO_REPL_LOBBY_SEATS, &evict);
	if (i < 0) {
		count(&l->st.refused);
		colo_log_warn("blk secondary: refusing a connection: %d "
			      "proven hosts wait for their HELLO",
			      COLO_REPL_LOBBY_SEATS);
		close(fd);
		return;
	}
	if (evict) {
		count(&l->st.evicted);
		colo_log_warn("blk secondary: an unproven connection gives "
			      "way to a newer one (lobby full)");
		leave(l, i);
	}
	colo_lobby_take(&l->seat[i], now, false);
	l->g[i] = (struct guest){ .fd = fd,
				  .want = POLLIN,
				  .deadline = now + l->timeout_ns };
	if (l->creds) {
		l->g[i].tls = colo_tls_new(l->creds, fd, true, l->tls_peer, err,
					   sizeof(err));
		if (!l->g[i].tls)
			refuse(l, i, err);
	}
}

/* Hands guest i over as the link and closes everyone else: one primary
 * at a time, and whoever else waits has lost the race. */
static void join(struct colo_repl_lobby *l, int i, struct colo_repl_joiner *j)
{
	struct colo_link_hdr h;

	colo_link_decode_hdr(l->g[i].hello, &h);
	colo_link_decode_hello(l->g[i].hello + COLO_LINK_HDR_LEN, h.len,
			       &j->hello);
	j->fd = l->g[i].fd;
	j->tls = l->g[i].tls;
	l->g[i].fd = -1;
	l->g[i].tls = NULL;
	colo_lobby_leave(&l->seat[i]);
	for (int k = 0; k < COLO_REPL_LOBBY_SEATS; k++)
		if (l->seat[k].taken)
			refuse(l, k, "another primary joined");
}

int colo_repl_lobby_wait(struct colo_repl_lobby *l, int listen_fd, int wake_fd,
			 struct colo_repl_joiner *j)
{
	for (;;) {
		struct pollfd p[2 + COLO_REPL_LOBBY_SEATS];
		int at[2 + COLO_REPL_LOBBY_SEATS];
		uint64_t now = colo_now_ns(), next = UINT64_MAX;
		int n = 2, ms = -1;

		p[0] = (struct pollfd){ .fd = wake_fd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
		for (int i = 0; i < COLO_REPL_LOBBY_SEATS; i++) {
			if (!l->seat[i].taken)
				continue;
			at[n] = i;
			p[n++] = (struct pollfd){ .fd = l->g[i].fd,
						  .events = l->g[i].want };
			if (l->g[i].deadline < next)
				next = l->g[i].deadline;
		}
		if (next != UINT64_MAX)
			ms = next <= now
				     ? 0
				     : (int)((next - now) / COLO_NS_PER_MS) + 1;
		if (poll(p, (nfds_t)n, ms) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p[0].revents) {
			char c[16];

			if (read(wake_fd, c, sizeof(c)) < 0)
				(void)0; /* woken all the same */
			return 0;
		}
		now = colo_now_ns();
		/* Those already seated go first: a newcomer must not push
		 * out a connection whose proof has just arrived. */
		for (int k = 2; k < n; k++) {
			int i = at[k];

			if (!l->seat[i].taken)
				continue;
			if (p[k].revents & POLLIN)
				l->seat[i].heard = true;
			if (p[k].revents && step(l, i, now)) {
				join(l, i, j);
				return 1;
			}
			if (l->seat[i].taken && now >= l->g[i].deadline)
				expire(l, i);
		}
		if (p[1].revents & POLLIN)
			admit(l, listen_fd, now);
	}
}

struct colo_repl_lobby *colo_repl_lobby_new(const struct colo_tls_creds *creds,
					    const char *tls_peer,
					    unsigned int timeout_ms)
{
	struct colo_repl_lobby *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->creds = creds;
	l->tls_peer = tls_peer;
	l->timeout_ns = (uint64_t)timeout_ms * COLO_NS_PER_MS;
	for (int i = 0; i < COLO_REPL_LOBBY_SEATS; i++)
		l->g[i].fd = -1;
	return l;
}

void colo_repl_lobby_get_stats(struct colo_repl_lobby *l,
			       struct colo_repl_lobby_stats *st)
{
	st->hello_timeouts =
		__atomic_load_n(&l->st.hello_timeouts, __ATOMIC_RELAXED);
	st->refused = __atomic_load_n(&l->st.refused, __ATOMIC_RELAXED);
	st->evicted = __atomic_load_n(&l->st.evicted, __ATOMIC_RELAXED);
}

void colo_repl_lobby_free(struct colo_repl_lobby *l)
{
	if (!l)
		return;
	for (int i = 0; i < COLO_REPL_LOBBY_SEATS; i++)
		if (l->seat[i].taken)
			leave(l, i);
	free(l);
}
