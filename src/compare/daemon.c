/*
 * daemon.c - `colo compare` on the common event loop: one thread.
 *
 * Frames read from primary-in and secondary-in go straight from the read
 * buffer into the comparer; frames it releases are appended to the out
 * buffer, which a before-sleep hook writes once per wake-up, so a frame
 * released by this wake-up's input leaves before the loop sleeps. The
 * compare-timeout scan and the statistics are loop timers. When that buffer
 * passes its high-water mark (slow or absent out peer) the inputs stop
 * being read, so the guests' sockets fill up and QEMU's mirror and
 * redirector slow down instead of us dropping frames.
 *
 * The comparer's callbacks only record what must happen (append output,
 * note that a checkpoint was asked for); acting on a checkpoint request
 * happens after the comparer call returns, never inside it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "comparer.h"
#include "daemon.h"
#include "evloop.h"
#include "log.h"
#include "notify.h"
#include "stream.h"

enum { S_PRIMARY, S_SECONDARY, S_OUT, S_NOTIFY, S_COUNT };

#define OUT_HIGH_WATER (4u * 1024 * 1024)
#define OUT_LOW_WATER  (1u * 1024 * 1024)
#define NOTIFY_OUT_MAX (64u * 1024)

struct daemon {
	const struct colo_daemon_config *cfg;
	struct colo_comparer *cmp;
	struct colo_stream st[S_COUNT];
	int nstreams;
	struct colo_notify_session notify;
	struct colo_loop *loop;
	struct colo_timer *scan, *stats;
	uint64_t next_scan;
	bool want_checkpoint;
	bool paused;
	bool stop;
	uint64_t self_checkpoints, pauses;
	uint64_t notify_dropped; /* peers dropped for unread replies */
	bool table_full_logged;
};

static void on_release(void *opaque, const uint8_t *frame, size_t len,
		       size_t vnet_hdr_len)
{
	struct daemon *d = opaque;

	if (colo_outbuf_append(&d->st[S_OUT].out, frame, len, vnet_hdr_len))
		colo_log_warn("out: no memory to queue a released frame of "
			      "%zu bytes; frame lost",
			      len);
}

static void on_event(void *opaque, const struct colo_divergence *dv)
{
	struct daemon *d = opaque;
	char line[512];

	if (dv->requested)
		d->want_checkpoint = true;
	if (dv->table_full) {
		/* Reported once per checkpoint epoch by the engine; while the
		 * table stays full that is still one line per checkpoint, so
		 * say it once and let the stats count the rest. */
		if (!d->table_full_logged)
			colo_log_warn(
				"flow table full (--max-flows %llu): "
				"frames of new flows pass uncompared "
				"and a checkpoint is requested each "
				"epoch; counted as 'flows "
				"refused_frames' in the statistics",
				(unsigned long long)colo_comparer_stats(d->cmp)
					->flow_limit);
		d->table_full_logged = true;
		return;
	}
	if (colo_log_quiet)
		return;
	colo_divergence_format(dv, line, sizeof(line));
	colo_log_info("%s%s", line,
		      dv->requested ? " -> checkpoint requested" : "");
}

/* A notify peer that keeps asking (PROXY_INIT) without reading the
 * answers would grow the reply queue without end: past NOTIFY_OUT_MAX
 * it is dropped, as a stalled control client is. A DO_CHECKPOINT it
 * missed is owed to the next peer's handshake, so nothing is lost. */
static void notify_send(struct daemon *d, enum colo_notify_msg m)
{
	struct colo_stream *ns = &d->st[S_NOTIFY];
	const char *t = colo_notify_msg_text(m);

	if (colo_outbuf_pending(&ns->out) + strlen(t) + 8 > NOTIFY_OUT_MAX) {
		d->notify_dropped++;
		colo_log_warn("notify: peer does not read its replies "
			      "(%zu bytes pending, limit %u); dropping it",
			      colo_outbuf_pending(&ns->out), NOTIFY_OUT_MAX);
		if (m == COLO_NOTIFY_MSG_DO_CHECKPOINT)
			d->notify.checkpoint_owed = true;
		colo_stream_disconnect(ns, "replies not read");
		return;
	}
	if (colo_outbuf_append(&ns->out, (const uint8_t *)t, strlen(t), 0))
		colo_log_warn("notify: no memory to queue %s", t);
}

/* Act on the checkpoint request recorded by on_event. */
static void handle_checkpoint_request(struct daemon *d)
{
	/* checkpoint_done() cannot ask again, but bound the loop anyway. */
	for (int i = 0; i < 4 && d->want_checkpoint; i++) {
		d->want_checkpoint = false;
		if (!d->cfg->has_notify) {
			/* Nobody can take the checkpoint: finish it at once so
			 * that output keeps flowing. */
			d->self_checkpoints++;
			colo_log_info("no --notify peer: releasing held output "
				      "without a checkpoint");
			colo_comparer_checkpoint_done(d->cmp,
						      colo_loop_now(d->loop));
			continue;
		}
		if (colo_notify_want_checkpoint(
			    &d->notify,
			    colo_stream_connected(&d->st[S_NOTIFY]))) {
			notify_send(d, COLO_NOTIFY_MSG_DO_CHECKPOINT);
			colo_log_info("notify: sent DO_CHECKPOINT");
		} else {
			colo_log_warn("notify: no peer connected; "
				      "DO_CHECKPOINT will follow its "
				      "COLO_USERSPACE_PROXY_INIT");
		}
	}
}

static void on_frame(void *opaque, struct colo_stream *s,
		     const struct colo_frame *f)
{
	struct daemon *d = opaque;
	const uint8_t *msg = f->data + f->vnet_hdr_len;
	size_t len = f->len - f->vnet_hdr_len;
	unsigned int act;

	if (s == &d->st[S_PRIMARY] || s == &d->st[S_SECONDARY]) {
		colo_comparer_input(d->cmp,
				    s == &d->st[S_PRIMARY] ? COLO_PRIMARY
							   : COLO_SECONDARY,
				    f->data, f->len, f->vnet_hdr_len,
				    colo_loop_now(d->loop));
		handle_checkpoint_request(d);
		return;
	}
	if (s != &d->st[S_NOTIFY])
		return;
	act = colo_notify_on_message(&d->notify, msg, len,
				     colo_comparer_checkpoint_pending(d->cmp));
	if (act & COLO_NOTIFY_SEND_INIT_REPLY) {
		colo_log_info("notify: %s, answering %s",
			      COLO_NOTIFY_PROXY_INIT, COLO_NOTIFY_INIT_REPLY);
		notify_send(d, COLO_NOTIFY_MSG_INIT_REPLY);
	}
	if (act & COLO_NOTIFY_SEND_DO_CHECKPOINT) {
		colo_log_info("notify: sent the owed DO_CHECKPOINT");
		notify_send(d, COLO_NOTIFY_MSG_DO_CHECKPOINT);
	}
	if (act & COLO_NOTIFY_CHECKPOINT_DONE) {
		colo_log_info("notify: checkpoint done, releasing held output");
		colo_comparer_checkpoint_done(d->cmp, colo_loop_now(d->loop));
		handle_checkpoint_request(d);
	}
	if (act & COLO_NOTIFY_UNKNOWN) {
		char text[256];

		colo_notify_describe(msg, len, text, sizeof(text));
		colo_log_warn("notify: unknown message of %zu bytes ignored: "
			      "\"%s\"",
			      len, text);
	}
}

static void on_connected(void *opaque, struct colo_stream *s)
{
	struct daemon *d = opaque;

	if (s == &d->st[S_NOTIFY])
		d->notify.initialised = false;
}

static const struct colo_stream_ops stream_ops = {
	.frame = on_frame,
	.connected = on_connected,
};

static void print_stats(struct daemon *d, const char *title)
{
	colo_log_info("%s", title);
	colo_stats_print(colo_comparer_stats(d->cmp), stderr);
	for (int i = 0; i < d->nstreams; i++)
		colo_stream_print_stats(&d->st[i], stderr);
	if (d->cfg->has_notify) {
		fprintf(stderr, "notify.messages_received %llu\n",
			(unsigned long long)d->notify.received);
		fprintf(stderr, "notify.messages_unknown %llu\n",
			(unsigned long long)d->notify.unknown);
		fprintf(stderr, "notify.do_checkpoint_sent %llu\n",
			(unsigned long long)d->notify.sent_do_checkpoint);
		fprintf(stderr, "notify.checkpoints_done %llu\n",
			(unsigned long long)d->notify.checkpoints_done);
		fprintf(stderr, "notify.peers_dropped_unread %llu\n",
			(unsigned long long)d->notify_dropped);
	}
	fprintf(stderr, "daemon.checkpoints_without_notify %llu\n",
		(unsigned long long)d->self_checkpoints);
	fprintf(stderr, "daemon.input_pauses %llu\n",
		(unsigned long long)d->pauses);
	fflush(stderr);
}

static void apply_back_pressure(struct daemon *d)
{
	size_t pending = colo_outbuf_pending(&d->st[S_OUT].out);
	bool pause;

	if (!d->paused && pending >= OUT_HIGH_WATER)
		pause = true;
	else if (d->paused && pending <= OUT_LOW_WATER)
		pause = false;
	else
		return;
	d->paused = pause;
	if (pause) {
		d->pauses++;
		colo_log_warn("out: %zu bytes waiting (%s); pausing inputs",
			      pending,
			      colo_stream_connected(&d->st[S_OUT]) ? "slow peer"
								   : "no peer");
	} else {
		colo_log_info("out: backlog drained; resuming inputs");
	}
	colo_stream_set_reading(&d->st[S_PRIMARY], !pause);
	colo_stream_set_reading(&d->st[S_SECONDARY], !pause);
}

static void on_signal(void *opaque, const struct signalfd_siginfo *si)
{
	struct daemon *d = opaque;

	if (si->ssi_signo == SIGUSR1) {
		print_stats(d, "statistics (SIGUSR1)");
		return;
	}
	d->stop = true;
	colo_loop_stop(d->loop);
}

/* The compare-timeout scan: periodic on its own grid, so a late wake-up
 * does not shift every later scan. */
static void on_scan(void *opaque)
{
	struct daemon *d = opaque;
	uint64_t now = colo_loop_now(d->loop),
		 every = d->cfg->scan_interval_ms * COLO_NS_PER_MS;

	colo_comparer_tick(d->cmp, now);
	handle_checkpoint_request(d);
	d->next_scan += every;
	if (d->next_scan <= now)
		d->next_scan = now + every;
	colo_timer_arm_at(d->scan, d->next_scan);
}

static void on_stats(void *opaque)
{
	struct daemon *d = opaque;

	print_stats(d, "statistics (--stats-interval)");
	colo_timer_arm_in(d->stats, d->cfg->stats_interval_s * COLO_NS_PER_S);
}

/* Before sleep: everything released during this wake-up leaves now. */
static void flush_output(void *opaque)
{
	struct daemon *d = opaque;

	colo_stream_flush(&d->st[S_OUT]);
	if (d->cfg->has_notify)
		colo_stream_flush(&d->st[S_NOTIFY]);
	apply_back_pressure(d);
}

static int setup(struct daemon *d, const struct colo_daemon_config *cfg)
{
	static const char *const names[S_COUNT] = { "primary-in",
						    "secondary-in", "out",
						    "notify" };
	const struct colo_sock_spec *specs[S_COUNT] = {
		&cfg->primary, &cfg->secondary, &cfg->out, &cfg->notify
	};
	enum colo_framing in =
		cfg->vnet_hdr ? COLO_FRAMING_VNET : COLO_FRAMING_PLAIN;
	struct colo_comparer_config cc;
	struct colo_comparer_ops ops = { .release = on_release,
					 .event = on_event };
	static const int sigs[] = { SIGTERM, SIGINT, SIGUSR1 };

	colo_comparer_config_default(&cc);
	cc.compare_timeout_ns = cfg->compare_timeout_ms * COLO_NS_PER_MS;
	cc.max_queue = cfg->max_queue;
	cc.max_flows = cfg->max_flows;
	d->cmp = colo_comparer_new(&cc, &ops, d);
	d->nstreams = cfg->has_notify ? S_COUNT : S_COUNT - 1;
	for (int i = 0; i < d->nstreams; i++) {
		bool reader = i != S_OUT, out = i >= S_OUT;
		enum colo_framing fr = in;

		if (i == S_NOTIFY && cfg->vnet_hdr)
			fr = COLO_FRAMING_VNET_OPTIONAL;
		if (colo_stream_init(&d->st[i], names[i], specs[i], reader, fr,
				     out, i == S_OUT && cfg->vnet_hdr,
				     &stream_ops, d))
			goto nomem;
	}
	if (!d->cmp)
		goto nomem;

	colo_ignore_sigpipe();
	d->loop = colo_loop_new();
	if (!d->loop)
		goto noloop;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (colo_loop_on_signal(d->loop, sigs[i], on_signal, d))
			goto noloop;
	d->scan = colo_timer_new(d->loop, on_scan, d);
	d->stats = colo_timer_new(d->loop, on_stats, d);
	if (!d->scan || !d->stats ||
	    colo_loop_before_sleep(d->loop, flush_output, d))
		goto noloop;
	for (int i = 0; i < d->nstreams; i++)
		if (colo_stream_start(&d->st[i], d->loop))
			return -1;
	d->next_scan =
		colo_loop_now(d->loop) + cfg->scan_interval_ms * COLO_NS_PER_MS;
	colo_timer_arm_at(d->scan, d->next_scan);
	if (cfg->stats_interval_s)
		colo_timer_arm_in(d->stats,
				  cfg->stats_interval_s * COLO_NS_PER_S);
	return 0;
noloop:
	colo_log_warn("cannot set up the event loop: %s", strerror(errno));
	return -1;
nomem:
	colo_log_warn("out of memory");
	return -1;
}

int colo_daemon_run(const struct colo_daemon_config *cfg)
{
	struct daemon d;
	int rc = 1;

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	for (int i = 0; i < S_COUNT; i++)
		d.st[i].fd = d.st[i].listen_fd = -1;
	colo_log_quiet = cfg->quiet;
	if (!setup(&d, cfg)) {
		if (colo_loop_run(d.loop))
			colo_log_warn("epoll_wait: %s", strerror(errno));
		rc = d.stop ? 0 : 1;
		if (!d.stop)
			colo_log_warn("event loop failed; exiting");
		print_stats(&d, "exiting; final statistics");
	}
	for (int i = 0; i < S_COUNT; i++)
		colo_stream_close(&d.st[i]);
	if (d.cmp)
		colo_comparer_free(d.cmp);
	colo_loop_free(d.loop);
	return rc;
}
