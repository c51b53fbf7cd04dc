/*
 * up.c - the supervisor of one host of the pair.
 *
 * Roles come from the protocol, never from the order of the hosts in
 * PAIR.conf: a host starts with no role; it becomes secondary when it
 * hears a primary, and primary when its CLAIM of a higher epoch is the
 * first one corosync delivers (pair_msg.h). It claims only when lease.c
 * says the old primary's lease has surely run out and votequorum, asked
 * at that moment, says it is quorate. A host that was secondary fails its
 * daemons over only once its own first renewal came back (it holds the
 * lease itself before it releases anything).
 *
 * The primary's proxy must itself refuse to release after the deadline
 * (a frozen supervisor cannot stop it): each renewal pushes the deadline
 * to it ({"cmd":"lease","deadline_ns":N}, CLOCK_MONOTONIC).
 *
 * Re-protection: a host that joins while the peer is primary becomes its
 * secondary. A survivor still runs the proxy it failed over with (a
 * secondary proxy wired to the client); it restarts it as a primary, so
 * the newcomer's proxy can link to it, once no connection that crossed
 * the failover is open: those need that proxy's sequence offsets, which
 * a new proxy would not have (it waits and says so, it never cuts one).
 *
 * Switch-over (`colo switchover`): the primary's proxy hands the client
 * over on the link (FAILOVER and its echo), the supervisor stops its
 * daemons, drops its lease and says YIELD; the secondary then claims at
 * once, its lease gating output as in any failover, and the old primary
 * joins it as secondary.
 */
#include "up.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "children.h"
#include "clock.h"
#include "control.h"
#include "daemons.h"
#include "evloop.h"
#include "lease.h"
#include "log.h"
#include "membership.h"
#include "pair_msg.h"
#include "sd_notify.h"

struct up {
	const struct colo_pair_config *cfg;
	int self;
	const char *colo;
	struct colo_loop *loop;
	struct colo_membership *mb;
	struct colo_lease lease;
	enum colo_role role;
	bool deposed;	       /* lost the primary role: serves nothing */
	bool pending_failover; /* primary by claim, lease not yet held */
	bool claim_sent;
	uint64_t claim_logged; /* the epoch last announced (claim()) */
	bool quorate;	       /* last notification (status only) */
	bool peer_in_group;
	/* A message of the peer was delivered since the last membership
	 * change: only then may our own renewal extend the lease. */
	bool peer_heard;
	bool lease_hook_missing;
	/* The role the running daemons were started in: a survivor's
	 * stays secondary (failed over) until it re-protects. */
	enum colo_role daemon_role;
	bool yielded;	   /* handed the role over: claims nothing */
	bool peer_yielded; /* the primary yielded at our epoch: claim now */
	bool switching;	   /* our proxy is handing the client over */
	/* colo vm did not confirm its failover yet: asked again by the
	 * watcher until it does; the request in flight (on the loop) */
	bool vm_failover_pending, vm_failover_warned;
	struct colo_control_ask *vm_ask;
	uint64_t vm_ask_seq; /* questions asked: the state file names the
			      * one in flight */
	/* Re-protection of a VM guest (promote): the failed-over colo vm,
	 * which hands its guest to the new primary one and exits; the RAM
	 * directory generation of the next colo vm; its --promote. */
	pid_t old_vm;
	unsigned int vm_dir_gen;
	char promote_from[COLO_ARG_LEN + 8];
	uint64_t switch_at;
	bool protected_now; /* the proxy's last mode was "protected" */
	/* Secondary: its proxy has linked with the primary's since it took
	 * the role, so its guest gets the client's traffic. A secondary
	 * that never did (a host back while the primary waits to
	 * re-protect) holds a stale guest and must not take over. */
	bool replica;
	bool stale_logged;
	uint64_t reprotect_at; /* the peer came back as secondary: clock */
	uint64_t reprotect_ms; /* the last re-protection took */
	/* Connections re-protection waits for; -1 none, -2 blk refused to
	 * replicate */
	int64_t draining;
	bool drain_forced; /* reprotect-force: cut what the drain waits for */
	/* Re-protection with a disk: the survivor's blk (this pid) was
	 * told to replicate to the peer; the new proxy (and promote) wait
	 * until it reports protected. */
	pid_t blk_replicating;
	/* The peer left the quorate group: blk was asked to give its
	 * secondary up (once per absence; drop_secondary), the request in
	 * flight on the loop. */
	bool blk_drop_asked;
	struct colo_control_ask *blk_drop_ask;
	uint64_t peer_gone_ns; /* when the peer left the group; 0: in it */
	struct colo_control_server *ctl;
	struct colo_timer *watch_timer;
	enum colo_role peer_role;
	uint64_t epoch;
	uint32_t me, peer, primary; /* node ids; primary 0: none known */
	uint64_t primary_left_ns;   /* for the logs: when it left */
	pid_t child[COLO_DAEMON_COUNT];
	char sock[COLO_DAEMON_COUNT][COLO_ARG_LEN];
	struct colo_timer *state_timer, *takeover_timer, *vm_restart_timer;
	/* colo vm waits for the proxy's guest port (wait_guest_port): its
	 * argv, made when it was asked for, and until when it waits */
	struct colo_timer *vm_port_timer;
	struct colo_argv vm_argv;
	enum colo_role vm_argv_role;
	uint64_t vm_port_deadline; /* 0: no colo vm waits */
	int exit_code;
};

void colo_up_state_path(const struct colo_pair_config *cfg, int self, char *out,
			size_t len)
{
	snprintf(out, len, "%s/%s-up.json", cfg->run_dir, cfg->host[self].name);
}

void colo_up_socket_path(const struct colo_pair_config *cfg, int self,
			 char *out, size_t len)
{
	snprintf(out, len, "%s/%s-up.sock", cfg->run_dir, cfg->host[self].name);
}

/* systemd's STATUS= line, sent when it changes. */
static void notify_status(struct up *u)
{
	static char last[160];
	char now[160];

	snprintf(now, sizeof(now), "STATUS=%s%s, epoch %llu, %squorate",
		 colo_role_name(u->role), u->deposed ? " (deposed)" : "",
		 (unsigned long long)u->epoch, u->quorate ? "" : "not ");
	if (strcmp(now, last)) {
		memcpy(last, now, sizeof(last));
		colo_sd_notify(now);
	}
}

/* The state file `colo status` reads; replaced atomically. */
static void write_state(struct up *u)
{
	char path[512], tmp[520];
	struct json_object *o = json_object_new_object(), *p;
	const char *pname = "";
	FILE *f;

	if (u->primary == u->me)
		pname = u->cfg->host[u->self].name;
	else if (u->primary == u->peer)
		pname = u->cfg->host[!u->self].name;
	json_object_object_add(
		o, "host", json_object_new_string(u->cfg->host[u->self].name));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	json_object_object_add(o, "role",
			       json_object_new_string(colo_role_name(u->role)));
	json_object_object_add(o, "deposed",
			       json_object_new_boolean(u->deposed));
	json_object_object_add(o, "protected",
			       json_object_new_boolean(u->protected_now));
	json_object_object_add(o, "replica",
			       json_object_new_boolean(u->replica));
	json_object_object_add(o, "switching",
			       json_object_new_boolean(u->switching));
	json_object_object_add(o, "reprotect_waiting_conns",
			       json_object_new_int64(u->draining));
	json_object_object_add(o, "last_reprotect_ms",
			       json_object_new_int64((int64_t)u->reprotect_ms));
	json_object_object_add(o, "epoch",
			       json_object_new_int64((int64_t)u->epoch));
	json_object_object_add(
		o, "vm_failover_asking",
		json_object_new_int64(u->vm_ask ? (int64_t)u->vm_ask_seq : 0));
	json_object_object_add(o, "primary", json_object_new_string(pname));
	json_object_object_add(o, "quorate",
			       json_object_new_boolean(u->quorate));
	json_object_object_add(
		o, "lease_deadline_ns",
		json_object_new_int64((int64_t)colo_lease_deadline(&u->lease)));
	p = json_object_new_object();
	json_object_object_add(
		p, "host", json_object_new_string(u->cfg->host[!u->self].name));
	json_object_object_add(p, "in_group",
			       json_object_new_boolean(u->peer_in_group));
	json_object_object_add(
		p, "role",
		json_object_new_string(u->peer_in_group
					       ? colo_role_name(u->peer_role)
					       : "unknown"));
	json_object_object_add(o, "peer", p);
	colo_up_state_path(u->cfg, u->self, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	notify_status(u);
	f = fopen(tmp, "w");
	if (f) {
		fprintf(f, "%s\n", json_object_to_json_string(o));
		if (fclose(f) == 0)
			rename(tmp, path);
	}
	json_object_put(o);
}

static int request(struct up *u, enum colo_daemon d, const char *req,
		   char *reply_err, size_t errlen)
{
	if (u->child[d] <= 0) {
		snprintf(reply_err, errlen, "%s not running",
			 colo_daemon_name(d));
		return -1;
	}
	return colo_control_command(u->sock[d], req, 1000, reply_err, errlen);
}

/* The deadline to the primary's proxy. A proxy without the hook answers
 * "unknown command": said once, loudly, since the lease is then enforced
 * by nobody. */
static void push_lease(struct up *u)
{
	char req[96], err[256];

	if (u->role != COLO_ROLE_PRIMARY || u->pending_failover ||
	    u->child[COLO_DAEMON_PROXY] <= 0 || u->lease_hook_missing)
		return;
	snprintf(req, sizeof(req), "{\"cmd\":\"lease\",\"deadline_ns\":%llu}",
		 (unsigned long long)colo_lease_deadline(&u->lease));
	if (request(u, COLO_DAEMON_PROXY, req, err, sizeof(err)) &&
	    strstr(err, "unknown")) {
		u->lease_hook_missing = true;
		colo_log_warn("the proxy has no 'lease' command: its output "
			      "is not bound to the lease (%s)",
			      err);
	}
}

/* The operator's hook: HOOK EVENT HOST PAIR, not waited for (reaped
 * with the daemons in on_sigchld), with the details in its environment
 * (COLO_EVENT, COLO_HOST, COLO_PEER, COLO_PAIR, COLO_ROLE, COLO_EPOCH,
 * COLO_DETAIL). Events: primary, secondary, failover, degraded,
 * protected, switchover, deposed, quorum-lost (doc/colo-up.1.md). The
 * variables are set around the fork only: the daemons never see them. */
static void run_hook_detail(struct up *u, const char *event, const char *detail)
{
	char *argv[] = { (char *)u->cfg->hook, (char *)event,
			 (char *)u->cfg->host[u->self].name,
			 (char *)u->cfg->name, NULL };
	static const char *const vars[] = { "COLO_EVENT", "COLO_HOST",
					    "COLO_PEER",  "COLO_PAIR",
					    "COLO_ROLE",  "COLO_EPOCH",
					    "COLO_DETAIL" };
	char err[256], epoch[24];

	if (!u->cfg->hook[0])
		return;
	snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)u->epoch);
	setenv(vars[0], event, 1);
	setenv(vars[1], u->cfg->host[u->self].name, 1);
	setenv(vars[2], u->cfg->host[!u->self].name, 1);
	setenv(vars[3], u->cfg->name, 1);
	setenv(vars[4], colo_role_name(u->role), 1);
	setenv(vars[5], epoch, 1);
	setenv(vars[6], detail ? detail : "", 1);
	if (colo_child_start(argv, err, sizeof(err)) < 0)
		colo_log_warn("hook %s: %s", event, err);
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
}

static void run_hook(struct up *u, const char *event)
{
	run_hook_detail(u, event, NULL);
}

static void stop_daemons(struct up *u)
{
	for (int d = COLO_DAEMON_COUNT - 1; d >= 0; d--) {
		pid_t pid = u->child[d];

		u->child[d] = 0;
		colo_child_stop(pid, 3000);
	}
	colo_child_stop(u->old_vm, 3000);
	u->old_vm = 0;
	u->daemon_role = COLO_ROLE_NONE;
	u->protected_now = false;
	u->vm_failover_pending = false;
	colo_control_ask_cancel(u->vm_ask);
	u->vm_ask = NULL;
	colo_control_ask_cancel(u->blk_drop_ask);
	u->blk_drop_ask = NULL;
	u->vm_port_deadline = 0;
	colo_timer_disarm(u->vm_port_timer);
}

/* A guest port left by an earlier proxy (a disk export by an earlier
 * blk) would pass for the new one's. */
static void unlink_socket(struct up *u, enum colo_daemon d)
{
	char path[COLO_ARG_LEN];

	if (d == COLO_DAEMON_PROXY)
		colo_daemon_guest_socket(u->cfg, u->self, path, sizeof(path));
	else
		colo_daemon_disk_socket(u->cfg, u->self, path, sizeof(path));
	unlink(path);
}

/* Starts daemon d in role r from argv a; false (and colo up stops) if
 * it cannot. */
static bool spawn_daemon(struct up *u, enum colo_daemon d, enum colo_role r,
			 struct colo_argv *a)
{
	char err[256];

	u->child[d] = colo_child_start(a->argv, err, sizeof(err));
	if (u->child[d] < 0) {
		u->child[d] = 0;
		colo_log_warn("%s", err);
		u->exit_code = 1;
		colo_loop_stop(u->loop);
		return false;
	}
	colo_log_info("started %s %s (pid %d)", a->argv[1], colo_role_name(r),
		      (int)u->child[d]);
	return true;
}

/* The first socket colo vm's QEMU needs that is not there yet (the
 * proxy's guest port, blk's export with a disk), or NULL. */
static const char *vm_socket_missing(struct up *u, char *path, size_t len)
{
	colo_daemon_guest_socket(u->cfg, u->self, path, len);
	if (access(path, F_OK))
		return "the proxy's guest port";
	if (colo_daemon_wanted(u->cfg, COLO_DAEMON_BLK)) {
		colo_daemon_disk_socket(u->cfg, u->self, path, len);
		if (access(path, F_OK))
			return "blk's export";
	}
	return NULL;
}

/* colo vm's QEMU connects to the proxy's guest port (and blk's export)
 * at once, so colo vm starts once they listen (a few ms after their
 * daemons start): looked at every 10 ms from the loop, which goes on
 * renewing the lease meanwhile; after 5 s colo vm starts anyway (and
 * says why it fails). */
static void on_vm_port_timer(void *opaque)
{
	struct up *u = opaque;
	char path[COLO_ARG_LEN];
	const char *missing;

	if (!u->vm_port_deadline)
		return;
	missing = vm_socket_missing(u, path, sizeof(path));
	if (missing && colo_now_ns() < u->vm_port_deadline) {
		colo_timer_arm_in(u->vm_port_timer, 10 * COLO_NS_PER_MS);
		return;
	}
	if (missing)
		colo_log_warn("%s: %s did not appear", path, missing);
	u->vm_port_deadline = 0;
	spawn_daemon(u, COLO_DAEMON_VM, u->vm_argv_role, &u->vm_argv);
}

/* Whether a colo vm runs or waits to start. */
static bool vm_started(const struct up *u)
{
	return u->child[COLO_DAEMON_VM] > 0 || u->vm_port_deadline;
}

/* colo vm in role r: its argv now (a --promote names the socket as it is
 * now), its start once the guest port is there (on_vm_port_timer). */
static void wait_guest_port(struct up *u, enum colo_role r)
{
	colo_daemon_vm_argv(u->cfg, u->self, r, u->colo, u->vm_dir_gen,
			    u->promote_from[0] ? u->promote_from : NULL,
			    &u->vm_argv);
	u->vm_argv_role = r;
	u->vm_port_deadline = colo_now_ns() + 5 * COLO_NS_PER_S;
	on_vm_port_timer(u);
}

/* Starts daemon d in role r (colo vm: once the guest port is there);
 * false (and colo up stops) if it cannot. */
static bool start_daemon(struct up *u, enum colo_daemon d, enum colo_role r)
{
	struct colo_argv a;

	if (d == COLO_DAEMON_VM) {
		wait_guest_port(u, r);
		return !u->exit_code;
	}
	if (colo_daemon_wanted(u->cfg, COLO_DAEMON_VM))
		unlink_socket(u, d);
	colo_daemon_argv(u->cfg, u->self, r, (enum colo_daemon)d, u->colo, &a);
	return spawn_daemon(u, d, r, &a);
}

static void start_daemons(struct up *u, enum colo_role r)
{
	for (int d = 0; d < COLO_DAEMON_COUNT; d++)
		if (colo_daemon_wanted(u->cfg, (enum colo_daemon)d) &&
		    !start_daemon(u, (enum colo_daemon)d, r))
			return;
	u->daemon_role = r;
}

/* A secondary's colo vm gives up when the primary's frame link stays
 * away (a survivor that has not re-protected yet): it is started again
 * rather than stopping the host; its first checkpoint is a full one. */
static void on_vm_restart_timer(void *opaque)
{
	struct up *u = opaque;

	/* A promote that failed: the failed-over colo vm still holds the
	 * guest (migrate-out resumed it); a new --promote tries again, in a
	 * fresh RAM directory. */
	if (u->old_vm > 0 && u->daemon_role == COLO_ROLE_PRIMARY &&
	    !vm_started(u)) {
		snprintf(u->promote_from, sizeof(u->promote_from), "%s.old",
			 u->sock[COLO_DAEMON_VM]);
		u->vm_dir_gen++;
		start_daemon(u, COLO_DAEMON_VM, COLO_ROLE_PRIMARY);
		u->promote_from[0] = '\0';
		return;
	}
	if (u->daemon_role == COLO_ROLE_SECONDARY &&
	    u->role == COLO_ROLE_SECONDARY && !vm_started(u) &&
	    u->child[COLO_DAEMON_PROXY] > 0)
		start_daemon(u, COLO_DAEMON_VM, COLO_ROLE_SECONDARY);
}

static void send_msg(struct up *u, enum colo_pair_msg_type type, uint64_t epoch)
{
	struct colo_pair_msg m = { .type = (uint8_t)type,
				   .role = (uint8_t)u->role,
				   .epoch = epoch,
				   .sent_ns = colo_now_ns() };
	uint8_t buf[COLO_PAIR_MSG_LEN];

	colo_pair_msg_encode(&m, buf);
	if (colo_membership_send(u->mb, buf, sizeof(buf)) &&
	    type == COLO_MSG_CLAIM)
		u->claim_sent = false; /* retried at the next evaluation */
}

/* colo vm's answer to "failover" (control_ask.c). */
static void on_vm_failover_reply(void *opaque, int rc, const char *err)
{
	struct up *u = opaque;

	u->vm_ask = NULL;
	if (!rc) {
		if (u->vm_failover_warned)
			colo_log_info("vm failed over");
		u->vm_failover_pending = false;
		u->vm_failover_warned = false;
		return;
	}
	if (!u->vm_failover_warned)
		colo_log_warn("vm failover: %s (asking again)", err);
	u->vm_failover_warned = true;
}

/* The secondary VM runs on alone (it leaves the frame link): asked
 * before the proxy releases its output (the request is in colo vm's
 * socket when this returns), and again by the watcher while colo vm has
 * not said yes (busy in a checkpoint the dead primary left unfinished,
 * until its --timeout). Its answer comes on the loop: the supervisor
 * goes on renewing the lease meanwhile, and the proxy's failover does
 * not wait for it. */
static void vm_failover(struct up *u)
{
	u->vm_failover_pending = true;
	if (u->vm_ask)
		return; /* one question at a time */
	if (u->child[COLO_DAEMON_VM] <= 0) {
		on_vm_failover_reply(u, -1, "vm not running");
		return;
	}
	u->vm_ask_seq++;
	u->vm_ask = colo_control_ask(
		u->loop, u->sock[COLO_DAEMON_VM], "{\"cmd\":\"failover\"}",
		1000 * COLO_NS_PER_MS, on_vm_failover_reply, u);
	if (!u->vm_ask)
		on_vm_failover_reply(u, -1, "out of memory");
}

static void do_failover(struct up *u)
{
	char err[256];
	uint64_t now = colo_now_ns();

	u->pending_failover = false;
	if (colo_daemon_wanted(u->cfg, COLO_DAEMON_VM))
		vm_failover(u);
	if (request(u, COLO_DAEMON_PROXY, "{\"cmd\":\"failover\"}", err,
		    sizeof(err)))
		colo_log_warn("proxy failover: %s", err);
	/* With a VM guest colo vm fails blk over itself (--blk-control),
	 * with the guest's view, before its VM runs alone: once. A netns
	 * guest has no checkpoint that blk's buffers follow: the guest's
	 * view would roll back every write since replication began, so
	 * blk keeps the primary's (every acknowledged write). */
	if (colo_daemon_wanted(u->cfg, COLO_DAEMON_BLK) &&
	    !colo_daemon_wanted(u->cfg, COLO_DAEMON_VM) &&
	    request(u, COLO_DAEMON_BLK,
		    "{\"cmd\":\"failover\",\"view\":\"primary\"}", err,
		    sizeof(err)))
		colo_log_warn("blk failover: %s", err);
	run_hook(u, "failover");
	colo_log_info(
		"failed over: serving %llu ms after the primary left",
		u->primary_left_ns
			? (unsigned long long)((now - u->primary_left_ns) /
					       COLO_NS_PER_MS)
			: 0ull);
	push_lease(u);
}

static void become_primary(struct up *u)
{
	colo_log_info("primary (epoch %llu)", (unsigned long long)u->epoch);
	run_hook(u, "primary");
	if (u->role == COLO_ROLE_SECONDARY)
		u->pending_failover = true;
	u->role = COLO_ROLE_PRIMARY;
	if (!u->pending_failover)
		start_daemons(u, COLO_ROLE_PRIMARY);
	/* the first renewal at once: it gives the lease the failover and
	 * the new proxy wait for */
	send_msg(u, COLO_MSG_STATE, u->epoch);
}

static void become_secondary(struct up *u)
{
	colo_log_info("secondary of %s (epoch %llu)",
		      u->cfg->host[!u->self].name,
		      (unsigned long long)u->epoch);
	u->role = COLO_ROLE_SECONDARY;
	u->yielded = false;
	u->replica = false;
	u->stale_logged = false;
	run_hook(u, "secondary");
	start_daemons(u, COLO_ROLE_SECONDARY);
}

static void deposed(struct up *u)
{
	colo_log_warn("deposed: %s took the primary role (epoch %llu); "
		      "stopping this host's daemons",
		      u->cfg->host[!u->self].name,
		      (unsigned long long)u->epoch);
	colo_lease_drop(&u->lease);
	u->role = COLO_ROLE_NONE;
	u->deposed = true;
	run_hook(u, "deposed");
	stop_daemons(u);
}

static bool proxy_was_linked(struct up *u);
static void became_replica(struct up *u);

/* blk's answer to "drop-secondary" (control_ask.c): {"ok":true,
 * "dropped":B}, B false when blk had no link to give up. */
static void on_blk_drop_reply(void *opaque, int rc, const char *err,
			      const char *line)
{
	struct up *u = opaque;
	struct json_object *o = rc ? NULL : json_tokener_parse(line);
	struct json_object *dropped;

	u->blk_drop_ask = NULL;
	if (rc)
		colo_log_warn("blk drop-secondary: %s (blk waits for its "
			      "link's timeout)",
			      err);
	else if (o && json_object_object_get_ex(o, "dropped", &dropped) &&
		 json_object_get_boolean(dropped))
		colo_log_info("blk serves alone: %s left the group",
			      u->cfg->host[!u->self].name);
	else
		colo_log_info("blk drop-secondary: blk had no link to give up");
	json_object_put(o);
}

/*
 * The peer left the group while this host is quorate and primary: blk
 * gives its secondary up at once instead of stalling every disk write
 * for its link's timeout. Safe: only one partition can be quorate, and
 * the peer is outside this one, so it cannot claim while we serve;
 * blk would serve alone after its timeout anyway (this only makes it
 * sooner), recording what changed for the resync when the peer is back.
 * Only once a renewal sent after the peer left came back while this host
 * was quorate: the same proof the proxy waits for before it releases
 * output again (votequorum may call a host quorate for a moment after
 * it was cut off from the witness too: qdevice's vote lags). A host that
 * is not quorate, not primary (or not yet serving: a claim waiting for
 * its lease), holding no valid lease now (frozen since the renewal) or
 * deposed never does it, nor does a blk that is not replicating as a
 * primary. Asked on the loop (the lease renewals go on), once per
 * absence of the peer; called again at each quorum notification and
 * renewal until it applies.
 * Not with a VM guest: its secondary's blk must keep the disk of the
 * last checkpoint until colo vm commits the next one, and a resync after
 * a drop folds the newer disk into that point (blk's own timeout does so
 * too, after 5 s: colo-up(1), NOT DONE YET); a ring flap with both links
 * healthy would then cost the failover its consistent point. Such a
 * primary's colo vm and blk find a lost secondary by their own links.
 */
static void drop_secondary(struct up *u)
{
	static const char req[] = "{\"cmd\":\"drop-secondary\",\"reason\":"
				  "\"the peer left the group\"}";

	if (u->peer_in_group || !u->peer_gone_ns || u->blk_drop_asked ||
	    u->blk_drop_ask || /* one question at a time */
	    u->role != COLO_ROLE_PRIMARY || u->pending_failover || u->deposed ||
	    u->child[COLO_DAEMON_BLK] <= 0 ||
	    !colo_daemon_wanted(u->cfg, COLO_DAEMON_BLK) ||
	    colo_daemon_wanted(u->cfg, COLO_DAEMON_VM) ||
	    (u->daemon_role != COLO_ROLE_PRIMARY &&
	     u->blk_replicating != u->child[COLO_DAEMON_BLK]))
		return;
	if (colo_lease_deadline(&u->lease) <=
		    u->peer_gone_ns + u->cfg->lease_ms * COLO_NS_PER_MS ||
	    !colo_lease_may_release(&u->lease, colo_now_ns()) ||
	    colo_membership_quorate_now(u->mb) != 1)
		return; /* the next renewal (or quorum notification) asks */
	u->blk_drop_asked = true;
	u->blk_drop_ask = colo_control_ask_line(
		u->loop, u->sock[COLO_DAEMON_BLK], req, 1000 * COLO_NS_PER_MS,
		on_blk_drop_reply, u);
	if (!u->blk_drop_ask)
		on_blk_drop_reply(u, -1, "out of memory", NULL);
}

/* Sends the claim of the next epoch. corosync may refuse it for the
 * moment (TRY_AGAIN while the ring re-forms: send_msg clears claim_sent):
 * it is then tried again in 50 ms, and announced in the log only once. */
static void claim(struct up *u, const char *why)
{
	if (u->claim_logged != u->epoch + 1)
		colo_log_info("claiming the primary role (epoch %llu)%s",
			      (unsigned long long)u->epoch + 1, why);
	u->claim_logged = u->epoch + 1;
	u->claim_sent = true;
	send_msg(u, COLO_MSG_CLAIM, u->epoch + 1);
	if (!u->claim_sent)
		colo_timer_arm_in(u->takeover_timer, 50 * COLO_NS_PER_MS);
}

/* The takeover rule (lease.c) plus the protocol's: a deposed host never
 * claims (its guest is stale), nor does a fresh host while the peer is
 * a secondary (the secondary holds the replicated state). */
static void evaluate_takeover(struct up *u)
{
	uint64_t at, now;
	int q;

	if (u->role == COLO_ROLE_PRIMARY || u->deposed || u->claim_sent ||
	    u->yielded)
		return;
	if (u->peer_yielded && u->role == COLO_ROLE_SECONDARY) {
		/* The primary handed its output over and stopped its
		 * daemons before saying so: no lease to wait for. */
		if (colo_membership_quorate_now(u->mb) != 1) {
			colo_log_info("the primary yielded but this host is "
				      "not quorate: no takeover");
			return;
		}
		claim(u, ": the primary handed it over");
		return;
	}
	if (u->primary == u->peer && u->peer_in_group)
		return;
	if (u->role == COLO_ROLE_SECONDARY && !u->replica &&
	    u->child[COLO_DAEMON_PROXY] > 0 && proxy_was_linked(u))
		became_replica(u);
	if (u->role == COLO_ROLE_SECONDARY && !u->replica) {
		if (!u->stale_logged)
			colo_log_warn("the primary is gone but this host's "
				      "proxy never linked with it: its guest "
				      "is stale, no takeover");
		u->stale_logged = true;
		return;
	}
	if (u->role == COLO_ROLE_NONE && u->peer_in_group &&
	    u->peer_role == COLO_ROLE_SECONDARY)
		return;
	at = colo_lease_takeover_at(&u->lease);
	if (!at)
		return;
	now = colo_now_ns();
	if (now < at) {
		colo_timer_arm_at(u->takeover_timer, at);
		return;
	}
	q = colo_membership_quorate_now(u->mb);
	if (q != 1) {
		colo_log_info("the primary's lease has run out but this host "
			      "is not quorate: no takeover");
		return; /* the next quorum notification evaluates again */
	}
	claim(u, u->primary ? ": the primary's lease ran out" : "");
}

static void on_takeover_timer(void *opaque)
{
	evaluate_takeover(opaque);
}

static void on_state_timer(void *opaque)
{
	struct up *u = opaque;

	send_msg(u, COLO_MSG_STATE, u->epoch);
	colo_timer_arm_in(u->state_timer,
			  u->cfg->lease_ms * COLO_NS_PER_MS / 4);
}

static void on_members(void *opaque, const uint32_t *nodes, size_t n)
{
	struct up *u = opaque;
	bool in = false;

	for (size_t i = 0; i < n; i++)
		in |= nodes[i] == u->peer;
	if (in != u->peer_in_group) {
		colo_log_info("%s %s the group", u->cfg->host[!u->self].name,
			      in ? "joined" : "left");
	}
	/* the peer's departure (not its absence at our start: a blk that
	 * never linked has nothing to drop); its return asks again */
	if (!in && u->peer_in_group) {
		u->peer_gone_ns = colo_now_ns();
	} else if (in) {
		u->peer_gone_ns = 0;
		u->blk_drop_asked = false;
	}
	u->peer_in_group = in;
	if (!in && u->draining > 0) {
		u->draining = -1; /* nobody waits for the re-protection */
		u->drain_forced = false;
	}
	/* After any membership change (a merge after a partition, or after
	 * this host was frozen) the peer may hold a newer epoch: our own
	 * renewal, delivered before its message, must not renew the lease
	 * of a host that is about to learn it was deposed. */
	u->peer_heard = false;
	if (u->primary == u->peer) {
		if (in) {
			colo_lease_peer_joined(&u->lease);
			u->primary_left_ns = 0;
		} else if (!u->primary_left_ns) {
			u->primary_left_ns = colo_now_ns();
			colo_lease_peer_left(&u->lease, u->primary_left_ns);
		}
	}
	drop_secondary(u);
	evaluate_takeover(u);
	write_state(u);
}

static void on_state_msg(struct up *u, uint32_t from,
			 const struct colo_pair_msg *m)
{
	if (from == u->me) {
		if (m->role != COLO_ROLE_PRIMARY ||
		    u->role != COLO_ROLE_PRIMARY || m->epoch != u->epoch)
			return;
		if (u->peer_in_group && !u->peer_heard) {
			colo_log_info("renewal not counted: %s not heard "
				      "since the membership changed",
				      u->cfg->host[!u->self].name);
			return;
		}
		colo_lease_renewed(&u->lease, m->sent_ns,
				   colo_membership_quorate_now(u->mb) == 1);
		if (u->pending_failover &&
		    colo_lease_may_release(&u->lease, colo_now_ns()))
			do_failover(u);
		else
			push_lease(u);
		drop_secondary(u);
		return;
	}
	u->peer_heard = true;
	u->peer_role = (enum colo_role)m->role;
	if (u->peer_role == COLO_ROLE_SECONDARY &&
	    u->role == COLO_ROLE_PRIMARY && !u->protected_now &&
	    !u->reprotect_at)
		u->reprotect_at = colo_now_ns(); /* the re-protect clock */
	if (m->epoch > u->epoch && u->role != COLO_ROLE_PRIMARY)
		u->epoch = m->epoch;
	if (m->role != COLO_ROLE_PRIMARY || m->epoch < u->epoch)
		return;
	if (u->role == COLO_ROLE_PRIMARY) {
		if (m->epoch > u->epoch) {
			u->epoch = m->epoch;
			deposed(u);
		}
		return;
	}
	u->primary = from;
	colo_lease_peer_renewed(&u->lease, colo_now_ns());
	colo_lease_peer_joined(&u->lease);
	u->primary_left_ns = 0;
	if (u->role == COLO_ROLE_NONE) {
		/* A deposed host (frozen, cut off) rejoins the primary it
		 * lost to as secondary; it stays "deposed", never claiming,
		 * until its proxy links (its guest is stale until then). */
		if (u->deposed)
			colo_log_info("rejoining %s as secondary",
				      u->cfg->host[!u->self].name);
		become_secondary(u);
	}
}

static void on_claim_msg(struct up *u, uint32_t from,
			 const struct colo_pair_msg *m)
{
	if (from == u->me)
		u->claim_sent = false;
	else
		u->peer_heard = true;
	if (m->epoch <= u->epoch)
		return; /* a claim that lost the race, or an old one */
	u->epoch = m->epoch;
	u->peer_yielded = false;
	u->primary = from;
	if (from == u->me) {
		become_primary(u);
		return;
	}
	colo_lease_peer_renewed(&u->lease, colo_now_ns());
	colo_lease_peer_joined(&u->lease);
	if (u->role == COLO_ROLE_PRIMARY)
		deposed(u);
	else if (u->role == COLO_ROLE_NONE && !u->deposed)
		become_secondary(u);
}

/* The watcher's questions to the proxy wait at most this long: the
 * supervisor's loop also renews the lease. */
#define WATCH_MS 250

/* The failed-over proxy gives way to a primary one, the other daemons
 * staying; false (and colo up stops) if it cannot start. */
static bool replace_proxy(struct up *u)
{
	colo_child_stop(u->child[COLO_DAEMON_PROXY], 3000);
	u->child[COLO_DAEMON_PROXY] = 0;
	return start_daemon(u, COLO_DAEMON_PROXY, COLO_ROLE_PRIMARY);
}

/* A VM guest lives on through re-protection: the failed-over colo vm
 * keeps running while a primary proxy replaces the failed-over one, then
 * a primary colo vm (--promote, in a fresh RAM directory) takes the
 * guest over from it (promote.c) and the old one exits. Its control
 * socket moves aside first: the new daemon's takes its name. */
static void promote_vm(struct up *u)
{
	u->old_vm = u->child[COLO_DAEMON_VM];
	u->child[COLO_DAEMON_VM] = 0;
	snprintf(u->promote_from, sizeof(u->promote_from), "%s.old",
		 u->sock[COLO_DAEMON_VM]);
	if (rename(u->sock[COLO_DAEMON_VM], u->promote_from))
		colo_log_warn("%s: %s", u->sock[COLO_DAEMON_VM],
			      strerror(errno));
	u->vm_dir_gen++;
	/* blk, when there is a disk, stays: it already replicates to the
	 * peer, and both VMs use its export */
	if (replace_proxy(u) &&
	    start_daemon(u, COLO_DAEMON_VM, COLO_ROLE_PRIMARY))
		u->daemon_role = COLO_ROLE_PRIMARY;
	u->promote_from[0] = '\0';
}

static void restart_as_primary(struct up *u)
{
	uint64_t t0 = colo_now_ns();

	if (colo_daemon_wanted(u->cfg, COLO_DAEMON_VM) &&
	    u->child[COLO_DAEMON_VM] > 0) {
		promote_vm(u);
	} else if (u->child[COLO_DAEMON_BLK] > 0 &&
		   u->blk_replicating == u->child[COLO_DAEMON_BLK]) {
		/* a netns guest's disk: blk already replicates in place and
		 * serves the guest's export; only the proxy is replaced */
		if (replace_proxy(u))
			u->daemon_role = COLO_ROLE_PRIMARY;
	} else {
		stop_daemons(u);
		start_daemons(u, COLO_ROLE_PRIMARY);
	}
	colo_log_info(
		"re-protecting: daemons restarted as primary in %llu "
		"ms",
		(unsigned long long)((colo_now_ns() - t0) / COLO_NS_PER_MS));
}

/* A request to one of this host's daemons; its parsed reply, or NULL
 * (the reason in err). WATCH_MS bounds the wait: the supervisor's loop
 * must go on. */
static struct json_object *ask_daemon(struct up *u, enum colo_daemon d,
				      const char *req, char *err, size_t errlen)
{
	char *reply;
	struct json_object *o;

	reply = colo_control_request(u->sock[d], req, WATCH_MS, err, errlen);
	if (!reply)
		return NULL;
	o = json_tokener_parse(reply);
	free(reply);
	return o;
}

static struct json_object *ask_proxy(struct up *u, const char *cmd, char *err,
				     size_t errlen)
{
	char req[64];

	snprintf(req, sizeof(req), "{\"cmd\":\"%s\"}", cmd);
	return ask_daemon(u, COLO_DAEMON_PROXY, req, err, errlen);
}

/* The guest's disk before the proxy is replaced (and a VM guest
 * promoted): the survivor's blk, a failed-over secondary, becomes the
 * peer's primary in place ("replicate": only the granules that differ
 * are copied) and keeps the guest's export. True once it reports
 * protected: only then may a new primary colo vm checkpoint (its blk
 * prepare needs a protected blk). Asked again at each watch until then;
 * never a restart of blk, which would cut the guest's disk. */
static bool disk_replicates(struct up *u)
{
	char req[COLO_PAIR_ADDR_MAX + 64], peer[COLO_PAIR_ADDR_MAX + 16];
	char err[256] = "no reply";
	struct json_object *o, *v;
	const char *st = "";
	bool ok = false;

	if (u->blk_replicating != u->child[COLO_DAEMON_BLK]) {
		colo_daemon_blk_peer(u->cfg, u->self, peer, sizeof(peer));
		snprintf(req, sizeof(req),
			 "{\"cmd\":\"replicate\",\"secondary\":\"%s\"}", peer);
		o = ask_daemon(u, COLO_DAEMON_BLK, req, err, sizeof(err));
		if (o && json_object_object_get_ex(o, "ok", &v) &&
		    json_object_get_boolean(v)) {
			u->blk_replicating = u->child[COLO_DAEMON_BLK];
			u->draining = -1;
			colo_log_info("re-protecting: blk replicates to %s",
				      peer);
		} else {
			if (o && json_object_object_get_ex(o, "error", &v))
				snprintf(err, sizeof(err), "%s",
					 json_object_get_string(v));
			if (u->draining != -2)
				colo_log_warn("re-protection: blk refused to "
					      "replicate to %s (%s): staying "
					      "degraded",
					      peer, err);
			u->draining = -2;
		}
		json_object_put(o);
		return false;
	}
	o = ask_daemon(u, COLO_DAEMON_BLK, "{\"cmd\":\"status\"}", err,
		       sizeof(err));
	if (o && json_object_object_get_ex(o, "state", &v)) {
		st = json_object_get_string(v);
		ok = !strcmp(st, "protected");
	}
	if (ok)
		colo_log_info("re-protecting: the disk is in step with %s",
			      u->cfg->host[!u->self].name);
	json_object_put(o);
	return ok;
}

/* The survivor's proxy is a failed-over secondary: it may become a
 * primary (for the peer waiting as secondary) only when no open
 * connection depends on its sequence offsets. */
static void try_reprotect(struct up *u)
{
	char err[256] = "no shifted_conns in its stats";
	struct json_object *o = NULL, *v;
	int64_t n = -1;

	o = ask_proxy(u, "stats", err, sizeof(err));
	if (o && json_object_object_get_ex(o, "shifted_conns", &v))
		n = json_object_get_int64(v);
	json_object_put(o);
	if (n < 0) {
		colo_log_warn("re-protection: no connection count from the "
			      "proxy (%s)",
			      err);
		return;
	}
	if (n > 0 && u->drain_forced) {
		colo_log_warn("re-protection forced: %lld connection(s) that "
			      "crossed the failover are cut",
			      (long long)n);
	} else if (n > 0) {
		if (n != u->draining)
			colo_log_info("re-protection waits for %lld "
				      "connection(s) that crossed the "
				      "failover to close (only this proxy "
				      "can keep them)",
				      (long long)n);
		u->draining = n;
		write_state(u);
		return;
	}
	if (u->draining > 0)
		u->draining = -1;
	u->drain_forced = false;
	if (colo_daemon_wanted(u->cfg, COLO_DAEMON_BLK) &&
	    !disk_replicates(u)) {
		write_state(u);
		return;
	}
	u->draining = -1;
	restart_as_primary(u);
	push_lease(u);
	write_state(u);
}

/* {"cmd":"reprotect-force"} on RUN_DIR/NAME-up.sock: the operator gives
 * up the connections a re-protection drain waits for (colo-up(1)). */
static int cmd_reprotect_force(void *ctx, struct json_object *req,
			       struct json_object *r, char *err, size_t errlen)
{
	struct up *u = ctx;
	int64_t waiting = u->draining;

	(void)req;
	if (waiting <= 0) {
		snprintf(err, errlen, "%s",
			 waiting == -2 ? "re-protection waits for the disk "
					 "(blk refused to replicate)"
				       : "no re-protection waits for "
					 "connections");
		return -1;
	}
	u->drain_forced = true;
	try_reprotect(u);
	json_object_object_add(r, "cut", json_object_new_int64(waiting));
	return 0;
}

/* The switch-over's end on the old primary: the client is the peer's,
 * our proxy is silent; stop everything, then say so. */
static void finish_switchover(struct up *u)
{
	u->switching = false;
	colo_lease_drop(&u->lease);
	push_lease(u);
	stop_daemons(u);
	u->role = COLO_ROLE_NONE;
	u->yielded = true;
	u->primary = 0;
	send_msg(u, COLO_MSG_YIELD, u->epoch);
	colo_log_info("switch-over: the client is %s's, this host's daemons "
		      "stopped (%llu ms); joining as its secondary",
		      u->cfg->host[!u->self].name,
		      (unsigned long long)((colo_now_ns() - u->switch_at) /
					   COLO_NS_PER_MS));
	run_hook(u, "switchover");
	write_state(u);
}

static const char *proxy_mode(struct up *u, char *buf, size_t len)
{
	char err[256];
	struct json_object *o = NULL, *v;

	buf[0] = '\0';
	o = ask_proxy(u, "status", err, sizeof(err));
	if (o && json_object_object_get_ex(o, "mode", &v))
		snprintf(buf, len, "%s", json_object_get_string(v));
	json_object_put(o);
	return buf;
}

/* The pair is protected only when the guest's disk is too: a proxy in
 * "protected" while blk still resyncs (or lost its secondary) becomes
 * "disk-STATE" here, so the hooks, the state file and the switch-over
 * check never call a pair protected whose disk is not in step. */
static const char *with_disk(struct up *u, char *mode, size_t len)
{
	char err[256];
	struct json_object *o, *v;
	const char *st = "not answering";

	if (strcmp(mode, "protected") ||
	    !colo_daemon_wanted(u->cfg, COLO_DAEMON_BLK) ||
	    u->child[COLO_DAEMON_BLK] <= 0)
		return mode;
	o = ask_daemon(u, COLO_DAEMON_BLK, "{\"cmd\":\"status\"}", err,
		       sizeof(err));
	if (o && json_object_object_get_ex(o, "state", &v))
		st = json_object_get_string(v);
	if (strcmp(st, "protected"))
		snprintf(mode, len, "disk-%s", st);
	json_object_put(o);
	return mode;
}

/* Whether this host's secondary proxy has been linked with the primary:
 * linked now, or it counted a loss of the primary (a link that was up).
 * The watcher may have missed a link that lasted less than its period. */
static bool proxy_was_linked(struct up *u)
{
	char err[256], mode[32];
	struct json_object *o = NULL, *v;
	bool linked = false;

	if (!strcmp(proxy_mode(u, mode, sizeof(mode)), "protected"))
		return true;
	o = ask_proxy(u, "stats", err, sizeof(err));
	if (o && json_object_object_get_ex(o, "peer_losses", &v))
		linked = json_object_get_int64(v) > 0;
	json_object_put(o);
	return linked;
}

static void became_replica(struct up *u)
{
	u->replica = true;
	u->deposed = false;
	colo_log_info("linked with the primary: a replica");
	write_state(u);
}

/* The proxy said mode: hooks "protected" and "degraded" on a change.
 * Called by the watcher and before a switch-over (which may come before
 * the watcher's next look), so that no change goes unreported. Returns
 * whether the pair is protected. */
static bool note_mode(struct up *u, const char *mode)
{
	char detail[64];
	bool prot;

	prot = !strcmp(mode, "protected");
	if (prot && !u->protected_now) {
		u->protected_now = true;
		if (u->reprotect_at) {
			u->reprotect_ms = (colo_now_ns() - u->reprotect_at) /
					  COLO_NS_PER_MS;
			u->reprotect_at = 0;
			colo_log_info("protected again: re-protected in %llu "
				      "ms",
				      (unsigned long long)u->reprotect_ms);
			snprintf(detail, sizeof(detail),
				 "re-protected in %llu ms",
				 (unsigned long long)u->reprotect_ms);
			run_hook_detail(u, "protected", detail);
		} else {
			colo_log_info("protected");
			run_hook(u, "protected");
		}
		write_state(u);
	} else if (!prot && u->protected_now) {
		u->protected_now = false;
		colo_log_warn("degraded: %s%s",
			      strncmp(mode, "disk-", 5) ? "the proxy is " : "",
			      mode);
		run_hook_detail(u, "degraded", mode);
		write_state(u);
	}
	return prot;
}

/* Four times a second: the proxy's mode (hooks "protected" and
 * "degraded" on its changes), a switch-over's progress, and the
 * survivor's re-protection. */
static void on_watch_timer(void *opaque)
{
	struct up *u = opaque;
	char mode[32];
	bool prot;

	colo_timer_arm_in(u->watch_timer, 250 * COLO_NS_PER_MS);
	if (u->vm_failover_pending)
		vm_failover(u);
	if (u->role == COLO_ROLE_SECONDARY && !u->replica &&
	    u->child[COLO_DAEMON_PROXY] > 0 && proxy_was_linked(u))
		became_replica(u);
	if (u->role != COLO_ROLE_PRIMARY || u->pending_failover ||
	    u->child[COLO_DAEMON_PROXY] <= 0)
		return;
	if (!proxy_mode(u, mode, sizeof(mode))[0])
		return; /* no answer this time: no conclusion either */
	if (u->switching) {
		if (!strcmp(mode, "handed-over")) {
			finish_switchover(u);
		} else if (strcmp(mode, "handing-over")) {
			u->switching = false;
			colo_log_warn("switch-over failed: the secondary did "
				      "not confirm the hand-over; serving on "
				      "(proxy %s)",
				      mode);
			write_state(u);
		}
		return;
	}
	prot = note_mode(u, with_disk(u, mode, sizeof(mode)));
	if (!prot && u->daemon_role == COLO_ROLE_SECONDARY &&
	    u->peer_in_group && u->peer_heard &&
	    u->peer_role == COLO_ROLE_SECONDARY)
		try_reprotect(u);
}

/* The start of a planned switch-over on the primary: only from a
 * protected pair (the secondary's guest must hold everything). */
static int start_switchover(struct up *u, char *err, size_t errlen)
{
	char mode[32] = "", e[256];

	if (u->role != COLO_ROLE_PRIMARY || u->pending_failover) {
		snprintf(err, errlen, "%s is not the primary",
			 u->cfg->host[u->self].name);
		return -1;
	}
	if (u->switching) {
		snprintf(err, errlen, "a switch-over is already under way");
		return -1;
	}
	if (!u->peer_in_group || u->peer_role != COLO_ROLE_SECONDARY ||
	    !proxy_mode(u, mode, sizeof(mode))[0] ||
	    !note_mode(u, with_disk(u, mode, sizeof(mode)))) {
		snprintf(err, errlen,
			 "the pair is not protected (%s %s, this host's proxy "
			 "%s): a switch-over would lose the guest",
			 u->cfg->host[!u->self].name,
			 u->peer_in_group ? colo_role_name(u->peer_role)
					  : "not in the group",
			 mode[0] ? mode : "not answering");
		return -1;
	}
	if (request(u, COLO_DAEMON_PROXY, "{\"cmd\":\"failover\"}", e,
		    sizeof(e))) {
		snprintf(err, errlen, "proxy failover: %s", e);
		return -1;
	}
	u->switching = true;
	u->switch_at = colo_now_ns();
	colo_log_info("switch-over to %s: the proxy hands the client over",
		      u->cfg->host[!u->self].name);
	colo_timer_arm_in(u->watch_timer, 20 * COLO_NS_PER_MS);
	write_state(u);
	return 0;
}

/* {"cmd":"switchover"} on RUN_DIR/NAME-up.sock (`colo switchover`):
 * the primary starts it, a secondary asks the primary through corosync. */
static int cmd_switchover(void *ctx, struct json_object *req,
			  struct json_object *r, char *err, size_t errlen)
{
	struct up *u = ctx;
	const char *old = u->primary == u->me	  ? u->cfg->host[u->self].name
			  : u->primary == u->peer ? u->cfg->host[!u->self].name
						  : "";

	(void)req;
	if (u->role == COLO_ROLE_SECONDARY && u->primary == u->peer &&
	    u->peer_in_group) {
		send_msg(u, COLO_MSG_SWITCH, u->epoch);
	} else if (start_switchover(u, err, errlen)) {
		return -1;
	}
	json_object_object_add(r, "from", json_object_new_string(old));
	json_object_object_add(
		r, "to",
		json_object_new_string(u->primary == u->me
					       ? u->cfg->host[!u->self].name
					       : u->cfg->host[u->self].name));
	json_object_object_add(r, "epoch",
			       json_object_new_int64((int64_t)u->epoch));
	return 0;
}

/* SWITCH from the secondary's host: as if asked here. YIELD from the
 * primary of our epoch: it serves nothing any more, claim now. */
static void on_handover_msg(struct up *u, uint32_t from,
			    const struct colo_pair_msg *m)
{
	char err[256];

	u->peer_heard = true;
	if (m->type == COLO_MSG_SWITCH) {
		if (start_switchover(u, err, sizeof(err)))
			colo_log_warn("switch-over asked by %s: %s",
				      u->cfg->host[!u->self].name, err);
		return;
	}
	if (from != u->primary || m->epoch != u->epoch ||
	    u->role != COLO_ROLE_SECONDARY)
		return;
	colo_log_info("%s handed the primary role over",
		      u->cfg->host[!u->self].name);
	u->peer_yielded = true;
	evaluate_takeover(u);
}

static void on_message(void *opaque, uint32_t from, const void *buf, size_t len)
{
	struct up *u = opaque;
	struct colo_pair_msg m;

	if (colo_pair_msg_decode(buf, len, &m))
		return;
	if (m.type == COLO_MSG_STATE)
		on_state_msg(u, from, &m);
	else if (m.type == COLO_MSG_CLAIM)
		on_claim_msg(u, from, &m);
	else if (from != u->me)
		on_handover_msg(u, from, &m);
	write_state(u);
}

static void on_quorum(void *opaque, bool quorate)
{
	struct up *u = opaque;

	if (quorate != u->quorate) {
		colo_log_info("%squorate", quorate ? "" : "not ");
		if (!quorate)
			run_hook(u, "quorum-lost");
	}
	u->quorate = quorate;
	if (!quorate && u->role == COLO_ROLE_PRIMARY) {
		colo_lease_drop(&u->lease);
		push_lease(u);
	}
	if (quorate)
		drop_secondary(u);
	evaluate_takeover(u);
	write_state(u);
}

static void on_lost(void *opaque)
{
	struct up *u = opaque;

	colo_log_warn("lost the connection to corosync");
	colo_lease_drop(&u->lease);
	push_lease(u);
	u->exit_code = 1;
	colo_loop_stop(u->loop);
}

static void on_sigchld(void *opaque, const struct signalfd_siginfo *si)
{
	struct up *u = opaque;
	pid_t pid;
	int st;

	(void)si;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (pid == u->old_vm) {
			colo_log_info("the failed-over vm exited (status %d): "
				      "it handed its guest over",
				      WIFEXITED(st) ? WEXITSTATUS(st)
						    : 128 + WTERMSIG(st));
			u->old_vm = 0;
		}
		/* The promoting colo vm failed while the failed-over one
		 * still runs the guest: stopping the host here would kill
		 * the only copy of it. */
		if (pid == u->child[COLO_DAEMON_VM] && u->old_vm > 0) {
			u->child[COLO_DAEMON_VM] = 0;
			colo_log_warn("promote failed (vm exited, status %d): "
				      "the failed-over guest runs on; "
				      "promoting again in 1 s",
				      WIFEXITED(st) ? WEXITSTATUS(st)
						    : 128 + WTERMSIG(st));
			colo_timer_arm_in(u->vm_restart_timer, COLO_NS_PER_S);
			continue;
		}
		if (pid == u->child[COLO_DAEMON_VM] &&
		    u->daemon_role == COLO_ROLE_SECONDARY &&
		    u->role == COLO_ROLE_SECONDARY) {
			u->child[COLO_DAEMON_VM] = 0;
			colo_log_warn("secondary vm exited (status %d): "
				      "starting it again in 1 s",
				      WIFEXITED(st) ? WEXITSTATUS(st)
						    : 128 + WTERMSIG(st));
			colo_timer_arm_in(u->vm_restart_timer, COLO_NS_PER_S);
			continue;
		}
		for (int d = 0; d < COLO_DAEMON_COUNT; d++)
			if (u->child[d] == pid) {
				u->child[d] = 0;
				colo_log_warn(
					"%s exited (status %d): stopping",
					colo_daemon_name((enum colo_daemon)d),
					WIFEXITED(st) ? WEXITSTATUS(st)
						      : 128 + WTERMSIG(st));
				u->exit_code = 1;
				colo_loop_stop(u->loop);
			}
	}
}

static void on_stop(void *opaque, const struct signalfd_siginfo *si)
{
	struct up *u = opaque;

	colo_log_info("signal %u: stopping", si->ssi_signo);
	colo_loop_stop(u->loop);
}

int colo_up_run(const struct colo_pair_config *cfg, int self, const char *colo)
{
	static const struct colo_membership_ops ops = { on_members, on_message,
							on_quorum, on_lost };
	struct up u = { .cfg = cfg, .self = self, .colo = colo };
	static const struct colo_control_cmd cmds[] = {
		{ "switchover", cmd_switchover,
		  "move the primary role to the secondary (planned)" },
		{ "reprotect-force", cmd_reprotect_force,
		  "re-protect now, cutting the connections the drain waits "
		  "for" },
	};
	const struct colo_control_table ctl_table = { cmds, 2, &u };
	char err[512], path[512];

	if (mkdir(cfg->run_dir, 0755) && errno != EEXIST) {
		colo_log_warn("%s: %s", cfg->run_dir, strerror(errno));
		return 1;
	}
	/* colo vm makes its own RAM_DIR/HOST, not the parents */
	if (colo_daemon_wanted(cfg, COLO_DAEMON_VM) &&
	    mkdir(cfg->ram_dir, 0700) && errno != EEXIST) {
		colo_log_warn("[guest] ram_dir %s: %s", cfg->ram_dir,
			      strerror(errno));
		return 1;
	}
	for (int d = 0; d < COLO_DAEMON_COUNT; d++)
		colo_daemon_socket(cfg, self, (enum colo_daemon)d, u.sock[d],
				   sizeof(u.sock[d]));
	u.me = cfg->host[self].nodeid;
	u.peer = cfg->host[!self].nodeid;
	u.loop = colo_loop_new();
	if (!u.loop)
		return 1;
	colo_ignore_sigpipe();
	colo_loop_on_signal(u.loop, SIGCHLD, on_sigchld, &u);
	colo_loop_on_signal(u.loop, SIGTERM, on_stop, &u);
	colo_loop_on_signal(u.loop, SIGINT, on_stop, &u);
	colo_lease_init(&u.lease, cfg->lease_ms * COLO_NS_PER_MS,
			cfg->margin_ms * COLO_NS_PER_MS);
	/* Knowing nothing, assume a primary may have renewed just before we
	 * started: nobody claims before lease + margin from now. */
	colo_lease_peer_left(&u.lease, colo_now_ns());
	u.takeover_timer = colo_timer_new(u.loop, on_takeover_timer, &u);
	u.vm_restart_timer = colo_timer_new(u.loop, on_vm_restart_timer, &u);
	u.vm_port_timer = colo_timer_new(u.loop, on_vm_port_timer, &u);
	u.state_timer = colo_timer_new(u.loop, on_state_timer, &u);
	u.watch_timer = colo_timer_new(u.loop, on_watch_timer, &u);
	u.draining = -1;
	u.mb = colo_membership_open(u.loop, cfg->name, &ops, &u, err,
				    sizeof(err));
	if (!u.mb) {
		colo_log_warn("%s", err);
		colo_loop_free(u.loop);
		return 1;
	}
	if (colo_membership_nodeid(u.mb) != u.me)
		colo_log_warn("corosync says this is node %u, %s says %s is "
			      "node %u",
			      colo_membership_nodeid(u.mb), cfg->file,
			      cfg->host[self].name, u.me);
	colo_log_info("%s of pair %s: no role yet (lease %u ms, margin %u "
		      "ms)",
		      cfg->host[self].name, cfg->name, cfg->lease_ms,
		      cfg->margin_ms);
	colo_up_socket_path(cfg, self, path, sizeof(path));
	u.ctl = colo_control_server_new(u.loop, path, &ctl_table, err,
					sizeof(err));
	if (!u.ctl)
		colo_log_warn("%s: %s (no colo switchover on this host)", path,
			      err);
	colo_timer_arm_in(u.state_timer, 0);
	colo_timer_arm_in(u.watch_timer, 250 * COLO_NS_PER_MS);
	evaluate_takeover(&u);
	write_state(&u);
	colo_sd_notify("READY=1");
	colo_loop_run(u.loop);
	colo_sd_notify("STOPPING=1");

	colo_lease_drop(&u.lease);
	push_lease(&u);
	stop_daemons(&u);
	colo_control_server_free(u.ctl);
	colo_membership_close(u.mb);
	colo_loop_free(u.loop);
	colo_up_state_path(cfg, self, path, sizeof(path));
	unlink(path);
	return u.exit_code;
}
