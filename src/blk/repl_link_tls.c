/*
 * repl_link_tls.c - TLS under the replication link's blocking socket I/O.
 *
 * Why this shape: the blk primary uses one link socket from two threads
 * at once (writers forward, a receiver waits for acks), and an OpenSSL
 * session must not be used by two threads at the same time. Kernel TLS
 * would let both use the plain socket after the handshake, but this
 * kernel has no `tls` module (TCP_ULP "tls" fails with ENOENT; see
 * doc/security.md). A lock around blocking SSL_read/SSL_write does not
 * work either: the receiver would hold it while it waits and starve the
 * writers. So the socket is non-blocking, every SSL call is made under a
 * per-socket mutex and returns at once, and the waiting (for the
 * socket, with the timeouts colo_link_tune set) happens outside the lock
 * in poll(). A reader drains the session until it wants more bytes
 * before it polls, so nothing the session read ahead is left unseen.
 *
 * Sessions are found by file descriptor so that the callers keep their
 * `int fd` and the data paths of repl_primary.c and repl_secondary.c do
 * not change: a socket without a session is plain, as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "repl_link_tls.h"
#include "tls.h"

#define MAX_SESSIONS 16

struct colo_link_tls {
	int fd; /* -1: free slot */
	struct colo_tls *tls;
	pthread_mutex_t mu; /* one SSL call at a time */
	int snd_ms, rcv_ms; /* poll timeouts; -1: none */
};

static struct colo_link_tls sessions[MAX_SESSIONS];
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static int in_use; /* under table_mu; read unlocked as a hint only */

struct colo_link_tls *colo_link_tls_find(int fd)
{
	struct colo_link_tls *t = NULL;

	if (!__atomic_load_n(&in_use, __ATOMIC_ACQUIRE))
		return NULL;
	pthread_mutex_lock(&table_mu);
	for (int i = 0; i < MAX_SESSIONS && !t; i++)
		if (sessions[i].tls && sessions[i].fd == fd)
			t = &sessions[i];
	pthread_mutex_unlock(&table_mu);
	return t;
}

static int timeout_of(int fd, int opt)
{
	struct timeval tv = { 0 };
	socklen_t l = sizeof(tv);

	if (getsockopt(fd, SOL_SOCKET, opt, &tv, &l) < 0 ||
	    (tv.tv_sec == 0 && tv.tv_usec == 0))
		return -1;
	return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

/* Waits for ev on fd at most ms (-1: forever). 1 ready, 0 timed out. */
static int wait_for(int fd, short ev, int ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

int colo_link_tls_start(int fd, const struct colo_tls_creds *c, bool server,
			const char *peer_host, unsigned int timeout_ms,
			char *err, size_t errlen)
{
	uint64_t deadline = colo_now_ns() + timeout_ms * COLO_NS_PER_MS;
	struct colo_link_tls *t = NULL;
	struct colo_tls *tls;
	int r;

	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "TLS: %s", strerror(errno));
		return -1;
	}
	tls = colo_tls_new(c, fd, server, peer_host, err, errlen);
	if (!tls)
		return -1;
	for (;;) {
		uint32_t want = EPOLLIN;
		uint64_t now = colo_now_ns();

		r = colo_tls_handshake(tls, &want, err, errlen);
		if (r < 0)
			goto fail;
		if (r > 0)
			break;
		if (now >= deadline ||
		    (r = wait_for(fd, want == EPOLLOUT ? POLLOUT : POLLIN,
				  (int)((deadline - now) / COLO_NS_PER_MS) +
					  1)) == 0) {
			snprintf(err, errlen, "TLS handshake: timed out");
			goto fail;
		}
		if (r < 0) {
			snprintf(err, errlen, "TLS handshake: %s",
				 strerror(-r));
			goto fail;
		}
	}
	pthread_mutex_lock(&table_mu);
	for (int i = 0; i < MAX_SESSIONS && !t; i++)
		if (!sessions[i].tls)
			t = &sessions[i];
	if (t) {
		t->fd = fd;
		t->tls = tls;
		t->snd_ms = timeout_of(fd, SO_SNDTIMEO);
		t->rcv_ms = timeout_of(fd, SO_RCVTIMEO);
		pthread_mutex_init(&t->mu, NULL);
		__atomic_add_fetch(&in_use, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&table_mu);
	if (t)
		return 0;
	snprintf(err, errlen, "TLS: too many sessions");
fail:
	colo_tls_free(tls);
	return -1;
}

void colo_link_close(int fd)
{
	struct colo_link_tls *t = colo_link_tls_find(fd);

	if (t) {
		pthread_mutex_lock(&table_mu);
		colo_tls_free(t->tls);
		t->tls = NULL;
		t->fd = -1;
		pthread_mutex_destroy(&t->mu);
		__atomic_sub_fetch(&in_use, 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&table_mu);
	}
	close(fd);
}

int colo_link_tls_write_all(struct colo_link_tls *t, const void *buf,
			    size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n;
		int r;

		pthread_mutex_lock(&t->mu);
		n = colo_tls_write(t->tls, p, len);
		pthread_mutex_unlock(&t->mu);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return errno == EPROTO ? -EPROTO : -ECONNRESET;
		r = wait_for(t->fd, POLLOUT, t->snd_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0)
			return r;
	}
	return 0;
}

ssize_t colo_link_tls_read_some(struct colo_link_tls *t, void *buf, size_t len)
{
	for (;;) {
		ssize_t n;
		int r;

		pthread_mutex_lock(&t->mu);
		n = colo_tls_read(t->tls, buf, len);
		pthread_mutex_unlock(&t->mu);
		if (n > 0)
			return n;
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return errno == EPROTO ? -EPROTO : -ECONNRESET;
		r = wait_for(t->fd, POLLIN, t->rcv_ms);
		if (r == 0)
			return -EAGAIN;
		if (r < 0)
			return r;
	}
}
