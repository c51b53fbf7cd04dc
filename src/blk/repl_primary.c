/*
 * repl_primary.c - local writes forwarded in order to the secondary.
 *
 * Two locks. `order` is held across "write the local image, put the
 * frame on the link" (and across each resync chunk's read-and-send), so
 * the secondary applies writes in the order the local image took them and
 * a resync chunk can never overtake, or be overtaken by, a newer write to
 * the same region. `lock` guards the link state, the queue of frames
 * awaiting an ack, the dirty maps and the counters; a writer waits for its
 * ack on `cond` after releasing `order`, which is what lets several
 * writes be in flight at once.
 *
 * The secondary applies frames in order and acks with the frame's
 * sequence number, so an ack for seq N acknowledges everything up to N.
 * When the link is lost, every frame still unacknowledged may or may not
 * have reached the secondary: its region goes into the dirty map, and
 * the writer completes (degraded). A lost link during a resync puts the
 * whole resync set back. An async write (pwrite_async) does not wait:
 * its completion rides on its last frame's queue entry and runs when
 * that entry is acked or lost.
 *
 * Threads: a link thread (connect, handshake, resync, pings, reconnect)
 * and, per connection, a receiver for the acks.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "dirty_map.h"
#include "log.h"
#include "repl_link.h"
#include "repl_primary.h"
#include "repl_primary_int.h"
#include "sock_spec.h"

const char *colo_repl_state_name(enum colo_repl_state s)
{
	switch (s) {
	case COLO_REPL_DEGRADED:
		return "degraded";
	case COLO_REPL_RESYNCING:
		return "resyncing";
	case COLO_REPL_PROTECTED:
		return "protected";
	}
	return "?";
}

/* ---- the unacknowledged queue (under lock) */

static int grow_lost(struct colo_repl_primary *p, size_t need)
{
	struct pending *n;

	if (need <= p->lost_cap)
		return 0;
	n = realloc(p->lost, need * sizeof(*n));
	if (!n)
		return -ENOMEM;
	p->lost = n;
	p->lost_cap = need;
	return 0;
}

int colo_prim_queue_push(struct colo_repl_primary *p, uint64_t seq,
			 uint64_t off, uint32_t len)
{
	if (p->qlen == p->qcap) {
		size_t ncap = p->qcap ? p->qcap * 2 : 64;
		struct pending *n;

		/* Room to set every queued completion aside on a link
		 * loss (link_lost_locked), reserved while memory is easy. */
		if (grow_lost(p, ncap))
			return -ENOMEM;
		n = malloc(ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (size_t i = 0; i < p->qlen; i++)
			n[i] = p->q[(p->qhead + i) % p->qcap];
		free(p->q);
		p->q = n;
		p->qcap = ncap;
		p->qhead = 0;
	}
	p->q[(p->qhead + p->qlen) % p->qcap] =
		(struct pending){ .seq = seq, .off = off, .len = len };
	p->qlen++;
	return 0;
}

/*
 * The link is gone: whatever it may have lost becomes dirty, and async
 * writers complete as synchronous ones do (the data is on our image and
 * the resync copies it). A completion sends an NBD reply, which blocks
 * while that client does not read: run under our lock it would stall
 * every writer and the control socket behind one client. So they are
 * moved to `lost` here and run by run_lost() once the lock is dropped.
 * `lost` is grown with the queue, so the move needs no memory; should
 * it be short anyway (a loss before an earlier one was drained and a
 * failed realloc), the rest completes here as before, counted.
 */
static void link_lost_locked(struct colo_repl_primary *p, const char *why)
{
	for (size_t i = 0; i < p->qlen; i++) {
		struct pending *e = &p->q[(p->qhead + i) % p->qcap];

		if (e->len)
			colo_dirty_map_mark(&p->dirty, e->off, e->len);
		if (!e->done)
			continue;
		if (p->nlost == p->lost_cap && grow_lost(p, p->nlost + 1)) {
			p->st.completions_under_lock++;
			e->done(e->arg, 0);
			continue;
		}
		p->lost[p->nlost++] = *e;
	}
	p->qlen = 0;
	if (p->resync_active) {
		colo_dirty_map_merge(&p->dirty, &p->resync);
		colo_dirty_map_clear_all(&p->resync);
		p->resync_active = false;
	}
	if (p->fd >= 0)
		shutdown(p->fd, SHUT_RDWR);
	if (p->state != COLO_REPL_DEGRADED) {
		colo_log_warn("blk primary: secondary lost (%s): degraded, "
			      "recording changes",
			      why);
		p->st.link_losses++;
		snprintf(p->st.last_loss, sizeof(p->st.last_loss), "%s", why);
	}
	p->state = COLO_REPL_DEGRADED;
	p->epoch++;
	pthread_cond_broadcast(&p->cond);
}

/* Completes what link_lost_locked() set aside, a batch at a time and
 * without the lock. Call with the lock not held. */
static void run_lost(struct colo_repl_primary *p)
{
	for (;;) {
		struct pending batch[32];
		size_t n = 0;

		pthread_mutex_lock(&p->lock);
		while (n < 32 && p->nlost)
			batch[n++] = p->lost[--p->nlost];
		pthread_mutex_unlock(&p->lock);
		for (size_t i = 0; i < n; i++)
			batch[i].done(batch[i].arg, 0);
		if (n < 32)
			return;
	}
}

void colo_prim_link_lost(struct colo_repl_primary *p, uint64_t epoch,
			 const char *why)
{
	pthread_mutex_lock(&p->lock);
	if (p->epoch == epoch)
		link_lost_locked(p, why);
	pthread_mutex_unlock(&p->lock);
	run_lost(p);
}

/* Wait until seq is acknowledged: 0, -ECONNRESET or -ETIMEDOUT. */
int colo_prim_wait_ack(struct colo_repl_primary *p, uint64_t seq,
		       uint64_t epoch, unsigned int timeout_ms)
{
	struct timespec dl = colo_deadline_in(timeout_ms * COLO_NS_PER_MS);
	int r = 0;

	pthread_mutex_lock(&p->lock);
	while (p->acked_seq < seq && p->epoch == epoch && !r) {
		if (!timeout_ms)
			pthread_cond_wait(&p->cond, &p->lock);
		else if (pthread_cond_timedwait(&p->cond, &p->lock, &dl))
			r = -ETIMEDOUT;
	}
	if (p->acked_seq < seq && !r)
		r = -ECONNRESET;
	if (p->acked_seq >= seq)
		r = 0;
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* ---- the device */

static int prim_pread(struct colo_blk_dev *d, void *buf, uint32_t len,
		      uint64_t off)
{
	struct colo_repl_primary *p = d->priv;

	return p->image->ops->pread(p->image, buf, len, off);
}

/*
 * Called with order held, after the local image took the write: forward
 * it, or record it when there is no secondary. Returns the sequence
 * number to wait for (0: nothing to wait for) and its link epoch.
 */
static uint64_t forward_locked(struct colo_repl_primary *p, const void *data,
			       uint32_t len, uint64_t off, uint16_t flags,
			       uint64_t *epoch)
{
	uint64_t last = 0;
	int fd;

	pthread_mutex_lock(&p->lock);
	p->st.writes++;
	if (p->state == COLO_REPL_DEGRADED) {
		colo_dirty_map_mark(&p->dirty, off, len);
		p->st.degraded_writes++;
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	fd = p->fd;
	*epoch = p->epoch;
	pthread_mutex_unlock(&p->lock);

	while (len) {
		uint32_t n = len < COLO_LINK_MAX_PAYLOAD
				     ? len
				     : COLO_LINK_MAX_PAYLOAD;
		struct colo_link_hdr h = {
			.type = COLO_LINK_WRITE,
			.flags = flags,
			.off = off,
			.len = n,
		};
		int r;

		pthread_mutex_lock(&p->lock);
		if (p->epoch != *epoch) { /* lost meanwhile: recorded */
			colo_dirty_map_mark(&p->dirty, off, len);
			pthread_mutex_unlock(&p->lock);
			break;
		}
		h.seq = ++p->next_seq;
		r = colo_prim_queue_push(p, h.seq, off, n);
		if (r < 0) {
			link_lost_locked(p, "out of memory");
			colo_dirty_map_mark(&p->dirty, off, len);
			pthread_mutex_unlock(&p->lock);
			run_lost(p);
			break;
		}
		p->st.forwarded++;
		p->st.forwarded_bytes += n;
		pthread_mutex_unlock(&p->lock);
		r = colo_link_send(fd, &h, data);
		if (r < 0) {
			colo_prim_link_lost(p, *epoch, strerror(-r));
			break;
		}
		last = h.seq;
		if (data)
			data = (const uint8_t *)data + n;
		off += n;
		len -= n;
	}
	return last;
}

static int prim_write(struct colo_repl_primary *p, const void *buf,
		      uint32_t len, uint64_t off, bool fua)
{
	uint16_t flags =
		(buf ? 0 : COLO_LINK_F_ZERO) | (fua ? COLO_LINK_F_FUA : 0);
	uint64_t seq, epoch = 0;
	int r;

	pthread_mutex_lock(&p->order);
	if (buf)
		r = p->image->ops->pwrite(p->image, buf, len, off, fua);
	else
		r = p->image->ops->write_zeroes(p->image, len, off, fua, true);
	if (r < 0) {
		pthread_mutex_unlock(&p->order);
		return r;
	}
	seq = forward_locked(p, buf, len, off, flags, &epoch);
	pthread_mutex_unlock(&p->order);
	/* a lost link: recorded, and done */
	if (seq && !p->async)
		colo_prim_wait_ack(p, seq, epoch, 0);
	return 0;
}

static int prim_pwrite(struct colo_blk_dev *d, const void *buf, uint32_t len,
		       uint64_t off, bool fua)
{
	return prim_write(d->priv, buf, len, off, fua);
}

/* prim_write without the wait: done runs once seq is acked (or lost). */
static int prim_pwrite_async(struct colo_blk_dev *d, const void *buf,
			     uint32_t len, uint64_t off, bool fua,
			     void (*done)(void *arg, int result), void *arg)
{
	struct colo_repl_primary *p = d->priv;
	uint64_t seq, epoch = 0;
	bool queued = false;
	int r;

	pthread_mutex_lock(&p->order);
	r = p->image->ops->pwrite(p->image, buf, len, off, fua);
	if (r < 0) {
		pthread_mutex_unlock(&p->order);
		return r;
	}
	seq = forward_locked(p, buf, len, off, fua ? COLO_LINK_F_FUA : 0,
			     &epoch);
	if (seq && !p->async) {
		/* With order held, nothing was queued after our last frame:
		 * if it is still unacked, it is the tail. */
		pthread_mutex_lock(&p->lock);
		if (p->qlen && p->epoch == epoch) {
			struct pending *e =
				&p->q[(p->qhead + p->qlen - 1) % p->qcap];

			if (e->seq == seq) {
				e->done = done;
				e->arg = arg;
				queued = true;
			}
		}
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_unlock(&p->order);
	if (!queued) /* async mode, degraded, lost or already acked */
		done(arg, 0);
	return 0;
}

static int prim_write_zeroes(struct colo_blk_dev *d, uint32_t len, uint64_t off,
			     bool fua, bool may_trim)
{
	(void)may_trim;
	return prim_write(d->priv, NULL, len, off, fua);
}

/* A discard becomes zeroes on both sides: both images must read alike. */
static int prim_trim(struct colo_blk_dev *d, uint32_t len, uint64_t off)
{
	return prim_write(d->priv, NULL, len, off, false);
}

/* Send a barrier; with protected_only, only when in sync. */
static int barrier(struct colo_repl_primary *p, uint16_t flags,
		   bool protected_only, unsigned int timeout_ms)
{
	struct colo_link_hdr h = { .type = COLO_LINK_BARRIER, .flags = flags };
	uint64_t epoch;
	int r, fd;

	pthread_mutex_lock(&p->order);
	pthread_mutex_lock(&p->lock);
	if (p->state == COLO_REPL_DEGRADED ||
	    (protected_only && p->state != COLO_REPL_PROTECTED)) {
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&p->order);
		return -ENOTCONN;
	}
	h.seq = ++p->next_seq;
	r = colo_prim_queue_push(p, h.seq, 0, 0);
	epoch = p->epoch;
	fd = p->fd;
	pthread_mutex_unlock(&p->lock);
	if (r == 0)
		r = colo_link_send(fd, &h, NULL);
	if (r < 0)
		colo_prim_link_lost(p, epoch, strerror(-r));
	pthread_mutex_unlock(&p->order);
	if (r < 0)
		return -ECONNRESET;
	r = colo_prim_wait_ack(p, h.seq, epoch, timeout_ms);
	if (r == 0) {
		pthread_mutex_lock(&p->lock);
		if (p->refused_seq == h.seq)
			r = -EALREADY;
		pthread_mutex_unlock(&p->lock);
	}
	return r;
}

static int prim_flush(struct colo_blk_dev *d)
{
	struct colo_repl_primary *p = d->priv;
	int r = p->image->ops->flush(p->image);

	if (r == 0 && !p->async)
		barrier(p, COLO_LINK_F_FLUSH, false, 0); /* lost: recorded */
	return r;
}

static const struct colo_blk_dev_ops prim_ops = {
	.pread = prim_pread,
	.pwrite = prim_pwrite,
	.pwrite_async = prim_pwrite_async,
	.flush = prim_flush,
	.trim = prim_trim,
	.write_zeroes = prim_write_zeroes,
};

int colo_repl_primary_checkpoint(struct colo_repl_primary *p,
				 unsigned int timeout_ms)
{
	int r = barrier(p, COLO_LINK_F_CHECKPOINT, true,
			timeout_ms ? timeout_ms : p->timeout_ms);

	if (r == 0) {
		pthread_mutex_lock(&p->lock);
		p->st.checkpoints++;
		pthread_mutex_unlock(&p->lock);
	}
	return r;
}

int colo_repl_primary_prepare(struct colo_repl_primary *p,
			      unsigned int timeout_ms)
{
	int r = barrier(p, COLO_LINK_F_PREPARE, true,
			timeout_ms ? timeout_ms : p->timeout_ms);

	if (r == 0) {
		pthread_mutex_lock(&p->lock);
		p->st.prepares++;
		pthread_mutex_unlock(&p->lock);
	}
	return r;
}

/* ---- the link */

/* Sleep ms unless stopped; true when stopped. */
static bool nap(struct colo_repl_primary *p, unsigned int ms)
{
	struct timespec dl = colo_deadline_in(ms * COLO_NS_PER_MS);
	bool stop;

	pthread_mutex_lock(&p->lock);
	if (!p->stop)
		pthread_cond_timedwait(&p->cond, &p->lock, &dl);
	stop = p->stop;
	pthread_mutex_unlock(&p->lock);
	return stop;
}

static int connect_link(struct colo_repl_primary *p)
{
	struct colo_sock_addr a;
	struct pollfd pfd;
	bool in_progress;
	char err[256];
	int fd, soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (colo_sock_resolve(&p->spec, &a, err, sizeof(err)) < 0)
		return -EHOSTUNREACH;
	fd = colo_sock_connect(&a, &in_progress);
	if (fd < 0)
		return -errno;
	if (in_progress) {
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		if (poll(&pfd, 1, (int)p->timeout_ms) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 ||
		    soerr) {
			close(fd);
			return -(soerr ? soerr : ETIMEDOUT);
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	colo_link_tune(fd, p->timeout_ms, p->timeout_ms);
	/* TLS before the HELLO: the secondary must prove its host first. */
	if (p->creds &&
	    colo_link_tls_start(fd, p->creds, false, p->tls_peer, p->timeout_ms,
				err, sizeof(err)) < 0) {
		if (strcmp(err, p->tls_err))
			colo_log_warn("blk primary: link to the secondary: %s",
				      err);
		snprintf(p->tls_err, sizeof(p->tls_err), "%s", err);
		close(fd);
		return -EACCES;
	}
	p->tls_err[0] = '\0';
	return fd;
}

static int handshake(struct colo_repl_primary *p, int fd)
{
	struct colo_link_hdr h = { .type = COLO_LINK_HELLO,
				   .len = COLO_LINK_HELLO_LEN };
	struct colo_link_hello hello = {
		.version = COLO_LINK_VERSION,
		.auth = p->creds ? COLO_LINK_AUTH_TLS : COLO_LINK_AUTH_NONE,
		.size = p->image->size,
		.granularity = p->dirty.gran,
		.features = COLO_LINK_FEAT_DIGEST,
	};
	uint8_t buf[COLO_LINK_HELLO_LEN];
	int r;

	colo_link_encode_hello(buf, &hello);
	r = colo_link_send(fd, &h, buf);
	if (r == 0)
		r = colo_link_recv(fd, &h, buf, sizeof(buf));
	if (r < 0)
		return r;
	if (h.type != COLO_LINK_HELLO ||
	    colo_link_decode_hello(buf, h.len, &hello) < 0)
		return -EPROTO;
	if (hello.version != COLO_LINK_VERSION ||
	    hello.auth !=
		    (p->creds ? COLO_LINK_AUTH_TLS : COLO_LINK_AUTH_NONE)) {
		colo_log_warn("blk primary: secondary speaks version %u auth "
			      "%u",
			      hello.version, hello.auth);
		return -EPROTONOSUPPORT;
	}
	if (hello.size != p->image->size) {
		colo_log_warn("blk primary: secondary image is %llu bytes, "
			      "ours %llu",
			      (unsigned long long)hello.size,
			      (unsigned long long)p->image->size);
		return -EINVAL;
	}
	/* An older secondary cannot hash: it gets full copies. */
	pthread_mutex_lock(&p->lock);
	p->peer_digest = hello.features & COLO_LINK_FEAT_DIGEST;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

struct receiver {
	struct colo_repl_primary *p;
	int fd;
	uint64_t epoch;
};

/* Acks, in order; any silence longer than timeout_ms ends the link. */
static void *receiver_main(void *arg)
{
	struct receiver *rc = arg;
	struct colo_repl_primary *p = rc->p;
	struct colo_link_hdr h;
	const char *why = NULL;

	while (!why) {
		/* payloads: only a DIGEST's, into rx (ours alone) */
		int r = colo_link_recv(rc->fd, &h, p->rx,
				       COLO_LINK_MAX_DIGESTS *
					       COLO_LINK_DIGEST_LEN);

		if (r < 0) {
			why = r == -EAGAIN ? "timeout" : strerror(-r);
			break;
		}
		if (h.type == COLO_LINK_PONG)
			continue;
		if (h.type != COLO_LINK_WRITE_ACK &&
		    h.type != COLO_LINK_BARRIER_ACK &&
		    h.type != COLO_LINK_RESYNC_END &&
		    h.type != COLO_LINK_DIGEST) {
			why = "unexpected frame";
			break;
		}
		if (h.flags & COLO_LINK_F_ERROR) {
			why = "secondary failed a request";
			break;
		}
		pthread_mutex_lock(&p->lock);
		if (p->epoch != rc->epoch) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		if (h.seq <= p->acked_seq || h.seq > p->next_seq) {
			pthread_mutex_unlock(&p->lock);
			why = "ack out of order";
			break;
		}
		if (h.type == COLO_LINK_DIGEST &&
		    colo_prim_digest_arrived(p, &h, p->rx) < 0) {
			pthread_mutex_unlock(&p->lock);
			why = "digests that answer no request";
			break;
		}
		if (h.flags & COLO_LINK_F_REFUSED)
			p->refused_seq = h.seq;
		p->acked_seq = h.seq;
		pthread_cond_broadcast(&p->cond);
		/* Completions run outside the lock, a batch at a time. */
		for (;;) {
			struct pending done[32];
			size_t n = 0;

			while (n < 32 && p->qlen &&
			       p->q[p->qhead].seq <= h.seq) {
				if (p->q[p->qhead].done)
					done[n++] = p->q[p->qhead];
				p->qhead = (p->qhead + 1) % p->qcap;
				p->qlen--;
			}
			pthread_mutex_unlock(&p->lock);
			for (size_t i = 0; i < n; i++)
				done[i].done(done[i].arg, 0);
			if (n < 32)
				break;
			pthread_mutex_lock(&p->lock);
		}
	}
	if (why)
		colo_prim_link_lost(p, rc->epoch, why);
	return NULL;
}

static void run_link(struct colo_repl_primary *p, int fd)
{
	struct receiver rc = { .p = p, .fd = fd };
	struct colo_link_hdr ping = { .type = COLO_LINK_PING };
	pthread_t rt;

	/* Link up under both locks: no write is between "recorded" and
	 * "forwarded", and the recorded set becomes the resync set. */
	pthread_mutex_lock(&p->order);
	pthread_mutex_lock(&p->lock);
	p->fd = fd;
	p->state = COLO_REPL_RESYNCING;
	p->acked_seq = p->next_seq;
	memcpy(p->resync.words, p->dirty.words,
	       ((p->dirty.nbits + 63) / 64) * sizeof(uint64_t));
	p->resync.ndirty = p->dirty.ndirty;
	colo_dirty_map_clear_all(&p->dirty);
	p->resync_active = true;
	p->st.connects++;
	rc.epoch = p->epoch;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->order);

	if (pthread_create(&rt, NULL, receiver_main, &rc) != 0) {
		colo_prim_link_lost(p, rc.epoch, "no thread");
		goto out;
	}
	if (colo_prim_resync(p, fd, rc.epoch) == 0) {
		/* Pings keep the secondary's receive timeout from firing and
		 * prove the link alive through its answers. */
		while (!nap(p, p->timeout_ms / 4)) {
			int r;

			pthread_mutex_lock(&p->lock);
			r = p->epoch == rc.epoch;
			pthread_mutex_unlock(&p->lock);
			if (!r)
				break;
			pthread_mutex_lock(&p->order);
			r = colo_link_send(fd, &ping, NULL);
			pthread_mutex_unlock(&p->order);
			if (r < 0)
				colo_prim_link_lost(p, rc.epoch, strerror(-r));
		}
	}
	colo_prim_link_lost(p, rc.epoch, "stopped");
	pthread_join(rt, NULL);
out:
	pthread_mutex_lock(&p->order);
	pthread_mutex_lock(&p->lock);
	p->fd = -1;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->order);
	colo_link_close(fd);
}

static void *link_main(void *arg)
{
	struct colo_repl_primary *p = arg;
	int last_err = 0;

	for (;;) {
		int fd;

		pthread_mutex_lock(&p->lock);
		fd = p->stop;
		pthread_mutex_unlock(&p->lock);
		if (fd)
			break;
		fd = connect_link(p);
		if (fd >= 0) {
			int r = handshake(p, fd);

			if (r == 0) {
				colo_log_info("blk primary: secondary "
					      "connected");
				run_link(p, fd);
				last_err = 0;
				continue;
			}
			colo_link_close(fd);
			fd = r;
		}
		if (fd != last_err)
			colo_log_warn("blk primary: secondary unreachable: %s",
				      strerror(-fd));
		last_err = fd;
		if (nap(p, p->reconnect_ms))
			break;
	}
	return NULL;
}

/* ---- life cycle */

/* The secondary's address: where we connect, never a listening one. */
static int parse_secondary(const char *secondary, struct colo_sock_spec *spec,
			   char *err, size_t errlen)
{
	if (colo_sock_spec_parse(secondary, spec, err, errlen) < 0)
		return -EINVAL;
	if (colo_sock_spec_is_listen(spec)) {
		snprintf(err, errlen,
			 "%s: the primary connects to the "
			 "secondary, not listens",
			 secondary);
		return -EINVAL;
	}
	return 0;
}

struct colo_repl_primary *
colo_repl_primary_new(const struct colo_repl_primary_cfg *cfg, char *err,
		      size_t errlen)
{
	struct colo_repl_primary *p;
	uint32_t gran = cfg->granularity ? cfg->granularity : 65536;

	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (parse_secondary(cfg->secondary, &p->spec, err, errlen) < 0)
		goto fail;
	if (colo_dirty_map_init(&p->dirty, cfg->image->size, gran) < 0 ||
	    colo_dirty_map_init(&p->resync, cfg->image->size, gran) < 0) {
		snprintf(err, errlen,
			 "granularity %u: must be a power of "
			 "two >= 512",
			 gran);
		goto fail;
	}
	p->chunk = malloc(gran);
	if (!p->chunk || colo_prim_digest_init(p) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Nothing is known of the secondary's image yet: all of it is to
	 * be copied, or compared. */
	colo_dirty_map_mark_all(&p->dirty);
	p->unknown = true;
	p->resync_full = cfg->resync_full;
	p->image = cfg->image;
	p->async = cfg->async;
	p->reconnect_ms = cfg->reconnect_ms ? cfg->reconnect_ms : 1000;
	p->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 5000;
	p->creds = cfg->creds;
	p->tls_peer = cfg->tls_peer;
	p->fd = -1;
	p->state = COLO_REPL_DEGRADED;
	p->st.granularity = gran;
	p->st.async = cfg->async;
	p->st.resync_full = cfg->resync_full;
	pthread_mutex_init(&p->order, NULL);
	pthread_mutex_init(&p->lock, NULL);
	if (colo_cond_init_monotonic(&p->cond)) {
		pthread_mutex_destroy(&p->order);
		pthread_mutex_destroy(&p->lock);
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->dev.ops = &prim_ops;
	p->dev.size = cfg->image->size;
	p->dev.can_trim = true;
	p->dev.priv = p;
	return p;
fail:
	colo_dirty_map_destroy(&p->dirty);
	colo_dirty_map_destroy(&p->resync);
	free(p->chunk);
	colo_prim_digest_free(p);
	free(p);
	return NULL;
}

struct colo_blk_dev *colo_repl_primary_dev(struct colo_repl_primary *p)
{
	return &p->dev;
}

int colo_repl_primary_start(struct colo_repl_primary *p)
{
	int r = pthread_create(&p->link_thread, NULL, link_main, p);

	if (r)
		return -r;
	p->started = true;
	return 0;
}

bool colo_repl_primary_running(struct colo_repl_primary *p)
{
	return p->started;
}

int colo_repl_primary_retarget(struct colo_repl_primary *p,
			       const char *secondary, char *err, size_t errlen)
{
	struct colo_sock_spec spec;

	if (p->started) {
		snprintf(err, errlen, "already replicating");
		return -EALREADY;
	}
	if (parse_secondary(secondary, &spec, err, errlen) < 0)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	p->spec = spec;
	p->stop = false;
	/* Another host's image: nothing of it is known. */
	colo_dirty_map_mark_all(&p->dirty);
	p->unknown = true;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int colo_repl_primary_drop(struct colo_repl_primary *p, const char *why)
{
	char reason[sizeof(p->st.last_loss)];
	int r = -ENOTCONN;

	snprintf(reason, sizeof(reason), "dropped: %s", why);
	pthread_mutex_lock(&p->lock);
	if (p->state != COLO_REPL_DEGRADED) {
		p->st.drops++;
		link_lost_locked(p, reason);
		r = 0;
	}
	pthread_mutex_unlock(&p->lock);
	/* The completions set aside are run by the link thread, which the
	 * loss wakes (run_link ends with colo_prim_link_lost), as after a
	 * timeout: never here, where a client that stopped reading its NBD
	 * replies would block the caller (the control socket's loop). */
	return r;
}

void colo_repl_primary_get_stats(struct colo_repl_primary *p,
				 struct colo_repl_primary_stats *st)
{
	pthread_mutex_lock(&p->lock);
	*st = p->st;
	st->state = p->state;
	st->acked_seq = p->acked_seq;
	st->inflight = p->qlen;
	st->dirty_bytes =
		colo_dirty_map_bytes(&p->dirty) +
		(p->resync_active ? colo_dirty_map_bytes(&p->resync) : 0);
	pthread_mutex_unlock(&p->lock);
}

void colo_repl_primary_stop(struct colo_repl_primary *p)
{
	if (!p->started)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	link_lost_locked(p, "stopping");
	pthread_mutex_unlock(&p->lock);
	run_lost(p);
	pthread_join(p->link_thread, NULL);
	p->started = false;
}

void colo_repl_primary_free(struct colo_repl_primary *p)
{
	if (!p)
		return;
	colo_repl_primary_stop(p);
	pthread_mutex_destroy(&p->order);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	colo_dirty_map_destroy(&p->dirty);
	colo_dirty_map_destroy(&p->resync);
	free(p->q);
	free(p->lost);
	free(p->chunk);
	colo_prim_digest_free(p);
	free(p);
}
