/*
 * disk_buffer.c - the secondary's hidden and active buffers.
 *
 * Each buffer is an unnamed sparse file of granule-sized slots plus an
 * in-memory map granule -> slot (open addressing). Memory is O(granules
 * buffered since the last checkpoint), never O(disk size): a checkpoint
 * frees the maps and truncates the files.
 *
 * Slots always hold complete granules. When a guest write covers only
 * part of a granule that is not yet in active, the granule is first
 * filled from the current view (hidden, else image). The alternative,
 * per-sector valid bitmaps, would save that read but make every read
 * merge up to three sources sector by sector and make failover fold
 * partial granules; one extra granule read per first partial write per
 * checkpoint interval is the cheaper price. Complete active slots also
 * mean a granule in active never needs its original in hidden, so a
 * primary write there saves nothing.
 *
 * One rwlock orders everything: guest reads share it; guest writes,
 * primary writes, checkpoint and failover take it exclusively, so a
 * checkpoint is atomic with respect to guest requests (they wait).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk_buffer.h"

struct slot_map {
	uint64_t *keys; /* granule + 1; 0 = empty */
	uint64_t *slots;
	size_t cap; /* power of two, or 0 */
	size_t count;
};

struct buffer {
	int fd;
	struct slot_map map;
	uint64_t next_slot;
};

struct colo_disk_buffer {
	struct colo_blk_dev dev;
	struct colo_blk_dev *image;
	uint32_t gran;
	unsigned int shift;
	pthread_rwlock_t lock;
	struct buffer hidden, active;
	uint8_t *tmp;  /* one granule, used under the write lock */
	uint8_t *zero; /* one granule of zeroes */
	bool failed_over;
	/* After failover, what the guest's requests go to instead of the
	 * image (colo_disk_buffer_route); NULL: the image. */
	struct colo_blk_dev *route;
	bool prepared; /* colo_disk_buffer_prepare, not yet committed */
	uint64_t writes_since_prepare;
	struct colo_disk_buffer_stats st;
};

/* ---- granule -> slot map */

static size_t map_hash(uint64_t key, size_t cap)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 17) & (cap - 1);
}

static bool map_get(const struct slot_map *m, uint64_t g, uint64_t *slot)
{
	uint64_t key = g + 1;

	if (!m->cap)
		return false;
	for (size_t i = map_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == key) {
			if (slot)
				*slot = m->slots[i];
			return true;
		}
		if (!m->keys[i])
			return false;
	}
}

static void map_put_nogrow(struct slot_map *m, uint64_t key, uint64_t slot)
{
	size_t i = map_hash(key, m->cap);

	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & (m->cap - 1);
	if (!m->keys[i])
		m->count++;
	m->keys[i] = key;
	m->slots[i] = slot;
}

static int map_put(struct slot_map *m, uint64_t g, uint64_t slot)
{
	if ((m->count + 1) * 2 > m->cap) {
		struct slot_map n = { .cap = m->cap ? m->cap * 2 : 64 };

		n.keys = calloc(n.cap, sizeof(*n.keys));
		n.slots = calloc(n.cap, sizeof(*n.slots));
		if (!n.keys || !n.slots) {
			free(n.keys);
			free(n.slots);
			return -ENOMEM;
		}
		for (size_t i = 0; i < m->cap; i++)
			if (m->keys[i])
				map_put_nogrow(&n, m->keys[i], m->slots[i]);
		free(m->keys);
		free(m->slots);
		*m = n;
	}
	map_put_nogrow(m, g + 1, slot);
	return 0;
}

static void map_clear(struct slot_map *m)
{
	free(m->keys);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* ---- buffer files */

static int open_buffer_file(const char *dir)
{
	char path[4096];
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 ||
	    (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	/* File systems without O_TMPFILE: a named file, unlinked at once. */
	if (snprintf(path, sizeof(path), "%s/colo-buffer-XXXXXX", dir) >=
	    (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) { /* a hole past EOF reads as zeroes */
			memset(p, 0, len);
			return 0;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static int full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ENOSPC ? -ENOSPC : -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static void buffer_drop(struct buffer *b)
{
	map_clear(&b->map);
	b->next_slot = 0;
	/* Gives the space back; a failure only costs disk space. */
	if (ftruncate(b->fd, 0) < 0)
		(void)0;
}

/* ---- helpers */

static uint32_t granule_len(const struct colo_disk_buffer *db, uint64_t g)
{
	uint64_t start = g << db->shift;
	uint64_t left = db->dev.size - start;

	return left < db->gran ? (uint32_t)left : db->gran;
}

static int image_read(struct colo_disk_buffer *db, void *buf, uint32_t len,
		      uint64_t off)
{
	return db->image->ops->pread(db->image, buf, len, off);
}

/* What a failed-over guest request goes to: the image, or the device
 * it was routed through. Under the lock. */
static struct colo_blk_dev *served(struct colo_disk_buffer *db)
{
	return db->route ? db->route : db->image;
}

static int image_write(struct colo_disk_buffer *db, const void *data,
		       uint32_t len, uint64_t off)
{
	const struct colo_blk_dev_ops *ops = db->image->ops;

	if (data)
		return ops->pwrite(db->image, data, len, off, false);
	if (ops->write_zeroes)
		return ops->write_zeroes(db->image, len, off, false, false);
	while (len) {
		uint32_t n = len < db->gran ? len : db->gran;
		int r = ops->pwrite(db->image, db->zero, n, off, false);

		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

/* One granule of the guest's view, hidden then image (active excluded). */
static int read_under_active(struct colo_disk_buffer *db, uint64_t g, void *buf,
			     uint32_t len, uint32_t in)
{
	uint64_t slot;

	if (map_get(&db->hidden.map, g, &slot))
		return full_pread(db->hidden.fd, buf, len,
				  (slot << db->shift) + in);
	return image_read(db, buf, len, (g << db->shift) + in);
}

/* ---- the guest's view */

static int guest_pread(struct colo_blk_dev *d, void *buf, uint32_t len,
		       uint64_t off)
{
	struct colo_disk_buffer *db = d->priv;
	uint8_t *p = buf;
	int r = 0;

	pthread_rwlock_rdlock(&db->lock);
	if (db->failed_over) {
		r = served(db)->ops->pread(served(db), buf, len, off);
		goto out;
	}
	while (len && !r) {
		uint64_t g = off >> db->shift;
		uint32_t in = (uint32_t)(off & (db->gran - 1));
		uint32_t n = db->gran - in < len ? db->gran - in : len;
		uint64_t slot;

		if (map_get(&db->active.map, g, &slot))
			r = full_pread(db->active.fd, p, n,
				       (slot << db->shift) + in);
		else
			r = read_under_active(db, g, p, n, in);
		p += n;
		off += n;
		len -= n;
	}
	__atomic_add_fetch(&db->st.guest_reads, 1, __ATOMIC_RELAXED);
out:
	pthread_rwlock_unlock(&db->lock);
	return r;
}

/* Write [in, in + n) of granule g into active (data NULL: zeroes). */
static int active_write_granule(struct colo_disk_buffer *db, uint64_t g,
				const uint8_t *data, uint32_t n, uint32_t in)
{
	uint32_t glen = granule_len(db, g);
	uint64_t slot;
	int r;

	if (map_get(&db->active.map, g, &slot))
		return full_pwrite(db->active.fd, data ? data : db->zero, n,
				   (slot << db->shift) + in);
	slot = db->active.next_slot;
	if (in == 0 && n == glen) {
		r = full_pwrite(db->active.fd, data ? data : db->zero, n,
				slot << db->shift);
	} else {
		r = read_under_active(db, g, db->tmp, glen, 0);
		if (r < 0)
			return r;
		memcpy(db->tmp + in, data ? data : db->zero, n);
		r = full_pwrite(db->active.fd, db->tmp, glen,
				slot << db->shift);
	}
	if (r < 0)
		return r;
	r = map_put(&db->active.map, g, slot);
	if (r == 0)
		db->active.next_slot++;
	return r;
}

static int guest_write(struct colo_blk_dev *d, const void *buf, uint32_t len,
		       uint64_t off, bool fua)
{
	struct colo_disk_buffer *db = d->priv;
	const uint8_t *p = buf;
	int r = 0;

	pthread_rwlock_wrlock(&db->lock);
	if (db->failed_over && db->route) {
		r = buf ? db->route->ops->pwrite(db->route, buf, len, off, fua)
			: db->route->ops->write_zeroes(db->route, len, off, fua,
						       false);
		goto out;
	}
	if (db->failed_over) {
		r = image_write(db, buf, len, off);
		if (r == 0 && fua)
			r = db->image->ops->flush(db->image);
		goto out;
	}
	while (len && !r) {
		uint64_t g = off >> db->shift;
		uint32_t in = (uint32_t)(off & (db->gran - 1));
		uint32_t n = db->gran - in < len ? db->gran - in : len;

		r = active_write_granule(db, g, p, n, in);
		if (p)
			p += n;
		off += n;
		len -= n;
	}
	db->st.guest_writes++;
out:
	pthread_rwlock_unlock(&db->lock);
	return r;
}

static int guest_pwrite(struct colo_blk_dev *d, const void *buf, uint32_t len,
			uint64_t off, bool fua)
{
	return guest_write(d, buf, len, off, fua);
}

static int guest_write_zeroes(struct colo_blk_dev *d, uint32_t len,
			      uint64_t off, bool fua, bool may_trim)
{
	(void)may_trim;
	return guest_write(d, NULL, len, off, fua);
}

/* Discarded ranges read back as zeroes, in active like on the image. */
static int guest_trim(struct colo_blk_dev *d, uint32_t len, uint64_t off)
{
	return guest_write(d, NULL, len, off, false);
}

/*
 * Before failover the buffers are only as durable as the in-memory maps
 * that index them: a secondary that crashes loses its VM too, and the
 * buffers mean nothing to the next one. So a flush has nothing to make
 * durable until the image is served directly.
 */
static int guest_flush(struct colo_blk_dev *d)
{
	struct colo_disk_buffer *db = d->priv;
	int r = 0;

	pthread_rwlock_rdlock(&db->lock);
	if (db->failed_over)
		r = served(db)->ops->flush(served(db));
	pthread_rwlock_unlock(&db->lock);
	return r;
}

static const struct colo_blk_dev_ops guest_ops = {
	.pread = guest_pread,
	.pwrite = guest_pwrite,
	.flush = guest_flush,
	.trim = guest_trim,
	.write_zeroes = guest_write_zeroes,
};

/*
 * The guest's requests once routed (colo_disk_buffer_route): straight to
 * the route, without the buffer's lock, so that a replicating device
 * keeps its own concurrency (many writes awaiting the secondary's acks).
 * The route is set before these ops are published and never changes.
 */
static struct colo_blk_dev *route_of(struct colo_blk_dev *d)
{
	struct colo_disk_buffer *db = d->priv;

	return __atomic_load_n(&db->route, __ATOMIC_ACQUIRE);
}

static int routed_pread(struct colo_blk_dev *d, void *buf, uint32_t len,
			uint64_t off)
{
	struct colo_blk_dev *r = route_of(d);

	return r->ops->pread(r, buf, len, off);
}

static int routed_pwrite(struct colo_blk_dev *d, const void *buf, uint32_t len,
			 uint64_t off, bool fua)
{
	struct colo_blk_dev *r = route_of(d);

	return r->ops->pwrite(r, buf, len, off, fua);
}

static int routed_pwrite_async(struct colo_blk_dev *d, const void *buf,
			       uint32_t len, uint64_t off, bool fua,
			       void (*done)(void *arg, int result), void *arg)
{
	struct colo_blk_dev *r = route_of(d);
	int rc;

	if (r->ops->pwrite_async)
		return r->ops->pwrite_async(r, buf, len, off, fua, done, arg);
	rc = r->ops->pwrite(r, buf, len, off, fua);
	if (rc == 0)
		done(arg, 0);
	return rc;
}

static int routed_flush(struct colo_blk_dev *d)
{
	struct colo_blk_dev *r = route_of(d);

	return r->ops->flush(r);
}

static int routed_trim(struct colo_blk_dev *d, uint32_t len, uint64_t off)
{
	struct colo_blk_dev *r = route_of(d);

	return r->ops->trim(r, len, off);
}

static int routed_write_zeroes(struct colo_blk_dev *d, uint32_t len,
			       uint64_t off, bool fua, bool may_trim)
{
	struct colo_blk_dev *r = route_of(d);

	return r->ops->write_zeroes(r, len, off, fua, may_trim);
}

static const struct colo_blk_dev_ops routed_ops = {
	.pread = routed_pread,
	.pwrite = routed_pwrite,
	.pwrite_async = routed_pwrite_async,
	.flush = routed_flush,
	.trim = routed_trim,
	.write_zeroes = routed_write_zeroes,
};

int colo_disk_buffer_route(struct colo_disk_buffer *db, struct colo_blk_dev *to)
{
	int r = 0;

	/* The write lock waits out every request that reads the image
	 * directly: none lands behind the route's back once we return. */
	pthread_rwlock_wrlock(&db->lock);
	if (!db->failed_over)
		r = -EINVAL;
	else if (db->route)
		r = -EALREADY;
	else if (to->size != db->dev.size)
		r = -ERANGE;
	if (r == 0) {
		__atomic_store_n(&db->route, to, __ATOMIC_RELEASE);
		__atomic_store_n(&db->dev.ops, &routed_ops, __ATOMIC_RELEASE);
	}
	pthread_rwlock_unlock(&db->lock);
	return r;
}

struct colo_blk_dev *colo_disk_buffer_image(struct colo_disk_buffer *db)
{
	return db->image;
}

/* ---- the primary's side */

int colo_disk_buffer_apply_primary_write(struct colo_disk_buffer *db,
					 uint64_t off, uint32_t len,
					 const void *data)
{
	uint64_t end = off + len;
	int r = 0;

	if (!len)
		return 0;
	if (off > db->dev.size || len > db->dev.size - off)
		return -EINVAL;
	pthread_rwlock_wrlock(&db->lock);
	if (db->failed_over) {
		r = -ESHUTDOWN;
		goto out;
	}
	for (uint64_t g = off >> db->shift; (g << db->shift) < end; g++) {
		uint32_t glen = granule_len(db, g);
		uint64_t slot = db->hidden.next_slot;

		if (map_get(&db->active.map, g, NULL) ||
		    map_get(&db->hidden.map, g, NULL))
			continue;
		r = image_read(db, db->tmp, glen, g << db->shift);
		if (r == 0)
			r = full_pwrite(db->hidden.fd, db->tmp, glen,
					slot << db->shift);
		if (r == 0)
			r = map_put(&db->hidden.map, g, slot);
		if (r < 0)
			goto out;
		db->hidden.next_slot++;
		db->st.originals_saved++;
	}
	r = image_write(db, data, len, off);
	if (db->prepared)
		db->writes_since_prepare++;
	db->st.primary_writes++;
	db->st.primary_bytes += len;
out:
	pthread_rwlock_unlock(&db->lock);
	return r;
}

int colo_disk_buffer_apply_resync(struct colo_disk_buffer *db, uint64_t off,
				  uint32_t len, const void *data)
{
	int r;

	if (off > db->dev.size || len > db->dev.size - off)
		return -EINVAL;
	pthread_rwlock_wrlock(&db->lock);
	r = db->failed_over ? -ESHUTDOWN : image_write(db, data, len, off);
	pthread_rwlock_unlock(&db->lock);
	return r;
}

int colo_disk_buffer_flush_image(struct colo_disk_buffer *db)
{
	return db->image->ops->flush(db->image);
}

int colo_disk_buffer_checkpoint(struct colo_disk_buffer *db)
{
	int r = 0;

	pthread_rwlock_wrlock(&db->lock);
	if (db->failed_over) {
		r = -ESHUTDOWN;
	} else {
		buffer_drop(&db->hidden);
		buffer_drop(&db->active);
		db->prepared = false;
		db->st.checkpoints++;
	}
	pthread_rwlock_unlock(&db->lock);
	return r;
}

int colo_disk_buffer_prepare(struct colo_disk_buffer *db)
{
	int r = 0;

	pthread_rwlock_wrlock(&db->lock);
	if (db->failed_over)
		r = -ESHUTDOWN;
	else if (db->prepared)
		r = -EALREADY;
	else {
		db->prepared = true;
		db->writes_since_prepare = 0;
	}
	pthread_rwlock_unlock(&db->lock);
	return r;
}

/*
 * Dropping the buffers is right only if they hold exactly the primary's
 * writes up to the prepare point: a write after it saved an original
 * that the next epoch's failover needs. The frame keeps the primary
 * stopped from prepare to commit, so such a write means the caller's
 * sequence broke; the checkpoint is refused rather than made wrong.
 */
int colo_disk_buffer_commit(struct colo_disk_buffer *db)
{
	int r = 0;

	pthread_rwlock_wrlock(&db->lock);
	if (db->failed_over) {
		r = -ESHUTDOWN;
	} else if (!db->prepared) {
		r = -ENOENT;
	} else if (db->writes_since_prepare) {
		db->prepared = false;
		r = -ESTALE;
	} else {
		buffer_drop(&db->hidden);
		buffer_drop(&db->active);
		db->prepared = false;
		db->st.checkpoints++;
	}
	pthread_rwlock_unlock(&db->lock);
	return r;
}

bool colo_disk_buffer_abort(struct colo_disk_buffer *db)
{
	bool was;

	pthread_rwlock_wrlock(&db->lock);
	was = db->prepared;
	db->prepared = false;
	pthread_rwlock_unlock(&db->lock);
	return was;
}

/* Copy every granule of b (skipping those in `skip`) into the image. */
static int fold(struct colo_disk_buffer *db, struct buffer *b,
		const struct slot_map *skip)
{
	for (size_t i = 0; i < b->map.cap; i++) {
		uint64_t g, slot = b->map.slots[i];
		uint32_t glen;
		int r;

		if (!b->map.keys[i])
			continue;
		g = b->map.keys[i] - 1;
		if (skip && map_get(skip, g, NULL))
			continue;
		glen = granule_len(db, g);
		r = full_pread(b->fd, db->tmp, glen, slot << db->shift);
		if (r == 0)
			r = image_write(db, db->tmp, glen, g << db->shift);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * The guest saw active, else hidden, else the image. The image holds the
 * primary's writes since the last checkpoint, which the guest never saw:
 * where hidden saved an original and active does not override it, the
 * original goes back; active goes over everything. A prepared checkpoint
 * that was not committed dropped nothing, so its writes are rolled back
 * too: the result is the last committed checkpoint plus the guest's own
 * writes, matching a secondary VM that was not replaced.
 */
int colo_disk_buffer_failover(struct colo_disk_buffer *db)
{
	int r = 0;

	pthread_rwlock_wrlock(&db->lock);
	if (db->failed_over)
		goto out;
	r = fold(db, &db->hidden, &db->active.map);
	if (r == 0)
		r = fold(db, &db->active, NULL);
	if (r == 0)
		r = db->image->ops->flush(db->image);
	if (r == 0) {
		buffer_drop(&db->hidden);
		buffer_drop(&db->active);
		db->prepared = false;
		db->failed_over = true;
	}
out:
	pthread_rwlock_unlock(&db->lock);
	return r;
}

int colo_disk_buffer_takeover(struct colo_disk_buffer *db)
{
	int r = 0;

	pthread_rwlock_wrlock(&db->lock);
	if (!db->failed_over)
		r = db->image->ops->flush(db->image);
	if (r == 0) {
		buffer_drop(&db->hidden);
		buffer_drop(&db->active);
		db->prepared = false;
		db->failed_over = true;
	}
	pthread_rwlock_unlock(&db->lock);
	return r;
}

bool colo_disk_buffer_failed_over(struct colo_disk_buffer *db)
{
	bool f;

	pthread_rwlock_rdlock(&db->lock);
	f = db->failed_over;
	pthread_rwlock_unlock(&db->lock);
	return f;
}

void colo_disk_buffer_get_stats(struct colo_disk_buffer *db,
				struct colo_disk_buffer_stats *st)
{
	pthread_rwlock_rdlock(&db->lock);
	*st = db->st;
	st->guest_reads =
		__atomic_load_n(&db->st.guest_reads, __ATOMIC_RELAXED);
	st->hidden_granules = db->hidden.map.count;
	st->active_granules = db->active.map.count;
	st->map_bytes = (db->hidden.map.cap + db->active.map.cap) * 2 *
			sizeof(uint64_t);
	st->failed_over = db->failed_over;
	st->prepared = db->prepared;
	st->writes_since_prepare = db->writes_since_prepare;
	pthread_rwlock_unlock(&db->lock);
}

/* ---- life cycle */

struct colo_disk_buffer *colo_disk_buffer_new(struct colo_blk_dev *image,
					      uint32_t gran,
					      const char *buffer_dir, char *err,
					      size_t errlen)
{
	struct colo_disk_buffer *db;

	if (gran < 512 || (gran & (gran - 1))) {
		snprintf(err, errlen,
			 "granularity %u: must be a power of two >= 512", gran);
		return NULL;
	}
	db = calloc(1, sizeof(*db));
	if (!db)
		goto nomem;
	db->hidden.fd = db->active.fd = -1;
	db->tmp = malloc(gran);
	db->zero = calloc(1, gran);
	if (!db->tmp || !db->zero)
		goto nomem;
	db->hidden.fd = open_buffer_file(buffer_dir);
	if (db->hidden.fd >= 0)
		db->active.fd = open_buffer_file(buffer_dir);
	if (db->active.fd < 0) {
		snprintf(err, errlen, "buffer file in %s: %s", buffer_dir,
			 strerror(errno));
		colo_disk_buffer_free(db);
		return NULL;
	}
	db->image = image;
	db->gran = gran;
	db->shift = (unsigned int)__builtin_ctz(gran);
	db->st.granularity = gran;
	db->dev.ops = &guest_ops;
	db->dev.size = image->size;
	db->dev.can_trim = true;
	db->dev.priv = db;
	pthread_rwlock_init(&db->lock, NULL);
	return db;
nomem:
	snprintf(err, errlen, "out of memory");
	colo_disk_buffer_free(db);
	return NULL;
}

void colo_disk_buffer_free(struct colo_disk_buffer *db)
{
	if (!db)
		return;
	if (db->image)
		pthread_rwlock_destroy(&db->lock);
	map_clear(&db->hidden.map);
	map_clear(&db->active.map);
	if (db->hidden.fd >= 0)
		close(db->hidden.fd);
	if (db->active.fd >= 0)
		close(db->active.fd);
	free(db->tmp);
	free(db->zero);
	free(db);
}

struct colo_blk_dev *colo_disk_buffer_dev(struct colo_disk_buffer *db)
{
	return &db->dev;
}
