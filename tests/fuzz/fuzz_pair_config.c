/*
 * fuzz_pair_config.c - PAIR.conf's parser on arbitrary bytes: it either
 * accepts (and then everything it filled is a terminated string) or
 * refuses with a message that names the file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "corosync_conf.h"
#include "daemons.h"
#include "pair_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct colo_pair_config cfg;
	char err[COLO_PAIR_ERR_MAX];
	struct colo_argv a;
	FILE *f;

	if (colo_pair_parse("f.conf", (const char *)data, size, &cfg, err,
			    sizeof(err))) {
		if (strncmp(err, "f.conf", 6))
			abort();
		return 0;
	}
	if (cfg.nhosts != 2 ||
	    !memchr(cfg.host[1].ring, 0, sizeof(cfg.host[1].ring)))
		abort();
	f = fopen("/dev/null", "w");
	if (f) {
		colo_corosync_conf_print(&cfg,
					 "colo status --is-primary f.conf", f);
		fclose(f);
	}
	for (int self = 0; self < 2; self++)
		for (int d = 0; d < COLO_DAEMON_COUNT; d++) {
			colo_daemon_argv(&cfg, self, COLO_ROLE_SECONDARY,
					 (enum colo_daemon)d, "colo", &a);
			/* a full argv would have dropped words silently */
			if (a.argc >= COLO_ARGV_MAX)
				abort();
		}
	colo_daemon_vm_argv(&cfg, 0, COLO_ROLE_PRIMARY, "colo", 7,
			    "/run/colo/a-vm.sock.old", &a);
	if (a.argc >= COLO_ARGV_MAX)
		abort();
	return 0;
}
