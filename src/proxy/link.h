/*
 * link.h - the replication link between the primary and the secondary
 * proxy: one TCP connection multiplexing mirrored client ingress, the
 * secondary guest's egress and control messages.
 *
 * Wire format (all integers big-endian):
 *
 *   frame   = header payload
 *   header  = type u8 | flags u8 | reserved u16 (0) | len u32
 *
 * The first frame each way is a HELLO (magic "COLOLINK", version, role,
 * auth mode). Every later frame is one of enum colo_plink_type. The header
 * is fixed at 8 bytes and describes only lengths and kinds, so that
 * authentication or encryption slots in per frame without a redesign:
 * with an AEAD mode negotiated in the HELLO (e.g. ChaCha20-Poly1305 keyed
 * from a pre-shared key and both HELLOs' nonces), the payload becomes
 * ciphertext followed by a 16-byte tag, `len` counts both, the 8-byte
 * header is the associated data, and the nonce is an implicit per
 * direction frame counter (so replays and reordering fail the tag). A
 * MAC-only mode is the same with plaintext payloads. The decoder's length
 * checks stay where they are; the tag is checked before the payload is
 * parsed.
 *
 * Encoding and decoding are pure functions over buffers (fuzzed by
 * tests/fuzz/fuzz_proxy_link.c); struct colo_plink adds buffered,
 * non-blocking, batched socket I/O and liveness bookkeeping.
 */
#ifndef COLO_PROXY_LINK_H
#define COLO_PROXY_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tcp_rewriter.h"

/* 2: CUT carries hold_ms (12 bytes); a version-1 secondary would drop
 * the link at the first CUT, so the HELLO refuses it by name instead. */
#define COLO_PLINK_VERSION 2
#define COLO_PLINK_HDR_LEN 8
/* Above any Ethernet frame a port yields (64 KiB GSO super-frame plus
 * headers): a longer frame is a protocol error, never a reason to
 * allocate. */
#define COLO_PLINK_PAYLOAD_MAX (128 * 1024)
#define COLO_PLINK_HELLO_LEN   20
#define COLO_PLINK_META_LEN    56
/* CUT: be64 the checkpoint's number, be32 hold_ms (how long the hold
 * may last); an 8-byte CUT (no hold_ms) holds for the default. */
#define COLO_PLINK_CUT_LEN    12
#define COLO_PLINK_CUT_LEN_V1 8

enum colo_plink_type {
	COLO_PLINK_HELLO = 1,
	COLO_PLINK_INGRESS = 2,		/* primary -> secondary: client frame */
	COLO_PLINK_EGRESS = 3,		/* secondary -> primary: guest frame */
	COLO_PLINK_CONN_META = 4,	/* primary -> secondary */
	COLO_PLINK_CHECKPOINT_DONE = 5, /* primary -> secondary */
	COLO_PLINK_FAILOVER = 6,	/* primary -> secondary */
	COLO_PLINK_PING = 7,
	COLO_PLINK_PONG = 8,
	COLO_PLINK_CUT = 9, /* primary -> secondary: ingress cut (checkpoint) */
	COLO_PLINK_TYPE_MAX = 9,
};

/* INGRESS/EGRESS: the payload starts with a COLO_VNET_HDR_LEN-byte
 * virtio-net header (GSO and checksum offload information). */
#define COLO_PLINK_F_VNET  0x01
#define COLO_PLINK_F_KNOWN COLO_PLINK_F_VNET

enum colo_plink_role {
	COLO_PLINK_ROLE_PRIMARY = 1,
	COLO_PLINK_ROLE_SECONDARY = 2
};
/* How the link is protected: both ends must say the same. TLS: the HELLO
 * travels inside a TLS 1.3 session whose peer host was verified. */
enum colo_plink_auth { COLO_PLINK_AUTH_NONE = 0, COLO_PLINK_AUTH_TLS = 1 };

struct colo_plink_hello {
	uint16_t version;
	uint8_t role;
	uint8_t auth;
	uint64_t session; /* random per proxy start: a restarted peer shows */
};

struct colo_plink_frame {
	uint8_t type;
	uint8_t flags;
	uint32_t len;
	const uint8_t *payload; /* points into the decoded buffer */
};

/* link.c APIs (pure): */
const char *colo_plink_type_name(uint8_t type);
/* Writes a header for a payload of len bytes; returns COLO_PLINK_HDR_LEN. */
size_t colo_plink_encode_hdr(uint8_t *out, uint8_t type, uint8_t flags,
			     uint32_t len);
/* One frame from buf: >0 bytes consumed and *f filled, 0 when more bytes
 * are needed, -1 on a protocol error (unknown type or flags, nonzero
 * reserved field, oversized or wrongly sized payload). */
int colo_plink_decode(const uint8_t *buf, size_t len,
		      struct colo_plink_frame *f);
void colo_plink_hello_encode(uint8_t out[COLO_PLINK_HELLO_LEN],
			     const struct colo_plink_hello *h);
int colo_plink_hello_decode(const uint8_t *p, size_t len,
			    struct colo_plink_hello *h);
void colo_plink_meta_encode(uint8_t out[COLO_PLINK_META_LEN],
			    const struct colo_conn_meta *m);
int colo_plink_meta_decode(const uint8_t *p, size_t len,
			   struct colo_conn_meta *m);

/* One end of the link: a connected non-blocking TCP socket with an input
 * and an output buffer. Frames queued in one event-loop iteration leave
 * in one send(), under TLS too: their records are gathered in memory and
 * sent together (colo_tls_gather), and what the socket did not take counts
 * as pending until an EPOLLOUT flush sends it. */
struct colo_tls;

struct colo_plink {
	int fd;
	struct colo_tls *tls; /* NULL: plain TCP (loopback or --insecure) */
	uint32_t tls_want;    /* handshake: the event it waits for */
	uint8_t role;	      /* ours; the peer's HELLO must say the other */
	bool hello_rx;	      /* the peer's HELLO arrived */
	bool rx_more; /* TLS read stopped at its bound: read again soon */
	struct colo_plink_hello peer;
	uint8_t *in;
	size_t in_off, in_len, in_cap; /* unparsed: [in_off, in_len) */
	uint8_t *out;
	size_t out_head, out_tail, out_cap;
	uint64_t last_rx_ns, last_tx_ns;
	uint64_t frames_tx, bytes_tx, frames_rx, bytes_rx;
};

/* link.c APIs (socket): */
int colo_plink_init(struct colo_plink *l);
void colo_plink_free(struct colo_plink *l);
/* Takes over a connected socket (sets TCP_NODELAY and buffer sizes) and
 * queues our HELLO. With tls (taken over, its handshake not started)
 * nothing, the HELLO included, is sent or read in the clear. */
void colo_plink_attach(struct colo_plink *l, int fd, uint8_t role,
		       uint64_t session, uint64_t now_ns, struct colo_tls *tls);
/* The peer is who the link expects: TLS verified (when used) and its
 * HELLO arrived with the other role. Before that nothing is mirrored. */
static inline bool colo_plink_verified(const struct colo_plink *l)
{
	return l->fd >= 0 && l->hello_rx;
}
/* Whether the socket's writability matters now (EPOLLOUT): output is
 * pending, or the TLS handshake waits to write. */
bool colo_plink_want_out(const struct colo_plink *l);
/* Closes the socket and forgets buffered bytes. */
void colo_plink_detach(struct colo_plink *l);
static inline bool colo_plink_up(const struct colo_plink *l)
{
	return l->fd >= 0;
}
/* Queue one frame (header + payload from up to two pieces). -1 when the
 * output buffer cannot grow. */
int colo_plink_queue(struct colo_plink *l, uint8_t type, uint8_t flags,
		     const void *p1, size_t n1, const void *p2, size_t n2);
size_t colo_plink_pending(const struct colo_plink *l);
/* Send what the socket takes: 0 ok (maybe still pending), -1 dead. */
int colo_plink_flush(struct colo_plink *l, uint64_t now_ns);
/* Read what is there and call fn for every whole frame after the HELLO.
 * With TLS, rx_more afterwards says to call again without waiting for
 * EPOLLIN (the session may hold bytes already taken from the socket).
 * Returns 0, or -1 when the peer closed or broke the protocol (reason in
 * err). fn returning -1 stops with an error too. */
typedef int (*colo_plink_frame_fn)(void *opaque,
				   const struct colo_plink_frame *f);
int colo_plink_read(struct colo_plink *l, colo_plink_frame_fn fn, void *opaque,
		    uint64_t now_ns, char *err, size_t errlen);

/* For latency stamps only (a syscall): the kernel's receive time
 * (CLOCK_REALTIME ns) of the next unread bytes on the socket, 0 when none
 * wait there (TLS may have read them ahead) or the socket has no
 * timestamps (SO_TIMESTAMPNS, set by the owner). */
uint64_t colo_plink_rx_stamp(const struct colo_plink *l);

#endif
