/*
 * children.c - starting and stopping the supervised daemons.
 *
 * The event loop blocks the signals it serves through its signalfd, and
 * a blocked mask survives exec: each child unblocks everything before
 * exec, or SIGTERM would never reach it.
 */
#include "children.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pid_t colo_child_start(char *const argv[], char *err, size_t errlen)
{
	pid_t parent = getpid(), pid;
	sigset_t all;

	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1); /* the parent died before prctl */
		execv(argv[0], argv);
		fprintf(stderr, "colo up: exec %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	return pid;
}

void colo_child_stop(pid_t pid, unsigned int timeout_ms)
{
	struct timespec ts = { 0, 10 * 1000000L };

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (unsigned int waited = 0; waited < timeout_ms; waited += 10) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}
