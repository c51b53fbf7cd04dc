/*
 * qemu_args.c - which guest arguments `colo vm` accepts. The frame owns
 * the guest's RAM backend, its monitor and its incoming migration, so the
 * user's own versions of those are refused with the reason, instead of
 * QEMU failing later with a message about an option the user never saw.
 */
#include <stdio.h>
#include <string.h>

#include "common/sock_spec.h"
#include "qemu.h"

struct refused {
	const char *opt;
	const char *why;
};

static const struct refused refused[] = {
	{ "-incoming", "colo vm starts standbys with -incoming itself" },
	{ "-qmp", "colo vm owns the QMP monitor" },
	{ "-qmp-pretty", "colo vm owns the QMP monitor" },
	{ "-mem-path", "guest RAM must be on colo vm's shared file backend" },
	{ "-numa", "guest RAM must be one block on colo vm's backend" },
	{ "-daemonize", "colo vm must own the QEMU process" },
	{ "-loadvm", "the secondary must start from the primary's state" },
	{ "-S", "colo vm decides when each VM runs" },
	{ "-snapshot", "writes would be lost at failover" },
};

/* "256M", "1G", "512" (MiB, as QEMU reads a bare -m number). */
static int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1ull << 20;
	size_t i = 0;

	if (!s[0])
		return -1;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0)
		return -1;
	if (s[i]) {
		switch (s[i]) {
		case 'k':
		case 'K':
			mul = 1ull << 10;
			break;
		case 'm':
		case 'M':
			mul = 1ull << 20;
			break;
		case 'g':
		case 'G':
			mul = 1ull << 30;
			break;
		default:
			return -1;
		}
		if (s[i + 1] && strcmp(s + i + 1, "B") &&
		    strcmp(s + i + 1, "iB"))
			return -1;
	}
	if (v == 0 || v > (1ull << 44) / mul)
		return -1;
	*out = v * mul;
	return 0;
}

int colo_qemu_check_args(char **args, int nargs, uint64_t *ram_size, char *err,
			 size_t errlen)
{
	*ram_size = 128ull << 20;
	for (int i = 0; i < nargs; i++) {
		const char *a = args[i];
		const char *opt = a[0] == '-' && a[1] == '-' ? a + 1 : a;

		for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]);
		     k++)
			if (!strcmp(opt, refused[k].opt)) {
				snprintf(err, errlen, "guest argument %s: %s",
					 a, refused[k].why);
				return -1;
			}
		if ((!strcmp(opt, "-object") || !strcmp(opt, "-machine") ||
		     !strcmp(opt, "-M")) &&
		    i + 1 < nargs && strstr(args[i + 1], "memory-backend")) {
			snprintf(err, errlen,
				 "guest argument %s %s: colo vm puts guest RAM "
				 "on its own memory backend",
				 a, args[i + 1]);
			return -1;
		}
		if (!strcmp(opt, "-m")) {
			char val[64];
			const char *v, *comma;

			if (i + 1 >= nargs) {
				snprintf(err, errlen, "-m needs a size");
				return -1;
			}
			v = args[++i];
			if (!strncmp(v, "size=", 5))
				v += 5;
			comma = strchr(v, ',');
			if (comma && (strstr(comma, "slots") ||
				      strstr(comma, "maxmem"))) {
				snprintf(err, errlen,
					 "-m %s: memory hotplug is not "
					 "supported under colo vm",
					 args[i]);
				return -1;
			}
			size_t n = comma ? (size_t)(comma - v) : strlen(v);
			if (n >= sizeof(val)) {
				snprintf(err, errlen, "-m %s: bad size",
					 args[i]);
				return -1;
			}
			memcpy(val, v, n);
			val[n] = '\0';
			if (parse_size(val, ram_size) < 0 || *ram_size % 4096) {
				snprintf(err, errlen, "-m %s: bad size",
					 args[i]);
				return -1;
			}
		}
	}
	return 0;
}

/* The NIC is wired by colo vm, not by the user, so that every QEMU it
 * starts (the VM, each standby) connects to the same proxy guest port: a
 * standby connects while the VM it will replace is attached and waits in
 * the port's listen queue until that VM is retired (doc/colo-vm.1.md). */
int colo_qemu_nic_arg(struct colo_qemu_cfg *cfg, const char *sock, char *err,
		      size_t errlen)
{
	struct colo_sock_spec spec;
	char why[256];
	int n;

	if (colo_sock_spec_parse(sock, &spec, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "--nic %s: %s", sock, why);
		return -1;
	}
	if (colo_sock_spec_is_listen(&spec) || strchr(sock, ',')) {
		snprintf(err, errlen,
			 "--nic %s: give the proxy's guest port as "
			 "tcp:HOST:PORT or unix:PATH (no commas)",
			 sock);
		return -1;
	}
	if (spec.kind == COLO_SOCK_TCP_CONNECT)
		n = snprintf(cfg->netdev, sizeof(cfg->netdev),
			     strchr(spec.host, ':')
				     ? "socket,id=colo-nic,connect=[%s]:%s"
				     : "socket,id=colo-nic,connect=%s:%s",
			     spec.host, spec.port);
	else
		n = snprintf(cfg->netdev, sizeof(cfg->netdev),
			     "stream,id=colo-nic,server=off,addr.type=unix,"
			     "addr.path=%s",
			     spec.path);
	if (n < 0 || (size_t)n >= sizeof(cfg->netdev)) {
		snprintf(err, errlen, "--nic %s: too long", sock);
		return -1;
	}
	return 0;
}

/* The disk is wired by colo vm for the same reason as the NIC: every QEMU
 * it starts opens the same colo blk export. A standby connects while the
 * VM it will replace is still connected (the export serves several
 * clients at once) and, started with -incoming, keeps the disk inactive
 * until it has loaded the device state. No export name: colo blk serves
 * its export to clients that ask for the default one. */
int colo_qemu_disk_arg(struct colo_qemu_cfg *cfg, const char *sock, char *err,
		       size_t errlen)
{
	struct colo_sock_spec spec;
	char why[256];
	int n;

	if (colo_sock_spec_parse(sock, &spec, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "--disk %s: %s", sock, why);
		return -1;
	}
	if (colo_sock_spec_is_listen(&spec) || strchr(sock, ',')) {
		snprintf(err, errlen,
			 "--disk %s: give colo blk's export as tcp:HOST:PORT "
			 "or unix:PATH (no commas)",
			 sock);
		return -1;
	}
	if (spec.kind == COLO_SOCK_TCP_CONNECT)
		n = snprintf(cfg->blockdev, sizeof(cfg->blockdev),
			     "driver=nbd,node-name=colo-disk,server.type=inet,"
			     "server.host=%s,server.port=%s",
			     spec.host, spec.port);
	else
		n = snprintf(cfg->blockdev, sizeof(cfg->blockdev),
			     "driver=nbd,node-name=colo-disk,server.type=unix,"
			     "server.path=%s",
			     spec.path);
	if (n < 0 || (size_t)n >= sizeof(cfg->blockdev)) {
		snprintf(err, errlen, "--disk %s: too long", sock);
		return -1;
	}
	return 0;
}
