/*
 * pair_config.h - PAIR.conf, the one file that describes a protected pair
 * and is the same on both hosts. INI, parsed by libinih (Debian libinih):
 * a format operators know, and no parser of our own.
 *
 *   [pair]        name, link_port, run_dir, authkey, hook
 *   [host NAME]   exactly two: link, ring, client, guest, credentials
 *   [witness]     address, port
 *   [timeouts]    lease_ms, margin_ms, token_ms, qdevice_ms
 *   [guest]       kind (netns or vm), disk; for vm: qemu_args (may go on
 *                 over indented lines), ram_dir, vm_port, qemu, interval_ms
 *
 * Every error names the file, the line and the key (or, for a missing key,
 * the section), so a typo is found without reading this code.
 */
#ifndef COLO_CLUSTER_PAIR_CONFIG_H
#define COLO_CLUSTER_PAIR_CONFIG_H

#include <net/if.h>
#include <stddef.h>
#include <stdint.h>

#include "shell_words.h"

#define COLO_PAIR_NAME_MAX 32  /* corosync's cluster_name limit is 31 */
#define COLO_PAIR_ADDR_MAX 64  /* textual IPv4 or IPv6 address */
#define COLO_PAIR_PATH_MAX 200 /* inih's lines are 200 bytes anyway */
#define COLO_PAIR_ERR_MAX  512

enum colo_guest_kind {
	COLO_GUEST_NETNS, /* the guest is already there (tests/e2e's netns) */
	COLO_GUEST_VM,	  /* colo up runs it under colo vm (the frame) */
};

struct colo_pair_host {
	char name[COLO_PAIR_NAME_MAX];
	unsigned int nodeid;	       /* corosync node id: order in the file */
	char link[COLO_PAIR_ADDR_MAX]; /* replication link (proxy, blk) */
	char ring[COLO_PAIR_ADDR_MAX]; /* corosync ring0 (knet) */
	char client_if[IFNAMSIZ];      /* client-facing interface */
	char guest_if[IFNAMSIZ];       /* the guest's tap or veth */
	char credentials[COLO_PAIR_PATH_MAX]; /* the proxy link's TLS creds */
	unsigned int line;		      /* of its [host NAME] header */
	uint64_t seen;			      /* bit per key met */
};

struct colo_pair_config {
	char file[COLO_PAIR_PATH_MAX]; /* for messages */
	char name[COLO_PAIR_NAME_MAX];
	uint16_t link_port; /* proxy link; blk uses link_port + 1 */
	char run_dir[COLO_PAIR_PATH_MAX]; /* control sockets, logs */
	char authkey[COLO_PAIR_PATH_MAX]; /* corosync's knet key, both hosts */
	char hook[COLO_PAIR_PATH_MAX];	  /* run on role changes; may be "" */
	struct colo_pair_host host[2];
	unsigned int nhosts;
	char witness[COLO_PAIR_ADDR_MAX];
	uint16_t witness_port;
	uint32_t lease_ms, margin_ms, token_ms;
	uint32_t qdevice_ms; /* qdevice's timeout; 0: corosync's default */
	enum colo_guest_kind guest_kind;
	char disk[COLO_PAIR_PATH_MAX]; /* empty: no block replication */
	/* kind = vm: what colo vm needs */
	struct colo_words qemu_args;	  /* the guest's, after "--" */
	char ram_dir[COLO_PAIR_PATH_MAX]; /* RAM_DIR/HOST is colo vm's --dir */
	uint16_t vm_port;		  /* frame link; 0: link_port + 2 */
	char qemu[COLO_PAIR_PATH_MAX];	  /* "": colo vm's default binary */
	uint32_t interval_ms;		  /* periodic checkpoints; 0: off */
	uint64_t seen;			  /* keys met, 8 bits per section */
};

/* pair_config.c APIs: */
/* Parses text (len bytes, any bytes) named file in messages. Returns 0,
 * or -1 with "FILE:LINE: ..." in err. Never aborts on any input. */
int colo_pair_parse(const char *file, const char *text, size_t len,
		    struct colo_pair_config *cfg, char *err, size_t errlen);
/* Reads and parses a file (at most 1 MiB). */
int colo_pair_load(const char *path, struct colo_pair_config *cfg, char *err,
		   size_t errlen);
/* Which host is this machine: the one named, or else the one whose ring
 * or link address is on a local interface. Returns 0 or 1, or -1 with a
 * reason in err. */
int colo_pair_find_self(const struct colo_pair_config *cfg, const char *name,
			char *err, size_t errlen);
/* Both, for a command: loads path and finds this host (named, or found),
 * saying on stderr what failed as "PROG: reason". Returns 0 or 1, or
 * -1. */
int colo_pair_open(const char *prog, const char *path, const char *host,
		   struct colo_pair_config *cfg);

#endif
