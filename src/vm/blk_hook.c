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

/* One request to the blk control socket: 0 when it answered ok (its
 * reply in *out when out is given, to be released), -1 when it answered
 * an error, -2 when no reply came; err says why. */
static int blk_call(struct colo_vm *v, struct json_object *req,
		    unsigned int wait_ms, struct json_object **out, char *err,
		    size_t errlen)
{
	struct json_object *c, *rep, *ok, *e;
	const char *cmd = "?";
	char why[256], *line;
	int rc = -1;

	if (json_object_object_get_ex(req, "cmd", &c))
		cmd = json_object_get_string(c);
	line = colo_control_request(
		v->blk_ctl,
		json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN),
		wait_ms + 1000, why, sizeof(why));
	if (!line) {
		snprintf(err, errlen, "blk %s at %s: %s", cmd, v->blk_ctl, why);
		json_object_put(req);
		return -2;
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
	json_object_put(req);
	free(line);
	if (rc == 0 && out)
		*out = rep;
	else
		json_object_put(rep);
	return rc;
}

static struct json_object *request(const char *cmd)
{
	struct json_object *req = json_object_new_object();

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	return req;
}

int colo_vm_blk_prepare(struct colo_vm *v, char *err, size_t errlen)
{
	struct json_object *req;

	if (!v->blk_ctl)
		return 0;
	req = request("prepare");
	json_object_object_add(req, "timeout_ms",
			       json_object_new_int64(v->timeout_ms));
	return blk_call(v, req, v->timeout_ms, NULL, err, errlen) < 0 ? -1 : 0;
}

/*
 * The commit names the checkpoint. If its reply is lost, blk's status
 * tells whether it happened: guessing wrong either way would leave the
 * secondary's disk and VM at different checkpoints.
 */
int colo_vm_blk_commit(struct colo_vm *v, char *err, size_t errlen)
{
	struct json_object *req, *st = NULL, *id;
	char e2[256];
	int r;

	if (!v->blk_ctl)
		return 0;
	req = request("commit");
	json_object_object_add(req, "id",
			       json_object_new_int64((int64_t)v->seq));
	r = blk_call(v, req, v->timeout_ms, NULL, err, errlen);
	if (r != -2)
		return r;
	if (blk_call(v, request("status"), 2000, &st, e2, sizeof(e2)) == 0 &&
	    json_object_object_get_ex(st, "commit_id", &id) &&
	    json_object_get_int64(id) == (int64_t)v->seq) {
		colo_log_warn("%s, but blk's status shows it was made", err);
		r = 0;
	}
	json_object_put(st);
	return r < 0 ? -1 : 0;
}

/* Best effort: a checkpoint that will not be committed must not keep the
 * next one's prepare out (the secondary refuses a second prepare). */
void colo_vm_blk_abort(struct colo_vm *v)
{
	char err[256];

	if (v->blk_ctl &&
	    blk_call(v, request("abort"), 2000, NULL, err, sizeof(err)) < 0)
		colo_log_warn("%s", err);
}

int colo_vm_blk_failover(struct colo_vm *v, char *err, size_t errlen)
{
	if (!v->blk_ctl)
		return 0;
	return blk_call(v, request("failover"), v->timeout_ms, NULL, err,
			errlen) < 0
		       ? -1
		       : 0;
}
