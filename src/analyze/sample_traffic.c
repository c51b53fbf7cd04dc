/*
 * sample_traffic.c - generate the built-in sample captures.
 *
 * The story is told as a list of events on a shared clock; each event
 * emits the primary's frames at its time and the secondary's a little
 * later or earlier (a fixed-seed PRNG picks the lag), the way two guests
 * running the same service drift against each other. Both guests sit
 * behind filter-rewriter, so their TCP sequence numbers agree; their IP
 * IDs, TCP timestamps and segmentation do not, and none of that may make
 * the comparer ask for a checkpoint. Only the Date header of one HTTP
 * response, produced just before a second boundary on the primary and just
 * after it on the secondary, really differs.
 */
#include <stdio.h>
#include <string.h>

#include "packet.h"
#include "packet_build.h"
#include "sample_traffic.h"

/* Tue, 14 Nov 2023 22:13:20 GMT */
#define SAMPLE_EPOCH_S 1700000000ull
#define SAMPLE_SEED    0xc0105eedu
#define SAMPLE_MSS     1448
#define SAMPLE_GSO_LEN 16384

enum { PRI = 0, SEC = 1 };

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0xc0, 0x10, 0x01 };
static const uint8_t client_mac[6] = { 0x52, 0x54, 0x00, 0xc0, 0x10, 0xfe };
static const uint8_t guest_ip4[4] = { 10, 0, 1, 10 };
static const uint8_t client_ip4[4] = { 10, 0, 1, 100 };
static const uint8_t vlan_guest_ip4[4] = { 10, 0, 2, 10 };
static const uint8_t vlan_client_ip4[4] = { 10, 0, 2, 100 };
static const uint8_t guest_ip6[16] = { 0xfd, 0x00, 0xc0, 0x10, [15] = 0x10 };
static const uint8_t client_ip6[16] = { 0xfd, 0x00,	   0xc0,
					0x10, [15] = 0x01, [14] = 0x01 };

struct gen {
	struct colo_capture *out[2];
	uint32_t rng;
	uint16_t ip_id[2];
	int64_t lag_us; /* secondary minus primary, for the current event */
	int failed;
	uint8_t frame[SAMPLE_GSO_LEN + 256];
};

/* One TCP connection as the guest (server) sends it. Sequence and ack
 * numbers are the same on both sides; the TCP timestamp clocks are not. */
struct tcp_conn {
	struct colo_pkt_spec spec;
	uint32_t snd; /* next sequence number to send */
	uint32_t ack;
	uint32_t ts_base[2];
};

static uint32_t rnd(struct gen *g)
{
	uint32_t x = g->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return g->rng = x;
}

/* Picks how far the secondary lags for the next event: -200..+399 us. */
static void next_event(struct gen *g)
{
	g->lag_us = (int64_t)(rnd(g) % 600) - 200;
}

static uint64_t side_time(const struct gen *g, int side, uint64_t t_us)
{
	int64_t t = (int64_t)t_us + (side == SEC ? g->lag_us : 0);

	return SAMPLE_EPOCH_S * 1000000000ull + (uint64_t)t * 1000ull;
}

static void put(struct gen *g, int side, uint64_t t_us, const uint8_t *frame,
		size_t len)
{
	if (g->failed)
		return;
	if (colo_capture_add(g->out[side], side_time(g, side, t_us), frame, len,
			     len))
		g->failed = 1;
}

static void emit(struct gen *g, int side, uint64_t t_us,
		 struct colo_pkt_spec *s, const void *payload, size_t len)
{
	size_t n;

	s->ip_id = g->ip_id[side]++;
	n = colo_pkt_build(s, payload, len, g->frame, sizeof(g->frame));
	if (!n) {
		g->failed = 1;
		return;
	}
	put(g, side, t_us, g->frame, n);
}

static void emit_both(struct gen *g, uint64_t t_us, struct colo_pkt_spec *s,
		      const void *payload, size_t len)
{
	emit(g, PRI, t_us, s, payload, len);
	emit(g, SEC, t_us, s, payload, len);
}

static void spec_ip4(struct colo_pkt_spec *s, const uint8_t *src,
		     const uint8_t *dst, uint8_t proto)
{
	colo_pkt_spec_default(s);
	memcpy(s->src, src, 4);
	memcpy(s->dst, dst, 4);
	memcpy(s->src_mac, guest_mac, 6);
	memcpy(s->dst_mac, client_mac, 6);
	s->proto = proto;
}

static void spec_ip6(struct colo_pkt_spec *s, uint8_t proto)
{
	colo_pkt_spec_default(s);
	s->ipver = 6;
	memcpy(s->src, guest_ip6, 16);
	memcpy(s->dst, client_ip6, 16);
	memcpy(s->src_mac, guest_mac, 6);
	memcpy(s->dst_mac, client_mac, 6);
	s->proto = proto;
}

/* Sends one segment from one side at stream position seq. */
static void tcp_emit(struct gen *g, struct tcp_conn *c, int side, uint64_t t_us,
		     uint8_t flags, uint32_t seq, const void *data, size_t len)
{
	c->spec.tcp_flags = flags;
	c->spec.seq = seq;
	c->spec.ack = c->ack;
	if (c->spec.tcp_timestamp)
		c->spec.ts_val = c->ts_base[side] + (uint32_t)(t_us / 1000);
	emit(g, side, t_us, &c->spec, data, len);
}

/* Both sides send the same control segment (no payload). */
static void tcp_control(struct gen *g, struct tcp_conn *c, uint64_t t_us,
			uint8_t flags)
{
	next_event(g);
	tcp_emit(g, c, PRI, t_us, flags, c->snd, NULL, 0);
	tcp_emit(g, c, SEC, t_us, flags, c->snd, NULL, 0);
	if (flags & (COLO_TCP_SYN | COLO_TCP_FIN))
		c->snd++;
}

/* One side sends data as segments of the sizes in plan, 12 us apart.
 * plan is 0-terminated; its last size repeats, and an empty plan sends
 * everything in one segment. */
static void tcp_segments(struct gen *g, struct tcp_conn *c, int side,
			 uint64_t t_us, const uint8_t *data, size_t len,
			 const size_t *plan)
{
	size_t off = 0, size = len, j = 0;

	for (int i = 0; off < len; i++) {
		size_t n;

		if (plan[j]) {
			size = plan[j];
			if (plan[j + 1])
				j++;
		}
		n = size < len - off ? size : len - off;
		tcp_emit(g, c, side, t_us + 12 * (uint64_t)i,
			 COLO_TCP_PSH | COLO_TCP_ACK, c->snd + (uint32_t)off,
			 data + off, n);
		off += n;
	}
}

static void tcp_data(struct gen *g, struct tcp_conn *c, uint64_t t_us,
		     const void *data, size_t len, const size_t *pri_plan,
		     const size_t *sec_plan)
{
	next_event(g);
	tcp_segments(g, c, PRI, t_us, data, len, pri_plan);
	tcp_segments(g, c, SEC, t_us, data, len, sec_plan);
	c->snd += (uint32_t)len;
}

static void arp_reply(struct gen *g, uint64_t t_us, int request)
{
	uint8_t f[42];

	memset(f, 0, sizeof(f));
	memset(f, 0xff, 6);
	if (!request)
		memcpy(f, client_mac, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08, f[13] = 0x06;
	f[15] = 1;		    /* Ethernet */
	f[16] = 0x08, f[17] = 0x00; /* IPv4 */
	f[18] = 6, f[19] = 4;
	f[21] = request ? 1 : 2;
	memcpy(f + 22, guest_mac, 6);
	memcpy(f + 28, guest_ip4, 4);
	if (request) {
		memcpy(f + 38, client_ip4, 3);
		f[41] = 1; /* who-has the gateway */
	} else {
		memcpy(f + 32, client_mac, 6);
		memcpy(f + 38, client_ip4, 4);
	}
	next_event(g);
	put(g, PRI, t_us, f, sizeof(f));
	put(g, SEC, t_us, f, sizeof(f));
}

static void http_body(struct gen *g, uint8_t *body, size_t len)
{
	for (size_t i = 0; i < len; i++)
		body[i] = i % 64 == 63 ? '\n' : (uint8_t)('a' + rnd(g) % 26);
}

/* (a) and (g): one response segmented differently by the two guests,
 * then a retransmission by the primary alone. */
/* The guest's side of a sample HTTP connection from the client's port
 * dport: its sequence number snd, the client's ack. */
static void http_conn(struct tcp_conn *c, uint16_t dport, uint32_t snd,
		      uint32_t ack)
{
	memset(c, 0, sizeof(*c));
	spec_ip4(&c->spec, guest_ip4, client_ip4, 6);
	c->spec.sport = 80;
	c->spec.dport = dport;
	c->spec.window = 64240;
	c->snd = snd;
	c->ack = ack;
}

static void conn_segmentation(struct gen *g)
{
	static const size_t p3_7[] = { 3, 7, 0 }, s10[] = { 10, 0 };
	static const size_t p10[] = { 10, 0 }, s4_6[] = { 4, 6, 0 };
	static const size_t gso[] = { SAMPLE_GSO_LEN, 0 };
	static const size_t mss[] = { SAMPLE_MSS, 0 };
	static const size_t whole[] = { 0 };
	static const char head[] = "HTTP/1.1 200 OK\r\n"
				   "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
				   "Server: colo-sample\r\n"
				   "Content-Type: text/plain\r\n"
				   "Content-Length: 16384\r\n"
				   "Connection: close\r\n\r\n";
	uint8_t body[SAMPLE_GSO_LEN];
	struct tcp_conn c;
	uint32_t body_seq;

	http_conn(&c, 40001, 0x5eed0001, 0x00c11e01); /* client ISN + 1 */
	http_body(g, body, sizeof(body));

	tcp_control(g, &c, 2000, COLO_TCP_SYN | COLO_TCP_ACK);
	c.ack += 77; /* GET / HTTP/1.1 ... */
	tcp_control(g, &c, 4000, COLO_TCP_ACK);
	tcp_data(g, &c, 6000, head, 10, p3_7, s10);
	tcp_data(g, &c, 7000, head + 10, 10, p10, s4_6);
	tcp_data(g, &c, 8000, head + 20, sizeof(head) - 1 - 20, whole, whole);
	body_seq = c.snd;
	tcp_data(g, &c, 9000, body, sizeof(body), gso, mss);
	tcp_control(g, &c, 10000, COLO_TCP_FIN | COLO_TCP_ACK);
	/* The client's ACK is slow; only the primary's RTO fires. */
	next_event(g);
	tcp_emit(g, &c, PRI, 210000, COLO_TCP_PSH | COLO_TCP_ACK, body_seq,
		 body, SAMPLE_MSS);
	c.ack += 1; /* the client's FIN */
	tcp_control(g, &c, 212000, COLO_TCP_ACK);
}

/* (b): IPv6, with TCP timestamps that differ between the guests. */
static void conn_ipv6(struct gen *g)
{
	static const size_t split[] = { 100, 0 }, whole[] = { 0 };
	static const char resp[] =
		"HTTP/1.1 200 OK\r\n"
		"Content-Type: application/json\r\n"
		"Content-Length: 60\r\n\r\n"
		"{\"service\":\"colo-sample\",\"state\":\"running\","
		"\"replicas\":2}   \n";
	struct tcp_conn c;

	memset(&c, 0, sizeof(c));
	spec_ip6(&c.spec, 6);
	c.spec.sport = 8080;
	c.spec.dport = 50000;
	c.spec.window = 65000;
	c.spec.tcp_timestamp = 1;
	c.spec.ts_ecr = 777000;
	c.ts_base[PRI] = 1000000;
	c.ts_base[SEC] = 2345678;
	c.snd = 0x66000001;
	c.ack = 0x00c16601;

	tcp_control(g, &c, 20000, COLO_TCP_SYN | COLO_TCP_ACK);
	c.ack += 90;
	tcp_control(g, &c, 22000, COLO_TCP_ACK);
	tcp_data(g, &c, 23000, resp, sizeof(resp) - 1, whole, split);
	c.ack += 1;
	tcp_control(g, &c, 30000, COLO_TCP_FIN | COLO_TCP_ACK);
}

/* (c): a request/response protocol on VLAN 100, and DNS answers. */
static void udp_flows(struct gen *g)
{
	static const uint8_t
		dns_tail[] = {
			7,    's',  'e', 'r', 'v', 'i', 'c', 'e',
			4,    'c',  'o', 'l', 'o', 4,	't', 'e',
			's',  't',  0,	 0,   1,   0,	1, /* question: A IN */
			0xc0, 0x0c, 0,	 1,   0,   1,	0,   0,
			0x01, 0x2c, 0,	 4,   10,  0,	1,   20,
		};
	struct colo_pkt_spec s;
	char msg[64];
	uint8_t dns[12 + sizeof(dns_tail)];

	spec_ip4(&s, vlan_guest_ip4, vlan_client_ip4, 17);
	s.vlan_outer = 100;
	s.sport = 5000;
	s.dport = 6000;
	for (int i = 0; i < 3; i++) {
		int n = snprintf(msg, sizeof(msg), "resp %d status=ok queue=%d",
				 i + 1, 3 - i);

		next_event(g);
		emit_both(g, 40000 + 1000 * (uint64_t)i, &s, msg, (size_t)n);
	}

	spec_ip4(&s, guest_ip4, client_ip4, 17);
	s.sport = 53;
	s.dport = 53001;
	for (int i = 0; i < 2; i++) {
		memset(dns, 0, 12);
		dns[0] = 0x1a, dns[1] = (uint8_t)(0x2b + i); /* query id */
		dns[2] = 0x81, dns[3] = 0x80; /* response, RD, RA */
		dns[5] = 1, dns[7] = 1;	      /* 1 question, 1 answer */
		memcpy(dns + 12, dns_tail, sizeof(dns_tail));
		next_event(g);
		emit_both(g, 50000 + 1000 * (uint64_t)i, &s, dns, sizeof(dns));
	}
}

/* (d): echo replies to a once-a-second ping, IPv4 and one IPv6. */
static void icmp_echo(struct gen *g)
{
	struct colo_pkt_spec s;
	uint8_t data[56];

	spec_ip4(&s, guest_ip4, client_ip4, 1);
	s.icmp_type = 0;
	s.icmp_id = 0x0c01;
	for (int i = 0; i < 3; i++) {
		/* ping's own timestamp comes back unchanged, then a pattern */
		memset(data, 0, 8);
		data[3] = (uint8_t)(0x65 + i);
		for (int j = 8; j < 56; j++)
			data[j] = (uint8_t)(0x10 + j - 8);
		s.icmp_seq = (uint16_t)(i + 1);
		next_event(g);
		emit_both(g, 60000 + 1000000 * (uint64_t)i, &s, data,
			  sizeof(data));
	}

	spec_ip6(&s, 58);
	s.icmp_type = 129;
	s.icmp_id = 0x0c06;
	s.icmp_seq = 1;
	next_event(g);
	emit_both(g, 61000, &s, data, sizeof(data));
}

/* (f): the one real difference. The response is built just before
 * 22:13:22 on the primary and just after it on the secondary. */
static void conn_date(struct gen *g)
{
	static const size_t whole[] = { 0 };
	static const char fmt[] =
		"HTTP/1.1 200 OK\r\n"
		"Date: Tue, 14 Nov 2023 22:13:2%d GMT\r\n"
		"Server: colo-sample\r\n"
		"Content-Type: text/html\r\n"
		"Content-Length: 44\r\n"
		"Connection: close\r\n\r\n"
		"<html><body>colo sample page</body></html>\r\n";
	char resp[2][256];
	int len = 0;
	struct tcp_conn c;

	for (int side = PRI; side <= SEC; side++)
		len = snprintf(resp[side], sizeof(resp[side]), fmt, 1 + side);

	http_conn(&c, 40002, 0x7a7e0001, 0x00c17a01);

	tcp_control(g, &c, 1990000, COLO_TCP_SYN | COLO_TCP_ACK);
	c.ack += 77;
	tcp_control(g, &c, 1995000, COLO_TCP_ACK);
	g->lag_us = 400;
	tcp_segments(g, &c, PRI, 1999800, (const uint8_t *)resp[PRI],
		     (size_t)len, whole);
	tcp_segments(g, &c, SEC, 1999800, (const uint8_t *)resp[SEC],
		     (size_t)len, whole);
	c.snd += (uint32_t)len;
	tcp_control(g, &c, 2001000, COLO_TCP_FIN | COLO_TCP_ACK);
	c.ack += 1;
	tcp_control(g, &c, 2003000, COLO_TCP_ACK);
}

/* Each story is emitted in its own time order; the guests interleave
 * them. A stable insertion sort (the sample is a few hundred frames) keeps
 * frames with equal times in the order they were emitted. */
static void sort_by_time(struct colo_capture *c, size_t from)
{
	for (size_t i = from + 1; i < c->n; i++) {
		struct colo_frame f = c->frames[i];
		size_t j = i;

		while (j > from && c->frames[j - 1].ts_ns > f.ts_ns) {
			c->frames[j] = c->frames[j - 1];
			j--;
		}
		c->frames[j] = f;
	}
}

int colo_sample_generate(struct colo_capture *primary,
			 struct colo_capture *secondary)
{
	struct gen g;
	size_t from[2] = { primary->n, secondary->n };

	memset(&g, 0, sizeof(g));
	g.out[PRI] = primary;
	g.out[SEC] = secondary;
	g.rng = SAMPLE_SEED;
	g.ip_id[PRI] = (uint16_t)rnd(&g);
	g.ip_id[SEC] = (uint16_t)rnd(&g);

	arp_reply(&g, 1000, 0);
	conn_segmentation(&g);
	conn_ipv6(&g);
	udp_flows(&g);
	icmp_echo(&g);
	conn_date(&g);
	arp_reply(&g, 2500000, 1);
	if (g.failed)
		return -1;
	sort_by_time(primary, from[PRI]);
	sort_by_time(secondary, from[SEC]);
	return 0;
}
