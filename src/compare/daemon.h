/*
 * daemon.h - the `colo compare` daemon: sockets in, comparer, sockets out.
 *
 * cmd_compare.c turns the command line into a colo_daemon_config; the
 * daemon runs the event loop until SIGTERM or SIGINT.
 */
#ifndef COLO_DAEMON_H
#define COLO_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "sock_spec.h"

struct colo_daemon_config {
	struct colo_sock_spec primary, secondary, out, notify;
	bool has_notify;
	bool vnet_hdr;
	bool quiet;
	uint64_t compare_timeout_ms; /* default 3000 */
	uint64_t scan_interval_ms;   /* default 1000 */
	uint32_t max_queue;	     /* default 1024 */
	uint32_t max_flows;	     /* 0: the engine's default */
	uint64_t stats_interval_s;   /* 0: only on SIGUSR1 and at exit */
};

/* daemon.c APIs: */
/* Returns the process exit code: 0 after SIGTERM/SIGINT, 1 when the
 * daemon cannot start (a socket cannot be opened, no memory). */
int colo_daemon_run(const struct colo_daemon_config *cfg);

#endif
