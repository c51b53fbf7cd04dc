/*
 * demo_vm_hosts.h - the stage of `colo demo` (VM variant): namespaces,
 * the hosts' daemons, the guest they boot, teardown.
 */
#ifndef COLO_DEMO_VM_HOSTS_H
#define COLO_DEMO_VM_HOSTS_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#define COLO_DEMO_GUEST_CACHE "/var/cache/colo/guest"
#define COLO_DEMO_GUEST_IP    "10.77.0.10"
#define COLO_DEMO_GUEST_MAC   "52:54:00:00:aa:01"
#define COLO_DEMO_ECHO_PORT   7000
#define COLO_DEMO_CLOCK_PORT  7001

/* `ip netns exec PREFIX<n>` for colo_demo_sh formats. */
#define NS(n) "ip netns exec %s" n " "

/* The processes the demo starts, one slot each. */
enum colo_demo_proc {
	COLO_DEMO_PPROXY,
	COLO_DEMO_SPROXY,
	COLO_DEMO_PVM,
	COLO_DEMO_SVM,
	COLO_DEMO_CLIENT,
	COLO_DEMO_PROBE,
	COLO_DEMO_NPROC
};

struct colo_demo_hosts {
	char prefix[32];     /* namespaces PREFIX{client,switch,phost,shost} */
	char dir[96];	     /* private: sockets, logs, RAM files, dumps */
	char self[PATH_MAX]; /* this binary, for colo proxy and colo vm */
	char guest[1024];    /* vmlinuz and initrd.cpio.gz */
	pid_t procs[COLO_DEMO_NPROC];
	int exit_status[COLO_DEMO_NPROC];
	bool expect_gone[COLO_DEMO_NPROC], started[COLO_DEMO_NPROC];
	bool topo_up, creds_made;
};

struct colo_demo_vm_args {
	const char *qemu;
	int mem_mb, interval_ms;
};

/* demo_vm_hosts.c APIs: */
extern const char *const colo_demo_proc_names[COLO_DEMO_NPROC];
extern const char *const colo_demo_host_names[2];
/* Finds the guest (given, $COLO_GUEST_DIR, the newest in the cache);
 * -1 after telling the user how to get one. */
int colo_demo_hosts_find_guest(struct colo_demo_hosts *h, const char *given);
/* Whether bin runs: a path, or a name found in $PATH. */
bool colo_demo_in_path(const char *bin);
/* Client, switch, two hosts, their veths and bridge; -1 on failure
 * (colo_demo_hosts_teardown removes what was made). */
int colo_demo_hosts_topo_build(struct colo_demo_hosts *h);
/* Starts a process in namespace PREFIX+ns, its output in DIR/NAME.log:
 * fn() in the child when not NULL (it must not return), else this
 * binary with argv. The pid, or -1. */
pid_t colo_demo_hosts_spawn(struct colo_demo_hosts *h, int slot, const char *ns,
			    char *const argv[], void (*fn)(void));
/* Whether slot's process still runs (reaps it, keeping its status). */
bool colo_demo_hosts_alive(struct colo_demo_hosts *h, int slot);
/* sig to slot's whole process group. */
void colo_demo_hosts_kill(struct colo_demo_hosts *h, int slot, int sig);
/* Waits for slot's process to end. */
void colo_demo_hosts_reap(struct colo_demo_hosts *h, int slot);
/* The host's colo proxy: client side packet:sw, guest side
 * qemu:unix-listen:DIR/HOST.nic, TLS link, control DIR/HOST-proxy.sock. */
int colo_demo_hosts_start_proxy(struct colo_demo_hosts *h, int slot,
				bool primary);
/* The host's colo vm, its NIC on the proxy's guest port, following the
 * proxy's checkpoint requests, control DIR/HOST-vm.sock. */
int colo_demo_hosts_start_vm(struct colo_demo_hosts *h, int slot, bool primary,
			     const struct colo_demo_vm_args *o);
/* Stops every process (SIGTERM, then SIGKILL after 10 s), kills any
 * process naming DIR, removes the namespaces and DIR. Idempotent. */
void colo_demo_hosts_teardown(struct colo_demo_hosts *h);

#endif
