/*
 * disk_wait.c - the primary's first checkpoint with a secondary waits
 * for this host's colo blk (--blk-control) to be protected.
 *
 * Why: blk's first resync (primary -> secondary) may still run when the
 * secondary's colo vm joins. A checkpoint then would fail at blk prepare
 * ("not protected"), drop the link and be tried again a second later: a
 * failure in the logs, the hooks and colo status, and a second without
 * protection. Instead the primary asks blk's status from the event loop
 * (control_ask.c: the loop, its control socket and the link's heartbeats
 * go on meanwhile) every DISK_POLL_MS, says "waiting-disk" in its mode,
 * and runs the first checkpoint at the first reply that says protected.
 * A wait longer than one checkpoint's --timeout is logged as an error
 * once; the wait goes on.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/control.h"
#include "common/evloop.h"
#include "common/log.h"
#include "vm.h"

#define DISK_POLL_MS 100u

/* blk's reply (an ok one): 1 protected, 0 not yet (its state in
 * what). */
static int blk_protected(const char *line, char *what, size_t whatlen)
{
	struct json_object *o = line ? json_tokener_parse(line) : NULL;
	struct json_object *p, *s;
	int r = 0;

	snprintf(what, whatlen, "%s", "no valid status");
	if (o && json_object_is_type(o, json_type_object)) {
		if (json_object_object_get_ex(o, "state", &s) &&
		    json_object_is_type(s, json_type_string))
			snprintf(what, whatlen, "%s",
				 json_object_get_string(s));
		r = json_object_object_get_ex(o, "protected", &p) &&
		    json_object_is_type(p, json_type_boolean) &&
		    json_object_get_boolean(p);
	}
	json_object_put(o);
	return r;
}

static void ask(struct colo_vm *v);

static void answered(void *opaque, int rc, const char *err, const char *line)
{
	struct colo_vm *v = opaque;
	uint64_t waited_ms;
	char what[64], reason[256];

	v->disk_ask = NULL;
	if (!rc && blk_protected(line, what, sizeof(what))) {
		colo_timer_disarm(v->disk_poll);
		v->disk_waiting = false;
		colo_log_info("blk protected after %llu ms: first checkpoint",
			      (unsigned long long)((colo_now_ns() -
						    v->disk_wait_since) /
						   COLO_NS_PER_MS));
		colo_vm_primary_first(v);
		return;
	}
	if (rc) /* no answer, or blk's own error */
		snprintf(what, sizeof(what), "%.60s", err);
	waited_ms = (colo_now_ns() - v->disk_wait_since) / COLO_NS_PER_MS;
	snprintf(reason, sizeof(reason),
		 "the first checkpoint waits for blk to be protected (blk: %s)",
		 what);
	colo_vm_set_mode(v, "waiting-disk", reason);
	if (waited_ms >= v->timeout_ms && !v->disk_wait_reported) {
		v->disk_wait_reported = true;
		colo_log_warn("error: blk at %s not protected after %llu ms "
			      "(blk: %s); the first checkpoint still waits",
			      v->blk_ctl, (unsigned long long)waited_ms, what);
	}
	colo_timer_arm_in(v->disk_poll, DISK_POLL_MS * COLO_NS_PER_MS);
}

static void ask(struct colo_vm *v)
{
	v->disk_ask = colo_control_ask_line(
		v->loop, v->blk_ctl, "{\"cmd\":\"status\"}",
		(uint64_t)v->timeout_ms * COLO_NS_PER_MS, answered, v);
	if (!v->disk_ask) /* out of memory: the next poll asks again */
		colo_timer_arm_in(v->disk_poll, DISK_POLL_MS * COLO_NS_PER_MS);
}

static void poll_fire(void *opaque)
{
	struct colo_vm *v = opaque;

	if (v->disk_waiting && !v->disk_ask)
		ask(v);
}

void colo_vm_disk_wait(struct colo_vm *v)
{
	if (!v->blk_ctl) {
		colo_vm_primary_first(v);
		return;
	}
	if (!v->disk_poll) {
		v->disk_poll = colo_timer_new(v->loop, poll_fire, v);
		if (!v->disk_poll) {
			colo_vm_primary_first(v); /* blk prepare decides */
			return;
		}
	}
	v->disk_waiting = true;
	v->disk_wait_reported = false;
	v->disk_wait_since = colo_now_ns();
	colo_vm_set_mode(v, "waiting-disk",
			 "the first checkpoint waits for blk to be protected "
			 "(asking blk)");
	ask(v);
}

void colo_vm_disk_wait_stop(struct colo_vm *v)
{
	v->disk_waiting = false;
	colo_control_ask_cancel(v->disk_ask);
	v->disk_ask = NULL;
	if (v->disk_poll)
		colo_timer_disarm(v->disk_poll);
}

void colo_vm_disk_wait_free(struct colo_vm *v)
{
	colo_vm_disk_wait_stop(v);
	colo_timer_free(v->disk_poll);
	v->disk_poll = NULL;
}
