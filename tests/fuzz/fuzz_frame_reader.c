/*
 * fuzz_frame_reader.c - libFuzzer target for the chardev framing parser.
 *
 * The first input byte picks the framing; the rest is cut into chunks
 * whose sizes come from the input itself, so that every split of headers
 * and bodies across reads gets explored. Each frame returned must lie
 * inside the buffer and agree with its own header; a desynchronised
 * reader is reset the way the daemon drops and re-accepts a peer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame_reader.h"

static void check_frame(const struct colo_frame_reader *r,
			const struct colo_frame *f)
{
	if (f->len == 0 || f->len > COLO_FRAME_MAX || f->vnet_hdr_len > f->len)
		abort();
	if (f->data < r->buf || f->data + f->len > r->buf + r->cap)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct colo_frame_reader r;
	struct colo_frame f;
	enum colo_framing framing;
	size_t off = 1, chunk_seed;

	if (size < 2)
		return 0;
	framing = (enum colo_framing)(data[0] % 3);
	/* A capacity near the minimum makes compaction run often. */
	if (colo_frame_reader_init(&r, framing,
				   COLO_FRAME_MAX + 8 + (data[0] >> 2) * 16))
		return 0;
	chunk_seed = data[size - 1];
	while (off < size) {
		size_t want = 1 + (chunk_seed * 131 + off) % 97;

		if (data[off] & 0x80)
			want *= 1 + data[off] % 13;
		if (want > size - off)
			want = size - off;
		while (want) {
			size_t took =
				colo_frame_reader_feed(&r, data + off, want);
			enum colo_frame_status st;

			off += took;
			want -= took;
			while ((st = colo_frame_reader_next(&r, &f)) !=
			       COLO_FRAME_NEED_MORE) {
				if (st == COLO_FRAME_OK)
					check_frame(&r, &f);
				if (st == COLO_FRAME_DESYNC) {
					colo_frame_reader_reset(&r);
					break;
				}
			}
			if (!took && !colo_frame_reader_pending(&r))
				abort(); /* stuck with nothing buffered */
			if (!took &&
			    colo_frame_reader_pending(&r) >= COLO_FRAME_MAX + 8)
				abort(); /* full, yet no whole frame */
		}
		chunk_seed = chunk_seed * 33 + 7;
	}
	if (r.count.frames > size)
		abort();
	colo_frame_reader_eof(&r);
	colo_frame_reader_free(&r);
	return 0;
}
