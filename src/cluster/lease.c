/*
 * lease.c - the lease rules (see lease.h).
 *
 * Why the secondary counts from the later of its last sight of a renewal
 * and the moment the primary left: corosync delivers a message to its
 * sender in agreed order as soon as the sender holds the token, before
 * the others have it. A primary cut off at that moment can renew once
 * more without the secondary ever seeing that renewal; but it does so
 * before its own ring breaks up, hence before the secondary sees it
 * leave. lease + margin from the leave covers that renewal; the margin
 * covers the two hosts' monotonic clocks running at slightly different
 * rates and the time between corosync's decision and ours.
 */
#include "lease.h"

void colo_lease_init(struct colo_lease *l, uint64_t lease_ns,
		     uint64_t margin_ns)
{
	*l = (struct colo_lease){ .lease_ns = lease_ns,
				  .margin_ns = margin_ns };
}

void colo_lease_renewed(struct colo_lease *l, uint64_t sent_ns, bool quorate)
{
	uint64_t d = sent_ns + l->lease_ns;

	if (!quorate) {
		colo_lease_drop(l);
		return;
	}
	/* Renewals may come back out of order with respect to our clock
	 * reads (one sent before a freeze, delivered after): never move the
	 * deadline back, never forward past what this renewal proves. */
	if (d > l->deadline)
		l->deadline = d;
}

void colo_lease_drop(struct colo_lease *l)
{
	l->deadline = 0;
}

bool colo_lease_may_release(const struct colo_lease *l, uint64_t now_ns)
{
	return now_ns < l->deadline;
}

uint64_t colo_lease_deadline(const struct colo_lease *l)
{
	return l->deadline;
}

void colo_lease_peer_renewed(struct colo_lease *l, uint64_t now_ns)
{
	l->peer_seen = now_ns;
}

void colo_lease_peer_left(struct colo_lease *l, uint64_t now_ns)
{
	if (!l->peer_left)
		l->peer_left = now_ns ? now_ns : 1;
}

void colo_lease_peer_joined(struct colo_lease *l)
{
	l->peer_left = 0;
}

uint64_t colo_lease_takeover_at(const struct colo_lease *l)
{
	uint64_t from =
		l->peer_seen > l->peer_left ? l->peer_seen : l->peer_left;

	if (!l->peer_left)
		return 0;
	return from + l->lease_ns + l->margin_ns;
}

bool colo_lease_may_take_over(const struct colo_lease *l, uint64_t now_ns,
			      bool quorate)
{
	uint64_t at = colo_lease_takeover_at(l);

	return quorate && at && now_ns >= at;
}
