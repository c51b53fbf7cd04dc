/*
 * link.c - framing and buffered socket I/O of the replication link.
 *
 * The decoder parses bytes from the other host, so every length is
 * checked before it is used and a frame is only handed on whole. The
 * socket side reads into one buffer and decodes frames in place (no copy
 * per frame) and appends outgoing frames to one buffer that leaves with
 * as few send() calls as the socket allows.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "link.h"
#include "byteorder.h"
#include "log.h"
#include "tls.h"

static const uint8_t hello_magic[8] = {
	'C', 'O', 'L', 'O', 'L', 'I', 'N', 'K'
};

/* Past this many unsent bytes the owner stops feeding (back-pressure);
 * the buffer itself may grow to OUT_MAX to take what is in flight. */
#define OUT_MAX		  (64u << 20)
#define WRITE_THROUGH_MIN 8192
/* Room for many frames per recv; the unparsed tail moves to the front
 * only when less than one largest frame fits behind it. */
#define IN_ROOM (COLO_PLINK_HDR_LEN + COLO_PLINK_PAYLOAD_MAX)
#define IN_CAP	(2 * 1024 * 1024 + IN_ROOM)
/* Less than one full TLS record (16 KiB) read in a wake-up. */
#define TLS_LONE_MAX 16384
/* TLS: plaintext encrypted into the session's gather buffer before one
 * send() takes it: a wake-up's batch of mirrored frames is one send, not
 * one write() per 16 KiB record; the bound keeps the buffer small and
 * cache-warm when a backlog is queued. */
#define TLS_CHUNK (256 * 1024)

const char *colo_plink_type_name(uint8_t type)
{
	static const char *const names[] = {
		[COLO_PLINK_HELLO] = "hello",
		[COLO_PLINK_INGRESS] = "ingress",
		[COLO_PLINK_EGRESS] = "egress",
		[COLO_PLINK_CONN_META] = "conn-meta",
		[COLO_PLINK_CHECKPOINT_DONE] = "checkpoint-done",
		[COLO_PLINK_FAILOVER] = "failover",
		[COLO_PLINK_PING] = "ping",
		[COLO_PLINK_PONG] = "pong",
		[COLO_PLINK_CUT] = "cut",
	};

	if (type == 0 || type > COLO_PLINK_TYPE_MAX)
		return "unknown";
	return names[type];
}

size_t colo_plink_encode_hdr(uint8_t *out, uint8_t type, uint8_t flags,
			     uint32_t len)
{
	out[0] = type;
	out[1] = flags;
	colo_put_be16(out + 2, 0);
	colo_put_be32(out + 4, len);
	return COLO_PLINK_HDR_LEN;
}

/* The payload length each type allows: [min, max]. */
static bool len_ok(uint8_t type, uint32_t len)
{
	switch (type) {
	case COLO_PLINK_HELLO:
		return len == COLO_PLINK_HELLO_LEN;
	case COLO_PLINK_INGRESS:
	case COLO_PLINK_EGRESS:
		return len >= 14 && len <= COLO_PLINK_PAYLOAD_MAX;
	case COLO_PLINK_CONN_META:
		return len == COLO_PLINK_META_LEN;
	case COLO_PLINK_PING:
	case COLO_PLINK_PONG:
		return len <= 64; /* may carry a timestamp */
	case COLO_PLINK_CUT:
		return len == COLO_PLINK_CUT_LEN ||
		       len == COLO_PLINK_CUT_LEN_V1;
	case COLO_PLINK_CHECKPOINT_DONE:
	case COLO_PLINK_FAILOVER:
		return len == 0;
	default:
		return false;
	}
}

int colo_plink_decode(const uint8_t *buf, size_t len,
		      struct colo_plink_frame *f)
{
	uint32_t plen;

	if (len < COLO_PLINK_HDR_LEN)
		return 0;
	plen = colo_get_be32(buf + 4);
	if (buf[0] == 0 || buf[0] > COLO_PLINK_TYPE_MAX ||
	    colo_get_be16(buf + 2) != 0 || (buf[1] & ~COLO_PLINK_F_KNOWN) ||
	    !len_ok(buf[0], plen))
		return -1;
	if ((buf[1] & COLO_PLINK_F_VNET) &&
	    (buf[0] != COLO_PLINK_INGRESS && buf[0] != COLO_PLINK_EGRESS))
		return -1;
	if ((buf[1] & COLO_PLINK_F_VNET) && plen < 14 + 10)
		return -1;
	if (len - COLO_PLINK_HDR_LEN < plen)
		return 0;
	f->type = buf[0];
	f->flags = buf[1];
	f->len = plen;
	f->payload = buf + COLO_PLINK_HDR_LEN;
	return (int)(COLO_PLINK_HDR_LEN + plen);
}

void colo_plink_hello_encode(uint8_t out[COLO_PLINK_HELLO_LEN],
			     const struct colo_plink_hello *h)
{
	memcpy(out, hello_magic, 8);
	colo_put_be16(out + 8, h->version);
	out[10] = h->role;
	out[11] = h->auth;
	colo_put_be32(out + 12, (uint32_t)(h->session >> 32));
	colo_put_be32(out + 16, (uint32_t)h->session);
}

int colo_plink_hello_decode(const uint8_t *p, size_t len,
			    struct colo_plink_hello *h)
{
	if (len != COLO_PLINK_HELLO_LEN || memcmp(p, hello_magic, 8) != 0)
		return -1;
	h->version = colo_get_be16(p + 8);
	h->role = p[10];
	h->auth = p[11];
	h->session =
		(uint64_t)colo_get_be32(p + 12) << 32 | colo_get_be32(p + 16);
	if (h->role != COLO_PLINK_ROLE_PRIMARY &&
	    h->role != COLO_PLINK_ROLE_SECONDARY)
		return -1;
	return 0;
}

void colo_plink_meta_encode(uint8_t out[COLO_PLINK_META_LEN],
			    const struct colo_conn_meta *m)
{
	const struct colo_flow_key *k = &m->key;

	memcpy(out, k->src, 16);
	memcpy(out + 16, k->dst, 16);
	colo_put_be16(out + 32, k->sport);
	colo_put_be16(out + 34, k->dport);
	colo_put_be16(out + 36, k->vlan[0]);
	colo_put_be16(out + 38, k->vlan[1]);
	out[40] = k->proto;
	out[41] = k->ipver;
	out[42] = k->fragment;
	out[43] = 0;
	colo_put_be32(out + 44, m->isn);
	colo_put_be32(out + 48, m->tsval);
	out[52] = m->has_ts ? 1 : 0;
	memset(out + 53, 0, 3);
}

int colo_plink_meta_decode(const uint8_t *p, size_t len,
			   struct colo_conn_meta *m)
{
	struct colo_flow_key *k = &m->key;

	if (len != COLO_PLINK_META_LEN || p[43] || p[52] > 1 || p[53] ||
	    p[54] || p[55] || (p[41] != 4 && p[41] != 6) || p[42] > 1)
		return -1;
	memset(m, 0, sizeof(*m));
	memcpy(k->src, p, 16);
	memcpy(k->dst, p + 16, 16);
	k->sport = colo_get_be16(p + 32);
	k->dport = colo_get_be16(p + 34);
	k->vlan[0] = colo_get_be16(p + 36);
	k->vlan[1] = colo_get_be16(p + 38);
	k->proto = p[40];
	k->ipver = p[41];
	k->fragment = p[42];
	m->isn = colo_get_be32(p + 44);
	m->tsval = colo_get_be32(p + 48);
	m->has_ts = p[52] == 1;
	return 0;
}

/* ---- the socket */

int colo_plink_init(struct colo_plink *l)
{
	memset(l, 0, sizeof(*l));
	l->fd = -1;
	l->in_cap = IN_CAP;
	l->in = malloc(l->in_cap);
	l->out_cap = 1u << 20;
	l->out = malloc(l->out_cap);
	if (!l->in || !l->out) {
		colo_plink_free(l);
		return -1;
	}
	return 0;
}

void colo_plink_free(struct colo_plink *l)
{
	colo_plink_detach(l);
	free(l->in);
	free(l->out);
	l->in = l->out = NULL;
}

void colo_plink_attach(struct colo_plink *l, int fd, uint8_t role,
		       uint64_t session, uint64_t now_ns, struct colo_tls *tls)
{
	struct colo_plink_hello h = { .version = COLO_PLINK_VERSION,
				      .role = role,
				      .auth = tls ? COLO_PLINK_AUTH_TLS
						  : COLO_PLINK_AUTH_NONE,
				      .session = session };
	uint8_t hello[COLO_PLINK_HELLO_LEN];
	int one = 1, sz = 16 << 20;

	colo_plink_detach(l);
	/* No Nagle, no cork: the link is flushed once per loop wake-up with
	 * all it queued, so Nagle would only delay mirrored frames and
	 * heartbeats by the peer's delayed ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	l->fd = fd;
	l->tls = tls;
	l->tls_want = EPOLLOUT;
	l->role = role;
	l->last_rx_ns = l->last_tx_ns = now_ns;
	colo_plink_hello_encode(hello, &h);
	colo_plink_queue(l, COLO_PLINK_HELLO, 0, hello, sizeof(hello), NULL, 0);
}

void colo_plink_detach(struct colo_plink *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	colo_tls_free(l->tls);
	l->tls = NULL;
	l->hello_rx = false;
	l->in_len = l->in_off = 0;
	l->out_head = l->out_tail = 0;
}

bool colo_plink_want_out(const struct colo_plink *l)
{
	if (l->tls && !colo_tls_established(l->tls))
		return l->tls_want == EPOLLOUT;
	return colo_plink_pending(l) > 0;
}

/* Drives the handshake: 1 established, 0 not yet, -1 failed (errno
 * EACCES, the reason logged). Once established the session gathers its
 * records for tls_flush. */
static int tls_step(struct colo_plink *l)
{
	char err[256];
	int r;

	if (colo_tls_established(l->tls))
		return 1;
	r = colo_tls_handshake(l->tls, &l->tls_want, err, sizeof(err));
	if (r < 0) {
		colo_log_warn("link: %s", err);
		errno = EACCES;
	}
	if (r > 0 && colo_tls_gather(l->tls) < 0)
		return -1;
	return r;
}

size_t colo_plink_pending(const struct colo_plink *l)
{
	size_t n = l->out_tail - l->out_head;

	return l->tls ? n + colo_tls_unsent(l->tls) : n;
}

static int out_reserve(struct colo_plink *l, size_t n)
{
	size_t need;
	uint8_t *nb;

	if (l->out_cap - l->out_tail >= n)
		return 0;
	if (l->out_head > 0) {
		memmove(l->out, l->out + l->out_head,
			l->out_tail - l->out_head);
		l->out_tail -= l->out_head;
		l->out_head = 0;
		if (l->out_cap - l->out_tail >= n)
			return 0;
	}
	need = l->out_tail + n;
	if (need > OUT_MAX)
		return -1;
	while (l->out_cap < need)
		l->out_cap *= 2;
	nb = realloc(l->out, l->out_cap);
	if (!nb)
		return -1;
	l->out = nb;
	return 0;
}

/* Appends bytes that the socket did not take, skipping the first `skip`
 * of the pieces. */
static void spill(struct colo_plink *l, const struct iovec *iov, int n,
		  size_t skip)
{
	for (int i = 0; i < n; i++) {
		size_t k = iov[i].iov_len;

		if (skip >= k) {
			skip -= k;
			continue;
		}
		memcpy(l->out + l->out_tail,
		       (const uint8_t *)iov[i].iov_base + skip, k - skip);
		l->out_tail += k - skip;
		skip = 0;
	}
}

int colo_plink_queue(struct colo_plink *l, uint8_t type, uint8_t flags,
		     const void *p1, size_t n1, const void *p2, size_t n2)
{
	size_t n = n1 + n2, pending;
	uint8_t hdr[COLO_PLINK_HDR_LEN];
	struct iovec iov[3];
	struct msghdr m = { .msg_iov = iov };
	ssize_t w;

	if (l->fd < 0 || n > COLO_PLINK_PAYLOAD_MAX ||
	    out_reserve(l, COLO_PLINK_HDR_LEN + n) < 0)
		return -1;
	colo_plink_encode_hdr(hdr, type, flags, (uint32_t)n);
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ (void *)p1, n1 };
	iov[2] = (struct iovec){ (void *)p2, n2 };
	m.msg_iovlen = 3;
	l->frames_tx++;
	pending = l->out_tail - l->out_head;
	/* Small frames wait for the batch; a large one goes straight to the
	 * socket when nothing is queued before it, saving a copy of every
	 * mirrored or compared byte. What the socket does not take is kept
	 * in order. */
	if (n < WRITE_THROUGH_MIN || pending || l->tls) {
		spill(l, iov, 3, 0);
		return 0;
	}
	w = sendmsg(l->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w < 0)
		w = 0; /* flush finds out whether the link is dead */
	l->bytes_tx += (size_t)w;
	spill(l, iov, 3, (size_t)w);
	return 0;
}

/* 0 when the socket took everything or is full (the rest waits for
 * EPOLLOUT), -1 when it failed. */
static int would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
}

/* TLS: what an earlier flush left gathered goes first (records stay in
 * order); then the queue is encrypted a chunk at a time and each chunk
 * leaves in one send(). A full socket stops before more is encrypted, so
 * the plaintext waits in out (back-pressure sees it). */
static int tls_flush(struct colo_plink *l, uint64_t now_ns)
{
	for (;;) {
		size_t n = l->out_tail - l->out_head;
		ssize_t w;

		if (colo_tls_unflushed(l->tls)) {
			if (colo_tls_flush(l->tls) < 0)
				return would_block();
			l->last_tx_ns = now_ns;
		}
		if (n == 0)
			return 0;
		w = colo_tls_write(l->tls, l->out + l->out_head,
				   n < TLS_CHUNK ? n : TLS_CHUNK);
		if (w < 0)
			return would_block();
		l->out_head += (size_t)w;
		l->bytes_tx += (size_t)w;
	}
}

int colo_plink_flush(struct colo_plink *l, uint64_t now_ns)
{
	int r = 0;

	if (l->fd >= 0 && l->tls) {
		r = tls_step(l);
		if (r <= 0)
			return r;
		r = tls_flush(l, now_ns);
	}
	while (!l->tls && l->fd >= 0 && l->out_head < l->out_tail) {
		ssize_t w = send(l->fd, l->out + l->out_head,
				 l->out_tail - l->out_head,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			r = would_block();
			break;
		}
		l->out_head += (size_t)w;
		l->bytes_tx += (size_t)w;
		l->last_tx_ns = now_ns;
	}
	if (l->out_head == l->out_tail)
		l->out_head = l->out_tail = 0;
	return r;
}

uint64_t colo_plink_rx_stamp(const struct colo_plink *l)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct timespec))];
	} ctl;
	uint8_t byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.b,
			    .msg_controllen = sizeof(ctl.b) };
	struct timespec ts;

	if (l->fd < 0 || recvmsg(l->fd, &m, MSG_PEEK | MSG_DONTWAIT) <= 0)
		return 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_TIMESTAMPNS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(ts))) {
			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			return (uint64_t)ts.tv_sec * 1000000000ull +
			       (uint64_t)ts.tv_nsec;
		}
	return 0;
}

static int parse(struct colo_plink *l, colo_plink_frame_fn fn, void *opaque,
		 char *err, size_t errlen)
{
	size_t off = l->in_off;
	int r = 0;

	while (off < l->in_len) {
		struct colo_plink_frame f;
		int n = colo_plink_decode(l->in + off, l->in_len - off, &f);

		if (n == 0)
			break;
		if (n < 0) {
			snprintf(err, errlen, "protocol error (frame type %u)",
				 l->in[off]);
			r = -1;
			break;
		}
		off += (size_t)n;
		l->frames_rx++;
		if (!l->hello_rx) {
			if (f.type != COLO_PLINK_HELLO ||
			    colo_plink_hello_decode(f.payload, f.len,
						    &l->peer) < 0) {
				snprintf(err, errlen, "no HELLO from peer");
				r = -1;
				break;
			}
			uint8_t auth = l->tls ? COLO_PLINK_AUTH_TLS
					      : COLO_PLINK_AUTH_NONE;

			if (l->peer.version != COLO_PLINK_VERSION ||
			    l->peer.auth != auth) {
				snprintf(err, errlen,
					 "peer speaks version %u auth %u, we "
					 "%u auth %u",
					 l->peer.version, l->peer.auth,
					 COLO_PLINK_VERSION, auth);
				r = -1;
				break;
			}
			if (l->peer.role == l->role) {
				snprintf(err, errlen,
					 "peer says it is the %s too",
					 l->role == COLO_PLINK_ROLE_PRIMARY
						 ? "primary"
						 : "secondary");
				r = -1;
				break;
			}
			l->hello_rx = true;
			continue;
		}
		if (f.type == COLO_PLINK_HELLO) {
			snprintf(err, errlen, "second HELLO");
			r = -1;
			break;
		}
		if (fn(opaque, &f) < 0) {
			snprintf(err, errlen, "%s frame rejected",
				 colo_plink_type_name(f.type));
			r = -1;
			break;
		}
		if (l->fd < 0) /* the callback detached us */
			return -1;
	}
	l->in_off = off;
	if (l->in_off == l->in_len)
		l->in_off = l->in_len = 0;
	return r;
}

int colo_plink_read(struct colo_plink *l, colo_plink_frame_fn fn, void *opaque,
		    uint64_t now_ns, char *err, size_t errlen)
{
	size_t total = 0;
	/* A TLS read returns one record (16 KiB) at most: as many rounds as
	 * move what the plain path's 16 large reads would. */
	int rounds = l->tls ? 128 : 16;

	if (l->fd >= 0 && l->tls) {
		int r = tls_step(l);

		if (r < 0)
			snprintf(err, errlen, "TLS handshake failed");
		if (r <= 0)
			return r;
	}
	/* Bounded so one busy link cannot starve the ports. */
	l->rx_more = false;
	for (int round = 0; round < rounds && l->fd >= 0 && total < IN_CAP;
	     round++) {
		ssize_t n;
		size_t room;

		if (l->in_cap - l->in_len < IN_ROOM) {
			memmove(l->in, l->in + l->in_off,
				l->in_len - l->in_off);
			l->in_len -= l->in_off;
			l->in_off = 0;
		}
		room = l->in_cap - l->in_len;
		n = l->tls ? colo_tls_read(l->tls, l->in + l->in_len, room)
			   : recv(l->fd, l->in + l->in_len, room, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			snprintf(err, errlen, "recv: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			snprintf(err, errlen, "peer closed the link");
			return -1;
		}
		l->in_len += (size_t)n;
		l->bytes_rx += (size_t)n;
		total += (size_t)n;
		l->last_rx_ns = now_ns;
		if (parse(l, fn, opaque, err, errlen) < 0)
			return -1;
		/* A short read drained the socket: the next recv would only
		 * say EAGAIN (one syscall per wake-up saved; epoll is level
		 * triggered, so nothing that arrives later is missed). A TLS
		 * read returns one record at most, so only less than a full
		 * record in this wake-up, with nothing read ahead left in the
		 * session, says the same: a lone small message (an echo's),
		 * whose EAGAIN read sat between its arrival and its delivery.
		 * Streams read on until EAGAIN, as before. */
		if ((size_t)n < room &&
		    (!l->tls ||
		     (total < TLS_LONE_MAX && !colo_tls_pending(l->tls))))
			return 0;
	}
	/* Stopped by the bound, not by EAGAIN: the TLS session may hold
	 * bytes it read ahead, which epoll will not report again. */
	l->rx_more = l->tls && l->fd >= 0;
	return 0;
}
