/*
 * cut.c - the proxies' side of a checkpoint's ingress cut (the hold
 * itself is ingress_hold.c): the primary's checkpoint-cut command, and
 * the checkpoint number that the commands and the link's CUT carry.
 */
#include <json-c/json.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/clock.h"
#include "common/log.h"
#include "proxy.h"

/* Longest wait, per command, for the primary VM to read what it was sent
 * before the cut: colo vm repeats the command until it is drained, and
 * the loop (link pings included) runs in between. */
#define CUT_DRAIN_MS 50
/* How long a cut may hold the guest's ingress when the request does not
 * say (hold_ms): longer than any checkpoint colo vm lets run by default. */
#define CUT_HOLD_DEFAULT_MS 30000
#define CUT_HOLD_MAX_MS	    600000

uint64_t colo_cut_req_seq(struct json_object *req)
{
	struct json_object *o;
	int64_t v;

	if (!req || !json_object_object_get_ex(req, "seq", &o))
		return 0;
	v = json_object_get_int64(o);
	return v > 0 ? (uint64_t)v : 0;
}

/* A hold_ms as asked for (0 or less: not said) within bounds. */
static uint32_t cut_hold_ms(int64_t v)
{
	if (v <= 0)
		return CUT_HOLD_DEFAULT_MS;
	return v > CUT_HOLD_MAX_MS ? CUT_HOLD_MAX_MS : (uint32_t)v;
}

/* The request's hold_ms: colo vm passes its own checkpoint deadline. */
static uint32_t cut_req_hold_ms(struct json_object *req)
{
	struct json_object *o;

	if (!req || !json_object_object_get_ex(req, "hold_ms", &o))
		return CUT_HOLD_DEFAULT_MS;
	return cut_hold_ms(json_object_get_int64(o));
}

void colo_cut_expire(struct colo_ingress_hold *h, uint64_t now, colo_hold_fn fn,
		     void *ctx)
{
	enum colo_cut_state was = h->state;
	uint64_t n = h->held_now;

	if (!colo_hold_expire(h, now, fn, ctx))
		return;
	if (was == COLO_CUT_HOLD)
		colo_log_warn("checkpoint %llu: no resume before the cut's "
			      "deadline (colo vm gone?): %llu held frames go "
			      "to the guest",
			      (unsigned long long)h->cut_seq,
			      (unsigned long long)n);
	else
		colo_log_warn("checkpoint %llu resumed, its CUT never came "
			      "(lost with a link?): %llu frames kept for it "
			      "go to the guest",
			      (unsigned long long)h->done_seq,
			      (unsigned long long)n);
}

int colo_cut_link_decode(const struct colo_plink_frame *f, uint64_t *seq,
			 uint64_t *wait_ns)
{
	uint32_t ms = 0;

	if (f->len == COLO_PLINK_CUT_LEN)
		ms = colo_get_be32(f->payload + 8);
	else if (f->len != COLO_PLINK_CUT_LEN_V1)
		return -1;
	*seq = colo_get_be64(f->payload);
	*wait_ns = (uint64_t)cut_hold_ms(ms) * COLO_NS_PER_MS;
	return 0;
}

void colo_cut_link_encode(uint8_t b[COLO_PLINK_CUT_LEN], uint64_t seq,
			  uint32_t hold_ms)
{
	colo_put_be64(b, seq);
	colo_put_be32(b + 8, hold_ms);
}

void colo_primary_hold_to_guest(void *ctx, uint8_t *f, size_t len, size_t v)
{
	struct colo_primary *p = ctx;

	colo_port_send(p->px.guest.port, f, len, v);
}

/* Waits until the guest port's peer (the primary VM's QEMU) has read
 * every byte it was sent: a frame still in the socket at the stop would
 * reach the primary VM after the checkpoint and the new secondary never.
 * Exact for a unix socket only (SIOCOUTQ counts what the peer has not
 * read; on TCP, what it has not acknowledged). Blocks the proxy briefly,
 * at a checkpoint only, while the client's frames are held anyway. */
static bool drain_guest(struct colo_primary *p, uint64_t *waited_us)
{
	uint64_t t0 = colo_now_ns(),
		 end = t0 + (uint64_t)CUT_DRAIN_MS * COLO_NS_PER_MS;
	bool drained;

	for (;;) {
		colo_port_flush(p->px.guest.port);
		drained = !colo_port_unsent(p->px.guest.port);
		if (drained || colo_now_ns() >= end)
			break;
		usleep(100);
	}
	*waited_us = (colo_now_ns() - t0) / 1000;
	return drained;
}

int colo_primary_cmd_cut(void *ctx, struct json_object *req,
			 struct json_object *r, char *err, size_t errlen)
{
	struct colo_primary *p = ctx;
	uint64_t seq = colo_cut_req_seq(req), waited;
	uint32_t hold_ms = cut_req_hold_ms(req);
	uint8_t b[COLO_PLINK_CUT_LEN];
	bool drained;

	(void)err, (void)errlen;
	/* A repeat for the same checkpoint only waits for the drain. */
	if (!(p->hold.state == COLO_CUT_HOLD && seq &&
	      p->hold.cut_seq == seq)) {
		p->hold.wait_ns = (uint64_t)hold_ms * COLO_NS_PER_MS;
		colo_hold_cut(&p->hold, seq, colo_loop_now(p->px.loop),
			      colo_primary_hold_to_guest, p);
		if (colo_proxy_link_up(&p->px)) {
			/* the secondary's hold ends at the same deadline */
			colo_cut_link_encode(b, seq, hold_ms);
			colo_proxy_queue(&p->px, COLO_PLINK_CUT, 0, b,
					 sizeof(b), NULL, 0);
		}
	}
	drained = drain_guest(p, &waited);
	json_object_object_add(r, "drained", json_object_new_boolean(drained));
	json_object_object_add(r, "drain_us",
			       json_object_new_int64((int64_t)waited));
	return 0;
}

int colo_primary_cmd_resume(void *ctx, struct json_object *req,
			    struct json_object *r, char *err, size_t errlen)
{
	struct colo_primary *p = ctx;

	(void)r, (void)err, (void)errlen;
	colo_hold_done(&p->hold, colo_cut_req_seq(req),
		       colo_loop_now(p->px.loop), colo_primary_hold_to_guest,
		       p);
	return 0;
}
