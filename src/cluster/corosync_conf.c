/*
 * corosync_conf.c - writes corosync.conf for the pair.
 *
 * corosync's traffic is what decides who serves, so it is authenticated
 * and encrypted (knet: crypto_cipher aes256, crypto_hash sha256) with a
 * key the two hosts share: the file named by [pair] authkey, made once
 * with corosync-keygen and copied to both hosts like PAIR.conf. Two nodes
 * alone cannot tell a dead peer from a cut link, so a qdevice on the
 * witness (algorithm ffsplit) gives the third vote. The consensus and
 * join timeouts follow from the token (corosync's own defaults).
 *
 * When the link between the hosts is cut and both still reach the
 * witness, ffsplit keeps the half whose heuristics pass, and only then the
 * lowest node id: our heuristic passes only on the current primary, so a
 * cut keeps the host that serves rather than node 1.
 *
 * consensus is half the token (at least 100 ms, twice corosync's join
 * timeout) instead of corosync's 1.2 x token: after a token loss, a node
 * waits that long for the others' join messages before it forms a ring
 * without them, and a dead peer sends none. corosync.conf(5) says a
 * two-node cluster is safe with a consensus above the join timeout and
 * below the token. The lease does not depend on it: the secondary counts
 * lease + margin from the moment corosync says the primary left, which
 * comes after the primary's last renewal whatever consensus is.
 *
 * knet's link pings are set apart from the token: by default they follow
 * it (interval token/4, timeout token/2 with knet_pong_count 2), and a
 * timeout under knet's heartbeat resolution cannot hold. knet's heartbeat
 * thread wakes every 200 ms (KNET_THREADS_TIMERES), sends the ping that is
 * due and then checks the last pong, which answered the previous ping, at
 * least 200 ms old by then. knet multiplies the timeout by 10 when a link
 * is set up or goes down and takes one off each second: with token 300
 * (timeout 150 ms) the link was declared down as soon as the factor came
 * back to 1, on an idle host, 8 s after every link up: the ring broke and
 * quorum was lost for a second every 9 s. With pings every 250 ms (every
 * 400 ms at that resolution) and a 1 s timeout the link stays up; a dead
 * or cut-off peer is still found by the token alone, the pings only say
 * when a link is back. corosync reads these keys in totem's interface
 * section (per link) only: in totem itself they are ignored without a
 * word, as they were here before.
 */
#include "corosync_conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KNET_PING_INTERVAL_MS 250
#define KNET_PING_TIMEOUT_MS  1000
#define CONSENSUS_MIN_MS      100

unsigned int colo_corosync_consensus_ms(unsigned int token_ms)
{
	return token_ms / 2 > CONSENSUS_MIN_MS ? token_ms / 2
					       : CONSENSUS_MIN_MS;
}

void colo_corosync_conf_print(const struct colo_pair_config *cfg,
			      const char *is_primary, FILE *f)
{
	fprintf(f,
		"# Written by colo up from %s; edit that file instead.\n"
		"totem {\n"
		"\tversion: 2\n"
		"\tcluster_name: %s\n"
		"\ttransport: knet\n"
		"\tcrypto_cipher: aes256\n"
		"\tcrypto_hash: sha256\n"
		"\tkeyfile: %s\n"
		"\ttoken: %u\n"
		"\tconsensus: %u\n"
		"\tinterface {\n"
		"\t\tlinknumber: 0\n"
		"\t\tknet_ping_interval: %u\n"
		"\t\tknet_ping_timeout: %u\n"
		"\t}\n"
		"}\n"
		"nodelist {\n",
		cfg->file, cfg->name, cfg->authkey, cfg->token_ms,
		colo_corosync_consensus_ms(cfg->token_ms),
		KNET_PING_INTERVAL_MS, KNET_PING_TIMEOUT_MS);
	for (unsigned int i = 0; i < 2; i++)
		fprintf(f,
			"\tnode {\n"
			"\t\tring0_addr: %s\n"
			"\t\tname: %s\n"
			"\t\tnodeid: %u\n"
			"\t}\n",
			cfg->host[i].ring, cfg->host[i].name,
			cfg->host[i].nodeid);
	fprintf(f,
		"}\n"
		"quorum {\n"
		"\tprovider: corosync_votequorum\n"
		"\tdevice {\n"
		"\t\tmodel: net\n"
		"\t\tvotes: 1\n"
		"\t\tnet {\n"
		"\t\t\thost: %s\n"
		"\t\t\tport: %u\n"
		"\t\t\talgorithm: ffsplit\n"
		"\t\t\ttls: off\n"
		"\t\t}\n",
		cfg->witness, cfg->witness_port);
	/* A frozen (not dead) node keeps its qdevice's connection to qnetd
	 * open, and the other node's quorum waits for qnetd to give up on
	 * it: this timeout then bounds the takeover time. */
	if (cfg->qdevice_ms)
		fprintf(f,
			"\t\ttimeout: %u\n"
			"\t\tsync_timeout: %u\n",
			cfg->qdevice_ms, cfg->qdevice_ms);
	if (is_primary)
		fprintf(f,
			"\t\theuristics {\n"
			"\t\t\tmode: sync\n"
			"\t\t\texec_colo_primary: %s\n"
			"\t\t}\n",
			is_primary);
	fprintf(f, "\t}\n"
		   "}\n"
		   "logging {\n"
		   "\tto_logfile: yes\n"
		   "\tlogfile: /var/log/corosync/corosync.log\n"
		   "\tto_syslog: no\n"
		   "\ttimestamp: hires\n"
		   "}\n");
}

/* knet refuses keys under 1024 bits; corosync-keygen writes at most
 * 4096 bytes. */
static int check_key(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st)) {
		snprintf(err, errlen,
			 "authkey %s: %s (make it once with 'corosync-keygen "
			 "-k %s' and copy it to both hosts)",
			 path, strerror(errno), path);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size < 128 || st.st_size > 4096) {
		snprintf(err, errlen,
			 "authkey %s: not a key file of 128 to 4096 bytes",
			 path);
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "authkey %s: readable by others (chmod 600)", path);
		return -1;
	}
	return 0;
}

int colo_corosync_conf_write(const struct colo_pair_config *cfg,
			     const char *is_primary, const char *dir, char *err,
			     size_t errlen)
{
	char tmp[4096], path[4096];
	FILE *f;
	int fd, bad;

	if (check_key(cfg->authkey, err, errlen))
		return -1;
	snprintf(path, sizeof(path), "%s/corosync.conf", dir);
	snprintf(tmp, sizeof(tmp), "%s/.corosync.conf.%ld", dir,
		 (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	colo_corosync_conf_print(cfg, is_primary, f);
	bad = fflush(f) || fsync(fd);
	bad |= fclose(f) != 0;
	if (bad) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}
