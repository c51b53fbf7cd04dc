/*
 * colo.c - entry point: dispatch to a subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "common/log.h"

#ifndef COLO_VERSION
#define COLO_VERSION "0.1.0"
#endif

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "demo", colo_cmd_demo,
	  "COLO end to end: a QEMU VM pair, a divergence, failover (--netns: no VM)" },
	{ "proxy", colo_cmd_proxy,
	  "the network proxy of one host (--role primary|secondary)" },
	{ "ctl", colo_cmd_ctl,
	  "talk to a running proxy or blk daemon over its control socket" },
	{ "compare", colo_cmd_compare,
	  "compare primary and secondary output (drop-in for QEMU colo-compare)" },
	{ "analyze", colo_cmd_analyze,
	  "replay two captures through the comparer and explain checkpoints" },
	{ "vm", colo_cmd_vm,
	  "run a guest under QEMU, kept in lock-step by checkpoints" },
	{ "blk", colo_cmd_blk,
	  "block replication: NBD exports with COLO's disk buffer" },
	{ "up", colo_cmd_up,
	  "run this host's part of a protected pair (PAIR.conf, corosync)" },
	{ "status", colo_cmd_status,
	  "show the pair (roles, protected/degraded, quorum) from this host" },
	{ "switchover", colo_cmd_switchover,
	  "planned move of the primary role to the secondary (colo up)" },
	{ "sample", colo_cmd_sample,
	  "write the built-in sample captures (primary.pcap, secondary.pcap)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: colo COMMAND [ARGS...]\n\n"
		   "COLO (coarse-grain lock-stepping) fault tolerance.\n\n"
		   "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'colo COMMAND --help' describes one command.\n"
		   "'colo analyze' with no arguments analyzes the built-in "
		   "sample traffic.\n");
}

/* Log lines name the daemon: "colo compare", "colo blk primary",
 * "colo proxy primary". */
static void set_log_name(int argc, char **argv)
{
	static char name[64];
	const char *sub = "";

	if (!strcmp(argv[1], "blk") && argc > 2 && argv[2][0] != '-')
		sub = argv[2];
	for (int i = 2; i + 1 < argc; i++)
		if ((!strcmp(argv[1], "proxy") || !strcmp(argv[1], "vm")) &&
		    !strcmp(argv[i], "--role"))
			sub = argv[i + 1];
	snprintf(name, sizeof(name), "colo %s%s%s", argv[1], *sub ? " " : "",
		 sub);
	colo_log_name = name;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("colo %s\n", COLO_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name)) {
			set_log_name(argc, argv);
			return commands[i].run(argc - 1, argv + 1);
		}
	fprintf(stderr, "colo: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
