/*
 * fuzz_nbd.c - the NBD protocol module fed a client's byte stream.
 *
 * The input is what a client would send after the greeting: client flags,
 * options until one ends the handshake, then requests with their write
 * payloads. It is consumed the way nbd_server.c consumes a socket, so
 * every parser and every decision sees arbitrary bytes; the checks assert
 * what the server relies on (replies fit, verdicts are consistent).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nbd_proto.h"

static const struct colo_nbd_export export = {
	.name = "disk",
	.description = "fuzzed",
	.size = 1 << 20,
	.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
		  NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES,
	.min_block = 1,
	.pref_block = 4096,
	.max_block = 32 * 1024 * 1024,
};

static uint8_t out_buf[COLO_NBD_OPT_OUT_MAX];

static const uint8_t *take(const uint8_t **p, size_t *n, size_t k)
{
	const uint8_t *r = *p;

	if (*n < k)
		return NULL;
	*p += k;
	*n -= k;
	return r;
}

/* Returns false when the server would close. */
static bool handshake(const uint8_t **p, size_t *n)
{
	/* Half the inputs meet a server that requires STARTTLS; a START
	 * counts as a completed handshake, so later options run "in TLS". */
	bool must_tls = *n & 1, tls_on = false;
	const uint8_t *b = take(p, n, NBD_CLIENT_FLAGS_LEN);
	bool no_zeroes;

	if (!b || colo_nbd_client_flags_decode(b, &no_zeroes))
		return false;
	for (;;) {
		struct colo_nbd_out out = { .buf = out_buf,
					    .cap = sizeof(out_buf) };
		enum colo_nbd_opt_verdict v;
		const uint8_t *data = NULL;
		uint32_t opt, len;

		b = take(p, n, NBD_OPT_HDR_LEN);
		if (!b || colo_nbd_opt_hdr_decode(b, &opt, &len))
			return false;
		if (len <= COLO_NBD_OPT_DATA_MAX) {
			data = take(p, n, len);
			if (!data)
				return false;
		}
		switch (colo_nbd_opt_tls(true, must_tls, tls_on, opt, len,
					 &out)) {
		case COLO_NBD_TLS_CLOSE:
			return false;
		case COLO_NBD_TLS_START:
			tls_on = true;
			/* fall through */
		case COLO_NBD_TLS_REPLIED:
			if (out.overflow || out.len > out.cap)
				abort();
			continue;
		case COLO_NBD_TLS_PASS:
			break;
		}
		if (must_tls && !tls_on && opt != NBD_OPT_ABORT &&
		    len <= COLO_NBD_OPT_DATA_MAX)
			abort(); /* the gate let an option through */
		v = colo_nbd_opt_handle(&export, no_zeroes, opt, data, len,
					&out);
		if (out.overflow || out.len > out.cap)
			abort();
		if (v == COLO_NBD_OPT_CLOSE)
			return false;
		if (v == COLO_NBD_OPT_TRANSMIT)
			return true;
	}
}

static void transmission(const uint8_t *p, size_t n)
{
	for (;;) {
		const uint8_t *b = take(&p, &n, NBD_REQUEST_LEN);
		uint8_t reply[NBD_SIMPLE_REPLY_LEN];
		enum colo_nbd_req_verdict v;
		struct colo_nbd_req r;
		uint32_t err, payload;

		if (!b || colo_nbd_req_decode(b, &r))
			return;
		v = colo_nbd_req_check(&export, &r, &err, &payload);
		if (v == COLO_NBD_REQ_CLOSE || v == COLO_NBD_REQ_DISC)
			return;
		if (payload > export.max_block)
			abort();
		/* What the server then hands to the device must be in range */
		if (v == COLO_NBD_REQ_OK &&
		    (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE ||
		     r.type == NBD_CMD_TRIM ||
		     r.type == NBD_CMD_WRITE_ZEROES) &&
		    (r.off > export.size || r.len > export.size - r.off))
			abort();
		if (v == COLO_NBD_REQ_ERROR && err == 0)
			abort();
		colo_nbd_simple_reply_encode(reply, err, r.cookie);
		if (payload && !take(&p, &n, payload))
			return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (handshake(&data, &size))
		transmission(data, size);
	return 0;
}
