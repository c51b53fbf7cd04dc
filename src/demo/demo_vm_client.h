/*
 * demo_vm_client.h - the VM demo's client side, run in the client
 * namespace: an echo load on one long TCP connection (the connection
 * that must survive the failover) and one-shot probes of the guest's
 * clock service (the divergence).
 */
#ifndef COLO_DEMO_VM_CLIENT_H
#define COLO_DEMO_VM_CLIENT_H

#include <stdint.h>

/* Shared (MAP_SHARED) between the demo and its client processes. */
struct colo_demo_client {
	volatile uint64_t rounds;     /* echo round trips checked */
	volatile uint64_t bytes;      /* bytes echoed and checked */
	volatile uint64_t last_rx_ns; /* last echo completed */
	volatile uint64_t kill_ns;    /* set by the demo: primary killed */
	volatile uint64_t stall_ns;   /* longest wait for an echo since */
	volatile int connected;	      /* the echo connection is open */
	volatile int state;	      /* 0 running, 1 stopped ok, -1 failed */
	volatile int stop;	      /* set by the demo */
	volatile int probe_len;	      /* bytes the last probe got */
	char probe_text[64];	      /* its answer (text, cut short) */
	volatile int probe_state;     /* 0 running, 1 done, -1 failed */
	char err[200];
};

/* demo_vm_client.c APIs: */
/* Connects to ip:port (retrying while the guests boot, up to
 * connect_s seconds), then sends a numbered message every 100 ms and
 * checks that exactly the same bytes come back, until c->stop. Records
 * progress and the longest stall after c->kill_ns; never returns. */
void colo_demo_echo_client(struct colo_demo_client *c, const char *ip, int port,
			   int connect_s) __attribute__((noreturn));
/* One connection to the guest's clock service (colo_clock): reads its
 * answer up to the guest's close into c->probe_len and c->probe_text;
 * never returns. */
void colo_demo_probe(struct colo_demo_client *c, const char *ip, int port)
	__attribute__((noreturn));

#endif
