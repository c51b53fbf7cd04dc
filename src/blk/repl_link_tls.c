/*
 * repl_link_tls.c - which link sockets carry a TLS session.
 *
 * The blk primary uses one link socket from two threads (writers forward,
 * a receiver waits for acks); common/tls_stream.c makes one session safe
 * for that. Sessions are found here by file descriptor so that the
 * callers keep their `int fd` and the data paths of repl_primary.c and
 * repl_secondary.c do not change: a socket without a session is plain,
 * as before.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "repl_link_tls.h"
#include "tls.h"
#include "tls_stream.h"

#define MAX_SESSIONS 16

static struct colo_tls_stream *sessions[MAX_SESSIONS];
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static int in_use; /* under table_mu; read unlocked as a hint only */

struct colo_tls_stream *colo_link_tls_find(int fd)
{
	struct colo_tls_stream *t = NULL;

	if (!__atomic_load_n(&in_use, __ATOMIC_ACQUIRE))
		return NULL;
	pthread_mutex_lock(&table_mu);
	for (int i = 0; i < MAX_SESSIONS && !t; i++)
		if (sessions[i] && colo_tls_stream_fd(sessions[i]) == fd)
			t = sessions[i];
	pthread_mutex_unlock(&table_mu);
	return t;
}

/* What colo_link_tune set: the stream keeps the same bounds. */
static unsigned int timeout_of(int fd, int opt)
{
	struct timeval tv = { 0 };
	socklen_t l = sizeof(tv);

	if (getsockopt(fd, SOL_SOCKET, opt, &tv, &l) < 0)
		return 0;
	return (unsigned int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

/* Files st under its socket so the link's I/O finds it; frees it when
 * the table is full. */
static int register_session(struct colo_tls_stream *st, char *err,
			    size_t errlen)
{
	int i;

	pthread_mutex_lock(&table_mu);
	for (i = 0; i < MAX_SESSIONS && sessions[i]; i++)
		;
	if (i < MAX_SESSIONS) {
		sessions[i] = st;
		__atomic_add_fetch(&in_use, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&table_mu);
	if (i < MAX_SESSIONS)
		return 0;
	snprintf(err, errlen, "TLS: too many sessions");
	colo_tls_stream_free(st);
	return -1;
}

int colo_link_tls_start(int fd, const struct colo_tls_creds *c, bool server,
			const char *peer_host, unsigned int timeout_ms,
			char *err, size_t errlen)
{
	struct colo_tls_stream *st =
		colo_tls_stream_start(fd, c, server, peer_host, timeout_ms,
				      timeout_of(fd, SO_SNDTIMEO),
				      timeout_of(fd, SO_RCVTIMEO), err, errlen);

	return st ? register_session(st, err, errlen) : -1;
}

int colo_link_tls_adopt(int fd, struct colo_tls *tls, char *err, size_t errlen)
{
	struct colo_tls_stream *st =
		colo_tls_stream_adopt(fd, tls, timeout_of(fd, SO_SNDTIMEO),
				      timeout_of(fd, SO_RCVTIMEO), err, errlen);

	if (!st) {
		colo_tls_free(tls);
		return -1;
	}
	return register_session(st, err, errlen);
}

void colo_link_close(int fd)
{
	pthread_mutex_lock(&table_mu);
	for (int i = 0; i < MAX_SESSIONS; i++) {
		if (sessions[i] && colo_tls_stream_fd(sessions[i]) == fd) {
			colo_tls_stream_free(sessions[i]);
			sessions[i] = NULL;
			__atomic_sub_fetch(&in_use, 1, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&table_mu);
	close(fd);
}
