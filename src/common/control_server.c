/*
 * control_server.c - the JSON control socket inside a colo_loop.
 *
 * Every daemon's handlers touch state that belongs to its loop (the
 * comparer, the ports, the replication link), so the server runs there
 * and never blocks: input is read as it comes, each complete line is
 * answered through the daemon's table, and replies and events go to a
 * per-client output buffer flushed as the socket allows. A client whose
 * buffer would pass CLIENT_OUT_MAX (an events subscriber that stopped
 * reading) is disconnected: the data path never waits for a reader.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "evloop.h"
#include "log.h"
#include "sock_spec.h"

#define CLIENTS_MAX    16
#define CLIENT_OUT_MAX (1u << 20)

struct client {
	struct colo_control_server *srv;
	struct colo_loop_fd *h;
	int fd;	      /* -1: slot free */
	bool events;  /* subscribed: gets every emitted event */
	bool closing; /* peer shut its side: go once the output is out */
	size_t in_len, out_len, out_cap;
	char *in; /* COLO_CONTROL_LINE_MAX, kept across connections */
	char *out;
};

struct colo_control_server {
	struct colo_loop *loop;
	struct colo_control_table t;
	int listen_fd;
	struct colo_loop_fd *lh;
	char path[COLO_SOCK_PATH_MAX];
	/* the socket file we made: removed at the end only if path still
	 * names it (a successor may own path by then: colo up's promote) */
	dev_t dev;
	ino_t ino;
	struct client cl[CLIENTS_MAX];
};

/* Buffers stay with the slot: a handler may emit an event that drops the
 * very client whose request line it is answering. */
static void drop(struct client *c)
{
	colo_loop_del_fd(c->h);
	close(c->fd);
	c->h = NULL;
	c->fd = -1;
	c->events = c->closing = false;
	c->in_len = c->out_len = 0;
}

/* Sends what the socket takes; false when the client must go. */
static bool flush(struct client *c)
{
	size_t done = 0;

	while (done < c->out_len) {
		ssize_t w = send(c->fd, c->out + done, c->out_len - done,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0)
			return false;
		done += (size_t)w;
	}
	/* out is NULL until the first reply: memmove must not see it. */
	if (done && done < c->out_len)
		memmove(c->out, c->out + done, c->out_len - done);
	c->out_len -= done;
	/* A closing client's socket stays readable (EOF): watching EPOLLIN
	 * then would spin. */
	return colo_loop_mod_fd(c->h, c->closing   ? EPOLLOUT
				      : c->out_len ? EPOLLIN | EPOLLOUT
						   : EPOLLIN) == 0;
}

static bool put_line(struct client *c, const char *s)
{
	size_t n = strlen(s), need = c->out_len + n + 1;

	if (need > CLIENT_OUT_MAX)
		return false;
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *nb;

		while (cap < need)
			cap *= 2;
		nb = realloc(c->out, cap);
		if (!nb)
			return false;
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out[c->out_len + n] = '\n';
	c->out_len = need;
	return flush(c);
}

/* Answers every complete line; false when the client must go. */
static bool serve(struct client *c)
{
	char *nl;

	while (c->fd >= 0 && (nl = memchr(c->in, '\n', c->in_len))) {
		size_t n = (size_t)(nl - c->in);
		char *reply;
		bool ok;

		if (colo_control_is_events(c->in, n)) {
			c->events = true;
			reply = strdup("{\"ok\":true,\"events\":true}");
		} else {
			reply = colo_control_handle(&c->srv->t, c->in, n);
		}
		if (c->fd < 0) { /* dropped by an event the handler sent */
			free(reply);
			return true;
		}
		ok = reply && put_line(c, reply);
		free(reply);
		if (!ok)
			return false;
		memmove(c->in, nl + 1, c->in_len - n - 1);
		c->in_len -= n + 1;
	}
	if (c->fd >= 0 && c->in_len == COLO_CONTROL_LINE_MAX) {
		put_line(c, "{\"ok\":false,\"error\":\"request too long\"}");
		return false;
	}
	return true;
}

static void client_io(void *opaque, uint32_t events)
{
	struct client *c = opaque;
	ssize_t n;

	if ((events & EPOLLOUT) && (!flush(c) || (c->closing && !c->out_len))) {
		drop(c);
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)) || c->closing)
		return;
	n = recv(c->fd, c->in + c->in_len, COLO_CONTROL_LINE_MAX - c->in_len,
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0) {
		drop(c);
		return;
	}
	if (n == 0) {
		/* A client may half-close after its request: answer what
		 * came, then go once the answers are out. */
		bool ok = serve(c);

		if (c->fd < 0)
			return;
		c->closing = true;
		if (!ok || !flush(c) || !c->out_len)
			drop(c);
		return;
	}
	c->in_len += (size_t)n;
	if (!serve(c) && c->fd >= 0)
		drop(c);
}

/* The control socket can stop, fail over or release output: only root
 * and the daemon's own user may use it (the file's mode says the same;
 * this holds even if someone loosens the mode or passes the fd on). The
 * refusal is one best-effort line, so `colo ctl` can say why. */
static bool refuse_stranger(int fd)
{
	char why[160], line[256];
	ssize_t w;

	if (!colo_sock_peer_check(fd, why, sizeof(why)))
		return false;
	colo_log_warn("control: refused a client: %s", why);
	snprintf(line, sizeof(line),
		 "{\"ok\":false,\"error\":\"permission denied: %s\"}\n", why);
	w = send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w;
	close(fd);
	return true;
}

static void accept_clients(void *opaque, uint32_t events)
{
	struct colo_control_server *s = opaque;
	int fd;

	(void)events;
	while ((fd = colo_sock_accept(s->listen_fd)) >= 0) {
		struct client *c = NULL;

		for (int i = 0; i < CLIENTS_MAX && !c; i++)
			if (s->cl[i].fd < 0)
				c = &s->cl[i];
		if (c && !c->in)
			c->in = malloc(COLO_CONTROL_LINE_MAX);
		if (!c || !c->in) {
			close(fd);
			continue;
		}
		if (refuse_stranger(fd))
			continue;
		c->h = colo_loop_add_fd(s->loop, fd, EPOLLIN, client_io, c);
		if (!c->h) {
			close(fd);
			continue;
		}
		c->fd = fd;
	}
}

struct colo_control_server *
colo_control_server_new(struct colo_loop *l, const char *path,
			const struct colo_control_table *t, char *err,
			size_t errlen)
{
	struct colo_control_server *s = calloc(1, sizeof(*s));
	struct colo_sock_spec spec;
	struct colo_sock_addr a;
	char spec_s[COLO_SOCK_PATH_MAX + 16];
	struct stat st;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = l;
	s->t = *t;
	s->listen_fd = -1;
	for (int i = 0; i < CLIENTS_MAX; i++) {
		s->cl[i].srv = s;
		s->cl[i].fd = -1;
	}
	if (strlen(path) >= sizeof(s->path)) {
		snprintf(err, errlen, "%s: path too long", path);
		goto fail;
	}
	snprintf(spec_s, sizeof(spec_s), "unix-listen:%s", path);
	if (colo_sock_spec_parse(spec_s, &spec, err, errlen) < 0 ||
	    colo_sock_resolve(&spec, &a, err, errlen) < 0)
		goto fail;
	s->listen_fd = colo_sock_listen(&a);
	if (s->listen_fd < 0) {
		colo_sock_listen_error(&a, errno, err, errlen);
		goto fail;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (stat(path, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	s->lh = colo_loop_add_fd(l, s->listen_fd, EPOLLIN, accept_clients, s);
	if (!s->lh) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	return s;
fail:
	colo_control_server_free(s);
	return NULL;
}

void colo_control_server_free(struct colo_control_server *s)
{
	struct stat st;

	if (!s)
		return;
	for (int i = 0; i < CLIENTS_MAX; i++) {
		struct client *c = &s->cl[i];

		if (c->fd >= 0) {
			flush(c); /* last replies, best effort */
			drop(c);
		}
		free(c->in);
		free(c->out);
	}
	if (s->listen_fd >= 0) {
		colo_loop_del_fd(s->lh);
		close(s->listen_fd);
		if (s->path[0] && stat(s->path, &st) == 0 &&
		    st.st_dev == s->dev && st.st_ino == s->ino)
			unlink(s->path);
	}
	free(s);
}

void colo_control_server_emit(struct colo_control_server *s, const char *name,
			      struct json_object *fields)
{
	struct json_object *o = fields ? fields : json_object_new_object();
	const char *line;

	if (!s || !o) {
		json_object_put(o);
		return;
	}
	json_object_object_add(o, "event", json_object_new_string(name));
	line = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	for (int i = 0; i < CLIENTS_MAX; i++) {
		struct client *c = &s->cl[i];

		if (c->fd >= 0 && c->events && !put_line(c, line))
			drop(c);
	}
	json_object_put(o);
}
