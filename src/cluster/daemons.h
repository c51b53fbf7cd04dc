/*
 * daemons.h - the command lines of the daemons a host runs for its role,
 * derived from PAIR.conf: `colo up --check` prints them and the
 * supervisor starts them, so what is printed is what runs.
 */
#ifndef COLO_CLUSTER_DAEMONS_H
#define COLO_CLUSTER_DAEMONS_H

#include <stdbool.h>

#include "pair_config.h"

enum colo_role { COLO_ROLE_NONE, COLO_ROLE_PRIMARY, COLO_ROLE_SECONDARY };

/* In start order: colo vm's QEMU connects to the proxy's guest port. */
enum colo_daemon {
	COLO_DAEMON_PROXY,
	COLO_DAEMON_BLK,
	COLO_DAEMON_VM,
	COLO_DAEMON_COUNT
};

#define COLO_ARGV_MAX 96 /* colo vm's own options and the guest's words */
#define COLO_ARG_LEN  256

struct colo_argv {
	char buf[COLO_ARGV_MAX][COLO_ARG_LEN];
	char *argv[COLO_ARGV_MAX + 1];
	int argc;
};

/* daemons.c APIs: */
const char *colo_role_name(enum colo_role r);
/* "proxy", "blk" or "vm". */
const char *colo_daemon_name(enum colo_daemon d);
/* The control socket of a daemon of this host: RUN_DIR/NAME-proxy.sock,
 * RUN_DIR/NAME-blk.sock or RUN_DIR/NAME-vm.sock (the host's name keeps
 * two hosts sharing a run directory, as in tests, apart). */
void colo_daemon_socket(const struct colo_pair_config *cfg, int self,
			enum colo_daemon d, char *out, size_t len);
/* With a [guest] disk: colo blk's NBD export, RUN_DIR/NAME-disk.sock,
 * the guest's drive (colo vm's --disk with kind = vm). */
void colo_daemon_disk_socket(const struct colo_pair_config *cfg, int self,
			     char *out, size_t len);
/* The peer's blk replication address, HOST:PORT (link, link_port + 1):
 * a primary blk's --secondary, a survivor's "replicate". */
void colo_daemon_blk_peer(const struct colo_pair_config *cfg, int self,
			  char *out, size_t len);
/* kind = vm: the proxy's guest port, RUN_DIR/NAME-guest.sock, that every
 * QEMU of colo vm connects to. */
void colo_daemon_guest_socket(const struct colo_pair_config *cfg, int self,
			      char *out, size_t len);
/* Whether this pair runs daemon d at all (blk only with a [guest] disk,
 * vm only with kind = vm). */
bool colo_daemon_wanted(const struct colo_pair_config *cfg, enum colo_daemon d);
/* argv for daemon d of host self in role r, colo being the binary. */
void colo_daemon_argv(const struct colo_pair_config *cfg, int self,
		      enum colo_role r, enum colo_daemon d, const char *colo,
		      struct colo_argv *out);
/* colo vm's argv as colo_daemon_argv gives it, in RAM directory
 * generation dir_gen (RAM_DIR/HOST, RAM_DIR/HOST.N: a promoted primary
 * must not touch the RAM file its predecessor's VM still maps) and with
 * --promote promote_from unless NULL. */
void colo_daemon_vm_argv(const struct colo_pair_config *cfg, int self,
			 enum colo_role r, const char *colo,
			 unsigned int dir_gen, const char *promote_from,
			 struct colo_argv *out);

#endif
