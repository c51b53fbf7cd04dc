/*
 * test_dgram_compare.c - UDP, ICMP, other IP, non-IP and malformed frames:
 * datagrams compared one against one and released in order.
 */
#include "harness.h"

#define P  COLO_PRIMARY
#define S  COLO_SECONDARY
#define MS 1000000ULL

static struct colo_pkt_spec udp_spec(void)
{
	struct colo_pkt_spec s;

	colo_pkt_spec_default(&s);
	s.proto = 17;
	s.sport = 53;
	s.dport = 33333;
	return s;
}

static void udp_released_in_order(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = udp_spec();

	h_udp(h, P, &f, "one", 3, 1);
	h_udp(h, P, &f, "two", 3, 2);
	h_udp(h, P, &f, "three", 5, 3);
	assert_int_equal(h->nrel, 0);
	h_udp(h, S, &f, "one", 3, 7);
	h_udp(h, S, &f, "two", 3, 8);
	h_udp(h, S, &f, "three", 5, 9);
	assert_int_equal(h->nrel, 3);
	assert_int_equal(h->rel_ipid[0], 1);
	assert_int_equal(h->rel_ipid[1], 2);
	assert_int_equal(h->rel_ipid[2], 3);
	/* secondary first: the primary leaves as soon as it arrives */
	h_udp(h, S, &f, "four", 4, 10);
	h_udp(h, P, &f, "four", 4, 4);
	assert_int_equal(h->nrel, 4);
	assert_int_equal(h->nev, 0);
	assert_int_equal(h_stats(h)->matched_datagrams, 4);
	assert_int_equal(h_stats(h)->secondary_buffered_bytes, 0);
	h_free(h);
}

static void udp_mismatch(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = udp_spec();

	h_udp(h, P, &f, "abcX", 4, 1);
	h_udp(h, S, &f, "abcY", 4, 1);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_PAYLOAD);
	assert_int_equal(h->last.offset, 3);
	assert_int_equal(h->last.primary_byte, 'X');
	assert_int_equal(h->last.secondary_byte, 'Y');
	/* length differs */
	h_udp(h, P, &f, "abc", 3, 2);
	colo_comparer_checkpoint_done(h->c, h->now);
	assert_int_equal(h->nrel, 2);
	h_udp(h, P, &f, "abc", 3, 3);
	h_udp(h, S, &f, "abcd", 4, 3);
	assert_int_equal(h->nreq, 2);
	assert_int_equal(h->last.offset, 3);
	assert_int_equal(h->last.primary_byte, -1);
	h_free(h);
}

static void ipv6_and_vlan_are_compared(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec v6 = udp_spec(), vl = udp_spec(), vl2;

	v6.ipver = 6;
	v6.src[0] = 0xfd;
	v6.dst[0] = 0xfd;
	v6.dst[15] = 2;
	vl.vlan_outer = 100;
	vl2 = vl;
	vl2.vlan_outer = 200;
	h_udp(h, P, &v6, "v6", 2, 0);
	h_udp(h, S, &v6, "v6", 2, 0);
	assert_int_equal(h->nrel, 1);
	/* same addresses, different VLANs: separate flows */
	h_udp(h, P, &vl, "A", 1, 0);
	h_udp(h, S, &vl2, "A", 1, 0);
	assert_int_equal(h->nrel, 1);
	h_udp(h, S, &vl, "A", 1, 0);
	assert_int_equal(h->nrel, 2);
	h_udp(h, P, &v6, "v6-a", 4, 0);
	h_udp(h, S, &v6, "v6-b", 4, 0);
	assert_int_equal(h->nreq, 1);
	h_free(h);
}

static void icmp_echo(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f;
	uint8_t buf[200];

	colo_pkt_spec_default(&f);
	f.proto = 1;
	f.icmp_type = 0;
	f.icmp_id = 77;
	f.icmp_seq = 1;
	size_t n = colo_pkt_build(&f, (const uint8_t *)"ping", 4, buf,
				  sizeof(buf));
	h_feed(h, P, buf, n);
	h_feed(h, S, buf, n);
	assert_int_equal(h->nrel, 1);
	f.icmp_seq = 2;
	n = colo_pkt_build(&f, (const uint8_t *)"ping", 4, buf, sizeof(buf));
	h_feed(h, P, buf, n);
	f.icmp_seq = 3;
	n = colo_pkt_build(&f, (const uint8_t *)"ping", 4, buf, sizeof(buf));
	h_feed(h, S, buf, n);
	assert_int_equal(h->nreq, 1);
	h_free(h);
}

static void non_ip_primary_released_secondary_dropped(void **state)
{
	(void)state;
	struct harness *h = h_new();
	uint8_t arp[42] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1,
			    2,	  3,	4,    5,    6,	  0x08, 0x06 };

	h_feed(h, S, arp, sizeof(arp));
	assert_int_equal(h->nrel, 0);
	h_feed(h, P, arp, sizeof(arp));
	assert_int_equal(h->nrel, 1);
	assert_int_equal(h_stats(h)->non_ip[0], 1);
	assert_int_equal(h_stats(h)->non_ip[1], 1);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

static void malformed_compared_as_raw(void **state)
{
	(void)state;
	struct harness *h = h_new();
	/* IPv4 ethertype, header claims 60 bytes of IP in a shorter frame */
	uint8_t bad[34] = { 0, 1,  2,  3,    4,	   5,	 6, 7, 8,
			    9, 10, 11, 0x08, 0x00, 0x45, 0, 0, 60 };

	h_feed(h, P, bad, sizeof(bad));
	assert_int_equal(h->nrel, 0);
	h_feed(h, S, bad, sizeof(bad));
	assert_int_equal(h->nrel, 1);
	assert_int_equal(h_stats(h)->malformed[0], 1);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

static void udp_timeout_then_checkpoint(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec f = udp_spec();

	h_udp(h, P, &f, "x", 1, 1);
	colo_comparer_tick(h->c, h->now + 3000 * MS);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_TIMEOUT);
	colo_comparer_checkpoint_done(h->c, h->now + 3001 * MS);
	assert_int_equal(h->nrel, 1);
	/* a stale secondary datagram after the checkpoint is not matched
	 * against new primary output from before: state was reset */
	h_udp(h, P, &f, "y", 1, 2);
	h_udp(h, S, &f, "y", 1, 2);
	assert_int_equal(h->nrel, 2);
	h_free(h);
}

/* A query the guest sends from a port of its own (DNS from a random
 * port): the two guests' kernels picked different ports, so the two
 * flows never match. The checkpoint is asked for as soon as the second
 * side's flow opens, whichever side is first, not at the compare timeout;
 * the primary's query leaves with the checkpoint. */
static void other_source_port_asks_at_once(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec p = udp_spec(), s = udp_spec();

	p.sport = 40001;
	s.sport = 40002;
	h_udp(h, P, &p, "query", 5, 1);
	assert_int_equal(h->nev, 0);
	h_udp(h, S, &s, "query", 5, 1);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_SOURCE_PORT);
	assert_int_equal(h->last.other_sport, 40001);
	assert_int_equal(h->nrel, 0);
	colo_comparer_checkpoint_done(h->c, h->now);
	assert_int_equal(h->nrel, 1);

	/* the secondary first, next epoch */
	p.sport = 40003;
	s.sport = 40004;
	h_udp(h, S, &s, "again", 5, 2);
	h_udp(h, P, &p, "again", 5, 2);
	assert_int_equal(h->nreq, 2);
	assert_int_equal(h->last.cause, COLO_CAUSE_SOURCE_PORT);
	assert_int_equal(h->last.other_sport, 40004);
	h_free(h);
}

/* Equal source ports pair the flows: nothing is asked, and a later flow
 * of one side alone (the other is behind) does not pair with them. Other
 * destinations never pair. */
static void same_source_port_or_other_place_asks_nothing(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec a = udp_spec(), b = udp_spec(), d = udp_spec();

	a.sport = 41000;
	h_udp(h, P, &a, "q1", 2, 1);
	h_udp(h, S, &a, "q1", 2, 1);
	assert_int_equal(h->nrel, 1);
	b.sport = 41001;
	h_udp(h, S, &b, "q2", 2, 2);
	h_udp(h, P, &b, "q2", 2, 2);
	assert_int_equal(h->nrel, 2);
	d.sport = 41002;
	d.dport = 5353;
	h_udp(h, P, &d, "q3", 2, 3);
	b.sport = 41003;
	h_udp(h, S, &b, "q4", 2, 3);
	assert_int_equal(h->nev, 0);
	h_free(h);
}

/* Two long-lived flows of one guest to one destination (two sockets of a
 * resolver, say), used by both replicas, then a checkpoint: both replicas
 * hold both sockets. In the next epoch each side happens to send on a
 * different one first; neither is an opening, and nothing is asked. */
static void long_lived_flows_across_checkpoint_ask_nothing(void **state)
{
	(void)state;
	struct harness *h = h_new();
	struct colo_pkt_spec a = udp_spec(), b = udp_spec();

	a.sport = 42000;
	b.sport = 42001;
	h_udp(h, P, &a, "a1", 2, 1);
	h_udp(h, S, &a, "a1", 2, 1);
	h_udp(h, P, &b, "b1", 2, 2);
	h_udp(h, S, &b, "b1", 2, 2);
	assert_int_equal(h->nrel, 2);
	/* a divergence elsewhere makes the checkpoint */
	struct colo_pkt_spec x = udp_spec();
	x.dport = 999;
	h_udp(h, P, &x, "x", 1, 3);
	h_udp(h, S, &x, "y", 1, 3);
	assert_int_equal(h->nreq, 1);
	colo_comparer_checkpoint_done(h->c, h->now);
	/* a flow only the primary used carries on too: the checkpoint gave
	 * the secondary the primary's socket */
	struct colo_pkt_spec c = udp_spec();
	c.sport = 42002;
	h_udp(h, P, &c, "c1", 2, 4);
	colo_comparer_tick(h->c, h->now + 3000 * 1000000ULL);
	assert_int_equal(h->nreq, 2); /* timeout: c1 never matched */
	colo_comparer_checkpoint_done(h->c, h->now);
	size_t rel = h->nrel, req = h->nreq;

	h_udp(h, P, &a, "a2", 2, 5);
	h_udp(h, S, &b, "b2", 2, 5);
	h_udp(h, S, &c, "c2", 2, 6);
	assert_int_equal(h->nreq, req);
	h_udp(h, S, &a, "a2", 2, 7);
	h_udp(h, P, &b, "b2", 2, 8);
	h_udp(h, P, &c, "c2", 2, 9);
	assert_int_equal(h->nreq, req);
	assert_int_equal(h->nrel, rel + 3);
	h_free(h);
}

/* The secondary sent on a flow the primary never did, and the flow was
 * reclaimed idle: it is gone, so a later flow of the primary to that
 * destination is not set against it. */
static void reclaimed_flow_is_not_an_opening(void **state)
{
	(void)state;
	struct colo_comparer_config cfg;
	colo_comparer_config_default(&cfg);
	cfg.idle_timeout_ns = 1000 * MS;
	struct harness *h = h_new_cfg(&cfg);
	struct colo_pkt_spec a = udp_spec(), b = udp_spec();

	a.sport = 43000;
	b.sport = 43001;
	h_udp(h, S, &a, "late", 4, 1);
	h->now += 2000 * MS;
	colo_comparer_tick(h->c, h->now);
	assert_int_equal(h_stats(h)->flows, 0);
	h_udp(h, P, &b, "new", 3, 2);
	h_udp(h, S, &b, "new", 3, 2);
	assert_int_equal(h->nev, 0);
	assert_int_equal(h->nrel, 1);
	h_free(h);
}

static void secondary_queue_bound(void **state)
{
	(void)state;
	struct colo_comparer_config cfg;
	colo_comparer_config_default(&cfg);
	cfg.max_queue = 3;
	struct harness *h = h_new_cfg(&cfg);
	struct colo_pkt_spec f = udp_spec();

	for (int i = 0; i < 5; i++)
		h_udp(h, S, &f, "s", 1, 0);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_QUEUE_FULL);
	h_free(h);
}

/* A full flow table: frames of a new flow are not compared, the
 * primary's leave as they are, the secondary's are dropped, all counted;
 * one checkpoint is asked for per epoch, and the table stays bounded. */
static void flow_table_bound(void **state)
{
	struct colo_comparer_config cfg;
	struct colo_pkt_spec f = udp_spec();
	struct harness *h;

	(void)state;
	colo_comparer_config_default(&cfg);
	cfg.max_flows = 4;
	h = h_new_cfg(&cfg);
	for (uint16_t i = 0; i < 4; i++) {
		f.sport = (uint16_t)(1000 + i);
		h_udp(h, P, &f, "same", 4, i);
		h_udp(h, S, &f, "same", 4, i);
	}
	assert_int_equal(h->nrel, 4);
	assert_int_equal(h->nev, 0);
	assert_int_equal(h_stats(h)->flow_limit, 4);

	f.sport = 2000;
	h_udp(h, P, &f, "new", 3, 50);
	assert_int_equal(h->nrel, 5); /* passed, not held or dropped */
	assert_int_equal(h->nev, 1);
	assert_int_equal(h->nreq, 1);
	assert_int_equal(h->last.cause, COLO_CAUSE_QUEUE_FULL);
	h_udp(h, S, &f, "new", 3, 51);
	f.sport = 2001;
	h_udp(h, P, &f, "more", 4, 52);
	assert_int_equal(h->nrel, 6);
	assert_int_equal(h->nev, 1); /* reported once per epoch */
	assert_int_equal(h_stats(h)->flows_refused, 3);
	assert_int_equal(h_stats(h)->secondary_dropped, 1);
	assert_int_equal(h_stats(h)->flows, 4);

	/* Known flows are still compared as before. */
	f.sport = 1000;
	h_udp(h, P, &f, "again", 5, 60);
	h_udp(h, S, &f, "again", 5, 61);
	colo_comparer_checkpoint_done(h->c, h->now);
	assert_int_equal(h->nrel, 7);
	f.sport = 2002;
	h_udp(h, P, &f, "next", 4, 62);
	assert_int_equal(h->nev, 2); /* a new epoch reports again */
	assert_int_equal(h_stats(h)->flows, 4);
	h_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(udp_released_in_order),
		cmocka_unit_test(udp_mismatch),
		cmocka_unit_test(ipv6_and_vlan_are_compared),
		cmocka_unit_test(icmp_echo),
		cmocka_unit_test(non_ip_primary_released_secondary_dropped),
		cmocka_unit_test(malformed_compared_as_raw),
		cmocka_unit_test(udp_timeout_then_checkpoint),
		cmocka_unit_test(other_source_port_asks_at_once),
		cmocka_unit_test(same_source_port_or_other_place_asks_nothing),
		cmocka_unit_test(
			long_lived_flows_across_checkpoint_ask_nothing),
		cmocka_unit_test(reclaimed_flow_is_not_an_opening),
		cmocka_unit_test(secondary_queue_bound),
		cmocka_unit_test(flow_table_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
