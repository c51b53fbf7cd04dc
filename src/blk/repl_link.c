/*
 * repl_link.c - encode, check and decode replication link frames, and
 * move them over a blocking socket.
 *
 * Everything read from the socket passes colo_link_decode_hdr() before a
 * byte of payload is read: the length is bounded there, so a hostile or
 * broken peer can make us allocate or read at most COLO_LINK_MAX_PAYLOAD.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include "repl_link.h"
#include "repl_link_tls.h"
#include "tls_stream.h"
#include "byteorder.h"

void colo_link_encode_hdr(uint8_t out[COLO_LINK_HDR_LEN],
			  const struct colo_link_hdr *h)
{
	colo_put_be32(out, COLO_LINK_MAGIC);
	colo_put_be16(out + 4, h->type);
	colo_put_be16(out + 6, h->flags);
	colo_put_be64(out + 8, h->seq);
	colo_put_be64(out + 16, h->off);
	colo_put_be32(out + 24, h->len);
	colo_put_be32(out + 28, 0);
}

/* What len means, per type. */
enum len_kind {
	LEN_NONE,   /* must be 0 */
	LEN_HELLO,  /* COLO_LINK_HELLO_LEN */
	LEN_RANGE,  /* a range of the image, 1..COLO_LINK_MAX_PAYLOAD */
	LEN_SPAN,   /* a range to hash: any non-zero u32, checked later */
	LEN_DIGEST, /* whole digests, 1..COLO_LINK_MAX_DIGESTS (F_ERROR: 0) */
};

/* Per type: the flags it may carry and what len is. */
static const struct {
	uint16_t flags;
	enum len_kind len;
} type_rules[COLO_LINK_TYPE_MAX + 1] = {
	[COLO_LINK_HELLO] = { 0, LEN_HELLO },
	[COLO_LINK_WRITE] = { COLO_LINK_F_ZERO | COLO_LINK_F_FUA, LEN_RANGE },
	[COLO_LINK_WRITE_ACK] = { COLO_LINK_F_ERROR, LEN_NONE },
	[COLO_LINK_BARRIER] = { COLO_LINK_F_CHECKPOINT | COLO_LINK_F_FLUSH |
					COLO_LINK_F_PREPARE,
				LEN_NONE },
	[COLO_LINK_BARRIER_ACK] = { COLO_LINK_F_ERROR | COLO_LINK_F_REFUSED,
				    LEN_NONE },
	[COLO_LINK_RESYNC_BEGIN] = { 0, LEN_NONE },
	[COLO_LINK_RESYNC_DATA] = { COLO_LINK_F_ZERO, LEN_RANGE },
	[COLO_LINK_RESYNC_END] = { COLO_LINK_F_ERROR, LEN_NONE },
	[COLO_LINK_PING] = { 0, LEN_NONE },
	[COLO_LINK_PONG] = { 0, LEN_NONE },
	[COLO_LINK_DIGEST_REQ] = { 0, LEN_SPAN },
	[COLO_LINK_DIGEST] = { COLO_LINK_F_ERROR, LEN_DIGEST },
};

int colo_link_decode_hdr(const uint8_t in[COLO_LINK_HDR_LEN],
			 struct colo_link_hdr *h)
{
	if (colo_get_be32(in) != COLO_LINK_MAGIC || colo_get_be32(in + 28) != 0)
		return -EPROTO;
	h->type = colo_get_be16(in + 4);
	h->flags = colo_get_be16(in + 6);
	h->seq = colo_get_be64(in + 8);
	h->off = colo_get_be64(in + 16);
	h->len = colo_get_be32(in + 24);
	if (h->type == 0 || h->type > COLO_LINK_TYPE_MAX)
		return -EPROTO;
	if (h->flags & ~type_rules[h->type].flags)
		return -EPROTO;
	/* A barrier drops the buffers now or marks a later commit: not both. */
	if ((h->flags & COLO_LINK_F_CHECKPOINT) &&
	    (h->flags & COLO_LINK_F_PREPARE))
		return -EPROTO;
	switch (type_rules[h->type].len) {
	case LEN_NONE:
		return h->len == 0 ? 0 : -EPROTO;
	case LEN_HELLO:
		return h->len == COLO_LINK_HELLO_LEN ? 0 : -EPROTO;
	case LEN_DIGEST:
		/* A failed hash carries none; else whole digests. */
		if (h->flags & COLO_LINK_F_ERROR)
			return h->len == 0 ? 0 : -EPROTO;
		return h->len && h->len % COLO_LINK_DIGEST_LEN == 0 &&
				       h->len <= COLO_LINK_MAX_DIGESTS *
							 COLO_LINK_DIGEST_LEN
			       ? 0
			       : -EPROTO;
	case LEN_SPAN:
		return h->len && h->off <= UINT64_MAX - h->len ? 0 : -EPROTO;
	case LEN_RANGE:
		break;
	}
	if (h->len == 0 || h->len > COLO_LINK_MAX_PAYLOAD ||
	    h->off > UINT64_MAX - h->len)
		return -EPROTO;
	return 0;
}

int colo_link_digest_span(uint64_t off, uint32_t len, uint32_t gran,
			  uint64_t size, uint32_t *count)
{
	uint64_t n;

	if (gran < COLO_LINK_MIN_GRAN || gran > COLO_LINK_MAX_GRAN ||
	    (gran & (gran - 1)) || !len || off > size || len > size - off ||
	    off % gran)
		return -EPROTO;
	/* whole granules, but the image's last one may be short */
	if (len % gran && off + len != size)
		return -EPROTO;
	n = ((uint64_t)len + gran - 1) / gran;
	if (n > COLO_LINK_MAX_DIGESTS)
		return -EPROTO;
	*count = (uint32_t)n;
	return 0;
}

void colo_link_encode_hello(uint8_t out[COLO_LINK_HELLO_LEN],
			    const struct colo_link_hello *h)
{
	colo_put_be32(out, h->version);
	colo_put_be32(out + 4, h->auth);
	colo_put_be64(out + 8, h->size);
	colo_put_be32(out + 16, h->granularity);
	colo_put_be32(out + 20, h->features);
}

int colo_link_decode_hello(const uint8_t *in, size_t len,
			   struct colo_link_hello *h)
{
	if (len != COLO_LINK_HELLO_LEN)
		return -EPROTO;
	h->version = colo_get_be32(in);
	h->auth = colo_get_be32(in + 4);
	h->size = colo_get_be64(in + 8);
	h->granularity = colo_get_be32(in + 16);
	h->features = colo_get_be32(in + 20);
	return 0;
}

long colo_link_parse(const uint8_t *buf, size_t n, struct colo_link_hdr *h,
		     const uint8_t **payload)
{
	uint32_t plen;

	if (n < COLO_LINK_HDR_LEN)
		return 0;
	if (colo_link_decode_hdr(buf, h) < 0)
		return -EPROTO;
	plen = colo_link_payload_len(h);
	if (n - COLO_LINK_HDR_LEN < plen)
		return 0;
	*payload = buf + COLO_LINK_HDR_LEN;
	return (long)(COLO_LINK_HDR_LEN + plen);
}

const char *colo_link_type_name(uint16_t type)
{
	static const char *const names[COLO_LINK_TYPE_MAX + 1] = {
		[COLO_LINK_HELLO] = "HELLO",
		[COLO_LINK_WRITE] = "WRITE",
		[COLO_LINK_WRITE_ACK] = "WRITE_ACK",
		[COLO_LINK_BARRIER] = "BARRIER",
		[COLO_LINK_BARRIER_ACK] = "BARRIER_ACK",
		[COLO_LINK_RESYNC_BEGIN] = "RESYNC_BEGIN",
		[COLO_LINK_RESYNC_DATA] = "RESYNC_DATA",
		[COLO_LINK_RESYNC_END] = "RESYNC_END",
		[COLO_LINK_PING] = "PING",
		[COLO_LINK_PONG] = "PONG",
		[COLO_LINK_DIGEST_REQ] = "DIGEST_REQ",
		[COLO_LINK_DIGEST] = "DIGEST",
	};

	if (type == 0 || type > COLO_LINK_TYPE_MAX)
		return "?";
	return names[type];
}

/* ---- socket I/O */

int colo_link_send(int fd, const struct colo_link_hdr *h, const void *payload)
{
	uint8_t hdr[COLO_LINK_HDR_LEN];
	struct iovec iov[2] = {
		{ hdr, sizeof(hdr) },
		{ (void *)payload, colo_link_payload_len(h) },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	struct colo_tls_stream *t = colo_link_tls_find(fd);

	colo_link_encode_hdr(hdr, h);
	/* Under TLS the header and payload records leave in one send(). */
	if (t)
		return colo_tls_stream_writev_all(t, iov,
						  iov[1].iov_len ? 2 : 1);
	while (msg.msg_iovlen) {
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		while (msg.msg_iovlen && (size_t)n >= msg.msg_iov->iov_len) {
			n -= (ssize_t)msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen) {
			msg.msg_iov->iov_base =
				(uint8_t *)msg.msg_iov->iov_base + n;
			msg.msg_iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Like recv(fd, buf, len, 0), but through fd's TLS session if it has
 * one; returns bytes, or -errno (-EAGAIN at the receive timeout, 0 never:
 * the end is -ECONNRESET). */
static ssize_t link_recv(int fd, void *buf, size_t len)
{
	struct colo_tls_stream *t = colo_link_tls_find(fd);
	ssize_t n;

	if (t) {
		/* A TLS read returns one record: take whatever else the
		 * session and the socket hold too, as one recv() would, so
		 * the secondary sees a burst and acks it once. */
		n = colo_tls_stream_read_some(t, buf, len);
		while (n > 0 && (size_t)n < len) {
			ssize_t m = colo_tls_stream_try_read(
				t, (uint8_t *)buf + n, len - (size_t)n);

			if (m <= 0)
				break;
			n += m;
		}
		return n;
	}
	do
		n = recv(fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n == 0 ? -ECONNRESET : n;
}

static int recv_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = link_recv(fd, p, len);

		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int colo_link_recv(int fd, struct colo_link_hdr *h, void *buf, size_t bufmax)
{
	uint8_t hdr[COLO_LINK_HDR_LEN];
	int r = recv_full(fd, hdr, sizeof(hdr));

	if (r < 0)
		return r;
	if (colo_link_decode_hdr(hdr, h) < 0 ||
	    colo_link_payload_len(h) > bufmax)
		return -EPROTO;
	return recv_full(fd, buf, colo_link_payload_len(h));
}

/* Room for one maximum frame plus a window of small ones behind it. */
#define READER_CAP (COLO_LINK_HDR_LEN + COLO_LINK_MAX_PAYLOAD + 256 * 1024)

int colo_link_reader_init(struct colo_link_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->buf = malloc(READER_CAP);
	if (!r->buf)
		return -ENOMEM;
	r->cap = READER_CAP;
	return 0;
}

void colo_link_reader_reset(struct colo_link_reader *r)
{
	r->head = r->tail = 0;
}

void colo_link_reader_free(struct colo_link_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

size_t colo_link_reader_buffered(const struct colo_link_reader *r)
{
	return r->tail - r->head;
}

/* Makes at least `need` bytes available from head; blocks in recv(). */
static int reader_fill(struct colo_link_reader *r, int fd, size_t need)
{
	if (need > r->cap)
		return -EPROTO;
	if (r->cap - r->head < need) {
		memmove(r->buf, r->buf + r->head, r->tail - r->head);
		r->tail -= r->head;
		r->head = 0;
	}
	while (r->tail - r->head < need) {
		ssize_t n = link_recv(fd, r->buf + r->tail, r->cap - r->tail);

		if (n < 0)
			return (int)n;
		r->tail += (size_t)n;
	}
	return 0;
}

int colo_link_reader_next(struct colo_link_reader *r, int fd,
			  struct colo_link_hdr *h, const uint8_t **payload,
			  size_t bufmax)
{
	size_t plen;
	int rc = reader_fill(r, fd, COLO_LINK_HDR_LEN);

	if (rc < 0)
		return rc;
	if (colo_link_decode_hdr(r->buf + r->head, h) < 0)
		return -EPROTO;
	plen = colo_link_payload_len(h);
	if (plen > bufmax)
		return -EPROTO;
	rc = reader_fill(r, fd, COLO_LINK_HDR_LEN + plen);
	if (rc < 0)
		return rc;
	*payload = r->buf + r->head + COLO_LINK_HDR_LEN;
	r->head += COLO_LINK_HDR_LEN + plen;
	if (r->head == r->tail)
		r->head = r->tail = 0;
	return 0;
}

void colo_link_tune(int fd, unsigned int send_timeout_ms,
		    unsigned int recv_timeout_ms)
{
	struct timeval snd = { send_timeout_ms / 1000,
			       (send_timeout_ms % 1000) * 1000 };
	struct timeval rcv = { recv_timeout_ms / 1000,
			       (recv_timeout_ms % 1000) * 1000 };
	int one = 1;

	/* Best effort: a socket that refuses these still works. No Nagle:
	 * a synchronous write completes only on the peer's reply, so a
	 * held-back request would stall the guest's write by a delayed ACK. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof(rcv));
}
