/*
 * redirector.c - the secondary guest's output on its way to the comparer.
 *
 * On the secondary host each guest frame is shifted into the primary's
 * sequence space by the rewriter and sent over the link as EGRESS (or,
 * after failover, to the client). A frame of a connection whose primary
 * ISN has not arrived yet (a CONN_META racing the guest's SYN/ACK) waits
 * in a bounded FIFO that is retried, in order, after every CONN_META.
 * On the primary host an EGRESS frame from the link enters the comparer's
 * secondary side.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "packet.h"
#include "packet_build.h"
#include "proxy.h"

#define WAIT_BYTES (16u << 20)

void colo_redirector_to_comparer(struct colo_primary *p,
				 const struct colo_plink_frame *f)
{
	size_t v = (f->flags & COLO_PLINK_F_VNET) ? COLO_VNET_HDR_LEN : 0;

	colo_primary_note_window(p, f->payload, f->len, v);
	colo_comparer_input(p->cmp, COLO_SECONDARY, f->payload, f->len, v,
			    colo_loop_now(p->px.loop));
}

static void wait_push(struct colo_secondary *s, const uint8_t *f, size_t len,
		      size_t v)
{
	uint32_t slot;

	if (s->wq_n == COLO_WAIT_FRAMES || s->wq_bytes + len > WAIT_BYTES) {
		/* Oldest goes: TCP retransmits it. */
		s->wq_bytes -= s->wq[s->wq_head].len;
		free(s->wq[s->wq_head].frame);
		s->wq_head = (s->wq_head + 1) % COLO_WAIT_FRAMES;
		s->wq_n--;
		s->wait_dropped++;
	}
	slot = (s->wq_head + s->wq_n) % COLO_WAIT_FRAMES;
	s->wq[slot].frame = malloc(len);
	if (!s->wq[slot].frame) {
		s->wait_dropped++;
		return;
	}
	memcpy(s->wq[slot].frame, f, len);
	s->wq[slot].len = (uint32_t)len;
	s->wq[slot].vnet = (uint8_t)v;
	s->wq_n++;
	s->wq_bytes += len;
	s->waited++;
}

/* Retries every waiting frame once, in order; those still waiting keep
 * their order. Linear, but the queue is short-lived and bounded. */
void colo_redirector_retry(struct colo_secondary *s)
{
	uint32_t n = s->wq_n;
	uint64_t now = colo_loop_now(s->px.loop);

	for (uint32_t i = 0; i < n; i++) {
		uint32_t head = s->wq_head;
		uint8_t *frame = s->wq[head].frame;
		uint32_t len = s->wq[head].len;
		uint8_t vnet = s->wq[head].vnet;

		s->wq_head = (s->wq_head + 1) % COLO_WAIT_FRAMES;
		s->wq_n--;
		s->wq_bytes -= len;
		if (colo_rewriter_egress(s->rw, frame, len, vnet, now) !=
		    COLO_RW_PASS) {
			uint32_t tail =
				(s->wq_head + s->wq_n) % COLO_WAIT_FRAMES;

			s->wq[tail].frame = frame;
			s->wq[tail].len = len;
			s->wq[tail].vnet = vnet;
			s->wq_n++;
			s->wq_bytes += len;
			continue;
		}
		colo_secondary_out(s, frame, len, vnet);
		free(frame);
	}
}

void colo_redirector_free(struct colo_secondary *s)
{
	while (s->wq_n) {
		free(s->wq[s->wq_head].frame);
		s->wq_head = (s->wq_head + 1) % COLO_WAIT_FRAMES;
		s->wq_n--;
	}
	s->wq_bytes = 0;
}

/* A SYN the rewriter holds until the primary's ISN arrives also goes to
 * the comparer at once, unshifted: the comparer only needs to know that
 * the secondary guest opened the flow (it never reads the sequence number
 * of a secondary SYN), so the primary's SYN leaves without waiting for a
 * round trip, and when the two guests picked different source ports (no
 * ISN ever comes for this one) the checkpoint is asked for at once. Its
 * headers only: data in the SYN (TCP Fast Open) would enter the stream at
 * the guest's own numbers; it is compared when the shifted SYN follows.
 * Not kept for replay: its numbers are the guest's own. */
static void announce_open(struct colo_secondary *s, const uint8_t *f,
			  size_t len, size_t v)
{
	uint8_t syn[256];
	struct colo_packet p;
	size_t n;

	if (s->failed_over || !colo_proxy_link_up(&s->px))
		return;
	colo_packet_parse(f + v, len - v, &p);
	if (p.kind != COLO_PKT_TCP ||
	    (p.tcp_flags & (COLO_TCP_SYN | COLO_TCP_ACK)) != COLO_TCP_SYN)
		return;
	n = colo_tcp_headers_only(f, len, v, syn, sizeof(syn));
	if (!n)
		return; /* headers too long to copy: it waits for its ISN */
	s->egress++;
	colo_proxy_queue(&s->px, COLO_PLINK_EGRESS, v ? COLO_PLINK_F_VNET : 0,
			 syn, n, NULL, 0);
}

void colo_redirector_guest_frame(void *secondary, uint8_t *f, size_t len)
{
	struct colo_secondary *s = secondary;
	size_t v = s->px.guest.vnet;

	if (len < v + 14)
		return;
	colo_guest_addrs_learn(&s->addrs, f + v, len - v);
	if (!s->failed_over) {
		/* The guest's address resolution stays on this host. */
		uint8_t ans[128];
		size_t n = colo_neigh_answer(&s->neigh, f + v, len - v, ans);

		if (n) {
			colo_port_send(s->px.guest.port, ans, n, 0);
			s->neigh_answers++;
		}
	}
	if (colo_rewriter_egress(s->rw, f, len, v, colo_loop_now(s->px.loop)) ==
	    COLO_RW_WAIT) {
		announce_open(s, f, len, v);
		wait_push(s, f, len, v);
	} else
		colo_secondary_out(s, f, len, v);
}
