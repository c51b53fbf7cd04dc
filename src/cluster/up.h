/*
 * up.h - the supervisor behind `colo up PAIR.conf`: decides this host's
 * role with its peer through corosync, holds the primary's lease, runs
 * the role's daemons and fails them over when the lease rules allow.
 */
#ifndef COLO_CLUSTER_UP_H
#define COLO_CLUSTER_UP_H

#include "pair_config.h"

/* up.c APIs: */
/* Runs until SIGTERM/SIGINT (0) or a fatal error (1): corosync gone, a
 * daemon died. colo is the path of the colo binary to run daemons with. */
int colo_up_run(const struct colo_pair_config *cfg, int self, const char *colo);
/* RUN_DIR/NAME-up.json: the supervisor's state, rewritten at each
 * change, read by `colo status`. */
void colo_up_state_path(const struct colo_pair_config *cfg, int self, char *out,
			size_t len);
/* RUN_DIR/NAME-up.sock: the supervisor's control socket (`colo
 * switchover` asks it). */
void colo_up_socket_path(const struct colo_pair_config *cfg, int self,
			 char *out, size_t len);

#endif
