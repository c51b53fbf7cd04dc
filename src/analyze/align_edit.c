/*
 * align_edit.c - the changes alignment makes to captured frames: shifting
 * a secondary segment into the primary's space (the rewriter's own code)
 * and cutting the front off a segment. Checksums stay valid, so the
 * frames written with -w read as ordinary traffic.
 */
#include <string.h>

#include "align_internal.h"
#include "byteorder.h"
#include "checksum.h"

bool colo_align_parse_tcp(const struct colo_frame *f, struct colo_packet *p)
{
	return colo_packet_parse(f->data, f->len, p) == COLO_PKT_TCP;
}

void colo_align_shift(struct colo_capture *c, const struct colo_align_entry *e,
		      size_t n, const struct colo_tcp_offset *off)
{
	for (size_t i = 0; i < n; i++) {
		struct colo_frame *f = &c->frames[e[i].frame];
		struct colo_tcp_opts o;
		struct colo_packet p;
		uint8_t *tcp;
		size_t doff;

		if (!colo_align_parse_tcp(f, &p))
			continue;
		tcp = f->data + (p.l4 - f->data);
		doff = (size_t)(tcp[12] >> 4) * 4; /* checked by the parser */
		colo_tcp_find_options(tcp, doff, &o);
		colo_tcp_offset_shift_egress(tcp, o.ts_at, true, off);
	}
}

/* Recomputes a TCP checksum over the pseudo-header and the segment. */
static void tcp_checksum(const struct colo_packet *p, uint8_t *tcp,
			 size_t tcp_len)
{
	size_t alen = p->ipver == 4 ? 4 : 16;
	uint32_t sum = 6 + (uint32_t)tcp_len;
	uint16_t c;

	sum = colo_csum_add(sum, p->src, alen);
	sum = colo_csum_add(sum, p->dst, alen);
	tcp[16] = tcp[17] = 0;
	sum = colo_csum_add(sum, tcp, tcp_len);
	c = colo_csum_fold(sum);
	colo_put_be16(tcp + 16, c);
}

void colo_align_trim_front(struct colo_frame *f, uint32_t cut)
{
	struct colo_packet p;
	uint8_t *l3, *tcp;
	size_t doff, tail;

	if (!colo_align_parse_tcp(f, &p) || cut >= p.payload_len)
		return;
	l3 = f->data + (p.l3 - f->data);
	tcp = f->data + (p.l4 - f->data);
	doff = (size_t)(tcp[12] >> 4) * 4;
	tail = f->len - (size_t)(p.payload - f->data) - cut;
	memmove(tcp + doff, tcp + doff + cut, tail);
	f->len -= cut;
	f->wire_len -= cut;
	if (p.ipver == 4) {
		uint16_t sum = colo_get_be16(l3 + 10);

		colo_csum_set16(l3, 2, (uint16_t)(p.l3_len - cut), &sum);
		colo_put_be16(l3 + 10, sum);
	} else {
		colo_put_be16(l3 + 4, (uint16_t)(colo_get_be16(l3 + 4) - cut));
	}
	colo_put_be32(tcp + 4, p.seq + cut);
	tcp_checksum(&p, tcp, p.l4_len - cut);
}
