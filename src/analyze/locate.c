/*
 * locate.c - find the frames behind a divergence.
 *
 * The comparer reports a flow and a stream position, not frames (primary
 * and secondary may segment the same bytes differently). Offline we can
 * afford to walk back through the frames fed so far and re-parse them:
 * for TCP the frame whose payload holds the sequence number, for
 * datagrams the n-th datagram of the flow since the last checkpoint on
 * both sides (datagrams are compared in order). The walk is bounded, so a
 * capture with many divergences stays linear in practice.
 */
#include <string.h>

#include "analyzer.h"
#include "flow.h"
#include "packet.h"

#define LOCATE_WINDOW 65536

static bool frame_in_flow(const struct colo_frame *fr,
			  const struct colo_flow_key *key,
			  struct colo_packet *p)
{
	struct colo_flow_key k;

	/* malformed IP frames are compared too, as one flow per ethertype */
	if (colo_packet_parse(fr->data, fr->len, p) == COLO_PKT_NON_IP)
		return false;
	memset(&k, 0, sizeof(k));
	colo_flow_key_from_packet(&k, p);
	return !memcmp(&k, key, sizeof(k));
}

static size_t window_start(size_t lo, size_t pos)
{
	if (pos - lo > LOCATE_WINDOW)
		return pos - LOCATE_WINDOW;
	return lo;
}

enum want {
	WANT_BYTE,   /* payload holds seq */
	WANT_FIN,    /* carries FIN */
	WANT_LATEST, /* any frame of the flow */
};

/* Latest frame in [lo, pos) of the flow that matches `want`. */
static size_t find_back(const struct colo_capture *c, size_t lo, size_t pos,
			const struct colo_flow_key *key, enum want want,
			uint32_t seq, size_t *byte)
{
	struct colo_packet p;

	for (size_t i = pos; i-- > window_start(lo, pos);) {
		if (!frame_in_flow(&c->frames[i], key, &p))
			continue;
		switch (want) {
		case WANT_BYTE:
			if (p.kind == COLO_PKT_TCP &&
			    seq - p.seq < p.payload_len) {
				*byte = seq - p.seq;
				return i;
			}
			break;
		case WANT_FIN:
			if (p.kind == COLO_PKT_TCP &&
			    (p.tcp_flags & COLO_TCP_FIN))
				return i;
			break;
		case WANT_LATEST:
			return i;
		}
	}
	return COLO_NO_FRAME;
}

/* The n-th (1-based) frame of the flow in [lo, pos), or the last one. */
static size_t find_nth(const struct colo_capture *c, size_t lo, size_t pos,
		       const struct colo_flow_key *key, size_t n)
{
	struct colo_packet p;
	size_t seen = 0, last = COLO_NO_FRAME;

	for (size_t i = window_start(lo, pos); i < pos; i++) {
		if (!frame_in_flow(&c->frames[i], key, &p))
			continue;
		last = i;
		if (++seen == n)
			break;
	}
	return last;
}

static size_t count_in_flow(const struct colo_capture *c, size_t lo,
			    size_t pos, const struct colo_flow_key *key)
{
	struct colo_packet p;
	size_t n = 0;

	for (size_t i = window_start(lo, pos); i < pos; i++)
		if (frame_in_flow(&c->frames[i], key, &p))
			n++;
	return n;
}

/* The held primary frame a timeout names arrived at now - held_ns. */
static size_t find_held(const struct colo_capture *c, size_t pos,
			const struct colo_divergence *d)
{
	uint64_t at = d->now_ns - d->held_ns;
	struct colo_packet p;

	for (size_t i = pos; i-- > window_start(0, pos);) {
		if (c->frames[i].ts_ns < at)
			break;
		if (c->frames[i].ts_ns == at &&
		    frame_in_flow(&c->frames[i], &d->key, &p))
			return i;
	}
	return COLO_NO_FRAME;
}

static void locate_datagram(struct colo_finding *f,
			    const struct colo_capture *const side[2],
			    const size_t pos[2], const size_t since[2],
			    int arriving)
{
	size_t n;

	if (arriving < 0) {
		for (int s = 0; s < 2; s++)
			f->frame[s] = find_back(side[s], since[s], pos[s],
						&f->d.key, WANT_LATEST, 0,
						NULL);
		return;
	}
	n = count_in_flow(side[arriving], since[arriving], pos[arriving],
			  &f->d.key);
	for (int s = 0; s < 2; s++)
		f->frame[s] = find_nth(side[s], since[s], pos[s], &f->d.key, n);
}

void colo_locate(struct colo_finding *f,
		 const struct colo_capture *const side[2], const size_t pos[2],
		 const size_t since[2], int arriving)
{
	const struct colo_divergence *d = &f->d;
	bool tcp = d->kind == COLO_PKT_TCP;

	for (int s = 0; s < 2; s++) {
		f->frame[s] = COLO_NO_FRAME;
		f->byte[s] = SIZE_MAX;
	}
	switch (d->cause) {
	case COLO_CAUSE_PAYLOAD:
		if (!tcp) {
			locate_datagram(f, side, pos, since, arriving);
			for (int s = 0; s < 2; s++)
				f->byte[s] = d->offset;
			break;
		}
		for (int s = 0; s < 2; s++)
			f->frame[s] = find_back(side[s], 0, pos[s], &d->key,
						WANT_BYTE, d->seq, &f->byte[s]);
		break;
	case COLO_CAUSE_CONTROL:
		for (int s = 0; s < 2; s++)
			f->frame[s] = find_back(side[s], 0, pos[s], &d->key,
						WANT_FIN, 0, NULL);
		break;
	case COLO_CAUSE_TIMEOUT:
		f->frame[COLO_PRIMARY] = find_held(side[COLO_PRIMARY],
						   pos[COLO_PRIMARY], d);
		break;
	case COLO_CAUSE_QUEUE_FULL:
	case COLO_CAUSE_SOURCE_PORT:
	case COLO_CAUSE_COUNT:
		for (int s = 0; s < 2; s++)
			f->frame[s] = find_back(side[s], 0, pos[s], &d->key,
						WANT_LATEST, 0, NULL);
		break;
	}
}
