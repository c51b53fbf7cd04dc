/*
 * bench_io.h - what the comparer benchmarks (colo_bench, colo_latency)
 * share: connecting to a comparer's chardev socket the way QEMU's
 * filters do, writing whole buffers, and failing loudly.
 */
#ifndef COLO_BENCH_IO_H
#define COLO_BENCH_IO_H

#include <stddef.h>
#include <stdint.h>

/* bench_io.c APIs: */
/* Prefix of error messages (the program's name). */
void bench_set_prog(const char *prog);
/* Prints "PROG: " fmt (one %s: arg) and exits 1. */
void bench_die(const char *fmt, const char *arg) __attribute__((noreturn));
/* Connects to HOST:PORT, retrying for 10 s while the comparer starts.
 * TCP_NODELAY: the generator's own sockets must add no delay. A send
 * timeout of send_timeout_s ends the run when the comparer stops
 * reading instead of hanging it. Exits on failure. */
int bench_connect(const char *hostport, unsigned send_timeout_s);
/* 0, or -1 with errno (EINTR retried). */
int bench_write_all(int fd, const uint8_t *buf, size_t len);

#endif
