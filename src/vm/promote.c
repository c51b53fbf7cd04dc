/*
 * promote.c - a failed-over secondary's VM becomes a primary's.
 *
 * After a failover the survivor's VM maps its RAM file copy-on-write
 * (share=off): its RAM is the file plus that QEMU's private pages, which
 * no other process can read, so it cannot serve as a primary's, whose
 * daemon reads guest RAM from a shared file at every checkpoint. Promote
 * moves the guest, stopped, into a fresh QEMU whose RAM is a shared file:
 * one local stop-and-copy migration (the source VM is stopped first, so
 * nothing is dirtied while it runs: never live pre-copy, which corrupts
 * the destination on QEMU 7.2 under TCG). The migration carries RAM too
 * (x-ignore-shared off at both ends: the source's RAM is private) and
 * runs in the clear over a Unix socket of this host (TLS off: both ends
 * are ours, and the TLS objects name the peer host).
 *
 * Two daemons take part, so each keeps one role from start to end:
 *   - the failed-over secondary (`migrate-out` on its control socket)
 *     stops its VM, migrates it to the URI and, once it is done, exits;
 *   - a new primary daemon started with --promote PATH (the old one's
 *     control socket) starts its QEMU with -incoming, asks for the
 *     migration, runs the guest and goes on as any primary, whose first
 *     secondary gets a full first checkpoint.
 * Once the guest has moved, nothing needs what the old daemon leaves: the
 * new one removes PATH (moved aside by its caller, the old daemon cannot
 * know its name), and the old one its RAM directory when it ends, after
 * its QEMU (the last user of its files) is gone.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/control.h"
#include "common/evloop.h"
#include "common/log.h"
#include "qmp.h"
#include "vm.h"

#define PROMOTE_MS 120000 /* a whole guest RAM copied on a busy host */

/* The migration settings of a promote (RAM included, plain) or, after
 * it, the frame's own again (RAM on the shared file, TLS to the peer
 * when the pair has credentials). */
static int promote_settings(struct colo_qemu *q, const struct colo_vm *v,
			    bool promoting, char *err, size_t errlen)
{
	struct json_object *p = json_object_new_object();
	bool tls = v->qcfg.tls_dir && !promoting;

	if (colo_qemu_set_capability(q, "x-ignore-shared", !promoting, err,
				     errlen) < 0) {
		json_object_put(p);
		return -1;
	}
	json_object_object_add(p, "tls-creds",
			       json_object_new_string(tls ? "colo-tls" : ""));
	if (tls && !q->standby)
		json_object_object_add(
			p, "tls-hostname",
			json_object_new_string(v->qcfg.tls_peer));
	return colo_qmp_exec(q->qmp, "migrate-set-parameters", p, 10000, NULL,
			     err, errlen);
}

int colo_vm_migrate_out(struct colo_vm *v, const char *uri, char *err,
			size_t errlen)
{
	struct json_object *args;

	if (v->primary || strcmp(v->mode, "failover") || !v->vm.qmp) {
		snprintf(err, errlen,
			 "migrate-out is for a failed-over secondary (mode %s)",
			 v->mode);
		return -1;
	}
	if (strncmp(uri, "unix:", 5)) {
		snprintf(err, errlen, "migrate-out: unix:PATH only");
		return -1;
	}
	if (colo_qmp_exec(v->vm.qmp, "stop", NULL, 10000, NULL, err, errlen) <
		    0 ||
	    promote_settings(&v->vm, v, true, err, errlen) < 0)
		goto resume;
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	if (colo_qmp_exec(v->vm.qmp, "migrate", args, 10000, NULL, err,
			  errlen) < 0 ||
	    colo_qemu_wait_migration(&v->vm, PROMOTE_MS, err, errlen) < 0)
		goto resume;
	/* The guest lives on in the new primary's QEMU: this daemon (and
	 * its stopped VM) ends once the reply is out. */
	colo_vm_set_mode(v, "handed-over",
			 "the guest runs in the promoted "
			 "primary");
	v->exit_code = 0;
	colo_loop_stop(v->loop);
	return 0;
resume:
	/* The guest runs on here: a migration still under way (timed out)
	 * is cancelled first, or it would go on as live pre-copy, which
	 * corrupts its destination on QEMU 7.2 under TCG. */
	colo_qemu_cancel_migration(&v->vm, 10000);
	colo_qmp_exec(v->vm.qmp, "cont", NULL, 10000, NULL, NULL, 0);
	return -1;
}

/* Asks the failed-over daemon to migrate its VM to uri; its reply comes
 * once the migration completed. */
static int ask_migrate_out(const char *from, const char *uri, char *err,
			   size_t errlen)
{
	struct json_object *o = json_object_new_object();
	char why[256];
	int r;

	/* json-c quotes the path, whatever --dir holds */
	json_object_object_add(o, "cmd", json_object_new_string("migrate-out"));
	json_object_object_add(o, "uri", json_object_new_string(uri));
	r = colo_control_command(from, json_object_to_json_string(o),
				 PROMOTE_MS, why, sizeof(why));
	json_object_put(o);
	if (r == 0)
		return 0;
	snprintf(err, errlen, "%s: %s", from, why);
	return -1;
}

/* Whether name is pre, a number, then suf. */
static bool numbered(const char *name, const char *pre, const char *suf)
{
	size_t n = strlen(pre);
	const char *p = name + n;

	if (strncmp(name, pre, n) || !isdigit((unsigned char)*p))
		return false;
	while (isdigit((unsigned char)*p))
		p++;
	return !strcmp(p, suf);
}

/* Whether name is one of the files a colo vm makes in its --dir. */
static bool own_file(const char *name)
{
	return !strcmp(name, "guest.ram") || numbered(name, "qemu-", ".log") ||
	       numbered(name, "qmp-", ".sock");
}

void colo_vm_promote_tidy(struct colo_vm *v)
{
	const char *dir = v->qcfg.dir;
	struct dirent *e;
	DIR *d;

	if (strcmp(v->mode, "handed-over") || !dir || !(d = opendir(dir)))
		return;
	while ((e = readdir(d))) {
		char path[PATH_MAX];

		if (own_file(e->d_name) &&
		    (size_t)snprintf(path, sizeof(path), "%s/%s", dir,
				     e->d_name) < sizeof(path))
			unlink(path);
	}
	closedir(d);
	/* Left when it holds files of someone else's */
	if (rmdir(dir) < 0)
		colo_log_warn("%s: %s (left as it is)", dir, strerror(errno));
}

int colo_vm_promote_in(struct colo_vm *v, char *err, size_t errlen)
{
	char uri[300];
	struct json_object *args;
	uint64_t t0;

	if ((size_t)snprintf(uri, sizeof(uri), "unix:%s/promote.sock",
			     v->qcfg.dir) >= sizeof(uri)) {
		snprintf(err, errlen, "--dir too long");
		return -1;
	}
	/* -S -incoming defer on the shared file; then set up as the
	 * primary's VM it becomes (the migration's client side) */
	if (colo_qemu_spawn(&v->qcfg, v->next_gen++, true, &v->vm, err,
			    errlen) < 0)
		return -1;
	v->vm.standby = false;
	if (colo_qemu_attach(&v->vm, &v->qcfg, err, errlen) < 0 ||
	    promote_settings(&v->vm, v, true, err, errlen) < 0)
		return -1;
	args = json_object_new_object();
	json_object_object_add(args, "uri", json_object_new_string(uri));
	if (colo_qmp_exec(v->vm.qmp, "migrate-incoming", args, 10000, NULL, err,
			  errlen) < 0)
		return -1;
	t0 = colo_now_ns();
	if (ask_migrate_out(v->promote_from, uri, err, errlen) < 0)
		return -1;
	/* The old daemon handed the guest over and ends: nobody will ask
	 * it anything again (its own end cannot remove the moved path). */
	if (unlink(v->promote_from) < 0)
		colo_log_warn("%s: %s", v->promote_from, strerror(errno));
	if (colo_qemu_wait_migration(&v->vm, PROMOTE_MS, err, errlen) < 0 ||
	    promote_settings(&v->vm, v, false, err, errlen) < 0 ||
	    colo_qemu_cont(&v->vm, 10000, err, errlen) < 0)
		return -1;
	v->promote_pause_ns = colo_now_ns() - t0;
	colo_log_info("promoted: the failed-over guest runs on shared RAM "
		      "(paused %.1f ms)",
		      v->promote_pause_ns / 1e6);
	return 0;
}
