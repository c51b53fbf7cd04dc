/*
 * cmd_status.c - `colo status PAIR.conf`: the pair as this host sees it,
 * from its own daemons only: the supervisor's state file (role, epoch,
 * quorum, the peer as corosync shows it) and the proxy's, blk's and
 * colo vm's control sockets (protected, degraded or failed over; the VM's
 * last checkpoint).
 *
 *   colo status [--host NAME] [--json] PAIR.conf
 *   colo status [--host NAME] --is-primary PAIR.conf
 *
 * --is-primary answers by its exit status only: it is qdevice's
 * heuristic (corosync_conf.c), run at each membership change.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "commands.h"
#include "control.h"
#include "daemons.h"
#include "pair_config.h"
#include "up.h"

static struct json_object *ask(const struct colo_pair_config *cfg, int self,
			       enum colo_daemon d)
{
	char sock[COLO_ARG_LEN], err[256];
	char *reply;
	struct json_object *o;

	colo_daemon_socket(cfg, self, d, sock, sizeof(sock));
	reply = colo_control_request(sock, "{\"cmd\":\"status\"}", 2000, err,
				     sizeof(err));
	if (!reply)
		return NULL;
	o = json_tokener_parse(reply);
	free(reply);
	return o;
}

static const char *str(struct json_object *o, const char *key, const char *dflt)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v)
		       ? json_object_get_string(v)
		       : dflt;
}

/* blk in step with its peer: a primary "protected", a secondary
 * "replicating" (not resyncing, not failed over). */
static bool blk_in_step(struct json_object *blk)
{
	const char *st = str(blk, "state", "");

	return !strcmp(st, "protected") || !strcmp(st, "replicating");
}

/* protected: a primary whose proxy compares with a live secondary (and,
 * with a VM guest, whose frame keeps the secondary VM a copy; with a
 * disk, whose blk replicates it); degraded: a primary serving alone;
 * down: nobody serves from here. */
static const char *pair_state(struct json_object *up, struct json_object *proxy,
			      struct json_object *vm, bool want_vm,
			      struct json_object *blk, bool want_blk)
{
	const char *role = str(up, "role", "none");
	const char *mode = str(proxy, "mode", "");

	if ((want_vm && strcmp(str(vm, "mode", ""), "protected")) ||
	    (want_blk && !blk_in_step(blk)))
		mode = "";

	if (strcmp(role, "primary")) {
		if (!strcmp(role, "secondary") && !strcmp(mode, "protected"))
			return "protected";
		return strcmp(role, "secondary") ? "down" : "secondary-only";
	}
	return !strcmp(mode, "protected") ? "protected" : "degraded";
}

/* 0 when this host's supervisor is alive and primary (its state file
 * outlives a SIGKILLed supervisor, hence the pid check). */
static int primary_here(struct json_object *up)
{
	struct json_object *v;
	int r = 1;

	if (up && !strcmp(str(up, "role", ""), "primary") &&
	    json_object_object_get_ex(up, "pid", &v) &&
	    kill((pid_t)json_object_get_int(v), 0) == 0)
		r = 0;
	json_object_put(up);
	return r;
}

int colo_cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "json", no_argument, NULL, 'j' },
		{ "is-primary", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = NULL;
	bool as_json = false, is_primary = false;
	struct colo_pair_config cfg;
	char path[512];
	struct json_object *up, *proxy, *blk = NULL, *vm = NULL, *out, *peer;
	bool want_vm, want_blk;
	int c, self;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'H') {
			host = optarg;
		} else if (c == 'j') {
			as_json = true;
		} else if (c == 'p') {
			is_primary = true;
		} else {
			fprintf(c == 'h' ? stdout : stderr,
				"usage: colo status [--host NAME] [--json | "
				"--is-primary] PAIR.conf\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: colo status [--host NAME] [--json] "
				"PAIR.conf\n");
		return 2;
	}
	self = colo_pair_open("colo status", argv[optind], host, &cfg);
	if (self < 0)
		return 1;
	colo_up_state_path(&cfg, self, path, sizeof(path));
	up = json_object_from_file(path);
	if (is_primary)
		return primary_here(up);
	if (!up) {
		fprintf(stderr,
			"colo status: %s: colo up is not running on "
			"this host\n",
			path);
		return 1;
	}
	proxy = ask(&cfg, self, COLO_DAEMON_PROXY);
	want_blk = colo_daemon_wanted(&cfg, COLO_DAEMON_BLK);
	if (want_blk)
		blk = ask(&cfg, self, COLO_DAEMON_BLK);
	want_vm = colo_daemon_wanted(&cfg, COLO_DAEMON_VM);
	if (want_vm)
		vm = ask(&cfg, self, COLO_DAEMON_VM);

	out = json_object_new_object();
	json_object_object_add(out, "pair", json_object_new_string(cfg.name));
	json_object_object_add(out, "state",
			       json_object_new_string(pair_state(
				       up, proxy, vm, want_vm, blk, want_blk)));
	json_object_object_add(out, "host", json_object_get(up));
	{
		struct json_object *v;
		int64_t d = 0;

		if (json_object_object_get_ex(up, "lease_deadline_ns", &v))
			d = json_object_get_int64(v);
		int64_t left = d - (int64_t)colo_now_ns();

		json_object_object_add(
			out, "lease_ms",
			json_object_new_int64(left > 0 ? left / 1000000 : 0));
	}
	json_object_object_add(out, "proxy", proxy ? proxy : NULL);
	if (want_blk)
		json_object_object_add(out, "blk", blk);
	if (want_vm)
		json_object_object_add(out, "vm", vm);
	if (as_json) {
		printf("%s\n", json_object_to_json_string(out));
	} else {
		json_object_object_get_ex(up, "peer", &peer);
		printf("pair %s: %s\n", cfg.name,
		       pair_state(up, proxy, vm, want_vm, blk, want_blk));
		printf("  %-12s %-10s %s, epoch %s, proxy %s\n",
		       cfg.host[self].name, str(up, "role", "?"),
		       !strcmp(str(up, "quorate", "false"), "true")
			       ? "quorate"
			       : "NOT quorate",
		       str(up, "epoch", "?"),
		       str(proxy, "mode", "not running"));
		if (want_vm)
			printf("  vm %s, checkpoint %s (%s in all, last pause "
			       "%s ms)\n",
			       str(vm, "mode", "not running"),
			       str(vm, "seq", "-"), str(vm, "checkpoints", "0"),
			       str(vm, "pause_last_ms", "-"));
		if (want_blk)
			printf("  blk %s %s, last resync %s bytes\n",
			       str(blk, "role", "-"),
			       str(blk, "state", "not running"),
			       str(blk, "last_resync_bytes", "-"));
		printf("  %-12s %-10s %s\n", cfg.host[!self].name,
		       str(peer, "role", "?"),
		       !strcmp(str(peer, "in_group", "false"), "true")
			       ? "in the group"
			       : "not in the group");
		if (atoi(str(up, "reprotect_waiting_conns", "-1")) > 0)
			printf("  re-protection waits for %s connection(s) "
			       "that crossed the failover\n",
			       str(up, "reprotect_waiting_conns", "?"));
		else if (atoi(str(up, "reprotect_waiting_conns", "-1")) == -2)
			printf("  no re-protection: blk refused to "
			       "replicate (see colo up's log)\n");
	}
	json_object_put(out);
	json_object_put(up);
	return 0;
}
