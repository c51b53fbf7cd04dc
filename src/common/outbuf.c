/*
 * outbuf.c - framed, batched output with frame-boundary tracking.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "outbuf.h"
#include "byteorder.h"

static size_t frame_size(const struct colo_outbuf *o, size_t at)
{
	const uint8_t *p = o->buf + at;
	size_t len = (size_t)p[0] << 24 | (size_t)p[1] << 16 |
		     (size_t)p[2] << 8 | p[3];

	return len + (o->vnet ? 8 : 4);
}

int colo_outbuf_init(struct colo_outbuf *o, size_t cap, bool vnet)
{
	memset(o, 0, sizeof(*o));
	o->buf = malloc(cap);
	if (!o->buf)
		return -1;
	o->cap = o->base_cap = cap;
	o->vnet = vnet;
	return 0;
}

void colo_outbuf_free(struct colo_outbuf *o)
{
	free(o->buf);
	memset(o, 0, sizeof(*o));
}

static int reserve(struct colo_outbuf *o, size_t need)
{
	size_t cap = o->cap;
	uint8_t *nb;

	if (o->cap - o->tail >= need)
		return 0;
	if (o->frame_start > 0) {
		/* Keep the partly sent frame whole, so that frame_start stays
		 * meaningful. */
		size_t shift = o->frame_start;

		memmove(o->buf, o->buf + shift, o->tail - shift);
		o->head -= shift;
		o->tail -= shift;
		o->frame_end -= shift;
		o->frame_start = 0;
		if (o->cap - o->tail >= need)
			return 0;
	}
	/* Rare: a burst (e.g. a checkpoint releasing every held frame)
	 * larger than the buffer. Grow geometrically; advance() gives the
	 * memory back once the burst is out. */
	while (cap - o->tail < need)
		cap *= 2;
	nb = realloc(o->buf, cap);
	if (!nb)
		return -1;
	o->buf = nb;
	o->cap = cap;
	return 0;
}

int colo_outbuf_append(struct colo_outbuf *o, const uint8_t *frame, size_t len,
		       size_t vnet_hdr_len)
{
	size_t hdr = o->vnet ? 8 : 4;

	if (len > UINT32_MAX || reserve(o, hdr + len)) {
		o->failed++;
		return -1;
	}
	colo_put_be32(o->buf + o->tail, (uint32_t)len);
	if (o->vnet)
		colo_put_be32(o->buf + o->tail + 4, (uint32_t)vnet_hdr_len);
	memcpy(o->buf + o->tail + hdr, frame, len);
	if (o->head == o->tail) {
		o->frame_start = o->tail;
		o->frame_end = o->tail + hdr + len;
	}
	o->tail += hdr + len;
	o->frames++;
	o->bytes += len;
	return 0;
}

size_t colo_outbuf_pending(const struct colo_outbuf *o)
{
	return o->tail - o->head;
}

/* Empty and far above its normal size: back to the normal size. The
 * factor 4 keeps a steady load near the size from reallocating on every
 * flush; a failed realloc just keeps the big buffer. */
static void shrink(struct colo_outbuf *o)
{
	uint8_t *nb;

	if (o->cap <= 4 * o->base_cap)
		return;
	nb = realloc(o->buf, o->base_cap);
	if (!nb)
		return;
	o->buf = nb;
	o->cap = o->base_cap;
	o->shrinks++;
}

static void advance(struct colo_outbuf *o, size_t n)
{
	o->head += n;
	if (o->head == o->tail) {
		o->head = o->tail = o->frame_start = o->frame_end = 0;
		shrink(o);
		return;
	}
	while (o->head >= o->frame_end) {
		o->frame_start = o->frame_end;
		o->frame_end += frame_size(o, o->frame_start);
	}
}

int colo_outbuf_flush(struct colo_outbuf *o, int fd)
{
	while (o->head < o->tail) {
		ssize_t n = send(fd, o->buf + o->head, o->tail - o->head,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		advance(o, (size_t)n);
	}
	return 0;
}

bool colo_outbuf_drop_partial(struct colo_outbuf *o)
{
	if (o->head == o->tail || o->head == o->frame_start)
		return false;
	o->truncated++;
	advance(o, o->frame_end - o->head);
	return true;
}
