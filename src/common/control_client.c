/*
 * control_client.c - the client side of the control socket, for the
 * command-line tools (colo ctl, colo blk ctl) and the demo: blocking,
 * with a time bound on connecting, sending and each reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "control.h"
#include "sock_spec.h"

#define REPLY_MAX (1u << 20)

static void set_timeout(int fd, unsigned int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* A blocking connection to the daemon at path, -1 with a reason in err. */
static int connect_path(const char *path, unsigned int timeout_ms, char *err,
			size_t errlen)
{
	struct colo_sock_spec spec;
	struct colo_sock_addr a;
	char s[COLO_SOCK_PATH_MAX + 16];
	bool in_progress;
	int fd;

	snprintf(s, sizeof(s), "unix:%s", path);
	if (colo_sock_spec_parse(s, &spec, err, errlen) < 0 ||
	    colo_sock_resolve(&spec, &a, err, errlen) < 0)
		return -1;
	fd = colo_sock_connect(&a, &in_progress);
	if (fd >= 0 && in_progress) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (poll(&p, 1, (int)timeout_ms) <= 0)
			soerr = ETIMEDOUT;
		else
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr) {
			close(fd);
			fd = -1;
			errno = soerr;
		}
	}
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	set_timeout(fd, timeout_ms);
	return fd;
}

static bool send_line(int fd, const char *s)
{
	size_t len = strlen(s), done = 0;

	while (done < len + 1) {
		const char *p = done < len ? s + done : "\n";
		size_t n = done < len ? len - done : 1;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		done += (size_t)w;
	}
	return true;
}

/* Reads one line (malloc'd, newline replaced by NUL) or NULL with a
 * reason in err. Bytes after the newline are lost: one request, one
 * reply. */
static char *read_line(int fd, const char *path, char *err, size_t errlen)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);

	while (buf) {
		ssize_t n;
		char *nl;

		if (len + 1 == cap) {
			char *nb =
				cap >= REPLY_MAX ? NULL : realloc(buf, cap * 2);

			if (!nb) {
				snprintf(err, errlen, "%s: reply too long",
					 path);
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: no reply (%s)", path,
				 n == 0 ? "closed" : strerror(errno));
			free(buf);
			return NULL;
		}
		len += (size_t)n;
		buf[len] = '\0';
		nl = strchr(buf, '\n');
		if (nl) {
			*nl = '\0';
			return buf;
		}
	}
	snprintf(err, errlen, "out of memory");
	return NULL;
}

char *colo_control_request(const char *path, const char *request,
			   unsigned int timeout_ms, char *err, size_t errlen)
{
	int fd = connect_path(path, timeout_ms, err, errlen);
	char *reply = NULL;

	if (fd < 0)
		return NULL;
	if (send_line(fd, request))
		reply = read_line(fd, path, err, errlen);
	else
		snprintf(err, errlen, "%s: send: %s", path, strerror(errno));
	close(fd);
	return reply;
}

int colo_control_call(const char *path, struct json_object *req,
		      unsigned int timeout_ms, const char *prog)
{
	struct json_object *reply, *ok;
	char err[256], *out;
	int rc;

	out = colo_control_request(
		path,
		json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN),
		timeout_ms, err, sizeof(err));
	json_object_put(req);
	if (!out) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 1;
	}
	puts(out);
	reply = json_tokener_parse(out);
	rc = reply && json_object_object_get_ex(reply, "ok", &ok) &&
			     json_object_get_boolean(ok)
		     ? 0
		     : 1;
	json_object_put(reply);
	free(out);
	return rc;
}

int colo_control_verdict(const char *line, char *err, size_t errlen)
{
	struct json_object *o = json_tokener_parse(line), *ok, *e;
	int r = -1;

	if (o && json_object_object_get_ex(o, "ok", &ok) &&
	    json_object_get_boolean(ok))
		r = 0;
	else if (o && json_object_object_get_ex(o, "error", &e))
		snprintf(err, errlen, "%s", json_object_get_string(e));
	else
		snprintf(err, errlen, "bad reply");
	json_object_put(o);
	return r;
}

int colo_control_command(const char *path, const char *request,
			 unsigned int timeout_ms, char *err, size_t errlen)
{
	char *line =
		colo_control_request(path, request, timeout_ms, err, errlen);
	int r;

	if (!line)
		return -1;
	r = colo_control_verdict(line, err, errlen);
	free(line);
	return r;
}

int colo_control_subscribe(const char *path, unsigned int timeout_ms,
			   colo_control_event_fn fn, void *opaque, char *err,
			   size_t errlen)
{
	char buf[COLO_CONTROL_LINE_MAX];
	int fd = connect_path(path, timeout_ms, err, errlen);
	bool subscribed = false;
	size_t len = 0;

	if (fd < 0)
		return -1;
	if (!send_line(fd, "{\"cmd\":\"events\"}")) {
		snprintf(err, errlen, "%s: send: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 && !subscribed) {
			snprintf(err, errlen, "%s: no reply (%s)", path,
				 n == 0 ? "closed" : strerror(errno));
			close(fd);
			return -1;
		}
		if (n <= 0)
			break;
		len += (size_t)n;
		while ((nl = memchr(buf, '\n', len))) {
			size_t k = (size_t)(nl - buf) + 1;

			if (!subscribed) { /* the subscription's own reply */
				if (!memmem(buf, k, "\"ok\":true", 9)) {
					snprintf(err, errlen, "%s: %.*s", path,
						 (int)(k - 1), buf);
					close(fd);
					return -1;
				}
				subscribed = true;
				/* Events come when they come. */
				set_timeout(fd, 0);
			} else if (!fn(opaque, buf, k)) {
				close(fd);
				return 0;
			}
			memmove(buf, buf + k, len - k);
			len -= k;
		}
		if (len == sizeof(buf))
			len = 0; /* an absurd line: skip it */
	}
	close(fd);
	return 0;
}
