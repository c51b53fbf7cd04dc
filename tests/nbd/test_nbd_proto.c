/*
 * test_nbd_proto.c - the NBD protocol module on plain buffers: handshake
 * options and their replies, request checks, reply encoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nbd_proto.h"

#define SIZE (1024 * 1024)

static const struct colo_nbd_export export = {
	.name = "disk",
	.description = "a test disk",
	.size = SIZE,
	.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
		  NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES,
	.min_block = 1,
	.pref_block = 4096,
	.max_block = 32 * 1024 * 1024,
};

static uint8_t outbuf[COLO_NBD_OPT_OUT_MAX];

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void put(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static enum colo_nbd_opt_verdict opt(uint32_t o, const void *data, uint32_t len,
				     struct colo_nbd_out *out)
{
	*out = (struct colo_nbd_out){ .buf = outbuf, .cap = sizeof(outbuf) };
	return colo_nbd_opt_handle(&export, true, o, data, len, out);
}

/* Checks the option reply at *pos and moves past it; returns its data. */
static const uint8_t *next_reply(const struct colo_nbd_out *out, size_t *pos,
				 uint32_t o, uint32_t type, uint32_t *len)
{
	const uint8_t *p = out->buf + *pos;

	assert_true(*pos + NBD_OPT_REPLY_HDR_LEN <= out->len);
	assert_true(be(p, 8) == NBD_REP_MAGIC);
	assert_int_equal(be(p + 8, 4), o);
	assert_int_equal(be(p + 12, 4), type);
	*len = (uint32_t)be(p + 16, 4);
	*pos += NBD_OPT_REPLY_HDR_LEN + *len;
	assert_true(*pos <= out->len);
	return p + NBD_OPT_REPLY_HDR_LEN;
}

static void test_greeting_and_flags(void **state)
{
	uint8_t g[NBD_GREETING_LEN], f[4] = { 0, 0, 0, 3 }, hdr[16];
	uint32_t o, len;
	bool nz;

	(void)state;
	colo_nbd_greeting_encode(g);
	assert_memory_equal(g, "NBDMAGICIHAVEOPT", 16);
	assert_int_equal(be(g + 16, 2), 3);
	assert_int_equal(colo_nbd_client_flags_decode(f, &nz), 0);
	assert_true(nz);
	f[3] = 1;
	assert_int_equal(colo_nbd_client_flags_decode(f, &nz), 0);
	assert_false(nz);
	f[0] = 0x80;
	assert_int_equal(colo_nbd_client_flags_decode(f, &nz), -1);

	memcpy(hdr, "IHAVEOPT", 8);
	put(hdr + 8, NBD_OPT_GO, 4);
	put(hdr + 12, 77, 4);
	assert_int_equal(colo_nbd_opt_hdr_decode(hdr, &o, &len), 0);
	assert_int_equal(o, NBD_OPT_GO);
	assert_int_equal(len, 77);
	hdr[0] = 'X';
	assert_int_equal(colo_nbd_opt_hdr_decode(hdr, &o, &len), -1);
}

static void test_export_name(void **state)
{
	struct colo_nbd_out out;

	(void)state;
	assert_int_equal(opt(NBD_OPT_EXPORT_NAME, "disk", 4, &out),
			 COLO_NBD_OPT_TRANSMIT);
	assert_int_equal(out.len, 10);
	assert_true(be(out.buf, 8) == SIZE);
	assert_int_equal(be(out.buf + 8, 2), export.tflags);
	/* "" is the default export */
	assert_int_equal(opt(NBD_OPT_EXPORT_NAME, "", 0, &out),
			 COLO_NBD_OPT_TRANSMIT);
	/* no error reply exists for this option: close */
	assert_int_equal(opt(NBD_OPT_EXPORT_NAME, "disk2", 5, &out),
			 COLO_NBD_OPT_CLOSE);
	assert_int_equal(out.len, 0);
	assert_int_equal(opt(NBD_OPT_EXPORT_NAME, "dis", 3, &out),
			 COLO_NBD_OPT_CLOSE);
	/* without NO_ZEROES: 124 zero bytes follow */
	out = (struct colo_nbd_out){ .buf = outbuf, .cap = sizeof(outbuf) };
	assert_int_equal(colo_nbd_opt_handle(&export, false,
					     NBD_OPT_EXPORT_NAME,
					     (const uint8_t *)"disk", 4, &out),
			 COLO_NBD_OPT_TRANSMIT);
	assert_int_equal(out.len, 134);
	assert_int_equal(out.buf[133], 0);
}

static size_t go_data(uint8_t *d, const char *name, const uint16_t *infos,
		      int n)
{
	size_t nl = strlen(name);

	put(d, nl, 4);
	memcpy(d + 4, name, nl);
	put(d + 4 + nl, (uint64_t)n, 2);
	for (int i = 0; i < n; i++)
		put(d + 6 + nl + 2 * i, infos[i], 2);
	return 6 + nl + 2 * (size_t)n;
}

static void test_go_and_info(void **state)
{
	static const uint16_t infos[] = { NBD_INFO_NAME, NBD_INFO_DESCRIPTION,
					  NBD_INFO_NAME, 999 };
	struct colo_nbd_out out;
	uint8_t d[64];
	size_t n = go_data(d, "disk", infos, 4), pos = 0;
	const uint8_t *p;
	uint32_t len;

	(void)state;
	assert_int_equal(opt(NBD_OPT_INFO, d, (uint32_t)n, &out),
			 COLO_NBD_OPT_CONTINUE);
	p = next_reply(&out, &pos, NBD_OPT_INFO, NBD_REP_INFO, &len);
	assert_int_equal(len, 12);
	assert_int_equal(be(p, 2), NBD_INFO_EXPORT);
	assert_true(be(p + 2, 8) == SIZE);
	assert_int_equal(be(p + 10, 2), export.tflags);
	p = next_reply(&out, &pos, NBD_OPT_INFO, NBD_REP_INFO, &len);
	assert_int_equal(len, 14);
	assert_int_equal(be(p, 2), NBD_INFO_BLOCK_SIZE);
	assert_int_equal(be(p + 2, 4), 1);
	assert_int_equal(be(p + 6, 4), 4096);
	assert_int_equal(be(p + 10, 4), 32 * 1024 * 1024);
	p = next_reply(&out, &pos, NBD_OPT_INFO, NBD_REP_INFO, &len);
	assert_int_equal(be(p, 2), NBD_INFO_NAME);
	assert_int_equal(len, 2 + 4);
	assert_memory_equal(p + 2, "disk", 4);
	p = next_reply(&out, &pos, NBD_OPT_INFO, NBD_REP_INFO, &len);
	assert_int_equal(be(p, 2), NBD_INFO_DESCRIPTION);
	assert_memory_equal(p + 2, "a test disk", len - 2);
	next_reply(&out, &pos, NBD_OPT_INFO, NBD_REP_ACK, &len);
	assert_int_equal(len, 0);
	assert_int_equal(pos, out.len);

	n = go_data(d, "", NULL, 0);
	assert_int_equal(opt(NBD_OPT_GO, d, (uint32_t)n, &out),
			 COLO_NBD_OPT_TRANSMIT);
}

static void test_go_errors(void **state)
{
	struct colo_nbd_out out;
	uint8_t d[64];
	size_t n, pos = 0;
	uint32_t len;

	(void)state;
	n = go_data(d, "nope", NULL, 0);
	assert_int_equal(opt(NBD_OPT_GO, d, (uint32_t)n, &out),
			 COLO_NBD_OPT_CONTINUE);
	next_reply(&out, &pos, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, &len);
	assert_int_equal(pos, out.len);

	/* lengths that do not add up */
	n = go_data(d, "disk", NULL, 0);
	for (uint32_t l = 0; l < n + 3; l++) {
		if (l == n)
			continue;
		pos = 0;
		assert_int_equal(opt(NBD_OPT_GO, d, l, &out),
				 COLO_NBD_OPT_CONTINUE);
		next_reply(&out, &pos, NBD_OPT_GO, NBD_REP_ERR_INVALID, &len);
	}
	put(d, 0xffffffff, 4); /* name longer than the option */
	pos = 0;
	assert_int_equal(opt(NBD_OPT_INFO, d, (uint32_t)n, &out),
			 COLO_NBD_OPT_CONTINUE);
	next_reply(&out, &pos, NBD_OPT_INFO, NBD_REP_ERR_INVALID, &len);
}

static void test_list_abort_unknown(void **state)
{
	struct colo_nbd_out out;
	const uint8_t *p;
	size_t pos = 0;
	uint32_t len;

	(void)state;
	assert_int_equal(opt(NBD_OPT_LIST, NULL, 0, &out),
			 COLO_NBD_OPT_CONTINUE);
	p = next_reply(&out, &pos, NBD_OPT_LIST, NBD_REP_SERVER, &len);
	assert_int_equal(len, 8);
	assert_int_equal(be(p, 4), 4);
	assert_memory_equal(p + 4, "disk", 4);
	next_reply(&out, &pos, NBD_OPT_LIST, NBD_REP_ACK, &len);

	pos = 0;
	assert_int_equal(opt(NBD_OPT_LIST, "x", 1, &out),
			 COLO_NBD_OPT_CONTINUE);
	next_reply(&out, &pos, NBD_OPT_LIST, NBD_REP_ERR_INVALID, &len);

	pos = 0;
	assert_int_equal(opt(NBD_OPT_ABORT, NULL, 0, &out), COLO_NBD_OPT_CLOSE);
	next_reply(&out, &pos, NBD_OPT_ABORT, NBD_REP_ACK, &len);

	pos = 0;
	assert_int_equal(opt(NBD_OPT_STRUCTURED_REPLY, NULL, 0, &out),
			 COLO_NBD_OPT_CONTINUE);
	next_reply(&out, &pos, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_UNSUP,
		   &len);
	pos = 0;
	assert_int_equal(opt(0x12345678, "abc", 3, &out),
			 COLO_NBD_OPT_CONTINUE);
	next_reply(&out, &pos, 0x12345678, NBD_REP_ERR_UNSUP, &len);

	/* too long to have been read */
	pos = 0;
	assert_int_equal(opt(NBD_OPT_GO, NULL, 1u << 30, &out),
			 COLO_NBD_OPT_CLOSE);
	next_reply(&out, &pos, NBD_OPT_GO, NBD_REP_ERR_TOO_BIG, &len);
	assert_int_equal(opt(NBD_OPT_EXPORT_NAME, NULL, 1u << 30, &out),
			 COLO_NBD_OPT_CLOSE);
	assert_int_equal(out.len, 0);
}

/* The STARTTLS gate: what is refused before TLS, and STARTTLS itself. */
static enum colo_nbd_tls_verdict tls(bool can, bool must, bool on, uint32_t o,
				     uint32_t len, struct colo_nbd_out *out)
{
	*out = (struct colo_nbd_out){ .buf = outbuf, .cap = sizeof(outbuf) };
	return colo_nbd_opt_tls(can, must, on, o, len, out);
}

static void test_starttls_gate(void **state)
{
	struct colo_nbd_out out;
	size_t pos = 0;
	uint32_t len;

	(void)state;
	/* required, not running: only STARTTLS and ABORT get through */
	assert_int_equal(tls(true, true, false, NBD_OPT_GO, 6, &out),
			 COLO_NBD_TLS_REPLIED);
	next_reply(&out, &pos, NBD_OPT_GO, NBD_REP_ERR_TLS_REQD, &len);
	assert_int_equal(tls(true, true, false, NBD_OPT_EXPORT_NAME, 0, &out),
			 COLO_NBD_TLS_CLOSE);
	assert_int_equal(out.len, 0);
	assert_int_equal(tls(true, true, false, NBD_OPT_ABORT, 0, &out),
			 COLO_NBD_TLS_PASS);
	pos = 0;
	assert_int_equal(tls(true, true, false, NBD_OPT_STARTTLS, 0, &out),
			 COLO_NBD_TLS_START);
	next_reply(&out, &pos, NBD_OPT_STARTTLS, NBD_REP_ACK, &len);
	pos = 0;
	assert_int_equal(tls(true, true, false, NBD_OPT_STARTTLS, 1, &out),
			 COLO_NBD_TLS_REPLIED);
	next_reply(&out, &pos, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, &len);
	/* running: everything passes, a second STARTTLS is invalid */
	assert_int_equal(tls(true, true, true, NBD_OPT_GO, 6, &out),
			 COLO_NBD_TLS_PASS);
	pos = 0;
	assert_int_equal(tls(true, true, true, NBD_OPT_STARTTLS, 0, &out),
			 COLO_NBD_TLS_REPLIED);
	next_reply(&out, &pos, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, &len);
	/* offered, not required (UNIX): plain options pass */
	assert_int_equal(tls(true, false, false, NBD_OPT_GO, 6, &out),
			 COLO_NBD_TLS_PASS);
	/* not configured: STARTTLS is refused by policy */
	pos = 0;
	assert_int_equal(tls(false, false, false, NBD_OPT_STARTTLS, 0, &out),
			 COLO_NBD_TLS_REPLIED);
	next_reply(&out, &pos, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY, &len);
	/* too long to have been read: the option handler closes */
	assert_int_equal(tls(true, true, false, NBD_OPT_GO, 1u << 30, &out),
			 COLO_NBD_TLS_PASS);
}

static void test_out_overflow(void **state)
{
	uint8_t small[30];
	struct colo_nbd_out out = { .buf = small, .cap = sizeof(small) };

	(void)state;
	colo_nbd_opt_handle(&export, true, NBD_OPT_LIST, NULL, 0, &out);
	assert_true(out.overflow);
	assert_true(out.len <= out.cap);
}

static struct colo_nbd_req req(uint16_t type, uint16_t flags, uint64_t off,
			       uint32_t len)
{
	return (struct colo_nbd_req){ .type = type,
				      .flags = flags,
				      .cookie = 42,
				      .off = off,
				      .len = len };
}

static enum colo_nbd_req_verdict check(const struct colo_nbd_export *e,
				       struct colo_nbd_req r, uint32_t *err,
				       uint32_t *payload)
{
	return colo_nbd_req_check(e, &r, err, payload);
}

static void test_request_decode(void **state)
{
	uint8_t b[NBD_REQUEST_LEN];
	struct colo_nbd_req r;

	(void)state;
	put(b, NBD_REQUEST_MAGIC, 4);
	put(b + 4, NBD_CMD_FLAG_FUA, 2);
	put(b + 6, NBD_CMD_WRITE, 2);
	put(b + 8, 0x0102030405060708ULL, 8);
	put(b + 16, 4096, 8);
	put(b + 24, 512, 4);
	assert_int_equal(colo_nbd_req_decode(b, &r), 0);
	assert_int_equal(r.type, NBD_CMD_WRITE);
	assert_int_equal(r.flags, NBD_CMD_FLAG_FUA);
	assert_true(r.cookie == 0x0102030405060708ULL);
	assert_int_equal(r.off, 4096);
	assert_int_equal(r.len, 512);
	b[0] ^= 1;
	assert_int_equal(colo_nbd_req_decode(b, &r), -1);
}

static void test_request_checks(void **state)
{
	struct colo_nbd_export ro = export;
	uint32_t err, pl;

	(void)state;
	ro.tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY;

	assert_int_equal(
		check(&export, req(NBD_CMD_READ, 0, 0, SIZE), &err, &pl),
		COLO_NBD_REQ_OK);
	assert_int_equal(pl, 0);
	assert_int_equal(
		check(&export, req(NBD_CMD_READ, 0, 1, SIZE), &err, &pl),
		COLO_NBD_REQ_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	assert_int_equal(check(&export,
			       req(NBD_CMD_READ, 0, UINT64_MAX - 1, 16), &err,
			       &pl),
			 COLO_NBD_REQ_ERROR);
	assert_int_equal(check(&export,
			       req(NBD_CMD_READ, 0, 0, 32 * 1024 * 1024 + 1),
			       &err, &pl),
			 COLO_NBD_REQ_ERROR);
	assert_int_equal(err, NBD_EINVAL);

	assert_int_equal(check(&export,
			       req(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 512, 512),
			       &err, &pl),
			 COLO_NBD_REQ_OK);
	assert_int_equal(pl, 512);
	/* past the end: ENOSPC, and the payload is still to be read */
	assert_int_equal(
		check(&export, req(NBD_CMD_WRITE, 0, SIZE, 512), &err, &pl),
		COLO_NBD_REQ_ERROR);
	assert_int_equal(err, NBD_ENOSPC);
	assert_int_equal(pl, 512);
	/* too long to skip: close */
	assert_int_equal(check(&export, req(NBD_CMD_WRITE, 0, 0, 0x80000000u),
			       &err, &pl),
			 COLO_NBD_REQ_CLOSE);
	assert_int_equal(check(&ro, req(NBD_CMD_WRITE, 0, 0, 512), &err, &pl),
			 COLO_NBD_REQ_ERROR);
	assert_int_equal(err, NBD_EPERM);
	assert_int_equal(pl, 512);
	/* a flag not allowed for the command */
	assert_int_equal(check(&export,
			       req(NBD_CMD_WRITE, NBD_CMD_FLAG_NO_HOLE, 0, 8),
			       &err, &pl),
			 COLO_NBD_REQ_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	assert_int_equal(pl, 8);

	assert_int_equal(
		check(&export,
		      req(NBD_CMD_WRITE_ZEROES,
			  NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA, 0, SIZE),
		      &err, &pl),
		COLO_NBD_REQ_OK);
	assert_int_equal(pl, 0);
	assert_int_equal(check(&export,
			       req(NBD_CMD_WRITE_ZEROES, 0, 4096, SIZE), &err,
			       &pl),
			 COLO_NBD_REQ_ERROR);
	assert_int_equal(err, NBD_ENOSPC);
	assert_int_equal(
		check(&export, req(NBD_CMD_TRIM, 0, 0, SIZE), &err, &pl),
		COLO_NBD_REQ_OK);
	assert_int_equal(
		check(&export, req(NBD_CMD_TRIM, 0, 1, SIZE), &err, &pl),
		COLO_NBD_REQ_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	assert_int_equal(check(&ro, req(NBD_CMD_TRIM, 0, 0, 1), &err, &pl),
			 COLO_NBD_REQ_ERROR);
	assert_int_equal(err, NBD_EPERM);
	assert_int_equal(check(&ro, req(NBD_CMD_READ, 0, 0, 1), &err, &pl),
			 COLO_NBD_REQ_OK);

	assert_int_equal(check(&export, req(NBD_CMD_FLUSH, 0, 0, 0), &err, &pl),
			 COLO_NBD_REQ_OK);
	assert_int_equal(check(&export, req(NBD_CMD_DISC, 0, 0, 0), &err, &pl),
			 COLO_NBD_REQ_DISC);
	assert_int_equal(check(&export, req(5, 0, 0, 1), &err, &pl),
			 COLO_NBD_REQ_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	assert_int_equal(check(&export, req(0xffff, 0, 0, 1), &err, &pl),
			 COLO_NBD_REQ_ERROR);
}

static void test_reply_and_errno(void **state)
{
	uint8_t b[NBD_SIMPLE_REPLY_LEN];

	(void)state;
	colo_nbd_simple_reply_encode(b, NBD_ENOSPC, 0xaabbccddeeff0011ULL);
	assert_int_equal(be(b, 4), NBD_SIMPLE_REPLY_MAGIC);
	assert_int_equal(be(b + 4, 4), NBD_ENOSPC);
	assert_true(be(b + 8, 8) == 0xaabbccddeeff0011ULL);
	assert_int_equal(colo_nbd_errno(0), 0);
	assert_int_equal(colo_nbd_errno(-1), NBD_EPERM);
	assert_int_equal(colo_nbd_errno(-28), NBD_ENOSPC);
	assert_int_equal(colo_nbd_errno(-108), NBD_ESHUTDOWN);
	assert_int_equal(colo_nbd_errno(-9999), NBD_EIO);
	assert_string_equal(colo_nbd_cmd_name(NBD_CMD_WRITE_ZEROES),
			    "write-zeroes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_and_flags),
		cmocka_unit_test(test_starttls_gate),
		cmocka_unit_test(test_export_name),
		cmocka_unit_test(test_go_and_info),
		cmocka_unit_test(test_go_errors),
		cmocka_unit_test(test_list_abort_unknown),
		cmocka_unit_test(test_out_overflow),
		cmocka_unit_test(test_request_decode),
		cmocka_unit_test(test_request_checks),
		cmocka_unit_test(test_reply_and_errno),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
