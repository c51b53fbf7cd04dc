/*
 * fuzz_rewriter.c - libFuzzer target: a program of operations against one
 * TCP rewriter. Records are raw frames (any bytes, any vnet length),
 * structured segments of a few connections near the sequence wrap (so
 * that the fuzzer gets past the handshake into the rewriting), raw
 * metadata, checkpoints, failover and ticks. Every frame is copied into
 * an exactly sized heap buffer so that any overread shows under ASan.
 *
 * Record: op byte, then op-specific bytes.
 *   op % 8 == 0: raw egress    len(1) vnet(1) bytes
 *   op % 8 == 1: raw ingress   len(1) vnet(1) bytes
 *   op % 8 == 2: segment       conn(1) flags(1) seq(2) ack(2) tsval(2)
 *                              tsecr(1) n(1)
 *                (op bit 3: ingress, bit 4: v6, bit 5: vlan, bit 6: SACK,
 *                 bit 7: partial checksum)
 *   op % 8 == 3: meta from a segment's frame, as the primary would ship it
 *   op % 8 == 4: raw metadata  sizeof(struct colo_conn_meta) bytes
 *   op % 8 == 5: checkpoint
 *   op % 8 == 6: failover (once at most)
 *   op % 8 == 7: tick          dt(1) in seconds
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "packet_build.h"
#include "tcp_rewriter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	const uint8_t *p;
	size_t n;
};

static int take(struct input *in, void *out, size_t k)
{
	if (in->n < k)
		return 0;
	memcpy(out, in->p, k);
	in->p += k;
	in->n -= k;
	return 1;
}

static void run_frame(struct colo_rewriter *rw, const uint8_t *frame,
		      size_t len, size_t vnet, int ingress, uint64_t now)
{
	uint8_t *x = malloc(len ? len : 1);
	const struct colo_rewriter_stats *st;

	if (!x)
		return;
	memcpy(x, frame, len);
	if (ingress)
		colo_rewriter_ingress(rw, x, len, vnet, now);
	else
		colo_rewriter_egress(rw, x, len, vnet, now);
	free(x);
	st = colo_rewriter_stats(rw);
	if (st->conns > st->conns_created)
		abort();
}

/* Builds a segment of one of four connections; returns its length. */
static size_t segment(uint8_t op, const uint8_t *a, uint8_t *out, size_t cap,
		      size_t *vnet)
{
	static const uint8_t zeros[64];
	struct colo_pkt_spec s;
	int ingress = op & 0x08;
	uint8_t conn = a[0] & 3;
	uint8_t body[64 + 20];
	size_t ol = 0, n = a[9] % 64;

	colo_pkt_spec_default(&s);
	if (op & 0x10) {
		s.ipver = 6;
		memset(s.src, 0, 16);
		memset(s.dst, 0, 16);
		s.src[0] = s.dst[0] = 0xfd;
		s.src[15] = 1;
		s.dst[15] = 2;
	}
	if (op & 0x20)
		s.vlan_outer = 5;
	s.dport = (uint16_t)(40000 + conn);
	if (ingress) {
		uint8_t t[16];

		memcpy(t, s.src, 16);
		memcpy(s.src, s.dst, 16);
		memcpy(s.dst, t, 16);
		s.sport = s.dport;
		s.dport = 80;
	}
	s.tcp_flags = a[1];
	s.seq = 0xffff0000u + (uint32_t)(a[2] << 8 | a[3]) * 16;
	s.ack = 0xffff0000u + (uint32_t)(a[4] << 8 | a[5]) * 16;
	s.tcp_timestamp = 1;
	s.ts_val = (uint32_t)(a[6] << 8 | a[7]);
	s.ts_ecr = (uint32_t)a[8] << 24;
	if (op & 0x40) {
		/* NOP, SACK with one block, NOP: still 4-byte aligned */
		body[ol++] = 1;
		body[ol++] = 5;
		body[ol++] = 10;
		memcpy(body + ol, a + 2, 4);
		memcpy(body + ol + 4, a + 4, 4);
		ol += 8;
		body[ol++] = 1;
	}
	memcpy(body + ol, zeros, n);
	*vnet = (op & 0x80) ? 10 : 0;
	if (cap < *vnet)
		return 0;
	memset(out, 0, *vnet);
	if (op & 0x80)
		out[0] = 1;
	size_t len = colo_pkt_build(&s, body, ol + n, out + *vnet, cap - *vnet);
	if (!len)
		return 0;
	if (ol) {
		/* The options were built as payload: claim them. */
		uint8_t *tcp = out + *vnet + len - (20 + 12 + ol + n);
		tcp[12] = (uint8_t)((32 + ol) / 4 << 4);
	}
	return len + *vnet;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t frame[512];
	struct input in = { data, size };
	struct colo_rewriter *rw = colo_rewriter_new();
	struct colo_conn_meta m;
	uint64_t now = 1000000000ULL;
	uint8_t op, hdr[10];
	size_t vnet, len;

	if (!rw)
		return 0;
	while (take(&in, &op, 1)) {
		switch (op % 8) {
		case 0:
		case 1:
			if (!take(&in, hdr, 2))
				break;
			len = hdr[0] < in.n ? hdr[0] : in.n;
			run_frame(rw, in.p, len, hdr[1] % 24, op % 8, now);
			in.p += len;
			in.n -= len;
			break;
		case 2:
		case 3:
			if (!take(&in, hdr, 10))
				break;
			len = segment(op, hdr, frame, sizeof(frame), &vnet);
			if (!len)
				break;
			if (op % 8 == 2) {
				run_frame(rw, frame, len, vnet, op & 0x08, now);
			} else if (colo_conn_meta_from_frame(frame, len, vnet,
							     &m)) {
				colo_rewriter_learn(rw, &m, now);
			}
			break;
		case 4:
			if (!take(&in, &m, sizeof(m)))
				break;
			colo_rewriter_learn(rw, &m, now);
			break;
		case 5:
			colo_rewriter_checkpoint(rw);
			break;
		case 6:
			colo_rewriter_failover(rw);
			break;
		default:
			if (!take(&in, hdr, 1))
				break;
			now += (uint64_t)hdr[0] * 1000000000ULL;
			colo_rewriter_tick(rw, now);
			break;
		}
	}
	colo_rewriter_free(rw);
	return 0;
}
