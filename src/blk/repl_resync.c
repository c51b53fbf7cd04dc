/*
 * repl_resync.c - bringing a newly linked secondary in sync with the
 * primary's image, before the pair counts as protected.
 *
 * Two ways. When the dirty map says what the secondary lacks (a link lost
 * and found again within one session), those granules are copied. When
 * nothing is known of the secondary's image (the first link, another
 * host's image after a failover) every granule is suspect: if both sides
 * can, the primary asks for the secondary's digests range by range
 * (DIGEST_REQ) and copies only the granules whose digests differ from
 * its own; otherwise (or with --resync full) it copies everything.
 *
 * Guest writes go on meanwhile and are forwarded in order. A copied
 * granule is read and sent with `order` held, so no write to it can pass
 * it or be passed by it. A range's digests are taken with `order` held
 * from our hashing until its DIGEST_REQ is on the link, so both sides
 * hash the same point of the write stream: a granule equal there stays
 * equal, since every later write reaches both; one that differs is sent
 * as it is when it is sent, which is again what the secondary will have
 * once the writes before it are applied.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "digest.h"
#include "log.h"
#include "repl_link.h"
#include "repl_primary_int.h"

static bool all_zero(const uint8_t *b, size_t n)
{
	return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Where a resync stands: the link it runs on and what it has done. */
struct pass {
	int fd;
	uint64_t epoch;
	uint64_t last_ping; /* ns */
	uint64_t sent;	    /* bytes of the granules copied */
	uint64_t compared;  /* bytes whose digests were compared */
};

/* With order held: whether the pass's link is still the current one. */
static bool pass_alive(struct colo_repl_primary *p, const struct pass *ps)
{
	bool alive;

	pthread_mutex_lock(&p->lock);
	alive = p->epoch == ps->epoch && !p->stop;
	pthread_mutex_unlock(&p->lock);
	return alive;
}

/*
 * With order held: sends one granule as the image has it now. Only pongs
 * come back during a long copy, so a ping goes along every quarter of
 * the timeout, or the receiver would take the silence for a dead link.
 */
static int send_granule(struct colo_repl_primary *p, struct pass *ps,
			uint64_t off, uint32_t len)
{
	struct colo_link_hdr h = {
		.type = COLO_LINK_RESYNC_DATA,
		.off = off,
		.len = len,
	};
	int r = p->image->ops->pread(p->image, p->chunk, len, off);

	if (r < 0)
		return r;
	if (all_zero(p->chunk, len))
		h.flags = COLO_LINK_F_ZERO;
	r = colo_link_send(ps->fd, &h, p->chunk);
	if (r == 0 && colo_now_ns() - ps->last_ping >
			      p->timeout_ms * COLO_NS_PER_MS / 4) {
		struct colo_link_hdr ping = { .type = COLO_LINK_PING };

		r = colo_link_send(ps->fd, &ping, NULL);
		ps->last_ping = colo_now_ns();
	}
	if (r == 0)
		ps->sent += len;
	return r;
}

/* Copies every granule of the resync set. */
static int copy_pass(struct colo_repl_primary *p, struct pass *ps)
{
	uint64_t pos = 0, off;
	uint32_t len;
	int r = 0;

	while (r == 0) {
		bool more;

		pthread_mutex_lock(&p->order);
		pthread_mutex_lock(&p->lock);
		more = p->epoch == ps->epoch && !p->stop &&
		       colo_dirty_map_next(&p->resync, &pos, &off, &len);
		pthread_mutex_unlock(&p->lock);
		if (more)
			r = send_granule(p, ps, off, len);
		pthread_mutex_unlock(&p->order);
		if (!more)
			break;
	}
	return r;
}

/* Hashes [off, off + len) of our image and asks for the secondary's
 * digests of it, with order held across both (see the top). */
static int digest_issue(struct colo_repl_primary *p, struct pass *ps,
			uint64_t off, uint32_t len)
{
	struct colo_prim_digest_slot *sl;
	struct colo_link_hdr h = { .type = COLO_LINK_DIGEST_REQ,
				   .off = off,
				   .len = len };
	uint32_t gran = p->dirty.gran;
	int r;

	pthread_mutex_lock(&p->order);
	if (!pass_alive(p, ps)) {
		pthread_mutex_unlock(&p->order);
		return -ECONNRESET;
	}
	sl = &p->dw[p->dw_issued % COLO_PRIM_DIGEST_WINDOW];
	r = colo_digest_range(p->dg, p->image, off, len, gran, sl->mine);
	if (r == 0) {
		pthread_mutex_lock(&p->lock);
		h.seq = ++p->next_seq;
		r = colo_prim_queue_push(p, h.seq, 0, 0);
		sl->seq = h.seq;
		sl->off = off;
		sl->len = len;
		sl->count = (uint32_t)((len + (uint64_t)gran - 1) / gran);
		p->dw_issued++;
		pthread_mutex_unlock(&p->lock);
	}
	if (r == 0)
		r = colo_link_send(ps->fd, &h, NULL);
	pthread_mutex_unlock(&p->order);
	return r;
}

/* Waits for the digests of request number n (the oldest unsettled),
 * then copies the granules that differ. */
static int digest_settle(struct colo_repl_primary *p, struct pass *ps,
			 uint64_t n)
{
	struct colo_prim_digest_slot *sl = &p->dw[n % COLO_PRIM_DIGEST_WINDOW];
	uint64_t want = n + 1;
	uint32_t gran = p->dirty.gran;
	bool ok;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	while (p->dw_replied < want && p->epoch == ps->epoch && !p->stop)
		pthread_cond_wait(&p->cond, &p->lock);
	ok = p->dw_replied >= want && p->epoch == ps->epoch && !p->stop;
	pthread_mutex_unlock(&p->lock);
	if (!ok)
		return -ECONNRESET;
	for (uint32_t i =
		     colo_digest_next_diff(sl->mine, sl->theirs, 0, sl->count);
	     i < sl->count && r == 0;
	     i = colo_digest_next_diff(sl->mine, sl->theirs, i + 1,
				       sl->count)) {
		uint64_t off = sl->off + (uint64_t)i * gran;
		uint32_t len = sl->off + sl->len - off < gran
				       ? (uint32_t)(sl->off + sl->len - off)
				       : gran;

		pthread_mutex_lock(&p->order);
		r = pass_alive(p, ps) ? send_granule(p, ps, off, len)
				      : -ECONNRESET;
		pthread_mutex_unlock(&p->order);
	}
	ps->compared += sl->len;
	return r;
}

/* Compares the whole image, a window of requests ahead. dw_replied is
 * advanced by the receiver only; dw_issued by us. */
static int digest_pass(struct colo_repl_primary *p, struct pass *ps)
{
	uint64_t next = 0, size = p->image->size, settled = 0;
	uint64_t step = (uint64_t)p->dw_per * p->dirty.gran;
	int r = 0;

	while (r == 0) {
		while (r == 0 && next < size &&
		       p->dw_issued - settled < COLO_PRIM_DIGEST_WINDOW) {
			uint32_t len =
				(uint32_t)(size - next < step ? size - next
							      : step);

			r = digest_issue(p, ps, next, len);
			next += len;
		}
		if (r < 0 || settled == p->dw_issued)
			break;
		r = digest_settle(p, ps, settled);
		settled++;
	}
	return r;
}

int colo_prim_digest_arrived(struct colo_repl_primary *p,
			     const struct colo_link_hdr *h,
			     const uint8_t *payload)
{
	struct colo_prim_digest_slot *sl =
		&p->dw[p->dw_replied % COLO_PRIM_DIGEST_WINDOW];

	if (p->dw_replied == p->dw_issued || h->seq != sl->seq ||
	    h->off != sl->off ||
	    h->len != (uint64_t)sl->count * COLO_LINK_DIGEST_LEN)
		return -EPROTO;
	memcpy(sl->theirs, payload, h->len);
	p->dw_replied++;
	return 0;
}

int colo_prim_resync(struct colo_repl_primary *p, int fd, uint64_t epoch)
{
	struct colo_link_hdr h = { .type = COLO_LINK_RESYNC_BEGIN };
	struct pass ps = { .fd = fd, .epoch = epoch };
	uint64_t t0 = colo_now_ns(), set;
	bool by_digest;
	int r;

	ps.last_ping = t0;
	pthread_mutex_lock(&p->lock);
	set = colo_dirty_map_bytes(&p->resync);
	by_digest = p->unknown && p->peer_digest && !p->resync_full;
	p->dw_issued = p->dw_replied = 0;
	pthread_mutex_unlock(&p->lock);
	colo_log_info("blk primary: resync of %llu bytes%s",
		      (unsigned long long)set, by_digest ? ", by digest" : "");
	h.off = set;
	pthread_mutex_lock(&p->order);
	r = colo_link_send(fd, &h, NULL);
	pthread_mutex_unlock(&p->order);
	if (r == 0)
		r = by_digest ? digest_pass(p, &ps) : copy_pass(p, &ps);
	if (r < 0) {
		colo_prim_link_lost(p, epoch, strerror(-r));
		return r;
	}
	/* The end marker takes a sequence number: its ack covers it all. */
	pthread_mutex_lock(&p->order);
	pthread_mutex_lock(&p->lock);
	if (p->epoch != epoch || p->stop) {
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&p->order);
		return -ECONNRESET;
	}
	h = (struct colo_link_hdr){ .type = COLO_LINK_RESYNC_END,
				    .seq = ++p->next_seq };
	r = colo_prim_queue_push(p, h.seq, 0, 0);
	pthread_mutex_unlock(&p->lock);
	if (r == 0)
		r = colo_link_send(fd, &h, NULL);
	pthread_mutex_unlock(&p->order);
	if (r < 0) {
		colo_prim_link_lost(p, epoch, strerror(-r));
		return r;
	}
	r = colo_prim_wait_ack(p, h.seq, epoch, 0);
	if (r < 0)
		return r;
	pthread_mutex_lock(&p->lock);
	if (p->epoch == epoch) {
		colo_dirty_map_clear_all(&p->resync);
		p->resync_active = false;
		p->unknown = false;
		p->state = COLO_REPL_PROTECTED;
		p->st.resyncs++;
		p->st.digest_resyncs += by_digest;
		p->st.last_resync_bytes = ps.sent;
		p->st.total_resync_bytes += ps.sent;
		p->st.last_resync_compared = ps.compared;
		p->st.total_resync_compared += ps.compared;
		p->st.last_resync_ms = (colo_now_ns() - t0) / COLO_NS_PER_MS;
		colo_log_info("blk primary: resync done (%llu bytes compared, "
			      "%llu copied): protected",
			      (unsigned long long)ps.compared,
			      (unsigned long long)ps.sent);
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int colo_prim_digest_init(struct colo_repl_primary *p)
{
	uint32_t per = COLO_PRIM_DIGEST_BYTES / p->dirty.gran;
	size_t bytes;

	if (per == 0)
		per = 1;
	if (per > COLO_LINK_MAX_DIGESTS)
		per = COLO_LINK_MAX_DIGESTS;
	p->dw_per = per;
	bytes = (size_t)per * COLO_LINK_DIGEST_LEN;
	p->dg = colo_digester_new();
	p->rx = malloc(COLO_LINK_MAX_DIGESTS * COLO_LINK_DIGEST_LEN);
	if (!p->dg || !p->rx)
		return -ENOMEM;
	for (int i = 0; i < COLO_PRIM_DIGEST_WINDOW; i++) {
		p->dw[i].mine = malloc(bytes);
		p->dw[i].theirs = malloc(bytes);
		if (!p->dw[i].mine || !p->dw[i].theirs)
			return -ENOMEM;
	}
	return 0;
}

void colo_prim_digest_free(struct colo_repl_primary *p)
{
	for (int i = 0; i < COLO_PRIM_DIGEST_WINDOW; i++) {
		free(p->dw[i].mine);
		free(p->dw[i].theirs);
	}
	free(p->rx);
	colo_digester_free(p->dg);
}
