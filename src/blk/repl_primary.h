/*
 * repl_primary.h - the primary's replicating device.
 *
 * Writes go to the local image, then are forwarded in order to the
 * secondary over the replication link. In the default synchronous mode
 * a write completes only once the secondary acknowledged it (several can
 * be in flight). When the secondary is unreachable the device keeps
 * serving from the local image (degraded) and records what changed; when
 * a secondary connects, those regions (everything, the first time) are
 * copied before the pair counts as protected again.
 *
 * Durability: in synchronous mode, a write acknowledged to the client
 * while the pair was protected or resyncing is on the secondary; a write
 * acknowledged while degraded is only on the primary until the next
 * resync. In asynchronous mode any write not yet acknowledged by the
 * secondary (see `inflight` in the stats) can be lost with the primary.
 */
#ifndef COLO_BLK_REPL_PRIMARY_H
#define COLO_BLK_REPL_PRIMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk_dev.h"

enum colo_repl_state {
	COLO_REPL_DEGRADED,  /* no secondary: changes are recorded */
	COLO_REPL_RESYNCING, /* linked, copying recorded changes */
	COLO_REPL_PROTECTED, /* linked and in sync */
};

struct colo_tls_creds;

struct colo_repl_primary_cfg {
	struct colo_blk_dev *image; /* not owned */
	const char *secondary;	    /* tcp:HOST:PORT or unix:PATH */
	uint32_t granularity;	    /* of the dirty map; 0 = 64 KiB */
	bool async;		    /* ack writes before the secondary does */
	unsigned int reconnect_ms;  /* 0 = 1000 */
	unsigned int timeout_ms;    /* link silence that means lost; 0 = 5000 */
	/* TLS on the link (not owned; NULL: plain): the secondary's
	 * certificate must name tls_peer. */
	const struct colo_tls_creds *creds;
	const char *tls_peer;
	/* A secondary whose image is unknown (the first link) gets all of
	 * the image copied, instead of only the granules whose digests
	 * differ (which needs a secondary that can hash: else full too). */
	bool resync_full;
};

struct colo_repl_primary_stats {
	enum colo_repl_state state;
	uint64_t writes;    /* client writes (incl. zeroes, trims) */
	uint64_t forwarded; /* WRITE frames sent */
	uint64_t forwarded_bytes;
	uint64_t acked_seq;
	uint64_t inflight;	  /* sent, not acknowledged */
	uint64_t degraded_writes; /* writes while no secondary */
	uint64_t dirty_bytes;	  /* recorded, not yet copied */
	uint64_t connects;
	uint64_t link_losses;
	uint64_t drops; /* secondaries given up on request (_drop) */
	/* Why the last secondary was lost: the link's own words, or
	 * "dropped: REASON" when the supervisor gave it up ("" none). */
	char last_loss[96];
	uint64_t completions_under_lock; /* link loss, no memory to defer */
	uint64_t resyncs;		 /* completed */
	uint64_t last_resync_bytes;	 /* regions copied by the last resync */
	uint64_t total_resync_bytes;
	uint64_t last_resync_compared; /* bytes whose digests were compared */
	uint64_t total_resync_compared;
	uint64_t last_resync_ms; /* from link up to protected */
	uint64_t digest_resyncs; /* completed by comparing digests */
	uint64_t checkpoints;
	uint64_t prepares;
	uint32_t granularity;
	bool async;
	bool resync_full;
};

struct colo_repl_primary;

/* repl_primary.c APIs: */
/* NULL with a reason in err. The link is not tried before _start. */
struct colo_repl_primary *
colo_repl_primary_new(const struct colo_repl_primary_cfg *cfg, char *err,
		      size_t errlen);
struct colo_blk_dev *colo_repl_primary_dev(struct colo_repl_primary *p);
int colo_repl_primary_start(struct colo_repl_primary *p);
/*
 * Checkpoint barrier: returns 0 once every write forwarded before it is
 * applied on the secondary and the secondary dropped its disk buffer at
 * exactly that point of the write stream. -ENOTCONN unless protected,
 * -ETIMEDOUT, -ECONNRESET if the link was lost meanwhile, -EIO if the
 * secondary refused it.
 */
int colo_repl_primary_checkpoint(struct colo_repl_primary *p,
				 unsigned int timeout_ms);
/*
 * First step of a two-step checkpoint: returns 0 once every write
 * forwarded before it is applied on the secondary, which holds them in
 * its disk buffer until its control socket commits (or aborts) them.
 * Errors as for checkpoint, plus -EALREADY when the secondary already
 * holds a prepared checkpoint (the link goes on).
 */
int colo_repl_primary_prepare(struct colo_repl_primary *p,
			      unsigned int timeout_ms);
/* Whether the link threads run (started, not stopped). */
bool colo_repl_primary_running(struct colo_repl_primary *p);
/*
 * A stopped primary (after its "failover") replicates to another
 * secondary from the next _start: its image counts as unknown, so the
 * whole image is compared (or copied). 0, -EALREADY while running,
 * -EINVAL for a bad address (reason in err).
 */
int colo_repl_primary_retarget(struct colo_repl_primary *p,
			       const char *secondary, char *err, size_t errlen);
/*
 * The secondary is given up now, exactly as its link's timeout would:
 * writes waiting for its acks complete (their regions recorded for the
 * next resync), the device serves alone (degraded) and the link is
 * tried again as after any loss. For a supervisor that knows sooner
 * than the timeout that the peer is gone (colo up: the peer left the
 * quorate group). why is kept for the stats (last_loss). 0, or
 * -ENOTCONN when there is no secondary to give up (degraded already).
 */
int colo_repl_primary_drop(struct colo_repl_primary *p, const char *why);
void colo_repl_primary_get_stats(struct colo_repl_primary *p,
				 struct colo_repl_primary_stats *st);
const char *colo_repl_state_name(enum colo_repl_state s);
/* Stops the link threads; the device keeps working, degraded. */
void colo_repl_primary_stop(struct colo_repl_primary *p);
void colo_repl_primary_free(struct colo_repl_primary *p);

#endif
