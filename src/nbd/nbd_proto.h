/*
 * nbd_proto.h - the NBD protocol as plain bytes: fixed-newstyle
 * handshake, option requests and replies, transmission requests and
 * simple replies.
 *
 * No sockets here. The server reads a fixed-size header, asks this module
 * how many bytes follow and what they mean, and writes back what it is
 * handed. Everything a client sends is outside input: every decoder
 * checks lengths first and any byte string gives a defined answer, so the
 * same functions are driven by unit tests and a fuzzer. All integers on
 * the wire are big-endian.
 */
#ifndef COLO_NBD_PROTO_H
#define COLO_NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Handshake */
#define NBD_MAGIC		  0x4e42444d41474943ULL /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC		  0x49484156454f5054ULL /* "IHAVEOPT" */
#define NBD_REP_MAGIC		  0x0003e889045565a9ULL
#define NBD_FLAG_FIXED_NEWSTYLE	  (1u << 0) /* server handshake flags */
#define NBD_FLAG_NO_ZEROES	  (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0) /* client flags */
#define NBD_FLAG_C_NO_ZEROES	  (1u << 1)

/* Options */
#define NBD_OPT_EXPORT_NAME	  1
#define NBD_OPT_ABORT		  2
#define NBD_OPT_LIST		  3
#define NBD_OPT_STARTTLS	  5
#define NBD_OPT_INFO		  6
#define NBD_OPT_GO		  7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10

/* Option reply types */
#define NBD_REP_ACK	     1
#define NBD_REP_SERVER	     2
#define NBD_REP_INFO	     3
#define NBD_REP_FLAG_ERROR   (1u << 31)
#define NBD_REP_ERR_UNSUP    (NBD_REP_FLAG_ERROR | 1)
#define NBD_REP_ERR_POLICY   (NBD_REP_FLAG_ERROR | 2)
#define NBD_REP_ERR_INVALID  (NBD_REP_FLAG_ERROR | 3)
#define NBD_REP_ERR_PLATFORM (NBD_REP_FLAG_ERROR | 4)
#define NBD_REP_ERR_TLS_REQD (NBD_REP_FLAG_ERROR | 5)
#define NBD_REP_ERR_UNKNOWN  (NBD_REP_FLAG_ERROR | 6)
#define NBD_REP_ERR_SHUTDOWN (NBD_REP_FLAG_ERROR | 7)
#define NBD_REP_ERR_TOO_BIG  (NBD_REP_FLAG_ERROR | 9)

/* NBD_REP_INFO types */
#define NBD_INFO_EXPORT	     0
#define NBD_INFO_NAME	     1
#define NBD_INFO_DESCRIPTION 2
#define NBD_INFO_BLOCK_SIZE  3

/* Transmission flags */
#define NBD_FLAG_HAS_FLAGS	   (1u << 0)
#define NBD_FLAG_READ_ONLY	   (1u << 1)
#define NBD_FLAG_SEND_FLUSH	   (1u << 2)
#define NBD_FLAG_SEND_FUA	   (1u << 3)
#define NBD_FLAG_SEND_TRIM	   (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_CAN_MULTI_CONN	   (1u << 8)

/* Transmission */
#define NBD_REQUEST_MAGIC      0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u
#define NBD_CMD_READ	       0
#define NBD_CMD_WRITE	       1
#define NBD_CMD_DISC	       2
#define NBD_CMD_FLUSH	       3
#define NBD_CMD_TRIM	       4
#define NBD_CMD_WRITE_ZEROES   6
#define NBD_CMD_FLAG_FUA       (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE   (1u << 1)

/* Error values of simple replies (the Linux errno numbers) */
#define NBD_EPERM     1
#define NBD_EIO	      5
#define NBD_ENOMEM    12
#define NBD_EINVAL    22
#define NBD_ENOSPC    28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP   95
#define NBD_ESHUTDOWN 108

/* Sizes on the wire */
#define NBD_GREETING_LEN      18 /* magic, opts magic, handshake flags */
#define NBD_CLIENT_FLAGS_LEN  4
#define NBD_OPT_HDR_LEN	      16
#define NBD_OPT_REPLY_HDR_LEN 20
#define NBD_REQUEST_LEN	      28
#define NBD_SIMPLE_REPLY_LEN  16

/* Strings (export names, descriptions) are at most this long (spec). */
#define NBD_STRING_MAX 4096
/*
 * Option data the server reads at all: a name and a generous list of
 * information requests. Longer options are refused without being read.
 */
#define COLO_NBD_OPT_DATA_MAX (NBD_STRING_MAX + 1024)
/* Room for every reply one option can produce (INFO with name and
 * description is the largest). */
#define COLO_NBD_OPT_OUT_MAX (3 * NBD_STRING_MAX)

/* What the handshake advertises for the one export. */
struct colo_nbd_export {
	const char *name;	 /* also reachable as "", the default export */
	const char *description; /* NULL: none; at most NBD_STRING_MAX */
	uint64_t size;
	uint16_t tflags; /* NBD_FLAG_HAS_FLAGS | ... */
	uint32_t min_block, pref_block, max_block;
};

/* Replies accumulate here; cap is fixed by the caller. */
struct colo_nbd_out {
	uint8_t *buf;
	size_t len, cap;
	bool overflow; /* something did not fit: a bug, the server closes */
};

enum colo_nbd_opt_verdict {
	COLO_NBD_OPT_CONTINUE, /* send the output, read the next option */
	COLO_NBD_OPT_TRANSMIT, /* send the output, transmission phase */
	COLO_NBD_OPT_CLOSE,    /* send the output (maybe none), close */
};

struct colo_nbd_req {
	uint16_t flags;
	uint16_t type;
	uint64_t cookie; /* "handle": echoed in the reply */
	uint64_t off;
	uint32_t len;
};

enum colo_nbd_req_verdict {
	COLO_NBD_REQ_OK,    /* execute it */
	COLO_NBD_REQ_ERROR, /* skip the payload, reply with the error */
	COLO_NBD_REQ_DISC,  /* NBD_CMD_DISC: finish in-flight work, close */
	COLO_NBD_REQ_CLOSE, /* framing is lost: close at once */
};

/* nbd_proto.c APIs: */
/* Greeting the server sends on connect. */
void colo_nbd_greeting_encode(uint8_t out[NBD_GREETING_LEN]);
/* Client flags. Returns -1 for flags this server does not know (the spec
 * says to close then), else 0 and whether the 124 zero bytes after
 * NBD_OPT_EXPORT_NAME are to be left out. */
int colo_nbd_client_flags_decode(const uint8_t in[NBD_CLIENT_FLAGS_LEN],
				 bool *no_zeroes);
/* Option header; -1 if the magic is wrong. */
int colo_nbd_opt_hdr_decode(const uint8_t in[NBD_OPT_HDR_LEN], uint32_t *opt,
			    uint32_t *len);
/*
 * One option: its data (len bytes) was read if len <= COLO_NBD_OPT_DATA_MAX;
 * for longer options data is NULL and nothing of it was read. Appends the
 * replies to out and says what to do next.
 */
enum colo_nbd_opt_verdict colo_nbd_opt_handle(const struct colo_nbd_export *e,
					      bool no_zeroes, uint32_t opt,
					      const uint8_t *data, uint32_t len,
					      struct colo_nbd_out *out);
/* What the STARTTLS policy makes of one option (before
 * colo_nbd_opt_handle sees it). */
enum colo_nbd_tls_verdict {
	COLO_NBD_TLS_PASS,    /* not TLS's business: colo_nbd_opt_handle */
	COLO_NBD_TLS_REPLIED, /* refused in out; read the next option */
	COLO_NBD_TLS_START,   /* ACK in out: send it, then the TLS handshake */
	COLO_NBD_TLS_CLOSE,   /* close without a reply (EXPORT_NAME) */
};
/*
 * The STARTTLS rules, as qemu-nbd keeps them: with TLS configured
 * (can_tls) and required on this connection (must_tls) but not running
 * yet (tls_on false), every option but STARTTLS and ABORT is refused with
 * NBD_REP_ERR_TLS_REQD (EXPORT_NAME, which has no error reply, closes);
 * STARTTLS with data, or once TLS runs, is NBD_REP_ERR_INVALID; without
 * TLS configured it is NBD_REP_ERR_POLICY. len is the option's data
 * length; options too long to have been read pass (they close).
 */
enum colo_nbd_tls_verdict colo_nbd_opt_tls(bool can_tls, bool must_tls,
					   bool tls_on, uint32_t opt,
					   uint32_t len,
					   struct colo_nbd_out *out);
/* A bare option reply (header and data) appended to out. */
void colo_nbd_opt_reply(struct colo_nbd_out *out, uint32_t opt, uint32_t type,
			const void *data, uint32_t len);

/* Request header; -1 if the magic is wrong (framing lost). */
int colo_nbd_req_decode(const uint8_t in[NBD_REQUEST_LEN],
			struct colo_nbd_req *r);
/*
 * Checks a request against the export. *payload is how many bytes of data
 * follow the header on the wire (a write's), to be read even when the
 * verdict is ERROR; *err is the NBD error for ERROR.
 */
enum colo_nbd_req_verdict colo_nbd_req_check(const struct colo_nbd_export *e,
					     const struct colo_nbd_req *r,
					     uint32_t *err, uint32_t *payload);
void colo_nbd_simple_reply_encode(uint8_t out[NBD_SIMPLE_REPLY_LEN],
				  uint32_t err, uint64_t cookie);
/* A device's -errno as an NBD error value (EIO for anything unlisted). */
uint32_t colo_nbd_errno(int neg_errno);
const char *colo_nbd_cmd_name(uint16_t type);

#endif
