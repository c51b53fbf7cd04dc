/*
 * pair_msg.c - the CPG message codec: a fixed 24-byte frame, big-endian,
 * magic "CLUP", version 1. Fixed size keeps the check to one length test.
 */
#include "pair_msg.h"

#include <string.h>

#include "byteorder.h"
#include "daemons.h"

void colo_pair_msg_encode(const struct colo_pair_msg *m,
			  uint8_t out[COLO_PAIR_MSG_LEN])
{
	memcpy(out, "CLUP", 4);
	out[4] = 1;
	out[5] = m->type;
	out[6] = m->role;
	out[7] = 0;
	colo_put_be64(out + 8, m->epoch);
	colo_put_be64(out + 16, m->sent_ns);
}

int colo_pair_msg_decode(const void *buf, size_t len, struct colo_pair_msg *m)
{
	const uint8_t *p = buf;

	if (len != COLO_PAIR_MSG_LEN || memcmp(p, "CLUP", 4) || p[4] != 1)
		return -1;
	if (p[5] < COLO_MSG_STATE || p[5] > COLO_MSG_YIELD)
		return -1;
	if (p[6] > COLO_ROLE_SECONDARY)
		return -1;
	m->type = p[5];
	m->role = p[6];
	m->epoch = colo_get_be64(p + 8);
	m->sent_ns = colo_get_be64(p + 16);
	return 0;
}
