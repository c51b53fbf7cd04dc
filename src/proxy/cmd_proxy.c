/* TEMPORARY stub: replaced by the network proxy work. */
#include <stdio.h>

#include "../commands.h"

int colo_cmd_proxy(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "colo: not built yet\n");
	return 1;
}
