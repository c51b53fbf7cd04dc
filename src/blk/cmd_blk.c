/* TEMPORARY stub: replaced by the block-replication work. */
#include <stdio.h>

#include "../commands.h"

int colo_cmd_blk(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "colo blk: not built yet\n");
	return 1;
}
