/*
 * test_repl_secondary.c - the secondary's link lobby against peers that
 * trickle their HELLO: cut once the HELLO is late as a whole (not per
 * byte), without the 32 MiB frame buffer ever being allocated for it; a
 * real HELLO afterwards is served, and so is one sent while several
 * tricklers still hold seats.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "disk_buffer.h"
#include "memdev.h"
#include "repl_link.h"
#include "repl_secondary.h"

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static size_t hello_frame(uint8_t *out, uint64_t size)
{
	struct colo_link_hdr h = { .type = COLO_LINK_HELLO,
				   .len = COLO_LINK_HELLO_LEN };
	struct colo_link_hello hello = { .version = COLO_LINK_VERSION,
					 .size = size,
					 .granularity = 65536 };

	colo_link_encode_hdr(out, &h);
	colo_link_encode_hello(out + COLO_LINK_HDR_LEN, &hello);
	return COLO_LINK_HDR_LEN + COLO_LINK_HELLO_LEN;
}

/* True once the secondary has closed on us. */
static bool cut(int fd)
{
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);

	return n == 0 || (n < 0 && errno != EAGAIN);
}

static void test_trickled_hello(void **state)
{
	struct test_img *img = test_img_new(1 << 20);
	struct colo_repl_secondary_stats st;
	struct colo_repl_secondary *s;
	struct colo_disk_buffer *db;
	struct colo_link_hdr h;
	uint8_t frame[64], buf[64];
	char path[64], spec[80], err[256];
	size_t len, sent = 0;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/colo-blk-hello-%d", getpid());
	snprintf(spec, sizeof(spec), "unix-listen:%s", path);
	db = colo_disk_buffer_new(&img->dev, 65536, "/tmp", err, sizeof(err));
	assert_non_null(db);
	/* The receive timeout is 300 ms; the trickle sends a byte every
	 * 50 ms, so no single read ever waits that long. */
	s = colo_repl_secondary_new(db, 300, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(colo_repl_secondary_listen(s, spec, err, sizeof(err)),
			 0);
	assert_int_equal(colo_repl_secondary_start(s), 0);

	len = hello_frame(frame, img->dev.size);
	fd = connect_unix(path);
	while (sent < len && !cut(fd)) {
		if (send(fd, frame + sent, 1, MSG_NOSIGNAL) != 1)
			break;
		sent++;
		usleep(50000);
	}
	assert_true(sent < len); /* cut before the HELLO was complete */
	close(fd);
	colo_repl_secondary_get_stats(s, &st);
	assert_int_equal(st.hello_timeouts, 1);
	assert_int_equal(st.buffer_bytes, 0);
	assert_false(st.connected);

	/* The slot is free: a whole HELLO is answered. */
	fd = connect_unix(path);
	assert_int_equal(send(fd, frame, len, MSG_NOSIGNAL), (ssize_t)len);
	assert_int_equal(colo_link_recv(fd, &h, buf, sizeof(buf)), 0);
	assert_int_equal(h.type, COLO_LINK_HELLO);
	do {
		colo_repl_secondary_get_stats(s, &st);
	} while (!st.connected && usleep(1000) == 0);
	assert_true(st.buffer_bytes > 0);
	close(fd);

	colo_repl_secondary_free(s);
	colo_disk_buffer_free(db);
	test_img_free(img);
	unlink(path);
}

/* Plain link: three peers sit in the lobby with half a HELLO each; a
 * fourth sends a whole one and is answered while they are connected. */
static void test_hello_past_tricklers(void **state)
{
	struct test_img *img = test_img_new(1 << 20);
	struct colo_repl_secondary_stats st;
	struct colo_repl_secondary *s;
	struct colo_disk_buffer *db;
	struct colo_link_hdr h;
	uint8_t frame[64], buf[64];
	char path[64], spec[80], err[256];
	int strangers[3], fd;
	size_t len;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/colo-blk-lobby-%d", getpid());
	snprintf(spec, sizeof(spec), "unix-listen:%s", path);
	db = colo_disk_buffer_new(&img->dev, 65536, "/tmp", err, sizeof(err));
	assert_non_null(db);
	/* A long deadline: served one at a time, the real peer would wait
	 * for three of them (a minute) and the recv below would time out. */
	s = colo_repl_secondary_new(db, 20000, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(colo_repl_secondary_listen(s, spec, err, sizeof(err)),
			 0);
	assert_int_equal(colo_repl_secondary_start(s), 0);
	len = hello_frame(frame, img->dev.size);
	for (int i = 0; i < 3; i++) {
		strangers[i] = connect_unix(path);
		assert_int_equal(
			send(strangers[i], frame, len / 2, MSG_NOSIGNAL),
			(ssize_t)(len / 2));
	}
	fd = connect_unix(path);
	{
		struct timeval tv = { 5, 0 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	assert_int_equal(send(fd, frame, len, MSG_NOSIGNAL), (ssize_t)len);
	assert_int_equal(colo_link_recv(fd, &h, buf, sizeof(buf)), 0);
	assert_int_equal(h.type, COLO_LINK_HELLO);
	do {
		colo_repl_secondary_get_stats(s, &st);
	} while (!st.connected && usleep(1000) == 0);
	/* The others in the lobby lost the race and were closed unanswered. */
	for (int i = 0; i < 3; i++) {
		int waited = 0;

		while (!cut(strangers[i]) && waited++ < 10000)
			usleep(1000);
		assert_true(cut(strangers[i]));
		close(strangers[i]);
	}
	assert_int_equal(st.hello_timeouts, 0);
	close(fd);

	colo_repl_secondary_free(s);
	colo_disk_buffer_free(db);
	test_img_free(img);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trickled_hello),
		cmocka_unit_test(test_hello_past_tricklers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
