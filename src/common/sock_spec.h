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
/* True for UNIX specs and TCP ones on a loopback address literal (or
 * "localhost"): reachable from this host only. */
bool colo_sock_spec_is_loopback(const struct colo_sock_spec *spec);
/* Resolve the spec to one address (the first getaddrinfo answer).
 * Returns 0, or -1 with a reason in err. */
int colo_sock_resolve(const struct colo_sock_spec *spec,
		      struct colo_sock_addr *a, char *err, size_t errlen);
/* Bound, listening, non-blocking, close-on-exec socket; -1 and errno.
 * A UNIX socket is created mode 0600. A UNIX path left over by a previous
 * run (a socket nobody answers on) is replaced; one a running instance
 * listens on is left alone (EADDRINUSE), and a path that is not a socket
 * too (EEXIST). */
int colo_sock_listen(const struct colo_sock_addr *a);
/* The reason colo_sock_listen() failed with errno e, for the user. */
void colo_sock_listen_error(const struct colo_sock_addr *a, int e, char *err,
			    size_t errlen);
/* For a connection accepted on a UNIX socket: 0 when the peer runs as
 * root or as this process's user, else -1 and who it is in why. Other
 * sockets pass (their trust is the caller's rule). */
int colo_sock_peer_check(int fd, char *why, size_t n);
/* Non-blocking connect; returns the fd (connection maybe in progress:
 * *in_progress says so) or -1 and errno. */
int colo_sock_connect(const struct colo_sock_addr *a, bool *in_progress);
/* Loopback (127/8, ::1, v4-mapped 127/8) or a UNIX socket: reachable
 * from this host only. The wildcard address is not. */
bool colo_sock_addr_is_loopback(const struct colo_sock_addr *a);
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
