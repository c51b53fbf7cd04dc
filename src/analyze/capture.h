/*
 * capture.h - one side's captured output held in memory.
 *
 * The analyzer is offline, so it keeps every frame of both captures: that
 * lets it go back and find the frames behind a divergence the comparer
 * reports, and lets the sample generator hand its frames over without a
 * round trip through files.
 */
#ifndef COLO_CAPTURE_H
#define COLO_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct colo_frame {
	uint64_t ts_ns;
	uint8_t *data;
	uint32_t len;	   /* bytes captured (and held in data) */
	uint32_t wire_len; /* bytes on the wire; > len if cut by snaplen */
	/* Not replayed: captured before its flow's alignment point (a
	 * capture begun mid-connection holds bytes the other lacks). */
	bool skip;
};

struct colo_capture {
	struct colo_frame *frames;
	size_t n, cap;
	uint64_t bytes;	  /* sum of len */
	size_t truncated; /* frames with wire_len > len */
};

/* capture.c APIs: */
void colo_capture_init(struct colo_capture *c);
/* Copies data. Returns 0, or -1 when memory is exhausted. */
int colo_capture_add(struct colo_capture *c, uint64_t ts_ns,
		     const uint8_t *data, size_t len, size_t wire_len);
void colo_capture_free(struct colo_capture *c);

#endif
