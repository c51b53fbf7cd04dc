/*
 * dial.h - one non-blocking connect on the event loop, bounded by a
 * deadline. A daemon that connects from its loop (colo vm's rejoin, the
 * supervisor's questions to its daemons) must go on serving its control
 * socket and its timers while a SYN waits for a host that may drop it.
 */
#ifndef COLO_DIAL_H
#define COLO_DIAL_H

#include <stdint.h>

#include "sock_spec.h"

struct colo_loop;
struct colo_dial;

/* The outcome, once: a connected non-blocking socket (fd >= 0, err 0,
 * now the callee's) or fd -1 and the reason (ETIMEDOUT at the deadline).
 * The dial is already freed when this runs. */
typedef void (*colo_dial_fn)(void *opaque, int fd, int err);

/* dial.c APIs: */
/* Starts connecting to a; fn is called from the loop, never from inside
 * this call, even when the answer is immediate. NULL when out of memory
 * (nothing is called then). */
struct colo_dial *colo_dial_start(struct colo_loop *l,
				  const struct colo_sock_addr *a,
				  uint64_t timeout_ns, colo_dial_fn fn,
				  void *opaque);
/* Gives up a dial in flight: its socket is closed, fn is not called.
 * NULL is fine. */
void colo_dial_cancel(struct colo_dial *d);

#endif
