/*
 * repl_secondary.c - accept the primary's link and apply what it sends.
 *
 * One thread proves connections in a lobby (repl_lobby.c: several at
 * once, so strangers cannot queue the primary behind them) and serves
 * the one that joins: a primary that comes back after a failure replaces
 * nothing, since the old connection ends first (EOF, or the receive
 * timeout for a primary that vanished silently). Frames are applied in arrival
 * order and acknowledged only after they were applied, which is what makes the
 * primary's synchronous acks mean "on the secondary".
 *
 * A checkpoint barrier drops the disk buffer between the writes before
 * it and those after it: dropped any later, the originals that writes
 * from the next epoch saved would be lost, and a failover would show the
 * guest primary data it never saw. A prepare barrier only marks that
 * point; `colo vm` commits it through the control socket once the new
 * secondary VM is loaded (the primary stays stopped until then).
 *
 * Acks are cumulative (an ack for seq N covers every frame up to N), so
 * a WRITE's ack waits while more bytes are already on the link: one ack
 * then covers a burst. Any other frame sends the pending ack first.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "digest.h"
#include "log.h"
#include "repl_link.h"
#include "repl_lobby.h"
#include "repl_secondary.h"
#include "sock_spec.h"
#include "tls.h"

struct colo_repl_secondary {
	struct colo_disk_buffer *db;
	unsigned int recv_timeout_ms;
	int listen_fd;
	int wake[2]; /* pipe: stop or failover */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	int conn_fd; /* -1 when none */
	bool stop;
	bool failed_over;
	struct colo_repl_secondary_stats st;
	struct colo_link_reader rd; /* frames from the primary */
	uint64_t ack_seq;   /* a WRITE applied but not acked yet, 0: none */
	uint32_t peer_gran; /* the primary's HELLO granularity: of digests */
	struct colo_digester *dg; /* with the link's buffers */
	uint8_t *
		digests; /* COLO_LINK_MAX_DIGESTS digests, a DIGEST's payload */
	const struct colo_tls_creds *creds; /* NULL: plain link */
	const char *tls_peer;
	struct colo_repl_lobby *lobby; /* from start on */
};

static int ack(int fd, uint16_t type, uint64_t seq, int result)
{
	struct colo_link_hdr h = {
		.type = type,
		.seq = seq,
		.flags = result < 0 ? COLO_LINK_F_ERROR : 0,
	};

	return colo_link_send(fd, &h, NULL);
}

/* Sends the pending WRITE ack; with idle_only, only when no byte waits. */
static int flush_ack(struct colo_repl_secondary *s, int fd, bool idle_only)
{
	int queued = 0;

	if (!s->ack_seq)
		return 0;
	/* Acks are cumulative: while more frames are already here (in our
	 * buffer or the socket's), the ack of the last one will do. */
	if (idle_only && colo_link_reader_buffered(&s->rd) > 0)
		return 0;
	if (idle_only && ioctl(fd, FIONREAD, &queued) == 0 && queued > 0)
		return 0;
	queued = ack(fd, COLO_LINK_WRITE_ACK, s->ack_seq, 0);
	s->ack_seq = 0;
	return queued < 0 ? -EIO : 0;
}

/*
 * The digests of a range of the image, as it is at this point of the
 * primary's stream (every earlier frame is applied; the guest's own
 * writes stay in the active buffer, off the image). A range the HELLO's
 * granularity does not cut into whole granules of the image ends the
 * link; a read failure is reported (F_ERROR) before it does.
 */
static int answer_digest(struct colo_repl_secondary *s, int fd,
			 const struct colo_link_hdr *h)
{
	struct colo_blk_dev *img = colo_disk_buffer_image(s->db);
	struct colo_link_hdr a = { .type = COLO_LINK_DIGEST,
				   .seq = h->seq,
				   .off = h->off };
	uint32_t count;
	int r;

	if (colo_link_digest_span(h->off, h->len, s->peer_gran, img->size,
				  &count) < 0)
		return -EPROTO;
	r = colo_digest_range(s->dg, img, h->off, h->len, s->peer_gran,
			      s->digests);
	if (r < 0)
		a.flags = COLO_LINK_F_ERROR;
	else
		a.len = count * COLO_LINK_DIGEST_LEN;
	pthread_mutex_lock(&s->lock);
	s->st.digest_reqs++;
	s->st.digest_bytes += r < 0 ? 0 : h->len;
	s->st.last_seq = h->seq;
	pthread_mutex_unlock(&s->lock);
	if (colo_link_send(fd, &a, s->digests) < 0)
		return -EIO;
	return r;
}

/* One frame from the primary; <0 ends the connection. */
static int apply(struct colo_repl_secondary *s, int fd,
		 const struct colo_link_hdr *h, const uint8_t *payload)
{
	const void *data = (h->flags & COLO_LINK_F_ZERO) ? NULL : payload;
	struct colo_blk_dev *guest = colo_disk_buffer_dev(s->db);
	int r;

	if (h->type != COLO_LINK_WRITE) {
		r = flush_ack(s, fd, false);
		if (r < 0)
			return r;
	}
	switch (h->type) {
	case COLO_LINK_WRITE:
		if (h->off > guest->size || h->len > guest->size - h->off)
			return -EPROTO;
		r = colo_disk_buffer_apply_primary_write(s->db, h->off, h->len,
							 data);
		if (r == 0 && (h->flags & COLO_LINK_F_FUA))
			r = colo_disk_buffer_flush_image(s->db);
		pthread_mutex_lock(&s->lock);
		s->st.writes++;
		s->st.write_bytes += h->len;
		s->st.last_seq = h->seq;
		pthread_mutex_unlock(&s->lock);
		if (r < 0) { /* the failure ends the link anyway */
			ack(fd, COLO_LINK_WRITE_ACK, h->seq, r);
			return r;
		}
		s->ack_seq = h->seq;
		return flush_ack(s, fd, true);
	case COLO_LINK_BARRIER:
		r = 0;
		if (h->flags & COLO_LINK_F_FLUSH)
			r = colo_disk_buffer_flush_image(s->db);
		if (r == 0 && (h->flags & COLO_LINK_F_CHECKPOINT))
			r = colo_disk_buffer_checkpoint(s->db);
		if (r == 0 && (h->flags & COLO_LINK_F_PREPARE))
			r = colo_disk_buffer_prepare(s->db);
		pthread_mutex_lock(&s->lock);
		s->st.barriers++;
		if (h->flags & COLO_LINK_F_CHECKPOINT && r == 0)
			s->st.checkpoints++;
		if (h->flags & COLO_LINK_F_PREPARE && r == 0)
			s->st.prepares++;
		s->st.last_seq = h->seq;
		pthread_mutex_unlock(&s->lock);
		if (r == -EALREADY) {
			/* A second prepare is the caller's mistake, not the
			 * link's: refused, and the link goes on. */
			struct colo_link_hdr a = {
				.type = COLO_LINK_BARRIER_ACK,
				.seq = h->seq,
				.flags = COLO_LINK_F_REFUSED,
			};

			colo_log_warn("blk secondary: prepare refused: a "
				      "checkpoint is already prepared");
			return colo_link_send(fd, &a, NULL) < 0 ? -EIO : 0;
		}
		return ack(fd, COLO_LINK_BARRIER_ACK, h->seq, r) < 0 ? -EIO : r;
	case COLO_LINK_RESYNC_BEGIN:
		colo_log_info("blk secondary: resync of %llu bytes begins",
			      (unsigned long long)h->off);
		pthread_mutex_lock(&s->lock);
		s->st.resyncing = true;
		s->st.resync_bytes = 0;
		pthread_mutex_unlock(&s->lock);
		return 0;
	case COLO_LINK_RESYNC_DATA:
		if (h->off > guest->size || h->len > guest->size - h->off)
			return -EPROTO;
		r = colo_disk_buffer_apply_resync(s->db, h->off, h->len, data);
		pthread_mutex_lock(&s->lock);
		s->st.resync_bytes += h->len;
		pthread_mutex_unlock(&s->lock);
		return r;
	case COLO_LINK_RESYNC_END:
		/* The image now equals the primary's disk: that is a
		 * checkpoint, the start of the new secondary's epoch. */
		r = colo_disk_buffer_checkpoint(s->db);
		pthread_mutex_lock(&s->lock);
		s->st.resyncing = false;
		if (r == 0)
			s->st.resyncs++;
		s->st.last_seq = h->seq;
		pthread_mutex_unlock(&s->lock);
		colo_log_info("blk secondary: resync done");
		return ack(fd, COLO_LINK_RESYNC_END, h->seq, r) < 0 ? -EIO : r;
	case COLO_LINK_DIGEST_REQ:
		return answer_digest(s, fd, h);
	case COLO_LINK_PING: {
		struct colo_link_hdr pong = { .type = COLO_LINK_PONG };

		return colo_link_send(fd, &pong, NULL);
	}
	default:
		return -EPROTO;
	}
}

/* Answers the joiner's HELLO, which the lobby checked: the first bytes
 * we write on a connection. */
static int answer_hello(struct colo_repl_secondary *s, int fd)
{
	struct colo_blk_dev *guest = colo_disk_buffer_dev(s->db);
	struct colo_disk_buffer_stats dst;
	struct colo_link_hello hello;
	struct colo_link_hdr h = { .type = COLO_LINK_HELLO,
				   .len = COLO_LINK_HELLO_LEN };
	uint8_t hb[COLO_LINK_HELLO_LEN];

	colo_disk_buffer_get_stats(s->db, &dst);
	hello = (struct colo_link_hello){
		.version = COLO_LINK_VERSION,
		.auth = s->creds ? COLO_LINK_AUTH_TLS : COLO_LINK_AUTH_NONE,
		.size = guest->size,
		.granularity = dst.granularity,
		.features = COLO_LINK_FEAT_DIGEST,
	};
	colo_link_encode_hello(hb, &hello);
	return colo_link_send(fd, &h, hb);
}

/* The joiner's socket becomes the link: blocking plain I/O, or its TLS
 * session shared as a stream (which keeps the socket non-blocking). */
static int take_link(struct colo_repl_secondary *s, struct colo_repl_joiner *j)
{
	char err[256];

	colo_link_tune(j->fd, s->recv_timeout_ms, s->recv_timeout_ms);
	if (!j->tls) {
		fcntl(j->fd, F_SETFL, fcntl(j->fd, F_GETFL) & ~O_NONBLOCK);
		return 0;
	}
	if (colo_link_tls_adopt(j->fd, j->tls, err, sizeof(err)) == 0)
		return 0;
	colo_log_warn("blk secondary: %s", err);
	return -EIO;
}

/* The frame reader's 32 MiB buffer is only worth having for a peer that
 * said a valid HELLO: a stranger's connection costs nothing. Kept for
 * the next connections. */
static int alloc_buffers(struct colo_repl_secondary *s)
{
	if (!s->rd.buf && colo_link_reader_init(&s->rd) < 0)
		return -ENOMEM;
	if (!s->dg && !(s->dg = colo_digester_new()))
		return -ENOMEM;
	if (!s->digests && !(s->digests = malloc(COLO_LINK_MAX_DIGESTS *
						 COLO_LINK_DIGEST_LEN)))
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	s->st.buffer_bytes = s->rd.cap;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void serve(struct colo_repl_secondary *s, struct colo_repl_joiner *j)
{
	int fd = j->fd;
	struct colo_link_hdr h;
	int r = take_link(s, j);

	pthread_mutex_lock(&s->lock);
	if (r < 0 || s->stop || s->failed_over) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	s->conn_fd = fd;
	s->ack_seq = 0;
	s->peer_gran = j->hello.granularity;
	colo_link_reader_reset(&s->rd);
	pthread_mutex_unlock(&s->lock);

	r = answer_hello(s, fd);
	if (r == 0)
		r = alloc_buffers(s);
	if (r == 0) {
		/* A checkpoint prepared over an earlier link belongs to a
		 * primary that is gone; this one starts with a resync. */
		if (colo_disk_buffer_abort(s->db))
			colo_log_warn("blk secondary: the prepared checkpoint "
				      "of the previous link is abandoned");
		colo_log_info("blk secondary: primary connected");
		pthread_mutex_lock(&s->lock);
		s->st.connected = true;
		s->st.connects++;
		pthread_mutex_unlock(&s->lock);
	}
	while (r == 0) {
		const uint8_t *payload;

		r = colo_link_reader_next(&s->rd, fd, &h, &payload,
					  COLO_LINK_MAX_PAYLOAD);
		if (r == 0)
			r = apply(s, fd, &h, payload);
	}
	colo_log_warn("blk secondary: primary link ended: %s",
		      r == -ECONNRESET ? "closed"
		      : r == -EAGAIN   ? "timeout"
				       : strerror(-r));
	pthread_mutex_lock(&s->lock);
	s->conn_fd = -1;
	s->st.connected = false;
	s->st.resyncing = false;
	pthread_mutex_unlock(&s->lock);
}

/* The link's thread: the lobby proves connections until one joins, which
 * is served to its end before the lobby opens again (a primary that
 * comes back waits for its old link to end, as do strangers). */
static void *accept_main(void *arg)
{
	struct colo_repl_secondary *s = arg;

	for (;;) {
		struct colo_repl_joiner j;
		int r = colo_repl_lobby_wait(s->lobby, s->listen_fd, s->wake[0],
					     &j);
		bool stop;

		pthread_mutex_lock(&s->lock);
		stop = s->stop;
		pthread_mutex_unlock(&s->lock);
		if (r == 1 && stop) {
			colo_tls_free(j.tls);
			close(j.fd);
		}
		if (stop || r < 0)
			break;
		if (r == 0)
			continue;
		serve(s, &j);
		/* take_link gave the TLS session to the link's table, or
		 * freed it when that failed */
		colo_link_close(j.fd);
	}
	return NULL;
}

struct colo_repl_secondary *
colo_repl_secondary_new(struct colo_disk_buffer *db,
			unsigned int recv_timeout_ms, char *err, size_t errlen)
{
	struct colo_repl_secondary *s = calloc(1, sizeof(*s));

	if (!s || pipe2(s->wake, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "out of memory");
		free(s);
		return NULL;
	}
	s->db = db;
	s->recv_timeout_ms = recv_timeout_ms ? recv_timeout_ms : 10000;
	s->listen_fd = -1;
	s->conn_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void colo_repl_secondary_set_tls(struct colo_repl_secondary *s,
				 const struct colo_tls_creds *creds,
				 const char *peer_host)
{
	s->creds = creds;
	s->tls_peer = peer_host;
}

int colo_repl_secondary_listen(struct colo_repl_secondary *s,
			       const char *sock_spec, char *err, size_t errlen)
{
	struct colo_sock_spec spec;
	struct colo_sock_addr a;

	if (colo_sock_spec_parse(sock_spec, &spec, err, errlen) < 0)
		return -1;
	if (!colo_sock_spec_is_listen(&spec)) {
		snprintf(err, errlen, "%s: the secondary listens", sock_spec);
		return -1;
	}
	if (colo_sock_resolve(&spec, &a, err, errlen) < 0)
		return -1;
	s->listen_fd = colo_sock_listen(&a);
	if (s->listen_fd < 0) {
		snprintf(err, errlen, "%s: %s", sock_spec, strerror(errno));
		return -1;
	}
	return 0;
}

int colo_repl_secondary_start(struct colo_repl_secondary *s)
{
	int r;

	s->lobby =
		colo_repl_lobby_new(s->creds, s->tls_peer, s->recv_timeout_ms);
	if (!s->lobby)
		return -ENOMEM;
	r = pthread_create(&s->thread, NULL, accept_main, s);
	if (r)
		return -r;
	s->started = true;
	return 0;
}

static void kick(struct colo_repl_secondary *s)
{
	char c = 1;

	if (s->conn_fd >= 0)
		shutdown(s->conn_fd, SHUT_RDWR);
	if (write(s->wake[1], &c, 1) < 0)
		(void)0; /* the pipe is full: already woken */
}

int colo_repl_secondary_failover(struct colo_repl_secondary *s, bool guest_view)
{
	int r;

	pthread_mutex_lock(&s->lock);
	s->failed_over = true;
	if (s->conn_fd >= 0)
		shutdown(s->conn_fd, SHUT_RDWR);
	pthread_mutex_unlock(&s->lock);
	/* A frame being applied finishes first: the buffer's lock orders
	 * it before the fold, and later ones fail with -ESHUTDOWN. */
	r = guest_view ? colo_disk_buffer_failover(s->db)
		       : colo_disk_buffer_takeover(s->db);
	pthread_mutex_lock(&s->lock);
	s->st.failed_over = r == 0;
	pthread_mutex_unlock(&s->lock);
	if (r == 0)
		colo_log_info("blk secondary: failover done, serving the "
			      "image");
	return r;
}

void colo_repl_secondary_get_stats(struct colo_repl_secondary *s,
				   struct colo_repl_secondary_stats *st)
{
	struct colo_repl_lobby_stats ls = { 0 };

	if (s->lobby)
		colo_repl_lobby_get_stats(s->lobby, &ls);
	pthread_mutex_lock(&s->lock);
	*st = s->st;
	pthread_mutex_unlock(&s->lock);
	st->hello_timeouts = ls.hello_timeouts;
	st->refused = ls.refused;
	st->lobby_evicted = ls.evicted;
}

void colo_repl_secondary_stop(struct colo_repl_secondary *s)
{
	if (!s->started)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	kick(s);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	s->started = false;
}

void colo_repl_secondary_free(struct colo_repl_secondary *s)
{
	if (!s)
		return;
	colo_repl_secondary_stop(s);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	close(s->wake[0]);
	close(s->wake[1]);
	pthread_mutex_destroy(&s->lock);
	colo_link_reader_free(&s->rd);
	colo_digester_free(s->dg);
	free(s->digests);
	colo_repl_lobby_free(s->lobby);
	free(s);
}
