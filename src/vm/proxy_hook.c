/*
 * proxy_hook.c - colo vm and this host's `colo proxy` (--proxy-control),
 * so that one checkpoint covers the VM and its network:
 *   - the primary follows the proxy's events and checkpoints on each
 *     checkpoint-request (divergence, compare timeout, queue bound): a
 *     divergence is repaired without anyone sending a command;
 *   - the primary says checkpoint-cut right before it stops its VM: the
 *     client's frames from there on wait, on both proxies, for
 *     checkpoint-resume, so the new secondary VM gets exactly the frames
 *     the primary VM gets after the checkpoint;
 *   - both roles say checkpoint-done to their proxy once the new state is
 *     loaded and before their VM runs again: the primary's comparer
 *     releases what it held and restarts, the secondary's rewriter sets
 *     its offsets to 0 before the new secondary VM sends anything (the
 *     secondary says it with "retire", before it kills the old VM);
 *   - both say checkpoint-resume once their VM runs: the held frames go
 *     to it.
 * Lines from the proxy are outside input: a line that is too long or not
 * JSON drops the subscription, which is made again a second later.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/control.h"
#include "common/evloop.h"
#include "common/log.h"
#include "common/sock_spec.h"
#include "vm.h"

#define RETRY_NS    (1000ull * 1000 * 1000)
#define DONE_MS	    2000u
#define CUT_WAIT_MS 2000u
#define EVENTS_LINE "{\"cmd\":\"events\"}\n"

static void unsubscribe(struct colo_vm *v)
{
	if (v->proxy_h)
		colo_loop_del_fd(v->proxy_h);
	v->proxy_h = NULL;
	if (v->proxy_fd >= 0)
		close(v->proxy_fd);
	v->proxy_fd = -1;
	v->proxy_n = 0;
}

/* Whether one line of the proxy's event stream (outside input, any bytes
 * up to a NUL) is a checkpoint request. */
bool colo_vm_proxy_is_request(const char *line)
{
	struct json_object *o = json_tokener_parse(line), *ev;
	bool yes = o && json_object_is_type(o, json_type_object) &&
		   json_object_object_get_ex(o, "event", &ev) &&
		   json_object_is_type(ev, json_type_string) &&
		   !strcmp(json_object_get_string(ev), "checkpoint-request");

	json_object_put(o);
	return yes;
}

/* One line from the proxy: only checkpoint-request events matter. While
 * the first checkpoint waits for blk (disk_wait.c) the secondary has no
 * VM yet, so every frame of the primary's is a divergence: the request is
 * answered as a failed checkpoint was, with checkpoint-done, which
 * releases the output the comparer holds and lets it start over (held
 * until blk's resync ends, it would stall the guest's clients). */
static void proxy_line(struct colo_vm *v, const char *line)
{
	char err[256];

	if (!colo_vm_proxy_is_request(line))
		return;
	if (v->disk_waiting) {
		colo_vm_proxy_done(v);
		return;
	}
	if (colo_vm_primary_ready(v) &&
	    colo_vm_primary_checkpoint(v, COLO_VM_REASON_PROXY, false, NULL,
				       err, sizeof(err)) < 0)
		colo_log_warn("checkpoint asked by the proxy: %s", err);
}

static void proxy_readable(void *opaque, uint32_t events)
{
	struct colo_vm *v = opaque;
	ssize_t r;
	char *nl;

	(void)events;
	r = read(v->proxy_fd, v->proxy_buf + v->proxy_n,
		 sizeof(v->proxy_buf) - 1 - v->proxy_n);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		colo_log_warn("proxy events at %s: connection lost",
			      v->proxy_ctl);
		unsubscribe(v);
		colo_timer_arm_in(v->proxy_retry, RETRY_NS);
		return;
	}
	v->proxy_n += (size_t)r;
	v->proxy_buf[v->proxy_n] = '\0';
	while (v->proxy_fd >= 0 && (nl = strchr(v->proxy_buf, '\n'))) {
		size_t used = (size_t)(nl - v->proxy_buf) + 1;
		char line[sizeof(v->proxy_buf)];

		/* Taken out first: a checkpoint it starts empties the buffer
		 * (colo_vm_proxy_done). */
		memcpy(line, v->proxy_buf, used - 1);
		line[used - 1] = '\0';
		memmove(v->proxy_buf, v->proxy_buf + used, v->proxy_n - used);
		v->proxy_n -= used;
		v->proxy_buf[v->proxy_n] = '\0';
		proxy_line(v, line);
	}
	if (v->proxy_n == sizeof(v->proxy_buf) - 1) {
		colo_log_warn("proxy events at %s: line too long",
			      v->proxy_ctl);
		unsubscribe(v);
		colo_timer_arm_in(v->proxy_retry, RETRY_NS);
	}
}

/* (Re)subscribes to the proxy's events; retries every second while the
 * proxy is not there. */
static void subscribe(void *opaque)
{
	struct colo_vm *v = opaque;
	struct colo_sock_spec spec;
	struct colo_sock_addr a;
	char s[COLO_SOCK_PATH_MAX + 8], why[256];
	bool in_progress;

	snprintf(s, sizeof(s), "unix:%s", v->proxy_ctl);
	if (colo_sock_spec_parse(s, &spec, why, sizeof(why)) < 0 ||
	    colo_sock_resolve(&spec, &a, why, sizeof(why)) < 0) {
		colo_log_warn("--proxy-control %s: %s", v->proxy_ctl, why);
		return;
	}
	v->proxy_fd = colo_sock_connect(&a, &in_progress);
	if (v->proxy_fd < 0 || in_progress ||
	    write(v->proxy_fd, EVENTS_LINE, strlen(EVENTS_LINE)) !=
		    (ssize_t)strlen(EVENTS_LINE)) {
		unsubscribe(v);
		colo_timer_arm_in(v->proxy_retry, RETRY_NS);
		return;
	}
	v->proxy_h = colo_loop_add_fd(v->loop, v->proxy_fd, EPOLLIN,
				      proxy_readable, v);
	if (!v->proxy_h) {
		unsubscribe(v);
		colo_timer_arm_in(v->proxy_retry, RETRY_NS);
		return;
	}
	colo_log_info("following the checkpoint requests of %s", v->proxy_ctl);
}

int colo_vm_proxy_start(struct colo_vm *v, char *err, size_t errlen)
{
	v->proxy_fd = -1;
	if (!v->proxy_ctl || !v->primary)
		return 0;
	v->proxy_retry = colo_timer_new(v->loop, subscribe, v);
	if (!v->proxy_retry) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	subscribe(v);
	return 0;
}

void colo_vm_proxy_stop(struct colo_vm *v)
{
	unsubscribe(v);
	colo_timer_free(v->proxy_retry);
	v->proxy_retry = NULL;
}

/* One command to the proxy about checkpoint v->seq (extra: more JSON
 * members), answered within timeout_ms; a failure is only logged: the
 * checkpoint itself does not depend on the proxy. Returns the reply. */
static struct json_object *proxy_command(struct colo_vm *v, const char *cmd,
					 const char *extra,
					 unsigned int timeout_ms)
{
	char req[160], err[256], *reply;
	struct json_object *o;

	snprintf(req, sizeof(req), "{\"cmd\":\"%s\",\"seq\":%llu%s}", cmd,
		 (unsigned long long)v->seq, extra);
	reply = colo_control_request(v->proxy_ctl, req, timeout_ms, err,
				     sizeof(err));
	if (!reply)
		colo_log_warn("proxy %s: %s: %s", v->proxy_ctl, cmd, err);
	o = reply ? json_tokener_parse(reply) : NULL;
	free(reply);
	return o;
}

/* The proxy holds the client's frames from here and waits a little for
 * the VM to read what it had before; asked again until it has, up to
 * CUT_WAIT_MS (a QEMU under TCG on a loaded host may be slow to run). */
void colo_vm_proxy_cut(struct colo_vm *v)
{
	uint64_t t0 = colo_now_ns(), waited;
	bool drained = false;
	char hold[48];

	if (!v->proxy_ctl || !v->primary || v->no_cut)
		return;
	/* Should this daemon die mid-checkpoint, the proxy lets the held
	 * ingress go once the checkpoint could no longer be running. */
	snprintf(hold, sizeof(hold), ",\"hold_ms\":%u",
		 v->timeout_ms + CUT_WAIT_MS + 5000);
	do {
		struct json_object *r, *d;

		r = proxy_command(v, "checkpoint-cut", hold, DONE_MS);
		if (!r)
			break;
		drained = json_object_object_get_ex(r, "drained", &d) &&
			  json_object_get_boolean(d);
		json_object_put(r);
	} while (!drained && colo_now_ns() - t0 < CUT_WAIT_MS * COLO_NS_PER_MS);
	waited = (colo_now_ns() - t0) / 1000;
	if (waited > v->st.cut_max_us)
		v->st.cut_max_us = waited;
	if (!drained) {
		v->st.cut_undrained++;
		colo_log_warn("checkpoint %llu: the primary VM did not read "
			      "its ingress before the stop: the cut is not "
			      "exact",
			      (unsigned long long)v->seq);
	}
}

/* The secondary's commit: the VM on the proxy's guest port is retired
 * next, the standby takes over the port. */
void colo_vm_proxy_retire(struct colo_vm *v)
{
	if (v->proxy_ctl)
		json_object_put(proxy_command(v, "checkpoint-done",
					      ",\"retire\":true", DONE_MS));
}

/* The VM runs again (or the checkpoint failed and it runs on): the
 * proxy passes it the ingress held since the cut. */
void colo_vm_proxy_resume(struct colo_vm *v)
{
	if (v->proxy_ctl)
		json_object_put(
			proxy_command(v, "checkpoint-resume", "", DONE_MS));
}

void colo_vm_proxy_done(struct colo_vm *v)
{
	if (!v->proxy_ctl)
		return;
	json_object_put(proxy_command(v, "checkpoint-done", "", DONE_MS));
	/* Requests already queued were about the state the checkpoint just
	 * replaced: drop them, the proxy's comparer started over. */
	if (v->proxy_fd >= 0) {
		ssize_t r;

		while ((r = recv(v->proxy_fd, v->proxy_buf,
				 sizeof(v->proxy_buf) - 1, MSG_DONTWAIT)) > 0)
			;
		v->proxy_n = 0;
		if (r == 0) {
			unsubscribe(v);
			colo_timer_arm_in(v->proxy_retry, RETRY_NS);
		}
	}
}
