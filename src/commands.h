/*
 * commands.h - the `colo` subcommands. Each returns the process exit code
 * (0 success, 1 runtime failure, 2 usage error) and handles its own
 * --help; argv[0] is the subcommand name.
 */
#ifndef COLO_COMMANDS_H
#define COLO_COMMANDS_H

int colo_cmd_compare(int argc, char **argv); /* src/compare/cmd_compare.c */
int colo_cmd_analyze(int argc, char **argv); /* src/analyze/cmd_analyze.c */
int colo_cmd_sample(int argc, char **argv);  /* src/analyze/cmd_sample.c */
int colo_cmd_blk(int argc, char **argv);     /* src/blk/cmd_blk.c */
int colo_cmd_proxy(int argc, char **argv);   /* src/proxy/cmd_proxy.c */
int colo_cmd_ctl(int argc, char **argv);     /* src/ctl/cmd_ctl.c */
int colo_cmd_demo(int argc, char **argv);    /* src/demo/cmd_demo.c  */
int colo_cmd_up(int argc, char **argv);      /* src/cluster/cmd_up.c */
int colo_cmd_status(int argc, char **argv);  /* src/cluster/cmd_status.c */
int colo_cmd_switchover(int argc, char **argv); /* src/cluster/ */
int colo_cmd_vm(int argc, char **argv);      /* src/vm/cmd_vm.c */

#endif
