/*
 * frame_link_io.c - blocking frame I/O with deadlines on the frame link.
 * A checkpoint is one conversation with both VMs stopped, so waiting here
 * is the point; the deadline is what turns a dead peer into an aborted
 * checkpoint instead of a hang.
 *
 * With credentials the same frames travel inside TLS 1.3 (common/tls.c):
 * the session is set up before the first frame, and every send and
 * receive below goes through it, so no frame is read or written in the
 * clear once TLS is on.
 */
#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/clock.h"
#include "common/tls.h"
#include "frame_link.h"

#define RBUF_CAP (2 * (COLO_FLINK_HDR_LEN + COLO_FLINK_PAYLOAD_MAX))

struct colo_flink {
	int fd;
	struct colo_tls *tls; /* NULL: plain TCP (loopback or --insecure) */
	uint8_t *rbuf;
	size_t rstart, rlen; /* unread bytes: rbuf[rstart, rstart + rlen) */
	uint8_t *stage;	     /* TLS: pieces of a sendv gathered (STAGE_CAP) */
	uint64_t last_rx, last_tx;	/* colo_now_ns of the last bytes */
	struct colo_flink_watch *watch; /* NULL: no heartbeat */
};

/* A TLS write of many small pieces would make a record per piece (an
 * 8-byte offset, a 4 KiB page): stage them into writes of this size. */
#define STAGE_CAP (64 * 1024)

struct colo_flink *colo_flink_new(int fd)
{
	struct colo_flink *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->rbuf = malloc(RBUF_CAP);
	if (!l->rbuf) {
		free(l);
		return NULL;
	}
	l->fd = fd;
	l->last_rx = l->last_tx = colo_now_ns();
	return l;
}

uint64_t colo_flink_last_rx(const struct colo_flink *l)
{
	return l->last_rx;
}

uint64_t colo_flink_last_tx(const struct colo_flink *l)
{
	return l->last_tx;
}

struct colo_flink_watch *colo_flink_get_watch(const struct colo_flink *l)
{
	return l->watch;
}

void colo_flink_set_watch(struct colo_flink *l, struct colo_flink_watch *w)
{
	l->watch = w;
}

void colo_flink_free(struct colo_flink *l)
{
	if (!l)
		return;
	colo_flink_watch_free(l->watch);
	colo_tls_free(l->tls);
	close(l->fd);
	free(l->rbuf);
	free(l->stage);
	free(l);
}

int colo_flink_fd(const struct colo_flink *l)
{
	return l->fd;
}

static int wait_fd(int fd, short ev, uint64_t deadline)
{
	uint64_t now = colo_now_ns();
	struct pollfd p = { .fd = fd, .events = ev };
	int r;

	if (now >= deadline)
		return 0;
	r = poll(&p, 1, (int)((deadline - now) / COLO_NS_PER_MS + 1));
	if (r < 0 && errno == EINTR)
		return 1; /* try again; the deadline still holds */
	return r;
}

int colo_flink_tls_begin(struct colo_flink *l, const struct colo_tls_creds *c,
			 bool server, const char *peer_host, char *err,
			 size_t errlen)
{
	int one = 1;

	/* A small control frame's records would wait for the peer's ACK of
	 * the last segment under Nagle (measured before records were
	 * gathered per frame: a 24 MB checkpoint's RAM step went from 100
	 * ms to seconds). Plain sends are large enough not to. */
	(void)setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	l->tls = colo_tls_new(c, l->fd, server, peer_host, err, errlen);
	return l->tls ? 0 : -1;
}

int colo_flink_tls_step(struct colo_flink *l, uint32_t *want, char *err,
			size_t errlen)
{
	int r;

	if (!l->tls)
		return 1;
	r = colo_tls_handshake(l->tls, want, err, errlen);
	/* From here records are gathered and a frame leaves in one send()
	 * (common/tls_gather.c): send_all and send_gathered flush. */
	if (r > 0 && colo_tls_gather(l->tls) < 0) {
		snprintf(err, errlen, "TLS: out of memory");
		return -1;
	}
	return r;
}

int colo_flink_tls_handshake(struct colo_flink *l, uint64_t deadline_ns,
			     char *err, size_t errlen)
{
	for (;;) {
		uint32_t want = EPOLLIN;
		int r = colo_flink_tls_step(l, &want, err, errlen);

		if (r != 0)
			return r > 0 ? 0 : -1;
		r = wait_fd(l->fd, want == EPOLLOUT ? POLLOUT : POLLIN,
			    deadline_ns);
		if (r <= 0) {
			snprintf(err, errlen, "TLS handshake: %s",
				 r == 0 ? "timed out" : strerror(errno));
			return -1;
		}
	}
}

bool colo_flink_secure(const struct colo_flink *l)
{
	return l->tls != NULL;
}

static ssize_t link_recv(struct colo_flink *l, uint8_t *p, size_t n)
{
	if (l->tls)
		return colo_tls_read(l->tls, p, n);
	return recv(l->fd, p, n, MSG_DONTWAIT);
}

/* Sends the records gathered in the TLS session by the deadline. */
static int flush_all(struct colo_flink *l, uint64_t deadline)
{
	while (colo_tls_flush(l->tls) < 0) {
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		if (wait_fd(l->fd, POLLOUT, deadline) <= 0)
			return -1;
	}
	return 0;
}

/* Under TLS: encrypts n bytes into the session's gathered records,
 * sent later by flush_all; plain: sends them by the deadline. */
static int put(struct colo_flink *l, const uint8_t *p, size_t n,
	       uint64_t deadline)
{
	if (l->tls)
		return colo_tls_write(l->tls, p, n) == (ssize_t)n ? 0 : -1;
	while (n) {
		ssize_t w = send(l->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(l->fd, POLLOUT, deadline) <= 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

/* The end of every frame sent: 0 with the time noted, or -1. */
static int sent(struct colo_flink *l, int r)
{
	if (r == 0)
		l->last_tx = colo_now_ns();
	return r;
}

static int send_all(struct colo_flink *l, const uint8_t *p, size_t n,
		    uint64_t deadline)
{
	if (put(l, p, n, deadline) < 0)
		return -1;
	return sent(l, l->tls ? flush_all(l, deadline) : 0);
}

int colo_flink_send(struct colo_flink *l, uint8_t type, const void *payload,
		    uint32_t len, uint64_t deadline_ns)
{
	uint8_t hdr[COLO_FLINK_HDR_LEN] = { type };

	colo_put_be32(hdr + 4, len);
	if (put(l, hdr, sizeof(hdr), deadline_ns) < 0 ||
	    (len && put(l, payload, len, deadline_ns) < 0))
		return -1;
	return sent(l, l->tls ? flush_all(l, deadline_ns) : 0);
}

/* sendv inside TLS: the pieces copied into the link's stage buffer and
 * encrypted in STAGE_CAP chunks (full records, not one per 8-byte page
 * offset; sendmsg would bypass the session), the frame's records then
 * sent together. */
static int send_gathered(struct colo_flink *l, const struct iovec *v, int n,
			 uint64_t deadline)
{
	size_t fill = 0;

	if (!l->stage && !(l->stage = malloc(STAGE_CAP)))
		return -1;
	for (int i = 0; i < n; i++) {
		const uint8_t *p = v[i].iov_base;
		size_t left = v[i].iov_len;

		while (left) {
			size_t k = STAGE_CAP - fill < left ? STAGE_CAP - fill
							   : left;

			memcpy(l->stage + fill, p, k);
			fill += k;
			p += k;
			left -= k;
			if (fill == STAGE_CAP) {
				if (put(l, l->stage, fill, deadline) < 0)
					return -1;
				fill = 0;
			}
		}
	}
	if (fill && put(l, l->stage, fill, deadline) < 0)
		return -1;
	return flush_all(l, deadline);
}

int colo_flink_sendv(struct colo_flink *l, uint8_t type,
		     const struct iovec *iov, int niov, uint64_t deadline_ns)
{
	uint8_t hdr[COLO_FLINK_HDR_LEN] = { type };
	struct iovec v[COLO_FLINK_IOV_MAX + 1];
	struct msghdr mh = { .msg_iov = v };
	uint64_t len = 0;
	int first = 0;

	if (niov < 0 || niov > (int)COLO_FLINK_IOV_MAX)
		return -1;
	v[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(hdr) };
	for (int i = 0; i < niov; i++) {
		v[i + 1] = iov[i];
		len += iov[i].iov_len;
	}
	if (len > COLO_FLINK_PAYLOAD_MAX)
		return -1;
	colo_put_be32(hdr + 4, (uint32_t)len);
	niov++;
	if (l->tls)
		return sent(l, send_gathered(l, v, niov, deadline_ns));
	while (first < niov) {
		ssize_t w;

		mh.msg_iov = v + first;
		mh.msg_iovlen = (size_t)(niov - first);
		w = sendmsg(l->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(l->fd, POLLOUT, deadline_ns) <= 0)
				return -1;
			continue;
		}
		if (w <= 0)
			return -1;
		/* Skip what went out; a piece sent in part is cut. */
		while (first < niov && (size_t)w >= v[first].iov_len)
			w -= (ssize_t)v[first++].iov_len;
		if (first < niov) {
			v[first].iov_base = (uint8_t *)v[first].iov_base + w;
			v[first].iov_len -= (size_t)w;
		}
	}
	return sent(l, 0);
}

int colo_flink_send_msg(struct colo_flink *l, uint8_t type,
			const struct colo_flink_msg *m, uint64_t deadline_ns)
{
	uint8_t buf[COLO_FLINK_HDR_LEN + 16 + COLO_FLINK_TEXT_MAX];
	size_t n = colo_flink_encode_msg(buf, type, m);

	return send_all(l, buf, n, deadline_ns);
}

bool colo_flink_pending(const struct colo_flink *l)
{
	struct colo_flink_frame f;
	size_t used;

	return colo_flink_decode(l->rbuf + l->rstart, l->rlen, &f, &used) !=
		       0 ||
	       (l->tls && colo_tls_pending(l->tls));
}

int colo_flink_recv(struct colo_flink *l, struct colo_flink_frame *f,
		    uint64_t deadline_ns)
{
	for (;;) {
		size_t used;
		int r = colo_flink_decode(l->rbuf + l->rstart, l->rlen, f,
					  &used);

		if (r < 0)
			return -1;
		if (r > 0) {
			l->rstart += used;
			l->rlen -= used;
			/* The peer's heartbeat (frame_link_watch.c) only
			 * proves it alive: no reader sees it. */
			if (f->type == COLO_FLINK_HEARTBEAT && f->len == 0)
				continue;
			return 1;
		}
		/* Keep room for one whole frame after the unread bytes. */
		if (l->rstart + l->rlen >
		    RBUF_CAP - (COLO_FLINK_HDR_LEN + COLO_FLINK_PAYLOAD_MAX)) {
			memmove(l->rbuf, l->rbuf + l->rstart, l->rlen);
			l->rstart = 0;
		}
		ssize_t n = link_recv(l, l->rbuf + l->rstart + l->rlen,
				      RBUF_CAP - l->rstart - l->rlen);
		if (n > 0) {
			l->rlen += (size_t)n;
			l->last_rx = colo_now_ns();
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return -1;
		r = wait_fd(l->fd, POLLIN, deadline_ns);
		if (r == 0)
			return 0;
		if (r < 0)
			return -1;
	}
}

int colo_flink_expect(struct colo_flink *l, uint64_t seq, uint8_t want,
		      struct colo_flink_msg *m, uint64_t deadline_ns,
		      const char *peer, char *err, size_t errlen)
{
	struct colo_flink_frame f;
	int r = colo_flink_recv(l, &f, deadline_ns);

	if (r <= 0) {
		snprintf(err, errlen, "%s %s", peer,
			 r == 0 ? "did not answer in time" : "is lost");
		return -1;
	}
	if (colo_flink_parse_msg(&f, m) < 0 || m->seq != seq ||
	    (f.type != want && f.type != COLO_FLINK_ABORT)) {
		snprintf(err, errlen, "protocol error from %s", peer);
		return -1;
	}
	if (f.type == COLO_FLINK_ABORT) {
		snprintf(err, errlen, "%s aborted: %.200s", peer, m->text);
		return -1;
	}
	return 0;
}
