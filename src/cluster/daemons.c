/*
 * daemons.c - what `colo up` runs on a host, per role.
 *
 * The primary's proxy listens on its own link address and the secondary's
 * connects to the primary's: the addresses come from the host sections,
 * the direction from the role decided at run time, never from the order
 * of the hosts in the file. With kind = vm the proxy's guest port is a
 * socket that colo vm's QEMUs connect to, and colo vm (the frame) runs
 * the guest, its frame link in TLS with the host's credentials; with a
 * [guest] disk, its drive on colo blk's export and its checkpoints
 * covering blk (--disk, --blk-control).
 */
#include "daemons.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *colo_role_name(enum colo_role r)
{
	switch (r) {
	case COLO_ROLE_PRIMARY:
		return "primary";
	case COLO_ROLE_SECONDARY:
		return "secondary";
	default:
		return "none";
	}
}

const char *colo_daemon_name(enum colo_daemon d)
{
	static const char *const names[COLO_DAEMON_COUNT] = { "proxy", "blk",
							      "vm" };

	return d < COLO_DAEMON_COUNT ? names[d] : "?";
}

void colo_daemon_socket(const struct colo_pair_config *cfg, int self,
			enum colo_daemon d, char *out, size_t len)
{
	snprintf(out, len, "%s/%s-%s.sock", cfg->run_dir, cfg->host[self].name,
		 colo_daemon_name(d));
}

void colo_daemon_disk_socket(const struct colo_pair_config *cfg, int self,
			     char *out, size_t len)
{
	snprintf(out, len, "%s/%s-disk.sock", cfg->run_dir,
		 cfg->host[self].name);
}

void colo_daemon_guest_socket(const struct colo_pair_config *cfg, int self,
			      char *out, size_t len)
{
	snprintf(out, len, "%s/%s-guest.sock", cfg->run_dir,
		 cfg->host[self].name);
}

bool colo_daemon_wanted(const struct colo_pair_config *cfg, enum colo_daemon d)
{
	if (d == COLO_DAEMON_VM)
		return cfg->guest_kind == COLO_GUEST_VM;
	return d == COLO_DAEMON_PROXY || cfg->disk[0];
}

static void add(struct colo_argv *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void add(struct colo_argv *a, const char *fmt, ...)
{
	va_list ap;

	if (a->argc >= COLO_ARGV_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(a->buf[a->argc], COLO_ARG_LEN, fmt, ap);
	va_end(ap);
	a->argv[a->argc] = a->buf[a->argc];
	a->argv[++a->argc] = NULL;
}

/* host:port, with brackets around an IPv6 address. */
static void hostport(char *out, size_t len, const char *addr, unsigned int port)
{
	if (strchr(addr, ':'))
		snprintf(out, len, "[%s]:%u", addr, port);
	else
		snprintf(out, len, "%s:%u", addr, port);
}

static void add_hostport(struct colo_argv *a, const char *addr,
			 unsigned int port)
{
	char hp[COLO_PAIR_ADDR_MAX + 16];

	hostport(hp, sizeof(hp), addr, port);
	add(a, "%s", hp);
}

void colo_daemon_blk_peer(const struct colo_pair_config *cfg, int self,
			  char *out, size_t len)
{
	hostport(out, len, cfg->host[!self].link, cfg->link_port + 1u);
}

/* A link in TLS: identity is the host, so the peer's certificate must
 * carry its [host NAME]. */
static void add_tls(struct colo_argv *a, const struct colo_pair_host *me,
		    const struct colo_pair_host *peer)
{
	if (!me->credentials[0])
		return;
	add(a, "--tls-creds");
	add(a, "%s", me->credentials);
	add(a, "--tls-peer");
	add(a, "%s", peer->name);
}

/* colo vm: the frame link on the same addresses as the proxy's, the NIC
 * on the proxy's guest port, checkpoints on the proxy's requests. */
void colo_daemon_vm_argv(const struct colo_pair_config *cfg, int self,
			 enum colo_role r, const char *colo,
			 unsigned int dir_gen, const char *promote_from,
			 struct colo_argv *out)
{
	const struct colo_pair_host *me = &cfg->host[self];
	const struct colo_pair_host *peer = &cfg->host[!self];
	bool primary = r == COLO_ROLE_PRIMARY;
	char path[COLO_ARG_LEN];

	out->argc = 0;
	out->argv[0] = NULL;
	add(out, "%s", colo);
	add(out, "vm");
	add(out, "--role");
	add(out, "%s", colo_role_name(r));
	add(out, "--dir");
	if (dir_gen)
		add(out, "%s/%s.%u", cfg->ram_dir, me->name, dir_gen);
	else
		add(out, "%s/%s", cfg->ram_dir, me->name);
	add(out, primary ? "--link-listen" : "--link-connect");
	add_hostport(out, primary ? me->link : peer->link, cfg->vm_port);
	add(out, "--control");
	colo_daemon_socket(cfg, self, COLO_DAEMON_VM, path, sizeof(path));
	add(out, "%s", path);
	colo_daemon_guest_socket(cfg, self, path, sizeof(path));
	add(out, "--nic");
	add(out, "unix:%s", path);
	colo_daemon_socket(cfg, self, COLO_DAEMON_PROXY, path, sizeof(path));
	add(out, "--proxy-control");
	add(out, "%s", path);
	add_tls(out, me, peer);
	/* The disk inside every checkpoint (blk_hook.c): QEMU's drive on
	 * this host's blk export, prepare/commit/failover on its control
	 * socket. The failover of blk is colo vm's, with the guest's view:
	 * colo up does not send its own (up.c do_failover). */
	if (cfg->disk[0]) {
		colo_daemon_disk_socket(cfg, self, path, sizeof(path));
		add(out, "--disk");
		add(out, "unix:%s", path);
		colo_daemon_socket(cfg, self, COLO_DAEMON_BLK, path,
				   sizeof(path));
		add(out, "--blk-control");
		add(out, "%s", path);
	}
	if (cfg->qemu[0]) {
		add(out, "--qemu");
		add(out, "%s", cfg->qemu);
	}
	add(out, "--interval");
	add(out, "%u", cfg->interval_ms);
	if (promote_from) {
		add(out, "--promote");
		add(out, "%s", promote_from);
	}
	add(out, "--");
	for (unsigned int i = 0; i < cfg->qemu_args.n; i++)
		add(out, "%s", colo_words_at(&cfg->qemu_args, i));
}

void colo_daemon_argv(const struct colo_pair_config *cfg, int self,
		      enum colo_role r, enum colo_daemon d, const char *colo,
		      struct colo_argv *out)
{
	const struct colo_pair_host *me = &cfg->host[self];
	const struct colo_pair_host *peer = &cfg->host[!self];
	bool primary = r == COLO_ROLE_PRIMARY;
	char sock[COLO_ARG_LEN], path[COLO_ARG_LEN];

	if (d == COLO_DAEMON_VM) {
		colo_daemon_vm_argv(cfg, self, r, colo, 0, NULL, out);
		return;
	}
	out->argc = 0;
	out->argv[0] = NULL;
	add(out, "%s", colo);
	colo_daemon_socket(cfg, self, d, sock, sizeof(sock));
	if (d == COLO_DAEMON_PROXY) {
		add(out, "proxy");
		add(out, "--role");
		add(out, "%s", colo_role_name(r));
		add(out, "--client");
		add(out, "packet:%s", me->client_if);
		add(out, "--guest");
		if (cfg->guest_kind == COLO_GUEST_VM) {
			colo_daemon_guest_socket(cfg, self, path, sizeof(path));
			add(out, "qemu:unix-listen:%s", path);
		} else {
			add(out, "packet:%s", me->guest_if);
		}
		add(out, primary ? "--link-listen" : "--link-connect");
		add_hostport(out, primary ? me->link : peer->link,
			     cfg->link_port);
		add(out, "--control");
		add(out, "%s", sock);
		/* colo up pushes the lease; nothing leaves before it */
		add(out, "--lease-required");
		add_tls(out, me, peer);
		return;
	}
	add(out, "blk");
	add(out, "%s", colo_role_name(r));
	add(out, "--image");
	add(out, "%s", cfg->disk);
	if (primary) {
		add(out, "--secondary");
		colo_daemon_blk_peer(cfg, self, path, sizeof(path));
		add(out, "%s", path);
	} else {
		add(out, "--listen");
		add_hostport(out, me->link, cfg->link_port + 1u);
	}
	/* The replication link with the same credentials as the proxy's. */
	add_tls(out, me, peer);
	add(out, "--export");
	colo_daemon_disk_socket(cfg, self, path, sizeof(path));
	add(out, "unix-listen:%s", path);
	add(out, "--control");
	add(out, "%s", sock);
}
