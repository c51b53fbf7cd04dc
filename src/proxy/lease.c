/*
 * lease.c - the client port obeys the lease that `colo up` pushes.
 *
 * A host may release client output only while quorum says it is the
 * primary: `colo up` renews a CLOCK_MONOTONIC deadline and pushes it
 * ({"cmd":"lease","deadline_ns":N}). Its supervisor cannot stop a frozen
 * or partitioned proxy, so the proxy checks the deadline itself, with a
 * fresh clock read right before every frame it gives the client port and
 * before every flush of that port: a process resumed after SIGSTOP reads
 * the clock before it handles anything it learns after waking.
 *
 * Output that may not leave is held, in order, in one buffer allocated
 * when the lease regime starts (never per frame), and counted; what does
 * not fit is counted as dropped. A new lease that is valid when it
 * arrives releases the held output: `colo up` pushes a valid deadline
 * only while this host is the quorate primary of the current epoch, and a
 * host that was deposed meanwhile never gets one (its daemons are
 * stopped), so releasing then cannot put two hosts on the wire; and the
 * client gets its data without waiting for TCP retransmissions.
 *
 * Cost with a lease in force: one vDSO clock_gettime per frame to the
 * client and one per flush. Without a lease (standalone proxies) none.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "proxy.h"

#define HOLD_BYTES (8u << 20)

struct hold_hdr {
	uint32_t len;
	uint32_t vnet;
};

static int gate_start(struct colo_lease_gate *g)
{
	if (g->hold)
		return 0;
	g->hold = malloc(HOLD_BYTES);
	if (!g->hold)
		return -1;
	g->active = true;
	return 0;
}

int colo_lease_gate_init(struct colo_lease_gate *g, bool required)
{
	*g = (struct colo_lease_gate){ 0 };
	return required ? gate_start(g) : 0;
}

void colo_lease_gate_free(struct colo_lease_gate *g)
{
	free(g->hold);
	g->hold = NULL;
}

static bool lease_valid(const struct colo_lease_gate *g)
{
	return !g->active ||
	       (g->deadline_ns > g->floor_ns && colo_now_ns() < g->deadline_ns);
}

/* The secondary is lost. It may be dead (serve on, degraded) or this
 * host may be the one cut off (the other side takes over once our lease
 * has run out). Until then our output would be output the secondary
 * never saw, and the client could not go on with it after a takeover: so
 * only a lease renewed after the loss (quorum still ours) releases it. */
void colo_lease_gate_link_lost(struct colo_lease_gate *g)
{
	g->floor_ns = g->deadline_ns;
}

/* A secondary connected: it has not taken over, output is compared
 * again, the current lease is enough. */
void colo_lease_gate_link_up(struct colo_lease_gate *g)
{
	g->floor_ns = 0;
}

static void hold(struct colo_lease_gate *g, const uint8_t *f, size_t len,
		 size_t v)
{
	struct hold_hdr h = { (uint32_t)len, (uint32_t)v };
	size_t need = sizeof(h) + len;

	if (!g->held_now && !g->dropped_now)
		colo_log_warn("no valid lease (deadline %llu, now %llu): "
			      "holding client output",
			      (unsigned long long)g->deadline_ns,
			      (unsigned long long)colo_now_ns());
	if (len > COLO_PORT_FRAME_MAX || HOLD_BYTES - g->hold_len < need) {
		g->dropped_now++;
		g->dropped++;
		return;
	}
	memcpy(g->hold + g->hold_len, &h, sizeof(h));
	memcpy(g->hold + g->hold_len + sizeof(h), f, len);
	g->hold_len += need;
	g->held++;
	g->held_now++;
}

void colo_proxy_to_client(struct colo_proxy *px, const uint8_t *f, size_t len,
			  size_t v)
{
	struct colo_lease_gate *g = &px->lease;

	/* Held output goes first: nothing overtakes it. */
	if (g->active && (g->hold_len || !lease_valid(g))) {
		hold(g, f, len, v);
		return;
	}
	colo_port_send(px->client.port, f, len, v);
}

void colo_proxy_flush_client(struct colo_proxy *px)
{
	/* A batch queued before a freeze stays in the port until a valid
	 * lease: colo_proxy_to_client holds everything meanwhile, so
	 * nothing else makes the port write it. */
	if (lease_valid(&px->lease))
		colo_port_flush(px->client.port);
}

/* Releases what was held, if the lease is valid now. */
static void release_held(struct colo_proxy *px)
{
	struct colo_lease_gate *g = &px->lease;
	size_t off = 0;

	if (!lease_valid(g))
		return;
	colo_port_flush(px->client.port);
	while (off < g->hold_len) {
		struct hold_hdr h;

		memcpy(&h, g->hold + off, sizeof(h));
		off += sizeof(h);
		colo_port_send(px->client.port, g->hold + off, h.len, h.vnet);
		off += h.len;
		g->released_late++;
	}
	if (g->held_now || g->dropped_now)
		colo_log_info("lease valid again: released %llu held frames "
			      "(%llu did not fit and were dropped)",
			      (unsigned long long)g->held_now,
			      (unsigned long long)g->dropped_now);
	g->hold_len = 0;
	g->held_now = 0;
	g->dropped_now = 0;
}

int colo_proxy_cmd_lease(void *ctx, struct json_object *req,
			 struct json_object *r, char *err, size_t errlen)
{
	struct colo_proxy *px = ctx;
	struct json_object *d;
	int64_t n;

	if (!json_object_object_get_ex(req, "deadline_ns", &d) ||
	    !json_object_is_type(d, json_type_int)) {
		snprintf(err, errlen, "deadline_ns: an integer is required");
		return -1;
	}
	errno = 0;
	n = json_object_get_int64(d);
	if (n < 0 || errno) {
		snprintf(err, errlen, "deadline_ns: out of range");
		return -1;
	}
	if (gate_start(&px->lease) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	px->lease.deadline_ns = (uint64_t)n;
	px->lease.leases++;
	release_held(px);
	json_object_object_add(
		r, "valid", json_object_new_boolean(lease_valid(&px->lease)));
	return 0;
}

void colo_proxy_add_lease_stats(struct json_object *r,
				const struct colo_proxy *px)
{
	const struct colo_lease_gate *g = &px->lease;
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "enforced",
			       json_object_new_boolean(g->active));
	json_object_object_add(o, "valid",
			       json_object_new_boolean(lease_valid(g)));
	colo_control_add_counters(
		o, COLO_COUNTERS({ "deadline_ns", g->deadline_ns },
				 { "leases", g->leases },
				 { "held_frames", g->held },
				 { "holding_frames", g->held_now },
				 { "holding_bytes", g->hold_len },
				 { "released_after_hold", g->released_late },
				 { "dropped", g->dropped }));
	json_object_object_add(r, "lease", o);
}
