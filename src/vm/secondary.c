/*
 * secondary.c - the secondary's side of the frame. Its QEMUs map the RAM
 * file copy-on-write (share=off), so whatever the secondary VM writes
 * stays in that QEMU's own memory and the file itself remains the last
 * checkpoint: nothing the secondary VM did has to be found or reverted.
 * A standby QEMU started ahead of time (same RAM file, `-incoming`) sees
 * the file as it is. For each checkpoint:
 *
 *   BEGIN -> stop the secondary VM -> STOPPED (standby's address)
 *   -> write the primary's pages into the file as they arrive (every
 *      overwritten page kept in an undo log) until PAGES_END -> RAM_READY
 *   -> the standby loads the device state -> DEVICES_SENT
 *   -> commit: blk commit (disk buffers dropped) -> LOADED -> the old VM
 *      is retired (the proxy's guest port passes to the standby) -> RESUME
 *      from the primary (its proxy restarted comparing) -> the standby
 *      runs as the new secondary VM, the next standby starts.
 *
 * Until the commit, a failure undoes the file writes and resumes the old
 * secondary VM (its own writes are in its private pages, untouched): the
 * secondary stays at its previous checkpoint.
 *
 * A link that ends without a failover (checkpoint failed, primary silent
 * or gone) is rejoined by itself, one attempt a second: the primary
 * answers a new secondary with a full first checkpoint, which replaces
 * the VM whole like any checkpoint. Only a failover ends the retries.
 */
#include <errno.h>
#include <json-c/json.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/clock.h"
#include "common/control.h"
#include "common/dial.h"
#include "common/evloop.h"
#include "common/log.h"
#include "common/sock_spec.h"
#include "qmp.h"
#include "vm.h"

/* Growable list of (page offset, page bytes). */
struct page_log {
	uint64_t *off;
	uint8_t *data;
	size_t n, cap;
};

static int page_log_add(struct page_log *p, uint64_t off, const uint8_t *src)
{
	if (p->n == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 1024;
		uint64_t *o = realloc(p->off, ncap * sizeof(*o));

		if (!o)
			return -1;
		p->off = o;
		uint8_t *d = realloc(p->data, ncap * COLO_RAM_PAGE);
		if (!d)
			return -1;
		p->data = d;
		p->cap = ncap;
	}
	p->off[p->n] = off;
	memcpy(p->data + p->n * COLO_RAM_PAGE, src, COLO_RAM_PAGE);
	p->n++;
	return 0;
}

static void page_log_free(struct page_log *p)
{
	free(p->off);
	free(p->data);
	memset(p, 0, sizeof(*p));
}

/* The undo log is emptied, not freed, between checkpoints of a usual
 * size: fresh memory would cost a page fault per page logged inside the
 * next pause. A big one (the first, full synchronization) is given
 * back. */
#define UNDO_KEEP_PAGES 16384u /* 64 MiB */

static void page_log_reset(struct page_log *p)
{
	if (p->cap > UNDO_KEEP_PAGES)
		page_log_free(p);
	p->n = 0;
}

#define ATTACH_POLL_NS (200 * COLO_NS_PER_MS)

/* Attaches to the booting standby once its QMP socket exists, so that
 * QMP set-up and migrate-incoming are not in the next checkpoint's
 * pause. A checkpoint that comes first attaches by itself. */
static void attach_fire(void *opaque)
{
	struct colo_vm *v = opaque;
	char err[256];

	if (!v->standby.pid || colo_qemu_exited(&v->standby) || v->standby.qmp)
		return;
	if (access(v->standby.sock, F_OK) < 0) {
		colo_timer_arm_in(v->attach, ATTACH_POLL_NS);
		return;
	}
	if (colo_qemu_attach(&v->standby, &v->qcfg, err, sizeof(err)) < 0) {
		colo_log_warn("standby %u: %s", v->standby.gen, err);
		colo_qemu_stop(&v->standby);
		return;
	}
	colo_log_info("standby %u ready at %s", v->standby.gen,
		      v->standby.migrate_uri);
}

/* Starts the next standby without waiting for it: it boots while the
 * pair runs. */
static int spawn_standby(struct colo_vm *v, char *err, size_t errlen)
{
	if (colo_qemu_spawn(&v->qcfg, v->next_gen++, true, &v->standby, err,
			    errlen) < 0)
		return -1;
	colo_timer_arm_in(v->attach, ATTACH_POLL_NS);
	return 0;
}

static int start_standby(struct colo_vm *v, char *err, size_t errlen)
{
	if (spawn_standby(v, err, errlen) < 0 ||
	    colo_qemu_attach(&v->standby, &v->qcfg, err, errlen) < 0)
		return -1;
	colo_log_info("standby %u ready at %s", v->standby.gen,
		      v->standby.migrate_uri);
	return 0;
}

/* Waits for the primary's message of type want for this checkpoint. */
static int expect(struct colo_vm *v, uint8_t want, struct colo_flink_msg *m,
		  uint64_t deadline, char *err, size_t errlen)
{
	return colo_flink_expect(v->link, v->seq, want, m, deadline,
				 "the primary", err, errlen);
}

/* Writes the primary's pages into the RAM file as they arrive, so that
 * the copying overlaps the primary's scan; undo gets every page first.
 * sent (or NULL) gets a bit for each page received. */
static int receive_pages(struct colo_vm *v, struct page_log *undo,
			 uint8_t *sent, uint64_t deadline, char *err,
			 size_t errlen)
{
	for (;;) {
		struct colo_flink_frame f;
		struct colo_flink_msg m;
		const uint8_t *recs;
		uint64_t seq;
		uint32_t n;
		int r = colo_flink_recv(v->link, &f, deadline);

		if (r <= 0) {
			snprintf(err, errlen, "%s",
				 r == 0 ? "RAM did not arrive in time"
					: "primary lost while sending RAM");
			return -1;
		}
		if (f.type == COLO_FLINK_PAGES) {
			if (colo_flink_parse_pages(&f, v->ram.size, &seq, &n,
						   &recs) < 0 ||
			    seq != v->seq) {
				snprintf(err, errlen, "bad PAGES frame");
				return -1;
			}
			for (uint32_t i = 0; i < n; i++) {
				const uint8_t *rec =
					recs + (size_t)i * COLO_FLINK_PAGE_REC;
				uint64_t off = colo_get_be64(rec);

				if (page_log_add(undo, off,
						 v->ram.guest + off) < 0) {
					snprintf(err, errlen, "out of memory");
					return -1;
				}
				memcpy(v->ram.guest + off, rec + 8,
				       COLO_RAM_PAGE);
				if (sent)
					sent[off / COLO_RAM_PAGE / 8] |=
						(uint8_t)(1u << (off /
								 COLO_RAM_PAGE %
								 8));
			}
			continue;
		}
		if (colo_flink_parse_msg(&f, &m) < 0 || m.seq != v->seq ||
		    f.type != COLO_FLINK_PAGES_END) {
			snprintf(err, errlen, "%s",
				 f.type == COLO_FLINK_ABORT
					 ? "primary aborted"
					 : "protocol error from the primary");
			return -1;
		}
		if (m.value != undo->n) {
			snprintf(err, errlen,
				 "RAM incomplete: %zu of %llu pages", undo->n,
				 (unsigned long long)m.value);
			return -1;
		}
		return 0;
	}
}

/* A first checkpoint (the primary forgot what we hold) sends only the
 * pages that are not zero: a fresh RAM file is. One that held an earlier
 * link's checkpoints (a rejoin) gets every other page zeroed here, in
 * the undo log like the rest. Only the file's data extents are read:
 * faulting its holes in would allocate them. */
static int zero_unsent(struct colo_vm *v, struct page_log *undo,
		       const uint8_t *sent, char *err, size_t errlen)
{
	static const uint8_t zero[COLO_RAM_PAGE];
	uint64_t npages = v->ram.size / COLO_RAM_PAGE, off = 0;

	while (off < v->ram.size) {
		off_t d = lseek(v->ram.fd, (off_t)off, SEEK_DATA), h;

		if (d < 0 && errno == ENXIO)
			break; /* a hole to the end */
		h = d < 0 ? -1 : lseek(v->ram.fd, d, SEEK_HOLE);
		if (d < 0 || h < 0) { /* cannot tell: read it all */
			d = (off_t)off;
			h = (off_t)v->ram.size;
		}
		for (uint64_t i = (uint64_t)d / COLO_RAM_PAGE;
		     i < npages && i * COLO_RAM_PAGE < (uint64_t)h; i++) {
			uint8_t *p = v->ram.guest + i * COLO_RAM_PAGE;

			if ((sent[i / 8] >> (i % 8)) & 1 ||
			    !memcmp(p, zero, COLO_RAM_PAGE))
				continue;
			if (page_log_add(undo, i * COLO_RAM_PAGE, p) < 0) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			memset(p, 0, COLO_RAM_PAGE);
		}
		off = (uint64_t)h;
	}
	return 0;
}

static void undo_ram(struct colo_vm *v, const struct page_log *undo)
{
	for (size_t i = undo->n; i-- > 0;)
		memcpy(v->ram.guest + undo->off[i],
		       undo->data + i * COLO_RAM_PAGE, COLO_RAM_PAGE);
}

static int run_checkpoint(struct colo_vm *v, uint64_t flags,
			  struct page_log *undo, char *err, size_t errlen)
{
	uint64_t deadline = colo_now_ns() + v->timeout_ms * COLO_NS_PER_MS;
	struct colo_flink_msg m = { .seq = v->seq }, ans;

	if (v->vm.pid && colo_qmp_exec(v->vm.qmp, "stop", NULL, 10000, NULL,
				       err, errlen) < 0)
		return -1;
	if (!v->standby.pid || colo_qemu_exited(&v->standby)) {
		colo_log_warn("standby gone; starting another now");
		colo_qemu_stop(&v->standby);
		if (start_standby(v, err, errlen) < 0)
			return -1;
	} else if (colo_qemu_attach(&v->standby, &v->qcfg, err, errlen) < 0) {
		return -1;
	}
	snprintf(m.text, sizeof(m.text), "%s", v->standby.migrate_uri);
	if (colo_flink_send_msg(v->link, COLO_FLINK_STOPPED, &m, deadline) <
	    0) {
		snprintf(err, errlen, "primary lost");
		return -1;
	}
	/* Our file is not known to be zero once a checkpoint was loaded. */
	if ((flags >> 8) == COLO_VM_REASON_INITIAL && v->st.checkpoints > 0) {
		uint8_t *sent = calloc(v->ram.size / COLO_RAM_PAGE / 8 + 1, 1);
		int r;

		if (!sent) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		r = receive_pages(v, undo, sent, deadline, err, errlen);
		if (r == 0)
			r = zero_unsent(v, undo, sent, err, errlen);
		free(sent);
		if (r < 0)
			return -1;
	} else if (receive_pages(v, undo, NULL, deadline, err, errlen) < 0) {
		return -1;
	}
	m.text[0] = '\0';
	m.value = 0;
	if (colo_flink_send_msg(v->link, COLO_FLINK_RAM_READY, &m, deadline) <
		    0 ||
	    expect(v, COLO_FLINK_DEVICES_SENT, &ans, deadline, err, errlen) <
		    0 ||
	    colo_qemu_wait_migration(&v->standby, v->timeout_ms, err, errlen) <
		    0)
		return -1;
	if (flags & COLO_FLINK_F_DUMP) {
		char path[512];

		snprintf(path, sizeof(path), "%s/ckpt-%llu.ram", v->dump_dir,
			 (unsigned long long)v->seq);
		if (colo_qemu_dump(&v->standby, v->ram.size, path, err,
				   errlen) < 0)
			return -1;
	}
	return 0;
}

static void rejoin_schedule(struct colo_vm *v, uint64_t delay_ms);

/* The mode stays, the reason says what happened since. */
static void set_reason(struct colo_vm *v, const char *reason)
{
	char mode[sizeof(v->mode)];

	snprintf(mode, sizeof(mode), "%s", v->mode);
	colo_vm_set_mode(v, mode, reason);
}

/* The link ended without a failover: the VM of the last checkpoint (if
 * any) runs on unprotected, and the primary is asked again later. */
static void lost_primary(struct colo_vm *v, const char *reason)
{
	colo_vm_blk_abort(v); /* it may have prepared one */
	colo_vm_set_mode(v, v->vm.pid ? "primary-lost" : "no-vm", reason);
	colo_vm_drop_link(v);
	if (!v->no_rejoin)
		colo_log_info("rejoin: asking the primary again every %u ms",
			      COLO_VM_REJOIN_MS);
	rejoin_schedule(v, COLO_VM_REJOIN_MS);
}

static void checkpoint(struct colo_vm *v, uint64_t flags)
{
	static struct page_log undo; /* one checkpoint at a time */
	uint64_t t0 = colo_now_ns();
	struct colo_flink_msg m = { .seq = v->seq };
	char err[256] = "checkpoint failed", e2[256] = "";
	struct colo_qemu old;

	if ((flags & COLO_FLINK_F_DUMP) && !v->dump_dir)
		flags &= ~(uint64_t)COLO_FLINK_F_DUMP;
	/* blk_hook.c: the disk follows once the new state is loaded, before
	 * LOADED lets the primary run (and write) again. */
	if (run_checkpoint(v, flags, &undo, err, sizeof(err)) < 0 ||
	    colo_vm_blk_commit(v, err, sizeof(err)) < 0) {
		/* Back to the previous checkpoint, whole. */
		colo_vm_blk_abort(v);
		undo_ram(v, &undo);
		colo_qemu_stop(&v->standby);
		if (v->vm.pid &&
		    colo_qemu_cont(&v->vm, 5000, e2, sizeof(e2)) < 0)
			colo_log_warn("secondary VM did not resume: %s", e2);
		colo_vm_proxy_done(v);
		colo_vm_proxy_resume(v); /* the old VM gets the held ingress */
		snprintf(m.text, sizeof(m.text), "%s", err);
		colo_flink_send_msg(v->link, COLO_FLINK_ABORT, &m,
				    colo_now_ns() + 100 * COLO_NS_PER_MS);
		v->st.failures++;
		colo_log_warn("checkpoint %llu aborted: %s",
			      (unsigned long long)v->seq, err);
		if (spawn_standby(v, e2, sizeof(e2)) < 0)
			colo_log_warn("no standby: %s", e2);
		lost_primary(v, err);
		goto out;
	}
	/* Committed: the new VM runs from here whatever happens next. */
	if (colo_flink_send_msg(v->link, COLO_FLINK_LOADED, &m,
				colo_now_ns() +
					v->timeout_ms * COLO_NS_PER_MS) < 0)
		colo_log_warn("primary lost after checkpoint %llu was loaded",
			      (unsigned long long)v->seq);
	old = v->vm;
	v->vm = v->standby;
	memset(&v->standby, 0, sizeof(v->standby));
	/* The proxy first (rewriter offsets 0 before the new VM sends; the
	 * frames after the cut go to the next peer of its guest port, not
	 * to the old VM), then the old VM: closing its NIC socket is what
	 * moves the port to the standby waiting in its listen queue, so the
	 * new VM's NIC is attached by the time it runs. */
	if (old.pid > 0)
		colo_vm_proxy_retire(v);
	else
		colo_vm_proxy_done(v); /* the first VM: nobody to retire */
	colo_qemu_stop(&old);
	/* Committed: without RESUME (primary lost) the new VM runs anyway. */
	if (expect(v, COLO_FLINK_RESUME, &m,
		   colo_now_ns() + v->timeout_ms * COLO_NS_PER_MS, err,
		   sizeof(err)) < 0)
		colo_log_warn("no RESUME after checkpoint %llu: %s",
			      (unsigned long long)v->seq, err);
	if (colo_qemu_cont(&v->vm, 5000, err, sizeof(err)) < 0)
		colo_log_warn("new secondary VM did not start: %s", err);
	colo_vm_proxy_resume(v); /* the ingress after the cut, to it */
	unlink(old.log);	 /* its console is the new VM's history now */
	uint64_t why = flags >> 8;
	colo_vm_record(v,
		       why < COLO_VM_REASON_MAX ? (enum colo_vm_reason)why
						: COLO_VM_REASON_COMMAND,
		       colo_now_ns() - t0, undo.n);
	colo_vm_set_mode(v, "protected", "");
	if (spawn_standby(v, err, sizeof(err)) < 0)
		colo_log_warn("no standby for the next checkpoint: %s", err);
out:
	page_log_reset(&undo);
}

static void link_readable(void *opaque, uint32_t events)
{
	struct colo_vm *v = opaque;
	struct colo_flink_frame f;
	struct colo_flink_msg m;

	(void)events;
	do {
		int r = colo_flink_recv(v->link, &f, colo_now_ns());

		if (r == 0)
			return;
		if (r > 0 && f.type == COLO_FLINK_BEGIN &&
		    colo_flink_parse_msg(&f, &m) == 0 && m.seq > v->seq) {
			v->seq = m.seq;
			checkpoint(v, m.value);
			continue;
		}
		if (r > 0 && f.type == COLO_FLINK_ABORT &&
		    colo_flink_parse_msg(&f, &m) == 0)
			colo_log_warn("primary: %s", m.text);
		lost_primary(v, r < 0 ? "primary lost"
				      : "unexpected frame from the primary");
	} while (v->link && colo_flink_pending(v->link));
}

/* The frame link's idle timeout (frame_link_watch.c) between
 * checkpoints: the primary stopped sending heartbeats. */
static void primary_silent(void *opaque, const char *why)
{
	struct colo_vm *v = opaque;
	char reason[128];

	snprintf(reason, sizeof(reason), "primary lost: %s", why);
	lost_primary(v, reason);
}

/* HELLO both ways (blocking, at start). A pair that cannot work (the
 * primary's ABORT, or its identity differs from ours) returns -2,
 * anything else -1. */
static int handshake(struct colo_vm *v, uint64_t deadline, char *err,
		     size_t errlen)
{
	struct colo_flink_frame f;

	if (colo_vm_hello_send(v, v->link, deadline, err, errlen) < 0)
		return -1;
	return colo_vm_hello_verdict(v, colo_flink_recv(v->link, &f, deadline),
				     &f, err, errlen);
}

/* With credentials, TLS comes before any frame: the primary must prove
 * it is the --tls-peer host before we say HELLO or take any order. */
static int start_tls(struct colo_vm *v, uint64_t deadline, char *err,
		     size_t errlen)
{
	char e[200];

	if (!v->creds)
		return 0;
	if (colo_flink_tls_begin(v->link, v->creds, false, v->tls_peer, e,
				 sizeof(e)) < 0 ||
	    colo_flink_tls_handshake(v->link, deadline, e, sizeof(e)) < 0) {
		snprintf(err, errlen, "frame link to the primary: %s", e);
		return -1;
	}
	colo_log_info("frame link: TLS peer verified as %s", v->tls_peer);
	return 0;
}

/* Where our standbys listen must obey the same rule as the link: the
 * device state crosses it. */
static int migrate_host_allowed(struct colo_vm *v, char *err, size_t errlen)
{
	const char *h = v->qcfg.migrate_host;
	struct colo_sock_spec spec;
	struct colo_sock_addr a;
	char text[300];

	snprintf(text, sizeof(text), strchr(h, ':') ? "tcp:[%s]:1" : "tcp:%s:1",
		 h);
	if (colo_sock_spec_parse(text, &spec, err, errlen) < 0 ||
	    colo_sock_resolve(&spec, &a, err, errlen) < 0)
		return -1;
	return colo_vm_addr_allowed(v, &a, "--migrate-host", err, errlen);
}

/* --link-connect, resolved and checked once: a rejoin tries every second
 * for hours, and a name lookup (getaddrinfo) would block the loop on each
 * try. -1 with err for what no retry can fix. */
static int resolve_primary(struct colo_vm *v, char *err, size_t errlen)
{
	struct colo_sock_spec spec;
	char text[300];

	if (v->primary_addr_ok)
		return 0;
	snprintf(text, sizeof(text), "tcp:%s", v->link_connect);
	if (colo_sock_spec_parse(text, &spec, err, errlen) < 0 ||
	    colo_sock_resolve(&spec, &v->primary_addr, err, errlen) < 0 ||
	    colo_vm_addr_allowed(v, &v->primary_addr, "--link-connect", err,
				 errlen) < 0)
		return -1;
	v->primary_addr_ok = true;
	return 0;
}

/* The frame link on a connected socket; -1 with err (out of memory). */
static int link_on(struct colo_vm *v, int fd, char *err, size_t errlen)
{
	v->link = colo_flink_new(fd);
	if (!v->link) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* One connection attempt at start (before the loop runs; the connect
 * waits wait_ms at most): 1 with v->link set, 0 not reachable (errno), -1
 * with err for what no retry can fix. */
static int dial_primary(struct colo_vm *v, int wait_ms, char *err,
			size_t errlen)
{
	bool busy;
	int fd;

	if (resolve_primary(v, err, errlen) < 0)
		return -1;
	fd = colo_sock_connect(&v->primary_addr, &busy);
	if (fd >= 0 && busy) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int e = ETIMEDOUT;
		socklen_t el = sizeof(e);

		if (poll(&p, 1, wait_ms) == 1)
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
		if (e) {
			close(fd);
			errno = e;
			return 0;
		}
	}
	if (fd < 0)
		return 0;
	return link_on(v, fd, err, errlen) < 0 ? -1 : 1;
}

/* Connects to the primary, retrying while it is not listening yet. */
static int connect_primary(struct colo_vm *v, char *err, size_t errlen)
{
	uint64_t deadline = colo_now_ns() + 30 * COLO_NS_PER_S;

	for (;;) {
		int r = dial_primary(v, 1000, err, errlen);

		if (r < 0)
			return -1;
		if (r > 0)
			return start_tls(v,
					 colo_now_ns() +
						 v->timeout_ms * COLO_NS_PER_MS,
					 err, errlen);
		if (colo_now_ns() > deadline) {
			snprintf(err, errlen, "connect %s: %s", v->link_connect,
				 strerror(errno));
			return -1;
		}
		usleep(100000);
	}
}

/* The link is up and proven: frames from the primary are served by the
 * loop from here. */
static void link_up(struct colo_vm *v)
{
	v->link_h = colo_loop_add_fd(v->loop, colo_flink_fd(v->link), EPOLLIN,
				     link_readable, v);
	colo_flink_watch(v->link, v->loop, COLO_VM_IDLE_MS(v), primary_silent,
			 v);
}

static void rejoin_schedule(struct colo_vm *v, uint64_t delay_ms)
{
	if (!v->no_rejoin && v->rejoin && !v->link &&
	    strcmp(v->mode, "failover"))
		colo_timer_arm_in(v->rejoin, delay_ms * COLO_NS_PER_MS);
}

/* A rejoin try's step bound: COLO_VM_REJOIN_STEP_MS (not the
 * checkpoint's --timeout). Every step (connect, TLS, HELLO) runs on the
 * loop, so a failover asked meanwhile is served at once; the bound only
 * says when a silent primary host is given up. */
static uint64_t rejoin_step_ns(const struct colo_vm *v)
{
	return (v->timeout_ms < COLO_VM_REJOIN_STEP_MS
			? v->timeout_ms
			: COLO_VM_REJOIN_STEP_MS) *
	       COLO_NS_PER_MS;
}

/* A rejoin try's TLS and HELLO steps ended (link_steps.c). A primary
 * that refuses the pair (its ABORT, or its HELLO differs from ours:
 * machine type, QEMU version...) is asked again only every
 * COLO_VM_REJOIN_REFUSED_MS: it may be restarted fixed. */
static void rejoin_proven(struct colo_vm *v, struct colo_flink *link, int r,
			  const char *err)
{
	v->rejoin_steps = NULL;
	if (r < 0) {
		bool refused = r == -2;

		colo_log_warn("rejoin: %s", err);
		if (refused) {
			char reason[300];

			snprintf(reason, sizeof(reason),
				 "rejoin refused (next try in %u s): %s",
				 COLO_VM_REJOIN_REFUSED_MS / 1000, err);
			set_reason(v, reason);
		}
		rejoin_schedule(v, refused ? COLO_VM_REJOIN_REFUSED_MS
					   : COLO_VM_REJOIN_MS);
		return;
	}
	/* A new link: its checkpoints count from the primary's next one. */
	v->link = link;
	v->seq = 0;
	v->st.rejoins++;
	link_up(v);
	set_reason(v, "rejoined the primary: waiting for the full first "
		      "checkpoint");
	colo_log_info("rejoined the primary (attempt %llu)",
		      (unsigned long long)v->rejoin_tries);
	/* Frames read with the primary's HELLO (its BEGIN may follow at
	 * once) show on no fd: served now, not at the next heartbeat. */
	if (colo_flink_pending(v->link))
		link_readable(v, EPOLLIN);
}

/* A rejoin try's connect ended (dial.c): its TLS and HELLO follow on
 * the loop. */
static void rejoin_dialed(void *opaque, int fd, int e)
{
	struct colo_vm *v = opaque;
	char err[256];

	v->rejoin_dial = NULL;
	if (fd < 0) {
		if (v->rejoin_tries % 30 == 1) /* a line every 30 tries */
			colo_log_info(
				"rejoin: primary not reachable (try %llu): "
				"%s",
				(unsigned long long)v->rejoin_tries,
				strerror(e));
		rejoin_schedule(v, COLO_VM_REJOIN_MS);
		return;
	}
	v->rejoin_steps = colo_vm_steps_start(v, fd, rejoin_step_ns(v),
					      rejoin_proven, err, sizeof(err));
	if (!v->rejoin_steps) {
		colo_log_warn("rejoin: %s", err);
		rejoin_schedule(v, COLO_VM_REJOIN_MS);
	}
}

/* One rejoin attempt, from the loop: the connect runs on the loop
 * (dial.c), so the control socket (a failover) and the timers are served
 * while a SYN waits for a primary host that drops it. */
static void rejoin_fire(void *opaque)
{
	struct colo_vm *v = opaque;

	if (v->link || v->rejoin_dial || v->rejoin_steps ||
	    !strcmp(v->mode, "failover"))
		return;
	v->rejoin_tries++;
	v->rejoin_dial = colo_dial_start(v->loop, &v->primary_addr,
					 rejoin_step_ns(v), rejoin_dialed, v);
	if (!v->rejoin_dial)
		rejoin_schedule(v, COLO_VM_REJOIN_MS);
}

void colo_vm_rejoin_stop(struct colo_vm *v)
{
	if (v->rejoin) /* a primary daemon has none */
		colo_timer_disarm(v->rejoin);
	colo_dial_cancel(v->rejoin_dial);
	v->rejoin_dial = NULL;
	colo_vm_steps_cancel(v->rejoin_steps);
	v->rejoin_steps = NULL;
}

int colo_vm_secondary_start(struct colo_vm *v, char *err, size_t errlen)
{
	static char host[INET6_ADDRSTRLEN];

	v->attach = colo_timer_new(v->loop, attach_fire, v);
	v->rejoin = colo_timer_new(v->loop, rejoin_fire, v);
	colo_vm_blk_abort(v); /* left by an earlier secondary daemon */
	v->qcfg.private_ram = true;

	if (connect_primary(v, err, errlen) < 0)
		return -1;
	if (!v->qcfg.migrate_host) {
		/* Where the primary reached us, it reaches our standbys. */
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockname(colo_flink_fd(v->link), (struct sockaddr *)&ss,
				&sl) < 0 ||
		    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host),
				NULL, 0, NI_NUMERICHOST) != 0) {
			snprintf(err, errlen, "cannot name the link's address");
			return -1;
		}
		v->qcfg.migrate_host = host;
	}
	if (migrate_host_allowed(v, err, errlen) < 0)
		return -1;
	if (start_standby(v, err, errlen) < 0 ||
	    colo_qemu_identity(&v->standby, v->qemu_version,
			       sizeof(v->qemu_version), v->machine,
			       sizeof(v->machine), err, errlen) < 0 ||
	    handshake(v, colo_now_ns() + v->timeout_ms * COLO_NS_PER_MS, err,
		      errlen) < 0)
		return -1;
	link_up(v);
	colo_vm_set_mode(v, "no-vm", "waiting for the first checkpoint");
	colo_log_info("connected to the primary (QEMU %s, %s)%s",
		      v->qemu_version, v->machine, v->creds ? " over TLS" : "");
	/* The primary's BEGIN may have come in the same read as its HELLO:
	 * it shows on no fd (as after a rejoin). */
	if (colo_flink_pending(v->link))
		link_readable(v, EPOLLIN);
	return 0;
}

int colo_vm_secondary_failover(struct colo_vm *v, char *err, size_t errlen)
{
	if (!v->vm.pid) {
		snprintf(err, errlen, "no secondary VM yet (no checkpoint)");
		return -1;
	}
	/* The disk first: if blk cannot fold, nothing changed here and the
	 * command may be retried. */
	if (colo_vm_blk_failover(v, err, errlen) < 0)
		return -1;
	if (v->link) {
		struct colo_flink_msg m = { .seq = v->seq };

		snprintf(m.text, sizeof(m.text), "secondary failed over");
		colo_flink_send_msg(v->link, COLO_FLINK_ABORT, &m,
				    colo_now_ns() + 100 * COLO_NS_PER_MS);
		colo_vm_drop_link(v);
	}
	colo_vm_rejoin_stop(v);
	colo_qemu_stop(&v->standby);
	colo_vm_set_mode(v, "failover", "the secondary VM runs alone");
	colo_log_info("failover: secondary VM %u runs alone", v->vm.gen);
	return 0;
}
