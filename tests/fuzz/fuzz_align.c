/*
 * fuzz_align.c - libFuzzer target: colo analyze's alignment and replay of
 * two captures (outside bytes: whatever a user captured). Records are raw
 * frames (any bytes) or TCP segments of a few flows whose payload is a
 * function of the stream position, either unique or repeating with a
 * chosen period, with the secondary's sequence space shifted: so the
 * fuzzer reaches handshake alignment, inference, ambiguity, trimming and
 * skipping, not only the parser. Checks that alignment keeps every TCP
 * frame a well-formed TCP frame.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer.h"
#include "packet.h"
#include "packet_build.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0 (1700000000ull * 1000000000ull)

static uint8_t stream_byte(uint32_t pos, uint8_t pat)
{
	uint32_t x = pos * 2654435761u;

	if (pat & 0x80)
		return (uint8_t)('a' + pos % ((pat & 0x7f) + 1u) % 26);
	return (uint8_t)(x >> 24 ^ x >> 13);
}

/* One record into one capture; returns bytes consumed, 0 at the end. */
static size_t record(const uint8_t *d, size_t n, struct colo_capture *cap[2],
		     uint64_t *now)
{
	static uint8_t frame[2048], payload[1024];
	struct colo_pkt_spec s;
	uint8_t op;
	size_t len, used;
	int side;

	if (n < 2)
		return 0;
	op = d[0];
	side = op & 1;
	*now += (uint64_t)d[1] * 1000000u;
	if (op & 2) { /* raw frame */
		len = n > 2 ? d[2] : 0;
		if (len > n - 3)
			len = n - 3;
		colo_capture_add(cap[side], T0 + *now, d + 3, len, len);
		return 3 + len;
	}
	if (n < 7)
		return 0;
	uint32_t pos = (uint32_t)d[2] << 8 | d[3];
	len = (size_t)d[4] * 4;
	uint8_t pat = d[5], flow = (op >> 2) & 3;

	used = 6;
	colo_pkt_spec_default(&s);
	s.sport = 80;
	s.dport = (uint16_t)(40000 + flow);
	s.tcp_flags = COLO_TCP_ACK;
	if (op & 0x10)
		s.tcp_flags = COLO_TCP_SYN | (d[6] & 1 ? COLO_TCP_ACK : 0);
	if (op & 0x20)
		s.tcp_flags |= COLO_TCP_FIN;
	s.tcp_timestamp = (op & 0x40) != 0;
	s.ts_val = side ? 5000 + *now / 1000000u : 7 + *now / 1000000u;
	/* the secondary's space sits 0x7ffffff0 further, near the wrap */
	s.seq = (side ? 0x7ffffff0u : 0xfffff000u) + pos;
	if (op & 0x10)
		len = 0;
	for (size_t i = 0; i < len; i++)
		payload[i] = stream_byte(pos + (uint32_t)i, pat);
	len = colo_pkt_build(&s, payload, len, frame, sizeof(frame));
	if (len)
		colo_capture_add(cap[side], T0 + *now, frame, len, len);
	return used;
}

static void check_tcp(const struct colo_capture *c, const uint8_t *was_tcp)
{
	for (size_t i = 0; i < c->n; i++) {
		struct colo_packet p;
		enum colo_pkt_kind k = colo_packet_parse(c->frames[i].data,
							 c->frames[i].len, &p);

		if (was_tcp[i] && k != COLO_PKT_TCP)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	struct colo_capture cap[2];
	struct colo_capture *rw[2] = { &cap[0], &cap[1] };
	const struct colo_capture *const ro[2] = { &cap[0], &cap[1] };
	struct colo_align_config acfg;
	struct colo_analyze_config cfg;
	struct colo_alignment al;
	struct colo_analysis a;
	uint8_t *was_tcp = NULL;
	uint64_t now = 0;
	size_t at = 1, k;

	if (!devnull)
		devnull = fopen("/dev/null", "w");
	if (!size)
		return 0;
	colo_capture_init(&cap[0]);
	colo_capture_init(&cap[1]);
	while (at < size && (k = record(data + at, size - at, rw, &now)))
		at += k;
	colo_align_config_default(&acfg);
	acfg.mode = (enum colo_align_mode)(data[0] % 3);
	acfg.skew_auto = data[0] & 4;
	acfg.skew_ns = (int64_t)(data[0] >> 3) * 100000000 - 1000000000;
	was_tcp = calloc(cap[1].n + 1, 1);
	if (!was_tcp)
		abort();
	for (size_t i = 0; i < cap[1].n; i++) {
		struct colo_packet p;

		was_tcp[i] = colo_packet_parse(cap[1].frames[i].data,
					       cap[1].frames[i].len,
					       &p) == COLO_PKT_TCP;
	}
	if (colo_align(rw, &acfg, &al) == 0) {
		check_tcp(&cap[1], was_tcp);
		colo_analyze_config_default(&cfg);
		if (colo_analyze_run(ro, &cfg, &a) == 0 && devnull) {
			colo_report_alignment(devnull, &acfg, &al, true);
			for (size_t i = 0; i < a.n; i++)
				colo_report_finding(devnull, &a, &a.findings[i],
						    ro);
			colo_report_summary(devnull, &a, ro);
		}
		colo_analysis_free(&a);
	}
	colo_alignment_free(&al);
	free(was_tcp);
	colo_capture_free(&cap[0]);
	colo_capture_free(&cap[1]);
	return 0;
}
