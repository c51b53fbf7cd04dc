/*
 * opened_ports.c - flows the two guests opened from different source
 * ports.
 *
 * A guest that opens a connection (a TCP SYN) or sends a query (DNS, NTP)
 * binds a source port of its choice, and the two guests' kernels may pick
 * different ones: the comparer then sees two flows that can never match,
 * and the primary's SYN or query would wait for the compare timeout before
 * its checkpoint (long enough for the guest to send it again, and the
 * server to see it twice). Each side's flows that it opened lately (its
 * first datagram or SYN on the flow this epoch) sit in a small ring. When
 * one side opens a flow to the same destination as a flow the other side
 * opened and this side has not, only the source port differs: the
 * checkpoint is asked for at once. Two flows with equal ports pair up
 * when both sides send on one, and nothing is asked.
 *
 * The work is one scan of a few slots per flow, side and epoch, not per
 * packet, and nothing is allocated.
 */
#include <string.h>

#include "comparer_internal.h"

/* Same guest address, destination, protocol and VLANs; any source port. */
static bool same_place(const struct colo_flow_key *a,
		       const struct colo_flow_key *b)
{
	struct colo_flow_key x = *a, y = *b;

	x.sport = y.sport = 0;
	return !memcmp(&x, &y, sizeof(x));
}

void colo_flow_opened(struct colo_comparer *c, struct colo_flow *fl, int side,
		      bool other_too)
{
	struct colo_opened *theirs = c->opened[!side], *odd = NULL;

	for (int i = 0; i < COLO_OPENED_SLOTS; i++) {
		struct colo_opened *o = &theirs[i];

		if (!o->live || o->epoch != c->epoch ||
		    !same_place(&o->key, &fl->key))
			continue;
		if (o->key.sport == fl->key.sport) {
			o->live = false; /* the other side's flow, paired */
			return;
		}
		if (!odd)
			odd = o;
	}
	if (other_too)
		return; /* both sides use this flow already */
	if (odd && !fl->diverged) {
		struct colo_divergence d = { .cause = COLO_CAUSE_SOURCE_PORT,
					     .kind = fl->is_tcp ? COLO_PKT_TCP
								: COLO_PKT_UDP,
					     .primary_byte = -1,
					     .secondary_byte = -1,
					     .other_sport = odd->key.sport };

		odd->live = false;
		colo_cmp_diverge(c, fl, &d);
		return;
	}
	struct colo_opened *mine =
		&c->opened[side][c->opened_next[side]++ % COLO_OPENED_SLOTS];
	mine->key = fl->key;
	mine->epoch = c->epoch;
	mine->live = true;
}

/* A flow reclaimed idle (the secondary's half of a query the primary
 * never sent, say) leaves no record behind: a later flow to the same
 * place would otherwise be set against one that no longer exists. */
void colo_flow_forgotten(struct colo_comparer *c, const struct colo_flow *fl)
{
	for (int side = 0; side < 2; side++)
		for (int i = 0; i < COLO_OPENED_SLOTS; i++) {
			struct colo_opened *o = &c->opened[side][i];

			if (o->live &&
			    !memcmp(&o->key, &fl->key, sizeof(o->key)))
				o->live = false;
		}
}
