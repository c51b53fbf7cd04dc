/*
 * sock_spec.c - parse SOCK strings and open the sockets they name.
 *
 * Names are resolved once, at start-up: a connect end that is retried for
 * hours should not block the event loop in getaddrinfo() on every try.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock_spec.h"

static const struct {
	const char *prefix;
	enum colo_sock_kind kind;
} prefixes[] = {
	{ "tcp-listen:", COLO_SOCK_TCP_LISTEN },
	{ "tcp:", COLO_SOCK_TCP_CONNECT },
	{ "unix-listen:", COLO_SOCK_UNIX_LISTEN },
	{ "unix:", COLO_SOCK_UNIX_CONNECT },
};

static int fail(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -1;
}

static int parse_port(const char *s, struct colo_sock_spec *spec, char *err,
		      size_t errlen)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0)
		return fail(err, errlen, "missing port");
	if (n > 5)
		return fail(err, errlen, "port must be 1..65535");
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return fail(err, errlen, "port must be a number");
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return fail(err, errlen, "port must be 1..65535");
	snprintf(spec->port, sizeof(spec->port), "%lu", v);
	return 0;
}

static int parse_tcp(const char *s, struct colo_sock_spec *spec, char *err,
		     size_t errlen)
{
	const char *colon;
	size_t hostlen;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end)
			return fail(err, errlen, "missing ']' after IPv6 host");
		if (end[1] != ':')
			return fail(err, errlen, "expected ':PORT' after ']'");
		hostlen = (size_t)(end - s - 1);
		if (hostlen == 0)
			return fail(err, errlen, "empty IPv6 host");
		s++;
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return fail(err, errlen, "expected HOST:PORT");
		hostlen = (size_t)(colon - s);
		if (memchr(s, ':', hostlen))
			return fail(err, errlen,
				    "IPv6 hosts must be written [ADDR]:PORT");
	}
	if (hostlen >= sizeof(spec->host))
		return fail(err, errlen, "host name too long");
	for (size_t i = 0; i < hostlen; i++)
		if (s[i] <= ' ' || s[i] == '/' || (unsigned char)s[i] >= 0x7f)
			return fail(err, errlen, "bad character in host");
	memcpy(spec->host, s, hostlen);
	spec->host[hostlen] = '\0';
	if (hostlen == 0 && spec->kind == COLO_SOCK_TCP_CONNECT)
		return fail(err, errlen, "tcp: needs a host to connect to");
	return parse_port(colon + 1, spec, err, errlen);
}

int colo_sock_spec_parse(const char *s, struct colo_sock_spec *spec, char *err,
			 size_t errlen)
{
	size_t i, n = sizeof(prefixes) / sizeof(prefixes[0]);

	memset(spec, 0, sizeof(*spec));
	if (errlen)
		err[0] = '\0';
	for (i = 0; i < n; i++)
		if (!strncmp(s, prefixes[i].prefix, strlen(prefixes[i].prefix)))
			break;
	if (i == n)
		return fail(err, errlen,
			    "expected tcp-listen:HOST:PORT, tcp:HOST:PORT, "
			    "unix-listen:PATH or unix:PATH");
	spec->kind = prefixes[i].kind;
	s += strlen(prefixes[i].prefix);
	if (spec->kind == COLO_SOCK_TCP_LISTEN ||
	    spec->kind == COLO_SOCK_TCP_CONNECT)
		return parse_tcp(s, spec, err, errlen);
	if (s[0] == '\0')
		return fail(err, errlen, "empty path");
	if (strlen(s) >= sizeof(spec->path))
		return fail(err, errlen,
			    "path too long for a UNIX socket "
			    "(107 bytes at most)");
	strcpy(spec->path, s);
	return 0;
}

bool colo_sock_spec_is_listen(const struct colo_sock_spec *spec)
{
	return spec->kind == COLO_SOCK_TCP_LISTEN ||
	       spec->kind == COLO_SOCK_UNIX_LISTEN;
}

int colo_sock_resolve(const struct colo_sock_spec *spec,
		      struct colo_sock_addr *a, char *err, size_t errlen)
{
	struct addrinfo hints, *res;
	int rc;

	memset(a, 0, sizeof(*a));
	if (spec->kind == COLO_SOCK_UNIX_LISTEN ||
	    spec->kind == COLO_SOCK_UNIX_CONNECT) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&a->ss;

		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, spec->path, strlen(spec->path) + 1);
		a->len = (socklen_t)sizeof(*sun);
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (spec->kind == COLO_SOCK_TCP_LISTEN)
		hints.ai_flags |= AI_PASSIVE;
	rc = getaddrinfo(spec->host[0] ? spec->host : NULL, spec->port, &hints,
			 &res);
	if (rc) {
		snprintf(err, errlen, "cannot resolve '%s': %s", spec->host,
			 gai_strerror(rc));
		return -1;
	}
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* A socket file at the path is either a running instance's (something
 * answers a connect: never take it over) or left by one that died
 * (refused: replace it). Anything else at the path is not ours to
 * remove. Two instances starting in the same instant can still race;
 * one that already runs is never displaced. */
static int unix_claim_path(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int probe, rc, e;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -1;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	rc = connect(probe, (struct sockaddr *)&sun, sizeof(sun));
	e = errno;
	close(probe);
	/* EAGAIN: a listener whose backlog is full is alive too. */
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
		errno = EADDRINUSE;
		return -1;
	}
	if (e != ECONNREFUSED) {
		errno = e;
		return -1;
	}
	return unlink(path) && errno != ENOENT ? -1 : 0;
}

int colo_sock_listen(const struct colo_sock_addr *a)
{
	int one = 1, fd, family = a->ss.ss_family;
	const struct sockaddr_un *sun = (const void *)&a->ss;

	if (family == AF_UNIX && unix_claim_path(sun->sun_path))
		return -1;
	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* Linux creates the socket file with the socket inode's mode less
	 * the umask: set 0600 on the inode first, so the file is never
	 * open to others, not even between bind() and a chmod(). */
	if (family == AF_UNIX)
		fchmod(fd, 0600);
	else
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) ||
	    (family == AF_UNIX && chmod(sun->sun_path, 0600)) ||
	    listen(fd, 8)) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void colo_sock_listen_error(const struct colo_sock_addr *a, int e, char *err,
			    size_t errlen)
{
	const struct sockaddr_un *sun = (const void *)&a->ss;

	if (a->ss.ss_family != AF_UNIX)
		snprintf(err, errlen, "cannot listen: %s", strerror(e));
	else if (e == EADDRINUSE)
		snprintf(err, errlen, "%s is in use by a running instance",
			 sun->sun_path);
	else if (e == EEXIST)
		snprintf(err, errlen, "%s exists and is not a socket",
			 sun->sun_path);
	else
		snprintf(err, errlen, "%s: %s", sun->sun_path, strerror(e));
}

int colo_sock_peer_check(int fd, char *why, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ucred uc;
	socklen_t ulen = sizeof(uc);
	uid_t me = geteuid();

	if (getsockname(fd, (struct sockaddr *)&ss, &len) ||
	    ss.ss_family != AF_UNIX)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ulen) ||
	    ulen != sizeof(uc)) {
		snprintf(why, n, "cannot read the peer's credentials: %s",
			 strerror(errno));
		return -1;
	}
	if (uc.uid == me || uc.uid == 0)
		return 0;
	snprintf(why, n,
		 "uid %u (pid %d) is neither root nor this daemon's "
		 "user (uid %u)",
		 (unsigned)uc.uid, (int)uc.pid, (unsigned)me);
	return -1;
}

int colo_sock_connect(const struct colo_sock_addr *a, bool *in_progress)
{
	int e, fd = socket(a->ss.ss_family,
			   SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	*in_progress = false;
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
		return fd;
	if (errno == EINPROGRESS) {
		*in_progress = true;
		return fd;
	}
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

bool colo_sock_addr_is_loopback(const struct colo_sock_addr *a)
{
	const struct sockaddr_in6 *s6 = (const void *)&a->ss;
	const struct sockaddr_in *s4 = (const void *)&a->ss;

	switch (a->ss.ss_family) {
	case AF_UNIX:
		return true;
	case AF_INET:
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	case AF_INET6:
		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		       s6->sin6_addr.s6_addr[12] == 127;
	default:
		return false;
	}
}

int colo_sock_accept(int listen_fd)
{
	return accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

bool colo_sock_spec_is_loopback(const struct colo_sock_spec *spec)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (spec->kind == COLO_SOCK_UNIX_LISTEN ||
	    spec->kind == COLO_SOCK_UNIX_CONNECT)
		return true;
	if (!strcmp(spec->host, "localhost"))
		return true;
	if (inet_pton(AF_INET, spec->host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, spec->host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false; /* "" (every address) or another name */
}

int colo_sock_spec_format(const struct colo_sock_spec *spec, char *buf,
			  size_t n)
{
	switch (spec->kind) {
	case COLO_SOCK_TCP_LISTEN:
	case COLO_SOCK_TCP_CONNECT: {
		bool v6 = strchr(spec->host, ':') != NULL;

		return snprintf(
			buf, n, "%s:%s%s%s:%s",
			spec->kind == COLO_SOCK_TCP_LISTEN ? "tcp-listen"
							   : "tcp",
			v6 ? "[" : "", spec->host, v6 ? "]" : "", spec->port);
	}
	case COLO_SOCK_UNIX_LISTEN:
		return snprintf(buf, n, "unix-listen:%s", spec->path);
	case COLO_SOCK_UNIX_CONNECT:
		return snprintf(buf, n, "unix:%s", spec->path);
	}
	return snprintf(buf, n, "?");
}

int colo_sock_no_delay(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1;

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -1;
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
		return 0;
	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
