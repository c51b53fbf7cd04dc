/*
 * sock_spec.h - the SOCK arguments of `colo compare`.
 *
 * QEMU users know chardev sockets as "server" or "client" ends of TCP or
 * UNIX sockets; a SOCK string names one of those four in one word:
 *   tcp-listen:HOST:PORT  tcp:HOST:PORT  unix-listen:PATH  unix:PATH
 * HOST may be a name, an IPv4 address or a bracketed IPv6 address; for
 * tcp-listen an empty HOST means every address. Parsing is pure; opening
 * resolves names and creates non-blocking sockets.
 */
#ifndef COLO_SOCK_SPEC_H
#define COLO_SOCK_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

enum colo_sock_kind {
	COLO_SOCK_TCP_LISTEN,
	COLO_SOCK_TCP_CONNECT,
	COLO_SOCK_UNIX_LISTEN,
	COLO_SOCK_UNIX_CONNECT,
};

#define COLO_SOCK_HOST_MAX 256
#define COLO_SOCK_PATH_MAX 108 /* sizeof(sun_path), NUL included */

struct colo_sock_spec {
	enum colo_sock_kind kind;
	char host[COLO_SOCK_HOST_MAX]; /* tcp: without brackets; "" = any */
	char port[8];		       /* tcp: decimal 1..65535 */
	char path[COLO_SOCK_PATH_MAX]; /* unix */
};

/* An address ready to bind or connect to. */
struct colo_sock_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* sock_spec.c APIs: */
/* Returns 0, or -1 with a reason in err (always NUL-terminated). */
int colo_sock_spec_parse(const char *s, struct colo_sock_spec *spec, char *err,
			 size_t errlen);
bool colo_sock_spec_is_listen(const struct colo_sock_spec *spec);
/* Resolve the spec to one address (the first getaddrinfo answer).
 * Returns 0, or -1 with a reason in err. */
int colo_sock_resolve(const struct colo_sock_spec *spec,
		      struct colo_sock_addr *a, char *err, size_t errlen);
/* Bound, listening, non-blocking, close-on-exec socket; -1 and errno. A
 * UNIX path left over by a previous run (a socket) is replaced. */
int colo_sock_listen(const struct colo_sock_addr *a);
/* Non-blocking connect; returns the fd (connection maybe in progress:
 * *in_progress says so) or -1 and errno. */
int colo_sock_connect(const struct colo_sock_addr *a, bool *in_progress);
/* accept4 with the flags above; -1 and errno. */
int colo_sock_accept(int listen_fd);
/* TCP_NODELAY on a TCP socket; a UNIX socket is left as it is (0). For
 * a socket written once per event-loop wake-up: Nagle would only hold the
 * wake-up's last small write back until the peer's (delayed) ACK. */
int colo_sock_no_delay(int fd);
/* "tcp-listen:127.0.0.1:9000" style text for logs. */
int colo_sock_spec_format(const struct colo_sock_spec *spec, char *buf,
			  size_t n);

#endif
