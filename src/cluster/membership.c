/*
 * membership.c - CPG and votequorum on the event loop.
 *
 * Two corosync services, two descriptors: CPG says which `colo up`
 * processes are in the group and orders their messages; votequorum says
 * whether this node is quorate. Their notifications travel on separate
 * channels, so their relative order is not guaranteed: the lease logic
 * therefore asks votequorum synchronously (colo_membership_quorate_now)
 * at the moment a decision is made rather than trusting the last
 * notification.
 */
#include "membership.h"

#include <corosync/cpg.h>
#include <corosync/votequorum.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>

#include "evloop.h"
#include "log.h"

struct colo_membership {
	struct colo_loop *loop;
	const struct colo_membership_ops *ops;
	void *opaque;
	cpg_handle_t cpg;
	votequorum_handle_t vq;
	bool cpg_open, vq_open;
	struct colo_loop_fd *cpg_fd, *vq_fd;
	struct cpg_name group;
	uint32_t nodeid;
	bool lost;
};

static void on_deliver(cpg_handle_t h, const struct cpg_name *group,
		       uint32_t nodeid, uint32_t pid, void *msg, size_t len)
{
	struct colo_membership *m = NULL;

	(void)group, (void)pid;
	if (cpg_context_get(h, (void **)&m) != CS_OK || !m)
		return;
	m->ops->message(m->opaque, nodeid, msg, len);
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *group,
		       const struct cpg_address *members, size_t n,
		       const struct cpg_address *left, size_t nleft,
		       const struct cpg_address *joined, size_t njoined)
{
	struct colo_membership *m = NULL;
	uint32_t nodes[64];
	size_t k = 0;

	(void)group, (void)left, (void)nleft, (void)joined, (void)njoined;
	if (cpg_context_get(h, (void **)&m) != CS_OK || !m)
		return;
	for (size_t i = 0; i < n && k < 64; i++)
		nodes[k++] = members[i].nodeid;
	m->ops->members(m->opaque, nodes, k);
}

static void on_quorum(votequorum_handle_t h, uint64_t context, uint32_t quorate,
		      uint32_t n, votequorum_node_t nodes[])
{
	struct colo_membership *m =
		(struct colo_membership *)(uintptr_t)context;

	(void)h, (void)n, (void)nodes;
	m->ops->quorum(m->opaque, quorate != 0);
}

/* corosync went away: report once, stop watching its descriptors. */
static void gone(struct colo_membership *m)
{
	if (m->lost)
		return;
	m->lost = true;
	colo_loop_del_fd(m->cpg_fd);
	colo_loop_del_fd(m->vq_fd);
	m->cpg_fd = m->vq_fd = NULL;
	m->ops->lost(m->opaque);
}

/* A dispatch that failed for good means corosync went away. */
static void after_dispatch(struct colo_membership *m, cs_error_t r)
{
	if (r != CS_OK && r != CS_ERR_TRY_AGAIN)
		gone(m);
}

static void on_cpg_fd(void *opaque, uint32_t events)
{
	struct colo_membership *m = opaque;

	(void)events;
	after_dispatch(m, cpg_dispatch(m->cpg, CS_DISPATCH_ALL));
}

static void on_vq_fd(void *opaque, uint32_t events)
{
	struct colo_membership *m = opaque;

	(void)events;
	after_dispatch(m, votequorum_dispatch(m->vq, CS_DISPATCH_ALL));
}

static struct colo_membership *fail(struct colo_membership *m, char *err,
				    size_t errlen, const char *what,
				    cs_error_t r)
{
	snprintf(err, errlen, "corosync %s: error %d (is corosync running?)",
		 what, (int)r);
	colo_membership_close(m);
	return NULL;
}

struct colo_membership *
colo_membership_open(struct colo_loop *l, const char *name,
		     const struct colo_membership_ops *ops, void *opaque,
		     char *err, size_t errlen)
{
	static cpg_callbacks_t cpg_cb = { .cpg_deliver_fn = on_deliver,
					  .cpg_confchg_fn = on_confchg };
	static votequorum_callbacks_t vq_cb = { .votequorum_quorum_notify_fn =
							on_quorum };
	struct colo_membership *m = calloc(1, sizeof(*m));
	unsigned int nodeid;
	int fd;
	cs_error_t r;

	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->loop = l;
	m->ops = ops;
	m->opaque = opaque;
	m->group.length = (uint32_t)snprintf(
		m->group.value, sizeof(m->group.value), "colo-%s", name);
	if ((r = cpg_initialize(&m->cpg, &cpg_cb)) != CS_OK)
		return fail(m, err, errlen, "cpg_initialize", r);
	m->cpg_open = true;
	cpg_context_set(m->cpg, m);
	if ((r = cpg_local_get(m->cpg, &nodeid)) != CS_OK)
		return fail(m, err, errlen, "cpg_local_get", r);
	m->nodeid = nodeid;
	if ((r = votequorum_initialize(&m->vq, &vq_cb)) != CS_OK)
		return fail(m, err, errlen, "votequorum_initialize", r);
	m->vq_open = true;
	r = votequorum_trackstart(m->vq, (uint64_t)(uintptr_t)m,
				  CS_TRACK_CURRENT | CS_TRACK_CHANGES);
	if (r != CS_OK)
		return fail(m, err, errlen, "votequorum_trackstart", r);
	/* A corosync that has just (re)joined the cluster answers
	 * TRY_AGAIN while it synchronises the groups: a host coming back
	 * after a failure meets it; retried for up to 10 s. */
	for (int i = 0;
	     (r = cpg_join(m->cpg, &m->group)) == CS_ERR_TRY_AGAIN && i < 100;
	     i++)
		nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	if (r != CS_OK)
		return fail(m, err, errlen, "cpg_join", r);
	if ((r = cpg_fd_get(m->cpg, &fd)) != CS_OK ||
	    !(m->cpg_fd = colo_loop_add_fd(l, fd, EPOLLIN, on_cpg_fd, m)))
		return fail(m, err, errlen, "cpg_fd_get", r);
	if ((r = votequorum_fd_get(m->vq, &fd)) != CS_OK ||
	    !(m->vq_fd = colo_loop_add_fd(l, fd, EPOLLIN, on_vq_fd, m)))
		return fail(m, err, errlen, "votequorum_fd_get", r);
	return m;
}

uint32_t colo_membership_nodeid(const struct colo_membership *m)
{
	return m->nodeid;
}

int colo_membership_send(struct colo_membership *m, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };

	cs_error_t r;

	if (m->lost)
		return -1;
	r = cpg_mcast_joined(m->cpg, CPG_TYPE_AGREED, &iov, 1);
	if (r != CS_OK)
		colo_log_info("cpg_mcast_joined: error %d", (int)r);
	return r == CS_OK ? 0 : -1;
}

int colo_membership_quorate_now(struct colo_membership *m)
{
	struct votequorum_info info;

	if (m->lost || votequorum_getinfo(m->vq, m->nodeid, &info) != CS_OK)
		return -1;
	return (info.flags & VOTEQUORUM_INFO_QUORATE) ? 1 : 0;
}

void colo_membership_close(struct colo_membership *m)
{
	if (!m)
		return;
	colo_loop_del_fd(m->cpg_fd);
	colo_loop_del_fd(m->vq_fd);
	if (m->cpg_open) {
		cpg_leave(m->cpg, &m->group);
		cpg_finalize(m->cpg);
	}
	if (m->vq_open)
		votequorum_finalize(m->vq);
	free(m);
}
