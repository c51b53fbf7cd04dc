/*
 * stream.c - a framed socket endpoint that survives its peers.
 *
 * Registration with the loop follows what the stream wants right now
 * (read, write, connect completion), so a stream held back by
 * back-pressure is simply absent from epoll: no busy wake-ups from a
 * level-triggered EPOLLHUP while nobody is reading. Its hang-up is seen
 * when reading resumes, after the data buffered before it. Connect
 * retries are a loop timer, armed only while a connect stream has no peer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop.h"
#include "log.h"
#include "stream.h"

#define BACKOFF_MIN_NS	(100ull * 1000000)
#define BACKOFF_MAX_NS	(5000ull * 1000000)
#define OUT_INITIAL_CAP (1024 * 1024)

int colo_stream_init(struct colo_stream *s, const char *name,
		     const struct colo_sock_spec *spec, bool reader,
		     enum colo_framing framing, bool out, bool out_vnet,
		     const struct colo_stream_ops *ops, void *opaque)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->spec = *spec;
	colo_sock_spec_format(spec, s->label, sizeof(s->label));
	s->ops = ops;
	s->opaque = opaque;
	s->listen_fd = -1;
	s->fd = -1;
	s->reading = true;
	s->backoff_ns = BACKOFF_MIN_NS;
	if (reader) {
		if (colo_frame_reader_init(&s->reader, framing,
					   COLO_FRAME_READER_DEFAULT_CAP))
			return -1;
		s->has_reader = true;
	}
	if (out) {
		if (colo_outbuf_init(&s->out, OUT_INITIAL_CAP, out_vnet))
			return -1;
		s->has_out = true;
	}
	return 0;
}

static void on_fd_event(void *opaque, uint32_t events);
static void on_listen_event(void *opaque, uint32_t events);

/* Makes the loop watch exactly what the stream wants now. */
static void update_epoll(struct colo_stream *s)
{
	uint32_t want = 0;
	bool lwant = s->listen_fd >= 0 && s->fd < 0;

	if (s->fd >= 0 && s->connecting) {
		want = EPOLLOUT;
	} else if (s->fd >= 0) {
		if (s->reading)
			want |= EPOLLIN | EPOLLRDHUP;
		if (s->has_out && colo_outbuf_pending(&s->out))
			want |= EPOLLOUT;
	}
	if (!want && s->fd_h) {
		colo_loop_del_fd(s->fd_h);
		s->fd_h = NULL;
	} else if (want && s->fd_h) {
		if (colo_loop_mod_fd(s->fd_h, want))
			colo_log_warn("%s: epoll: %s", s->name,
				      strerror(errno));
	} else if (want) {
		s->fd_h =
			colo_loop_add_fd(s->loop, s->fd, want, on_fd_event, s);
		if (!s->fd_h)
			colo_log_warn("%s: epoll: %s", s->name,
				      strerror(errno));
	}
	if (lwant && !s->listen_h) {
		s->listen_h = colo_loop_add_fd(s->loop, s->listen_fd, EPOLLIN,
					       on_listen_event, s);
		if (!s->listen_h)
			colo_log_warn("%s: epoll: %s", s->name,
				      strerror(errno));
	} else if (!lwant && s->listen_h) {
		colo_loop_del_fd(s->listen_h);
		s->listen_h = NULL;
	}
}

static void drop_fd(struct colo_stream *s)
{
	if (s->fd < 0)
		return;
	colo_loop_del_fd(s->fd_h);
	s->fd_h = NULL;
	close(s->fd);
	s->fd = -1;
	s->connecting = false;
}

static void attach(struct colo_stream *s, int fd)
{
	/* Every stream gets TCP_NODELAY, corking none: out is written once
	 * per wake-up with everything that wake-up released (already one
	 * batch), notify carries rare small messages that must leave now,
	 * and the inputs are only read. With Nagle, out's frames waited for
	 * the reader's delayed ACK: p50 154-215 us at 20k frames/s, against
	 * 50 us without (bench/run.sh LATENCY rows). */
	if (colo_sock_no_delay(fd))
		colo_log_warn("%s: TCP_NODELAY: %s", s->name, strerror(errno));
	s->fd = fd;
	s->connecting = false;
	s->connects++;
	colo_timer_disarm(s->retry);
	s->backoff_ns = BACKOFF_MIN_NS;
	s->retry_logged = false;
	if (s->has_reader)
		colo_frame_reader_reset(&s->reader);
	colo_log_info("%s: peer connected (%s)", s->name, s->label);
	update_epoll(s);
	if (s->ops->connected)
		s->ops->connected(s->opaque, s);
}

static void schedule_retry(struct colo_stream *s)
{
	colo_timer_arm_at(s->retry, colo_loop_now(s->loop) + s->backoff_ns);
	s->backoff_ns *= 2;
	if (s->backoff_ns > BACKOFF_MAX_NS)
		s->backoff_ns = BACKOFF_MAX_NS;
}

static void connect_failed(struct colo_stream *s, int err)
{
	if (!s->retry_logged)
		colo_log_warn("%s: cannot connect to %s: %s; retrying", s->name,
			      s->label, strerror(err));
	s->retry_logged = true;
	drop_fd(s);
	schedule_retry(s);
	update_epoll(s);
}

static void try_connect(struct colo_stream *s)
{
	bool in_progress;
	int fd = colo_sock_connect(&s->addr, &in_progress);

	if (fd < 0) {
		connect_failed(s, errno);
		return;
	}
	if (!in_progress) {
		attach(s, fd);
		return;
	}
	s->fd = fd;
	s->connecting = true;
	update_epoll(s);
}

static void disconnect(struct colo_stream *s, const char *why)
{
	if (s->has_reader && colo_frame_reader_eof(&s->reader))
		colo_log_warn("%s: malformed: stream ended inside a frame; "
			      "partial frame dropped",
			      s->name);
	if (s->has_out && colo_outbuf_drop_partial(&s->out))
		colo_log_warn("%s: peer left during a frame; the rest of that "
			      "frame is dropped",
			      s->name);
	drop_fd(s);
	s->disconnects++;
	colo_log_info("%s: peer disconnected (%s); waiting for it again",
		      s->name, why);
	if (!colo_sock_spec_is_listen(&s->spec)) {
		/* Retry soon: the peer usually comes straight back. */
		s->backoff_ns = BACKOFF_MIN_NS;
		schedule_retry(s);
	}
	update_epoll(s);
	if (s->ops->disconnected)
		s->ops->disconnected(s->opaque, s);
}

static void on_retry(void *opaque)
{
	struct colo_stream *s = opaque;

	if (s->fd < 0)
		try_connect(s);
}

int colo_stream_start(struct colo_stream *s, struct colo_loop *loop)
{
	char err[256];

	s->loop = loop;
	s->retry = colo_timer_new(loop, on_retry, s);
	if (!s->retry) {
		colo_log_warn("%s: out of memory", s->name);
		return -1;
	}
	if (colo_sock_resolve(&s->spec, &s->addr, err, sizeof(err))) {
		colo_log_warn("%s: %s", s->name, err);
		return -1;
	}
	if (!colo_sock_spec_is_listen(&s->spec)) {
		try_connect(s);
		return 0;
	}
	s->listen_fd = colo_sock_listen(&s->addr);
	if (s->listen_fd < 0) {
		colo_sock_listen_error(&s->addr, errno, err, sizeof(err));
		colo_log_warn("%s: cannot listen on %s: %s", s->name, s->label,
			      err);
		return -1;
	}
	colo_log_info("%s: listening on %s", s->name, s->label);
	update_epoll(s);
	return 0;
}

void colo_stream_close(struct colo_stream *s)
{
	drop_fd(s);
	colo_timer_free(s->retry);
	s->retry = NULL;
	colo_loop_del_fd(s->listen_h);
	s->listen_h = NULL;
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		s->listen_fd = -1;
		if (s->spec.kind == COLO_SOCK_UNIX_LISTEN)
			unlink(s->spec.path);
	}
	if (s->has_reader)
		colo_frame_reader_free(&s->reader);
	if (s->has_out)
		colo_outbuf_free(&s->out);
	s->has_reader = s->has_out = false;
}

void colo_stream_disconnect(struct colo_stream *s, const char *why)
{
	if (s->fd >= 0)
		disconnect(s, why);
}

bool colo_stream_connected(const struct colo_stream *s)
{
	return s->fd >= 0 && !s->connecting;
}

static uint32_t peek_len(const struct colo_frame_reader *r)
{
	const uint8_t *p = r->buf + r->head;

	if (r->tail - r->head < 4)
		return 0;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Returns false when the connection is gone. */
static bool parse_frames(struct colo_stream *s)
{
	struct colo_frame_reader *r = &s->reader;
	struct colo_frame f;

	for (;;) {
		uint64_t zero = r->count.zero_len;
		uint32_t len = peek_len(r);

		switch (colo_frame_reader_next(r, &f)) {
		case COLO_FRAME_NEED_MORE:
			return true;
		case COLO_FRAME_OK:
			s->ops->frame(s->opaque, s, &f);
			if (s->fd < 0) /* the handler dropped the peer */
				return false;
			break;
		case COLO_FRAME_SKIPPED:
			if (r->count.zero_len != zero)
				colo_log_warn("%s: malformed: zero-length "
					      "frame skipped",
					      s->name);
			else
				colo_log_warn("%s: malformed: vnet_hdr_len "
					      "over frame length %u; frame "
					      "skipped",
					      s->name, len);
			break;
		case COLO_FRAME_DESYNC:
			colo_log_warn("%s: malformed: frame length %u over "
				      "%u; stream lost, dropping the peer",
				      s->name, len, COLO_FRAME_MAX);
			disconnect(s, "malformed stream");
			return false;
		}
	}
}

static void do_read(struct colo_stream *s)
{
	static uint8_t scratch[4096];
	size_t avail = sizeof(scratch);
	uint8_t *p = scratch;
	ssize_t n;

	if (s->has_reader)
		p = colo_frame_reader_space(&s->reader, &avail);
	do {
		n = read(s->fd, p, avail);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			disconnect(s, strerror(errno));
		return;
	}
	if (n == 0) {
		disconnect(s, "end of stream");
		return;
	}
	if (!s->has_reader) {
		/* The out peer has nothing to say; QEMU ignores it too. */
		s->ignored_bytes += (uint64_t)n;
		return;
	}
	colo_frame_reader_commit(&s->reader, (size_t)n);
	parse_frames(s);
}

static void on_listen_event(void *opaque, uint32_t events)
{
	struct colo_stream *s = opaque;
	char why[160];
	int fd;

	(void)events;
	if (s->fd >= 0 || s->listen_fd < 0)
		return;
	fd = colo_sock_accept(s->listen_fd);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			colo_log_warn("%s: accept: %s", s->name,
				      strerror(errno));
		return;
	}
	/* A UNIX stream reaches the comparer's inputs or, for --notify,
	 * releases held output: root and our own user only. */
	if (colo_sock_peer_check(fd, why, sizeof(why))) {
		colo_log_warn("%s: refused a peer: %s", s->name, why);
		s->refused++;
		close(fd);
		return;
	}
	attach(s, fd);
}

static void on_fd_event(void *opaque, uint32_t events)
{
	struct colo_stream *s = opaque;

	if (s->fd < 0)
		return;
	if (s->connecting) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l))
			err = errno;
		if (err) {
			connect_failed(s, err);
			return;
		}
		attach(s, s->fd);
		return;
	}
	if ((events & EPOLLOUT) && s->has_out) {
		colo_stream_flush(s);
		if (s->fd < 0)
			return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR))
		do_read(s);
}

void colo_stream_flush(struct colo_stream *s)
{
	if (!s->has_out || !colo_stream_connected(s))
		return;
	if (colo_outbuf_pending(&s->out) &&
	    colo_outbuf_flush(&s->out, s->fd) < 0) {
		disconnect(s, strerror(errno));
		return;
	}
	update_epoll(s);
}

void colo_stream_set_reading(struct colo_stream *s, bool on)
{
	s->reading = on;
	if (s->loop)
		update_epoll(s);
}

struct stream_counter {
	const char *key;
	uint64_t v;
};

/* Prints "NAME.key value" per counter; stops at the first NULL key. */
static void print_counters(FILE *f, const char *name,
			   const struct stream_counter *c)
{
	for (; c->key; c++)
		fprintf(f, "%s.%s %llu\n", name, c->key,
			(unsigned long long)c->v);
}

void colo_stream_print_stats(const struct colo_stream *s, FILE *f)
{
	const struct colo_frame_counters *rc = &s->reader.count;

	print_counters(f, s->name,
		       (const struct stream_counter[]){
			       { "connects", s->connects },
			       { s->spec.kind == COLO_SOCK_UNIX_LISTEN
					 ? "peers_refused"
					 : NULL,
				 s->refused },
			       { NULL, 0 } });
	if (s->has_reader)
		print_counters(
			f, s->name,
			(const struct stream_counter[]){
				{ "frames", rc->frames },
				{ "bytes", rc->bytes },
				{ "malformed_zero_length", rc->zero_len },
				{ "malformed_vnet_hdr_len", rc->bad_vnet },
				{ "malformed_oversize", rc->oversize },
				{ "malformed_truncated", rc->truncated },
				{ NULL, 0 } });
	if (s->has_out)
		print_counters(
			f, s->name,
			(const struct stream_counter[]){
				{ "frames_queued", s->out.frames },
				{ "pending_bytes",
				  colo_outbuf_pending(&s->out) },
				{ "frames_cut", s->out.truncated },
				{ "frames_lost_no_memory", s->out.failed },
				{ "buffer_bytes", s->out.cap },
				{ "buffer_shrinks", s->out.shrinks },
				{ NULL, 0 } });
}
