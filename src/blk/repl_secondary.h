/*
 * repl_secondary.h - the secondary's end of the replication link: accepts
 * one primary at a time and applies its frames, in order, to the disk
 * buffer (writes, checkpoint barriers) or the image (resync data).
 */
#ifndef COLO_BLK_REPL_SECONDARY_H
#define COLO_BLK_REPL_SECONDARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk_buffer.h"

struct colo_repl_secondary;

struct colo_repl_secondary_stats {
	bool connected;
	bool resyncing;
	bool failed_over;
	uint64_t connects;
	uint64_t writes;
	uint64_t write_bytes;
	uint64_t barriers;
	uint64_t checkpoints; /* buffer drops ordered by the primary */
	uint64_t prepares;    /* two-step checkpoints the primary prepared */
	uint64_t resyncs;     /* completed */
	uint64_t resync_bytes;
	uint64_t digest_reqs;  /* ranges hashed for a resync by digest */
	uint64_t digest_bytes; /* their bytes */
	uint64_t last_seq;
	uint64_t hello_timeouts; /* connections without a HELLO in time */
	uint64_t refused;	 /* failed TLS, bad HELLO */
	uint64_t buffer_bytes;	 /* link buffers, allocated after a HELLO */
	uint64_t lobby_evicted;	 /* strangers pushed out by newcomers */
};

/* repl_secondary.c APIs: */
/* db is not owned. recv_timeout_ms: primary silence that ends the link
 * (0 = 10000). NULL with a reason in err. */
struct colo_repl_secondary *
colo_repl_secondary_new(struct colo_disk_buffer *db,
			unsigned int recv_timeout_ms, char *err, size_t errlen);
/* TLS on the link (before start; creds not owned): the primary's
 * certificate must name peer_host. Without, the link is plain. */
struct colo_tls_creds;
void colo_repl_secondary_set_tls(struct colo_repl_secondary *s,
				 const struct colo_tls_creds *creds,
				 const char *peer_host);
/* sock_spec: tcp-listen:HOST:PORT or unix-listen:PATH. */
int colo_repl_secondary_listen(struct colo_repl_secondary *s,
			       const char *sock_spec, char *err, size_t errlen);
int colo_repl_secondary_start(struct colo_repl_secondary *s);
/*
 * Drops the link for good, then folds the disk buffer into the image
 * (guest_view), or drops it so the image keeps all the primary's writes
 * (!guest_view: colo_disk_buffer_takeover).
 */
int colo_repl_secondary_failover(struct colo_repl_secondary *s,
				 bool guest_view);
void colo_repl_secondary_get_stats(struct colo_repl_secondary *s,
				   struct colo_repl_secondary_stats *st);
void colo_repl_secondary_stop(struct colo_repl_secondary *s);
void colo_repl_secondary_free(struct colo_repl_secondary *s);

#endif
