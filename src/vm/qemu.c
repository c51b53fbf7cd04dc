/*
 * qemu.c - starting, driving and retiring the QEMU processes of one host.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "qemu.h"
#include "qmp.h"

#define QMP_START_MS 30000 /* QEMU start-up on a busy TCG host */
#define QMP_CMD_MS   10000

static struct json_object *capability(const char *name, bool on)
{
	struct json_object *caps = json_object_new_array();
	struct json_object *c = json_object_new_object();
	struct json_object *args = json_object_new_object();

	json_object_object_add(c, "capability", json_object_new_string(name));
	json_object_object_add(c, "state", json_object_new_boolean(on));
	json_object_array_add(caps, c);
	json_object_object_add(args, "capabilities", caps);
	return args;
}

/* Both ends of every checkpoint's migration: RAM is on the shared file
 * backend and moved by the frame, so QEMU sends device state only (the
 * source skips its shared block; a secondary's copy-on-write block just
 * receives no pages, QEMU 7.2 checks only the block list); and
 * no bandwidth cap (QEMU's default would throttle the device state of a
 * stopped VM for nothing). */
static struct json_object *authz_rule(const char *match, const char *format)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "match", json_object_new_string(match));
	json_object_object_add(r, "policy", json_object_new_string("allow"));
	json_object_object_add(r, "format", json_object_new_string(format));
	return r;
}

/* The TLS side of the migration stream, with the same credentials as the
 * frame link: the running VM (whose migration goes out) is the client and
 * checks the standby's certificate names the peer host; a standby is the
 * server, asks for a client certificate of the CA and lets only the peer
 * host's in. QEMU (GnuTLS) matches that by the certificate's distinguished
 * name, most specific part first, so the rule is CN=HOST, alone or first. */
static int setup_tls(struct colo_qemu *q, const struct colo_qemu_cfg *cfg,
		     struct json_object *params, char *err, size_t errlen)
{
	struct json_object *o = json_object_new_object();
	char cn[300], glob[310];

	json_object_object_add(o, "qom-type",
			       json_object_new_string("tls-creds-x509"));
	json_object_object_add(o, "id", json_object_new_string("colo-tls"));
	json_object_object_add(o, "dir", json_object_new_string(cfg->tls_dir));
	json_object_object_add(
		o, "endpoint",
		json_object_new_string(q->standby ? "server" : "client"));
	json_object_object_add(o, "verify-peer", json_object_new_boolean(1));
	if (colo_qmp_exec(q->qmp, "object-add", o, QMP_CMD_MS, NULL, err,
			  errlen) < 0)
		return -1;
	json_object_object_add(params, "tls-creds",
			       json_object_new_string("colo-tls"));
	if (!q->standby) {
		json_object_object_add(params, "tls-hostname",
				       json_object_new_string(cfg->tls_peer));
		return 0;
	}
	snprintf(cn, sizeof(cn), "CN=%s", cfg->tls_peer);
	snprintf(glob, sizeof(glob), "CN=%s,*", cfg->tls_peer);
	struct json_object *rules = json_object_new_array();
	json_object_array_add(rules, authz_rule(cn, "exact"));
	json_object_array_add(rules, authz_rule(glob, "glob"));
	o = json_object_new_object();
	json_object_object_add(o, "qom-type",
			       json_object_new_string("authz-list"));
	json_object_object_add(o, "id", json_object_new_string("colo-authz"));
	json_object_object_add(o, "policy", json_object_new_string("deny"));
	json_object_object_add(o, "rules", rules);
	if (colo_qmp_exec(q->qmp, "object-add", o, QMP_CMD_MS, NULL, err,
			  errlen) < 0)
		return -1;
	json_object_object_add(params, "tls-authz",
			       json_object_new_string("colo-authz"));
	return 0;
}

int colo_qemu_set_capability(struct colo_qemu *q, const char *name, bool on,
			     char *err, size_t errlen)
{
	return colo_qmp_exec(q->qmp, "migrate-set-capabilities",
			     capability(name, on), QMP_CMD_MS, NULL, err,
			     errlen);
}

static int setup_migration(struct colo_qemu *q, const struct colo_qemu_cfg *cfg,
			   char *err, size_t errlen)
{
	struct json_object *p;

	if (colo_qemu_set_capability(q, "x-ignore-shared", true, err, errlen) <
		    0 ||
	    colo_qemu_set_capability(q, "events", true, err, errlen) < 0)
		return -1;
	p = json_object_new_object();
	json_object_object_add(p, "max-bandwidth",
			       json_object_new_int64(1ll << 40));
	if (cfg->tls_dir && setup_tls(q, cfg, p, err, errlen) < 0) {
		json_object_put(p);
		return -1;
	}
	return colo_qmp_exec(q->qmp, "migrate-set-parameters", p, QMP_CMD_MS,
			     NULL, err, errlen);
}

/* -incoming defer, then migrate-incoming on port 0: the kernel picks a
 * free port (no race with other processes) and query-migrate tells it. */
static int listen_incoming(struct colo_qemu *q, const char *host, char *err,
			   size_t errlen)
{
	struct json_object *args = json_object_new_object(), *ret, *sa, *v;
	char uri[128];
	int rc = -1;

	bool v6 = strchr(host, ':') != NULL;

	snprintf(uri, sizeof(uri), v6 ? "tcp:[%s]:0" : "tcp:%s:0", host);
	json_object_object_add(args, "uri", json_object_new_string(uri));
	if (colo_qmp_exec(q->qmp, "migrate-incoming", args, QMP_CMD_MS, NULL,
			  err, errlen) < 0)
		return -1;
	if (colo_qmp_exec(q->qmp, "query-migrate", NULL, QMP_CMD_MS, &ret, err,
			  errlen) < 0)
		return -1;
	if (json_object_object_get_ex(ret, "socket-address", &sa) &&
	    json_object_is_type(sa, json_type_array) &&
	    json_object_array_length(sa) > 0 &&
	    json_object_object_get_ex(json_object_array_get_idx(sa, 0), "port",
				      &v)) {
		snprintf(q->migrate_uri, sizeof(q->migrate_uri),
			 v6 ? "tcp:[%s]:%s" : "tcp:%s:%s", host,
			 json_object_get_string(v));
		rc = 0;
	} else {
		snprintf(err, errlen,
			 "standby: query-migrate names no listening socket");
	}
	json_object_put(ret);
	return rc;
}

int colo_qemu_spawn(const struct colo_qemu_cfg *cfg, unsigned int gen,
		    bool standby, struct colo_qemu *q, char *err, size_t errlen)
{
	char backend[512], qmparg[160];
	char **argv;
	int n = 0, logfd;

	memset(q, 0, sizeof(*q));
	q->gen = gen;
	if ((size_t)snprintf(q->sock, sizeof(q->sock), "%s/qmp-%u.sock",
			     cfg->dir, gen) >= sizeof(q->sock)) {
		snprintf(err, errlen, "run directory path too long: %s",
			 cfg->dir);
		return -1;
	}
	snprintf(q->log, sizeof(q->log), "%s/qemu-%u.log", cfg->dir, gen);
	snprintf(backend, sizeof(backend),
		 "memory-backend-file,id=colo-ram,size=%llu,mem-path=%s,"
		 "share=%s",
		 (unsigned long long)cfg->ram_size, cfg->ram_path,
		 cfg->private_ram ? "off" : "on");
	snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", q->sock);
	unlink(q->sock);
	argv = calloc((size_t)cfg->nargs + 20, sizeof(*argv));
	if (!argv) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	argv[n++] = (char *)cfg->binary;
	for (int i = 0; i < cfg->nargs; i++)
		argv[n++] = cfg->args[i];
	argv[n++] = "-object";
	argv[n++] = backend;
	argv[n++] = "-machine";
	argv[n++] = "memory-backend=colo-ram";
	argv[n++] = "-qmp";
	argv[n++] = qmparg;
	if (cfg->netdev[0]) {
		argv[n++] = "-netdev";
		argv[n++] = (char *)cfg->netdev;
	}
	if (cfg->blockdev[0]) {
		argv[n++] = "-blockdev";
		argv[n++] = (char *)cfg->blockdev;
	}
	if (standby) {
		argv[n++] = "-S";
		argv[n++] = "-incoming";
		argv[n++] = "defer";
	}
	logfd = open(q->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0) {
		snprintf(err, errlen, "%s: %s", q->log, strerror(errno));
		free(argv);
		return -1;
	}
	q->pid = fork();
	if (q->pid == 0) {
		/* QEMU must not outlive the daemon that owns its RAM file. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execvp(cfg->binary, argv);
		dprintf(2, "exec %s: %s\n", cfg->binary, strerror(errno));
		_exit(127);
	}
	close(logfd);
	free(argv);
	if (q->pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		q->pid = 0;
		return -1;
	}
	q->standby = standby;
	return 0;
}

int colo_qemu_attach(struct colo_qemu *q, const struct colo_qemu_cfg *cfg,
		     char *err, size_t errlen)
{
	if (q->qmp)
		return 0;
	q->qmp = colo_qmp_connect(q->sock, QMP_START_MS, err, errlen);
	if (!q->qmp || setup_migration(q, cfg, err, errlen) < 0 ||
	    (q->standby &&
	     listen_incoming(q, cfg->migrate_host, err, errlen) < 0)) {
		size_t l = strlen(err);
		snprintf(err + l, errlen - l, " (QEMU log: %s)", q->log);
		colo_qemu_stop(q);
		return -1;
	}
	return 0;
}

int colo_qemu_start(const struct colo_qemu_cfg *cfg, unsigned int gen,
		    bool standby, struct colo_qemu *q, char *err, size_t errlen)
{
	if (colo_qemu_spawn(cfg, gen, standby, q, err, errlen) < 0)
		return -1;
	return colo_qemu_attach(q, cfg, err, errlen);
}

void colo_qemu_stop(struct colo_qemu *q)
{
	if (q->pid > 0) {
		kill(q->pid, SIGKILL);
		while (waitpid(q->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	q->pid = 0;
	colo_qmp_close(q->qmp);
	q->qmp = NULL;
	if (q->sock[0])
		unlink(q->sock);
}

bool colo_qemu_exited(struct colo_qemu *q)
{
	if (q->pid <= 0)
		return true;
	if (waitpid(q->pid, NULL, WNOHANG) == q->pid) {
		q->pid = 0;
		return true;
	}
	return false;
}

int colo_qemu_cont(struct colo_qemu *q, unsigned int timeout_ms, char *err,
		   size_t errlen)
{
	uint64_t deadline = colo_now_ns() + timeout_ms * COLO_NS_PER_MS;

	for (;;) {
		if (colo_qmp_exec(q->qmp, "cont", NULL, QMP_CMD_MS, NULL, err,
				  errlen) == 0)
			return 0;
		if (!strstr(err, "not finalized") || colo_now_ns() > deadline)
			return -1;
		usleep(200);
	}
}

int colo_qemu_identity(struct colo_qemu *q, char *version, size_t vlen,
		       char *machine, size_t mlen, char *err, size_t errlen)
{
	struct json_object *ret, *qv, *v, *args;
	int maj = 0, min = 0, mic = 0;

	if (colo_qmp_exec(q->qmp, "query-version", NULL, QMP_CMD_MS, &ret, err,
			  errlen) < 0)
		return -1;
	if (json_object_object_get_ex(ret, "qemu", &qv)) {
		if (json_object_object_get_ex(qv, "major", &v))
			maj = json_object_get_int(v);
		if (json_object_object_get_ex(qv, "minor", &v))
			min = json_object_get_int(v);
		if (json_object_object_get_ex(qv, "micro", &v))
			mic = json_object_get_int(v);
	}
	json_object_put(ret);
	snprintf(version, vlen, "%d.%d.%d", maj, min, mic);
	args = json_object_new_object();
	json_object_object_add(args, "path",
			       json_object_new_string("/machine"));
	json_object_object_add(args, "property",
			       json_object_new_string("type"));
	if (colo_qmp_exec(q->qmp, "qom-get", args, QMP_CMD_MS, &ret, err,
			  errlen) < 0)
		return -1;
	snprintf(machine, mlen, "%s",
		 json_object_is_type(ret, json_type_string)
			 ? json_object_get_string(ret)
			 : "?");
	json_object_put(ret);
	return 0;
}

/* Sleeps until QEMU says something or wait_ms passed. With the events
 * capability each migration state change is a MIGRATION event, so the
 * wait ends as the migration completes instead of at the next tick of a
 * poll; queued events are dropped (query-migrate is what counts, and a
 * stale event costs one more query). */
static void nap(struct colo_qemu *q, int wait_ms)
{
	struct pollfd p = { .fd = colo_qmp_fd(q->qmp), .events = POLLIN };
	struct json_object *ev;
	bool had = false;

	colo_qmp_poll_events(q->qmp);
	while ((ev = colo_qmp_next_event(q->qmp))) {
		json_object_put(ev);
		had = true;
	}
	if (!had)
		poll(&p, 1, wait_ms);
}

int colo_qemu_wait_migration(struct colo_qemu *q, unsigned int timeout_ms,
			     char *err, size_t errlen)
{
	uint64_t deadline = colo_now_ns() + timeout_ms * COLO_NS_PER_MS;

	for (;;) {
		struct json_object *ret, *st;
		char status[32] = "";

		if (colo_qmp_exec(q->qmp, "query-migrate", NULL, QMP_CMD_MS,
				  &ret, err, errlen) < 0)
			return -1;
		if (json_object_object_get_ex(ret, "status", &st))
			snprintf(status, sizeof(status), "%s",
				 json_object_get_string(st));
		json_object_put(ret);
		if (!strcmp(status, "completed"))
			return 0;
		if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
			snprintf(err, errlen, "migration %s (QEMU log: %s)",
				 status, q->log);
			return -1;
		}
		if (colo_now_ns() > deadline) {
			snprintf(err, errlen,
				 "migration not completed in time "
				 "(status '%s')",
				 status);
			return -1;
		}
		nap(q, 2);
	}
}

void colo_qemu_cancel_migration(struct colo_qemu *q, unsigned int timeout_ms)
{
	static const char *const running[] = { "setup", "active", "cancelling",
					       "pre-switchover", "device" };
	uint64_t deadline = colo_now_ns() + timeout_ms * COLO_NS_PER_MS;

	colo_qmp_exec(q->qmp, "migrate_cancel", NULL, QMP_CMD_MS, NULL, NULL,
		      0);
	for (;;) {
		struct json_object *ret, *st;
		bool busy = false;

		if (colo_qmp_exec(q->qmp, "query-migrate", NULL, QMP_CMD_MS,
				  &ret, NULL, 0) < 0)
			return;
		if (json_object_object_get_ex(ret, "status", &st))
			for (size_t i = 0;
			     i < sizeof(running) / sizeof(*running); i++)
				busy |= !strcmp(json_object_get_string(st),
						running[i]);
		json_object_put(ret);
		if (!busy || colo_now_ns() > deadline)
			return;
		nap(q, 2);
	}
}

int colo_qemu_dump(struct colo_qemu *q, uint64_t ram_size, const char *path,
		   char *err, size_t errlen)
{
	struct json_object *args = json_object_new_object();

	json_object_object_add(args, "val", json_object_new_int64(0));
	json_object_object_add(args, "size",
			       json_object_new_int64((int64_t)ram_size));
	json_object_object_add(args, "filename", json_object_new_string(path));
	return colo_qmp_exec(q->qmp, "pmemsave", args, 60000, NULL, err,
			     errlen);
}
