/*
 * pair_msg.h - what two `colo up` processes say to each other through
 * corosync (CPG, agreed order). Four messages:
 *   STATE  every lease/4 from each host: its role and epoch; the
 *          primary's STATE is also its lease renewal (sent_ns is the
 *          sender's CLOCK_MONOTONIC, meaningful to the sender only).
 *   CLAIM  "I take the primary role at epoch E": every member applies
 *          the first claim of a higher epoch in the same order, so both
 *          agree on who won even when both claim at once.
 */
#ifndef COLO_CLUSTER_PAIR_MSG_H
#define COLO_CLUSTER_PAIR_MSG_H

#include <stddef.h>
#include <stdint.h>

#define COLO_PAIR_MSG_LEN 24

enum colo_pair_msg_type {
	COLO_MSG_STATE = 1,
	COLO_MSG_CLAIM = 2,
	COLO_MSG_SWITCH = 3,
	COLO_MSG_YIELD = 4,
};

struct colo_pair_msg {
	uint8_t type;
	uint8_t role; /* enum colo_role */
	uint64_t epoch;
	uint64_t sent_ns;
};

/* pair_msg.c APIs: */
void colo_pair_msg_encode(const struct colo_pair_msg *m,
			  uint8_t out[COLO_PAIR_MSG_LEN]);
/* 0, or -1 when buf is not one of our messages (wrong length, magic,
 * version, type or role). */
int colo_pair_msg_decode(const void *buf, size_t len, struct colo_pair_msg *m);

#endif
