/*
 * test_frame_link.c - the frame link's encoding round trips and its
 * refusals (bad lengths, pages outside RAM, mismatched identities), and
 * which guest arguments colo vm accepts. Pure functions, no QEMU; and the
 * link's heartbeat and idle timeout over a socket pair in one event loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "clock.h"
#include "evloop.h"
#include "byteorder.h"
#include "frame_link.h"
#include "qemu.h"

static void test_hello_round_trip(void **state)
{
	uint8_t buf[COLO_FLINK_HDR_LEN + COLO_FLINK_HELLO_LEN];
	struct colo_flink_hello h = { .version = COLO_FLINK_VERSION,
				      .role = COLO_FLINK_SECONDARY,
				      .ram_size = 256ull << 20 },
				out;
	struct colo_flink_frame f;
	size_t used;

	(void)state;
	strcpy(h.qemu_version, "7.2.22");
	strcpy(h.machine, "pc-i440fx-7.2-machine");
	size_t n = colo_flink_encode_hello(buf, &h);
	assert_int_equal(colo_flink_decode(buf, n, &f, &used), 1);
	assert_int_equal(used, n);
	assert_int_equal(colo_flink_parse_hello(&f, &out), 0);
	assert_int_equal(out.role, COLO_FLINK_SECONDARY);
	assert_int_equal(out.ram_size, 256ull << 20);
	assert_string_equal(out.machine, "pc-i440fx-7.2-machine");
	/* Short by one byte: more is needed, nothing is taken. */
	assert_int_equal(colo_flink_decode(buf, n - 1, &f, &used), 0);
	/* A control character in a text field is refused. */
	buf[COLO_FLINK_HDR_LEN + 20] = '\n';
	colo_flink_decode(buf, n, &f, &used);
	assert_int_equal(colo_flink_parse_hello(&f, &out), -1);
}

static void test_msg_round_trip(void **state)
{
	uint8_t buf[COLO_FLINK_HDR_LEN + 16 + COLO_FLINK_TEXT_MAX];
	struct colo_flink_msg m = { .seq = 42, .value = 7 }, out;
	struct colo_flink_frame f;
	size_t used;

	(void)state;
	strcpy(m.text, "tcp:127.0.0.1:4444");
	size_t n = colo_flink_encode_msg(buf, COLO_FLINK_STOPPED, &m);
	assert_int_equal(colo_flink_decode(buf, n, &f, &used), 1);
	assert_int_equal(f.type, COLO_FLINK_STOPPED);
	assert_int_equal(colo_flink_parse_msg(&f, &out), 0);
	assert_int_equal(out.seq, 42);
	assert_int_equal(out.value, 7);
	assert_string_equal(out.text, "tcp:127.0.0.1:4444");
	/* Unknown type, nonzero reserved bits, oversized length. */
	buf[0] = COLO_FLINK_TYPE_MAX + 1;
	assert_int_equal(colo_flink_decode(buf, n, &f, &used), -1);
	buf[0] = COLO_FLINK_STOPPED;
	buf[2] = 1;
	assert_int_equal(colo_flink_decode(buf, n, &f, &used), -1);
	buf[2] = 0;
	colo_put_be32(buf + 4, COLO_FLINK_PAYLOAD_MAX + 1);
	assert_int_equal(colo_flink_decode(buf, n, &f, &used), -1);
}

static void test_pages_checked(void **state)
{
	static uint8_t payload[12 + 2 * COLO_FLINK_PAGE_REC];
	struct colo_flink_frame f = { .type = COLO_FLINK_PAGES,
				      .len = sizeof(payload),
				      .payload = payload };
	const uint8_t *recs;
	uint64_t seq, ram = 16 * COLO_FLINK_PAGE;
	uint32_t n;

	(void)state;
	colo_put_be64(payload, 3);
	colo_put_be32(payload + 8, 2);
	colo_put_be64(payload + 12, 0);
	colo_put_be64(payload + 12 + COLO_FLINK_PAGE_REC, 15 * COLO_FLINK_PAGE);
	assert_int_equal(colo_flink_parse_pages(&f, ram, &seq, &n, &recs), 0);
	assert_int_equal(n, 2);
	assert_int_equal(seq, 3);
	/* Past the end of RAM, unaligned, count against length. */
	colo_put_be64(payload + 12 + COLO_FLINK_PAGE_REC, 16 * COLO_FLINK_PAGE);
	assert_int_equal(colo_flink_parse_pages(&f, ram, &seq, &n, &recs), -1);
	colo_put_be64(payload + 12 + COLO_FLINK_PAGE_REC, 100);
	assert_int_equal(colo_flink_parse_pages(&f, ram, &seq, &n, &recs), -1);
	colo_put_be64(payload + 12 + COLO_FLINK_PAGE_REC, 0);
	colo_put_be32(payload + 8, 3);
	assert_int_equal(colo_flink_parse_pages(&f, ram, &seq, &n, &recs), -1);
}

static int check(const char *const *args, int n, uint64_t *size)
{
	char err[256];

	return colo_qemu_check_args((char **)args, n, size, err, sizeof(err));
}

static void test_guest_args(void **state)
{
	static const char *const ok[] = { "-machine", "pc",	 "-m",
					  "256M",     "-kernel", "vmlinuz" };
	static const char *const ok2[] = { "-m", "size=1G,slots=0" };
	static const char *const bare[] = { "-m", "512" };
	static const char *const bad[][2] = {
		{ "-incoming", "defer" },
		{ "--qmp", "unix:/x" },
		{ "-object", "memory-backend-ram,id=m,size=1G" },
		{ "-machine", "pc,memory-backend=m" },
		{ "-m", "1G,maxmem=4G" },
		{ "-m", "12X" },
		{ "-S", "" },
	};
	uint64_t size;

	(void)state;
	assert_int_equal(check(ok, 6, &size), 0);
	assert_int_equal(size, 256ull << 20);
	assert_int_equal(check(ok2, 2, &size), -1); /* slots= is hotplug */
	assert_int_equal(check(bare, 2, &size), 0);
	assert_int_equal(size, 512ull << 20);
	assert_int_equal(check(ok, 4, &size), 0);
	assert_int_equal(check(ok, 2, &size), 0);
	assert_int_equal(size, 128ull << 20); /* QEMU's default */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(check(bad[i], 2, &size), -1);
}

/* --nic: the proxy's guest port becomes netdev colo-nic. */
static void test_nic_arg(void **state)
{
	struct colo_qemu_cfg cfg;
	char err[256];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(
		colo_qemu_nic_arg(&cfg, "unix:/run/g.sock", err, sizeof(err)),
		0);
	assert_string_equal(cfg.netdev, "stream,id=colo-nic,server=off,"
					"addr.type=unix,addr.path=/run/g.sock");
	assert_int_equal(
		colo_qemu_nic_arg(&cfg, "tcp:127.0.0.1:7000", err, sizeof(err)),
		0);
	assert_string_equal(cfg.netdev,
			    "socket,id=colo-nic,connect=127.0.0.1:7000");
	assert_int_equal(
		colo_qemu_nic_arg(&cfg, "tcp:[::1]:7000", err, sizeof(err)), 0);
	assert_string_equal(cfg.netdev,
			    "socket,id=colo-nic,connect=[::1]:7000");
	/* The proxy listens, QEMU connects; commas would split QEMU's
	 * option. */
	assert_int_equal(
		colo_qemu_nic_arg(&cfg, "unix-listen:/x", err, sizeof(err)),
		-1);
	assert_int_equal(
		colo_qemu_nic_arg(&cfg, "unix:/x,server=on", err, sizeof(err)),
		-1);
	assert_int_equal(colo_qemu_nic_arg(&cfg, "bogus", err, sizeof(err)),
			 -1);
}

/* --disk: colo blk's export becomes blockdev node colo-disk. */
static void test_disk_arg(void **state)
{
	struct colo_qemu_cfg cfg;
	char err[256];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(
		colo_qemu_disk_arg(&cfg, "unix:/run/b.nbd", err, sizeof(err)),
		0);
	assert_string_equal(cfg.blockdev,
			    "driver=nbd,node-name=colo-disk,server.type=unix,"
			    "server.path=/run/b.nbd");
	assert_int_equal(
		colo_qemu_disk_arg(&cfg, "tcp:[::1]:10809", err, sizeof(err)),
		0);
	assert_string_equal(cfg.blockdev,
			    "driver=nbd,node-name=colo-disk,server.type=inet,"
			    "server.host=::1,server.port=10809");
	assert_int_equal(
		colo_qemu_disk_arg(&cfg, "unix-listen:/x", err, sizeof(err)),
		-1);
	assert_int_equal(
		colo_qemu_disk_arg(&cfg, "unix:/x,export=y", err, sizeof(err)),
		-1);
	assert_non_null(strstr(err, "no commas"));
	assert_int_equal(colo_qemu_disk_arg(&cfg, "nbd", err, sizeof(err)), -1);
}

/* One end of a watched link, driven like the daemons drive theirs: the
 * fd's handler reads frames between checkpoints. */
struct watched {
	struct colo_flink *link;
	struct colo_loop_fd *h;
	int frames; /* frames a reader saw (a heartbeat must not count) */
	int dead;
	char why[96];
};

static void watched_readable(void *opaque, uint32_t events)
{
	struct watched *w = opaque;
	struct colo_flink_frame f;

	(void)events;
	while (colo_flink_recv(w->link, &f, colo_now_ns()) > 0)
		w->frames++;
}

static void watched_dead(void *opaque, const char *why)
{
	struct watched *w = opaque;

	w->dead++;
	snprintf(w->why, sizeof(w->why), "%s", why);
	colo_loop_del_fd(w->h);
	w->h = NULL;
	colo_flink_free(w->link); /* as colo_vm_drop_link does */
	w->link = NULL;
}

static void run_for(struct colo_loop *loop, uint64_t ms)
{
	uint64_t end = colo_now_ns() + ms * COLO_NS_PER_MS;

	while (colo_now_ns() < end)
		colo_loop_run_once(loop, 20);
}

/* Two idle ends keep each other alive with heartbeats (no reader sees
 * one); when one end stops (its daemon hung, the kernel still up), the
 * other gives the link up within its idle timeout, with the reason. */
static void test_heartbeat_and_idle_timeout(void **state)
{
	enum { IDLE_MS = 400 };
	struct colo_loop *loop = colo_loop_new();
	struct watched w[2] = { 0 };
	int fds[2];

	(void)state;
	assert_non_null(loop);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	for (int i = 0; i < 2; i++) {
		w[i].link = colo_flink_new(fds[i]);
		assert_non_null(w[i].link);
		w[i].h = colo_loop_add_fd(loop, fds[i], EPOLLIN,
					  watched_readable, &w[i]);
		assert_int_equal(colo_flink_watch(w[i].link, loop, IDLE_MS,
						  watched_dead, &w[i]),
				 0);
	}
	run_for(loop, 3 * IDLE_MS);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(w[i].dead, 0);
		assert_int_equal(w[i].frames, 0);
	}
	/* End 1 hangs: no more reading, no more heartbeats. */
	colo_loop_del_fd(w[1].h);
	w[1].h = NULL;
	colo_flink_watch_free(colo_flink_get_watch(w[1].link));
	colo_flink_set_watch(w[1].link, NULL);
	run_for(loop, 3 * IDLE_MS);
	assert_int_equal(w[0].dead, 1);
	assert_non_null(strstr(w[0].why, "silent"));
	assert_null(w[0].link);
	colo_flink_free(w[1].link);
	colo_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_round_trip),
		cmocka_unit_test(test_msg_round_trip),
		cmocka_unit_test(test_pages_checked),
		cmocka_unit_test(test_guest_args),
		cmocka_unit_test(test_nic_arg),
		cmocka_unit_test(test_disk_arg),
		cmocka_unit_test(test_heartbeat_and_idle_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
