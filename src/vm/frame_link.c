/*
 * frame_link.c - encoding and decoding of the frame link's messages. Pure
 * functions over buffers; the peer is another machine, so every length
 * and offset is checked before use.
 */
#include <string.h>

#include "common/byteorder.h"
#include "frame_link.h"

int colo_flink_decode(const uint8_t *buf, size_t len,
		      struct colo_flink_frame *f, size_t *used)
{
	uint32_t plen;

	if (len < COLO_FLINK_HDR_LEN)
		return 0;
	plen = colo_get_be32(buf + 4);
	if (buf[0] == 0 || buf[0] > COLO_FLINK_TYPE_MAX || buf[1] != 0 ||
	    buf[2] != 0 || buf[3] != 0 || plen > COLO_FLINK_PAYLOAD_MAX)
		return -1;
	if (len - COLO_FLINK_HDR_LEN < plen)
		return 0;
	f->type = buf[0];
	f->len = plen;
	f->payload = buf + COLO_FLINK_HDR_LEN;
	*used = COLO_FLINK_HDR_LEN + (size_t)plen;
	return 1;
}

/* Fixed-size text field: NUL padded, must hold a NUL-free printable
 * prefix (it lands in logs and error messages). */
static int get_text(const uint8_t *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n && p[i]; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return -1;
	memcpy(out, p, i);
	out[i] = '\0';
	for (; i < n; i++)
		if (p[i])
			return -1;
	return 0;
}

int colo_flink_parse_hello(const struct colo_flink_frame *f,
			   struct colo_flink_hello *h)
{
	const uint8_t *p = f->payload;

	if (f->type != COLO_FLINK_HELLO || f->len != COLO_FLINK_HELLO_LEN ||
	    memcmp(p, "COLOVMFR", 8) != 0)
		return -1;
	h->version = colo_get_be16(p + 8);
	h->role = p[10];
	if (p[11] != 0 ||
	    (h->role != COLO_FLINK_PRIMARY && h->role != COLO_FLINK_SECONDARY))
		return -1;
	h->ram_size = colo_get_be64(p + 12);
	if (get_text(p + 20, COLO_FLINK_VERSION_LEN, h->qemu_version) < 0 ||
	    get_text(p + 20 + COLO_FLINK_VERSION_LEN, COLO_FLINK_MACHINE_LEN,
		     h->machine) < 0)
		return -1;
	return 0;
}

size_t colo_flink_encode_hello(uint8_t *buf, const struct colo_flink_hello *h)
{
	uint8_t *p = buf + COLO_FLINK_HDR_LEN;

	memset(buf, 0, COLO_FLINK_HDR_LEN + COLO_FLINK_HELLO_LEN);
	buf[0] = COLO_FLINK_HELLO;
	colo_put_be32(buf + 4, COLO_FLINK_HELLO_LEN);
	memcpy(p, "COLOVMFR", 8);
	colo_put_be16(p + 8, h->version);
	p[10] = h->role;
	colo_put_be64(p + 12, h->ram_size);
	memcpy(p + 20, h->qemu_version,
	       strnlen(h->qemu_version, COLO_FLINK_VERSION_LEN));
	memcpy(p + 20 + COLO_FLINK_VERSION_LEN, h->machine,
	       strnlen(h->machine, COLO_FLINK_MACHINE_LEN));
	return COLO_FLINK_HDR_LEN + COLO_FLINK_HELLO_LEN;
}

/* Message payload: seq u64 | value u64 | text (rest, printable). */
int colo_flink_parse_msg(const struct colo_flink_frame *f,
			 struct colo_flink_msg *m)
{
	size_t tlen;

	if (f->type == COLO_FLINK_HELLO || f->type == COLO_FLINK_PAGES ||
	    f->len < 16 || f->len - 16 > COLO_FLINK_TEXT_MAX)
		return -1;
	m->seq = colo_get_be64(f->payload);
	m->value = colo_get_be64(f->payload + 8);
	tlen = f->len - 16;
	for (size_t i = 0; i < tlen; i++)
		if (f->payload[16 + i] < 0x20 || f->payload[16 + i] > 0x7e)
			return -1;
	memcpy(m->text, f->payload + 16, tlen);
	m->text[tlen] = '\0';
	return 0;
}

size_t colo_flink_encode_msg(uint8_t *buf, uint8_t type,
			     const struct colo_flink_msg *m)
{
	size_t tlen = strnlen(m->text, COLO_FLINK_TEXT_MAX);

	buf[0] = type;
	buf[1] = buf[2] = buf[3] = 0;
	colo_put_be32(buf + 4, (uint32_t)(16 + tlen));
	colo_put_be64(buf + 8, m->seq);
	colo_put_be64(buf + 16, m->value);
	memcpy(buf + 24, m->text, tlen);
	return 24 + tlen;
}

/* PAGES payload: seq u64 | count u32 | count * (offset u64 | page). */
int colo_flink_parse_pages(const struct colo_flink_frame *f, uint64_t ram_size,
			   uint64_t *seq, uint32_t *count, const uint8_t **recs)
{
	uint32_t n;

	if (f->type != COLO_FLINK_PAGES || f->len < 12)
		return -1;
	n = colo_get_be32(f->payload + 8);
	if (n == 0 || n > COLO_FLINK_PAGES_MAX ||
	    f->len != 12 + (uint64_t)n * COLO_FLINK_PAGE_REC)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = colo_get_be64(f->payload + 12 +
					     i * COLO_FLINK_PAGE_REC);

		if (off % COLO_FLINK_PAGE || off >= ram_size ||
		    ram_size - off < COLO_FLINK_PAGE)
			return -1;
	}
	*seq = colo_get_be64(f->payload);
	*count = n;
	*recs = f->payload + 12;
	return 0;
}
