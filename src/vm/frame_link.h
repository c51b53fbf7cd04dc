/*
 * frame_link.h - the link between the primary's and the secondary's
 * `colo vm`: one TCP connection carrying the checkpoint's conversation and
 * the guest RAM pages that changed on the primary.
 *
 * Wire format (integers big-endian), framed like the proxy's link so that
 * authentication or encryption slots in per frame the same way:
 *
 *   frame  = type u8 | flags u8 (0) | reserved u16 (0) | len u32 | payload
 *
 * HELLO opens each direction; every later frame names the checkpoint it
 * belongs to (seq), so a stray frame of an aborted checkpoint is refused
 * rather than applied. Decoding is pure and checks every length (fuzzed by
 * tests/fuzz/fuzz_frame_link.c); the I/O helpers are blocking with a
 * deadline because a checkpoint is one sequence with both VMs stopped.
 */
#ifndef COLO_VM_FRAME_LINK_H
#define COLO_VM_FRAME_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COLO_FLINK_VERSION 1
#define COLO_FLINK_HDR_LEN 8
#define COLO_FLINK_PAGE	   4096u
/* Pages per PAGES frame: big enough to amortize headers, small enough
 * that a frame never needs more than one buffer of this size. */
#define COLO_FLINK_PAGES_MAX 128u
#define COLO_FLINK_PAGE_REC  (8u + COLO_FLINK_PAGE)
#define COLO_FLINK_PAYLOAD_MAX                                                 \
	(12u + COLO_FLINK_PAGES_MAX * COLO_FLINK_PAGE_REC)
#define COLO_FLINK_VERSION_LEN 32
#define COLO_FLINK_MACHINE_LEN 64
#define COLO_FLINK_HELLO_LEN   (8 + 4 + 8 + 32 + 64)
#define COLO_FLINK_TEXT_MAX    256

enum colo_flink_type {
	COLO_FLINK_HELLO = 1,	     /* both ways, first */
	COLO_FLINK_BEGIN = 2,	     /* P->S: seq, flags: stop your VM */
	COLO_FLINK_STOPPED = 3,	     /* S->P: seq, standby's migration URI */
	COLO_FLINK_PAGES = 4,	     /* P->S: seq, count, (offset, page)... */
	COLO_FLINK_PAGES_END = 5,    /* P->S: seq, total pages sent */
	COLO_FLINK_RAM_READY = 6,    /* S->P: seq: RAM equal, send devices */
	COLO_FLINK_DEVICES_SENT = 7, /* P->S: seq: migration completed */
	COLO_FLINK_LOADED = 8,	     /* S->P: seq: new secondary committed */
	COLO_FLINK_ABORT = 9,	     /* either: seq, reason text */
	COLO_FLINK_RESUME = 10,	     /* P->S: seq: proxies done, run the VM */
	COLO_FLINK_HEARTBEAT = 11,   /* either, no payload: still here */
	COLO_FLINK_TYPE_MAX = 11,
};

/* BEGIN flags. */
#define COLO_FLINK_F_DUMP 0x01 /* both sides pmemsave their VM (tests) */

enum colo_flink_role { COLO_FLINK_PRIMARY = 1, COLO_FLINK_SECONDARY = 2 };

struct colo_flink_hello {
	uint16_t version;
	uint8_t role;
	uint64_t ram_size;
	char qemu_version[COLO_FLINK_VERSION_LEN + 1];
	char machine[COLO_FLINK_MACHINE_LEN + 1];
};

struct colo_flink_frame {
	uint8_t type;
	uint32_t len;
	const uint8_t *payload;
};

/* A decoded control message (every type but HELLO and PAGES). */
struct colo_flink_msg {
	uint64_t seq;
	uint64_t value;			    /* BEGIN flags, PAGES_END total */
	char text[COLO_FLINK_TEXT_MAX + 1]; /* STOPPED uri, ABORT reason */
};

/* frame_link.c APIs (pure): */
/* 1 with a frame (consumed: *used bytes), 0 when more bytes are needed,
 * -1 when the bytes can never be a valid frame. */
int colo_flink_decode(const uint8_t *buf, size_t len,
		      struct colo_flink_frame *f, size_t *used);
int colo_flink_parse_hello(const struct colo_flink_frame *f,
			   struct colo_flink_hello *h);
int colo_flink_parse_msg(const struct colo_flink_frame *f,
			 struct colo_flink_msg *m);
/* PAGES: checks the count against the length and every offset against
 * ram_size (page aligned, inside); 0 with *seq, *count, *recs (count
 * records of 8-byte offset + page). */
int colo_flink_parse_pages(const struct colo_flink_frame *f, uint64_t ram_size,
			   uint64_t *seq, uint32_t *count,
			   const uint8_t **recs);
size_t colo_flink_encode_hello(uint8_t *buf, const struct colo_flink_hello *h);
size_t colo_flink_encode_msg(uint8_t *buf, uint8_t type,
			     const struct colo_flink_msg *m);

/* frame_link_io.c APIs: blocking sends and receives with deadlines on a
 * connected socket. */
struct colo_flink;
struct colo_tls_creds;
struct colo_flink *colo_flink_new(int fd);
void colo_flink_free(struct colo_flink *l); /* closes the socket */
int colo_flink_fd(const struct colo_flink *l);
/* TLS before the first frame: begin sets the session up (server: we
 * accepted; peer_host: the name the peer's certificate must carry), then
 * either step (non-blocking, for an event loop: 1 verified, 0 call again
 * when *want is ready, -1 failed) or handshake (blocking until the
 * deadline: 0 verified, -1 with the reason). Without begin the link is
 * plain and step says done. */
int colo_flink_tls_begin(struct colo_flink *l, const struct colo_tls_creds *c,
			 bool server, const char *peer_host, char *err,
			 size_t errlen);
int colo_flink_tls_step(struct colo_flink *l, uint32_t *want, char *err,
			size_t errlen);
int colo_flink_tls_handshake(struct colo_flink *l, uint64_t deadline_ns,
			     char *err, size_t errlen);
bool colo_flink_secure(const struct colo_flink *l);
/* Whole frame (header added) or -1 (link lost or deadline passed). */
int colo_flink_send(struct colo_flink *l, uint8_t type, const void *payload,
		    uint32_t len, uint64_t deadline_ns);
/* The same, payload gathered from niov pieces (at most
 * COLO_FLINK_IOV_MAX): PAGES go straight from guest RAM to the socket. */
#define COLO_FLINK_IOV_MAX (2 * COLO_FLINK_PAGES_MAX + 2)
struct iovec;
int colo_flink_sendv(struct colo_flink *l, uint8_t type,
		     const struct iovec *iov, int niov, uint64_t deadline_ns);
int colo_flink_send_msg(struct colo_flink *l, uint8_t type,
			const struct colo_flink_msg *m, uint64_t deadline_ns);
/* Next frame; payload valid until the next receive. 1 with a frame, 0 when
 * the deadline passed, -1 when the link is lost or broke the protocol. */
int colo_flink_recv(struct colo_flink *l, struct colo_flink_frame *f,
		    uint64_t deadline_ns);
/* Whether a whole frame (or, under TLS, any received byte) is already
 * buffered: an event-driven reader calls recv again before it waits for
 * the fd, which does not show bytes the session has read ahead. */
bool colo_flink_pending(const struct colo_flink *l);
/* Waits for the peer's message of type want for checkpoint seq (or its
 * ABORT) and parses it into m. 0, or -1 with a reason naming peer ("the
 * primary", "the secondary") in err. */
int colo_flink_expect(struct colo_flink *l, uint64_t seq, uint8_t want,
		      struct colo_flink_msg *m, uint64_t deadline_ns,
		      const char *peer, char *err, size_t errlen);

/* When the peer last sent us bytes, when we last sent it a whole frame
 * (colo_now_ns; both start at colo_flink_new). */
uint64_t colo_flink_last_rx(const struct colo_flink *l);
uint64_t colo_flink_last_tx(const struct colo_flink *l);

/* frame_link_watch.c APIs: heartbeat and idle timeout between
 * checkpoints. After colo_flink_watch, the loop sends a HEARTBEAT when
 * nothing was sent for idle_ms / 4 and calls dead (once, with the
 * reason) when nothing was received for idle_ms; dead may free the link.
 * The owner must keep reading the link (colo_flink_recv consumes
 * heartbeats). The watch ends with colo_flink_free. 0, or -1 without
 * memory. */
struct colo_loop;
struct colo_flink_watch;
typedef void (*colo_flink_dead_fn)(void *opaque, const char *why);
int colo_flink_watch(struct colo_flink *l, struct colo_loop *loop,
		     unsigned int idle_ms, colo_flink_dead_fn dead,
		     void *opaque);
void colo_flink_watch_free(struct colo_flink_watch *w);
/* frame_link_io.c: the link's watch slot (for frame_link_watch.c). */
struct colo_flink_watch *colo_flink_get_watch(const struct colo_flink *l);
void colo_flink_set_watch(struct colo_flink *l, struct colo_flink_watch *w);

#endif
