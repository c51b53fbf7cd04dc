/*
 * replay.c - the secondary's replay tail.
 *
 * What the secondary guest sent just before the primary died went to a
 * comparer that is gone; the guest would resend it only when its
 * retransmission timer fires (200 ms or more, doubling). So the proxy
 * keeps a copy of the guest's recent TCP output (bounded, in the primary's
 * sequence space, as the client will see it) and the client's latest ACK
 * per connection, and on failover resends at once what the client has not
 * acknowledged. Duplicates are harmless to TCP; a stall is not.
 *
 * Segments leave the tail as soon as the client acknowledged them and
 * their buffers are reused last-freed-first, so the copies stay in the
 * cache: the working set is what is in flight, not the tail's bound.
 */
#include <stdlib.h>
#include <string.h>

#include "packet.h"
#include "proxy.h"

#define TAIL_SLOTS 4096
#define TAIL_BYTES (32u << 20)
#define ACKS	   4096
#define SMALL	   2048

struct tail_slot {
	uint8_t *frame;
	uint32_t len;
	uint8_t vnet;
	uint64_t conn;
	uint32_t end_seq;
};

struct colo_replay {
	struct tail_slot s[TAIL_SLOTS];
	uint32_t head, n;
	size_t bytes;
	/* free buffers: [0] SMALL bytes, [1] COLO_PORT_FRAME_MAX bytes */
	uint8_t *free[2][TAIL_SLOTS];
	uint32_t nfree[2];
	uint64_t lost; /* segments not kept: no memory for a copy */
	struct {
		uint64_t conn;
		uint32_t ack;
	} acks[ACKS];
};

static bool tcp_of(const uint8_t *f, size_t len, size_t v,
		   struct colo_packet *p)
{
	return len > v && colo_packet_parse(f + v, len - v, p) == COLO_PKT_TCP;
}

static void pop(struct colo_replay *t)
{
	struct tail_slot *sl = &t->s[t->head];
	int c = sl->len > SMALL;

	if (t->nfree[c] < TAIL_SLOTS)
		t->free[c][t->nfree[c]++] = sl->frame;
	else
		free(sl->frame);
	sl->frame = NULL;
	t->bytes -= sl->len;
	t->head = (t->head + 1) % TAIL_SLOTS;
	t->n--;
}

static bool acked(const struct colo_replay *t, const struct tail_slot *sl)
{
	uint32_t i = (uint32_t)(sl->conn % ACKS);

	return t->acks[i].conn == sl->conn &&
	       (int32_t)(sl->end_seq - t->acks[i].ack) <= 0;
}

struct colo_replay *colo_replay_new(void)
{
	return calloc(1, sizeof(struct colo_replay));
}

void colo_replay_ack(struct colo_replay *t, const uint8_t *f, size_t len,
		     size_t v)
{
	struct colo_packet p;
	uint64_t id;
	uint32_t i;

	if (!t || !tcp_of(f, len, v, &p) || !(p.tcp_flags & COLO_TCP_ACK))
		return;
	id = colo_proxy_conn_id(&p, true);
	i = (uint32_t)(id % ACKS);
	if (t->acks[i].conn != id || (int32_t)(p.ack - t->acks[i].ack) > 0) {
		t->acks[i].conn = id;
		t->acks[i].ack = p.ack;
	}
	while (t->n && acked(t, &t->s[t->head]))
		pop(t);
}

void colo_replay_keep(struct colo_replay *t, const uint8_t *f, size_t len,
		      size_t v)
{
	struct tail_slot *sl;
	struct colo_packet p;
	uint32_t seglen;
	int c = len > SMALL;

	if (!t || len > COLO_PORT_FRAME_MAX || !tcp_of(f, len, v, &p))
		return;
	seglen = (uint32_t)p.payload_len + !!(p.tcp_flags & COLO_TCP_FIN);
	if (!seglen || (p.tcp_flags & (COLO_TCP_SYN | COLO_TCP_RST)))
		return;
	while (t->n && (t->n == TAIL_SLOTS || t->bytes + len > TAIL_BYTES))
		pop(t);
	sl = &t->s[(t->head + t->n) % TAIL_SLOTS];
	sl->frame = t->nfree[c] ? t->free[c][--t->nfree[c]]
				: malloc(c ? COLO_PORT_FRAME_MAX : SMALL);
	if (!sl->frame) {
		t->lost++; /* failover then waits for the guest's RTO */
		return;
	}
	memcpy(sl->frame, f, len);
	sl->len = (uint32_t)len;
	sl->vnet = (uint8_t)v;
	sl->conn = colo_proxy_conn_id(&p, false);
	sl->end_seq = p.seq + seglen;
	t->n++;
	t->bytes += len;
}

uint64_t colo_replay_lost(const struct colo_replay *t)
{
	return t ? t->lost : 0;
}

void colo_replay_free(struct colo_replay *t)
{
	if (!t)
		return;
	while (t->n)
		pop(t);
	for (int c = 0; c < 2; c++)
		for (uint32_t k = 0; k < t->nfree[c]; k++)
			free(t->free[c][k]);
	free(t);
}

uint64_t colo_replay_send(struct colo_replay *t, struct colo_proxy *px)
{
	uint64_t sent = 0;

	if (!t)
		return 0;
	for (uint32_t k = 0; k < t->n; k++) {
		struct tail_slot *sl = &t->s[(t->head + k) % TAIL_SLOTS];

		if (acked(t, sl))
			continue;
		colo_proxy_to_client(px, sl->frame, sl->len, sl->vnet);
		sent++;
	}
	return sent;
}
