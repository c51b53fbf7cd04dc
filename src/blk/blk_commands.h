/*
 * blk_commands.h - the `colo blk` subcommands written outside cmd_blk.c.
 * Like every colo command: returns the exit code (0, 1 runtime failure,
 * 2 usage error), handles --help, argv[0] is the subcommand name.
 */
#ifndef COLO_BLK_COMMANDS_H
#define COLO_BLK_COMMANDS_H

int colo_blk_cmd_serve(int argc, char **argv); /* cmd_serve.c */

#endif
