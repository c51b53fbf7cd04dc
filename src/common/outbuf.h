/*
 * outbuf.h - frames waiting to be written to one socket.
 *
 * Released frames are appended in wire format to one growing buffer and
 * sent with as few syscalls as the peer allows, which batches a whole
 * event-loop iteration into one send(). The buffer remembers where each
 * frame starts, so a peer that vanishes mid-frame only costs that frame
 * (counted) and the next peer starts on a frame boundary. Nothing is ever
 * dropped for lack of space: the daemon stops reading its inputs instead
 * (back-pressure) once pending() passes its high-water mark.
 */
#ifndef COLO_OUTBUF_H
#define COLO_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct colo_outbuf {
	uint8_t *buf;
	size_t cap;
	size_t base_cap;   /* the size it returns to once a burst is out */
	size_t head, tail; /* unsent bytes */
	size_t frame_start, frame_end; /* the frame holding head */
	bool vnet;		       /* frames carry the vnet word */
	uint64_t frames, bytes;	       /* appended */
	uint64_t truncated;	       /* frames cut by a vanishing peer */
	uint64_t failed;	       /* appends refused: out of memory */
	uint64_t shrinks;	       /* returns to base_cap after a burst */
};

/* outbuf.c APIs: */
int colo_outbuf_init(struct colo_outbuf *o, size_t cap, bool vnet);
void colo_outbuf_free(struct colo_outbuf *o);
/* Frame and queue; -1 only when memory is exhausted. */
int colo_outbuf_append(struct colo_outbuf *o, const uint8_t *frame, size_t len,
		       size_t vnet_hdr_len);
size_t colo_outbuf_pending(const struct colo_outbuf *o);
/* Send as much as the socket takes. 0: all sent or the socket is full;
 * -1: the connection failed (errno). */
int colo_outbuf_flush(struct colo_outbuf *o, int fd);
/* The peer is gone: skip the rest of a partly sent frame. Returns true if
 * there was one. */
bool colo_outbuf_drop_partial(struct colo_outbuf *o);

#endif
