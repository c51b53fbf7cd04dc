/*
 * daemons.c - what `colo up` runs on a host, per role.
 *
 * The primary's proxy listens on its own link address and the secondary's
 * connects to the primary's: the addresses come from the host sections,
 * the direction from the role decided at run time, never from the order
 * of the hosts in the file.
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

void colo_daemon_socket(const struct colo_pair_config *cfg, int self,
			enum colo_daemon d, char *out, size_t len)
{
	snprintf(out, len, "%s/%s-%s.sock", cfg->run_dir, cfg->host[self].name,
		 d == COLO_DAEMON_PROXY ? "proxy" : "blk");
}

bool colo_daemon_wanted(const struct colo_pair_config *cfg, enum colo_daemon d)
{
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
static void add_hostport(struct colo_argv *a, const char *addr,
			 unsigned int port)
{
	if (strchr(addr, ':'))
		add(a, "[%s]:%u", addr, port);
	else
		add(a, "%s:%u", addr, port);
}

void colo_daemon_argv(const struct colo_pair_config *cfg, int self,
		      enum colo_role r, enum colo_daemon d, const char *colo,
		      struct colo_argv *out)
{
	const struct colo_pair_host *me = &cfg->host[self];
	const struct colo_pair_host *peer = &cfg->host[!self];
	bool primary = r == COLO_ROLE_PRIMARY;
	char sock[COLO_ARG_LEN];

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
		add(out, "packet:%s", me->guest_if);
		add(out, primary ? "--link-listen" : "--link-connect");
		add_hostport(out, primary ? me->link : peer->link,
			     cfg->link_port);
		add(out, "--control");
		add(out, "%s", sock);
		/* colo up pushes the lease; nothing leaves before it */
		add(out, "--lease-required");
		/* The link in TLS: identity is the host, so the peer's
		 * certificate must carry its [host NAME]. */
		if (me->credentials[0]) {
			add(out, "--tls-creds");
			add(out, "%s", me->credentials);
			add(out, "--tls-peer");
			add(out, "%s", peer->name);
		}
		return;
	}
	add(out, "blk");
	add(out, "%s", colo_role_name(r));
	add(out, "--image");
	add(out, "%s", cfg->disk);
	if (primary) {
		add(out, "--secondary");
		add_hostport(out, peer->link, cfg->link_port + 1u);
	} else {
		add(out, "--listen");
		add_hostport(out, me->link, cfg->link_port + 1u);
	}
	/* The replication link with the same credentials as the proxy's. */
	if (me->credentials[0]) {
		add(out, "--tls-creds");
		add(out, "%s", me->credentials);
		add(out, "--tls-peer");
		add(out, "%s", peer->name);
	}
	add(out, "--export");
	add(out, "unix-listen:%s/%s-disk.sock", cfg->run_dir, me->name);
	add(out, "--control");
	add(out, "%s", sock);
}
