/*
 * capture.c - a growable array of copied frames; see capture.h.
 */
#include <stdlib.h>
#include <string.h>

#include "capture.h"

void colo_capture_init(struct colo_capture *c)
{
	memset(c, 0, sizeof(*c));
}

int colo_capture_add(struct colo_capture *c, uint64_t ts_ns,
		     const uint8_t *data, size_t len, size_t wire_len)
{
	struct colo_frame *f;

	if (len > UINT32_MAX || wire_len > UINT32_MAX)
		return -1;
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 256;
		struct colo_frame *nf;

		nf = realloc(c->frames, ncap * sizeof(*nf));
		if (!nf)
			return -1;
		c->frames = nf;
		c->cap = ncap;
	}
	f = &c->frames[c->n];
	f->data = malloc(len ? len : 1);
	if (!f->data)
		return -1;
	memcpy(f->data, data, len);
	f->ts_ns = ts_ns;
	f->skip = false;
	f->len = (uint32_t)len;
	f->wire_len = (uint32_t)(wire_len < len ? len : wire_len);
	if (f->wire_len > f->len)
		c->truncated++;
	c->bytes += len;
	c->n++;
	return 0;
}

void colo_capture_free(struct colo_capture *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->frames[i].data);
	free(c->frames);
	colo_capture_init(c);
}
