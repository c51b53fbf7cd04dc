/*
 * primary.c - the primary's side of the frame: it owns the guest that
 * serves, accepts the secondary's frame link, and runs each checkpoint:
 *
 *   stop VM -> blk prepare -> BEGIN -> pages that changed since the last
 * checkpoint
 *   -> (secondary: RAM_READY) -> device state by QEMU migration into the
 *   secondary's standby (x-ignore-shared) -> DEVICES_SENT
 *   -> (secondary: LOADED) -> proxy checkpoint-done -> RESUME -> cont VM
 *
 * The guest resumes only once the secondary has committed the checkpoint,
 * so whichever side survives a failure holds a whole checkpoint. Any
 * failure leaves the primary serving alone, degraded, with the reason.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/clock.h"
#include "common/control.h"
#include "common/evloop.h"
#include "common/log.h"
#include "common/sock_spec.h"
#include "qmp.h"
#include "vm.h"

static void link_readable(void *opaque, uint32_t events)
{
	struct colo_vm *v = opaque;
	struct colo_flink_frame f;
	struct colo_flink_msg m;
	int r;

	(void)events;
	/* Between checkpoints the secondary only speaks to say it is going
	 * away (failover, abort). */
	r = colo_flink_recv(v->link, &f, colo_now_ns());
	if (r == 0)
		return;
	if (r > 0 && f.type == COLO_FLINK_ABORT &&
	    colo_flink_parse_msg(&f, &m) == 0)
		colo_vm_set_mode(v, "degraded", m.text);
	else
		colo_vm_set_mode(v, "degraded",
				 r < 0 ? "secondary lost"
				       : "unexpected frame from the secondary");
	colo_vm_drop_link(v);
}

/* The frame link's idle timeout (frame_link_watch.c) between
 * checkpoints: the secondary stopped answering heartbeats. */
static void secondary_silent(void *opaque, const char *why)
{
	struct colo_vm *v = opaque;
	char reason[128];

	snprintf(reason, sizeof(reason), "secondary lost: %s", why);
	colo_vm_set_mode(v, "degraded", reason);
	colo_vm_drop_link(v);
}

/* The rest of the handshake with a proven secondary (peer_accept.c): our
 * HELLO back, then versions, QEMU and machine type, RAM size. */
static int handshake(struct colo_vm *v, const struct colo_flink_hello *peer,
		     char *err, size_t errlen)
{
	uint64_t deadline = colo_now_ns() + v->timeout_ms * COLO_NS_PER_MS;
	uint8_t buf[COLO_FLINK_HDR_LEN + COLO_FLINK_HELLO_LEN];
	struct colo_flink_hello mine;
	size_t n;

	colo_vm_hello(v, &mine);
	n = colo_flink_encode_hello(buf, &mine);
	if (colo_flink_send(v->link, COLO_FLINK_HELLO, buf + COLO_FLINK_HDR_LEN,
			    (uint32_t)(n - COLO_FLINK_HDR_LEN), deadline) < 0) {
		snprintf(err, errlen, "link lost during the handshake");
		return -1;
	}
	return colo_vm_check_peer(v, peer, err, errlen);
}

void colo_vm_primary_joined(struct colo_vm *v, struct colo_flink *link,
			    const struct colo_flink_hello *peer)
{
	char err[256];

	v->link = link;
	if (handshake(v, peer, err, sizeof(err)) < 0) {
		struct colo_flink_msg m = { 0 };

		snprintf(m.text, sizeof(m.text), "%s", err);
		colo_flink_send_msg(v->link, COLO_FLINK_ABORT, &m,
				    colo_now_ns() + COLO_NS_PER_S);
		colo_log_warn("secondary refused: %s", err);
		colo_vm_set_mode(v, "degraded", err);
		colo_vm_drop_link(v);
		return;
	}
	v->link_h = colo_loop_add_fd(v->loop, colo_flink_fd(link), EPOLLIN,
				     link_readable, v);
	colo_flink_watch(link, v->loop, COLO_VM_IDLE_MS(v), secondary_silent,
			 v);
	colo_ram_forget(&v->ram);
	colo_log_info("secondary connected%s; first checkpoint (full sync)%s",
		      colo_flink_secure(link) ? " (TLS)" : "",
		      v->blk_ctl ? " once blk is protected" : "");
	colo_vm_disk_wait(v); /* disk_wait.c: then colo_vm_primary_first */
}

void colo_vm_primary_first(struct colo_vm *v)
{
	char err[256];

	if (!v->link)
		return;
	if (colo_vm_primary_checkpoint(v, COLO_VM_REASON_INITIAL, false, NULL,
				       err, sizeof(err)) < 0) {
		colo_log_warn("initial checkpoint: %s", err);
		/* The full sync must be the checkpoint marked initial: only
		 * then does a rejoining secondary clear the pages it does not
		 * get (secondary.c). A later one would send the same pages
		 * under another reason, so the link is dropped instead and
		 * the secondary joins again. */
		if (v->link) {
			colo_vm_set_mode(v, "degraded", err);
			colo_vm_drop_link(v);
		}
	}
}

bool colo_vm_primary_ready(const struct colo_vm *v)
{
	return v->link && !v->disk_waiting;
}

static void periodic_fire(void *opaque)
{
	struct colo_vm *v = opaque;
	char err[256];

	if (colo_vm_primary_ready(v) &&
	    colo_vm_primary_checkpoint(v, COLO_VM_REASON_PERIODIC, false, NULL,
				       err, sizeof(err)) < 0)
		colo_log_warn("periodic checkpoint: %s", err);
	colo_timer_arm_in(v->periodic, v->interval_ns);
}

static void deferred_fire(void *opaque)
{
	struct colo_vm *v = opaque;
	char err[256];

	if (colo_vm_primary_ready(v) &&
	    colo_vm_primary_checkpoint(v, v->deferred_reason, v->deferred_dump,
				       NULL, err, sizeof(err)) < 0)
		colo_log_warn("deferred checkpoint: %s", err);
}

int colo_vm_primary_start(struct colo_vm *v, const char *listen, char *err,
			  size_t errlen)
{
	struct colo_sock_spec spec;
	struct colo_sock_addr a;
	char spec_text[300];

	snprintf(spec_text, sizeof(spec_text), "tcp-listen:%s", listen);
	if (colo_sock_spec_parse(spec_text, &spec, err, errlen) < 0 ||
	    colo_sock_resolve(&spec, &a, err, errlen) < 0 ||
	    colo_vm_addr_allowed(v, &a, "--link-listen", err, errlen) < 0)
		return -1;
	v->listen_fd = colo_sock_listen(&a);
	if (v->listen_fd < 0) {
		snprintf(err, errlen, "listen %s: %s", listen, strerror(errno));
		return -1;
	}
	if ((v->promote_from ? colo_vm_promote_in(v, err, errlen)
			     : colo_qemu_start(&v->qcfg, v->next_gen++, false,
					       &v->vm, err, errlen)) < 0 ||
	    colo_qemu_identity(&v->vm, v->qemu_version, sizeof(v->qemu_version),
			       v->machine, sizeof(v->machine), err, errlen) < 0)
		return -1;
	if (colo_vm_lobby_start(v, err, errlen) < 0)
		return -1;
	v->periodic = colo_timer_new(v->loop, periodic_fire, v);
	v->deferred = colo_timer_new(v->loop, deferred_fire, v);
	if (v->interval_ns)
		colo_timer_arm_in(v->periodic, v->interval_ns);
	colo_vm_set_mode(v, "unprotected", "waiting for the secondary");
	colo_log_info("primary VM running (QEMU %s, %s); frame link on %s%s",
		      v->qemu_version, v->machine, listen,
		      v->creds ? " (TLS)" : "");
	return 0;
}

/* Sends every page that differs from the last checkpoint as the scan
 * finds it, straight from guest RAM (the VM is stopped), and updates the
 * cache behind it. Returns the page count or -1. */
static long send_pages(struct colo_vm *v, uint64_t deadline)
{
	uint32_t pages[COLO_FLINK_PAGES_MAX], n;
	uint8_t head[12], offs[COLO_FLINK_PAGES_MAX][8];
	struct iovec iov[COLO_FLINK_IOV_MAX];
	struct colo_ram_scan *s = colo_ram_scan_start(&v->ram, v->scan_threads);
	long count = 0;

	if (!s)
		return -1;
	colo_put_be64(head, v->seq);
	iov[0] = (struct iovec){ .iov_base = head, .iov_len = sizeof(head) };
	while ((n = colo_ram_scan_next(s, pages, COLO_FLINK_PAGES_MAX))) {
		colo_put_be32(head + 8, n);
		for (uint32_t i = 0; i < n; i++) {
			uint64_t off = (uint64_t)pages[i] * COLO_RAM_PAGE;

			colo_put_be64(offs[i], off);
			iov[1 + 2 * i] = (struct iovec){ offs[i], 8 };
			iov[2 + 2 * i] = (struct iovec){ v->ram.guest + off,
							 COLO_RAM_PAGE };
		}
		if (colo_flink_sendv(v->link, COLO_FLINK_PAGES, iov,
				     (int)(1 + 2 * n), deadline) < 0) {
			colo_ram_scan_end(s);
			return -1;
		}
		for (uint32_t i = 0; i < n; i++) {
			size_t off = (size_t)pages[i] * COLO_RAM_PAGE;

			memcpy(v->ram.cache + off, v->ram.guest + off,
			       COLO_RAM_PAGE);
		}
		count += n;
	}
	colo_ram_scan_end(s);
	return count;
}

/* Waits for the secondary's message of type want for this checkpoint. */
static int expect(struct colo_vm *v, uint8_t want, struct colo_flink_msg *m,
		  uint64_t deadline, char *err, size_t errlen)
{
	return colo_flink_expect(v->link, v->seq, want, m, deadline,
				 "the secondary", err, errlen);
}

static int migrate(struct colo_vm *v, const char *uri, char *err, size_t errlen)
{
	struct json_object *args = json_object_new_object();

	json_object_object_add(args, "uri", json_object_new_string(uri));
	if (colo_qmp_exec(v->vm.qmp, "migrate", args, 10000, NULL, err,
			  errlen) < 0)
		return -1;
	return colo_qemu_wait_migration(&v->vm, v->timeout_ms, err, errlen);
}

/* Where a checkpoint's pause goes, for the status and the benchmark. */
enum phase { PH_STOP, PH_RAM, PH_READY, PH_DEVICES, PH_LOADED, PH_MAX };
static const char *const phase_names[PH_MAX] = { "stop", "ram_sent",
						 "ram_ready", "devices",
						 "loaded" };

static int run_checkpoint(struct colo_vm *v, enum colo_vm_reason why, bool dump,
			  uint64_t *pages, uint64_t *ph, bool *migrating,
			  char *err, size_t errlen)
{
	uint64_t deadline = colo_now_ns() + v->timeout_ms * COLO_NS_PER_MS;
	struct colo_flink_msg m = { .seq = v->seq }, ans;
	char uri[COLO_FLINK_TEXT_MAX + 1];
	long n;

	m.value = (dump ? COLO_FLINK_F_DUMP : 0) | (uint64_t)why << 8;
	if (colo_flink_send_msg(v->link, COLO_FLINK_BEGIN, &m, deadline) < 0) {
		snprintf(err, errlen, "secondary lost");
		return -1;
	}
	n = send_pages(v, deadline);
	if (n < 0) {
		snprintf(err, errlen, "secondary lost while sending RAM");
		return -1;
	}
	*pages = (uint64_t)n;
	m.value = (uint64_t)n;
	if (colo_flink_send_msg(v->link, COLO_FLINK_PAGES_END, &m, deadline) <
		    0 ||
	    expect(v, COLO_FLINK_STOPPED, &ans, deadline, err, errlen) < 0)
		return -1;
	ph[PH_RAM] = colo_now_ns();
	snprintf(uri, sizeof(uri), "%s", ans.text);
	if (expect(v, COLO_FLINK_RAM_READY, &ans, deadline, err, errlen) < 0)
		return -1;
	ph[PH_READY] = colo_now_ns();
	*migrating = true;
	if (migrate(v, uri, err, errlen) < 0)
		return -1;
	*migrating = false;
	ph[PH_DEVICES] = colo_now_ns();
	if (dump) {
		char path[512];

		snprintf(path, sizeof(path), "%s/ckpt-%llu.ram", v->dump_dir,
			 (unsigned long long)v->seq);
		if (colo_ram_dump(&v->ram, path, err, errlen) < 0)
			return -1;
	}
	m.value = 0;
	if (colo_flink_send_msg(v->link, COLO_FLINK_DEVICES_SENT, &m,
				deadline) < 0) {
		snprintf(err, errlen, "secondary lost");
		return -1;
	}
	if (expect(v, COLO_FLINK_LOADED, &ans, deadline, err, errlen) < 0)
		return -1;
	ph[PH_LOADED] = colo_now_ns();
	return 0;
}

int colo_vm_primary_checkpoint(struct colo_vm *v, enum colo_vm_reason why,
			       bool dump, struct json_object *reply, char *err,
			       size_t errlen)
{
	uint64_t t0 = colo_now_ns(), pages = 0, pause, ph[PH_MAX] = { 0 };
	bool migrating = false;
	char why_failed[256];

	if (!v->link) {
		snprintf(err, errlen, "no secondary (%s)", v->reason);
		return -1;
	}
	if (v->disk_waiting) {
		snprintf(err, errlen, "not yet: %s", v->reason);
		return -1;
	}
	if (dump && !v->dump_dir) {
		snprintf(err, errlen, "dump needs --dump-dir");
		return -1;
	}
	if (why != COLO_VM_REASON_INITIAL && v->last_end_ns &&
	    t0 < v->last_end_ns + v->min_interval_ns) {
		/* A guest that diverges all the time still gets run time. */
		v->st.deferred++;
		/* Requests that come while one waits join it; a command
		 * outranks a periodic tick in the statistics. */
		if (!colo_timer_armed(v->deferred)) {
			v->deferred_reason = why;
			v->deferred_dump = dump;
			colo_timer_arm_at(v->deferred,
					  v->last_end_ns + v->min_interval_ns);
		} else {
			if (why == COLO_VM_REASON_COMMAND)
				v->deferred_reason = why;
			v->deferred_dump |= dump;
		}
		if (reply)
			json_object_object_add(reply, "deferred",
					       json_object_new_boolean(true));
		return 0;
	}
	colo_timer_disarm(v->deferred);
	v->seq++;
	colo_vm_proxy_cut(v);
	if (colo_qmp_exec(v->vm.qmp, "stop", NULL, 10000, NULL, err, errlen) <
	    0) {
		colo_vm_proxy_done(v); /* ends the cut */
		colo_vm_proxy_resume(v);
		return -1; /* the VM still runs; nothing was sent */
	}
	ph[PH_STOP] = colo_now_ns();
	/* blk_hook.c: the disk's part of the checkpoint, held on the
	 * secondary from here until it commits. */
	if (colo_vm_blk_prepare(v, why_failed, sizeof(why_failed)) < 0 ||
	    run_checkpoint(v, why, dump, &pages, ph, &migrating, why_failed,
			   sizeof(why_failed)) < 0) {
		char e2[256];
		struct colo_flink_msg m = { .seq = v->seq };

		if (migrating)
			colo_qmp_exec(v->vm.qmp, "migrate_cancel", NULL, 10000,
				      NULL, e2, sizeof(e2));
		snprintf(m.text, sizeof(m.text), "%s", why_failed);
		colo_flink_send_msg(v->link, COLO_FLINK_ABORT, &m,
				    colo_now_ns() + 100 * COLO_NS_PER_MS);
		/* Ends the cut: the primary serves on with what came. */
		colo_vm_proxy_done(v);
		if (colo_qemu_cont(&v->vm, 5000, e2, sizeof(e2)) < 0)
			colo_log_warn("primary VM did not resume: %s", e2);
		colo_vm_proxy_resume(v);
		v->st.failures++;
		snprintf(err, errlen, "checkpoint %llu failed: %s",
			 (unsigned long long)v->seq, why_failed);
		colo_log_warn("%s; primary serves alone", err);
		colo_vm_set_mode(v, "degraded", err);
		colo_vm_drop_link(v);
		return -1;
	}
	colo_vm_proxy_done(v); /* output held since the stop is released */
	/* Only now may the new secondary VM run: what it sends before the
	 * primary's comparer restarted would be dropped with the old
	 * secondary's leftovers. */
	struct colo_flink_msg go = { .seq = v->seq };
	if (colo_flink_send_msg(v->link, COLO_FLINK_RESUME, &go,
				colo_now_ns() + 100 * COLO_NS_PER_MS) < 0)
		colo_log_warn("secondary lost after checkpoint %llu",
			      (unsigned long long)v->seq);
	if (colo_qemu_cont(&v->vm, 5000, err, errlen) < 0) {
		colo_vm_proxy_resume(v);
		colo_vm_set_mode(v, "degraded", err);
		return -1;
	}
	/* The ingress held since the cut goes to a running VM: QEMU queues
	 * what a stopped VM is sent, and drops its queue at a stop. */
	colo_vm_proxy_resume(v);
	v->last_end_ns = colo_now_ns();
	pause = v->last_end_ns - t0;
	colo_vm_record(v, why, pause, pages);
	colo_vm_set_mode(v, "protected", "");
	if (reply) {
		json_object_object_add(reply, "seq",
				       json_object_new_int64((int64_t)v->seq));
		json_object_object_add(reply, "pause_ms",
				       json_object_new_double(pause / 1e6));
		json_object_object_add(reply, "pages",
				       json_object_new_int64((int64_t)pages));
		/* Milliseconds from the start of the pause to each step's
		 * end. */
		struct json_object *p = json_object_new_object();
		for (int i = 0; i < PH_MAX; i++)
			json_object_object_add(
				p, phase_names[i],
				json_object_new_double((ph[i] - t0) / 1e6));
		json_object_object_add(reply, "phases_ms", p);
	}
	return 0;
}
