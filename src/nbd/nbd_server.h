/*
 * nbd_server.h - an NBD server exporting one colo_blk_dev.
 *
 * Fixed-newstyle handshake, simple replies, a reader thread per client
 * connection with a small pool of workers for slow device calls, plus an
 * accept thread. Device calls of one connection may run concurrently and
 * complete in any order (replies are matched by cookie); a FLUSH covers
 * every write replied to before it was received. The server calls the
 * device; the device never calls the server. Protocol decisions live in
 * nbd_proto.c.
 */
#ifndef COLO_NBD_SERVER_H
#define COLO_NBD_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "blk_dev.h"

struct colo_nbd_server;

/* nbd_server.c APIs: */
/*
 * A stopped server for dev, which must outlive it. export_name is what
 * clients ask for ("" is accepted too, as the default export);
 * description may be NULL. Both are copied, at most 4096 bytes each.
 * NULL on bad arguments or out of memory.
 */
struct colo_nbd_server *colo_nbd_server_new(struct colo_blk_dev *dev,
					    const char *export_name,
					    const char *description);
/*
 * Advertise NBD_FLAG_CAN_MULTI_CONN: only for devices where a flush on
 * one connection makes every completed write durable (file_dev: yes).
 * Before colo_nbd_server_start.
 */
void colo_nbd_server_set_multi_conn(struct colo_nbd_server *s, bool on);
/*
 * NBD over TLS (the STARTTLS option, as qemu-nbd): with creds (not owned;
 * needs the server pair) every TCP connection must start TLS before any
 * other option; UNIX connections may. peer_host: the name the client's
 * certificate must carry (NULL: any certificate of the CA). Without
 * creds, a TCP export may only listen on loopback unless insecure.
 * Before colo_nbd_server_listen.
 */
struct colo_tls_creds;
void colo_nbd_server_set_tls(struct colo_nbd_server *s,
			     const struct colo_tls_creds *creds,
			     const char *peer_host, bool insecure);
/* Extra connections beyond this are closed at once (default 64). */
void colo_nbd_server_set_max_clients(struct colo_nbd_server *s, unsigned n);
/*
 * Requests of one connection that may be in the device at once (default
 * 8, at most 64); 0 serves each connection strictly one request after
 * the other. Before colo_nbd_server_start.
 */
void colo_nbd_server_set_workers(struct colo_nbd_server *s, unsigned n);
/*
 * Opens a listening socket: sock_spec is tcp-listen:HOST:PORT or
 * unix-listen:PATH (sock_spec.h). May be called up to 4 times before
 * start. Returns 0, or -1 with a reason in err.
 */
int colo_nbd_server_listen(struct colo_nbd_server *s, const char *sock_spec,
			   char *err, size_t errlen);
/* Starts accepting. Returns 0 or a negative errno. */
int colo_nbd_server_start(struct colo_nbd_server *s);
/*
 * Holds the guest: returns once no device call is in flight, and none
 * starts until colo_nbd_server_resume. Requests keep being read and queue
 * in the connection threads (a bounded number per connection). Pauses do
 * not nest.
 */
void colo_nbd_server_pause(struct colo_nbd_server *s);
void colo_nbd_server_resume(struct colo_nbd_server *s);
/* Connected clients (handshaking or transmitting). */
unsigned colo_nbd_server_clients(struct colo_nbd_server *s);
/*
 * Stops accepting, disconnects every client and joins all threads; a
 * pause in force is lifted (held requests fail with ESHUTDOWN). The
 * listening sockets stay open: start may be called again. Idempotent.
 */
void colo_nbd_server_stop(struct colo_nbd_server *s);
/* Stops, closes the listening sockets (removing UNIX socket files) and
 * frees. NULL is fine. */
void colo_nbd_server_free(struct colo_nbd_server *s);

#endif
