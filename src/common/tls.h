/*
 * tls.h - TLS 1.3 with mutual x509 authentication for colo's links.
 *
 * Credentials come from one directory laid out like QEMU's
 * tls-creds-x509 object (ca-cert.pem, server-cert.pem, server-key.pem,
 * client-cert.pem, client-key.pem), so one set serves QEMU and colo. Both
 * ends present a certificate signed by that CA; the peer counts only when
 * its certificate names the host we expect (its role is then the link
 * protocol's business: roles swap on re-protection, hosts do not).
 *
 * Everything is non-blocking: the owner drives colo_tls_handshake() from
 * its event loop, waiting for the events it asks for, and bounds it with
 * its own timer. Afterwards colo_tls_read/write behave like recv/send on
 * a non-blocking socket.
 */
#ifndef COLO_TLS_H
#define COLO_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct colo_tls_creds;
struct colo_tls;

/* tls.c APIs: */
/* Loads ca-cert.pem (required) and the server and client pairs found in
 * dir. NULL with a message in err when nothing usable is there. */
struct colo_tls_creds *colo_tls_creds_load(const char *dir, char *err,
					   size_t errlen);
void colo_tls_creds_free(struct colo_tls_creds *c);
bool colo_tls_creds_can(const struct colo_tls_creds *c, bool server);

/* A TLS session over the connected socket fd (not owned: the caller
 * closes it after colo_tls_free). server: we accepted the connection.
 * peer_host: the name the peer's certificate must carry; a server may
 * pass NULL to take any client certificate of the CA (NBD exports, whose
 * client is a QEMU the pair does not name). */
struct colo_tls *colo_tls_new(const struct colo_tls_creds *c, int fd,
			      bool server, const char *peer_host, char *err,
			      size_t errlen);
void colo_tls_free(struct colo_tls *t);

/* One step of the handshake: 1 done (peer verified), 0 in progress
 * (*want = EPOLLIN or EPOLLOUT: call again when that is ready), -1
 * failed (why in err). */
int colo_tls_handshake(struct colo_tls *t, uint32_t *want, char *err,
		       size_t errlen);
bool colo_tls_established(const struct colo_tls *t);

/* Like recv/send with MSG_DONTWAIT: bytes moved, 0 for a clean end of
 * stream (read), or -1 with errno (EAGAIN: wait for the socket; EPROTO:
 * the session is broken). The session reads ahead of what it returns:
 * a reader must call colo_tls_read until EAGAIN before it waits for
 * EPOLLIN again (or come back without waiting), or bytes already
 * received sit unseen. A write that returned
 * EAGAIN must be retried with at least the same bytes (they may move in
 * memory). */
ssize_t colo_tls_read(struct colo_tls *t, void *buf, size_t len);
ssize_t colo_tls_write(struct colo_tls *t, const void *buf, size_t len);
/* Whether the session holds bytes read from the socket that no read has
 * returned yet (a whole or partial record): epoll cannot see them, so an
 * event-driven reader asks before it goes back to waiting. */
bool colo_tls_pending(const struct colo_tls *t);

/* Gather mode, after the handshake: colo_tls_write only encrypts (it
 * takes all of buf, never EAGAIN) and the records wait in memory until
 * colo_tls_flush sends them in one send(), instead of one write() per
 * 16 KiB record (see tls_gather.c for the measurement). For owners that
 * flush before they wait: tls_stream.c. Kernel TLS is never enabled
 * (tls.c): a socket with kernel TLS sending is refused (EPROTO). 0, or
 * -1 with errno. */
int colo_tls_gather(struct colo_tls *t);
/* Sends the gathered records without blocking: 0 all sent, -1 with errno
 * (EAGAIN: some remain; wait for EPOLLOUT and flush again). 0 at once
 * outside gather mode. */
int colo_tls_flush(struct colo_tls *t);
bool colo_tls_unflushed(const struct colo_tls *t);
/* How many gathered bytes (ciphertext) wait for colo_tls_flush. */
size_t colo_tls_unsent(const struct colo_tls *t);
/* Whether OpenSSL may switch this session to kernel TLS (never: see
 * tls.c; asked by the tests). */
bool colo_tls_ktls_allowed(const struct colo_tls *t);

#endif
