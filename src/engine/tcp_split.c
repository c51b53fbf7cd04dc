/*
 * tcp_split.c - send the matched front of a held TCP frame on its own.
 *
 * A primary GSO super-frame may carry 64 KiB while the secondary, limited
 * by its congestion window, has sent only part of those bytes. Holding the
 * whole frame until the secondary sends the rest deadlocks: the secondary
 * waits for the client's ACK, and the client cannot ACK what it never got.
 * So the matched prefix leaves as a frame of its own and the rest stays
 * held.
 *
 * The parts are made in place, without copying payload: the headers are
 * moved forward over payload already sent, so the rest of the frame is
 * always "headers, then unsent payload", contiguous in the frame buffer.
 * Every header field a part needs is written absolutely (lengths, seq,
 * flags, checksums), never adjusted, so a part does not depend on how
 * the previous one was patched.
 *
 * The same patching makes a TCP frame's headers alone into a frame of
 * their own (colo_tcp_headers_only): how the secondary proxy shows a SYN
 * it cannot shift yet, without its data.
 */
#include <string.h>

#include "checksum.h"
#include "byteorder.h"
#include "comparer_internal.h"
#include "packet_build.h"

enum {
	VNET_F_NEEDS_CSUM = 1,
	VNET_GSO_NONE = 0,
	TCP_CWR = 0x80,
	IPPROTO_TCP_NUM = 6,
};

void colo_tcp_split_note(struct colo_frame *f, const struct colo_input *in)
{
	const struct colo_packet *p = in->pkt;

	f->l3_off = (uint16_t)(p->l3 - in->raw);
	f->l4_off = (uint16_t)(p->l4 - in->raw);
	f->ipver = p->ipver;
	f->gso_type = in->vnet_hdr_len >= 10 ? in->raw[1] : VNET_GSO_NONE;
}

bool colo_tcp_splittable(const struct colo_frame *f)
{
	return f->payload_len && f->l4_off && f->ipver &&
	       !(f->tcp_flags & (COLO_TCP_SYN | COLO_TCP_RST)) &&
	       f->payload_off >= (uint32_t)f->l4_off + 20;
}

static uint16_t ipv4_checksum(const uint8_t *ip, size_t ihl)
{
	return colo_csum_fold(colo_csum_add(0, ip, ihl));
}

/* Writes the headers at h (a copy of the frame's, moved to sit before
 * payload bytes [from, to)) for a frame carrying only those bytes. */
static void patch_headers(const struct colo_frame *f, uint8_t *h, uint32_t from,
			  uint32_t to)
{
	uint32_t part = to - from;
	uint32_t tcp_len = f->payload_off - f->l4_off + part;
	uint8_t *ip = h + f->l3_off, *tcp = h + f->l4_off;
	bool partial_csum = false;
	uint8_t flags = f->tcp_flags;

	if (f->vnet_hdr_len >= 10) {
		uint16_t gso_size = (uint16_t)(h[4] | h[5] << 8);
		partial_csum = h[0] & VNET_F_NEEDS_CSUM;
		h[1] = (f->gso_type == VNET_GSO_NONE || part <= gso_size)
			       ? VNET_GSO_NONE
			       : f->gso_type;
	}
	if (f->ipver == 4) {
		size_t ihl = (size_t)(ip[0] & 15) * 4;
		colo_put_be16(ip + 2,
			      (uint16_t)(f->l4_off - f->l3_off + tcp_len));
		colo_put_be16(ip + 10, 0);
		colo_put_be16(ip + 10, ipv4_checksum(ip, ihl));
	} else {
		colo_put_be16(ip + 4,
			      (uint16_t)(f->l4_off - f->l3_off - 40 + tcp_len));
	}
	colo_put_be32(tcp + 4, f->seq + from);
	if (to < f->payload_len)
		flags &= (uint8_t) ~(COLO_TCP_FIN | COLO_TCP_PSH);
	tcp[13] = (uint8_t)((tcp[13] & ~0x3f) | (flags & 0x3f));
	if (from)
		tcp[13] &= (uint8_t)~TCP_CWR;

	/* pseudo-header: addresses, protocol, TCP length */
	size_t alen = f->ipver == 4 ? 4 : 16;
	const uint8_t *src = f->ipver == 4 ? ip + 12 : ip + 8;
	uint32_t sum = colo_csum_add(0, src, 2 * alen);
	sum += IPPROTO_TCP_NUM + (tcp_len >> 16) + (tcp_len & 0xffff);
	colo_put_be16(tcp + 16, 0);
	if (partial_csum) {
		/* The field holds the folded pseudo-header sum, not
		 * complemented: whoever completes the checksum adds the
		 * rest. */
		colo_put_be16(tcp + 16, (uint16_t)~colo_csum_fold(sum));
		return;
	}
	sum = colo_csum_add(sum, tcp, f->payload_off - f->l4_off);
	sum = colo_csum_add(sum, h + f->payload_off, part);
	colo_put_be16(tcp + 16, colo_csum_fold(sum));
}

size_t colo_tcp_headers_only(const uint8_t *frame, size_t len, size_t vnet,
			     uint8_t *out, size_t cap)
{
	struct colo_packet p;
	struct colo_frame f;
	size_t hl;

	if (vnet > len ||
	    colo_packet_parse(frame + vnet, len - vnet, &p) != COLO_PKT_TCP)
		return 0;
	hl = (size_t)(p.payload - frame);
	if (hl > cap || hl > UINT16_MAX)
		return 0;
	memset(&f, 0, sizeof(f));
	f.vnet_hdr_len = (uint16_t)vnet;
	f.l3_off = (uint16_t)(p.l3 - frame);
	f.l4_off = (uint16_t)(p.l4 - frame);
	f.ipver = p.ipver;
	f.gso_type = vnet >= 10 ? frame[1] : VNET_GSO_NONE;
	f.payload_off = (uint32_t)hl;
	f.payload_len = (uint32_t)p.payload_len;
	f.seq = p.seq;
	f.tcp_flags = p.tcp_flags;
	memcpy(out, frame, hl);
	patch_headers(&f, out, 0, 0);
	return hl;
}

void colo_tcp_release_part(struct colo_comparer *c, struct colo_frame *f,
			   uint32_t to)
{
	uint32_t from = f->sent;
	uint8_t *h = f->data + from; /* the headers sit before byte `from` */
	size_t len = f->payload_off + (to - from);

	patch_headers(f, h, from, to);
	/* released_bytes counts each frame once, as it came in */
	if (to < f->payload_len)
		c->st.released_parts++;
	if (c->ops.release)
		c->ops.release(c->opaque, h, len, f->vnet_hdr_len);
	f->sent = to;
	/* Move the headers up against the unsent payload, over bytes that
	 * were just sent. */
	if (to < f->payload_len)
		memmove(f->data + to, h, f->payload_off);
}
