/*
 * frame_reader.h - incremental parser of QEMU's chardev packet framing.
 *
 * Every COLO socket (primary-in, secondary-in, out, notify) carries
 * frames as: be32 len, [be32 vnet_hdr_len], len bytes. The reader owns one
 * flat buffer: the caller reads from the socket straight into its free
 * space, commits the byte count and then pulls frames that point into the
 * buffer (no copy, no allocation per frame). It knows nothing of sockets,
 * so tests and the fuzzer drive it with plain bytes.
 *
 * The bytes come from outside: every length is checked and no input can
 * make the reader read or write out of bounds.
 */
#ifndef COLO_FRAME_READER_H
#define COLO_FRAME_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* QEMU's chardev reader gives up on frames longer than this. */
#define COLO_FRAME_MAX (4096 + 65536)
/* Default buffer: a few maximum frames, so one read() moves a lot. */
#define COLO_FRAME_READER_DEFAULT_CAP (256 * 1024 + 2 * (COLO_FRAME_MAX + 8))

enum colo_framing {
	COLO_FRAMING_PLAIN, /* be32 len, frame */
	COLO_FRAMING_VNET,  /* be32 len, be32 vnet_hdr_len, frame */
	/* Either, decided per frame: a be32 < 256 after the length is a vnet
	 * word. Used for notify input, where QEMU's peers differ. */
	COLO_FRAMING_VNET_OPTIONAL,
};

enum colo_frame_status {
	COLO_FRAME_NEED_MORE, /* no complete frame buffered */
	COLO_FRAME_OK,	      /* *f is a frame, valid until the next feed */
	COLO_FRAME_SKIPPED,   /* malformed frame dropped (zero length, or
				 vnet_hdr_len > len); the stream goes on */
	COLO_FRAME_DESYNC,    /* length over COLO_FRAME_MAX: the stream can no
				 longer be trusted; drop the connection and
				 reset the reader */
};

struct colo_frame {
	const uint8_t *data; /* len bytes, virtio-net header included */
	size_t len;
	size_t vnet_hdr_len;
};

struct colo_frame_counters {
	uint64_t frames;    /* good frames returned */
	uint64_t bytes;	    /* their length */
	uint64_t zero_len;  /* skipped zero-length frames */
	uint64_t bad_vnet;  /* skipped: vnet_hdr_len > len */
	uint64_t oversize;  /* desynchronising lengths */
	uint64_t truncated; /* partial frame left at end of stream */
};

struct colo_frame_reader {
	enum colo_framing framing;
	bool desync; /* after COLO_FRAME_DESYNC, until reset */
	uint8_t *buf;
	size_t cap;
	size_t head; /* first unparsed byte */
	size_t tail; /* end of valid bytes */
	struct colo_frame_counters count;
};

/* frame_reader.c APIs: */
/* cap must be at least COLO_FRAME_MAX + 8. Returns -1 on ENOMEM or a bad
 * cap. */
int colo_frame_reader_init(struct colo_frame_reader *r,
			   enum colo_framing framing, size_t cap);
void colo_frame_reader_free(struct colo_frame_reader *r);
/* A new connection: forget buffered bytes (counters are kept). */
void colo_frame_reader_reset(struct colo_frame_reader *r);
/* Free space to read into; may move buffered bytes (invalidating frames
 * returned before). *avail is 0 only when the reader is desynchronised. */
uint8_t *colo_frame_reader_space(struct colo_frame_reader *r, size_t *avail);
void colo_frame_reader_commit(struct colo_frame_reader *r, size_t n);
/* Copy in up to n bytes; returns how many were taken (all of them unless
 * the buffer is full of unparsed bytes: pull frames, then feed the rest). */
size_t colo_frame_reader_feed(struct colo_frame_reader *r, const uint8_t *p,
			      size_t n);
enum colo_frame_status colo_frame_reader_next(struct colo_frame_reader *r,
					      struct colo_frame *f);
/* Bytes buffered but not yet a whole frame. */
size_t colo_frame_reader_pending(const struct colo_frame_reader *r);
/* End of stream: a partial frame left over is counted as truncated.
 * Returns true if there was one. Resets the reader. */
bool colo_frame_reader_eof(struct colo_frame_reader *r);

#endif
