/*
 * repl_link.h - the replication link between primary and secondary: one
 * TCP connection carrying framed messages.
 *
 * Every frame is a 32-byte header, big-endian:
 *   magic u32 "CRPL" | type u16 | flags u16 | seq u64 | off u64 |
 *   len u32 | reserved u32 (zero)
 * followed by colo_link_payload_len() payload bytes.
 *
 * Session: the primary connects and sends HELLO; the secondary answers
 * HELLO. Then the primary sends WRITE / BARRIER / RESYNC_* / PING, each
 * with a sequence number from one counter; the secondary applies them in
 * order and answers WRITE_ACK / BARRIER_ACK / RESYNC_END / PONG with the
 * same number. Acks therefore arrive in order and are cumulative.
 *
 * Resync by digest (both HELLOs carry COLO_LINK_FEAT_DIGEST): instead of
 * copying a range it knows nothing about, the primary sends DIGEST_REQ
 * (off, len: whole granules of the primary's HELLO granularity, the last
 * one maybe short at the image's end) in the same ordered stream; the
 * secondary answers DIGEST with the SHA-256 of each granule of its
 * image, at that point of the stream. The DIGEST acknowledges its seq
 * like any ack. The primary sends RESYNC_DATA only where they differ.
 *
 * With credentials the whole connection is TLS 1.3 with mutual x509
 * authentication from its first byte (colo_link_tls_start, before the
 * HELLO), and the HELLO's `auth` word says so (COLO_LINK_AUTH_TLS): a
 * peer configured otherwise is refused at the HELLO instead of
 * misreading what follows.
 */
#ifndef COLO_BLK_REPL_LINK_H
#define COLO_BLK_REPL_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COLO_LINK_MAGIC	      0x4352504cU /* "CRPL" */
#define COLO_LINK_VERSION     1
#define COLO_LINK_HDR_LEN     32
#define COLO_LINK_HELLO_LEN   24
#define COLO_LINK_MAX_PAYLOAD (32U << 20) /* like NBD's largest request */

enum colo_link_type {
	COLO_LINK_HELLO = 1,
	COLO_LINK_WRITE = 2,	    /* off, len, data (F_ZERO: no data) */
	COLO_LINK_WRITE_ACK = 3,    /* seq */
	COLO_LINK_BARRIER = 4,	    /* seq; F_CHECKPOINT, F_FLUSH, F_PREPARE */
	COLO_LINK_BARRIER_ACK = 5,  /* seq; F_ERROR on failure, F_REFUSED */
	COLO_LINK_RESYNC_BEGIN = 6, /* len = 0; off = bytes to come */
	COLO_LINK_RESYNC_DATA = 7,  /* off, len, data (or F_ZERO) */
	COLO_LINK_RESYNC_END = 8,   /* seq; answered by RESYNC_END */
	COLO_LINK_PING = 9,
	COLO_LINK_PONG = 10,
	COLO_LINK_DIGEST_REQ = 11, /* seq, off, len: a range, no payload */
	COLO_LINK_DIGEST = 12,	   /* seq, off; len digest bytes (F_ERROR: 0) */
	COLO_LINK_TYPE_MAX = 12,
};

/* HELLO features */
#define COLO_LINK_FEAT_DIGEST 0x0001 /* DIGEST_REQ / DIGEST understood */

#define COLO_LINK_DIGEST_LEN  32   /* SHA-256 */
#define COLO_LINK_MAX_DIGESTS 4096 /* granules per DIGEST_REQ */
/* A granularity the digests may use: a power of two in this range. */
#define COLO_LINK_MIN_GRAN 512U
#define COLO_LINK_MAX_GRAN (1U << 30)

/* flags */
#define COLO_LINK_F_ZERO       0x0001 /* WRITE, RESYNC_DATA: zeroes */
#define COLO_LINK_F_FUA	       0x0002 /* WRITE: durable before the ack */
#define COLO_LINK_F_CHECKPOINT 0x0004 /* BARRIER: then drop the disk buffer */
#define COLO_LINK_F_FLUSH      0x0008 /* BARRIER: then flush the image */
/* BARRIER: mark the checkpoint's point in the write stream, drop nothing
 * (the secondary's control socket commits it later) */
#define COLO_LINK_F_PREPARE 0x0010
/* BARRIER_ACK: applied in order but refused (a checkpoint is already
 * prepared); unlike F_ERROR the link goes on */
#define COLO_LINK_F_REFUSED 0x4000
#define COLO_LINK_F_ERROR   0x8000 /* acks: the request failed */

struct colo_link_hdr {
	uint16_t type;
	uint16_t flags;
	uint64_t seq;
	uint64_t off;
	/* WRITE, RESYNC_DATA: the range's length, followed by as many
	 * payload bytes unless F_ZERO; HELLO: 24 payload bytes; else 0. */
	uint32_t len;
};

#define COLO_LINK_AUTH_NONE 0
#define COLO_LINK_AUTH_TLS  1

struct colo_link_hello {
	uint32_t version;
	uint32_t auth; /* COLO_LINK_AUTH_NONE or _TLS */
	uint64_t size; /* image bytes */
	uint32_t granularity;
	uint32_t features; /* COLO_LINK_FEAT_*; unknown bits ignored */
};

/* repl_link.c APIs (pure): */
void colo_link_encode_hdr(uint8_t out[COLO_LINK_HDR_LEN],
			  const struct colo_link_hdr *h);
/*
 * Checks and decodes a header from the outside: magic, known type,
 * reserved word, flags allowed for the type, len allowed for the type
 * and <= COLO_LINK_MAX_PAYLOAD, off + len without overflow. 0 or
 * -EPROTO.
 */
int colo_link_decode_hdr(const uint8_t in[COLO_LINK_HDR_LEN],
			 struct colo_link_hdr *h);
void colo_link_encode_hello(uint8_t out[COLO_LINK_HELLO_LEN],
			    const struct colo_link_hello *h);
int colo_link_decode_hello(const uint8_t *in, size_t len,
			   struct colo_link_hello *h);
/*
 * One frame from a byte buffer: >0 bytes consumed (header in *h, payload
 * at *payload), 0 when more bytes are needed, -EPROTO on a bad frame.
 */
long colo_link_parse(const uint8_t *buf, size_t n, struct colo_link_hdr *h,
		     const uint8_t **payload);
const char *colo_link_type_name(uint16_t type);
/*
 * The granules a DIGEST_REQ for [off, off + len) covers on an image of
 * `size` bytes at `gran` bytes per granule: off on a granule boundary,
 * len whole granules (or up to the image's end), inside the image, gran
 * a valid granularity, at most COLO_LINK_MAX_DIGESTS of them. The count
 * in *count, or -EPROTO.
 */
int colo_link_digest_span(uint64_t off, uint32_t len, uint32_t gran,
			  uint64_t size, uint32_t *count);
static inline uint32_t colo_link_payload_len(const struct colo_link_hdr *h)
{
	if (h->type == COLO_LINK_HELLO || h->type == COLO_LINK_DIGEST)
		return h->len;
	if ((h->type == COLO_LINK_WRITE || h->type == COLO_LINK_RESYNC_DATA) &&
	    !(h->flags & COLO_LINK_F_ZERO))
		return h->len;
	return 0;
}

/* repl_link.c APIs (blocking socket I/O): */
/* One frame; 0 or -errno. MSG_NOSIGNAL: a dead peer is an error, not
 * SIGPIPE. */
int colo_link_send(int fd, const struct colo_link_hdr *h, const void *payload);
/* One frame; its payload goes to buf, which holds bufmax bytes.
 * 0, -ECONNRESET at EOF, -EPROTO, -EAGAIN on a receive timeout, -errno. */
int colo_link_recv(int fd, struct colo_link_hdr *h, void *buf, size_t bufmax);

/* A buffered reader of link frames for the side that receives a stream
 * of small writes: one recv() brings many frames instead of two recv()
 * calls per frame. */
struct colo_link_reader {
	uint8_t *buf;
	size_t cap, head, tail;
};
int colo_link_reader_init(struct colo_link_reader *r);
void colo_link_reader_reset(struct colo_link_reader *r);
void colo_link_reader_free(struct colo_link_reader *r);
/* Like colo_link_recv, but *payload points into the reader's buffer and
 * stays valid until the next call. */
int colo_link_reader_next(struct colo_link_reader *r, int fd,
			  struct colo_link_hdr *h, const uint8_t **payload,
			  size_t bufmax);
/* Bytes received but not yet returned as frames. */
size_t colo_link_reader_buffered(const struct colo_link_reader *r);
/* Keepalive, NODELAY and timeouts on a link socket (ms; 0 = none). */
void colo_link_tune(int fd, unsigned int send_timeout_ms,
		    unsigned int recv_timeout_ms);

/*
 * TLS on a link socket, after colo_link_tune (its timeouts carry over):
 * runs the handshake within timeout_ms (server: we accepted; peer_host:
 * the name the peer's certificate must carry), then every colo_link_send,
 * colo_link_recv and reader call on fd goes through the session. The
 * socket becomes non-blocking; two threads may use it at once (one
 * sending, one receiving). 0, or -1 with the reason in err (the socket
 * is then plain and should be closed).
 */
struct colo_tls_creds;
int colo_link_tls_start(int fd, const struct colo_tls_creds *c, bool server,
			const char *peer_host, unsigned int timeout_ms,
			char *err, size_t errlen);
/* The same for a session whose handshake is done (the secondary's lobby
 * drove it without blocking): the link's I/O on fd goes through tls,
 * which is taken over even on failure (-1, reason in err). */
struct colo_tls;
int colo_link_tls_adopt(int fd, struct colo_tls *tls, char *err, size_t errlen);
/* Ends fd's TLS session, if any, and closes fd. */
void colo_link_close(int fd);

#endif
