/*
 * cmd_demo.c - `colo demo`: picks the variant. With no flag (or --vm) the
 * VM demo, the README's main command; --netns the namespace demo, which
 * needs no QEMU and no guest kernel.
 */
#include <stdio.h>
#include <string.h>

#include "../commands.h"
#include "demo.h"

int colo_cmd_demo(int argc, char **argv)
{
	/* Line by line even into a pipe (tee, a test): the demo is read
	 * as it happens. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* The variant flag comes first; what follows is that variant's. */
	if (argc > 1 && strcmp(argv[1], "--netns") == 0) {
		argv[1] = argv[0];
		return colo_demo_netns(argc - 1, argv + 1);
	}
	if (argc > 1 && strcmp(argv[1], "--vm") == 0) {
		argv[1] = argv[0];
		return colo_demo_vm(argc - 1, argv + 1);
	}
	return colo_demo_vm(argc, argv);
}
