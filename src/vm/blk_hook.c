/*
 * blk_hook.c - colo vm and this host's `colo blk` (--blk-control), so that
 * one checkpoint covers the VM and its disk:
 *   - the primary, once its VM is stopped, asks `colo blk primary` to
 *     prepare: every write the VM issued before the stop is then held on
 *     the secondary, nothing dropped yet;
 *   - the secondary, once the standby has loaded the new state and before
 *     anything runs, asks `colo blk secondary` to commit: its disk buffers
 *     are dropped, so its disk is the primary's as of the stop.
 * Until that commit the secondary's disk stays at the previous checkpoint,
 * like its VM: a primary lost in between leaves one consistent checkpoint
 * (blk's failover folds back to the last commit). The replies are the
 * other daemon's, read as JSON with bounded waits.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/control.h"
#include "common/log.h"
#include "vm.h"

/* One request to the blk control socket; 0 when it answered ok, else -1
 * with its error (or the transport's) in err. */
static int blk_call(struct colo_vm *v, const char *cmd, unsigned int wait_ms,
		    char *err, size_t errlen)
{
	struct json_object *req = json_object_new_object(), *rep, *ok, *e;
	char why[256], *line;
	int rc = -1;

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (!strcmp(cmd, "prepare"))
		json_object_object_add(req, "timeout_ms",
				       json_object_new_int64(wait_ms));
	line = colo_control_request(
		v->blk_ctl,
		json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN),
		wait_ms + 1000, why, sizeof(why));
	json_object_put(req);
	if (!line) {
		snprintf(err, errlen, "blk %s at %s: %s", cmd, v->blk_ctl, why);
		return -1;
	}
	rep = json_tokener_parse(line);
	if (rep && json_object_is_type(rep, json_type_object) &&
	    json_object_object_get_ex(rep, "ok", &ok) &&
	    json_object_get_boolean(ok))
		rc = 0;
	else
		snprintf(err, errlen, "blk %s: %s", cmd,
			 rep && json_object_object_get_ex(rep, "error", &e)
				 ? json_object_get_string(e)
				 : "bad reply");
	json_object_put(rep);
	free(line);
	return rc;
}

int colo_vm_blk_prepare(struct colo_vm *v, char *err, size_t errlen)
{
	if (!v->blk_ctl)
		return 0;
	return blk_call(v, "prepare", v->timeout_ms, err, errlen);
}

int colo_vm_blk_commit(struct colo_vm *v, char *err, size_t errlen)
{
	if (!v->blk_ctl)
		return 0;
	return blk_call(v, "commit", v->timeout_ms, err, errlen);
}

/* Best effort: a checkpoint that will not be committed must not keep the
 * next one's prepare out (the secondary refuses a second prepare). */
void colo_vm_blk_abort(struct colo_vm *v)
{
	char err[256];

	if (v->blk_ctl && blk_call(v, "abort", 2000, err, sizeof(err)) < 0)
		colo_log_warn("%s", err);
}

int colo_vm_blk_failover(struct colo_vm *v, char *err, size_t errlen)
{
	if (!v->blk_ctl)
		return 0;
	return blk_call(v, "failover", v->timeout_ms, err, errlen);
}
