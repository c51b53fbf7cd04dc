/*
 * vm.h - one `colo vm` daemon: the state its primary and secondary roles
 * share (options, the guest's RAM, the QEMUs it owns, the frame link, the
 * statistics its control socket reports).
 */
#ifndef COLO_VM_VM_H
#define COLO_VM_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sock_spec.h"
#include "frame_link.h"
#include "qemu.h"
#include "ram.h"

struct colo_loop;
struct colo_loop_fd;
struct colo_timer;
struct colo_dial;
struct colo_control_ask;
struct colo_vm_steps;
struct colo_control_server;
struct colo_sock_addr;
struct colo_tls_creds;
struct colo_vm_lobby;
struct json_object;

enum colo_vm_reason {
	COLO_VM_REASON_INITIAL,
	COLO_VM_REASON_PERIODIC,
	COLO_VM_REASON_COMMAND,
	COLO_VM_REASON_PROXY, /* the proxy's comparer asked (divergence...) */
	COLO_VM_REASON_MAX,
};

struct colo_vm_stats {
	uint64_t checkpoints, failures, deferred;
	uint64_t cut_undrained; /* cuts the proxy could not make exact */
	uint64_t cut_max_us;	/* longest checkpoint-cut (its drain) */
	uint64_t by_reason[COLO_VM_REASON_MAX];
	uint64_t pages_last, pages_total;
	uint64_t rejoins;   /* secondary: links to the primary made again */
	uint32_t *pause_us; /* every successful checkpoint's pause */
	size_t npause, cap;
	uint32_t last_us, max_us;
};

struct colo_vm {
	bool primary;
	struct colo_qemu_cfg qcfg;
	struct colo_ram ram;
	struct colo_loop *loop;
	struct colo_control_server *ctl;
	unsigned int scan_threads;
	uint64_t interval_ns, min_interval_ns;
	unsigned int timeout_ms; /* one checkpoint, end to end */
	const char *dump_dir;

	struct colo_qemu vm;	  /* the running guest of this host */
	struct colo_qemu standby; /* secondary: the next VM, waiting */
	unsigned int next_gen;

	int listen_fd; /* primary */
	struct colo_loop_fd *listen_h;
	struct colo_flink *link;
	struct colo_loop_fd *link_h;
	char link_addr[128];

	char mode[32];
	char reason[256];
	uint64_t seq;
	uint64_t last_end_ns;
	struct colo_timer *periodic, *deferred;
	struct colo_timer *attach; /* secondary: attach the booting standby */
	/* secondary: --link-connect, and the rejoin after a lost link
	 * (secondary.c) unless --no-rejoin */
	const char *link_connect;
	bool no_rejoin;
	struct colo_timer *rejoin;
	uint64_t rejoin_tries;
	/* secondary: --link-connect resolved once; a rejoin try's connect
	 * in flight on the loop (NULL: none) */
	struct colo_sock_addr primary_addr;
	bool primary_addr_ok;
	struct colo_dial *rejoin_dial;
	struct colo_vm_steps *rejoin_steps; /* then its TLS and HELLO */
	bool deferred_dump;
	enum colo_vm_reason deferred_reason;
	char qemu_version[COLO_FLINK_VERSION_LEN + 1];
	char machine[COLO_FLINK_MACHINE_LEN + 1];

	/* --proxy-control: this host's colo proxy (proxy_hook.c) */
	const char *proxy_ctl;
	bool no_cut;  /* --no-ingress-cut: no checkpoint-cut (primary) */
	int proxy_fd; /* primary: events subscription */
	struct colo_loop_fd *proxy_h;
	struct colo_timer *proxy_retry;
	char proxy_buf[4096];
	size_t proxy_n;

	/* --blk-control: this host's colo blk (blk_hook.c) */
	const char *blk_ctl;
	/* primary: the first checkpoint waits for blk (disk_wait.c) */
	bool disk_waiting, disk_wait_reported;
	uint64_t disk_wait_since;
	struct colo_control_ask *disk_ask;
	struct colo_timer *disk_poll;
	/* --tls-creds: the frame link and the migration stream in TLS */
	struct colo_tls_creds *creds; /* NULL: plain (loopback, --insecure) */
	const char *tls_peer;	      /* the other host's certificate name */
	bool insecure;
	struct colo_vm_lobby *lobby; /* primary: connections not yet proven */
	uint64_t link_refused;	     /* connections turned away */

	struct colo_vm_stats st;
	int exit_code; /* 1 once the primary's VM died under us */

	/* --promote PATH (primary): the failed-over secondary daemon whose
	 * VM this primary takes over (promote.c) */
	const char *promote_from;
	uint64_t promote_pause_ns; /* the guest stopped while it moved */
};

/* Frame link silence between checkpoints that means the peer is lost
 * (frame_link_watch.c): twice a checkpoint's deadline, so a loop busy
 * with one slow step (a standby's start) is not taken for dead. */
#define COLO_VM_IDLE_MS(v) (2 * (v)->timeout_ms)

/* Secondary: a lost primary is asked again every COLO_VM_REJOIN_MS; each
 * step of an attempt (connect, TLS, HELLO) runs on the loop and is given
 * up after COLO_VM_REJOIN_STEP_MS; a primary that refused us is asked
 * again every COLO_VM_REJOIN_REFUSED_MS. */
#define COLO_VM_REJOIN_MS	  1000u
#define COLO_VM_REJOIN_STEP_MS	  2000u
#define COLO_VM_REJOIN_REFUSED_MS 30000u

/* cmd_vm.c APIs (shared by the roles): */
void colo_vm_set_mode(struct colo_vm *v, const char *mode, const char *reason);
/* The peers' identities must match before the first checkpoint. 0, or -1
 * with the reason in err. */
int colo_vm_check_peer(const struct colo_vm *v,
		       const struct colo_flink_hello *peer, char *err,
		       size_t errlen);
void colo_vm_hello(const struct colo_vm *v, struct colo_flink_hello *h);
void colo_vm_record(struct colo_vm *v, enum colo_vm_reason why,
		    uint64_t pause_ns, uint64_t pages);
void colo_vm_drop_link(struct colo_vm *v);
const char *colo_vm_reason_name(enum colo_vm_reason r);
/* The safe default: without --tls-creds a link (or a standby's migration
 * socket) may only use a loopback address, unless --insecure. what names
 * the option in the message. 0, or -1 with the reason in err. */
int colo_vm_addr_allowed(const struct colo_vm *v,
			 const struct colo_sock_addr *a, const char *what,
			 char *err, size_t errlen);

/* peer_accept.c APIs (primary): the frame link's listener. A connection
 * counts as the secondary only after TLS proved its host (with
 * credentials) and it sent a HELLO of a secondary; until then it waits in
 * the lobby, bounded in number and time, and never displaces a link that
 * is up. */
int colo_vm_lobby_start(struct colo_vm *v, char *err, size_t errlen);
void colo_vm_lobby_stop(struct colo_vm *v);
/* primary.c: a proven secondary (link and its HELLO) joins. */
void colo_vm_primary_joined(struct colo_vm *v, struct colo_flink *link,
			    const struct colo_flink_hello *peer);

/* primary.c APIs: */
int colo_vm_primary_start(struct colo_vm *v, const char *listen, char *err,
			  size_t errlen);
/* Runs one checkpoint now (or defers it to the minimum interval); the
 * reply gets its figures. 0, or -1 with err. */
int colo_vm_primary_checkpoint(struct colo_vm *v, enum colo_vm_reason why,
			       bool dump, struct json_object *reply, char *err,
			       size_t errlen);

/* The first checkpoint with a newly joined secondary (the full sync);
 * on failure the link is dropped and the secondary joins again. */
void colo_vm_primary_first(struct colo_vm *v);
/* A secondary is linked and no wait holds checkpoints back. */
bool colo_vm_primary_ready(const struct colo_vm *v);

/* disk_wait.c APIs (primary): */
/* Runs colo_vm_primary_first once this host's blk says protected (at
 * once without --blk-control), asking from the loop; mode
 * "waiting-disk" meanwhile. */
void colo_vm_disk_wait(struct colo_vm *v);
/* The link is gone: the wait ends without a checkpoint. */
void colo_vm_disk_wait_stop(struct colo_vm *v);
void colo_vm_disk_wait_free(struct colo_vm *v);

/* proxy_hook.c APIs (no-ops without --proxy-control): */
/* Primary: subscribes to the proxy's checkpoint requests. */
int colo_vm_proxy_start(struct colo_vm *v, char *err, size_t errlen);
void colo_vm_proxy_stop(struct colo_vm *v);
/* Primary, right before the stop: the proxies cut the ingress stream. */
void colo_vm_proxy_cut(struct colo_vm *v);
/* The new state is loaded (or the checkpoint failed): the proxy releases
 * what it held and resets (blocking, short). */
void colo_vm_proxy_done(struct colo_vm *v);
/* Secondary, after LOADED and before the old VM is retired: done, and
 * the proxy's guest port passes to the next VM (colo_port_hand_over). */
void colo_vm_proxy_retire(struct colo_vm *v);
/* After the VM runs again: the proxy releases the ingress it held since
 * the cut (frames sent to a stopped VM wait in its QEMU, which drops
 * them at its next stop). */
void colo_vm_proxy_resume(struct colo_vm *v);
/* Whether a line of the proxy's event stream is a checkpoint request. */
bool colo_vm_proxy_is_request(const char *line);

/* blk_hook.c APIs (no-ops without --blk-control): */
/* Primary, VM stopped: every write it issued is held on the secondary. */
int colo_vm_blk_prepare(struct colo_vm *v, char *err, size_t errlen);
/* Secondary, new state loaded: its disk buffers are dropped. */
int colo_vm_blk_commit(struct colo_vm *v, char *err, size_t errlen);
/* Secondary: the prepared checkpoint will not be committed (best effort). */
void colo_vm_blk_abort(struct colo_vm *v);
/* Secondary: blk folds its buffers and serves the image directly. */
int colo_vm_blk_failover(struct colo_vm *v, char *err, size_t errlen);

/* promote.c APIs: */
/* Primary with --promote: starts the VM as the failed-over daemon's
 * guest, moved by a stop-and-copy migration onto shared RAM. 0, or -1. */
int colo_vm_promote_in(struct colo_vm *v, char *err, size_t errlen);
/* Failed-over secondary: stops its VM and migrates it (RAM included) to
 * uri (unix:PATH); on success the daemon ends. 0, or -1 (the VM runs
 * on). */
int colo_vm_migrate_out(struct colo_vm *v, const char *uri, char *err,
			size_t errlen);
/* At the end of a daemon that handed its guest over (its QEMUs stopped):
 * its --dir goes, with the files it made there; a no-op otherwise. */
void colo_vm_promote_tidy(struct colo_vm *v);

/* link_steps.c APIs (secondary): a connected socket becomes the proven
 * frame link on the loop (TLS with credentials, then HELLO both ways),
 * each step bounded by step_ns. fn gets r 0 with the link (now the
 * callee's), -1 (try again soon) or -2 (the primary refused the pair:
 * its ABORT, or its identity differs) with the reason; the steps are
 * freed by then. */
typedef void (*colo_vm_steps_fn)(struct colo_vm *v, struct colo_flink *link,
				 int r, const char *err);
/* fd is the steps' from here; fn is called from the loop, never from
 * inside this call. NULL with err when they cannot start (fd closed). */
struct colo_vm_steps *colo_vm_steps_start(struct colo_vm *v, int fd,
					  uint64_t step_ns, colo_vm_steps_fn fn,
					  char *err, size_t errlen);
/* Gives the steps up: the socket is closed, fn not called. NULL is
 * fine. */
void colo_vm_steps_cancel(struct colo_vm_steps *s);
/* The step under way: "tls" or "hello". */
const char *colo_vm_steps_name(const struct colo_vm_steps *s);
/* The HELLO helpers the blocking start shares: ours on l by the
 * deadline (0, or -1 with err), and the verdict on the primary's answer
 * (r and f as colo_flink_recv gave them): 0 a matching primary, -2 the
 * pair cannot work, -1 anything else. */
int colo_vm_hello_send(struct colo_vm *v, struct colo_flink *l,
		       uint64_t deadline, char *err, size_t errlen);
int colo_vm_hello_verdict(struct colo_vm *v, int r,
			  const struct colo_flink_frame *f, char *err,
			  size_t errlen);

/* secondary.c APIs: */
/* Connects to v->link_connect (retrying 30 s) and says HELLO. */
int colo_vm_secondary_start(struct colo_vm *v, char *err, size_t errlen);
int colo_vm_secondary_failover(struct colo_vm *v, char *err, size_t errlen);
/* Ends the rejoin tries: the timer, and a connect in flight. */
void colo_vm_rejoin_stop(struct colo_vm *v);

#endif
