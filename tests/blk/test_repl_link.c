/* test_repl_link.c - replication link frames: round trips and rejects. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "repl_link.h"

static void test_hdr_round_trip(void **state)
{
	struct colo_link_hdr h = { .type = COLO_LINK_WRITE,
				   .flags = COLO_LINK_F_FUA,
				   .seq = 0x0102030405060708ULL,
				   .off = 1ULL << 40,
				   .len = 4096 },
			     d;
	uint8_t b[COLO_LINK_HDR_LEN];

	(void)state;
	colo_link_encode_hdr(b, &h);
	assert_memory_equal(b, "CRPL", 4);
	assert_int_equal(colo_link_decode_hdr(b, &d), 0);
	assert_int_equal(d.type, h.type);
	assert_int_equal(d.flags, h.flags);
	assert_int_equal(d.seq, h.seq);
	assert_int_equal(d.off, h.off);
	assert_int_equal(d.len, h.len);
	assert_int_equal(colo_link_payload_len(&d), 4096);
	h.flags = COLO_LINK_F_ZERO;
	assert_int_equal(colo_link_payload_len(&h), 0);
}

static int decode(struct colo_link_hdr h)
{
	uint8_t b[COLO_LINK_HDR_LEN];
	struct colo_link_hdr d;

	colo_link_encode_hdr(b, &h);
	return colo_link_decode_hdr(b, &d);
}

static void test_hdr_rejects(void **state)
{
	uint8_t b[COLO_LINK_HDR_LEN];
	struct colo_link_hdr h = { .type = COLO_LINK_PING }, d;

	(void)state;
	assert_int_equal(decode(h), 0);
	h.type = 0;
	assert_int_equal(decode(h), -EPROTO);
	h.type = COLO_LINK_TYPE_MAX + 1;
	assert_int_equal(decode(h), -EPROTO);
	/* payload where none is allowed, bad flags, oversize, overflow */
	assert_int_equal(decode((struct colo_link_hdr){
				 .type = COLO_LINK_WRITE_ACK, .len = 1 }),
			 -EPROTO);
	assert_int_equal(
		decode((struct colo_link_hdr){ .type = COLO_LINK_PING,
					       .flags = COLO_LINK_F_ZERO }),
		-EPROTO);
	assert_int_equal(decode((struct colo_link_hdr){
				 .type = COLO_LINK_WRITE,
				 .len = COLO_LINK_MAX_PAYLOAD + 1 }),
			 -EPROTO);
	assert_int_equal(decode((struct colo_link_hdr){ .type = COLO_LINK_WRITE,
							.len = 0 }),
			 -EPROTO);
	assert_int_equal(decode((struct colo_link_hdr){ .type = COLO_LINK_WRITE,
							.len = 2,
							.off = UINT64_MAX }),
			 -EPROTO);
	assert_int_equal(decode((struct colo_link_hdr){ .type = COLO_LINK_HELLO,
							.len = 23 }),
			 -EPROTO);
	/* prepare: only on a barrier, never with checkpoint; refused: only
	 * on a barrier's ack */
	assert_int_equal(
		decode((struct colo_link_hdr){ .type = COLO_LINK_BARRIER,
					       .flags = COLO_LINK_F_PREPARE }),
		0);
	assert_int_equal(decode((struct colo_link_hdr){
				 .type = COLO_LINK_BARRIER,
				 .flags = COLO_LINK_F_PREPARE |
					  COLO_LINK_F_CHECKPOINT }),
			 -EPROTO);
	assert_int_equal(
		decode((struct colo_link_hdr){ .type = COLO_LINK_WRITE,
					       .len = 1,
					       .flags = COLO_LINK_F_PREPARE }),
		-EPROTO);
	assert_int_equal(
		decode((struct colo_link_hdr){ .type = COLO_LINK_BARRIER_ACK,
					       .flags = COLO_LINK_F_REFUSED }),
		0);
	assert_int_equal(
		decode((struct colo_link_hdr){ .type = COLO_LINK_WRITE_ACK,
					       .flags = COLO_LINK_F_REFUSED }),
		-EPROTO);
	/* bad magic, nonzero reserved word */
	colo_link_encode_hdr(b,
			     &(struct colo_link_hdr){ .type = COLO_LINK_PONG });
	b[0] ^= 1;
	assert_int_equal(colo_link_decode_hdr(b, &d), -EPROTO);
	b[0] ^= 1;
	b[31] = 1;
	assert_int_equal(colo_link_decode_hdr(b, &d), -EPROTO);
}

static void test_hello_and_parse(void **state)
{
	struct colo_link_hello h = { .version = 1,
				     .auth = 0,
				     .size = 123456789,
				     .granularity = 65536 },
			       d;
	uint8_t buf[COLO_LINK_HDR_LEN + COLO_LINK_HELLO_LEN + 5];
	struct colo_link_hdr hdr = { .type = COLO_LINK_HELLO,
				     .len = COLO_LINK_HELLO_LEN },
			     got;
	const uint8_t *payload;

	(void)state;
	colo_link_encode_hdr(buf, &hdr);
	colo_link_encode_hello(buf + COLO_LINK_HDR_LEN, &h);
	for (size_t n = 0; n < COLO_LINK_HDR_LEN + COLO_LINK_HELLO_LEN; n++)
		assert_int_equal(colo_link_parse(buf, n, &got, &payload), 0);
	assert_int_equal(colo_link_parse(buf, sizeof(buf), &got, &payload),
			 COLO_LINK_HDR_LEN + COLO_LINK_HELLO_LEN);
	assert_int_equal(colo_link_decode_hello(payload, got.len, &d), 0);
	assert_int_equal(d.size, h.size);
	assert_int_equal(d.granularity, h.granularity);
	assert_int_equal(colo_link_decode_hello(payload, 3, &d), -EPROTO);
	memset(buf, 0xff, COLO_LINK_HDR_LEN);
	assert_int_equal(colo_link_parse(buf, sizeof(buf), &got, &payload),
			 -EPROTO);
	assert_string_equal(colo_link_type_name(COLO_LINK_BARRIER), "BARRIER");
	assert_string_equal(colo_link_type_name(999), "?");
}

/* send/recv over a socketpair, including a zero-payload write. */
static void test_socket_io(void **state)
{
	struct colo_link_hdr h = { .type = COLO_LINK_WRITE,
				   .seq = 7,
				   .off = 512,
				   .len = 1000 },
			     got;
	uint8_t data[1000], back[1000];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(data, 0x5a, sizeof(data));
	assert_int_equal(colo_link_send(sv[0], &h, data), 0);
	assert_int_equal(colo_link_recv(sv[1], &got, back, sizeof(back)), 0);
	assert_int_equal(got.seq, 7);
	assert_memory_equal(back, data, sizeof(data));
	/* a payload larger than the caller's buffer is refused */
	assert_int_equal(colo_link_send(sv[0], &h, data), 0);
	assert_int_equal(colo_link_recv(sv[1], &got, back, 10), -EPROTO);
	/* the stream is out of step after an error: the rest is junk */
	assert_int_equal(colo_link_recv(sv[1], &got, back, sizeof(back)),
			 -EPROTO);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[0]);
	assert_int_equal(colo_link_recv(sv[1], &got, back, sizeof(back)),
			 -ECONNRESET);
	close(sv[1]);
}

/* The digest frames: what len may be, and the ranges a request may
 * cover on the image. */
static void test_digest_frames(void **state)
{
	const uint32_t D = COLO_LINK_DIGEST_LEN;
	struct colo_link_hdr d = { .type = COLO_LINK_DIGEST, .len = 2 * D };
	uint32_t n = 0;

	(void)state;
	assert_int_equal(
		decode((struct colo_link_hdr){ .type = COLO_LINK_DIGEST_REQ,
					       .off = 1 << 20,
					       .len = 0xffffffffU }),
		0);
	assert_int_equal(decode((struct colo_link_hdr){
				 .type = COLO_LINK_DIGEST_REQ, .len = 0 }),
			 -EPROTO);
	assert_int_equal(
		decode((struct colo_link_hdr){ .type = COLO_LINK_DIGEST_REQ,
					       .off = UINT64_MAX - 10,
					       .len = 11 }),
		-EPROTO);
	assert_int_equal(
		decode((struct colo_link_hdr){ .type = COLO_LINK_DIGEST_REQ,
					       .flags = COLO_LINK_F_ERROR,
					       .len = 512 }),
		-EPROTO);
	assert_int_equal(decode(d), 0);
	assert_int_equal(colo_link_payload_len(&d), 2 * D);
	d.len = COLO_LINK_MAX_DIGESTS * D;
	assert_int_equal(decode(d), 0);
	d.len += D; /* more digests than a request may ask for */
	assert_int_equal(decode(d), -EPROTO);
	d.len = D + 1; /* not whole digests */
	assert_int_equal(decode(d), -EPROTO);
	d.len = 0;
	assert_int_equal(decode(d), -EPROTO);
	d.flags = COLO_LINK_F_ERROR; /* a failed hash carries none */
	assert_int_equal(decode(d), 0);
	assert_int_equal(colo_link_payload_len(&d), 0);
	d.len = D;
	assert_int_equal(decode(d), -EPROTO);
	assert_string_equal(colo_link_type_name(COLO_LINK_DIGEST_REQ),
			    "DIGEST_REQ");

	/* spans: whole granules inside the image, the last one may be short */
	assert_int_equal(
		colo_link_digest_span(0, 65536 * 16, 65536, 1 << 30, &n), 0);
	assert_int_equal(n, 16);
	assert_int_equal(
		colo_link_digest_span(65536, 1000, 65536, 65536 + 1000, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(
		colo_link_digest_span(0, 65536 + 1, 65536, 2 * 65536 + 1, &n),
		-EPROTO); /* short granule not at the end */
	assert_int_equal(colo_link_digest_span(512, 65536, 65536, 1 << 30, &n),
			 -EPROTO); /* off not on a granule */
	assert_int_equal(colo_link_digest_span(0, 65536, 65536, 4096, &n),
			 -EPROTO); /* beyond the image */
	assert_int_equal(colo_link_digest_span(UINT64_MAX - 511, 512, 512,
					       UINT64_MAX, &n),
			 -EPROTO);
	assert_int_equal(colo_link_digest_span(0, 4096, 1000, 1 << 20, &n),
			 -EPROTO); /* granularity not a power of two */
	assert_int_equal(colo_link_digest_span(0, 256, 256, 1 << 20, &n),
			 -EPROTO); /* below the smallest */
	assert_int_equal(colo_link_digest_span(0, 0, 512, 1 << 20, &n),
			 -EPROTO);
	assert_int_equal(colo_link_digest_span(0, 4096 * 512, 512, 1 << 30, &n),
			 0);
	assert_int_equal(n, COLO_LINK_MAX_DIGESTS);
	assert_int_equal(colo_link_digest_span(0, 4097 * 512, 512, 1 << 30, &n),
			 -EPROTO); /* too many digests */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_round_trip),
		cmocka_unit_test(test_hdr_rejects),
		cmocka_unit_test(test_hello_and_parse),
		cmocka_unit_test(test_socket_io),
		cmocka_unit_test(test_digest_frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
