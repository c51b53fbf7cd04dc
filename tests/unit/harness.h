/*
 * harness.h - drive a comparer in tests: build frames, feed them, and
 * record what was released and which divergences were reported.
 */
#ifndef COLO_TEST_HARNESS_H
#define COLO_TEST_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "checksum.h"
#include "comparer.h"
#include "packet.h"
#include "packet_build.h"

#define H_MAX_REL 65536

struct harness {
	struct colo_comparer *c;
	/* released frames: tag (first payload byte or user tag) per frame */
	size_t nrel;
	uint32_t rel_seq[H_MAX_REL];
	uint32_t rel_len[H_MAX_REL];
	uint8_t rel_flags[H_MAX_REL];
	uint16_t rel_ipid[H_MAX_REL];
	size_t nev, nreq;
	struct colo_divergence last;
	uint64_t now;
	/* bytes released per TCP flow, to check streams end to end */
	uint64_t rel_payload_bytes;
	/* released TCP frames whose lengths or checksums are wrong */
	size_t bad_frames;
};

/* Whether a released TCP frame is one a receiver would accept: IP
 * lengths that parse, and (without an offloaded checksum) valid IPv4
 * header and TCP checksums. */
static inline bool h_tcp_frame_ok(const uint8_t *frame, size_t vnet,
				  const struct colo_packet *p)
{
	if (p->kind != COLO_PKT_TCP)
		return false;
	if (p->ipver == 4 &&
	    colo_csum_fold(colo_csum_add(0, p->l3, (p->l3[0] & 15) * 4u)))
		return false;
	if (vnet && (frame[0] & 1))
		return true; /* NEEDS_CSUM: checked by test_tcp_split */
	size_t alen = p->ipver == 4 ? 4 : 16;
	uint32_t sum = colo_csum_add(0, p->src, alen);
	sum = colo_csum_add(sum, p->dst, alen);
	sum += 6 + (uint32_t)p->l4_len;
	sum = colo_csum_add(sum, p->l4, p->l4_len);
	return colo_csum_fold(sum) == 0;
}

static void h_release(void *opaque, const uint8_t *frame, size_t len,
		      size_t vnet)
{
	struct harness *h = opaque;
	struct colo_packet p;

	colo_packet_parse(frame + vnet, len - vnet, &p);
	if (h->nrel < H_MAX_REL) {
		h->rel_seq[h->nrel] = p.seq;
		h->rel_len[h->nrel] = (uint32_t)p.payload_len;
		h->rel_flags[h->nrel] = p.tcp_flags;
		h->rel_ipid[h->nrel] =
			p.ipver == 4 ? (uint16_t)(p.l3[4] << 8 | p.l3[5]) : 0;
	}
	h->nrel++;
	h->rel_payload_bytes += p.payload_len;
	if (p.kind == COLO_PKT_TCP && !h_tcp_frame_ok(frame, vnet, &p))
		h->bad_frames++;
}

static void h_event(void *opaque, const struct colo_divergence *d)
{
	struct harness *h = opaque;

	h->nev++;
	if (d->requested)
		h->nreq++;
	h->last = *d;
}

static inline struct harness *h_new_cfg(const struct colo_comparer_config *cfg)
{
	struct harness *h = calloc(1, sizeof(*h));
	struct colo_comparer_ops ops = { h_release, h_event };

	assert_non_null(h);
	h->c = colo_comparer_new(cfg, &ops, h);
	assert_non_null(h->c);
	h->now = 1000000000ULL;
	return h;
}

static inline struct harness *h_new(void)
{
	return h_new_cfg(NULL);
}

static inline void h_free(struct harness *h)
{
	colo_comparer_free(h->c);
	free(h);
}

static inline void h_feed(struct harness *h, enum colo_side side,
			  const uint8_t *frame, size_t len)
{
	colo_comparer_input(h->c, side, frame, len, 0, h->now);
}

/* A TCP segment of flow `spec` (ports etc.) carrying payload. */
static inline void h_tcp(struct harness *h, enum colo_side side,
			 const struct colo_pkt_spec *base, uint32_t seq,
			 uint32_t ack, uint8_t flags, const void *payload,
			 size_t n, uint16_t ipid)
{
	static uint8_t buf[70000];
	struct colo_pkt_spec s = *base;

	s.seq = seq;
	s.ack = ack;
	s.tcp_flags = flags;
	s.ip_id = ipid;
	size_t len = colo_pkt_build(&s, payload, n, buf, sizeof(buf));
	assert_true(len > 0);
	h_feed(h, side, buf, len);
}

static inline void h_udp(struct harness *h, enum colo_side side,
			 const struct colo_pkt_spec *base, const void *payload,
			 size_t n, uint16_t ipid)
{
	static uint8_t buf[70000];
	struct colo_pkt_spec s = *base;

	s.proto = 17;
	s.ip_id = ipid;
	size_t len = colo_pkt_build(&s, payload, n, buf, sizeof(buf));
	assert_true(len > 0);
	h_feed(h, side, buf, len);
}

static inline const struct colo_stats *h_stats(struct harness *h)
{
	return colo_comparer_stats(h->c);
}

#endif
