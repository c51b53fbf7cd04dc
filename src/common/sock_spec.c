/*
 * sock_spec.c - parse SOCK strings and open the sockets they name.
 *
 * Names are resolved once, at start-up: a connect end that is retried for
 * hours should not block the event loop in getaddrinfo() on every try.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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

int colo_sock_listen(const struct colo_sock_addr *a)
{
	int one = 1, fd, family = a->ss.ss_family;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (family == AF_UNIX) {
		const struct sockaddr_un *sun = (const void *)&a->ss;
		struct stat st;

		if (!stat(sun->sun_path, &st) && S_ISSOCK(st.st_mode))
			unlink(sun->sun_path);
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) ||
	    listen(fd, 8)) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
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

int colo_sock_accept(int listen_fd)
{
	return accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
