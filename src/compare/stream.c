/*
 * stream.c - a framed socket endpoint that survives its peers.
 *
 * Registration with epoll follows what the stream wants right now (read,
 * write, connect completion), so a stream held back by back-pressure is
 * simply absent from epoll: no busy wake-ups from a level-triggered
 * EPOLLHUP while nobody is reading. Its hang-up is seen when reading
 * resumes, after the data buffered before it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

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
	s->epfd = -1;
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

static void update_epoll(struct colo_stream *s)
{
	struct epoll_event ev;
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
	if (want != s->registered) {
		memset(&ev, 0, sizeof(ev));
		ev.events = want;
		ev.data.u64 = (uint64_t)s->id << 1;
		if (!want)
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		else
			epoll_ctl(s->epfd,
				  s->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
				  s->fd, &ev);
		s->registered = want;
	}
	if (lwant != s->listen_registered) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u64 = (uint64_t)s->id << 1 | 1;
		epoll_ctl(s->epfd, lwant ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
			  s->listen_fd, &ev);
		s->listen_registered = lwant;
	}
}

static void drop_fd(struct colo_stream *s)
{
	if (s->fd < 0)
		return;
	if (s->registered)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	s->registered = 0;
	close(s->fd);
	s->fd = -1;
	s->connecting = false;
}

static void attach(struct colo_stream *s, int fd)
{
	s->fd = fd;
	s->connecting = false;
	s->connects++;
	s->backoff_ns = BACKOFF_MIN_NS;
	s->retry_logged = false;
	if (s->has_reader)
		colo_frame_reader_reset(&s->reader);
	colo_log_info("%s: peer connected (%s)", s->name, s->label);
	update_epoll(s);
	if (s->ops->connected)
		s->ops->connected(s->opaque, s);
}

static void schedule_retry(struct colo_stream *s, uint64_t now_ns)
{
	s->retry_at_ns = now_ns + s->backoff_ns;
	s->backoff_ns *= 2;
	if (s->backoff_ns > BACKOFF_MAX_NS)
		s->backoff_ns = BACKOFF_MAX_NS;
}

static void connect_failed(struct colo_stream *s, int err, uint64_t now_ns)
{
	if (!s->retry_logged)
		colo_log_warn("%s: cannot connect to %s: %s; retrying", s->name,
			      s->label, strerror(err));
	s->retry_logged = true;
	drop_fd(s);
	schedule_retry(s, now_ns);
	update_epoll(s);
}

static void try_connect(struct colo_stream *s, uint64_t now_ns)
{
	bool in_progress;
	int fd = colo_sock_connect(&s->addr, &in_progress);

	if (fd < 0) {
		connect_failed(s, errno, now_ns);
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

static void disconnect(struct colo_stream *s, const char *why, uint64_t now_ns)
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
		schedule_retry(s, now_ns);
	}
	update_epoll(s);
	if (s->ops->disconnected)
		s->ops->disconnected(s->opaque, s);
}

int colo_stream_start(struct colo_stream *s, int epfd, uint32_t id,
		      uint64_t now_ns)
{
	char err[256];

	s->epfd = epfd;
	s->id = id;
	if (colo_sock_resolve(&s->spec, &s->addr, err, sizeof(err))) {
		colo_log_warn("%s: %s", s->name, err);
		return -1;
	}
	if (!colo_sock_spec_is_listen(&s->spec)) {
		try_connect(s, now_ns);
		return 0;
	}
	s->listen_fd = colo_sock_listen(&s->addr);
	if (s->listen_fd < 0) {
		colo_log_warn("%s: cannot listen on %s: %s", s->name, s->label,
			      strerror(errno));
		return -1;
	}
	colo_log_info("%s: listening on %s", s->name, s->label);
	update_epoll(s);
	return 0;
}

void colo_stream_close(struct colo_stream *s)
{
	drop_fd(s);
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
static bool parse_frames(struct colo_stream *s, uint64_t now_ns)
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
			disconnect(s, "malformed stream", now_ns);
			return false;
		}
	}
}

static void do_read(struct colo_stream *s, uint64_t now_ns)
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
			disconnect(s, strerror(errno), now_ns);
		return;
	}
	if (n == 0) {
		disconnect(s, "end of stream", now_ns);
		return;
	}
	if (!s->has_reader) {
		/* The out peer has nothing to say; QEMU ignores it too. */
		s->ignored_bytes += (uint64_t)n;
		return;
	}
	colo_frame_reader_commit(&s->reader, (size_t)n);
	parse_frames(s, now_ns);
}

void colo_stream_event(struct colo_stream *s, bool listen_fd, uint32_t events,
		       uint64_t now_ns)
{
	if (listen_fd) {
		int fd;

		if (s->fd >= 0 || s->listen_fd < 0)
			return;
		fd = colo_sock_accept(s->listen_fd);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				colo_log_warn("%s: accept: %s", s->name,
					      strerror(errno));
			return;
		}
		attach(s, fd);
		return;
	}
	if (s->fd < 0)
		return;
	if (s->connecting) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l))
			err = errno;
		if (err) {
			connect_failed(s, err, now_ns);
			return;
		}
		attach(s, s->fd);
		return;
	}
	if ((events & EPOLLOUT) && s->has_out) {
		colo_stream_flush(s, now_ns);
		if (s->fd < 0)
			return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR))
		do_read(s, now_ns);
}

uint64_t colo_stream_timer(struct colo_stream *s, uint64_t now_ns)
{
	if (s->retry_at_ns && s->fd < 0 && now_ns >= s->retry_at_ns) {
		s->retry_at_ns = 0;
		try_connect(s, now_ns);
	}
	return s->retry_at_ns && s->fd < 0 ? s->retry_at_ns : UINT64_MAX;
}

void colo_stream_flush(struct colo_stream *s, uint64_t now_ns)
{
	if (!s->has_out || !colo_stream_connected(s))
		return;
	if (colo_outbuf_pending(&s->out) &&
	    colo_outbuf_flush(&s->out, s->fd) < 0) {
		disconnect(s, strerror(errno), now_ns);
		return;
	}
	update_epoll(s);
}

void colo_stream_set_reading(struct colo_stream *s, bool on)
{
	s->reading = on;
	if (s->epfd >= 0)
		update_epoll(s);
}

void colo_stream_print_stats(const struct colo_stream *s, FILE *f)
{
	fprintf(f, "%s.connects %llu\n", s->name,
		(unsigned long long)s->connects);
	if (s->has_reader) {
		const struct colo_frame_counters *c = &s->reader.count;

		fprintf(f, "%s.frames %llu\n", s->name,
			(unsigned long long)c->frames);
		fprintf(f, "%s.bytes %llu\n", s->name,
			(unsigned long long)c->bytes);
		fprintf(f, "%s.malformed_zero_length %llu\n", s->name,
			(unsigned long long)c->zero_len);
		fprintf(f, "%s.malformed_vnet_hdr_len %llu\n", s->name,
			(unsigned long long)c->bad_vnet);
		fprintf(f, "%s.malformed_oversize %llu\n", s->name,
			(unsigned long long)c->oversize);
		fprintf(f, "%s.malformed_truncated %llu\n", s->name,
			(unsigned long long)c->truncated);
	}
	if (s->has_out) {
		fprintf(f, "%s.frames_queued %llu\n", s->name,
			(unsigned long long)s->out.frames);
		fprintf(f, "%s.pending_bytes %zu\n", s->name,
			colo_outbuf_pending(&s->out));
		fprintf(f, "%s.frames_cut %llu\n", s->name,
			(unsigned long long)s->out.truncated);
		fprintf(f, "%s.frames_lost_no_memory %llu\n", s->name,
			(unsigned long long)s->out.failed);
	}
}
