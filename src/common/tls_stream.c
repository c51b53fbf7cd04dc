/*
 * tls_stream.c - a TLS session shared by threads with blocking semantics
 * (see tls_stream.h for why it is built this way). A reader drains the
 * session until it wants more bytes before it polls, so nothing the
 * session read ahead is left unseen by poll().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include "clock.h"
#include "tls.h"
#include "tls_stream.h"

#define RECORD_MAX 16384 /* TLS plaintext per record */

struct colo_tls_stream {
	int fd;
	struct colo_tls *tls;
	pthread_mutex_t mu; /* one SSL call at a time */
	int snd_ms, rcv_ms; /* poll timeouts; -1: none */
};

/* Waits for ev on fd at most ms (-1: forever): 1 ready, 0 timed out. */
static int wait_for(int fd, short ev, int ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

static int handshake(struct colo_tls *tls, int fd, unsigned int ms, char *err,
		     size_t errlen)
{
	uint64_t deadline = colo_now_ns() + ms * COLO_NS_PER_MS;

	for (;;) {
		uint32_t want = EPOLLIN;
		uint64_t now = colo_now_ns();
		int r = colo_tls_handshake(tls, &want, err, errlen);

		if (r != 0)
			return r > 0 ? 0 : -1;
		r = now >= deadline
			    ? 0
			    : wait_for(
				      fd, want == EPOLLOUT ? POLLOUT : POLLIN,
				      (int)((deadline - now) / COLO_NS_PER_MS) +
					      1);
		if (r == 0) {
			snprintf(err, errlen, "TLS handshake: timed out");
			return -1;
		}
		if (r < 0) {
			snprintf(err, errlen, "TLS handshake: %s",
				 strerror(-r));
			return -1;
		}
	}
}

struct colo_tls_stream *colo_tls_stream_adopt(int fd, struct colo_tls *tls,
					      unsigned int send_ms,
					      unsigned int recv_ms, char *err,
					      size_t errlen)
{
	struct colo_tls_stream *st = calloc(1, sizeof(*st));

	if (!st || colo_tls_gather(tls) < 0) {
		free(st);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->fd = fd;
	st->tls = tls;
	st->snd_ms = send_ms ? (int)send_ms : -1;
	st->rcv_ms = recv_ms ? (int)recv_ms : -1;
	pthread_mutex_init(&st->mu, NULL);
	return st;
}

struct colo_tls_stream *
colo_tls_stream_start(int fd, const struct colo_tls_creds *c, bool server,
		      const char *peer_host, unsigned int handshake_ms,
		      unsigned int send_ms, unsigned int recv_ms, char *err,
		      size_t errlen)
{
	struct colo_tls_stream *st;
	struct colo_tls *tls;

	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "TLS: %s", strerror(errno));
		return NULL;
	}
	tls = colo_tls_new(c, fd, server, peer_host, err, errlen);
	if (!tls)
		return NULL;
	if (handshake(tls, fd, handshake_ms, err, errlen) < 0) {
		colo_tls_free(tls);
		return NULL;
	}
	st = colo_tls_stream_adopt(fd, tls, send_ms, recv_ms, err, errlen);
	if (!st)
		colo_tls_free(tls);
	return st;
}

void colo_tls_stream_free(struct colo_tls_stream *st)
{
	if (!st)
		return;
	colo_tls_free(st->tls);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

int colo_tls_stream_fd(const struct colo_tls_stream *st)
{
	return st->fd;
}

/* Under the lock: flushes what earlier writes left, then, if that all
 * went and iov is not queued yet, encrypts all of iov and sends it in
 * one send(). 0 everything sent, -1 with errno (EAGAIN: bytes wait). The
 * session's buffer so holds at most one writer's frame beyond what the
 * socket took, and one writer's pieces are never interleaved with
 * another's. */
static int queue_and_flush(struct colo_tls_stream *st, const struct iovec *iov,
			   int iovcnt, bool *queued)
{
	uint8_t one[RECORD_MAX];
	struct iovec joined = { one, 0 };
	size_t total = 0;
	int r;

	/* Pieces that fit one record are joined first: one record, not one
	 * per piece (a 4 KiB write's header and payload). */
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (!*queued && iovcnt > 1 && total <= sizeof(one)) {
		for (int i = 0; i < iovcnt; i++) {
			memcpy(one + joined.iov_len, iov[i].iov_base,
			       iov[i].iov_len);
			joined.iov_len += iov[i].iov_len;
		}
		iov = &joined;
		iovcnt = 1;
	}
	pthread_mutex_lock(&st->mu);
	r = colo_tls_flush(st->tls);
	if (r == 0 && !*queued) {
		*queued = true;
		/* Gathering takes all of a piece or fails; a short count
		 * (the buffer could not grow) would cut the frame. */
		for (int i = 0; i < iovcnt && r == 0; i++)
			if (colo_tls_write(st->tls, iov[i].iov_base,
					   iov[i].iov_len) !=
			    (ssize_t)iov[i].iov_len) {
				errno = errno ? errno : EIO;
				r = -1;
			}
		if (r == 0)
			r = colo_tls_flush(st->tls);
	}
	pthread_mutex_unlock(&st->mu);
	return r;
}

int colo_tls_stream_writev_all(struct colo_tls_stream *st,
			       const struct iovec *iov, int iovcnt)
{
	bool queued = false;

	for (;;) {
		int r = queue_and_flush(st, iov, iovcnt, &queued);

		if (r == 0 && queued)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN)
			return errno == EPROTO ? -EPROTO : -ECONNRESET;
		if (r < 0) {
			r = wait_for(st->fd, POLLOUT, st->snd_ms);
			if (r == 0)
				return -ETIMEDOUT;
			if (r < 0)
				return r;
		}
	}
}

int colo_tls_stream_write_all(struct colo_tls_stream *st, const void *buf,
			      size_t len)
{
	struct iovec iov = { (void *)buf, len };

	return colo_tls_stream_writev_all(st, &iov, 1);
}

/* One read under the lock: bytes, -ECONNRESET, -EPROTO or -EAGAIN. */
static ssize_t read_once(struct colo_tls_stream *st, void *buf, size_t len)
{
	ssize_t n;

	do {
		pthread_mutex_lock(&st->mu);
		n = colo_tls_read(st->tls, buf, len);
		/* A read may answer the peer (a key update): send it on. */
		if (colo_tls_unflushed(st->tls))
			(void)colo_tls_flush(st->tls);
		pthread_mutex_unlock(&st->mu);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n == 0)
		return -ECONNRESET;
	if (errno == EAGAIN)
		return -EAGAIN;
	return errno == EPROTO ? -EPROTO : -ECONNRESET;
}

ssize_t colo_tls_stream_try_read(struct colo_tls_stream *st, void *buf,
				 size_t len)
{
	return read_once(st, buf, len);
}

ssize_t colo_tls_stream_read_some(struct colo_tls_stream *st, void *buf,
				  size_t len)
{
	for (;;) {
		ssize_t n = read_once(st, buf, len);
		int r;

		if (n != -EAGAIN)
			return n;
		r = wait_for(st->fd, POLLIN,
			     __atomic_load_n(&st->rcv_ms, __ATOMIC_RELAXED));
		if (r == 0)
			return -EAGAIN;
		if (r < 0)
			return r;
	}
}

void colo_tls_stream_set_recv_timeout(struct colo_tls_stream *st,
				      unsigned int recv_ms)
{
	__atomic_store_n(&st->rcv_ms, recv_ms ? (int)recv_ms : -1,
			 __ATOMIC_RELAXED);
}
