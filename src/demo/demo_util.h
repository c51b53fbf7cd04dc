/*
 * demo_util.h - what both `colo demo` variants (VM and namespace) need:
 * shell commands for the topology, entering a namespace, control-socket
 * requests, signal flags and tearing down a temporary directory.
 */
#ifndef COLO_DEMO_UTIL_H
#define COLO_DEMO_UTIL_H

#include <stdbool.h>
#include <stdint.h>

struct json_object;

/* Set once teardown starts: failures of cleanup commands are expected. */
extern bool colo_demo_quiet;
/* Set by the handler colo_demo_catch_signals installs. */
extern volatile int colo_demo_interrupted;

/* demo_util.c APIs: */
/* Runs a shell command built from fmt; 0, or -1 (reported on stderr
 * unless colo_demo_quiet). */
int colo_demo_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Moves the calling process into network namespace PREFIX+NAME. */
int colo_demo_enter_ns(const char *prefix, const char *name);
/* SIGINT, SIGTERM and SIGHUP set colo_demo_interrupted; SIGPIPE ignored. */
void colo_demo_catch_signals(void);
/* SIGPIPE's disposition: ignored in the demo, the default again in the
 * daemons it starts. */
void colo_demo_sigpipe(void (*handler)(int));
/* {"cmd": cmd} to a control socket; the parsed reply, or NULL. */
struct json_object *colo_demo_request(const char *path, const char *cmd,
				      unsigned int timeout_ms);
/* The same with a whole request line (a JSON object). */
struct json_object *colo_demo_request_line(const char *path, const char *line,
					   unsigned int timeout_ms);
/* A numeric field of a reply (or of its object field sub, when not
 * NULL); -1 when absent. */
int64_t colo_demo_field(struct json_object *o, const char *name);
double colo_demo_field_d(struct json_object *o, const char *sub,
			 const char *name);
/* A string field, or "" when absent (valid while o lives). */
const char *colo_demo_field_s(struct json_object *o, const char *name);
/* Removes a directory tree (no symlink followed); quiet. */
void colo_demo_rmtree(const char *dir);
/* "1.23 MB" into buf. */
void colo_demo_human(char *buf, unsigned long n, double bytes);
/* Prints the last lines of a log file on stderr, headed by title. */
/* Creates the namespaces PREFIX+nss[i] (loopback up), which include
 * client, switch, phost and shost, and wires them: a bridge br0 in the
 * switch joining the client's eth0 and each host's "sw", and a link veth
 * "lnk" between the two hosts. 0, or -1 (said on stderr). */
int colo_demo_wire_switch(const char *prefix, const char *const *nss, size_t n);
/* The client received at t (ns): the longest wait for data since the
 * event at `since` (the kill, the failover; 0: not yet) grows in *stall. */
void colo_demo_note_rx(uint64_t t, uint64_t since, volatile uint64_t *last_rx,
		       volatile uint64_t *stall);
void colo_demo_show_log(const char *path, const char *title, int lines);

#endif
