/*
 * cmd_up.c - `colo up`: one command per host, driven by PAIR.conf.
 *
 *   colo up [--host NAME] PAIR.conf
 *   colo up [--host NAME] --check PAIR.conf
 *   colo up [--host NAME] --write-corosync DIR PAIR.conf
 *
 * Without an option it supervises this host (up.c); --check validates
 * the file and prints what this host would run; --write-corosync writes
 * DIR/corosync.conf from it.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "corosync_conf.h"
#include "daemons.h"
#include "pair_config.h"
#include "up.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: colo up [--host NAME] PAIR.conf\n"
		"       colo up [--host NAME] --check PAIR.conf\n"
		"       colo up [--host NAME] --write-corosync DIR PAIR.conf\n"
		"\n"
		"  --check            validate PAIR.conf, print what this host "
		"would run\n"
		"  --write-corosync DIR  write DIR/corosync.conf from "
		"PAIR.conf "
		"(replaces it)\n"
		"  --host NAME        this host's [host NAME] (default: the "
		"host whose\n"
		"                     ring or link address is local)\n");
}

/* The binary's path from /proc/self/exe. */
static int self_exe(char *out, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);

	if (n <= 0)
		return -1;
	out[n] = '\0';
	return 0;
}

/* qdevice's heuristic: "COLO status --is-primary /abs/PAIR.conf". qdevice
 * splits the line at spaces, so neither path may contain one. */
static int heuristic_cmd(const char *conf, char *out, size_t len, char *err,
			 size_t errlen)
{
	char exe[PATH_MAX], abs[PATH_MAX];

	if (self_exe(exe, sizeof(exe)) || !realpath(conf, abs)) {
		snprintf(err, errlen,
			 "cannot resolve the paths of colo and %.200s", conf);
		return -1;
	}
	if (strchr(exe, ' ') || strchr(abs, ' ')) {
		snprintf(err, errlen,
			 "%.200s or %.200s has a space: qdevice cannot run it",
			 exe, abs);
		return -1;
	}
	snprintf(out, len, "%s status --is-primary %s", exe, abs);
	return 0;
}

/* Words as a shell would read them back: quoted when they need it. */
static void print_argv(const struct colo_argv *a)
{
	for (int i = 0; i < a->argc; i++) {
		const char *w = a->argv[i];

		printf("%s", i ? " " : "    ");
		if (*w && !strpbrk(w, " \t\n'\"\\$`;&|<>()*?[]#~{}")) {
			printf("%s", w);
			continue;
		}
		putchar('\'');
		for (; *w; w++)
			if (*w == '\'')
				printf("'\\''");
			else
				putchar(*w);
		putchar('\'');
	}
	printf("\n");
}

static void print_plan(const struct colo_pair_config *cfg, int self,
		       const char *colo)
{
	const struct colo_pair_host *me = &cfg->host[self];
	const struct colo_pair_host *peer = &cfg->host[!self];
	struct colo_argv a;

	printf("%s: pair %s, this host %s (node %u), peer %s (node %u)\n",
	       cfg->file, cfg->name, me->name, me->nodeid, peer->name,
	       peer->nodeid);
	printf("corosync: ring %s <-> %s, witness %s:%u (qdevice ffsplit), "
	       "token %u ms, knet aes256/sha256 key %s\n",
	       me->ring, peer->ring, cfg->witness, cfg->witness_port,
	       cfg->token_ms, cfg->authkey);
	printf("lease: %u ms, renewed every %u ms; takeover %u ms after the "
	       "primary leaves\n",
	       cfg->lease_ms, cfg->lease_ms / 4,
	       cfg->lease_ms + cfg->margin_ms);
	for (int r = COLO_ROLE_PRIMARY; r <= COLO_ROLE_SECONDARY; r++) {
		printf("as %s:\n", colo_role_name((enum colo_role)r));
		for (int d = 0; d < COLO_DAEMON_COUNT; d++) {
			if (!colo_daemon_wanted(cfg, (enum colo_daemon)d))
				continue;
			colo_daemon_argv(cfg, self, (enum colo_role)r,
					 (enum colo_daemon)d, colo, &a);
			print_argv(&a);
		}
	}
	if (!cfg->disk[0])
		printf("no [guest] disk: no block replication\n");
}

int colo_cmd_up(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "check", no_argument, NULL, 'c' },
		{ "write-corosync", required_argument, NULL, 'w' },
		{ "host", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = NULL, *write_dir = NULL;
	bool check = false;
	struct colo_pair_config cfg;
	char err[COLO_PAIR_ERR_MAX];
	int c, self;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			check = true;
			break;
		case 'w':
			write_dir = optarg;
			break;
		case 'H':
			host = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (colo_pair_load(argv[optind], &cfg, err, sizeof(err))) {
		fprintf(stderr, "colo up: %s\n", err);
		return 1;
	}
	if (write_dir) {
		char heur[2 * PATH_MAX + 64];

		if (heuristic_cmd(argv[optind], heur, sizeof(heur), err,
				  sizeof(err)) ||
		    colo_corosync_conf_write(&cfg, heur, write_dir, err,
					     sizeof(err))) {
			fprintf(stderr, "colo up: %s\n", err);
			return 1;
		}
		printf("wrote %s/corosync.conf\n", write_dir);
	}
	if (check) {
		self = colo_pair_find_self(&cfg, host, err, sizeof(err));
		if (self < 0) {
			fprintf(stderr, "colo up: %s\n", err);
			return 1;
		}
		print_plan(&cfg, self, "colo");
	}
	if (check || write_dir)
		return 0;
	self = colo_pair_find_self(&cfg, host, err, sizeof(err));
	if (self < 0) {
		fprintf(stderr, "colo up: %s\n", err);
		return 1;
	}
	/* the daemons run from the same binary as this supervisor */
	char exe[PATH_MAX];

	if (self_exe(exe, sizeof(exe))) {
		fprintf(stderr, "colo up: /proc/self/exe unreadable\n");
		return 1;
	}
	return colo_up_run(&cfg, self, exe);
}
