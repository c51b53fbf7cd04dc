/*
 * fuzz_comparer.c - libFuzzer target: a program of operations against one
 * comparer. Records are either raw frames (any bytes) or structured TCP
 * and UDP segments on a few flows near the sequence wrap, so that the
 * fuzzer reaches the stream logic (holes, overlaps, FIN, acks) and not
 * only the parser. Checks the engine's own invariants as it goes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "comparer.h"
#include "packet_build.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
	uint64_t released;
};

static void on_release(void *opaque, const uint8_t *frame, size_t len,
		       size_t vnet)
{
	struct sink *s = opaque;
	volatile uint8_t x = 0;

	if (vnet > len)
		abort();
	if (len)
		x = frame[0] ^ frame[len - 1];
	(void)x;
	s->released++;
}

static void on_event(void *opaque, const struct colo_divergence *d)
{
	char line[512];

	(void)opaque;
	/* A TCP payload difference always has both bytes; a missing
	 * primary byte means an unmatched primary byte was in no held
	 * frame, which the engine's hold rules forbid. */
	if (d->cause == COLO_CAUSE_PAYLOAD && d->kind == COLO_PKT_TCP &&
	    (d->primary_byte < 0 || d->secondary_byte < 0))
		abort();
	colo_divergence_format(d, line, sizeof(line));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t frame[4096];
	struct colo_comparer_config cfg;
	struct colo_comparer_ops ops = { on_release, on_event };
	struct sink sink = { 0 };
	struct colo_comparer *c;
	uint64_t now = 1;
	uint64_t fed_primary = 0;
	size_t i = 0;

	colo_comparer_config_default(&cfg);
	cfg.max_queue = 16;
	cfg.hash_key[0] = 1; /* deterministic */
	c = colo_comparer_new(&cfg, &ops, &sink);
	if (!c)
		return 0;
	while (i + 2 <= size) {
		uint8_t op = data[i], arg = data[i + 1];
		i += 2;
		int side = op & 1;
		switch ((op >> 1) % 5) {
		case 0: { /* raw frame of arg bytes */
			size_t n = arg;
			if (n > size - i)
				n = size - i;
			colo_comparer_input(c, side, data + i, n,
					    (op & 0x80) ? (n < 10 ? n : 10) : 0,
					    now);
			fed_primary += side == COLO_PRIMARY;
			i += n;
			break;
		}
		case 1:
		case 2: { /* structured TCP or UDP segment */
			if (size - i < 4)
				goto out;
			struct colo_pkt_spec s;
			colo_pkt_spec_default(&s);
			s.proto = ((op >> 1) % 5) == 1 ? 6 : 17;
			s.dport = 1000 + (arg & 3);
			s.ipver = (arg & 4) ? 6 : 4;
			s.vlan_outer = (arg & 8) ? 7 : 0;
			s.seq = 0xffffff00u + data[i] * 4u;
			s.ack = 0xfffffff0u + data[i + 1];
			s.tcp_flags = data[i + 2] & 0x1f;
			size_t n = data[i + 3] & 0x3f;
			i += 4;
			if (n > size - i)
				n = size - i;
			/* arg bit 4: behind a virtio-net header as a GSO
			 * super-frame with an offloaded checksum (split by
			 * tcp_split.c when its front matches) */
			size_t v = (arg & 16) ? 12 : 0;
			size_t len = colo_pkt_build(&s, data + i, n, frame + v,
						    sizeof(frame) - v);
			if (len && v) {
				memset(frame, 0, v);
				frame[0] = 1;
				frame[1] = s.ipver == 6 ? 4 : 1;
				frame[4] = 8; /* gso_size 8 */
				len += v;
			}
			if (len)
				colo_comparer_input(c, side, frame, len, v, now);
			fed_primary += len && side == COLO_PRIMARY;
			i += n;
			break;
		}
		case 3:
			now += (uint64_t)arg * 50000000ULL;
			colo_comparer_tick(c, now);
			break;
		case 4:
			colo_comparer_checkpoint_done(c, now);
			break;
		}
	}
out:;
	/* Invariant: every primary frame is released or still held. */
	const struct colo_stats *st = colo_comparer_stats(c);
	if (st->released_frames + st->held_frames != fed_primary)
		abort();
	colo_comparer_release_all(c);
	if (colo_comparer_stats(c)->held_frames != 0)
		abort();
	/* ... and reaches the sink once, plus the fronts sent ahead */
	if (sink.released !=
	    fed_primary + colo_comparer_stats(c)->released_parts)
		abort();
	colo_comparer_free(c);
	return 0;
}
