/*
 * lobby.c - the seat choice of a link listener's lobby (see lobby.h).
 */
#include <string.h>

#include "lobby.h"

int colo_lobby_pick(const struct colo_lobby_seat *seats, size_t n, bool *evict)
{
	int oldest = -1;

	*evict = false;
	for (size_t i = 0; i < n; i++) {
		if (!seats[i].taken)
			return (int)i;
		if (!seats[i].proven &&
		    (oldest < 0 || seats[i].since < seats[oldest].since))
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
