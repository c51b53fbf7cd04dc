/*
 * test_nbd_server.c - the server's life cycle over a UNIX socket with a
 * memory device: pause holds device calls until resume, stop works with
 * a pause in force and clients connected, and start again after stop.
 * Then the worker pool with a slow memory device: requests of one
 * connection run concurrently (at most `workers`) and complete out of
 * order, FLUSH waits for earlier requests, overlapping requests keep
 * their order, DISC and a bad request let the requests in flight finish,
 * and pause waits for the requests in the device. Last, a device with
 * pwrite_async completing from other threads, late and out of order:
 * replies match by cookie, FLUSH, pause and DISC wait for the writes.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "nbd_proto.h"
#include "nbd_server.h"

#define SIZE  65536
#define BLOCK 4096

static uint8_t disk[SIZE];

/*
 * The slow device: a call on block i first sleeps delay_ms[i]; calls in
 * the device are counted. With a gate set, calls wait in the device until
 * that many are in at once, so a test sees the server's concurrency
 * however late the scheduler starts its threads (10 s at most, then the
 * test fails instead of hanging). Under mu.
 */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv;
static unsigned delay_ms[SIZE / BLOCK];
static unsigned cur, max_cur, calls, writes_done, flush_saw, gate;

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts))
		;
}

static void dev_enter(uint64_t off)
{
	unsigned ms;

	pthread_mutex_lock(&mu);
	calls++;
	if (++cur > max_cur)
		max_cur = cur;
	ms = delay_ms[off / BLOCK];
	if (gate && cur >= gate) {
		gate = 0;
		pthread_cond_broadcast(&gate_cv);
	}
	if (gate) {
		struct timespec dl = colo_deadline_in(10 * COLO_NS_PER_S);

		while (gate && !pthread_cond_timedwait(&gate_cv, &mu, &dl))
			;
	}
	pthread_mutex_unlock(&mu);
	sleep_ms(ms);
}

static void dev_leave(bool write)
{
	pthread_mutex_lock(&mu);
	cur--;
	writes_done += write;
	pthread_mutex_unlock(&mu);
}

static void slow_reset(unsigned ms)
{
	pthread_mutex_lock(&mu);
	for (unsigned i = 0; i < SIZE / BLOCK; i++)
		delay_ms[i] = ms;
	cur = max_cur = calls = writes_done = flush_saw = gate = 0;
	pthread_mutex_unlock(&mu);
}

static unsigned get(unsigned *v)
{
	unsigned r;

	pthread_mutex_lock(&mu);
	r = *v;
	pthread_mutex_unlock(&mu);
	return r;
}

static int mem_pread(struct colo_blk_dev *d, void *buf, uint32_t len,
		     uint64_t off)
{
	(void)d;
	dev_enter(off);
	memcpy(buf, disk + off, len);
	dev_leave(false);
	return 0;
}

static int mem_pwrite(struct colo_blk_dev *d, const void *buf, uint32_t len,
		      uint64_t off, bool fua)
{
	(void)d;
	(void)fua;
	dev_enter(off);
	memcpy(disk + off, buf, len);
	dev_leave(true);
	return 0;
}

static int mem_flush(struct colo_blk_dev *d)
{
	(void)d;
	pthread_mutex_lock(&mu);
	flush_saw = writes_done;
	pthread_mutex_unlock(&mu);
	return 0;
}

static int mem_trim(struct colo_blk_dev *d, uint32_t len, uint64_t off)
{
	(void)d;
	memset(disk + off, 0, len);
	return 0;
}

static int mem_zero(struct colo_blk_dev *d, uint32_t len, uint64_t off,
		    bool fua, bool may_trim)
{
	(void)fua;
	(void)may_trim;
	return mem_trim(d, len, off);
}

static const struct colo_blk_dev_ops mem_ops = {
	.pread = mem_pread,
	.pwrite = mem_pwrite,
	.flush = mem_flush,
	.trim = mem_trim,
	.write_zeroes = mem_zero,
};

static struct colo_blk_dev dev = { .ops = &mem_ops, .size = SIZE };

/*
 * The async device: the data lands at once, the completion comes from a
 * thread of its own after the block's delay (cur counts writes not yet
 * completed). A delay of 999 fails the call at once.
 */
struct acall {
	void (*done)(void *arg, int result);
	void *arg;
	unsigned ms;
};

static unsigned async_live; /* completion threads not finished; under mu */

static void *acall_main(void *arg)
{
	struct acall *a = arg;

	sleep_ms(a->ms);
	dev_leave(true);
	a->done(a->arg, 0);
	free(a);
	pthread_mutex_lock(&mu);
	async_live--;
	pthread_mutex_unlock(&mu);
	return NULL;
}

static int mem_pwrite_async(struct colo_blk_dev *d, const void *buf,
			    uint32_t len, uint64_t off, bool fua,
			    void (*done)(void *arg, int result), void *arg)
{
	struct acall *a = malloc(sizeof(*a));
	pthread_attr_t at;
	pthread_t t;

	(void)d;
	(void)fua;
	assert_non_null(a);
	pthread_mutex_lock(&mu);
	a->ms = delay_ms[off / BLOCK];
	if (a->ms == 999) {
		pthread_mutex_unlock(&mu);
		free(a);
		return -EIO;
	}
	calls++;
	if (++cur > max_cur)
		max_cur = cur;
	async_live++;
	pthread_mutex_unlock(&mu);
	memcpy(disk + off, buf, len);
	a->done = done;
	a->arg = arg;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	assert_int_equal(pthread_create(&t, &at, acall_main, a), 0);
	pthread_attr_destroy(&at);
	return 0;
}

static const struct colo_blk_dev_ops async_ops = {
	.pread = mem_pread,
	.pwrite = mem_pwrite,
	.flush = mem_flush,
	.trim = mem_trim,
	.write_zeroes = mem_zero,
	.pwrite_async = mem_pwrite_async,
};

static struct colo_blk_dev adev = { .ops = &async_ops, .size = SIZE };
static char dir[64], path[128], spec[160];

static void put(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void recv_all(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, (uint8_t *)buf + got, n - got, 0);

		assert_true(r > 0);
		got += (size_t)r;
	}
}

/* A client in the transmission phase. */
static int client(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	uint8_t greet[NBD_GREETING_LEN], msg[4 + 16 + 1], info[10];
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(a.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	recv_all(fd, greet, sizeof(greet));
	put(msg, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES, 4);
	put(msg + 4, NBD_OPTS_MAGIC, 8);
	put(msg + 12, NBD_OPT_EXPORT_NAME, 4);
	put(msg + 16, 1, 4);
	msg[20] = 't';
	assert_int_equal(send(fd, msg, sizeof(msg), 0), sizeof(msg));
	recv_all(fd, info, sizeof(info));
	return fd;
}

static void send_req(int fd, uint16_t type, uint64_t cookie, uint64_t off,
		     uint32_t len, const void *payload)
{
	uint8_t b[NBD_REQUEST_LEN + BLOCK];

	assert_true(!payload || len <= BLOCK);
	put(b, NBD_REQUEST_MAGIC, 4);
	put(b + 4, 0, 2);
	put(b + 6, type, 2);
	put(b + 8, cookie, 8);
	put(b + 16, off, 8);
	put(b + 24, len, 4);
	if (payload)
		memcpy(b + NBD_REQUEST_LEN, payload, len);
	assert_int_equal(send(fd, b, NBD_REQUEST_LEN + (payload ? len : 0), 0),
			 NBD_REQUEST_LEN + (payload ? len : 0));
}

static uint32_t recv_reply(int fd, uint64_t cookie)
{
	uint8_t b[NBD_SIMPLE_REPLY_LEN];
	uint64_t c = 0;

	recv_all(fd, b, sizeof(b));
	for (int i = 8; i < 16; i++)
		c = c << 8 | b[i];
	assert_true(c == cookie);
	return (uint32_t)b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7];
}

/* Any reply: returns its error, its cookie in *cookie. */
static uint32_t recv_any(int fd, uint64_t *cookie)
{
	uint8_t b[NBD_SIMPLE_REPLY_LEN];

	recv_all(fd, b, sizeof(b));
	*cookie = 0;
	for (int i = 8; i < 16; i++)
		*cookie = *cookie << 8 | b[i];
	return (uint32_t)b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7];
}

static bool readable_within(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static void test_pause_resume_stop(void **state)
{
	struct colo_nbd_server *s = colo_nbd_server_new(&dev, "t", NULL);
	char err[256], data[4];
	int fd;

	(void)state;
	assert_non_null(s);
	assert_int_equal(colo_nbd_server_listen(s, spec, err, sizeof(err)), 0);
	assert_int_equal(
		colo_nbd_server_listen(s, "tcp:127.0.0.1:1", err, sizeof(err)),
		-1);
	assert_int_equal(colo_nbd_server_start(s), 0);
	fd = client();
	assert_int_equal(colo_nbd_server_clients(s), 1);

	send_req(fd, NBD_CMD_WRITE, 1, 100, 4, "abcd");
	assert_int_equal(recv_reply(fd, 1), 0);

	/* held while paused, served on resume */
	colo_nbd_server_pause(s);
	send_req(fd, NBD_CMD_READ, 2, 100, 4, NULL);
	assert_false(readable_within(fd, 200));
	colo_nbd_server_resume(s);
	assert_true(readable_within(fd, 5000));
	assert_int_equal(recv_reply(fd, 2), 0);
	recv_all(fd, data, 4);
	assert_memory_equal(data, "abcd", 4);

	/* stop with a pause in force and a request held */
	colo_nbd_server_pause(s);
	send_req(fd, NBD_CMD_WRITE, 3, 200, 4, "wxyz");
	assert_false(readable_within(fd, 100));
	colo_nbd_server_stop(s);
	assert_memory_equal(disk + 200, "\0\0\0\0", 4);
	close(fd);
	colo_nbd_server_resume(s);

	/* the listening socket survives stop: start again */
	assert_int_equal(colo_nbd_server_start(s), 0);
	fd = client();
	send_req(fd, NBD_CMD_READ, 4, 100, 4, NULL);
	assert_int_equal(recv_reply(fd, 4), 0);
	recv_all(fd, data, 4);
	assert_memory_equal(data, "abcd", 4);
	send_req(fd, NBD_CMD_DISC, 5, 0, 0, NULL);
	assert_int_equal(recv(fd, data, 1, 0), 0);
	close(fd);
	colo_nbd_server_free(s);
	assert_int_equal(access(path, F_OK), -1);
}

/* The pool tests run with 8 workers per connection (the pool is off by
 * default; see DEFAULT_WORKERS in nbd_server.c). */
static struct colo_nbd_server *start_server(void)
{
	struct colo_nbd_server *s = colo_nbd_server_new(&dev, "t", NULL);
	char err[256];

	assert_non_null(s);
	colo_nbd_server_set_workers(s, 8);
	assert_int_equal(colo_nbd_server_listen(s, spec, err, sizeof(err)), 0);
	assert_int_equal(colo_nbd_server_start(s), 0);
	return s;
}

/*
 * 16 requests on 16 blocks, the first ones the slowest: at most 8 (the
 * pool's size) in the device at once, replies out of order, all correct.
 */
static void test_concurrent_out_of_order(void **state)
{
	struct colo_nbd_server *s = start_server();
	uint8_t blk[BLOCK], got[BLOCK];
	bool seen[17] = { false };
	uint64_t cookie, first = 0;
	int fd = client();

	(void)state;
	slow_reset(0);
	pthread_mutex_lock(&mu);
	for (unsigned i = 0; i < 16; i++)
		delay_ms[i] = 10 * (16 - i);
	gate = 8;
	pthread_mutex_unlock(&mu);
	for (unsigned i = 0; i < 16; i++) {
		memset(blk, 'a' + (int)i, sizeof(blk));
		send_req(fd, NBD_CMD_WRITE, i + 1, (uint64_t)i * BLOCK, BLOCK,
			 blk);
	}
	for (unsigned i = 0; i < 16; i++) {
		assert_int_equal(recv_any(fd, &cookie), 0);
		assert_true(cookie >= 1 && cookie <= 16 && !seen[cookie]);
		seen[cookie] = true;
		if (!first)
			first = cookie;
	}
	/* concurrency shown by structure, not by a clock: 8 calls were in
	 * the device at once (the gate held them until they were) and the
	 * slowest (first) did not reply first */
	assert_true(first != 1);
	assert_int_equal(get(&max_cur), 8);
	for (unsigned i = 0; i < 16; i++) {
		memset(blk, 'a' + (int)i, sizeof(blk));
		assert_memory_equal(disk + i * BLOCK, blk, BLOCK);
	}

	/* reads too, and a fast read is not held up by slow ones */
	slow_reset(0);
	delay_ms[0] = 300;
	send_req(fd, NBD_CMD_READ, 20, 0, BLOCK, NULL);
	send_req(fd, NBD_CMD_READ, 21, BLOCK, BLOCK, NULL);
	assert_int_equal(recv_any(fd, &cookie), 0);
	assert_true(cookie == 21);
	recv_all(fd, got, BLOCK);
	memset(blk, 'b', sizeof(blk));
	assert_memory_equal(got, blk, BLOCK);
	assert_int_equal(recv_any(fd, &cookie), 0);
	assert_true(cookie == 20);
	recv_all(fd, got, BLOCK);
	memset(blk, 'a', sizeof(blk));
	assert_memory_equal(got, blk, BLOCK);
	close(fd);
	colo_nbd_server_free(s);
}

/*
 * FLUSH covers the writes before it: the device's flush sees both slow
 * writes done, and its reply comes after theirs. A write that overlaps
 * one in flight waits for it; a read of what a write in flight changes
 * sees the new data.
 */
static void test_flush_and_overlap_order(void **state)
{
	struct colo_nbd_server *s = start_server();
	uint8_t blk[BLOCK], got[BLOCK];
	uint64_t cookie;
	int fd = client();

	(void)state;
	slow_reset(0);
	delay_ms[0] = 200;
	delay_ms[1] = 100;
	memset(blk, 'F', sizeof(blk));
	send_req(fd, NBD_CMD_WRITE, 1, 0, BLOCK, blk);
	send_req(fd, NBD_CMD_WRITE, 2, BLOCK, BLOCK, blk);
	send_req(fd, NBD_CMD_FLUSH, 3, 0, 0, NULL);
	assert_int_equal(recv_any(fd, &cookie), 0);
	assert_true(cookie == 2);
	assert_int_equal(recv_any(fd, &cookie), 0);
	assert_true(cookie == 1);
	assert_int_equal(recv_any(fd, &cookie), 0);
	assert_true(cookie == 3);
	assert_int_equal(get(&flush_saw), 2);

	/* slow write, then a fast overlapping write and read */
	slow_reset(0);
	delay_ms[2] = 200;
	memset(blk, 'S', sizeof(blk));
	send_req(fd, NBD_CMD_WRITE, 4, 2 * BLOCK, BLOCK, blk);
	memset(blk, 'T', sizeof(blk));
	send_req(fd, NBD_CMD_WRITE, 5, 2 * BLOCK + 100, 8, blk);
	send_req(fd, NBD_CMD_READ, 6, 2 * BLOCK, BLOCK, NULL);
	assert_int_equal(recv_reply(fd, 4), 0);
	assert_int_equal(recv_reply(fd, 5), 0);
	assert_int_equal(recv_reply(fd, 6), 0);
	recv_all(fd, got, BLOCK);
	memset(blk, 'S', sizeof(blk));
	memset(blk + 100, 'T', 8);
	assert_memory_equal(got, blk, BLOCK);
	close(fd);
	colo_nbd_server_free(s);
}

/* DISC and a bad request both let the requests in flight finish. */
static void test_disc_with_requests_in_flight(void **state)
{
	struct colo_nbd_server *s = start_server();
	uint8_t blk[BLOCK], b;
	bool seen[5] = { false };
	uint64_t cookie;
	int fd = client();

	(void)state;
	slow_reset(100);
	memset(blk, 'D', sizeof(blk));
	for (unsigned i = 0; i < 4; i++)
		send_req(fd, NBD_CMD_WRITE, i + 1, (uint64_t)(4 + i) * BLOCK,
			 BLOCK, blk);
	send_req(fd, NBD_CMD_DISC, 9, 0, 0, NULL);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(recv_any(fd, &cookie), 0);
		assert_true(cookie >= 1 && cookie <= 4 && !seen[cookie]);
		seen[cookie] = true;
	}
	assert_int_equal(recv(fd, &b, 1, 0), 0);
	close(fd);
	for (unsigned i = 4; i < 8; i++)
		assert_memory_equal(disk + i * BLOCK, blk, BLOCK);

	/* a bad magic after two slow writes: both replied, then closed */
	fd = client();
	memset(blk, 'E', sizeof(blk));
	send_req(fd, NBD_CMD_WRITE, 1, 8 * BLOCK, BLOCK, blk);
	send_req(fd, NBD_CMD_WRITE, 2, 9 * BLOCK, BLOCK, blk);
	assert_int_equal(send(fd, "\x12\x34\x56\x78 0123456789abcdefghijklmn",
			      NBD_REQUEST_LEN, 0),
			 NBD_REQUEST_LEN);
	assert_int_equal(recv_any(fd, &cookie), 0);
	assert_int_equal(recv_any(fd, &cookie), 0);
	assert_int_equal(recv(fd, &b, 1, 0), 0);
	close(fd);
	assert_memory_equal(disk + 9 * BLOCK, blk, BLOCK);
	assert_int_equal(get(&cur), 0);
	colo_nbd_server_free(s);
}

/*
 * pause returns only once the requests in the device are done; requests
 * sent while paused do not reach the device until resume.
 */
static void test_pause_with_requests_in_flight(void **state)
{
	struct colo_nbd_server *s = start_server();
	uint8_t blk[BLOCK];
	uint64_t cookie;
	bool seen[9] = { false };
	int fd = client();

	(void)state;
	slow_reset(200);
	memset(blk, 'P', sizeof(blk));
	for (unsigned i = 0; i < 4; i++)
		send_req(fd, NBD_CMD_WRITE, i + 1, (uint64_t)i * BLOCK, BLOCK,
			 blk);
	while (get(&cur) < 4)
		sleep_ms(1);
	colo_nbd_server_pause(s);
	assert_int_equal(get(&cur), 0);
	assert_int_equal(get(&writes_done), 4);
	for (unsigned i = 4; i < 8; i++)
		send_req(fd, NBD_CMD_WRITE, i + 1, (uint64_t)i * BLOCK, BLOCK,
			 blk);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(recv_any(fd, &cookie), 0);
		assert_true(cookie >= 1 && cookie <= 4 && !seen[cookie]);
		seen[cookie] = true;
	}
	assert_false(readable_within(fd, 300));
	assert_int_equal(get(&calls), 4);
	colo_nbd_server_resume(s);
	for (unsigned i = 4; i < 8; i++) {
		assert_int_equal(recv_any(fd, &cookie), 0);
		assert_true(cookie >= 5 && cookie <= 8 && !seen[cookie]);
		seen[cookie] = true;
	}
	assert_int_equal(get(&calls), 8);
	close(fd);
	colo_nbd_server_free(s);
}

/* With workers 0, one request at a time, in order. */
static void test_no_workers(void **state)
{
	struct colo_nbd_server *s = colo_nbd_server_new(&dev, "t", NULL);
	char err[256];
	uint8_t blk[BLOCK];
	int fd;

	(void)state;
	assert_non_null(s);
	colo_nbd_server_set_workers(s, 0);
	assert_int_equal(colo_nbd_server_listen(s, spec, err, sizeof(err)), 0);
	assert_int_equal(colo_nbd_server_start(s), 0);
	fd = client();
	slow_reset(0);
	for (unsigned i = 0; i < 4; i++)
		delay_ms[i] = 40 - 10 * i;
	memset(blk, 'N', sizeof(blk));
	for (unsigned i = 0; i < 4; i++)
		send_req(fd, NBD_CMD_WRITE, i + 1, (uint64_t)i * BLOCK, BLOCK,
			 blk);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(recv_reply(fd, i + 1), 0);
	assert_int_equal(get(&max_cur), 1);
	close(fd);
	colo_nbd_server_free(s);
}

static void wait_async_threads(void)
{
	while (get(&async_live))
		sleep_ms(1);
}

/* Async writes: out of order replies, FLUSH after them, errors. */
static void test_async_writes(void **state)
{
	struct colo_nbd_server *s = colo_nbd_server_new(&adev, "t", NULL);
	uint8_t blk[BLOCK];
	bool seen[81] = { false };
	uint64_t cookie, first = 0;
	char err[256];
	int fd;

	(void)state;
	assert_non_null(s);
	assert_int_equal(colo_nbd_server_listen(s, spec, err, sizeof(err)), 0);
	assert_int_equal(colo_nbd_server_start(s), 0);
	fd = client();
	slow_reset(0);
	for (unsigned i = 0; i < 16; i++)
		delay_ms[i] = 10 * (16 - i);
	for (unsigned i = 0; i < 16; i++) {
		memset(blk, 'A' + (int)i, sizeof(blk));
		send_req(fd, NBD_CMD_WRITE, i + 1, (uint64_t)i * BLOCK, BLOCK,
			 blk);
	}
	send_req(fd, NBD_CMD_FLUSH, 17, 0, 0, NULL);
	for (unsigned i = 0; i < 16; i++) {
		assert_int_equal(recv_any(fd, &cookie), 0);
		assert_true(cookie >= 1 && cookie <= 16 && !seen[cookie]);
		seen[cookie] = true;
		if (!first)
			first = cookie;
	}
	assert_int_equal(recv_reply(fd, 17), 0);
	assert_int_equal(get(&flush_saw), 16);
	assert_true(first != 1);
	assert_true(get(&max_cur) > 1);
	for (unsigned i = 0; i < 16; i++) {
		memset(blk, 'A' + (int)i, sizeof(blk));
		assert_memory_equal(disk + i * BLOCK, blk, BLOCK);
	}

	/* more than the connection's completion records: back-pressure */
	slow_reset(20);
	memset(seen, 0, sizeof(seen));
	for (unsigned i = 0; i < 80; i++)
		send_req(fd, NBD_CMD_WRITE, i + 1, (uint64_t)(i % 16) * BLOCK,
			 BLOCK, blk);
	for (unsigned i = 0; i < 80; i++) {
		assert_int_equal(recv_any(fd, &cookie), 0);
		assert_true(cookie >= 1 && cookie <= 80 && !seen[cookie]);
		seen[cookie] = true;
	}
	assert_true(get(&max_cur) <= 64);

	/* an immediate failure is replied inline */
	slow_reset(0);
	delay_ms[3] = 999;
	send_req(fd, NBD_CMD_WRITE, 90, 3 * BLOCK, BLOCK, blk);
	assert_int_equal(recv_reply(fd, 90), NBD_EIO);
	close(fd);
	colo_nbd_server_free(s);
	wait_async_threads();
}

/* pause waits for async writes; DISC replies to them before closing. */
static void test_async_pause_and_disc(void **state)
{
	struct colo_nbd_server *s = colo_nbd_server_new(&adev, "t", NULL);
	uint8_t blk[BLOCK], b;
	bool seen[10] = { false };
	uint64_t cookie;
	char err[256];
	int fd;

	(void)state;
	assert_non_null(s);
	assert_int_equal(colo_nbd_server_listen(s, spec, err, sizeof(err)), 0);
	assert_int_equal(colo_nbd_server_start(s), 0);
	fd = client();
	slow_reset(200);
	memset(blk, 'Q', sizeof(blk));
	for (unsigned i = 0; i < 4; i++)
		send_req(fd, NBD_CMD_WRITE, i + 1, (uint64_t)i * BLOCK, BLOCK,
			 blk);
	while (get(&calls) < 4)
		sleep_ms(1);
	colo_nbd_server_pause(s);
	assert_int_equal(get(&cur), 0);
	assert_int_equal(get(&writes_done), 4);
	send_req(fd, NBD_CMD_WRITE, 5, 4 * BLOCK, BLOCK, blk);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(recv_any(fd, &cookie), 0);
		assert_true(cookie >= 1 && cookie <= 4 && !seen[cookie]);
		seen[cookie] = true;
	}
	assert_false(readable_within(fd, 300));
	assert_int_equal(get(&calls), 4);
	colo_nbd_server_resume(s);
	assert_int_equal(recv_reply(fd, 5), 0);

	/* DISC with writes in flight: all replied, then EOF */
	slow_reset(100);
	for (unsigned i = 0; i < 4; i++)
		send_req(fd, NBD_CMD_WRITE, i + 6, (uint64_t)(8 + i) * BLOCK,
			 BLOCK, blk);
	send_req(fd, NBD_CMD_DISC, 99, 0, 0, NULL);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(recv_any(fd, &cookie), 0);
		assert_true(cookie >= 6 && cookie <= 9 && !seen[cookie]);
		seen[cookie] = true;
	}
	assert_int_equal(recv(fd, &b, 1, 0), 0);
	assert_int_equal(get(&cur), 0);
	close(fd);
	colo_nbd_server_free(s);
	wait_async_threads();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pause_resume_stop),
		cmocka_unit_test(test_concurrent_out_of_order),
		cmocka_unit_test(test_flush_and_overlap_order),
		cmocka_unit_test(test_disc_with_requests_in_flight),
		cmocka_unit_test(test_pause_with_requests_in_flight),
		cmocka_unit_test(test_no_workers),
		cmocka_unit_test(test_async_writes),
		cmocka_unit_test(test_async_pause_and_disc),
	};
	int rc;

	if (colo_cond_init_monotonic(&gate_cv))
		return 1;
	snprintf(dir, sizeof(dir), "/tmp/colo-nbd-srv-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/sock", dir);
	snprintf(spec, sizeof(spec), "unix-listen:%s", path);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(path);
	rmdir(dir);
	return rc;
}
