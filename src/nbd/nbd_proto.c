/*
 * nbd_proto.c - decode what an NBD client sends, encode what the server
 * answers, and decide each option and request by the spec's rules.
 *
 * The server in nbd_server.c only moves bytes; every protocol decision
 * (which replies an option gets, whether a request is in range, whether
 * the framing is lost) is taken here on buffers, so it can be tested and
 * fuzzed without a socket.
 */
#include <errno.h>
#include <string.h>

#include "nbd_proto.h"
#include "byteorder.h"

/* Reserves n bytes of out, or marks the overflow and returns NULL. */
static uint8_t *out_reserve(struct colo_nbd_out *out, size_t n)
{
	uint8_t *p;

	if (out->overflow || n > out->cap - out->len) {
		out->overflow = true;
		return NULL;
	}
	p = out->buf + out->len;
	out->len += n;
	return p;
}

void colo_nbd_greeting_encode(uint8_t out[NBD_GREETING_LEN])
{
	colo_put_be64(out, NBD_MAGIC);
	colo_put_be64(out + 8, NBD_OPTS_MAGIC);
	colo_put_be16(out + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

int colo_nbd_client_flags_decode(const uint8_t in[NBD_CLIENT_FLAGS_LEN],
				 bool *no_zeroes)
{
	uint32_t f = colo_get_be32(in);

	*no_zeroes = (f & NBD_FLAG_C_NO_ZEROES) != 0;
	if (f & ~(uint32_t)(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
		return -1;
	return 0;
}

int colo_nbd_opt_hdr_decode(const uint8_t in[NBD_OPT_HDR_LEN], uint32_t *opt,
			    uint32_t *len)
{
	*opt = colo_get_be32(in + 8);
	*len = colo_get_be32(in + 12);
	return colo_get_be64(in) == NBD_OPTS_MAGIC ? 0 : -1;
}

void colo_nbd_opt_reply(struct colo_nbd_out *out, uint32_t opt, uint32_t type,
			const void *data, uint32_t len)
{
	uint8_t *p = out_reserve(out, NBD_OPT_REPLY_HDR_LEN + (size_t)len);

	if (!p)
		return;
	colo_put_be64(p, NBD_REP_MAGIC);
	colo_put_be32(p + 8, opt);
	colo_put_be32(p + 12, type);
	colo_put_be32(p + 16, len);
	if (len)
		memcpy(p + NBD_OPT_REPLY_HDR_LEN, data, len);
}

/* An NBD_REP_INFO reply: 16-bit type, then body. */
static void info_reply(struct colo_nbd_out *out, uint32_t opt, uint16_t type,
		       const void *body, size_t n)
{
	uint8_t *p = out_reserve(out, NBD_OPT_REPLY_HDR_LEN + 2 + n);

	if (!p)
		return;
	colo_put_be64(p, NBD_REP_MAGIC);
	colo_put_be32(p + 8, opt);
	colo_put_be32(p + 12, NBD_REP_INFO);
	colo_put_be32(p + 16, (uint32_t)(2 + n));
	colo_put_be16(p + 20, type);
	if (n)
		memcpy(p + 22, body, n);
}

/* The one export answers to its name and to "" (the default export). */
static bool name_matches(const struct colo_nbd_export *e, const uint8_t *name,
			 uint32_t n)
{
	return n == 0 || (strlen(e->name) == n && !memcmp(e->name, name, n));
}

static enum colo_nbd_opt_verdict export_name(const struct colo_nbd_export *e,
					     bool no_zeroes,
					     const uint8_t *data, uint32_t len,
					     struct colo_nbd_out *out)
{
	uint8_t *p;
	size_t n = no_zeroes ? 10 : 10 + 124;

	/* This option has no error reply: an unknown name can only close. */
	if (!data || !name_matches(e, data, len))
		return COLO_NBD_OPT_CLOSE;
	p = out_reserve(out, n);
	if (!p)
		return COLO_NBD_OPT_CLOSE;
	memset(p, 0, n);
	colo_put_be64(p, e->size);
	colo_put_be16(p + 8, e->tflags);
	return COLO_NBD_OPT_TRANSMIT;
}

static void info_export(const struct colo_nbd_export *e, uint32_t opt,
			struct colo_nbd_out *out)
{
	uint8_t b[10];

	colo_put_be64(b, e->size);
	colo_put_be16(b + 8, e->tflags);
	info_reply(out, opt, NBD_INFO_EXPORT, b, sizeof(b));
}

static void info_block_size(const struct colo_nbd_export *e, uint32_t opt,
			    struct colo_nbd_out *out)
{
	uint8_t b[12];

	colo_put_be32(b, e->min_block);
	colo_put_be32(b + 4, e->pref_block);
	colo_put_be32(b + 8, e->max_block);
	info_reply(out, opt, NBD_INFO_BLOCK_SIZE, b, sizeof(b));
}

/*
 * NBD_OPT_INFO and NBD_OPT_GO: be32 name length, name, be16 count, count
 * be16 information types. The export information and the block sizes are
 * always sent (the spec allows unrequested information; with min_block 1
 * a client may ignore the sizes), name and description when asked for.
 */
static enum colo_nbd_opt_verdict info_or_go(const struct colo_nbd_export *e,
					    uint32_t opt, const uint8_t *data,
					    uint32_t len,
					    struct colo_nbd_out *out)
{
	uint32_t namelen, count;
	bool want_name = false, want_desc = false;

	if (len < 6)
		goto invalid;
	namelen = colo_get_be32(data);
	if (namelen > len - 6)
		goto invalid;
	count = colo_get_be16(data + 4 + namelen);
	if ((uint64_t)4 + namelen + 2 + 2 * (uint64_t)count != len)
		goto invalid;
	if (!name_matches(e, data + 4, namelen)) {
		colo_nbd_opt_reply(out, opt, NBD_REP_ERR_UNKNOWN, NULL, 0);
		return COLO_NBD_OPT_CONTINUE;
	}
	for (uint32_t i = 0; i < count; i++) {
		uint16_t t = colo_get_be16(data + 4 + namelen + 2 + 2 * i);

		if (t == NBD_INFO_NAME)
			want_name = true;
		else if (t == NBD_INFO_DESCRIPTION)
			want_desc = true;
	}
	info_export(e, opt, out);
	info_block_size(e, opt, out);
	if (want_name)
		info_reply(out, opt, NBD_INFO_NAME, e->name, strlen(e->name));
	if (want_desc && e->description)
		info_reply(out, opt, NBD_INFO_DESCRIPTION, e->description,
			   strlen(e->description));
	colo_nbd_opt_reply(out, opt, NBD_REP_ACK, NULL, 0);
	return opt == NBD_OPT_GO ? COLO_NBD_OPT_TRANSMIT
				 : COLO_NBD_OPT_CONTINUE;
invalid:
	colo_nbd_opt_reply(out, opt, NBD_REP_ERR_INVALID, NULL, 0);
	return COLO_NBD_OPT_CONTINUE;
}

static void list(const struct colo_nbd_export *e, struct colo_nbd_out *out)
{
	size_t n = strlen(e->name);
	uint8_t *p = out_reserve(out, NBD_OPT_REPLY_HDR_LEN + 4 + n);

	if (!p)
		return;
	colo_put_be64(p, NBD_REP_MAGIC);
	colo_put_be32(p + 8, NBD_OPT_LIST);
	colo_put_be32(p + 12, NBD_REP_SERVER);
	colo_put_be32(p + 16, (uint32_t)(4 + n));
	colo_put_be32(p + 20, (uint32_t)n);
	memcpy(p + 24, e->name, n);
	colo_nbd_opt_reply(out, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

enum colo_nbd_opt_verdict colo_nbd_opt_handle(const struct colo_nbd_export *e,
					      bool no_zeroes, uint32_t opt,
					      const uint8_t *data, uint32_t len,
					      struct colo_nbd_out *out)
{
	if (opt == NBD_OPT_EXPORT_NAME)
		return export_name(e, no_zeroes, data, len, out);
	/* Too long to have been read: the stream cannot be resynchronised
	 * cheaply, so say why and close. */
	if (!data && len > 0) {
		colo_nbd_opt_reply(out, opt, NBD_REP_ERR_TOO_BIG, NULL, 0);
		return COLO_NBD_OPT_CLOSE;
	}
	switch (opt) {
	case NBD_OPT_ABORT:
		colo_nbd_opt_reply(out, opt, NBD_REP_ACK, NULL, 0);
		return COLO_NBD_OPT_CLOSE;
	case NBD_OPT_LIST:
		if (len)
			colo_nbd_opt_reply(out, opt, NBD_REP_ERR_INVALID, NULL,
					   0);
		else
			list(e, out);
		return COLO_NBD_OPT_CONTINUE;
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return info_or_go(e, opt, data, len, out);
	default:
		/* Structured replies, meta contexts, TLS, ...: simple
		 * replies only; clients fall back. */
		colo_nbd_opt_reply(out, opt, NBD_REP_ERR_UNSUP, NULL, 0);
		return COLO_NBD_OPT_CONTINUE;
	}
}

enum colo_nbd_tls_verdict colo_nbd_opt_tls(bool can_tls, bool must_tls,
					   bool tls_on, uint32_t opt,
					   uint32_t len,
					   struct colo_nbd_out *out)
{
	if (len > COLO_NBD_OPT_DATA_MAX)
		return COLO_NBD_TLS_PASS;
	if (opt == NBD_OPT_STARTTLS) {
		uint32_t rep = !can_tls	       ? NBD_REP_ERR_POLICY
			       : tls_on || len ? NBD_REP_ERR_INVALID
					       : NBD_REP_ACK;

		colo_nbd_opt_reply(out, opt, rep, NULL, 0);
		return rep == NBD_REP_ACK ? COLO_NBD_TLS_START
					  : COLO_NBD_TLS_REPLIED;
	}
	if (!must_tls || tls_on || opt == NBD_OPT_ABORT)
		return COLO_NBD_TLS_PASS;
	if (opt == NBD_OPT_EXPORT_NAME)
		return COLO_NBD_TLS_CLOSE;
	colo_nbd_opt_reply(out, opt, NBD_REP_ERR_TLS_REQD, NULL, 0);
	return COLO_NBD_TLS_REPLIED;
}

int colo_nbd_req_decode(const uint8_t in[NBD_REQUEST_LEN],
			struct colo_nbd_req *r)
{
	r->flags = colo_get_be16(in + 4);
	r->type = colo_get_be16(in + 6);
	r->cookie = colo_get_be64(in + 8);
	r->off = colo_get_be64(in + 16);
	r->len = colo_get_be32(in + 24);
	return colo_get_be32(in) == NBD_REQUEST_MAGIC ? 0 : -1;
}

static bool in_range(const struct colo_nbd_export *e,
		     const struct colo_nbd_req *r)
{
	return r->off <= e->size && r->len <= e->size - r->off;
}

static enum colo_nbd_req_verdict fail(uint32_t *err, uint32_t code)
{
	*err = code;
	return COLO_NBD_REQ_ERROR;
}

enum colo_nbd_req_verdict colo_nbd_req_check(const struct colo_nbd_export *e,
					     const struct colo_nbd_req *r,
					     uint32_t *err, uint32_t *payload)
{
	bool ro = e->tflags & NBD_FLAG_READ_ONLY;
	uint16_t allowed = NBD_CMD_FLAG_FUA;

	*err = 0;
	*payload = 0;
	if (r->type == NBD_CMD_WRITE) {
		/* The payload follows whatever we think of the request; one
		 * too long to buffer cannot be skipped safely. */
		if (r->len > e->max_block)
			return COLO_NBD_REQ_CLOSE;
		*payload = r->len;
	}
	if (r->type == NBD_CMD_WRITE_ZEROES)
		allowed |= NBD_CMD_FLAG_NO_HOLE;
	if (r->flags & ~allowed)
		return fail(err, NBD_EINVAL);
	switch (r->type) {
	case NBD_CMD_READ:
		if (r->len > e->max_block || !in_range(e, r))
			return fail(err, NBD_EINVAL);
		return COLO_NBD_REQ_OK;
	case NBD_CMD_WRITE:
	case NBD_CMD_WRITE_ZEROES:
		if (ro)
			return fail(err, NBD_EPERM);
		if (r->type == NBD_CMD_WRITE_ZEROES &&
		    !(e->tflags & NBD_FLAG_SEND_WRITE_ZEROES))
			return fail(err, NBD_EINVAL);
		if (!in_range(e, r))
			return fail(err, NBD_ENOSPC);
		return COLO_NBD_REQ_OK;
	case NBD_CMD_TRIM:
		if (ro)
			return fail(err, NBD_EPERM);
		if (!(e->tflags & NBD_FLAG_SEND_TRIM) || !in_range(e, r))
			return fail(err, NBD_EINVAL);
		return COLO_NBD_REQ_OK;
	case NBD_CMD_FLUSH:
		return COLO_NBD_REQ_OK;
	case NBD_CMD_DISC:
		return COLO_NBD_REQ_DISC;
	default:
		/* Not advertised (CACHE, BLOCK_STATUS, ...), or unknown:
		 * none of these carries a payload in simple mode. */
		return fail(err, NBD_EINVAL);
	}
}

void colo_nbd_simple_reply_encode(uint8_t out[NBD_SIMPLE_REPLY_LEN],
				  uint32_t err, uint64_t cookie)
{
	colo_put_be32(out, NBD_SIMPLE_REPLY_MAGIC);
	colo_put_be32(out + 4, err);
	colo_put_be64(out + 8, cookie);
}

uint32_t colo_nbd_errno(int neg_errno)
{
	switch (-neg_errno) {
	case 0:
		return 0;
	case EPERM:
	case EROFS:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case ENOTSUP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}

const char *colo_nbd_cmd_name(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ:
		return "read";
	case NBD_CMD_WRITE:
		return "write";
	case NBD_CMD_DISC:
		return "disc";
	case NBD_CMD_FLUSH:
		return "flush";
	case NBD_CMD_TRIM:
		return "trim";
	case NBD_CMD_WRITE_ZEROES:
		return "write-zeroes";
	default:
		return "unknown";
	}
}
