/*
 * frame_link_io.c - blocking frame I/O with deadlines on the frame link.
 * A checkpoint is one conversation with both VMs stopped, so waiting here
 * is the point; the deadline is what turns a dead peer into an aborted
 * checkpoint instead of a hang.
 */
#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/clock.h"
#include "frame_link.h"

#define RBUF_CAP (2 * (COLO_FLINK_HDR_LEN + COLO_FLINK_PAYLOAD_MAX))

struct colo_flink {
	int fd;
	uint8_t *rbuf;
	size_t rstart, rlen; /* unread bytes: rbuf[rstart, rstart + rlen) */
};

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
	return l;
}

void colo_flink_free(struct colo_flink *l)
{
	if (!l)
		return;
	close(l->fd);
	free(l->rbuf);
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

static int send_all(struct colo_flink *l, const uint8_t *p, size_t n,
		    uint64_t deadline)
{
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

int colo_flink_send(struct colo_flink *l, uint8_t type, const void *payload,
		    uint32_t len, uint64_t deadline_ns)
{
	uint8_t hdr[COLO_FLINK_HDR_LEN] = { type };

	colo_put_be32(hdr + 4, len);
	if (send_all(l, hdr, sizeof(hdr), deadline_ns) < 0)
		return -1;
	return len ? send_all(l, payload, len, deadline_ns) : 0;
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
	return 0;
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

	return colo_flink_decode(l->rbuf + l->rstart, l->rlen, &f, &used) != 0;
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
			return 1;
		}
		/* Keep room for one whole frame after the unread bytes. */
		if (l->rstart + l->rlen >
		    RBUF_CAP - (COLO_FLINK_HDR_LEN + COLO_FLINK_PAYLOAD_MAX)) {
			memmove(l->rbuf, l->rbuf + l->rstart, l->rlen);
			l->rstart = 0;
		}
		ssize_t n = recv(l->fd, l->rbuf + l->rstart + l->rlen,
				 RBUF_CAP - l->rstart - l->rlen, MSG_DONTWAIT);
		if (n > 0) {
			l->rlen += (size_t)n;
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
