/*
 * lease.h - the lease that keeps two hosts from serving at once.
 *
 * The primary releases client output only before its lease deadline; the
 * deadline moves forward only when a renewal the primary sent came back
 * through corosync while corosync said the host was quorate, and it runs
 * from the renewal's sending time. The secondary takes over only when it
 * is quorate, the primary has left the membership and the primary's
 * lease has surely run out. Pure logic on CLOCK_MONOTONIC values passed
 * in, so tests drive it with a fake clock.
 */
#ifndef COLO_CLUSTER_LEASE_H
#define COLO_CLUSTER_LEASE_H

#include <stdbool.h>
#include <stdint.h>

struct colo_lease {
	uint64_t lease_ns, margin_ns;
	uint64_t deadline;  /* primary: may release before this; 0 none */
	uint64_t peer_seen; /* secondary: last sight of the peer's renewal */
	uint64_t peer_left; /* secondary: when it left the membership; 0 in */
};

/* lease.c APIs: */
void colo_lease_init(struct colo_lease *l, uint64_t lease_ns,
		     uint64_t margin_ns);

/* Primary side. */
/* Our renewal sent at sent_ns was delivered back to us by corosync;
 * quorate is corosync's answer asked at delivery. */
void colo_lease_renewed(struct colo_lease *l, uint64_t sent_ns, bool quorate);
/* Quorum lost: the lease ends now, whatever its deadline said. */
void colo_lease_drop(struct colo_lease *l);
/* The check on the release path: against the clock read now, never a
 * flag computed earlier, so a host resumed after a freeze stops before it
 * has learnt anything. */
bool colo_lease_may_release(const struct colo_lease *l, uint64_t now_ns);
uint64_t colo_lease_deadline(const struct colo_lease *l);

/* Secondary side. */
void colo_lease_peer_renewed(struct colo_lease *l, uint64_t now_ns);
void colo_lease_peer_left(struct colo_lease *l, uint64_t now_ns);
void colo_lease_peer_joined(struct colo_lease *l);
/* The earliest time the peer's lease has surely run out (0: the peer is
 * still a member, so never). */
uint64_t colo_lease_takeover_at(const struct colo_lease *l);
bool colo_lease_may_take_over(const struct colo_lease *l, uint64_t now_ns,
			      bool quorate);

#endif
