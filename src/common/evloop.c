/*
 * evloop.c - epoll + signalfd + timerfd, see evloop.h.
 *
 * Timers are few per daemon (heartbeats, timeouts, retries), so they live
 * on a plain list and the earliest deadline is found by a scan each time
 * the set changes; the timerfd is re-armed only when that deadline moves.
 * Deleted descriptor records and timers are parked on a graveyard list
 * until the wake-up ends, so an event already returned by epoll_wait for a
 * record deleted meanwhile is recognised and skipped instead of touching
 * freed memory.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "evloop.h"

#define EVENTS_MAX  64
#define SIGNALS_MAX 8

enum { KIND_FD, KIND_TIMERFD, KIND_SIGNALFD };

struct colo_loop_fd {
	struct colo_loop *loop;
	int fd;
	int kind;
	bool dead;
	uint32_t events;
	colo_io_fn fn;
	void *opaque;
	struct colo_loop_fd *next, *prev; /* live list */
	struct colo_loop_fd *next_dead;
};

struct colo_timer {
	struct colo_loop *loop;
	colo_timer_fn fn;
	void *opaque;
	uint64_t deadline; /* 0: not armed */
	bool dead;
	struct colo_timer *next, *prev; /* live list */
	struct colo_timer *next_dead;
};

struct signal_entry {
	int sig;
	colo_signal_fn fn;
	void *opaque;
};

struct hook {
	colo_hook_fn fn;
	void *opaque;
	struct hook *next;
};

struct colo_loop {
	int epfd;
	struct colo_loop_fd *tfd, *sfd;
	sigset_t sigs;
	struct signal_entry signals[SIGNALS_MAX];
	int nsignals;
	struct colo_loop_fd *fds; /* live records, freed with the loop */
	struct colo_timer *timers;
	uint64_t armed_deadline; /* what the timerfd is set to; 0 none */
	struct hook *hooks;
	struct colo_loop_fd *dead_fds;
	struct colo_timer *dead_timers;
	uint64_t now;
	uint64_t busy_ns, busy_until; /* colo_loop_set_busy_poll */
	uint64_t busy_empty;	      /* polls that found nothing */
	bool stop;
};

static struct colo_loop_fd *watch(struct colo_loop *l, int fd, int kind,
				  uint32_t events, colo_io_fn fn, void *opaque)
{
	struct colo_loop_fd *h = calloc(1, sizeof(*h));
	struct epoll_event ev = { .events = events };

	if (!h)
		return NULL;
	h->loop = l;
	h->fd = fd;
	h->kind = kind;
	h->events = events;
	h->fn = fn;
	h->opaque = opaque;
	ev.data.ptr = h;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;
		free(h);
		errno = e;
		return NULL;
	}
	h->next = l->fds;
	if (l->fds)
		l->fds->prev = h;
	l->fds = h;
	return h;
}

struct colo_loop *colo_loop_new(void)
{
	struct colo_loop *l = calloc(1, sizeof(*l));
	int tfd = -1;

	if (!l)
		return NULL;
	sigemptyset(&l->sigs);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto fail;
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (tfd < 0)
		goto fail;
	l->tfd = watch(l, tfd, KIND_TIMERFD, EPOLLIN, NULL, NULL);
	if (!l->tfd)
		goto fail;
	l->now = colo_now_ns();
	return l;
fail:
	if (tfd >= 0)
		close(tfd);
	if (l->epfd >= 0)
		close(l->epfd);
	free(l);
	return NULL;
}

static void reap(struct colo_loop *l)
{
	while (l->dead_fds) {
		struct colo_loop_fd *h = l->dead_fds;
		l->dead_fds = h->next_dead;
		free(h);
	}
	while (l->dead_timers) {
		struct colo_timer *t = l->dead_timers;
		l->dead_timers = t->next_dead;
		free(t);
	}
}

void colo_loop_free(struct colo_loop *l)
{
	if (!l)
		return;
	while (l->timers)
		colo_timer_free(l->timers);
	while (l->hooks) {
		struct hook *h = l->hooks;
		l->hooks = h->next;
		free(h);
	}
	if (l->sfd) {
		close(l->sfd->fd);
		colo_loop_del_fd(l->sfd);
	}
	close(l->tfd->fd);
	colo_loop_del_fd(l->tfd);
	/* Records of descriptors still watched go too; the fds stay open. */
	while (l->fds)
		colo_loop_del_fd(l->fds);
	reap(l);
	close(l->epfd);
	free(l);
}

struct colo_loop_fd *colo_loop_add_fd(struct colo_loop *l, int fd,
				      uint32_t events, colo_io_fn fn,
				      void *opaque)
{
	return watch(l, fd, KIND_FD, events, fn, opaque);
}

int colo_loop_mod_fd(struct colo_loop_fd *h, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	if (h->events == events)
		return 0;
	if (epoll_ctl(h->loop->epfd, EPOLL_CTL_MOD, h->fd, &ev) < 0)
		return -1;
	h->events = events;
	return 0;
}

void colo_loop_del_fd(struct colo_loop_fd *h)
{
	if (!h || h->dead)
		return;
	/* EBADF/ENOENT when the owner closed the fd first: nothing to undo. */
	epoll_ctl(h->loop->epfd, EPOLL_CTL_DEL, h->fd, NULL);
	if (h->prev)
		h->prev->next = h->next;
	else
		h->loop->fds = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->dead = true;
	h->next_dead = h->loop->dead_fds;
	h->loop->dead_fds = h;
}

int colo_loop_fd_num(const struct colo_loop_fd *h)
{
	return h->fd;
}

uint32_t colo_loop_fd_events(const struct colo_loop_fd *h)
{
	return h->events;
}

/* Sets the timerfd to the earliest armed deadline, if that changed. */
static void rearm(struct colo_loop *l)
{
	uint64_t min = 0;
	struct itimerspec its = { 0 };

	for (struct colo_timer *t = l->timers; t; t = t->next)
		if (t->deadline && (!min || t->deadline < min))
			min = t->deadline;
	if (min == l->armed_deadline)
		return;
	l->armed_deadline = min;
	/* it_value zero disarms; a past deadline fires at once. */
	if (min)
		its.it_value = colo_ns_to_timespec(min);
	timerfd_settime(l->tfd->fd, TFD_TIMER_ABSTIME, &its, NULL);
}

struct colo_timer *colo_timer_new(struct colo_loop *l, colo_timer_fn fn,
				  void *opaque)
{
	struct colo_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->loop = l;
	t->fn = fn;
	t->opaque = opaque;
	t->next = l->timers;
	if (l->timers)
		l->timers->prev = t;
	l->timers = t;
	return t;
}

void colo_timer_free(struct colo_timer *t)
{
	struct colo_loop *l;

	if (!t || t->dead)
		return;
	l = t->loop;
	if (t->prev)
		t->prev->next = t->next;
	else
		l->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->dead = true;
	t->next_dead = l->dead_timers;
	l->dead_timers = t;
	if (t->deadline) {
		t->deadline = 0;
		rearm(l);
	}
}

void colo_timer_arm_at(struct colo_timer *t, uint64_t deadline_ns)
{
	t->deadline = deadline_ns ? deadline_ns : 1;
	rearm(t->loop);
}

void colo_timer_arm_in(struct colo_timer *t, uint64_t delay_ns)
{
	colo_timer_arm_at(t, colo_now_ns() + delay_ns);
}

void colo_timer_disarm(struct colo_timer *t)
{
	if (!t->deadline)
		return;
	t->deadline = 0;
	rearm(t->loop);
}

bool colo_timer_armed(const struct colo_timer *t)
{
	return t->deadline != 0;
}

int colo_loop_on_signal(struct colo_loop *l, int sig, colo_signal_fn fn,
			void *opaque)
{
	sigset_t one;
	int fd;

	if (l->nsignals == SIGNALS_MAX) {
		errno = ENOSPC;
		return -1;
	}
	sigemptyset(&one);
	sigaddset(&one, sig);
	if (pthread_sigmask(SIG_BLOCK, &one, NULL) != 0)
		return -1;
	sigaddset(&l->sigs, sig);
	fd = signalfd(l->sfd ? l->sfd->fd : -1, &l->sigs,
		      SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (!l->sfd) {
		l->sfd = watch(l, fd, KIND_SIGNALFD, EPOLLIN, NULL, NULL);
		if (!l->sfd) {
			close(fd);
			return -1;
		}
	}
	l->signals[l->nsignals++] = (struct signal_entry){ sig, fn, opaque };
	return 0;
}

int colo_loop_before_sleep(struct colo_loop *l, colo_hook_fn fn, void *opaque)
{
	struct hook *h = calloc(1, sizeof(*h)), **tail = &l->hooks;

	if (!h)
		return -1;
	h->fn = fn;
	h->opaque = opaque;
	while (*tail)
		tail = &(*tail)->next;
	*tail = h;
	return 0;
}

static void drain_signals(struct colo_loop *l)
{
	struct signalfd_siginfo si;

	while (read(l->sfd->fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		for (int i = 0; i < l->nsignals; i++)
			if (l->signals[i].sig == (int)si.ssi_signo)
				l->signals[i].fn(l->signals[i].opaque, &si);
}

/* Fires every timer whose deadline passed. A callback may arm, disarm or
 * free any timer, so the scan restarts after each one it runs. */
static void run_timers(struct colo_loop *l)
{
	uint64_t exp;
	bool again = true;

	while (read(l->tfd->fd, &exp, sizeof(exp)) > 0)
		;
	l->armed_deadline = 0; /* the timerfd fired, or will be re-set */
	while (again) {
		again = false;
		for (struct colo_timer *t = l->timers; t; t = t->next) {
			if (!t->deadline || t->deadline > l->now)
				continue;
			t->deadline = 0;
			t->fn(t->opaque);
			again = true;
			break;
		}
	}
	rearm(l);
}

int colo_loop_run_once(struct colo_loop *l, int timeout_ms)
{
	struct epoll_event ev[EVENTS_MAX];
	bool timers_due = false;
	int n;

	n = epoll_wait(l->epfd, ev, EVENTS_MAX, timeout_ms);
	if (n < 0) {
		if (errno != EINTR)
			return -1;
		n = 0;
	}
	l->now = colo_now_ns();
	if (n > 0)
		l->busy_until = l->now + l->busy_ns;
	else if (timeout_ms == 0 &&
		 !(l->armed_deadline && l->armed_deadline <= l->now)) {
		l->busy_empty++;
		return 0; /* a busy poll found nothing: no hook to run */
	}
	for (int i = 0; i < n; i++) {
		struct colo_loop_fd *h = ev[i].data.ptr;

		if (h->dead)
			continue;
		if (h->kind == KIND_TIMERFD)
			timers_due = true;
		else if (h->kind == KIND_SIGNALFD)
			drain_signals(l);
		else
			h->fn(h->opaque, ev[i].events);
	}
	/* A deadline may pass while descriptors are served: check always, the
	 * timerfd read above is only a wake-up. */
	if (timers_due || (l->armed_deadline && l->armed_deadline <= l->now))
		run_timers(l);
	for (struct hook *h = l->hooks; h; h = h->next)
		h->fn(h->opaque);
	reap(l);
	return 0;
}

void colo_loop_set_busy_poll(struct colo_loop *l, uint64_t ns)
{
	l->busy_ns = ns;
}

uint64_t colo_loop_busy_empty(const struct colo_loop *l)
{
	return l->busy_empty;
}

/* With busy polling, the loop keeps asking epoll without sleeping until
 * busy_ns after the last wake-up that had work: a frame arriving then is
 * served without the scheduler's wake-up, at the price of a CPU spinning
 * meanwhile (the caller's choice; off by default). */
int colo_loop_run(struct colo_loop *l)
{
	l->stop = false;
	while (!l->stop) {
		int t = l->busy_ns && colo_now_ns() < l->busy_until ? 0 : -1;

		if (colo_loop_run_once(l, t) < 0)
			return -1;
	}
	return 0;
}

void colo_loop_stop(struct colo_loop *l)
{
	l->stop = true;
}

bool colo_loop_stopping(const struct colo_loop *l)
{
	return l->stop;
}

uint64_t colo_loop_now(const struct colo_loop *l)
{
	return l->now;
}

void colo_ignore_sigpipe(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}
