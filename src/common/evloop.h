/*
 * evloop.h - the one event loop every colo daemon runs on.
 *
 * epoll for file descriptors, one signalfd for signals, one timerfd
 * (CLOCK_MONOTONIC, absolute) for every timer of the loop: a daemon sleeps
 * until something happens, never on a fixed tick. Work that should happen
 * once per wake-up, after every ready descriptor was served (flushing
 * batched output), goes in "before sleep" hooks, as in Redis's ae.c.
 *
 * Handlers may add, modify or delete any descriptor or timer, their own
 * included, while the loop dispatches: records are freed only after the
 * wake-up that deleted them is over. One loop per thread; nothing here is
 * thread-safe.
 */
#ifndef COLO_EVLOOP_H
#define COLO_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

struct colo_loop;
struct colo_loop_fd;
struct colo_timer;

/* events: the EPOLL* bits that are ready. */
typedef void (*colo_io_fn)(void *opaque, uint32_t events);
typedef void (*colo_timer_fn)(void *opaque);
typedef void (*colo_signal_fn)(void *opaque, const struct signalfd_siginfo *si);
typedef void (*colo_hook_fn)(void *opaque);

/* evloop.c APIs: */
struct colo_loop *colo_loop_new(void);
/* Frees the loop with every handle, timer and hook still registered;
 * descriptors it watched stay open (their owners close them). */
void colo_loop_free(struct colo_loop *l);

/* Watches fd for events (EPOLLIN, EPOLLOUT, ...). Returns the handle, or
 * NULL with errno set (the fd is then not watched). */
struct colo_loop_fd *colo_loop_add_fd(struct colo_loop *l, int fd,
				      uint32_t events, colo_io_fn fn,
				      void *opaque);
int colo_loop_mod_fd(struct colo_loop_fd *h, uint32_t events);
/* Stops watching (also safe for a handle whose fd was already closed). */
void colo_loop_del_fd(struct colo_loop_fd *h);
int colo_loop_fd_num(const struct colo_loop_fd *h);
uint32_t colo_loop_fd_events(const struct colo_loop_fd *h);

/* Timers fire once per arm; re-arm from the callback for periodic work. */
struct colo_timer *colo_timer_new(struct colo_loop *l, colo_timer_fn fn,
				  void *opaque);
void colo_timer_free(struct colo_timer *t);
void colo_timer_arm_at(struct colo_timer *t, uint64_t deadline_ns);
void colo_timer_arm_in(struct colo_timer *t, uint64_t delay_ns);
void colo_timer_disarm(struct colo_timer *t);
bool colo_timer_armed(const struct colo_timer *t);

/* Delivers sig through the loop's signalfd: the signal is blocked in the
 * calling thread (threads started later inherit that, so only the loop
 * sees it). Returns 0 or -1 with errno. */
int colo_loop_on_signal(struct colo_loop *l, int sig, colo_signal_fn fn,
			void *opaque);

/* Called once per wake-up after every ready descriptor and due timer. */
int colo_loop_before_sleep(struct colo_loop *l, colo_hook_fn fn, void *opaque);

/* Busy polling for colo_loop_run: after a wake-up with work, poll
 * without sleeping for up to ns before sleeping again (0: off). Trades
 * a spinning CPU for the scheduler's wake-up latency. */
void colo_loop_set_busy_poll(struct colo_loop *l, uint64_t ns);
/* Busy polls that found nothing: the spinning busy polling cost. */
uint64_t colo_loop_busy_empty(const struct colo_loop *l);
/* Runs until colo_loop_stop(); returns 0, or -1 when epoll fails. */
int colo_loop_run(struct colo_loop *l);
/* One wake-up: waits at most timeout_ms (-1: until something happens). */
int colo_loop_run_once(struct colo_loop *l, int timeout_ms);
void colo_loop_stop(struct colo_loop *l);
bool colo_loop_stopping(const struct colo_loop *l);

/* CLOCK_MONOTONIC read at the start of the current wake-up. */
uint64_t colo_loop_now(const struct colo_loop *l);

/* SIGPIPE ignored process-wide (sockets report EPIPE instead). */
void colo_ignore_sigpipe(void);

#endif
