/*
 * tcp_rewriter.c - shift the secondary's TCP connections into the
 * primary's sequence and timestamp space, and the client's replies back.
 *
 * Each connection learns two facts from the guests' SYN or SYN/ACK: the
 * secondary's ISN and TSval (from the secondary's own egress) and the
 * primary's (from metadata the primary proxy ships). Either may come
 * first; the connection is "ready" once both are known, and until then
 * its egress waits in the proxy. A checkpoint makes every offset 0 by
 * bumping an epoch: entries of an older epoch are brought up to date when
 * next touched, so the checkpoint itself is O(1) while the guests are
 * paused, whatever the number of connections.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_table.h"
#include "packet.h"
#include "byteorder.h"
#include "checksum.h"
#include "tcp_offset.h"
#include "tcp_rewriter.h"
#include "siphash.h"

#define NS_PER_S 1000000000ULL
/* Long enough for the last ACK and any FIN retransmission after both
 * FINs (or an RST); a new SYN on the tuple restarts the entry anyway. */
#define CLOSED_LINGER_NS (10 * NS_PER_S)
#define IDLE_NS		 (300 * NS_PER_S)
/* A SYN flood must not eat all memory: beyond this, new connections are
 * not tracked (their egress passes unshifted, and a divergence later
 * forces a checkpoint that makes the offset 0 anyway). */
#define MAX_CONNS (1u << 20)

#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1

struct colo_rewriter {
	struct colo_conn_table table;
	uint64_t epoch;
	bool failed_over;
	struct colo_rewriter_stats st;
};

/* One parsed TCP segment, writable. */
struct seg {
	struct colo_packet p;
	struct colo_flow_key key; /* egress orientation */
	uint8_t *tcp;
	size_t doff;
	bool csum;	/* the checksum field is complete: keep it valid */
	size_t ts_at;	/* offset of TSval in the TCP header, 0: none */
	size_t sack_at; /* offset of the first SACK block, 0: none */
	unsigned nsack;
};

struct colo_rewriter *colo_rewriter_new(void)
{
	struct colo_rewriter *rw = calloc(1, sizeof(*rw));
	uint64_t key[2];

	if (!rw)
		return NULL;
	colo_siphash_key(key, rw);
	if (colo_conn_table_init(&rw->table, key) < 0) {
		free(rw);
		return NULL;
	}
	return rw;
}

void colo_rewriter_free(struct colo_rewriter *rw)
{
	if (!rw)
		return;
	colo_conn_table_destroy(&rw->table);
	free(rw);
}

const struct colo_rewriter_stats *
colo_rewriter_stats(const struct colo_rewriter *rw)
{
	return &rw->st;
}

/* ---- parsing ---- */

static void find_options(struct seg *s)
{
	struct colo_tcp_opts o;

	colo_tcp_find_options(s->tcp, s->doff, &o);
	s->ts_at = o.ts_at;
	s->sack_at = o.sack_at;
	s->nsack = o.nsack;
}

/* A TCP segment to look at, or false (counted as passed untouched). */
static bool parse_seg(struct colo_rewriter *rw, uint8_t *frame, size_t len,
		      size_t vnet_len, struct seg *s)
{
	memset(s, 0, sizeof(*s));
	if (vnet_len > len ||
	    colo_packet_parse(frame + vnet_len, len - vnet_len, &s->p) !=
		    COLO_PKT_TCP) {
		rw->st.passed++;
		return false;
	}
	const uint8_t *eth = frame + vnet_len;
	s->tcp = frame + vnet_len + (size_t)(s->p.l4 - eth);
	s->doff = (size_t)(s->tcp[12] >> 4) * 4;
	/* With NEEDS_CSUM the field holds only the pseudo-header sum, which
	 * no change to the TCP header affects; the device completes it. */
	s->csum = !(vnet_len >= 1 && (frame[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM));
	colo_flow_key_from_packet(&s->key, &s->p);
	find_options(s);
	return true;
}

/* Ingress frames travel client -> guest: key them like the egress. */
static void key_reverse(struct colo_flow_key *k)
{
	uint8_t a[16];
	uint16_t port = k->sport;

	memcpy(a, k->src, 16);
	memcpy(k->src, k->dst, 16);
	memcpy(k->dst, a, 16);
	k->sport = k->dport;
	k->dport = port;
}

bool colo_conn_meta_from_frame(const uint8_t *frame, size_t len,
			       size_t vnet_len, struct colo_conn_meta *m)
{
	struct colo_packet p;

	memset(m, 0, sizeof(*m));
	if (vnet_len > len ||
	    colo_packet_parse(frame + vnet_len, len - vnet_len, &p) !=
		    COLO_PKT_TCP)
		return false;
	if (!(p.tcp_flags & COLO_TCP_SYN) || (p.tcp_flags & COLO_TCP_RST))
		return false;
	struct seg s = { .p = p, .tcp = (uint8_t *)(uintptr_t)p.l4 };

	s.doff = (size_t)(p.l4[12] >> 4) * 4;
	find_options(&s);
	colo_flow_key_from_packet(&m->key, &p);
	m->isn = p.seq;
	if (s.ts_at) {
		m->has_ts = true;
		m->tsval = colo_get_be32(p.l4 + s.ts_at);
	}
	return true;
}

/* ---- connection state ---- */

static bool conn_closed(const struct colo_rw_conn *c)
{
	return c->rst || (c->fin_in && c->fin_out);
}

static bool conn_shifts(const struct colo_rw_conn *c)
{
	return c->ready && (c->seq_off || c->ts_off);
}

/* Offsets of an older epoch were made 0 by a checkpoint. The ISNs seen
 * before it are forgotten: the secondary now uses the primary's. */
static void conn_sync(struct colo_rewriter *rw, struct colo_rw_conn *c)
{
	if (c->epoch == rw->epoch)
		return;
	c->epoch = rw->epoch;
	c->seq_off = 0;
	c->ts_off = 0;
	c->ts_ok = false;
	memset(&c->sec, 0, sizeof(c->sec));
	memset(&c->pri, 0, sizeof(c->pri));
	c->cp_zero = true;
	c->ready = true;
}

static void conn_reset(struct colo_rewriter *rw, struct colo_rw_conn *c)
{
	struct colo_hnode hn = c->hn; /* still linked in the table */
	struct colo_flow_key key = c->key;

	memset(c, 0, sizeof(*c));
	c->hn = hn;
	c->key = key;
	c->epoch = rw->epoch;
}

static void conn_remove(struct colo_rewriter *rw, struct colo_rw_conn *c)
{
	colo_conn_table_remove(&rw->table, c);
	rw->st.conns_reclaimed++;
	rw->st.conns = colo_conn_table_count(&rw->table);
}

static void conn_update_ready(struct colo_rw_conn *c)
{
	if (c->sec.have && c->pri.have) {
		struct colo_tcp_syn pri = { c->pri.isn, c->pri.tsval,
					    c->pri.has_ts };
		struct colo_tcp_syn sec = { c->sec.isn, c->sec.tsval,
					    c->sec.has_ts };
		struct colo_tcp_offset off;

		colo_tcp_offset_from_syns(&pri, &sec, &off);
		c->seq_off = off.seq;
		c->ts_ok = off.ts_ok;
		c->ts_off = off.ts;
		c->ready = true;
		c->cp_zero = false;
	} else {
		c->ready = c->cp_zero;
	}
}

/*
 * Records one guest's SYN(/ACK) facts, creating the entry if needed.
 * A side whose ISN changes before the handshake is over means a new
 * incarnation of the tuple: the other side's ISN is stale until it too
 * reports again (in whichever order the two arrive). Once established,
 * the ISNs are fixed until the connection closes.
 */
static struct colo_rw_conn *
conn_learn(struct colo_rewriter *rw, struct colo_rw_conn *c,
	   const struct colo_flow_key *key, uint64_t hash, bool primary,
	   uint32_t isn, bool has_ts, uint32_t tsval, bool fallback,
	   uint64_t now_ns)
{
	if (!c) {
		if (rw->failed_over ||
		    colo_conn_table_count(&rw->table) >= MAX_CONNS)
			return NULL;
		c = colo_conn_table_insert(&rw->table, key, hash);
		if (!c)
			return NULL;
		c->epoch = rw->epoch;
		rw->st.conns_created++;
		rw->st.conns = colo_conn_table_count(&rw->table);
	}
	conn_sync(rw, c);
	c->last_ns = now_ns;
	if (conn_closed(c)) {
		if (rw->failed_over) {
			conn_remove(rw, c);
			return NULL;
		}
		conn_reset(rw, c);
	}

	struct colo_rw_side *s = primary ? &c->pri : &c->sec;
	struct colo_rw_side *o = primary ? &c->sec : &c->pri;

	if (s->have) {
		if (c->established || (s->isn == isn && !s->fallback))
			return c; /* duplicate or retransmission */
		if (s->isn != isn && !s->fallback)
			o->have = false;
	}
	s->have = true;
	s->isn = isn;
	s->has_ts = has_ts;
	s->tsval = tsval;
	s->fallback = fallback;
	if (fallback)
		rw->st.fallback_learns++;
	conn_update_ready(c);
	return c;
}

static struct colo_rw_conn *conn_find(struct colo_rewriter *rw,
				      const struct colo_flow_key *key,
				      uint64_t *hash)
{
	*hash = colo_conn_table_hash(&rw->table, key);
	struct colo_rw_conn *c = colo_conn_table_find(&rw->table, key, *hash);

	if (c)
		conn_sync(rw, c);
	return c;
}

void colo_rewriter_learn(struct colo_rewriter *rw,
			 const struct colo_conn_meta *m, uint64_t now_ns)
{
	struct colo_flow_key key = m->key;
	uint64_t hash;

	/* The metadata crossed the link: make the key canonical so that it
	 * hashes like the one taken from a frame. */
	if (key.proto != 6 || (key.ipver != 4 && key.ipver != 6))
		return;
	if (key.ipver == 4) {
		memset(key.src + 4, 0, 12);
		memset(key.dst + 4, 0, 12);
	}
	key.vlan[0] &= 0x0fff;
	key.vlan[1] &= 0x0fff;
	key.fragment = 0;
	key.pad = 0;

	/* A bool copied off the wire may hold any byte: read it as one. */
	uint8_t has_ts;
	memcpy(&has_ts, &m->has_ts, 1);

	struct colo_rw_conn *c = conn_find(rw, &key, &hash);

	conn_learn(rw, c, &key, hash, true, m->isn, has_ts != 0, m->tsval,
		   false, now_ns);
}

/* ---- rewriting ---- */

static void seg_finish(struct seg *s, uint16_t csum)
{
	if (s->csum) {
		s->tcp[16] = (uint8_t)(csum >> 8);
		s->tcp[17] = (uint8_t)csum;
	}
}

static void add32(struct seg *s, size_t off, uint32_t delta, uint16_t *csum)
{
	colo_csum_set32(s->tcp, off, colo_get_be32(s->tcp + off) + delta,
			s->csum ? csum : NULL);
}

enum colo_rw_verdict colo_rewriter_egress(struct colo_rewriter *rw,
					  uint8_t *frame, size_t len,
					  size_t vnet_len, uint64_t now_ns)
{
	struct colo_rw_conn *c;
	struct seg s;
	uint64_t hash;

	if (!parse_seg(rw, frame, len, vnet_len, &s))
		return COLO_RW_PASS;
	uint8_t flags = s.p.tcp_flags;
	bool syn = (flags & COLO_TCP_SYN) && !(flags & COLO_TCP_RST);

	c = conn_find(rw, &s.key, &hash);
	if (syn)
		c = conn_learn(rw, c, &s.key, hash, false, s.p.seq,
			       s.ts_at != 0,
			       s.ts_at ? colo_get_be32(s.tcp + s.ts_at) : 0,
			       false, now_ns);
	if (!c) {
		/* Opened before the last checkpoint (offset 0), or after
		 * failover, or untracked. */
		rw->st.passed++;
		return COLO_RW_PASS;
	}
	c->last_ns = now_ns;
	if (!c->ready && !rw->failed_over) {
		rw->st.waits++;
		return COLO_RW_WAIT;
	}
	if (flags & COLO_TCP_RST)
		c->rst = true;
	if (flags & COLO_TCP_FIN)
		c->fin_out = true;
	if (c->ready && !syn)
		c->established = true;
	if (!conn_shifts(c)) {
		rw->st.passed++;
		return COLO_RW_PASS;
	}

	struct colo_tcp_offset off = { c->seq_off, c->ts_off, c->ts_ok };

	colo_tcp_offset_shift_egress(s.tcp, s.ts_at, s.csum, &off);
	rw->st.egress_rewritten++;
	return COLO_RW_PASS;
}

void colo_rewriter_ingress(struct colo_rewriter *rw, uint8_t *frame, size_t len,
			   size_t vnet_len, uint64_t now_ns)
{
	struct colo_rw_conn *c;
	struct seg s;
	uint64_t hash;

	if (!parse_seg(rw, frame, len, vnet_len, &s))
		return;
	key_reverse(&s.key);
	c = conn_find(rw, &s.key, &hash);
	if (!c) {
		rw->st.passed++;
		return;
	}
	c->last_ns = now_ns;

	uint8_t flags = s.p.tcp_flags;
	bool ack = flags & COLO_TCP_ACK;

	if ((flags & COLO_TCP_SYN) && !ack && conn_closed(c)) {
		/* The client reopens the tuple (passive open after
		 * TIME_WAIT): the guests' SYN/ACKs will teach the rest. */
		if (rw->failed_over)
			conn_remove(rw, c);
		else
			conn_reset(rw, c);
		rw->st.passed++;
		return;
	}
	/* Fallback, as QEMU does it: the client acknowledges the primary's
	 * SYN(/ACK), so ack - 1 is the primary's ISN and TSecr echoes its
	 * TSval. Only used when the metadata is late. */
	if (!c->ready && ack && c->sec.have && !c->pri.have &&
	    !c->established && !conn_closed(c))
		conn_learn(rw, c, &s.key, hash, true, s.p.ack - 1, s.ts_at != 0,
			   s.ts_at ? colo_get_be32(s.tcp + s.ts_at + 4) : 0,
			   true, now_ns);
	if (flags & COLO_TCP_RST)
		c->rst = true;
	if (flags & COLO_TCP_FIN)
		c->fin_in = true;
	if (c->ready && ack && !(flags & COLO_TCP_SYN))
		c->established = true;
	if (!conn_shifts(c) || !ack) {
		rw->st.passed++;
		return;
	}

	uint16_t csum = colo_get_be16(s.tcp + 16);

	add32(&s, 8, c->seq_off, &csum);
	for (unsigned i = 0; c->seq_off && i < s.nsack; i++) {
		add32(&s, s.sack_at + 8 * i, c->seq_off, &csum);
		add32(&s, s.sack_at + 8 * i + 4, c->seq_off, &csum);
	}
	if (c->ts_ok && s.ts_at)
		add32(&s, s.ts_at + 4, c->ts_off, &csum);
	seg_finish(&s, csum);
	rw->st.ingress_rewritten++;
}

/* ---- checkpoint, failover, reclaim ---- */

void colo_rewriter_checkpoint(struct colo_rewriter *rw)
{
	rw->epoch++;
	rw->st.checkpoints++;
}

void colo_rewriter_failover(struct colo_rewriter *rw)
{
	rw->failed_over = true;
}

struct sweep_ctx {
	struct colo_rewriter *rw;
	uint64_t now_ns;
	uint64_t shifted;
};

static bool reclaimable(void *opaque, void *entry)
{
	struct sweep_ctx *x = opaque;
	struct colo_rw_conn *c = entry;
	uint64_t idle = x->now_ns > c->last_ns ? x->now_ns - c->last_ns : 0;

	conn_sync(x->rw, c);
	if (conn_closed(c))
		return idle >= CLOSED_LINGER_NS;
	if (conn_shifts(c))
		x->shifted++;
	/* After failover a shifted connection lives until it closes: there
	 * is no checkpoint any more to make its offset 0. */
	if (x->rw->failed_over && conn_shifts(c))
		return false;
	return idle >= IDLE_NS;
}

static bool count_shifted(void *opaque, void *entry)
{
	struct sweep_ctx *x = opaque;
	struct colo_rw_conn *c = entry;

	conn_sync(x->rw, c);
	if (!conn_closed(c) && conn_shifts(c))
		x->shifted++;
	return false;
}

uint64_t colo_rewriter_count_shifted(struct colo_rewriter *rw)
{
	struct sweep_ctx x = { rw, 0, 0 };

	colo_conn_table_sweep(&rw->table, count_shifted, &x);
	rw->st.shifted = x.shifted;
	return x.shifted;
}

void colo_rewriter_tick(struct colo_rewriter *rw, uint64_t now_ns)
{
	struct sweep_ctx x = { rw, now_ns, 0 };

	rw->st.conns_reclaimed +=
		colo_conn_table_sweep(&rw->table, reclaimable, &x);
	rw->st.conns = colo_conn_table_count(&rw->table);
	rw->st.shifted = x.shifted;
}
