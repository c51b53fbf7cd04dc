/*
 * stream.h - one framed socket endpoint of the daemon, with reconnect.
 *
 * A stream is primary-in, secondary-in, out or notify. It owns its
 * listening socket or its connect address, the current connection, a
 * frame reader (streams that receive frames) and an output buffer
 * (streams that send). Peers may come and go at any time: a listen stream
 * accepts again, a connect stream retries with exponential backoff. At
 * most one peer is served at a time, like a QEMU chardev; further
 * connections wait in the backlog.
 *
 * The stream does the socket work and hands whole frames to its owner
 * through callbacks; it knows nothing about comparing.
 */
#ifndef COLO_STREAM_H
#define COLO_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "evloop.h"
#include "frame_reader.h"
#include "outbuf.h"
#include "sock_spec.h"

struct colo_stream;

struct colo_stream_ops {
	void (*frame)(void *opaque, struct colo_stream *s,
		      const struct colo_frame *f);
	void (*connected)(void *opaque, struct colo_stream *s);
	void (*disconnected)(void *opaque, struct colo_stream *s);
};

struct colo_stream {
	const char *name; /* "primary-in", ... */
	char label[160];  /* the SOCK string, for logs */
	struct colo_sock_spec spec;
	struct colo_sock_addr addr;
	const struct colo_stream_ops *ops;
	void *opaque;
	struct colo_loop *loop;

	int listen_fd;
	int fd;
	struct colo_loop_fd *fd_h;     /* NULL while fd wants no event */
	struct colo_loop_fd *listen_h; /* NULL while a peer is served */
	bool connecting;
	bool reading; /* false while inputs are held back */
	bool has_reader, has_out;
	struct colo_timer *retry; /* connect streams: armed while no peer */
	uint64_t backoff_ns;
	bool retry_logged;

	struct colo_frame_reader reader;
	struct colo_outbuf out;

	uint64_t connects, disconnects, ignored_bytes;
	uint64_t refused; /* UNIX peers of another user */
};

/* stream.c APIs: */
/* Sets up buffers; opens nothing. reader: receives frames (framing then
 * applies); out: sends frames (out_vnet: with the vnet word). */
int colo_stream_init(struct colo_stream *s, const char *name,
		     const struct colo_sock_spec *spec, bool reader,
		     enum colo_framing framing, bool out, bool out_vnet,
		     const struct colo_stream_ops *ops, void *opaque);
/* Resolve and listen (or make the first connect) on loop, which then
 * drives the stream. -1 with a message logged when it cannot. */
int colo_stream_start(struct colo_stream *s, struct colo_loop *loop);
void colo_stream_close(struct colo_stream *s);
bool colo_stream_connected(const struct colo_stream *s);
/* Drops the current peer (a listen end then waits for the next one). */
void colo_stream_disconnect(struct colo_stream *s, const char *why);
/* Write what the output buffer holds (the owner calls it once per
 * wake-up, before the loop sleeps). */
void colo_stream_flush(struct colo_stream *s);
/* Back-pressure: stop or resume reading frames. */
void colo_stream_set_reading(struct colo_stream *s, bool on);
/* Counters, one "name value" line each, names prefixed with s->name. */
void colo_stream_print_stats(const struct colo_stream *s, FILE *f);

#endif
