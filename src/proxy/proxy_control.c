/*
 * proxy_control.c - the proxy's JSON control socket, served from the
 * proxy's own event loop.
 *
 * The request/reply format and the handler table are the blk daemons'
 * (src/blk/control.h, colo_control_handle), so `colo ctl` talks to both.
 * Unlike theirs, this server never blocks and never runs a thread: the
 * handlers touch the comparer and the ports, which belong to the loop.
 * A nested epoll fd gives the owner one fd to watch. Subscribers of
 * events get lines pushed; a subscriber that cannot keep up loses its
 * connection rather than stalling the data path.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"
#include "sock_spec.h"

#define CLIENTS_MAX    16
#define CLIENT_OUT_MAX (1u << 20)

struct pclient {
	int fd;
	bool events;
	size_t in_len;
	char *in;
	char *out;
	size_t out_len;
};

struct colo_pctl {
	struct colo_control_table t;
	int epfd, listen_fd;
	char path[COLO_SOCK_PATH_MAX];
	struct pclient cl[CLIENTS_MAX];
};

static void drop(struct colo_pctl *c, struct pclient *p)
{
	epoll_ctl(c->epfd, EPOLL_CTL_DEL, p->fd, NULL);
	close(p->fd);
	p->fd = -1;
	p->events = false;
	p->in_len = p->out_len = 0;
}

static void want_out(struct colo_pctl *c, struct pclient *p, bool on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0),
				  .data.u32 = (uint32_t)(p - c->cl) };

	epoll_ctl(c->epfd, EPOLL_CTL_MOD, p->fd, &ev);
}

static bool flush(struct colo_pctl *c, struct pclient *p)
{
	while (p->out_len) {
		ssize_t w = send(p->fd, p->out, p->out_len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0)
			return false;
		memmove(p->out, p->out + w, p->out_len - (size_t)w);
		p->out_len -= (size_t)w;
	}
	want_out(c, p, p->out_len > 0);
	return true;
}

static bool put_line(struct colo_pctl *c, struct pclient *p, const char *s)
{
	size_t n = strlen(s);
	char *nb;

	if (p->out_len + n + 1 > CLIENT_OUT_MAX)
		return false;
	nb = realloc(p->out, p->out_len + n + 1);
	if (!nb)
		return false;
	p->out = nb;
	memcpy(p->out + p->out_len, s, n);
	p->out[p->out_len + n] = '\n';
	p->out_len += n + 1;
	return flush(c, p);
}

/* "events" is the one request the table cannot answer: it changes what
 * the connection is. */
static bool is_events_request(const char *line, size_t n)
{
	struct json_object *o, *cmd;
	bool r = false;
	char *s = strndup(line, n);

	if (!s)
		return false;
	o = json_tokener_parse(s);
	free(s);
	if (o && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "cmd", &cmd) &&
	    json_object_is_type(cmd, json_type_string))
		r = strcmp(json_object_get_string(cmd), "events") == 0;
	json_object_put(o);
	return r;
}

static bool serve(struct colo_pctl *c, struct pclient *p)
{
	char *nl;

	while ((nl = memchr(p->in, '\n', p->in_len))) {
		size_t n = (size_t)(nl - p->in);
		char *reply;
		bool ok;

		if (is_events_request(p->in, n)) {
			p->events = true;
			reply = strdup("{\"ok\":true,\"events\":true}");
		} else {
			reply = colo_control_handle(&c->t, p->in, n);
		}
		ok = reply && put_line(c, p, reply);
		free(reply);
		if (!ok)
			return false;
		memmove(p->in, nl + 1, p->in_len - n - 1);
		p->in_len -= n + 1;
		if (p->fd < 0)
			return true;
	}
	return p->in_len < COLO_CONTROL_LINE_MAX;
}

static void read_client(struct colo_pctl *c, struct pclient *p)
{
	ssize_t n = recv(p->fd, p->in + p->in_len,
			 COLO_CONTROL_LINE_MAX - p->in_len, MSG_DONTWAIT);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		drop(c, p);
		return;
	}
	p->in_len += (size_t)n;
	if (!serve(c, p))
		drop(c, p);
}

static void accept_client(struct colo_pctl *c)
{
	int fd = colo_sock_accept(c->listen_fd);

	if (fd < 0)
		return;
	for (int i = 0; i < CLIENTS_MAX; i++) {
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u32 = (uint32_t)i };

		if (c->cl[i].fd >= 0)
			continue;
		c->cl[i].fd = fd;
		c->cl[i].in_len = c->cl[i].out_len = 0;
		c->cl[i].events = false;
		if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			c->cl[i].fd = -1;
		}
		return;
	}
	close(fd);
}

void colo_pctl_run(struct colo_pctl *c)
{
	struct epoll_event evs[CLIENTS_MAX + 1];
	int n = epoll_wait(c->epfd, evs, CLIENTS_MAX + 1, 0);

	for (int i = 0; i < n; i++) {
		uint32_t id = evs[i].data.u32;
		struct pclient *p;

		if (id == CLIENTS_MAX) {
			accept_client(c);
			continue;
		}
		p = &c->cl[id];
		if (p->fd < 0)
			continue;
		if ((evs[i].events & EPOLLOUT) && !flush(c, p)) {
			drop(c, p);
			continue;
		}
		if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			read_client(c, p);
	}
}

void colo_pctl_emit(struct colo_pctl *c, const char *name,
		    struct json_object *fields)
{
	struct json_object *o = fields ? fields : json_object_new_object();
	const char *s;

	if (!c) {
		json_object_put(o);
		return;
	}
	json_object_object_add(o, "event", json_object_new_string(name));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	for (int i = 0; i < CLIENTS_MAX; i++)
		if (c->cl[i].fd >= 0 && c->cl[i].events &&
		    !put_line(c, &c->cl[i], s))
			drop(c, &c->cl[i]);
	json_object_put(o);
}

struct colo_pctl *colo_pctl_new(const char *path,
				const struct colo_control_table *t, char *err,
				size_t errlen)
{
	struct colo_pctl *c = calloc(1, sizeof(*c));
	struct colo_sock_spec spec;
	struct colo_sock_addr a;
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = CLIENTS_MAX };
	char s[COLO_SOCK_PATH_MAX + 16];

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->t = *t;
	c->listen_fd = -1;
	for (int i = 0; i < CLIENTS_MAX; i++)
		c->cl[i].fd = -1;
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (strlen(path) >= sizeof(c->path)) {
		snprintf(err, errlen, "%s: path too long", path);
		goto fail;
	}
	snprintf(s, sizeof(s), "unix-listen:%s", path);
	if (colo_sock_spec_parse(s, &spec, err, errlen) < 0 ||
	    colo_sock_resolve(&spec, &a, err, errlen) < 0)
		goto fail;
	c->listen_fd = colo_sock_listen(&a);
	if (c->listen_fd < 0 || c->epfd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->listen_fd, &ev);
	for (int i = 0; i < CLIENTS_MAX; i++) {
		c->cl[i].in = malloc(COLO_CONTROL_LINE_MAX);
		if (!c->cl[i].in) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	return c;
fail:
	colo_pctl_free(c);
	return NULL;
}

void colo_pctl_free(struct colo_pctl *c)
{
	if (!c)
		return;
	for (int i = 0; i < CLIENTS_MAX; i++) {
		if (c->cl[i].fd >= 0) {
			flush(c, &c->cl[i]);
			close(c->cl[i].fd);
		}
		free(c->cl[i].in);
		free(c->cl[i].out);
	}
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		if (c->path[0])
			unlink(c->path);
	}
	if (c->epfd >= 0)
		close(c->epfd);
	free(c);
}

int colo_pctl_fd(const struct colo_pctl *c)
{
	return c->epfd;
}

static void add_u64(struct json_object *o, const char *name, uint64_t v)
{
	json_object_object_add(o, name, json_object_new_int64((int64_t)v));
}

void colo_pctl_add_port_stats(struct json_object *r, const char *name,
			      const struct colo_port *port)
{
	const struct colo_port_stats *ps = colo_port_stats(port);
	struct json_object *o = json_object_new_object();

	add_u64(o, "rx_frames", ps->rx_frames);
	add_u64(o, "rx_bytes", ps->rx_bytes);
	add_u64(o, "rx_gso", ps->rx_gso);
	add_u64(o, "rx_dropped", ps->rx_dropped);
	add_u64(o, "tx_frames", ps->tx_frames);
	add_u64(o, "tx_bytes", ps->tx_bytes);
	add_u64(o, "tx_gso", ps->tx_gso);
	add_u64(o, "tx_dropped", ps->tx_dropped);
	json_object_object_add(r, name, o);
}
