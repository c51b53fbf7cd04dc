/*
 * lobby.c - the seat choice of a link listener's lobby (see lobby.h).
 */
#include <string.h>

#include "lobby.h"

/* Whether unproven seat a goes before b: silent before heard, then the
 * one taken first. */
static bool gives_way_before(const struct colo_lobby_seat *a,
			     const struct colo_lobby_seat *b)
{
	if (a->heard != b->heard)
		return !a->heard;
	return a->since < b->since;
}

int colo_lobby_pick(const struct colo_lobby_seat *seats, size_t n, bool *evict)
{
	int oldest = -1;

	*evict = false;
	for (size_t i = 0; i < n; i++) {
		if (!seats[i].taken)
			return (int)i;
		if (!seats[i].proven &&
		    (oldest < 0 || gives_way_before(&seats[i], &seats[oldest])))
			oldest = (int)i;
	}
	*evict = oldest >= 0;
	return oldest;
}

void colo_lobby_take(struct colo_lobby_seat *seat, uint64_t now, bool proven)
{
	seat->taken = true;
	seat->proven = proven;
	seat->since = now;
}

void colo_lobby_leave(struct colo_lobby_seat *seat)
{
	memset(seat, 0, sizeof(*seat));
}
