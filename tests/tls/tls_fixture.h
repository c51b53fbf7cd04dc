/*
 * tls_fixture.h - what the TLS unit tests share: per-run credentials for
 * two hosts (alpha, beta) made by mkcreds.sh, a loopback TCP pair, and a
 * relay that counts the client's send() calls.
 */
#ifndef COLO_TESTS_TLS_FIXTURE_H
#define COLO_TESTS_TLS_FIXTURE_H

#include <pthread.h>

#include "tls.h"

struct tls_fixture {
	char root[64];
	struct colo_tls_creds *alpha, *beta;
};

/* A relay between a SOCK_SEQPACKET pair (the client's end: every send()
 * stays one message) and a stream pair (the server's end), counting the
 * client's messages: that is the client's count of send() calls. */
struct tls_relay {
	int client_side, server_side; /* the relay's ends */
	int ends[2];		      /* [0] the server's, [1] the client's */
	unsigned long msgs;	      /* client -> server, atomic */
	pthread_t thread;
};

/* tls_fixture.c APIs: */
int tls_fixture_setup(struct tls_fixture *f, const char *mkcreds);
int tls_fixture_teardown(struct tls_fixture *f);
/* fds[0] accepted (server end), fds[1] connecting; both blocking. */
void tls_tcp_pair(int fds[2]);
/* Starts the relay thread; r->ends are the sockets for the two peers. */
void tls_relay_start(struct tls_relay *r);
unsigned long tls_relay_msgs(struct tls_relay *r);
/* After the peers closed r->ends: joins the thread, closes its ends. */
void tls_relay_stop(struct tls_relay *r);

#endif
