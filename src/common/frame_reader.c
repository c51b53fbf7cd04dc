/*
 * frame_reader.c - parse the chardev framing in place.
 *
 * Frames are parsed straight out of the receive buffer; buffered bytes are
 * only moved to the front when the free space at the end could not hold a
 * maximum frame, so the cost of compaction stays small against the reads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame_reader.h"
#include "byteorder.h"

int colo_frame_reader_init(struct colo_frame_reader *r,
			   enum colo_framing framing, size_t cap)
{
	memset(r, 0, sizeof(*r));
	if (cap < COLO_FRAME_MAX + 8) {
		errno = EINVAL;
		return -1;
	}
	r->buf = malloc(cap);
	if (!r->buf)
		return -1;
	r->cap = cap;
	r->framing = framing;
	return 0;
}

void colo_frame_reader_free(struct colo_frame_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = 0;
	r->head = r->tail = 0;
}

void colo_frame_reader_reset(struct colo_frame_reader *r)
{
	r->head = r->tail = 0;
	r->desync = false;
}

uint8_t *colo_frame_reader_space(struct colo_frame_reader *r, size_t *avail)
{
	if (r->desync) {
		*avail = 0;
		return r->buf;
	}
	if (r->head == r->tail) {
		r->head = r->tail = 0;
	} else if (r->cap - r->tail < COLO_FRAME_MAX + 8 && r->head > 0) {
		memmove(r->buf, r->buf + r->head, r->tail - r->head);
		r->tail -= r->head;
		r->head = 0;
	}
	*avail = r->cap - r->tail;
	return r->buf + r->tail;
}

void colo_frame_reader_commit(struct colo_frame_reader *r, size_t n)
{
	if (n > r->cap - r->tail)
		n = r->cap - r->tail;
	r->tail += n;
}

size_t colo_frame_reader_feed(struct colo_frame_reader *r, const uint8_t *p,
			      size_t n)
{
	size_t avail;
	uint8_t *dst = colo_frame_reader_space(r, &avail);

	if (n > avail)
		n = avail;
	memcpy(dst, p, n);
	colo_frame_reader_commit(r, n);
	return n;
}

/*
 * In optional mode a header needs 8 bytes to tell whether a vnet word is
 * there; a message shorter than 4 bytes without one is therefore only
 * recognised when more bytes follow. Notify messages are far longer.
 */
enum colo_frame_status colo_frame_reader_next(struct colo_frame_reader *r,
					      struct colo_frame *f)
{
	size_t have = r->tail - r->head;
	const uint8_t *p = r->buf + r->head;
	size_t hdr = 4, vnet = 0;
	uint32_t len;

	if (r->desync)
		return COLO_FRAME_DESYNC;
	if (have < 4)
		return COLO_FRAME_NEED_MORE;
	len = colo_get_be32(p);
	if (len > COLO_FRAME_MAX) {
		r->desync = true;
		r->head = r->tail = 0;
		r->count.oversize++;
		return COLO_FRAME_DESYNC;
	}
	switch (r->framing) {
	case COLO_FRAMING_PLAIN:
		break;
	case COLO_FRAMING_VNET:
		if (have < 8)
			return COLO_FRAME_NEED_MORE;
		vnet = colo_get_be32(p + 4);
		hdr = 8;
		break;
	case COLO_FRAMING_VNET_OPTIONAL:
		if (len == 0)
			break;
		if (have < 8)
			return COLO_FRAME_NEED_MORE;
		if (colo_get_be32(p + 4) < 256) {
			vnet = colo_get_be32(p + 4);
			hdr = 8;
		}
		break;
	}
	if (len == 0) {
		r->head += hdr;
		r->count.zero_len++;
		return COLO_FRAME_SKIPPED;
	}
	if (have - hdr < len)
		return COLO_FRAME_NEED_MORE;
	r->head += hdr + len;
	if (vnet > len) {
		r->count.bad_vnet++;
		return COLO_FRAME_SKIPPED;
	}
	f->data = p + hdr;
	f->len = len;
	f->vnet_hdr_len = vnet;
	r->count.frames++;
	r->count.bytes += len;
	return COLO_FRAME_OK;
}

size_t colo_frame_reader_pending(const struct colo_frame_reader *r)
{
	return r->tail - r->head;
}

bool colo_frame_reader_eof(struct colo_frame_reader *r)
{
	bool partial = !r->desync && r->tail > r->head;

	if (partial)
		r->count.truncated++;
	colo_frame_reader_reset(r);
	return partial;
}
