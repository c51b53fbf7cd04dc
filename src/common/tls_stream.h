/*
 * tls_stream.h - a TLS session over a socket that two or more threads
 * use at once with blocking semantics (one receiving while others send),
 * for the blk replication link and NBD connections.
 *
 * Why not the plain colo_tls calls: one OpenSSL session must not be used
 * by two threads at the same time, and a lock held across a blocking
 * read would starve the senders. Kernel TLS would let every thread use
 * the plain socket after the handshake, but it needs the kernel's `tls`
 * module, which the hosts we test on lack (doc/security.md). So the
 * socket is non-blocking, every SSL call is made under the stream's
 * mutex and returns at once, and the waiting for the socket happens in
 * poll() outside the lock, bounded by the timeouts given.
 */
#ifndef COLO_TLS_STREAM_H
#define COLO_TLS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct colo_tls_creds;
struct colo_tls_stream;

/* tls_stream.c APIs: */
/* Runs the handshake on the connected socket fd (not owned; made
 * non-blocking) within handshake_ms. server: we accepted the connection.
 * peer_host: the name the peer's certificate must carry (NULL: any
 * certificate of the CA). send_ms/recv_ms bound each later wait for the
 * socket (0: none). NULL with the reason in err. */
struct colo_tls_stream *
colo_tls_stream_start(int fd, const struct colo_tls_creds *c, bool server,
		      const char *peer_host, unsigned int handshake_ms,
		      unsigned int send_ms, unsigned int recv_ms, char *err,
		      size_t errlen);
/* The same for a session whose handshake its owner already drove without
 * blocking (the blk secondary's lobby): the stream takes tls over on
 * success (fd must be non-blocking). NULL with the reason in err; tls is
 * then still the caller's. */
struct colo_tls;
struct colo_tls_stream *colo_tls_stream_adopt(int fd, struct colo_tls *tls,
					      unsigned int send_ms,
					      unsigned int recv_ms, char *err,
					      size_t errlen);
void colo_tls_stream_free(struct colo_tls_stream *st);
int colo_tls_stream_fd(const struct colo_tls_stream *st);
/* All of buf: 0, -ETIMEDOUT (send timeout), -ECONNRESET, -EPROTO. */
int colo_tls_stream_write_all(struct colo_tls_stream *st, const void *buf,
			      size_t len);
/* All of the iovcnt pieces, in order and not interleaved with another
 * thread's write; their records leave in one send(). Like write_all. */
struct iovec;
int colo_tls_stream_writev_all(struct colo_tls_stream *st,
			       const struct iovec *iov, int iovcnt);
/* Some bytes (>0), -ECONNRESET at the end, -EAGAIN at the receive
 * timeout, -EPROTO or -errno. Never 0. */
ssize_t colo_tls_stream_read_some(struct colo_tls_stream *st, void *buf,
				  size_t len);
/* Like read_some, but -EAGAIN at once instead of waiting. */
ssize_t colo_tls_stream_try_read(struct colo_tls_stream *st, void *buf,
				 size_t len);
/* Changes the bound of each wait for incoming bytes (0: none). */
void colo_tls_stream_set_recv_timeout(struct colo_tls_stream *st,
				      unsigned int recv_ms);

#endif
