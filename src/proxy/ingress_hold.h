/*
 * ingress_hold.h - client frames for a guest held back between the
 * checkpoint's cut and checkpoint-done (see ingress_hold.c).
 */
#ifndef COLO_PROXY_INGRESS_HOLD_H
#define COLO_PROXY_INGRESS_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Above this many held bytes a frame is dropped (and counted). */
#define COLO_HOLD_MAX (64u << 20)

struct colo_ingress_hold {
	bool active; /* between the cut and checkpoint-done */
	uint8_t *buf;
	size_t len, cap;
	uint64_t held, dropped;
};

/* Keeps a copy of frame (vnet_len header bytes in front); 0, or -1 when
 * it was dropped (over COLO_HOLD_MAX or out of memory). */
int colo_hold_add(struct colo_ingress_hold *h, const uint8_t *frame, size_t len,
		  size_t vnet_len);
/* Hands every held frame, in order, to fn (which may rewrite it in
 * place), empties the hold and ends it. */
void colo_hold_release(struct colo_ingress_hold *h,
		       void (*fn)(void *ctx, uint8_t *f, size_t len,
				  size_t vnet_len),
		       void *ctx);
void colo_hold_free(struct colo_ingress_hold *h);

#endif
