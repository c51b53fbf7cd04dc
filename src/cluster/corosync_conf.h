/*
 * corosync_conf.h - corosync's configuration, derived from PAIR.conf so
 * that the pair's addresses and timeouts are written in one place only.
 */
#ifndef COLO_CLUSTER_COROSYNC_CONF_H
#define COLO_CLUSTER_COROSYNC_CONF_H

#include <stddef.h>
#include <stdio.h>

#include "pair_config.h"

/* corosync_conf.c APIs: */
/* The consensus timeout written for a token of token_ms (half of it, at
 * least 100 ms): a dead peer is declared gone token + consensus after
 * its last token. */
unsigned int colo_corosync_consensus_ms(unsigned int token_ms);
/* corosync.conf text for the pair: knet with aes256/sha256 and the
 * pair's authkey, two nodes, votequorum with a qdevice (net, ffsplit)
 * on the witness. is_primary: the command qdevice runs as its heuristic
 * at each membership change (it must succeed only on the current
 * primary), or NULL for none. */
void colo_corosync_conf_print(const struct colo_pair_config *cfg,
			      const char *is_primary, FILE *f);
/* Writes DIR/corosync.conf (replacing it atomically) after checking that
 * the authkey exists and has a size knet accepts. 0, or -1 with a reason
 * in err. */
int colo_corosync_conf_write(const struct colo_pair_config *cfg,
			     const char *is_primary, const char *dir, char *err,
			     size_t errlen);

#endif
