/*
 * nbd_server.c - the NBD server: sockets and threads around nbd_proto.c.
 *
 * An accept thread polls the listening sockets; each client gets a
 * reader thread that runs the handshake and then parses requests, plus,
 * when enabled (colo_nbd_server_set_workers; off by default, see
 * DEFAULT_WORKERS), a small pool of worker threads started on demand that
 * run device calls concurrently and send their replies themselves, in
 * completion order (NBD matches replies by cookie).
 *
 * Whether a request goes to the pool depends on how long its kind of
 * device call has recently taken. Fast calls (a plain image in the page
 * cache) are served inline by the reader, which is cheaper than any
 * hand-off: input is read in large chunks, so sixteen queued 4 KiB
 * requests cost one recv(), and inline replies are gathered and sent
 * with one sendmsg() when the input runs dry. Slow calls (the replicating
 * primary's writes wait for the secondary's ack) go to the pool, so a
 * client's queue depth becomes device-level parallelism. Every request
 * handed to the pool holds one of `workers` slots with its own payload
 * buffer; when none is free the reader stops reading (back-pressure).
 *
 * A device with pwrite_async (the replicating primary) gets the WRITEs
 * served inline without waiting for them: each takes one of ASYNC_MAX
 * completion records, whose callback sends the reply (none free: the
 * reader waits, back-pressure as for slots), so the client's queue depth
 * reaches the device without thread hand-offs. Such a write counts in
 * the gate until its completion.
 *
 * FLUSH waits until every earlier request of the connection completed,
 * so it covers every write replied to before it. DISC, EOF and errors
 * let the requests in flight finish before the socket is closed.
 *
 * A gate counts device calls in flight so that a checkpoint can hold the
 * guest's I/O: pause waits for the count to drop to zero and keeps new
 * calls out until resume.
 *
 * With TLS (STARTTLS during the handshake) a connection's bytes go
 * through a common/tls_stream.c session, which the reader, the workers
 * and the async completions may use at once, like the plain socket.
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
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "nbd_proto.h"
#include "nbd_server.h"
#include "sock_spec.h"
#include "tls.h"
#include "tls_stream.h"

#define MAX_LISTEN	  4
#define IN_CAP		  (128 * 1024)
#define OUT_CAP		  (128 * 1024)
#define MAX_BLOCK	  (32u * 1024 * 1024)
#define PREF_BLOCK	  4096u
#define HANDSHAKE_TIMEOUT 30 /* seconds without a byte from the client */
/* Inline by default: on the 2-core development VM, handing a request to a
 * worker costs more than it saves even for the replicating primary (4K
 * writes 43.8 MiB/s inline vs 31.4 with 8 workers, bench/blk/run.sh);
 * a secondary across a real network may want workers (set_workers). */
#define DEFAULT_WORKERS 0
#define MAX_WORKERS	64
#define SLOT_KEEP	(256 * 1024)	    /* larger slot buffers are freed */
#define SLOT_BUDGET	(64u * 1024 * 1024) /* payload bytes in the pool */
/*
 * Device calls that recently took longer than this (moving average) go
 * to the pool. A 64 KiB page-cache copy takes ~10 us; a replicated write
 * is at least one round trip to the secondary.
 */
#define SLOW_NS	    25000
#define LAT_INIT_NS (2 * SLOW_NS) /* start with the pool, learn */

#define ASYNC_MAX 64 /* async writes in flight per connection */

struct conn;

/* An async write in flight: what its completion needs to reply. */
struct awrite {
	struct conn *c;
	uint64_t cookie;
	struct awrite *next; /* in the free list */
};

/* A request handed to the worker pool, with its own payload buffer. */
struct slot {
	struct colo_nbd_req r;
	uint32_t blen; /* payload bytes counted in buffered */
	bool busy;     /* queued or running */
	uint8_t *data;
	size_t cap;
	struct slot *next; /* in the free list or the queue */
};

enum lat_class { LAT_READ, LAT_WRITE, LAT_CLASSES };

struct conn {
	struct colo_nbd_server *s;
	int fd;
	bool tcp;		     /* TLS required on it (with creds) */
	struct colo_tls_stream *tls; /* NULL: plain */
	pthread_t thread;
	bool done; /* the thread has finished; under s->lock */
	struct conn *next;
	char peer[80];
	bool no_zeroes;
	uint8_t *in; /* buffered input: [in_start, in_end) not yet used */
	size_t in_start, in_end;
	uint8_t *out; /* replies not yet sent */
	size_t out_len;
	uint8_t *data; /* the inline request's payload or read data */
	size_t data_cap;

	/* The worker pool, set up for the transmission phase. */
	pthread_mutex_t send_lock; /* the socket's output side, broken */
	bool broken;		   /* a send failed */
	pthread_mutex_t q_lock;	   /* everything below */
	pthread_cond_t work_cv;	   /* to workers: queued work or quit */
	pthread_cond_t done_cv;	   /* to the reader: a slot was released */
	struct slot *slots;
	unsigned n_slots;
	struct slot *free_slots, *q_head, *q_tail;
	unsigned busy;	 /* slots taken: queued or running */
	unsigned queued; /* in q_head..q_tail */
	unsigned idle;	 /* workers waiting for work */
	unsigned n_workers;
	size_t buffered; /* payload bytes of the busy slots */
	bool quit;
	pthread_t *workers;
	struct awrite aw[ASYNC_MAX]; /* async writes, under q_lock */
	struct awrite *free_aw;
	unsigned aw_busy;
};

struct colo_nbd_server {
	struct colo_blk_dev *dev;
	char *name, *description;
	const struct colo_tls_creds *creds; /* NULL: no STARTTLS */
	const char *tls_peer;
	bool insecure;
	struct colo_nbd_export exp;
	bool multi_conn;
	unsigned max_clients;
	unsigned workers; /* per connection; 0: serve everything inline */
	uint64_t lat_ns[LAT_CLASSES]; /* moving averages; __atomic */

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

static int send_tls(struct colo_tls_stream *st, const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++)
		if (colo_tls_stream_write_all(st, iov[i].iov_base,
					      iov[i].iov_len) < 0)
			return -1;
	return 0;
}

/*
 * The reader's gathered replies and the workers' replies share the
 * socket: each goes out whole under send_lock. A failed send shuts the
 * socket down, which the reader sees as EOF.
 */
static int send_locked(struct conn *c, struct iovec *iov, int n)
{
	int rc = -1;

	pthread_mutex_lock(&c->send_lock);
	if (!c->broken) {
		rc = c->tls ? send_tls(c->tls, iov, n)
			    : send_iov(c->fd, iov, n);
		if (rc) {
			c->broken = true;
			shutdown(c->fd, SHUT_RDWR);
		}
	}
	pthread_mutex_unlock(&c->send_lock);
	return rc;
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
	return send_locked(c, iov, n);
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
static ssize_t recv_tls(struct conn *c, void *buf, size_t n)
{
	ssize_t r = colo_tls_stream_try_read(c->tls, buf, n);

	if (r > 0)
		return r;
	if (r != -EAGAIN || flush_out(c))
		return 0;
	r = colo_tls_stream_read_some(c->tls, buf, n);
	return r > 0 ? r : 0;
}

static ssize_t recv_some(struct conn *c, void *buf, size_t n)
{
	ssize_t r;

	if (c->tls)
		return recv_tls(c, buf, n);

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

/* After the ACK of STARTTLS: nothing may have come after the option in
 * the clear (it would be taken as sent under TLS), then the handshake. */
static int start_tls(struct conn *c)
{
	char err[256];

	if (c->in_end != c->in_start) {
		colo_log_warn("nbd %s: bytes after STARTTLS before the TLS "
			      "handshake, closing",
			      c->peer);
		return -1;
	}
	c->tls = colo_tls_stream_start(c->fd, c->s->creds, true, c->s->tls_peer,
				       HANDSHAKE_TIMEOUT * 1000, 0,
				       HANDSHAKE_TIMEOUT * 1000, err,
				       sizeof(err));
	if (!c->tls) {
		colo_log_warn("nbd %s: %s", c->peer, err);
		return -1;
	}
	colo_log_info("nbd %s: TLS", c->peer);
	return 0;
}

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
		switch (colo_nbd_opt_tls(s->creds != NULL, s->creds && c->tcp,
					 c->tls != NULL, opt, len, &out)) {
		case COLO_NBD_TLS_CLOSE:
			colo_log_warn(
				"nbd %s: export name without TLS, closing",
				c->peer);
			return -1;
		case COLO_NBD_TLS_REPLIED:
			c->out_len = out.len;
			if (flush_out(c))
				return -1;
			continue;
		case COLO_NBD_TLS_START:
			c->out_len = out.len;
			if (flush_out(c) || start_tls(c))
				return -1;
			continue;
		case COLO_NBD_TLS_PASS:
			break;
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

static enum lat_class lat_class(uint16_t type)
{
	return type == NBD_CMD_READ ? LAT_READ : LAT_WRITE;
}

/* Runs one request on the device (data: its payload or read buffer). */
static int execute(struct colo_nbd_server *s, const struct colo_nbd_req *r,
		   uint8_t *data)
{
	struct colo_blk_dev *d = s->dev;
	const struct colo_blk_dev_ops *ops = colo_blk_dev_ops(d);
	bool fua = r->flags & NBD_CMD_FLAG_FUA;
	uint64_t t0 = 0;
	int rc = gate_enter(s);

	if (rc)
		return rc;
	if (r->type != NBD_CMD_FLUSH)
		t0 = colo_now_ns();
	switch (r->type) {
	case NBD_CMD_READ:
		rc = r->len ? ops->pread(d, data, r->len, r->off) : 0;
		break;
	case NBD_CMD_WRITE:
		rc = r->len ? ops->pwrite(d, data, r->len, r->off, fua) : 0;
		break;
	case NBD_CMD_FLUSH:
		rc = ops->flush(d);
		break;
	case NBD_CMD_TRIM:
		rc = ops->trim(d, r->len, r->off);
		if (!rc && fua)
			rc = ops->flush(d);
		break;
	case NBD_CMD_WRITE_ZEROES:
		rc = ops->write_zeroes(d, r->len, r->off, fua,
				       !(r->flags & NBD_CMD_FLAG_NO_HOLE));
		break;
	default:
		rc = -EINVAL;
	}
	gate_leave(s);
	if (t0) {
		/* avg += (sample - avg) / 8; flushes are not a guide */
		uint64_t *avg = &s->lat_ns[lat_class(r->type)];
		uint64_t a = __atomic_load_n(avg, __ATOMIC_RELAXED);
		uint64_t t = colo_now_ns() - t0;

		__atomic_store_n(avg, a - a / 8 + t / 8, __ATOMIC_RELAXED);
	}
	return rc;
}

/* ---- the worker pool of one connection ---- */

static void *worker_main(void *arg)
{
	struct conn *c = arg;

	pthread_mutex_lock(&c->q_lock);
	for (;;) {
		struct slot *sl;
		uint8_t hdr[NBD_SIMPLE_REPLY_LEN];
		struct iovec iov[2] = { { hdr, sizeof(hdr) } };
		uint32_t err;

		while (!c->q_head && !c->quit) {
			c->idle++;
			pthread_cond_wait(&c->work_cv, &c->q_lock);
			c->idle--;
		}
		sl = c->q_head;
		if (!sl)
			break; /* quit, and nothing left to do */
		c->q_head = sl->next;
		if (!c->q_head)
			c->q_tail = NULL;
		c->queued--;
		pthread_mutex_unlock(&c->q_lock);

		err = colo_nbd_errno(execute(c->s, &sl->r, sl->data));
		colo_nbd_simple_reply_encode(hdr, err, sl->r.cookie);
		if (sl->r.type == NBD_CMD_READ && !err && sl->r.len)
			iov[1] = (struct iovec){ sl->data, sl->r.len };
		send_locked(c, iov, iov[1].iov_len ? 2 : 1);

		pthread_mutex_lock(&c->q_lock);
		if (sl->cap > SLOT_KEEP) {
			free(sl->data);
			sl->data = NULL;
			sl->cap = 0;
		}
		c->buffered -= sl->blen;
		c->busy--;
		sl->busy = false;
		sl->next = c->free_slots;
		c->free_slots = sl;
		pthread_cond_signal(&c->done_cv);
	}
	pthread_mutex_unlock(&c->q_lock);
	return NULL;
}

static int pool_init(struct conn *c, unsigned n)
{
	pthread_mutex_init(&c->q_lock, NULL);
	pthread_cond_init(&c->work_cv, NULL);
	pthread_cond_init(&c->done_cv, NULL);
	if (!n)
		return 0;
	c->slots = calloc(n, sizeof(*c->slots));
	c->workers = calloc(n, sizeof(*c->workers));
	if (!c->slots || !c->workers)
		return -1;
	c->n_slots = n;
	for (unsigned i = 0; i < n; i++) {
		c->slots[i].next = c->free_slots;
		c->free_slots = &c->slots[i];
	}
	return 0;
}

/* Lets the queued requests finish, joins the workers and frees. */
static void pool_fini(struct conn *c)
{
	pthread_mutex_lock(&c->q_lock);
	c->quit = true;
	pthread_cond_broadcast(&c->work_cv);
	pthread_mutex_unlock(&c->q_lock);
	for (unsigned i = 0; i < c->n_workers; i++)
		pthread_join(c->workers[i], NULL);
	for (unsigned i = 0; i < c->n_slots; i++)
		free(c->slots[i].data);
	free(c->slots);
	free(c->workers);
	pthread_cond_destroy(&c->work_cv);
	pthread_cond_destroy(&c->done_cv);
	pthread_mutex_destroy(&c->q_lock);
}

static bool slot_ready(struct conn *c, const void *arg)
{
	size_t len = *(const uint32_t *)arg;

	return c->free_slots && (!c->busy || c->buffered + len <= SLOT_BUDGET);
}

/*
 * Waits, under q_lock, until ready(c, len). Gathered replies go out
 * first: the client may wait for them before it sends anything else.
 */
static void pool_wait(struct conn *c,
		      bool (*ready)(struct conn *, const void *),
		      const void *arg)
{
	while (!ready(c, arg)) {
		if (c->out_len) {
			pthread_mutex_unlock(&c->q_lock);
			flush_out(c);
			pthread_mutex_lock(&c->q_lock);
			continue;
		}
		pthread_cond_wait(&c->done_cv, &c->q_lock);
	}
}

static bool pool_idle(struct conn *c, const void *arg)
{
	(void)arg;
	return !c->busy;
}

/* Waits until every request handed to the pool has completed. */
static void pool_drain(struct conn *c)
{
	if (!c->n_workers) /* only the reader starts workers */
		return;
	pthread_mutex_lock(&c->q_lock);
	pool_wait(c, pool_idle, NULL);
	pthread_mutex_unlock(&c->q_lock);
}

/* ---- async writes (a device with pwrite_async) ---- */

static void aw_init(struct conn *c)
{
	for (unsigned i = 0; i < ASYNC_MAX; i++) {
		c->aw[i].c = c;
		c->aw[i].next = c->free_aw;
		c->free_aw = &c->aw[i];
	}
}

static bool aw_free(struct conn *c, const void *arg)
{
	(void)arg;
	return c->free_aw;
}

static bool aw_idle(struct conn *c, const void *arg)
{
	(void)arg;
	return !c->aw_busy;
}

/* Waits until every async write of the connection has been replied. */
static void aw_drain(struct conn *c)
{
	pthread_mutex_lock(&c->q_lock);
	pool_wait(c, aw_idle, NULL);
	pthread_mutex_unlock(&c->q_lock);
}

static void aw_put(struct awrite *w)
{
	struct conn *c = w->c;

	pthread_mutex_lock(&c->q_lock);
	w->next = c->free_aw;
	c->free_aw = w;
	c->aw_busy--;
	pthread_cond_signal(&c->done_cv);
	/* once unlocked, c may be gone: the reader waits for aw_busy 0 */
	pthread_mutex_unlock(&c->q_lock);
}

/* The completion, on any thread: the reply goes out whole, on its own. */
static void aw_done(void *arg, int result)
{
	struct awrite *w = arg;
	uint8_t hdr[NBD_SIMPLE_REPLY_LEN];
	struct iovec iov = { hdr, sizeof(hdr) };

	colo_nbd_simple_reply_encode(hdr, colo_nbd_errno(result), w->cookie);
	send_locked(w->c, &iov, 1);
	gate_leave(w->c->s);
	aw_put(w);
}

/* Starts r's write: 0 when aw_done will reply, else a negative errno. */
static int aw_write(struct conn *c, const struct colo_nbd_req *r,
		    const uint8_t *data)
{
	struct colo_blk_dev *d = c->s->dev;
	struct awrite *w;
	int rc;

	pthread_mutex_lock(&c->q_lock);
	pool_wait(c, aw_free, NULL);
	w = c->free_aw;
	c->free_aw = w->next;
	c->aw_busy++;
	pthread_mutex_unlock(&c->q_lock);
	w->cookie = r->cookie;
	rc = gate_enter(c->s);
	if (rc) {
		aw_put(w);
		return rc;
	}
	rc = colo_blk_dev_ops(d)->pwrite_async(d, data, r->len, r->off,
					       r->flags & NBD_CMD_FLAG_FUA,
					       aw_done, w);
	if (rc) {
		gate_leave(c->s);
		aw_put(w);
	}
	return rc;
}

static bool changes_data(uint16_t type)
{
	return type == NBD_CMD_WRITE || type == NBD_CMD_TRIM ||
	       type == NBD_CMD_WRITE_ZEROES;
}

/* No request in the pool overlaps r where either of them changes data. */
static bool no_overlap(struct conn *c, const void *arg)
{
	const struct colo_nbd_req *r = arg;

	for (unsigned i = 0; i < c->n_slots; i++) {
		const struct colo_nbd_req *o = &c->slots[i].r;

		if (c->slots[i].busy && o->len &&
		    (changes_data(r->type) || changes_data(o->type)) &&
		    r->off < o->off + o->len && o->off < r->off + r->len)
			return false;
	}
	return true;
}

/*
 * Overlapping requests take effect in the order they arrived, as when
 * they were served one after the other: r waits for those in the pool.
 */
static void wait_overlaps(struct conn *c, const struct colo_nbd_req *r)
{
	if (!c->n_workers || !r->len)
		return;
	pthread_mutex_lock(&c->q_lock);
	if (c->busy)
		pool_wait(c, no_overlap, r);
	pthread_mutex_unlock(&c->q_lock);
}

/*
 * A free slot with a buffer of len bytes, waiting for one if need be.
 * NULL when out of memory (the request gets NBD_ENOMEM).
 */
static struct slot *slot_get(struct conn *c, uint32_t len)
{
	struct slot *sl;

	pthread_mutex_lock(&c->q_lock);
	pool_wait(c, slot_ready, &len);
	sl = c->free_slots;
	pthread_mutex_unlock(&c->q_lock);
	sl->blen = len;
	if (len > sl->cap) {
		uint8_t *p = realloc(sl->data, len);

		if (!p)
			return NULL;
		sl->data = p;
		sl->cap = len;
	}
	return sl; /* still in the free list: only the reader takes slots */
}

/* Hands sl (from slot_get) to the workers; -1 if there are none. */
static int slot_queue(struct conn *c, struct slot *sl)
{
	int rc = 0;

	pthread_mutex_lock(&c->q_lock);
	if (c->queued + 1 > c->idle && c->n_workers < c->n_slots) {
		if (!pthread_create(&c->workers[c->n_workers], NULL,
				    worker_main, c))
			c->n_workers++;
	}
	if (c->n_workers) {
		c->free_slots = sl->next;
		sl->next = NULL;
		if (c->q_tail)
			c->q_tail->next = sl;
		else
			c->q_head = sl;
		c->q_tail = sl;
		c->queued++;
		c->busy++;
		c->buffered += sl->blen;
		sl->busy = true;
		pthread_cond_signal(&c->work_cv);
	} else {
		rc = -1;
	}
	pthread_mutex_unlock(&c->q_lock);
	return rc;
}

/* Whether r goes to the worker pool rather than being served inline. */
static bool use_pool(struct conn *c, const struct colo_nbd_req *r)
{
	if (!c->n_slots)
		return false;
	if (r->type == NBD_CMD_FLUSH)
		return true;
	return __atomic_load_n(&c->s->lat_ns[lat_class(r->type)],
			       __ATOMIC_RELAXED) > SLOW_NS;
}

static void transmission(struct conn *c)
{
	for (;;) {
		struct colo_nbd_req r;
		enum colo_nbd_req_verdict v;
		struct slot *sl = NULL;
		uint8_t *buf = NULL;
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
		if (v == COLO_NBD_REQ_OK && r.type == NBD_CMD_FLUSH) {
			pool_drain(c); /* covers every earlier write */
			aw_drain(c);
		} else if (v == COLO_NBD_REQ_OK)
			wait_overlaps(c, &r);
		if (v == COLO_NBD_REQ_OK && use_pool(c, &r)) {
			bool has_data = r.type == NBD_CMD_READ ||
					r.type == NBD_CMD_WRITE;

			sl = slot_get(c, has_data ? r.len : 0);
			if (!sl)
				v = COLO_NBD_REQ_ERROR, err = NBD_ENOMEM;
			else
				buf = sl->data;
		} else if (v == COLO_NBD_REQ_OK &&
			   (r.type == NBD_CMD_READ ||
			    r.type == NBD_CMD_WRITE) &&
			   data_reserve(c, r.len)) {
			v = COLO_NBD_REQ_ERROR, err = NBD_ENOMEM;
		} else {
			buf = c->data; /* data_reserve may have moved it */
		}
		if (payload &&
		    in_read(c, v == COLO_NBD_REQ_OK ? buf : NULL, payload))
			break;
		if (v == COLO_NBD_REQ_ERROR) {
			if (reply(c, err, r.cookie, NULL, 0))
				break;
			continue;
		}
		if (sl) {
			sl->r = r;
			if (!slot_queue(c, sl))
				continue;
			/* no worker could start: inline (in sl->data) */
		}
		if (!sl && r.type == NBD_CMD_WRITE && r.len &&
		    colo_blk_dev_ops(c->s->dev)->pwrite_async) {
			rc = aw_write(c, &r, buf);
			if (rc &&
			    reply(c, colo_nbd_errno(rc), r.cookie, NULL, 0))
				break;
			continue;
		}
		err = colo_nbd_errno(execute(c->s, &r, buf));
		if (reply(c, err, r.cookie, buf,
			  r.type == NBD_CMD_READ && !err ? r.len : 0))
			break;
	}
	aw_drain(c); /* their completions use c */
	flush_out(c);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct colo_nbd_server *s = c->s;

	pthread_mutex_init(&c->send_lock, NULL);
	c->in = malloc(IN_CAP);
	c->out = malloc(OUT_CAP);
	if (c->in && c->out && !data_reserve(c, COLO_NBD_OPT_DATA_MAX) &&
	    !handshake(c)) {
		set_rcv_timeout(c->fd, 0); /* clients may idle for hours */
		if (c->tls)
			colo_tls_stream_set_recv_timeout(c->tls, 0);
		colo_log_info("nbd %s: connected", c->peer);
		aw_init(c);
		if (pool_init(c, s->workers) == 0)
			transmission(c);
		pool_fini(c);
	}
	colo_log_info("nbd %s: disconnected", c->peer);
	free(c->in);
	free(c->out);
	free(c->data);
	c->in = c->out = c->data = NULL;
	pthread_mutex_destroy(&c->send_lock);
	colo_tls_stream_free(c->tls);
	c->tls = NULL;
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
	c->tcp = strncmp(c->peer, "unix#", 5) != 0;
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
	s->workers = DEFAULT_WORKERS;
	for (int i = 0; i < LAT_CLASSES; i++)
		s->lat_ns[i] = LAT_INIT_NS;
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

void colo_nbd_server_set_workers(struct colo_nbd_server *s, unsigned n)
{
	s->workers = n < MAX_WORKERS ? n : MAX_WORKERS;
}

void colo_nbd_server_set_tls(struct colo_nbd_server *s,
			     const struct colo_tls_creds *creds,
			     const char *peer_host, bool insecure)
{
	s->creds = creds;
	s->tls_peer = peer_host;
	s->insecure = insecure;
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
	if (spec.kind == COLO_SOCK_TCP_LISTEN && !s->creds && !s->insecure &&
	    !colo_sock_addr_is_loopback(&addr)) {
		snprintf(err, errlen,
			 "%s is not a loopback address: an NBD export over "
			 "TCP needs --tls-creds DIR (STARTTLS; or --insecure "
			 "to serve it in the clear)",
			 sock_spec);
		return -1;
	}
	if (spec.kind == COLO_SOCK_TCP_LISTEN && s->creds &&
	    !colo_tls_creds_can(s->creds, true)) {
		snprintf(err, errlen,
			 "%s: TLS needs server-cert.pem and server-key.pem in "
			 "the credentials",
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
