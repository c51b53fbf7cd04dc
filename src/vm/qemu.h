/*
 * qemu.h - the QEMU processes `colo vm` owns: the user's guest arguments
 * checked, the COLO wiring added (guest RAM on a shared file backend, a
 * QMP socket, `-S -incoming defer` for a standby), each process started
 * with its own QMP connection and console log, and stopped again.
 */
#ifndef COLO_VM_QEMU_H
#define COLO_VM_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct colo_qmp;

struct colo_qemu_cfg {
	const char *binary; /* qemu-system-x86_64 */
	char **args;	    /* the user's guest arguments */
	int nargs;
	const char *dir; /* this host's run directory */
	const char *ram_path;
	uint64_t ram_size;
	const char *migrate_host; /* standby listens here (secondary) */
	/* Secondary: QEMU maps the RAM file copy-on-write (share=off), so
	 * the file itself stays the last checkpoint while the VM runs. */
	bool private_ram;
	/* --tls-creds (absolute) and --tls-peer: every migration in TLS,
	 * the standby accepting only the peer host's QEMU. NULL: plain. */
	const char *tls_dir;
	const char *tls_peer;
	/* "-netdev ..." value putting netdev colo-nic on this host's proxy
	 * guest port, or "" for no NIC wiring (colo_qemu_nic_arg). */
	char netdev[256];
	/* "-blockdev ..." value putting node colo-disk on this host's colo
	 * blk NBD export, or "" for none (colo_qemu_disk_arg). */
	char blockdev[512];
};

struct colo_qemu {
	pid_t pid;
	unsigned int gen; /* 1, 2, ...: names its socket and log */
	struct colo_qmp *qmp;
	char sock[108];
	char log[256];
	bool standby;
	char migrate_uri[128]; /* standby: where it listens */
};

/* qemu_args.c APIs (pure): */
/* Turns --nic SOCK (tcp:HOST:PORT or unix:PATH, the proxy's qemu: guest
 * port) into the -netdev value of netdev "colo-nic" in cfg->netdev. */
int colo_qemu_nic_arg(struct colo_qemu_cfg *cfg, const char *sock, char *err,
		      size_t errlen);
/* Turns --disk SOCK (tcp:HOST:PORT or unix:PATH, the colo blk export)
 * into the -blockdev value of node "colo-disk" in cfg->blockdev. */
int colo_qemu_disk_arg(struct colo_qemu_cfg *cfg, const char *sock, char *err,
		       size_t errlen);
/* Refuses arguments that cannot work under the frame and finds the guest
 * RAM size (-m; QEMU's 128 MiB default when absent). 0, or -1 with the
 * reason in err. */
int colo_qemu_check_args(char **args, int nargs, uint64_t *ram_size, char *err,
			 size_t errlen);

/* qemu.c APIs: */
/* Starts gen as the running VM (standby false) or as a standby waiting
 * for the checkpoint's device state; returns once QMP answers and, for a
 * standby, its migration socket listens. 0, or -1 with err (nothing left
 * running). */
int colo_qemu_start(const struct colo_qemu_cfg *cfg, unsigned int gen,
		    bool standby, struct colo_qemu *q, char *err,
		    size_t errlen);
/* The two halves of colo_qemu_start: spawn returns at once, so a standby
 * boots while the pair runs; attach waits for its QMP (no-op when
 * attached). */
int colo_qemu_spawn(const struct colo_qemu_cfg *cfg, unsigned int gen,
		    bool standby, struct colo_qemu *q, char *err,
		    size_t errlen);
int colo_qemu_attach(struct colo_qemu *q, const struct colo_qemu_cfg *cfg,
		     char *err, size_t errlen);
/* Kills the process (it holds nothing the frame still needs) and reaps
 * it; safe on a stopped or never-started instance. */
void colo_qemu_stop(struct colo_qemu *q);
/* Whether the process has exited (reaps it). */
bool colo_qemu_exited(struct colo_qemu *q);
/* `cont`, retried while QEMU says the migration is not finalized yet. */
int colo_qemu_cont(struct colo_qemu *q, unsigned int timeout_ms, char *err,
		   size_t errlen);
/* QEMU version ("7.2.22") and machine type, for the peers' check. */
int colo_qemu_identity(struct colo_qemu *q, char *version, size_t vlen,
		       char *machine, size_t mlen, char *err, size_t errlen);
/* migrate-set-capabilities of one capability. */
int colo_qemu_set_capability(struct colo_qemu *q, const char *name, bool on,
			     char *err, size_t errlen);
/* Cancels an outgoing migration, if one runs, and waits (timeout_ms at
 * most) until QEMU says it is over, whatever its end: a guest resumed
 * under a migration still running would be live pre-copy. */
void colo_qemu_cancel_migration(struct colo_qemu *q, unsigned int timeout_ms);
/* Asks query-migrate until completed (0) or failed/cancelled or the
 * timeout (-1 with err), waking on QEMU's MIGRATION events. */
int colo_qemu_wait_migration(struct colo_qemu *q, unsigned int timeout_ms,
			     char *err, size_t errlen);
/* pmemsave of the whole guest RAM into path (tests). */
int colo_qemu_dump(struct colo_qemu *q, uint64_t ram_size, const char *path,
		   char *err, size_t errlen);

#endif
