/*
 * membership.h - corosync as seen by `colo up`: the CPG group of the
 * pair's `colo up` processes (who is there, messages in one agreed order
 * for every member) and votequorum (is this host quorate). Their
 * descriptors are served by the common event loop; nothing polls.
 */
#ifndef COLO_CLUSTER_MEMBERSHIP_H
#define COLO_CLUSTER_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct colo_loop;
struct colo_membership;

struct colo_membership_ops {
	/* The group after a change: node ids of every member. */
	void (*members)(void *opaque, const uint32_t *nodes, size_t n);
	/* A message, in the same order on every member, ours included. */
	void (*message)(void *opaque, uint32_t from, const void *buf,
			size_t len);
	/* votequorum's notification (may lag behind the group's view). */
	void (*quorum)(void *opaque, bool quorate);
	/* The connection to corosync is gone (corosync stopped). */
	void (*lost)(void *opaque);
};

/* membership.c APIs: */
/* Joins the CPG group "colo-NAME" and starts tracking quorum. NULL with
 * a reason in err when corosync does not answer. */
struct colo_membership *
colo_membership_open(struct colo_loop *l, const char *name,
		     const struct colo_membership_ops *ops, void *opaque,
		     char *err, size_t errlen);
uint32_t colo_membership_nodeid(const struct colo_membership *m);
/* Sends to the group in agreed order. 0, or -1 (corosync busy or gone:
 * the caller tries again at its next occasion). */
int colo_membership_send(struct colo_membership *m, const void *buf,
			 size_t len);
/* Asks corosync now (not a cached notification): 1 quorate, 0 not, -1
 * no answer. */
int colo_membership_quorate_now(struct colo_membership *m);
void colo_membership_close(struct colo_membership *m);

#endif
