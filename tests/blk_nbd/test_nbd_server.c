/*
 * test_nbd_server.c - the server's life cycle over a UNIX socket with a
 * memory device: pause holds device calls until resume, stop works with
 * a pause in force and clients connected, and start again after stop.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "nbd_proto.h"
#include "nbd_server.h"

#define SIZE 65536

static uint8_t disk[SIZE];

static int mem_pread(struct colo_blk_dev *d, void *buf, uint32_t len,
		     uint64_t off)
{
	(void)d;
	memcpy(buf, disk + off, len);
	return 0;
}

static int mem_pwrite(struct colo_blk_dev *d, const void *buf, uint32_t len,
		      uint64_t off, bool fua)
{
	(void)d;
	(void)fua;
	memcpy(disk + off, buf, len);
	return 0;
}

static int mem_flush(struct colo_blk_dev *d)
{
	(void)d;
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
	mem_pread, mem_pwrite, mem_flush, mem_trim, mem_zero,
};

static struct colo_blk_dev dev = { .ops = &mem_ops, .size = SIZE };
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
	uint8_t b[NBD_REQUEST_LEN + 16];

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pause_resume_stop),
	};
	int rc;

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
