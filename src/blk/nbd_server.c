/*
 * nbd_server.c - the NBD server: sockets and threads around nbd_proto.c.
 *
 * An accept thread polls the listening sockets; each client gets a
 * thread that runs the handshake and then serves requests in the order
 * they arrive. That is enough to keep up with a pipelining client: input
 * is read in large chunks, so sixteen queued 4 KiB requests cost one
 * recv(), and replies are gathered while more requests are already
 * waiting and sent with one sendmsg() when the input runs dry. A worker
 * pool would only add hand-offs on top of the same page-cache copies
 * (measured in bench/blk/README.md).
 *
 * A gate counts device calls in flight so that a checkpoint can hold the
 * guest's I/O: pause waits for the count to drop to zero and keeps new
 * calls out until resume.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "nbd_proto.h"
#include "nbd_server.h"
#include "sock_spec.h"

#define MAX_LISTEN	  4
#define IN_CAP		  (128 * 1024)
#define OUT_CAP		  (128 * 1024)
#define MAX_BLOCK	  (32u * 1024 * 1024)
#define PREF_BLOCK	  4096u
#define HANDSHAKE_TIMEOUT 30 /* seconds without a byte from the client */

struct conn {
	struct colo_nbd_server *s;
	int fd;
	pthread_t thread;
	bool done; /* the thread has finished; under s->lock */
	struct conn *next;
	char peer[80];
	bool no_zeroes;
	uint8_t *in; /* buffered input: [in_start, in_end) not yet used */
	size_t in_start, in_end;
	uint8_t *out; /* replies not yet sent */
	size_t out_len;
	uint8_t *data; /* one request's payload or read data */
	size_t data_cap;
};

struct colo_nbd_server {
	struct colo_blk_dev *dev;
	char *name, *description;
	struct colo_nbd_export exp;
	bool multi_conn;
	unsigned max_clients;

	int listen_fd[MAX_LISTEN];
	char unix_path[MAX_LISTEN][COLO_SOCK_PATH_MAX];
	int n_listen;
	int wake[2]; /* written to stop the accept thread */
	pthread_t accept_thread;
	bool running;

	pthread_mutex_t lock; /* conns, n_conns, done flags */
	struct conn *conns;
	unsigned n_conns;

	pthread_mutex_t gate_lock; /* the pause gate */
	pthread_cond_t gate_cv;
	unsigned inflight;
	bool paused, stopping;
};

/* ---- the pause gate ---- */

static int gate_enter(struct colo_nbd_server *s)
{
	int rc = 0;

	pthread_mutex_lock(&s->gate_lock);
	while (s->paused && !s->stopping)
		pthread_cond_wait(&s->gate_cv, &s->gate_lock);
	if (s->stopping)
		rc = -ESHUTDOWN;
	else
		s->inflight++;
	pthread_mutex_unlock(&s->gate_lock);
	return rc;
}

static void gate_leave(struct colo_nbd_server *s)
{
	pthread_mutex_lock(&s->gate_lock);
	if (--s->inflight == 0 && s->paused)
		pthread_cond_broadcast(&s->gate_cv);
	pthread_mutex_unlock(&s->gate_lock);
}

void colo_nbd_server_pause(struct colo_nbd_server *s)
{
	pthread_mutex_lock(&s->gate_lock);
	s->paused = true;
	while (s->inflight)
		pthread_cond_wait(&s->gate_cv, &s->gate_lock);
	pthread_mutex_unlock(&s->gate_lock);
}

void colo_nbd_server_resume(struct colo_nbd_server *s)
{
	pthread_mutex_lock(&s->gate_lock);
	s->paused = false;
	pthread_cond_broadcast(&s->gate_cv);
	pthread_mutex_unlock(&s->gate_lock);
}

/* ---- socket I/O of one connection ---- */

static int send_iov(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Sends the gathered replies, then hdr and data (either may be empty). */
static int send_with(struct conn *c, const void *hdr, size_t hlen,
		     const void *data, size_t dlen)
{
	struct iovec iov[3];
	int n = 0;

	if (c->out_len)
		iov[n++] = (struct iovec){ c->out, c->out_len };
	if (hlen)
		iov[n++] = (struct iovec){ (void *)hdr, hlen };
	if (dlen)
		iov[n++] = (struct iovec){ (void *)data, dlen };
	c->out_len = 0;
	return send_iov(c->fd, iov, n);
}

static int flush_out(struct conn *c)
{
	return c->out_len ? send_with(c, NULL, 0, NULL, 0) : 0;
}

/* A reply, gathered if it fits, else sent at once with what is pending. */
static int reply(struct conn *c, uint32_t err, uint64_t cookie,
		 const void *data, size_t dlen)
{
	uint8_t hdr[NBD_SIMPLE_REPLY_LEN];

	colo_nbd_simple_reply_encode(hdr, err, cookie);
	if (OUT_CAP - c->out_len < sizeof(hdr) + dlen)
		return send_with(c, hdr, sizeof(hdr), data, dlen);
	memcpy(c->out + c->out_len, hdr, sizeof(hdr));
	if (dlen)
		memcpy(c->out + c->out_len + sizeof(hdr), data, dlen);
	c->out_len += sizeof(hdr) + dlen;
	return 0;
}

/*
 * Receives some bytes. What is already there is taken without waiting;
 * before blocking, gathered replies go out, since the client may be
 * waiting for them before it sends more. Returns >0, or 0 on EOF, error
 * or timeout.
 */
static ssize_t recv_some(struct conn *c, void *buf, size_t n)
{
	ssize_t r;

	do {
		r = recv(c->fd, buf, n, MSG_DONTWAIT);
	} while (r < 0 && errno == EINTR);
	if (r > 0)
		return r;
	if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
		return 0;
	if (flush_out(c))
		return 0;
	do {
		r = recv(c->fd, buf, n, 0);
	} while (r < 0 && errno == EINTR);
	return r > 0 ? r : 0;
}

/* Makes n <= IN_CAP bytes available at c->in + c->in_start. */
static int in_need(struct conn *c, size_t n)
{
	if (c->in_end - c->in_start >= n)
		return 0;
	if (c->in_start) {
		memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
		c->in_end -= c->in_start;
		c->in_start = 0;
	}
	while (c->in_end < n) {
		ssize_t r = recv_some(c, c->in + c->in_end, IN_CAP - c->in_end);

		if (r <= 0)
			return -1;
		c->in_end += (size_t)r;
	}
	return 0;
}

/* Reads exactly n bytes into dst (dst NULL: discard them). */
static int in_read(struct conn *c, uint8_t *dst, size_t n)
{
	while (n) {
		size_t avail = c->in_end - c->in_start, k;

		if (!avail && dst && n >= IN_CAP / 2) {
			/* Large payloads skip the input buffer. */
			ssize_t r = recv_some(c, dst, n);

			if (r <= 0)
				return -1;
			dst += r;
			n -= (size_t)r;
			continue;
		}
		if (!avail && in_need(c, 1))
			return -1;
		avail = c->in_end - c->in_start;
		k = avail < n ? avail : n;
		if (dst) {
			memcpy(dst, c->in + c->in_start, k);
			dst += k;
		}
		c->in_start += k;
		n -= k;
	}
	return 0;
}

static int data_reserve(struct conn *c, size_t n)
{
	uint8_t *p;

	if (n <= c->data_cap)
		return 0;
	p = realloc(c->data, n);
	if (!p)
		return -1;
	c->data = p;
	c->data_cap = n;
	return 0;
}

static void set_rcv_timeout(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* ---- handshake ---- */

/* Returns 0 to go on to transmission, -1 to close. */
static int handshake(struct conn *c)
{
	struct colo_nbd_server *s = c->s;
	uint8_t greeting[NBD_GREETING_LEN], hdr[NBD_OPT_HDR_LEN];
	uint8_t flags[NBD_CLIENT_FLAGS_LEN];

	colo_nbd_greeting_encode(greeting);
	if (send_with(c, greeting, sizeof(greeting), NULL, 0) ||
	    in_read(c, flags, sizeof(flags)))
		return -1;
	if (colo_nbd_client_flags_decode(flags, &c->no_zeroes)) {
		colo_log_warn("nbd %s: unknown client flags, closing", c->peer);
		return -1;
	}
	for (;;) {
		struct colo_nbd_out out = { .buf = c->out, .cap = OUT_CAP };
		enum colo_nbd_opt_verdict v;
		uint32_t opt, len;
		const uint8_t *data = NULL;

		if (in_read(c, hdr, sizeof(hdr)))
			return -1;
		if (colo_nbd_opt_hdr_decode(hdr, &opt, &len)) {
			colo_log_warn("nbd %s: bad option magic, closing",
				      c->peer);
			return -1;
		}
		if (len <= COLO_NBD_OPT_DATA_MAX) {
			if (in_read(c, c->data, len))
				return -1;
			data = c->data;
		}
		v = colo_nbd_opt_handle(&s->exp, c->no_zeroes, opt, data, len,
					&out);
		c->out_len = out.len;
		if (out.overflow || flush_out(c))
			return -1;
		if (v == COLO_NBD_OPT_CLOSE)
			return -1;
		if (v == COLO_NBD_OPT_TRANSMIT)
			return 0;
	}
}

/* ---- transmission ---- */

static int execute(struct conn *c, const struct colo_nbd_req *r)
{
	struct colo_blk_dev *d = c->s->dev;
	bool fua = r->flags & NBD_CMD_FLAG_FUA;
	int rc = gate_enter(c->s);

	if (rc)
		return rc;
	switch (r->type) {
	case NBD_CMD_READ:
		rc = r->len ? d->ops->pread(d, c->data, r->len, r->off) : 0;
		break;
	case NBD_CMD_WRITE:
		rc = r->len ? d->ops->pwrite(d, c->data, r->len, r->off, fua)
			    : 0;
		break;
	case NBD_CMD_FLUSH:
		rc = d->ops->flush(d);
		break;
	case NBD_CMD_TRIM:
		rc = d->ops->trim(d, r->len, r->off);
		if (!rc && fua)
			rc = d->ops->flush(d);
		break;
	case NBD_CMD_WRITE_ZEROES:
		rc = d->ops->write_zeroes(d, r->len, r->off, fua,
					  !(r->flags & NBD_CMD_FLAG_NO_HOLE));
		break;
	default:
		rc = -EINVAL;
	}
	gate_leave(c->s);
	return rc;
}

static void transmission(struct conn *c)
{
	for (;;) {
		struct colo_nbd_req r;
		enum colo_nbd_req_verdict v;
		uint32_t err, payload;
		int rc;

		if (in_need(c, NBD_REQUEST_LEN))
			break;
		rc = colo_nbd_req_decode(c->in + c->in_start, &r);
		c->in_start += NBD_REQUEST_LEN;
		if (rc) {
			colo_log_warn("nbd %s: bad request magic, closing",
				      c->peer);
			break;
		}
		v = colo_nbd_req_check(&c->s->exp, &r, &err, &payload);
		if (v == COLO_NBD_REQ_CLOSE) {
			colo_log_warn("nbd %s: %s of %u bytes is too long, "
				      "closing",
				      c->peer, colo_nbd_cmd_name(r.type),
				      r.len);
			break;
		}
		if (v == COLO_NBD_REQ_DISC)
			break;
		if (v == COLO_NBD_REQ_OK &&
		    (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE) &&
		    data_reserve(c, r.len))
			v = COLO_NBD_REQ_ERROR, err = NBD_ENOMEM;
		if (payload &&
		    in_read(c, v == COLO_NBD_REQ_OK ? c->data : NULL, payload))
			break;
		if (v == COLO_NBD_REQ_ERROR) {
			if (reply(c, err, r.cookie, NULL, 0))
				break;
			continue;
		}
		err = colo_nbd_errno(execute(c, &r));
		if (reply(c, err, r.cookie, c->data,
			  r.type == NBD_CMD_READ && !err ? r.len : 0))
			break;
	}
	flush_out(c);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct colo_nbd_server *s = c->s;

	c->in = malloc(IN_CAP);
	c->out = malloc(OUT_CAP);
	if (c->in && c->out && !data_reserve(c, COLO_NBD_OPT_DATA_MAX) &&
	    !handshake(c)) {
		set_rcv_timeout(c->fd, 0); /* clients may idle for hours */
		colo_log_info("nbd %s: connected", c->peer);
		transmission(c);
	}
	colo_log_info("nbd %s: disconnected", c->peer);
	free(c->in);
	free(c->out);
	free(c->data);
	c->in = c->out = c->data = NULL;
	pthread_mutex_lock(&s->lock);
	/* Under the lock so that stop never shuts down a reused fd. */
	close(c->fd);
	c->fd = -1;
	c->done = true;
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- accepting ---- */

/* Joins and frees finished connections (all of them with all). */
static void reap(struct colo_nbd_server *s, bool all)
{
	for (;;) {
		struct conn **pp, *c = NULL;

		pthread_mutex_lock(&s->lock);
		for (pp = &s->conns; *pp; pp = &(*pp)->next) {
			if ((*pp)->done || all) {
				c = *pp;
				*pp = c->next;
				s->n_conns--;
				break;
			}
		}
		pthread_mutex_unlock(&s->lock);
		if (!c)
			return;
		pthread_join(c->thread, NULL);
		free(c);
	}
}

static void describe_peer(int fd, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	static unsigned long seq;

	if (getpeername(fd, (struct sockaddr *)&ss, &len) ||
	    ss.ss_family == AF_UNIX) {
		snprintf(buf, n, "unix#%lu", ++seq);
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		char host[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, n, "%s:%u", host, ntohs(a->sin_port));
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		char host[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, n, "[%s]:%u", host, ntohs(a->sin6_port));
	}
}

static void accept_one(struct colo_nbd_server *s, int lfd)
{
	int one = 1, fd = colo_sock_accept(lfd);
	struct conn *c;

	if (fd < 0)
		return;
	reap(s, false);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_rcv_timeout(fd, HANDSHAKE_TIMEOUT);
	c = calloc(1, sizeof(*c));
	if (!c || s->n_conns >= s->max_clients) {
		colo_log_warn("nbd: %s, refusing a client",
			      c ? "too many clients" : "out of memory");
		free(c);
		close(fd);
		return;
	}
	c->s = s;
	c->fd = fd;
	describe_peer(fd, c->peer, sizeof(c->peer));
	pthread_mutex_lock(&s->lock);
	if (pthread_create(&c->thread, NULL, conn_main, c)) {
		pthread_mutex_unlock(&s->lock);
		colo_log_warn("nbd: cannot start a client thread");
		close(fd);
		free(c);
		return;
	}
	c->next = s->conns;
	s->conns = c;
	s->n_conns++;
	pthread_mutex_unlock(&s->lock);
}

static void *accept_main(void *arg)
{
	struct colo_nbd_server *s = arg;
	struct pollfd p[MAX_LISTEN + 1];

	for (int i = 0; i < s->n_listen; i++)
		p[i] = (struct pollfd){ .fd = s->listen_fd[i],
					.events = POLLIN };
	p[s->n_listen] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
	for (;;) {
		if (poll(p, (nfds_t)s->n_listen + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			colo_log_warn("nbd: poll: %s", strerror(errno));
			return NULL;
		}
		if (p[s->n_listen].revents)
			return NULL;
		for (int i = 0; i < s->n_listen; i++)
			if (p[i].revents & POLLIN)
				accept_one(s, p[i].fd);
	}
}

/* ---- life cycle ---- */

static char *copy_string(const char *src)
{
	if (!src || strlen(src) > NBD_STRING_MAX)
		return NULL;
	return strdup(src);
}

struct colo_nbd_server *colo_nbd_server_new(struct colo_blk_dev *dev,
					    const char *export_name,
					    const char *description)
{
	struct colo_nbd_server *s;

	if (!dev || !dev->ops || !export_name)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->dev = dev;
	s->name = copy_string(export_name);
	if (description)
		s->description = copy_string(description);
	if (!s->name || (description && !s->description) ||
	    pipe2(s->wake, O_CLOEXEC | O_NONBLOCK)) {
		free(s->name);
		free(s->description);
		free(s);
		return NULL;
	}
	s->max_clients = 64;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->gate_lock, NULL);
	pthread_cond_init(&s->gate_cv, NULL);
	return s;
}

void colo_nbd_server_set_multi_conn(struct colo_nbd_server *s, bool on)
{
	s->multi_conn = on;
}

void colo_nbd_server_set_max_clients(struct colo_nbd_server *s, unsigned n)
{
	s->max_clients = n ? n : 1;
}

int colo_nbd_server_listen(struct colo_nbd_server *s, const char *sock_spec,
			   char *err, size_t errlen)
{
	struct colo_sock_spec spec;
	struct colo_sock_addr addr;
	char why[200];
	int fd;

	if (s->n_listen == MAX_LISTEN || s->running) {
		snprintf(err, errlen, "%s: too many listening sockets",
			 sock_spec);
		return -1;
	}
	if (colo_sock_spec_parse(sock_spec, &spec, why, sizeof(why)) ||
	    colo_sock_resolve(&spec, &addr, why, sizeof(why))) {
		snprintf(err, errlen, "%s: %s", sock_spec, why);
		return -1;
	}
	if (!colo_sock_spec_is_listen(&spec)) {
		snprintf(
			err, errlen,
			"%s: expected tcp-listen:HOST:PORT or unix-listen:PATH",
			sock_spec);
		return -1;
	}
	fd = colo_sock_listen(&addr);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", sock_spec, strerror(errno));
		return -1;
	}
	s->unix_path[s->n_listen][0] = '\0';
	if (spec.kind == COLO_SOCK_UNIX_LISTEN)
		strcpy(s->unix_path[s->n_listen], spec.path);
	s->listen_fd[s->n_listen++] = fd;
	return 0;
}

static void fill_export(struct colo_nbd_server *s)
{
	struct colo_blk_dev *d = s->dev;
	uint16_t f =
		NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA;

	if (d->read_only)
		f |= NBD_FLAG_READ_ONLY;
	else
		f |= NBD_FLAG_SEND_WRITE_ZEROES;
	if (d->can_trim && !d->read_only)
		f |= NBD_FLAG_SEND_TRIM;
	if (s->multi_conn)
		f |= NBD_FLAG_CAN_MULTI_CONN;
	s->exp = (struct colo_nbd_export){
		.name = s->name,
		.description = s->description,
		.size = d->size,
		.tflags = f,
		.min_block = 1,
		.pref_block = PREF_BLOCK,
		.max_block = MAX_BLOCK,
	};
}

int colo_nbd_server_start(struct colo_nbd_server *s)
{
	int rc;

	if (s->running)
		return 0;
	if (!s->n_listen)
		return -EINVAL;
	fill_export(s);
	pthread_mutex_lock(&s->gate_lock);
	s->stopping = false;
	pthread_mutex_unlock(&s->gate_lock);
	rc = pthread_create(&s->accept_thread, NULL, accept_main, s);
	if (rc)
		return -rc;
	s->running = true;
	return 0;
}

unsigned colo_nbd_server_clients(struct colo_nbd_server *s)
{
	unsigned n = 0;

	pthread_mutex_lock(&s->lock);
	for (struct conn *c = s->conns; c; c = c->next)
		n += !c->done;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void colo_nbd_server_stop(struct colo_nbd_server *s)
{
	char b = 0, sink[16];

	if (!s || !s->running)
		return;
	while (write(s->wake[1], &b, 1) < 0 && errno == EINTR)
		;
	pthread_join(s->accept_thread, NULL);
	while (read(s->wake[0], sink, sizeof(sink)) > 0)
		;
	pthread_mutex_lock(&s->gate_lock);
	s->stopping = true;
	s->paused = false;
	pthread_cond_broadcast(&s->gate_cv);
	pthread_mutex_unlock(&s->gate_lock);
	pthread_mutex_lock(&s->lock);
	for (struct conn *c = s->conns; c; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	reap(s, true);
	s->running = false;
}

void colo_nbd_server_free(struct colo_nbd_server *s)
{
	if (!s)
		return;
	colo_nbd_server_stop(s);
	for (int i = 0; i < s->n_listen; i++) {
		close(s->listen_fd[i]);
		if (s->unix_path[i][0])
			unlink(s->unix_path[i]);
	}
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->gate_lock);
	pthread_cond_destroy(&s->gate_cv);
	free(s->name);
	free(s->description);
	free(s);
}
