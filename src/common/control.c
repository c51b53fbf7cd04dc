/*
 * control.c - the JSON control socket.
 *
 * One thread polls the listening socket and up to CLIENTS_MAX clients and
 * runs each complete line through the handler table. Handlers run on that
 * thread one at a time, so they need no locking against each other; a
 * slow one (a checkpoint waiting for the secondary) only delays other
 * control requests, never the data path.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "sock_spec.h"

#define CLIENTS_MAX 16

struct client {
	int fd;
	size_t len;
	char *buf; /* COLO_CONTROL_LINE_MAX */
};

struct colo_control {
	struct colo_control_table t;
	int listen_fd;
	char path[COLO_SOCK_PATH_MAX];
	int wake[2];
	pthread_t thread;
	bool started;
	struct client clients[CLIENTS_MAX];
};

static char *reply_error(const char *msg)
{
	struct json_object *o = json_object_new_object();
	char *s;

	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(msg));
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

static int help(const struct colo_control_table *t, struct json_object *reply)
{
	struct json_object *cmds = json_object_new_object();

	json_object_object_add(cmds, "help",
			       json_object_new_string("list the commands"));
	for (size_t i = 0; i < t->n; i++)
		json_object_object_add(
			cmds, t->cmds[i].name,
			json_object_new_string(t->cmds[i].help ? t->cmds[i].help
							       : ""));
	json_object_object_add(reply, "commands", cmds);
	return 0;
}

char *colo_control_handle(const struct colo_control_table *t, const char *line,
			  size_t len)
{
	struct json_tokener *tok;
	struct json_object *req, *cmd, *reply;
	const char *name;
	char err[256] = "";
	char *out;
	int r = -1;

	if (len > COLO_CONTROL_LINE_MAX)
		return reply_error("request too long");
	if (memchr(line, '\0', len))
		return reply_error("NUL byte in request");
	tok = json_tokener_new();
	if (!tok)
		return NULL;
	req = json_tokener_parse_ex(tok, line, (int)len);
	if (req && tok->char_offset < (int)len &&
	    strspn(line + tok->char_offset, " \t\r") !=
		    len - (size_t)tok->char_offset) {
		json_object_put(req);
		req = NULL;
	}
	json_tokener_free(tok);
	if (!req)
		return reply_error("not a JSON object");
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		json_object_put(req);
		return reply_error("expected {\"cmd\": \"NAME\", ...}");
	}
	name = json_object_get_string(cmd);
	reply = json_object_new_object();
	json_object_object_add(reply, "ok", json_object_new_boolean(1));
	if (strcmp(name, "help") == 0) {
		r = help(t, reply);
	} else {
		snprintf(err, sizeof(err), "unknown command (try help)");
		for (size_t i = 0; i < t->n; i++) {
			if (strcmp(name, t->cmds[i].name) == 0) {
				err[0] = '\0';
				r = t->cmds[i].fn(t->ctx, req, reply, err,
						  sizeof(err));
				if (r < 0 && !err[0])
					snprintf(err, sizeof(err), "failed");
				break;
			}
		}
	}
	if (r < 0)
		out = reply_error(err);
	else
		out = strdup(json_object_to_json_string_ext(
			reply, JSON_C_TO_STRING_PLAIN));
	json_object_put(reply);
	json_object_put(req);
	return out;
}

/* ---- the socket */

static void drop_client(struct client *cl)
{
	close(cl->fd);
	cl->fd = -1;
	cl->len = 0;
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

/* Answer every complete line; false when the client must go. */
static bool serve_lines(struct colo_control *c, struct client *cl)
{
	char *nl;

	while ((nl = memchr(cl->buf, '\n', cl->len))) {
		size_t n = (size_t)(nl - cl->buf);
		char *reply = colo_control_handle(&c->t, cl->buf, n);
		bool ok = reply && send_line(cl->fd, reply);

		free(reply);
		if (!ok)
			return false;
		memmove(cl->buf, nl + 1, cl->len - n - 1);
		cl->len -= n + 1;
	}
	if (cl->len == COLO_CONTROL_LINE_MAX) {
		char *reply = reply_error("request too long");

		if (reply)
			send_line(cl->fd, reply);
		free(reply);
		return false;
	}
	return true;
}

static void read_client(struct colo_control *c, struct client *cl)
{
	ssize_t n = recv(cl->fd, cl->buf + cl->len,
			 COLO_CONTROL_LINE_MAX - cl->len, 0);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0 || (cl->len += (size_t)n, !serve_lines(c, cl)))
		drop_client(cl);
}

static void accept_client(struct colo_control *c)
{
	struct timeval tv = { 1, 0 };
	int fd = colo_sock_accept(c->listen_fd);

	if (fd < 0)
		return;
	for (int i = 0; i < CLIENTS_MAX; i++) {
		if (c->clients[i].fd < 0) {
			/* Blocking sends with a bound: a client that does
			 * not read its replies cannot stall us long. */
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
				   sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
				   sizeof(tv));
			c->clients[i].fd = fd;
			c->clients[i].len = 0;
			return;
		}
	}
	close(fd);
}

static void *control_main(void *arg)
{
	struct colo_control *c = arg;

	for (;;) {
		struct pollfd pfd[CLIENTS_MAX + 2];
		int n = 0;

		pfd[n++] =
			(struct pollfd){ .fd = c->wake[0], .events = POLLIN };
		pfd[n++] =
			(struct pollfd){ .fd = c->listen_fd, .events = POLLIN };
		for (int i = 0; i < CLIENTS_MAX; i++)
			pfd[n++] = (struct pollfd){ .fd = c->clients[i].fd,
						    .events = POLLIN };
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		if (pfd[1].revents & POLLIN)
			accept_client(c);
		for (int i = 0; i < CLIENTS_MAX; i++)
			if (c->clients[i].fd >= 0 && pfd[i + 2].revents)
				read_client(c, &c->clients[i]);
	}
	return NULL;
}

struct colo_control *colo_control_new(const struct colo_control_table *t)
{
	struct colo_control *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (pipe2(c->wake, O_CLOEXEC) < 0) {
		free(c);
		return NULL;
	}
	c->t = *t;
	c->listen_fd = -1;
	for (int i = 0; i < CLIENTS_MAX; i++) {
		c->clients[i].fd = -1;
		c->clients[i].buf = malloc(COLO_CONTROL_LINE_MAX);
		if (!c->clients[i].buf) {
			colo_control_free(c);
			return NULL;
		}
	}
	return c;
}

static int unix_spec(const char *prefix, const char *path,
		     struct colo_sock_addr *a, char *err, size_t errlen)
{
	struct colo_sock_spec spec;
	char s[COLO_SOCK_PATH_MAX + 16];

	snprintf(s, sizeof(s), "%s%s", prefix, path);
	if (colo_sock_spec_parse(s, &spec, err, errlen) < 0 ||
	    colo_sock_resolve(&spec, a, err, errlen) < 0)
		return -1;
	return 0;
}

int colo_control_listen(struct colo_control *c, const char *path, char *err,
			size_t errlen)
{
	struct colo_sock_addr a;

	if (strlen(path) >= sizeof(c->path)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if (unix_spec("unix-listen:", path, &a, err, errlen) < 0)
		return -1;
	c->listen_fd = colo_sock_listen(&a);
	if (c->listen_fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	return 0;
}

int colo_control_start(struct colo_control *c)
{
	int r = pthread_create(&c->thread, NULL, control_main, c);

	if (r)
		return -r;
	c->started = true;
	return 0;
}

void colo_control_free(struct colo_control *c)
{
	if (!c)
		return;
	if (c->started) {
		char b = 1;

		if (write(c->wake[1], &b, 1) < 0)
			(void)0;
		pthread_join(c->thread, NULL);
	}
	for (int i = 0; i < CLIENTS_MAX; i++) {
		if (c->clients[i].fd >= 0)
			close(c->clients[i].fd);
		free(c->clients[i].buf);
	}
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->path);
	}
	close(c->wake[0]);
	close(c->wake[1]);
	free(c);
}

char *colo_control_request(const char *path, const char *request,
			   unsigned int timeout_ms, char *err, size_t errlen)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	struct colo_sock_addr a;
	size_t len = 0, cap = 4096;
	char *buf = NULL;
	bool in_progress;
	int fd;

	if (unix_spec("unix:", path, &a, err, errlen) < 0)
		return NULL;
	fd = colo_sock_connect(&a, &in_progress);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (in_progress) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		poll(&p, 1, (int)timeout_ms);
	}
	if (!send_line(fd, request)) {
		snprintf(err, errlen, "%s: send: %s", path, strerror(errno));
		goto fail;
	}
	buf = malloc(cap);
	while (buf) {
		ssize_t n;
		char *nl;

		if (len + 1 == cap) {
			char *nb =
				cap >= (1 << 20) ? NULL : realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0) {
			snprintf(err, errlen, "%s: no reply (%s)", path,
				 n == 0 ? "closed" : strerror(errno));
			goto fail;
		}
		len += (size_t)n;
		buf[len] = '\0';
		nl = strchr(buf, '\n');
		if (nl) {
			*nl = '\0';
			close(fd);
			return buf;
		}
	}
	snprintf(err, errlen, "%s: reply too long", path);
fail:
	free(buf);
	close(fd);
	return NULL;
}

int colo_control_call(const char *path, struct json_object *req,
		      unsigned int timeout_ms, const char *prog)
{
	struct json_object *reply, *ok;
	char err[256], *out;
	int rc;

	out = colo_control_request(
		path, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN),
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
