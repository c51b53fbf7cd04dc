/*
 * test_tcp_compare.c - the TCP rules of the comparer: byte-stream
 * comparison whatever the segmentation, the ack rule, FIN, retransmission,
 * sequence wrap-around, divergence reports, checkpoints and timeouts.
 */
#include "harness.h"

#define P  COLO_PRIMARY
#define S  COLO_SECONDARY
#define A  COLO_TCP_ACK
#define MS 1000000ULL

static struct colo_pkt_spec flow_spec(uint16_t port)
{
	struct colo_pkt_spec s;

	colo_pkt_spec_default(&s);
	s.dport = port;
	return s;
}

static void seed_3_7_vs_10_primary_first(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(1);

	h_tcp(h, P, &f, 1000, 500, A, "123", 3, 1);
	h_tcp(h, P, &f, 1003, 500, A, "4567890", 7, 2);
	assert_int_equal(h->nrel, 0);
	h_tcp(h, S, &f, 1000, 500, A, "1234567890", 10, 9);
	assert_int_equal(h->nrel, 2);
	assert_int_equal(h->rel_ipid[0], 1);
	assert_int_equal(h->rel_ipid[1], 2);
	assert_int_equal(h->nev, 0);
	assert_int_equal(h_stats(h)->matched_bytes, 10);
	assert_int_equal(h_stats(h)->held_frames, 0);
	h_free(h);
}

static void seed_3_7_vs_10_secondary_first(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(1);

	h_tcp(h, S, &f, 1000, 500, A, "1234567890", 10, 9);
	h_tcp(h, P, &f, 1000, 500, A, "123", 3, 1);
	assert_int_equal(h->nrel, 1);
	h_tcp(h, P, &f, 1003, 500, A, "4567890", 7, 2);
	assert_int_equal(h->nrel, 2);
	assert_int_equal(h->nev, 0);
	assert_int_equal(h_stats(h)->secondary_buffered_bytes, 0);
	h_free(h);
}

static void ten_vs_4_6_both_orders(void **state)
{
	(void)state;
	for (int order = 0; order < 2; order++) {
		struct harness *h = h_new();
		struct colo_pkt_spec f = flow_spec(2);
		if (order == 0) {
			h_tcp(h, P, &f, 7, 1, A, "abcdefghij", 10, 1);
			h_tcp(h, S, &f, 7, 1, A, "abcd", 4, 8);
			assert_int_equal(h->nrel, 0);
			h_tcp(h, S, &f, 11, 1, A, "efghij", 6, 9);
		} else {
			h_tcp(h, S, &f, 7, 1, A, "abcd", 4, 8);
			h_tcp(h, S, &f, 11, 1, A, "efghij", 6, 9);
			h_tcp(h, P, &f, 7, 1, A, "abcdefghij", 10, 1);
		}
		assert_int_equal(h->nrel, 1);
		assert_int_equal(h->rel_payload_bytes, 10);
		assert_int_equal(h->bad_frames, 0);
		assert_int_equal(h->nev, 0);
		h_free(h);
	}
}

/* A 16000-byte GSO super-frame against MSS frames, both ways round. */
static void gso_superframe_vs_mss(void **state)
{
	(void)state;
	static uint8_t data[16000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	for (int big_side = 0; big_side < 2; big_side++) {
		struct harness *h = h_new();
		struct colo_pkt_spec f = flow_spec(3);
		h_tcp(h, big_side, &f, 5000, 1, A, data, sizeof(data), 1);
		for (size_t off = 0; off < sizeof(data); off += 1448) {
			size_t n = sizeof(data) - off < 1448
					   ? sizeof(data) - off
					   : 1448;
			h_tcp(h, !big_side, &f, 5000 + (uint32_t)off, 1, A,
			      data + off, n, 2);
		}
		assert_int_equal(h->nrel, big_side == P ? 1 : 12);
		assert_int_equal(h->rel_payload_bytes, sizeof(data));
		assert_int_equal(h->bad_frames, 0);
		assert_int_equal(h->nev, 0);
		assert_int_equal(h_stats(h)->matched_bytes, sizeof(data));
		h_free(h);
	}
}

/* A secondary that stops inside a primary segment and retransmits (its
 * window is used up and the client cannot ACK what it never got): the
 * matched front leaves as a segment of its own, the rest later. */
static void stuck_secondary_gets_front(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(9);

	h_tcp(h, P, &f, 100, 1, A | COLO_TCP_PSH, "0123456789", 10, 1);
	h_tcp(h, S, &f, 100, 1, A, "0123", 4, 2);
	assert_int_equal(h->nrel, 0);
	h_tcp(h, S, &f, 100, 1, A, "0123", 4, 3); /* retransmission */
	assert_int_equal(h->nrel, 1);
	assert_int_equal(h->rel_seq[0], 100);
	assert_int_equal(h->rel_len[0], 4);
	assert_int_equal(h->rel_flags[0], A);
	h_tcp(h, S, &f, 104, 1, A, "456789", 6, 4);
	assert_int_equal(h->nrel, 2);
	assert_int_equal(h->rel_seq[1], 104);
	assert_int_equal(h->rel_len[1], 6);
	assert_int_equal(h->rel_flags[1], A | COLO_TCP_PSH);
	assert_int_equal(h_stats(h)->released_frames, 1);
	assert_int_equal(h_stats(h)->released_parts, 1);
	assert_int_equal(h->bad_frames, 0);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

/* The primary's segment was lost on its way and arrives again behind a
 * later one: it must not wait for that later (unmatched) segment. Seen in
 * a 12 GB transfer: the secondary, its window used up, waited for the
 * ACK of the retransmitted bytes, which sat behind the later segment. */
static void retransmission_behind_later_segment(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(10);

	h_tcp(h, P, &f, 100, 1, A, "AAAAAAAAAA", 10, 1);
	h_tcp(h, S, &f, 100, 1, A, "AAAAAAAAAA", 10, 2);
	assert_int_equal(h->nrel, 1);
	h_tcp(h, P, &f, 120, 1, A, "abcdefghij", 10, 3); /* beyond a hole */
	h_tcp(h, P, &f, 110, 1, A, "0123456789", 10, 4); /* the hole */
	h_tcp(h, S, &f, 110, 1, A, "0123", 4, 5);
	h_tcp(h, S, &f, 110, 1, A, "0123", 4, 6); /* stuck: retransmits */
	assert_int_equal(h->nrel, 2);
	assert_int_equal(h->rel_seq[1], 110);
	assert_int_equal(h->rel_len[1], 4);
	h_tcp(h, S, &f, 114, 1, A, "456789", 6, 7);
	assert_int_equal(h->nrel, 3);
	assert_int_equal(h->rel_seq[2], 114);
	h_tcp(h, S, &f, 120, 1, A, "abcdefghij", 10, 8);
	assert_int_equal(h->nrel, 4);
	assert_int_equal(h->rel_seq[3], 120);
	assert_int_equal(h->rel_ipid[3], 3);
	assert_int_equal(h_stats(h)->held_frames, 0);
	assert_int_equal(h->bad_frames, 0);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

/* Headers the guests may choose differently do not matter. */
static void headers_ignored(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(4), g = f;

	g.ttl = 17;
	g.window = 1234;
	g.tcp_timestamp = 1;
	g.ts_val = 99;
	h_tcp(h, P, &f, 1, 1, A | COLO_TCP_PSH, "hello", 5, 1);
	h_tcp(h, S, &g, 1, 1, A, "hello", 5, 77);
	assert_int_equal(h->nrel, 1);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

/* The client must never see an ACK the secondary did not make. */
static void ack_rule_holds_until_secondary_acks(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(5);

	h_tcp(h, S, &f, 100, 500, A, "xyz", 3, 1);
	h_tcp(h, P, &f, 100, 600, A, "xyz", 3, 2);
	assert_int_equal(h->nrel, 0); /* bytes matched, ack 600 > 500 */
	h_tcp(h, P, &f, 103, 650, A, NULL, 0, 3); /* pure ACK */
	assert_int_equal(h->nrel, 0);
	h_tcp(h, S, &f, 103, 600, A, NULL, 0, 4);
	assert_int_equal(h->nrel, 1);
	h_tcp(h, S, &f, 103, 700, A, NULL, 0, 5);
	assert_int_equal(h->nrel, 2);
	/* covered already: a pure ACK leaves at once */
	h_tcp(h, P, &f, 103, 690, A, NULL, 0, 6);
	assert_int_equal(h->nrel, 3);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

static void fin_needs_secondary_fin(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(6);

	h_tcp(h, S, &f, 10, 1, A, "ab", 2, 1);
	h_tcp(h, P, &f, 10, 1, A | COLO_TCP_FIN, "ab", 2, 2);
	assert_int_equal(h->nrel, 0);
	h_tcp(h, S, &f, 12, 1, A | COLO_TCP_FIN, NULL, 0, 3);
	assert_int_equal(h->nrel, 1);
	assert_int_equal(h->nev, 0);
	h_free(h);

	/* FIN at different stream positions is a divergence */
	h = h_new();
	h_tcp(h, P, &f, 10, 1, A | COLO_TCP_FIN, "ab", 2, 1);
	h_tcp(h, S, &f, 10, 1, A, "ab", 2, 1);
	h_tcp(h, S, &f, 12, 1, A, "c", 1, 1);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_CONTROL);
	assert_int_equal(h->last.seq, 12);
	h_free(h);
}

static void retransmission_released_without_checkpoint(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(7);

	h_tcp(h, P, &f, 1, 1, A, "0123456789", 10, 1);
	h_tcp(h, S, &f, 1, 1, A, "0123456789", 10, 1);
	assert_int_equal(h->nrel, 1);
	h_tcp(h, P, &f, 1, 1, A, "0123456789", 10, 2);
	h_tcp(h, P, &f, 5, 1, A, "456789", 6, 3);
	assert_int_equal(h->nrel, 3);
	assert_int_equal(h_stats(h)->retransmits, 2);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

static void sequence_wraparound(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(8);
	uint8_t data[64];
	for (int i = 0; i < 64; i++)
		data[i] = (uint8_t)i;

	uint32_t isn = 0xffffffe0u;
	h_tcp(h, P, &f, isn, 0xfffffff0u, A, data, 20, 1);
	h_tcp(h, P, &f, isn + 20, 0xfffffff0u, A, data + 20, 44, 2);
	h_tcp(h, S, &f, isn, 0x10, A, data, 64, 1); /* ack wrapped too */
	assert_int_equal(h->nrel, 2);
	assert_int_equal(h->nev, 0);
	h_tcp(h, P, &f, isn + 64, 0x8, A, "z", 1, 3);
	h_tcp(h, S, &f, isn + 64, 0x8, A, "y", 1, 3);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.seq, 0x20);
	h_free(h);
}

static void divergence_report_and_single_request(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(9), g = flow_spec(10);

	h_tcp(h, P, &f, 100, 1, A, "Date: 12:00:01", 14, 1);
	h_tcp(h, S, &f, 100, 1, A, "Date: 12:00:02", 14, 1);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_PAYLOAD);
	assert_int_equal(h->last.seq, 113);
	assert_int_equal(h->last.primary_byte, '1');
	assert_int_equal(h->last.secondary_byte, '2');
	assert_int_equal(h->last.key.dport, 9);
	char line[256];
	colo_divergence_format(&h->last, line, sizeof(line));
	assert_non_null(strstr(line, "seq 113"));
	/* more divergences, here and elsewhere: no second request */
	h_tcp(h, P, &g, 1, 1, A, "a", 1, 2);
	h_tcp(h, S, &g, 1, 1, A, "b", 1, 2);
	h_tcp(h, P, &f, 114, 1, A, "more", 4, 3);
	colo_comparer_tick(h->c, h->now + 10000 * MS);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->nev, 2);
	assert_true(colo_comparer_checkpoint_pending(h->c));
	assert_int_equal(h->nrel, 0);

	/* checkpoint: everything held leaves, in arrival order */
	colo_comparer_checkpoint_done(h->c, h->now + 10001 * MS);
	assert_int_equal(h->nrel, 3);
	assert_int_equal(h->rel_ipid[0], 1);
	assert_int_equal(h->rel_ipid[1], 2);
	assert_int_equal(h->rel_ipid[2], 3);
	assert_false(colo_comparer_checkpoint_pending(h->c));
	assert_int_equal(h_stats(h)->checkpoints_done, 1);

	/* comparison resumes after the checkpoint */
	h->now += 10002 * MS;
	h_tcp(h, P, &f, 118, 1, A, "next", 4, 4);
	h_tcp(h, S, &f, 118, 1, A, "next", 4, 4);
	assert_int_equal(h->nrel, 4);
	h_tcp(h, P, &f, 122, 1, A, "x", 1, 5);
	h_tcp(h, S, &f, 122, 1, A, "y", 1, 5);
	assert_int_equal(h->nreq, 2);
	h_free(h);
}

static void timeout_requests_once(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(11);

	h_tcp(h, P, &f, 1, 1, A, "lonely", 6, 1);
	colo_comparer_tick(h->c, h->now + 2999 * MS);
	assert_int_equal(h->nreq, 0);
	colo_comparer_tick(h->c, h->now + 3000 * MS);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_TIMEOUT);
	assert_int_equal(h->last.seq, 1);
	colo_comparer_tick(h->c, h->now + 9000 * MS);
	assert_int_equal(h->nreq, 1);
	colo_comparer_checkpoint_done(h->c, h->now + 9001 * MS);
	assert_int_equal(h->nrel, 1);
	h_free(h);
}

static void queue_bound_requests_checkpoint(void **state)
{
	(void)state;
	struct colo_comparer_config cfg;
	colo_comparer_config_default(&cfg);
	cfg.max_queue = 4;
	struct harness *h = h_new_cfg(&cfg);
	struct colo_pkt_spec f = flow_spec(12);

	for (uint32_t i = 0; i < 8; i++)
		h_tcp(h, P, &f, 1 + i, 1, A, "q", 1, (uint16_t)i);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_QUEUE_FULL);
	assert_int_equal(h_stats(h)->held_frames, 8); /* never dropped */
	colo_comparer_checkpoint_done(h->c, h->now);
	assert_int_equal(h->nrel, 8);
	h_free(h);
}

static void out_of_order_segments(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(13);

	h_tcp(h, S, &f, 1, 1, A, "abc", 3, 1);
	h_tcp(h, P, &f, 1, 1, A, "a", 1, 1);
	h_tcp(h, P, &f, 5, 1, A, "ef", 2, 3); /* hole at 2..4 */
	h_tcp(h, S, &f, 7, 1, A, "gh", 2, 3); /* hole at 4..6 */
	h_tcp(h, S, &f, 4, 1, A, "def", 3, 2);
	assert_int_equal(h->nrel, 1);
	h_tcp(h, P, &f, 2, 1, A, "bcd", 3, 2);
	assert_int_equal(h->nrel, 3);
	h_tcp(h, P, &f, 7, 1, A, "gh", 2, 4);
	assert_int_equal(h->nrel, 4);
	assert_int_equal(h->nev, 0);
	assert_int_equal(h_stats(h)->held_frames, 0);
	h_free(h);
}

/* Passive open under QEMU's rewriter: the secondary's SYN/ACK still
 * carries its own ISN; only later segments are shifted. */
static void handshake_with_unrewritten_secondary_isn(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(14);

	h_tcp(h, P, &f, 5000, 301, COLO_TCP_SYN | A, NULL, 0, 1);
	assert_int_equal(h->nrel, 0); /* ack 301 not yet made by secondary */
	h_tcp(h, S, &f, 90000, 301, COLO_TCP_SYN | A, NULL, 0, 1);
	assert_int_equal(h->nrel, 1);
	h_tcp(h, S, &f, 5001, 320, A, "HTTP/1.1 200 OK", 15, 2);
	h_tcp(h, P, &f, 5001, 320, A, "HTTP/1.1 200 OK", 15, 2);
	assert_int_equal(h->nrel, 2);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

/* Active open by the guest: the primary's SYN waits for the secondary's
 * (released alone, the server's SYN/ACK could reach the secondary guest
 * before its own SYN left, and it would reset the connection); one that
 * is behind the secondary's leaves at once; a retransmitted SYN too. */
static void active_open_syn(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(15);

	h_tcp(h, P, &f, 777, 0, COLO_TCP_SYN, NULL, 0, 1);
	assert_int_equal(h->nrel, 0);
	h_tcp(h, S, &f, 777, 0, COLO_TCP_SYN, NULL, 0, 1);
	assert_int_equal(h->nrel, 1);
	assert_int_equal(h->rel_flags[0], COLO_TCP_SYN);
	h_tcp(h, P, &f, 777, 0, COLO_TCP_SYN, NULL, 0, 2);
	assert_int_equal(h->nrel, 2);

	struct colo_pkt_spec g = flow_spec(16);
	h_tcp(h, S, &g, 900, 0, COLO_TCP_SYN, NULL, 0, 1);
	h_tcp(h, P, &g, 900, 0, COLO_TCP_SYN, NULL, 0, 1);
	assert_int_equal(h->nrel, 3);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

/* A connection reopened on a closed flow's 4-tuple: the secondary's new
 * SYN may come before the primary's (it is announced early). The
 * primary's SYN, which starts the new incarnation, must still count it
 * and leave at once, not wait for a SYN that already came. */
static void reopen_secondary_syn_first(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(19);

	h_tcp(h, P, &f, 100, 0, COLO_TCP_SYN, NULL, 0, 1);
	h_tcp(h, S, &f, 100, 0, COLO_TCP_SYN, NULL, 0, 1);
	assert_int_equal(h->nrel, 1);
	h_tcp(h, S, &f, 101, 1, A | COLO_TCP_RST, NULL, 0, 2);
	h_tcp(h, P, &f, 101, 1, A | COLO_TCP_RST, NULL, 0, 2);
	assert_int_equal(h->nrel, 2);
	/* the new connection: the secondary's SYN first */
	h_tcp(h, S, &f, 5000, 0, COLO_TCP_SYN, NULL, 0, 3);
	h_tcp(h, P, &f, 5000, 0, COLO_TCP_SYN, NULL, 0, 3);
	assert_int_equal(h->nrel, 3);
	assert_int_equal(h->nev, 0);
	h_free(h);

	/* A secondary SYN from before a checkpoint came from the retired
	 * VM: the primary's SYN after it waits for the new VM's. */
	h = h_new();
	h_tcp(h, P, &f, 100, 0, COLO_TCP_SYN, NULL, 0, 1);
	h_tcp(h, S, &f, 100, 0, COLO_TCP_SYN, NULL, 0, 1);
	h_tcp(h, S, &f, 101, 1, A | COLO_TCP_RST, NULL, 0, 2);
	h_tcp(h, P, &f, 101, 1, A | COLO_TCP_RST, NULL, 0, 2);
	h_tcp(h, S, &f, 5000, 0, COLO_TCP_SYN, NULL, 0, 3);
	colo_comparer_checkpoint_done(h->c, h->now);
	h_tcp(h, P, &f, 5000, 0, COLO_TCP_SYN, NULL, 0, 3);
	assert_int_equal(h->nrel, 2);
	h_tcp(h, S, &f, 5000, 0, COLO_TCP_SYN, NULL, 0, 4);
	assert_int_equal(h->nrel, 3);
	h_free(h);
}

/* What the secondary proxy shows the comparer of a SYN whose primary ISN
 * it has not got yet (redirector.c): the SYN in the secondary guest's
 * own sequence space, its headers only. */
static void h_syn_announced(struct harness *h, const struct colo_pkt_spec *f,
			    uint32_t own_isn, const char *data)
{
	static uint8_t buf[2048], hdr[256];
	struct colo_pkt_spec s = *f;
	struct colo_packet p;

	s.seq = own_isn;
	s.tcp_flags = COLO_TCP_SYN;
	size_t n = colo_pkt_build(&s, (const uint8_t *)data, strlen(data), buf,
				  sizeof(buf));
	assert_true(n > 0);
	n = colo_tcp_headers_only(buf, n, 0, hdr, sizeof(hdr));
	assert_int_equal(colo_packet_parse(hdr, n, &p), COLO_PKT_TCP);
	assert_int_equal(p.payload_len, 0);
	assert_int_equal(p.seq, own_isn);
	assert_int_equal(p.tcp_flags, COLO_TCP_SYN);
	assert_true(h_tcp_frame_ok(hdr, 0, &p)); /* lengths and checksums */
	h_feed(h, S, hdr, n);
}

/* TCP Fast Open: the guest's SYN carries data. The secondary's is shown
 * to the comparer early, before the rewriter can shift it, and again
 * shifted once the primary's ISN came. The early one must not put its
 * data in the stream at its own, unshifted sequence numbers: the primary's
 * SYN and data leave on the shifted copy, with nothing asked. */
static void tfo_syn_announced_unshifted(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(17), g = flow_spec(18);

	h_syn_announced(h, &f, 90000, "GET /");
	h_tcp(h, P, &f, 777, 0, COLO_TCP_SYN, "GET /", 5, 1);
	assert_int_equal(h->nrel, 0);
	h_tcp(h, S, &f, 777, 0, COLO_TCP_SYN, "GET /", 5, 1);
	assert_int_equal(h->nrel, 1);
	assert_int_equal(h->rel_len[0], 5);

	/* the primary's first */
	h_tcp(h, P, &g, 1777, 0, COLO_TCP_SYN, "abc", 3, 2);
	h_syn_announced(h, &g, 5000, "abc");
	h_tcp(h, S, &g, 1777, 0, COLO_TCP_SYN, "abc", 3, 2);
	assert_int_equal(h->nrel, 2);
	/* the connection goes on, compared in the primary's space */
	h_tcp(h, P, &g, 1781, 1, A, "more", 4, 3);
	h_tcp(h, S, &g, 1781, 1, A, "more", 4, 3);
	assert_int_equal(h->nrel, 3);
	colo_comparer_tick(h->c, h->now + 5000 * MS);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

/* The comparer does not rely on that: a secondary SYN whose data came
 * unshifted (another feeder, a rewriter that passed it untracked) put its
 * data in the stream at its own numbers. The primary's SYN is where the
 * primary's space starts: while the primary has put nothing in the stream
 * it starts the stream there again, and its data waits for the
 * secondary's shifted copy instead of passing for a retransmission,
 * uncompared. */
static void secondary_syn_data_unshifted(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(19);

	h_tcp(h, S, &f, 90000, 0, COLO_TCP_SYN, "GET /", 5, 1);
	h_tcp(h, P, &f, 777, 0, COLO_TCP_SYN, "GET /", 5, 1);
	assert_int_equal(h->nrel, 0); /* not released uncompared */
	h_tcp(h, S, &f, 777, 0, COLO_TCP_SYN, "GET /", 5, 2);
	assert_int_equal(h->nrel, 1);
	h_tcp(h, P, &f, 783, 1, A, "more", 4, 2);
	h_tcp(h, S, &f, 783, 1, A, "more", 4, 3);
	assert_int_equal(h->nrel, 2);
	assert_int_equal(h->nev, 0);
	assert_int_equal(h_stats(h)->secondary_buffered_bytes, 0);
	/* with different data the checkpoint is asked for */
	struct colo_pkt_spec g = flow_spec(20);
	h_tcp(h, S, &g, 5000, 0, COLO_TCP_SYN, "abc", 3, 1);
	h_tcp(h, P, &g, 1000, 0, COLO_TCP_SYN, "abc", 3, 1);
	h_tcp(h, S, &g, 1000, 0, COLO_TCP_SYN, "abd", 3, 2);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_PAYLOAD);
	assert_int_equal(h->nrel, 2);
	h_free(h);
}

/* A guest SYN the secondary never matches (the two guests picked other
 * source ports) is held until the compare timeout asks for a checkpoint,
 * and leaves with it. */
static void active_open_unmatched_waits_for_checkpoint(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = flow_spec(17);

	h_tcp(h, P, &f, 777, 0, COLO_TCP_SYN, NULL, 0, 1);
	h->now += 3000000000ULL;
	colo_comparer_tick(h->c, h->now);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_TIMEOUT);
	assert_int_equal(h->nrel, 0);
	colo_comparer_checkpoint_done(h->c, h->now);
	assert_int_equal(h->nrel, 1);
	h_free(h);
}

/* The two guests opened the connection from different source ports: the
 * checkpoint is asked for when the second SYN comes, not at the compare
 * timeout; with equal ports the SYNs pair and nothing is asked. */
static void active_open_other_source_port(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec p = flow_spec(18), s = flow_spec(18);

	p.sport = 40001;
	s.sport = 40002;

	h_tcp(h, P, &p, 777, 0, COLO_TCP_SYN, NULL, 0, 1);
	assert_int_equal(h->nev, 0);
	h_tcp(h, S, &s, 999, 0, COLO_TCP_SYN, NULL, 0, 1);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_SOURCE_PORT);
	assert_int_equal(h->last.other_sport, p.sport);
	assert_int_equal(h->nrel, 0);
	colo_comparer_checkpoint_done(h->c, h->now);
	assert_int_equal(h->nrel, 1);
	h_free(h);
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* 1 MB over 16 interleaved connections, each side segmenting at random
 * and the two sides interleaved at random: all released, no divergence. */
static void random_segmentation_1mb(void **state)
{
	(void)state;
	enum { NCONN = 16, TOTAL = 1 << 20, PER = TOTAL / NCONN };
	static uint8_t data[NCONN][PER];
	uint32_t isn[NCONN], off[NCONN][2];
	struct colo_pkt_spec spec[NCONN];
	struct harness *h = h_new();
	size_t pframes = 0;

	for (int c = 0; c < NCONN; c++) {
		for (int i = 0; i < PER; i++)
			data[c][i] = (uint8_t)rnd();
		isn[c] = rnd();
		off[c][0] = off[c][1] = 0;
		spec[c] = flow_spec((uint16_t)(20000 + c));
		if (c % 4 == 1) { /* some IPv6, some VLAN */
			spec[c].ipver = 6;
			spec[c].src[15] = 1;
			spec[c].dst[15] = 2;
		}
		if (c % 4 == 2)
			spec[c].vlan_outer = 42;
	}
	for (;;) {
		int live = 0;
		for (int c = 0; c < NCONN; c++)
			live += off[c][0] < PER || off[c][1] < PER;
		if (!live)
			break;
		int c = (int)(rnd() % NCONN);
		int side = (int)(rnd() % 2);
		if (off[c][side] >= PER)
			side = !side;
		if (off[c][side] >= PER)
			continue;
		uint32_t n = 1 + rnd() % (rnd() % 8 == 0 ? 20000 : 1448);
		if (n > PER - off[c][side])
			n = PER - off[c][side];
		h_tcp(h, side, &spec[c], isn[c] + off[c][side], 1, A,
		      data[c] + off[c][side], n, 0);
		off[c][side] += n;
		if (side == P)
			pframes++;
	}
	assert_int_equal(h->nev, 0);
	assert_int_equal(h_stats(h)->released_frames, pframes);
	assert_int_equal(h->nrel, pframes + h_stats(h)->released_parts);
	assert_int_equal(h->rel_payload_bytes, TOTAL);
	assert_int_equal(h->bad_frames, 0);
	assert_int_equal(h_stats(h)->matched_bytes, TOTAL);
	assert_int_equal(h_stats(h)->held_frames, 0);
	assert_int_equal(h_stats(h)->secondary_buffered_bytes, 0);
	h_free(h);
}

/* One flipped byte anywhere in a randomly segmented stream is found at
 * exactly its sequence number. */
static void random_flip_found_exactly(void **state)
{
	(void)state;
	static uint8_t a[50000], b[50000];
	for (int trial = 0; trial < 20; trial++) {
		struct harness *h = h_new();
		struct colo_pkt_spec f = flow_spec(30);
		for (size_t i = 0; i < sizeof(a); i++)
			a[i] = b[i] = (uint8_t)rnd();
		size_t at = rnd() % sizeof(a);
		b[at] ^= 0x5a;
		uint32_t isn = rnd(), o[2] = { 0, 0 };
		while (o[0] < sizeof(a) || o[1] < sizeof(a)) {
			int side = (int)(rnd() % 2);
			if (o[side] >= sizeof(a))
				side = !side;
			uint32_t n = 1 + rnd() % 3000;
			if (n > sizeof(a) - o[side])
				n = (uint32_t)(sizeof(a) - o[side]);
			h_tcp(h, side, &f, isn + o[side], 1, A,
			      (side == P ? a : b) + o[side], n, 0);
			o[side] += n;
			if (side == P && rnd() % 6 == 0) {
				/* a retransmission overlapping held frames at
				 * other boundaries */
				uint32_t back =
					1 + rnd() % (o[P] < 5000 ? o[P] : 5000);
				uint32_t len = 1 + rnd() % back;
				h_tcp(h, P, &f, isn + o[P] - back, 1, A,
				      a + o[P] - back, len, 0);
			}
		}
		assert_int_equal(h->nreq, 1);
		assert_int_equal(h->last.seq, isn + (uint32_t)at);
		assert_int_equal(h->last.primary_byte, a[at]);
		assert_int_equal(h->last.secondary_byte, b[at]);
		h_free(h);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seed_3_7_vs_10_primary_first),
		cmocka_unit_test(seed_3_7_vs_10_secondary_first),
		cmocka_unit_test(ten_vs_4_6_both_orders),
		cmocka_unit_test(gso_superframe_vs_mss),
		cmocka_unit_test(stuck_secondary_gets_front),
		cmocka_unit_test(retransmission_behind_later_segment),
		cmocka_unit_test(headers_ignored),
		cmocka_unit_test(ack_rule_holds_until_secondary_acks),
		cmocka_unit_test(fin_needs_secondary_fin),
		cmocka_unit_test(retransmission_released_without_checkpoint),
		cmocka_unit_test(sequence_wraparound),
		cmocka_unit_test(divergence_report_and_single_request),
		cmocka_unit_test(timeout_requests_once),
		cmocka_unit_test(queue_bound_requests_checkpoint),
		cmocka_unit_test(out_of_order_segments),
		cmocka_unit_test(handshake_with_unrewritten_secondary_isn),
		cmocka_unit_test(active_open_syn),
		cmocka_unit_test(tfo_syn_announced_unshifted),
		cmocka_unit_test(secondary_syn_data_unshifted),
		cmocka_unit_test(active_open_unmatched_waits_for_checkpoint),
		cmocka_unit_test(active_open_other_source_port),
		cmocka_unit_test(reopen_secondary_syn_first),
		cmocka_unit_test(random_segmentation_1mb),
		cmocka_unit_test(random_flip_found_exactly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
