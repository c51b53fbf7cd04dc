/*
 * children.h - the daemons `colo up` runs: started so that they die with
 * it (a supervisor killed must not leave a proxy releasing output on its
 * own), stopped with SIGTERM and, if need be, SIGKILL.
 */
#ifndef COLO_CLUSTER_CHILDREN_H
#define COLO_CLUSTER_CHILDREN_H

#include <stddef.h>
#include <sys/types.h>

/* children.c APIs: */
/* fork + exec argv[0] with every signal unblocked and the parent's death
 * delivering SIGKILL. Returns the pid, or -1 with a reason in err. */
pid_t colo_child_start(char *const argv[], char *err, size_t errlen);
/* SIGTERM, up to timeout_ms for it to exit, then SIGKILL; reaps it. */
void colo_child_stop(pid_t pid, unsigned int timeout_ms);

#endif
