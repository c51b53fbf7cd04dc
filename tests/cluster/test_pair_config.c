/*
 * test_pair_config.c - PAIR.conf: a good file's values and defaults, and
 * that every kind of mistake is reported with the file, the right line
 * and the key (or the section of a missing key); corosync.conf and the
 * daemons' command lines derived from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corosync_conf.h"
#include "daemons.h"
#include "pair_config.h"

static const char good[] = "# a pair\n"
			   "[pair]\n"
			   "name = shop\n"
			   "run_dir = /run/colo-shop\n"
			   "\n"
			   "[host alpha]\n"
			   "link = 10.78.0.1\n"
			   "ring = 10.79.0.1\n"
			   "client = eth1\n"
			   "guest = vnet0\n"
			   "credentials = /etc/colo/alpha\n"
			   "[host beta]\n"
			   "link = fd78::2\n"
			   "ring = 10.79.0.2\n"
			   "client = eth1\n"
			   "guest = vnet0\n"
			   "[witness]\n"
			   "address = 10.79.0.3\n"
			   "[timeouts]\n"
			   "lease_ms = 1200 ; inline comment\n"
			   "token_ms = 800\n";

static struct colo_pair_config cfg;
static char err[COLO_PAIR_ERR_MAX];

static int parse(const char *text)
{
	err[0] = '\0';
	return colo_pair_parse("t.conf", text, strlen(text), &cfg, err,
			       sizeof(err));
}

/* good with line n (1-based) replaced by repl ("" deletes it). */
static int parse_edit(int n, const char *repl)
{
	char buf[4096];
	const char *s = good;
	size_t o = 0;

	for (int line = 1; *s; line++) {
		const char *nl = strchr(s, '\n');
		size_t len = (size_t)(nl - s) + 1;

		if (line == n) {
			if (*repl)
				o += (size_t)snprintf(buf + o, sizeof(buf) - o,
						      "%s\n", repl);
		} else {
			memcpy(buf + o, s, len);
			o += len;
		}
		s += len;
	}
	buf[o] = '\0';
	return parse(buf);
}

static void test_good(void **state)
{
	(void)state;
	assert_int_equal(parse(good), 0);
	assert_string_equal(cfg.name, "shop");
	assert_int_equal(cfg.nhosts, 2);
	assert_string_equal(cfg.host[0].name, "alpha");
	assert_int_equal(cfg.host[0].nodeid, 1);
	assert_string_equal(cfg.host[1].link, "fd78::2");
	assert_int_equal(cfg.host[1].nodeid, 2);
	assert_string_equal(cfg.host[0].credentials, "/etc/colo/alpha");
	assert_string_equal(cfg.witness, "10.79.0.3");
	assert_int_equal(cfg.witness_port, 5403);
	assert_int_equal(cfg.lease_ms, 1200);
	assert_int_equal(cfg.margin_ms, 300); /* unset: a quarter of 1200 */
	assert_int_equal(cfg.token_ms, 800);
	assert_int_equal(cfg.link_port, 7070);
	assert_string_equal(cfg.run_dir, "/run/colo-shop");
	assert_string_equal(cfg.authkey, "/etc/corosync/authkey");
	assert_string_equal(cfg.disk, "");
}

/* Without [timeouts]: the defaults colo-up(1) documents (token 200,
 * lease 400, margin a quarter of it), which bench/cluster/soak.sh judged
 * stable under the VM tests' load, and corosync's consensus half the
 * token (its floor of 100 ms). */
static void test_default_timeouts(void **state)
{
	char text[sizeof(good)];
	size_t n = (size_t)(strstr(good, "[timeouts]") - good);

	(void)state;
	memcpy(text, good, n);
	text[n] = '\0';
	assert_int_equal(parse(text), 0);
	assert_int_equal(cfg.token_ms, 200);
	assert_int_equal(cfg.lease_ms, 400);
	assert_int_equal(cfg.margin_ms, 100);
	assert_int_equal(colo_corosync_consensus_ms(cfg.token_ms), 100);
	/* the lease outlives a ring re-formation (token + consensus) */
	assert_true(cfg.lease_ms >
		    cfg.token_ms + colo_corosync_consensus_ms(cfg.token_ms));
}

static void expect(int line_no, const char *repl, const char *msg)
{
	assert_int_equal(parse_edit(line_no, repl), -1);
	if (!strstr(err, msg))
		fail_msg("expected '%s' in '%s'", msg, err);
}

static void test_errors_name_line_and_key(void **state)
{
	(void)state;
	expect(7, "lnk = 10.78.0.1", "t.conf:7: [host alpha] lnk: unknown key");
	expect(7, "link = 10.78.0.300",
	       "t.conf:7: [host alpha] link: not an IPv4 or IPv6 address");
	expect(9, "client = eth1\nclient = eth2",
	       "t.conf:10: [host alpha] client: key given twice");
	expect(10, "guest = a-very-long-interface",
	       "t.conf:10: [host alpha] guest: interface names have at most");
	expect(11, "credentials = relative/dir",
	       "t.conf:11: [host alpha] credentials: not an absolute path");
	expect(3, "name = sh op",
	       "t.conf:3: [pair] name: only letters, digits");
	expect(20, "lease_ms = 12x",
	       "t.conf:20: [timeouts] lease_ms: not a number of milliseconds");
	expect(20, "lease_ms = 5", "t.conf:20: [timeouts] lease_ms: not a");
	expect(17, "[witnes]", "t.conf:17: [witnes]: unknown section");
	expect(12, "[host alpha]", "t.conf:12: [host alpha]: host given twice");
	expect(19, "[pair]", "t.conf:19: [pair]: section given twice");
	expect(5, "this is not ini", "t.conf:5: syntax error");
	expect(1, "orphan = 1", "t.conf:1: orphan: key outside any section");
}

static void test_missing(void **state)
{
	(void)state;
	/* a missing key names the section (at its header's line) */
	expect(8, "", "t.conf:6: [host alpha]: missing key 'ring'");
	expect(18, "", "missing section [witness] (with key 'address')");
	/* a missing section names it */
	assert_int_equal(parse("[pair]\nname = x\n[host a]\nlink = 1.1.1.1\n"
			       "ring = 1.1.1.2\nclient = e\nguest = g\n"
			       "[host b]\nlink = 1.1.1.3\nring = 1.1.1.4\n"
			       "client = e\nguest = g\n"),
			 -1);
	assert_non_null(strstr(err, "missing section [witness]"));
	expect(12, "[pair]", "section given twice");
}

static void test_whole_file_rules(void **state)
{
	(void)state;
	expect(14, "ring = 10.79.0.1",
	       "[host beta] ring: same address as host alpha");
	expect(20, "lease_ms = 10000\nmargin_ms = 500",
	       "[timeouts] margin_ms: at least");
	assert_int_equal(parse("[pair]\nname = x\n[witness]\naddress = ::1\n"
			       "[host a]\nlink = 1.1.1.1\nring = 1.1.1.2\n"
			       "client = e\nguest = g\n"),
			 -1);
	assert_non_null(strstr(err, "a pair needs two [host NAME] sections"));
}

static void test_guest_kind(void **state)
{
	char buf[4096];

	(void)state;
	snprintf(buf, sizeof(buf), "%s[guest]\nkind = vmm\n", good);
	assert_int_equal(parse(buf), -1);
	assert_non_null(strstr(err, "t.conf:23: [guest] kind: unknown guest "
				    "kind (known: netns, vm)"));
	snprintf(buf, sizeof(buf), "%s[guest]\nkind = netns\ndisk = /d.img\n",
		 good);
	assert_int_equal(parse(buf), 0);
	assert_string_equal(cfg.disk, "/d.img");
	/* netns refuses the VM's keys */
	snprintf(buf, sizeof(buf), "%s[guest]\nqemu_args = -m 128M\n", good);
	assert_int_equal(parse(buf), -1);
	assert_non_null(strstr(
		err, "t.conf:22: [guest] qemu_args: only with kind = vm"));
}

/* A VM guest: both hosts with credentials, no guest interface. */
static const char vm_hosts[] = "[pair]\nname = shop\nrun_dir = /run/c\n"
			       "[host alpha]\nlink = 10.78.0.1\n"
			       "ring = 10.79.0.1\nclient = eth1\n"
			       "credentials = /etc/colo/alpha\n"
			       "[host beta]\nlink = 10.78.0.2\n"
			       "ring = 10.79.0.2\nclient = eth1\n"
			       "credentials = /etc/colo/beta\n"
			       "[witness]\naddress = 10.79.0.3\n";

/* vm_hosts (lines 1-15) and then guest (from line 16). */
static int parse_vm(const char *guest)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s%s", vm_hosts, guest);
	return parse(buf);
}

static void expect_vm(const char *guest, const char *msg)
{
	assert_int_equal(parse_vm(guest), -1);
	if (!strstr(err, msg))
		fail_msg("expected '%s' in '%s'", msg, err);
}

static void test_guest_vm(void **state)
{
	(void)state;
	/* qemu_args goes on over indented lines, split like a shell */
	assert_int_equal(
		parse_vm("[guest]\nkind = vm\n"
			 "qemu_args = -m 128M -kernel /g/vmlinuz\n"
			 "  -append 'console=ttyS0 colo_echo=5000'\n"
			 "\t-device \"virtio-net-pci,mac=\\\"x\\\"\" a\\ b "
			 "''\n"
			 "ram_dir = /dev/shm/vms\n"
			 "qemu = qemu-system-x86_64\n"
			 "interval_ms = 0\n"),
		0);
	assert_int_equal(cfg.guest_kind, COLO_GUEST_VM);
	assert_int_equal(cfg.qemu_args.n, 10);
	assert_string_equal(colo_words_at(&cfg.qemu_args, 0), "-m");
	assert_string_equal(colo_words_at(&cfg.qemu_args, 4), "-append");
	assert_string_equal(colo_words_at(&cfg.qemu_args, 5),
			    "console=ttyS0 colo_echo=5000");
	assert_string_equal(colo_words_at(&cfg.qemu_args, 6), "-device");
	assert_string_equal(colo_words_at(&cfg.qemu_args, 7),
			    "virtio-net-pci,mac=\"x\"");
	/* the words after: a\ b is one word "a b", '' an empty one */
	assert_string_equal(colo_words_at(&cfg.qemu_args, 8), "a b");
	assert_string_equal(colo_words_at(&cfg.qemu_args, 9), "");
	assert_string_equal(cfg.ram_dir, "/dev/shm/vms");
	assert_int_equal(cfg.interval_ms, 0);
	/* defaults: the frame link on link_port + 2 */
	assert_int_equal(cfg.vm_port, 7072);
	assert_int_equal(parse_vm("[guest]\nkind = vm\nqemu_args = -m 1G\n"),
			 0);
	assert_string_equal(cfg.ram_dir, "/dev/shm/colo");
	assert_int_equal(cfg.interval_ms, 20000);
	assert_string_equal(cfg.qemu, "");

	expect_vm("[guest]\nkind = vm\n",
		  "t.conf:16: [guest]: missing key 'qemu_args'");
	expect_vm("[guest]\nkind = vm\nqemu_args = -m 1G\n"
		  "  -append 'console=ttyS0\n",
		  "t.conf:19: [guest] qemu_args: unterminated quote");
	expect_vm("[guest]\nkind = vm\nqemu_args = -m 1G\n"
		  "qemu_args = -smp 2\n",
		  "t.conf:19: [guest] qemu_args: key given twice");
	expect_vm("[guest]\nkind = vm\nqemu_args = -m 1G \\\n",
		  "t.conf:18: [guest] qemu_args: backslash at the end");
	expect_vm("[guest]\nkind = vm\nqemu_args = -m 1G\nvm_port = 7071\n",
		  "[guest] vm_port: 7071 is the proxy's or blk's link");
	expect_vm("[guest]\nkind = vm\nqemu_args = -m 1G\nqemu = bin/q\n",
		  "t.conf:19: [guest] qemu: a program name or an absolute");
	expect_vm("[guest]\nkind = vm\nqemu_args = -m 1G\ninterval_ms = 5\n",
		  "t.conf:19: [guest] interval_ms: not a number");
	/* the frame link is always in TLS: credentials on both hosts */
	assert_int_equal(parse_edit(11, ""), 0); /* netns: optional */
	{
		char buf[4096];

		snprintf(buf, sizeof(buf), "%s", vm_hosts);
		*strstr(buf, "credentials = /etc/colo/beta\n") = '\0';
		strcat(buf, "[witness]\naddress = 10.79.0.3\n[guest]\n"
			    "kind = vm\nqemu_args = -m 1G\n");
		assert_int_equal(parse(buf), -1);
		assert_non_null(strstr(err, "t.conf:9: [host beta]: missing "
					    "key 'credentials'"));
	}
}

/* The shell's rules, and that a refused line leaves the words as they
 * were. */
static void test_shell_words(void **state)
{
	struct colo_words w = { .n = 0 };
	const char *why = NULL;
	char big[300];

	(void)state;
	assert_int_equal(
		colo_words_append(&w, "a \"b c\"d 'e\\' \"\\$\\q\"", &why), 0);
	assert_int_equal(w.n, 4);
	assert_string_equal(colo_words_at(&w, 1), "b cd");
	assert_string_equal(colo_words_at(&w, 2), "e\\");
	assert_string_equal(colo_words_at(&w, 3), "$\\q");
	assert_int_equal(colo_words_append(&w, "x 'y", &why), -1);
	assert_string_equal(why, "unterminated quote");
	assert_int_equal(w.n, 4);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(colo_words_append(&w, big, &why), -1);
	assert_non_null(strstr(why, "longer than 255"));
	for (int i = 0; i < 56; i++)
		assert_int_equal(colo_words_append(&w, "w", &why), 0);
	assert_int_equal(colo_words_append(&w, "w", &why), -1);
	assert_non_null(strstr(why, "more than 60 words"));
	assert_int_equal(w.n, 60);
}

/* Lines longer than inih's buffer are refused on their own line, and the
 * lines after them keep their numbers. */
static void test_long_line_keeps_numbering(void **state)
{
	char buf[4096], longv[400];

	(void)state;
	memset(longv, 'x', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	snprintf(buf, sizeof(buf), "# %s\n%s", longv, good);
	assert_int_equal(parse(buf), -1);
	assert_non_null(strstr(err, "t.conf:1: line longer than"));
	snprintf(buf, sizeof(buf), "# %.150s\n%s", longv, good);
	buf[strlen(buf) - 1] = '\0';
	strcat(buf, "\nbogus = 1\n");
	assert_int_equal(parse(buf), -1);
	assert_non_null(strstr(err, "t.conf:23: [timeouts] bogus"));
}

static void test_nul_byte(void **state)
{
	static const char text[] = "[pair]\nname = a\0b\n";

	(void)state;
	assert_int_equal(colo_pair_parse("t.conf", text, sizeof(text) - 1, &cfg,
					 err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "t.conf:2: NUL byte"));
}

static void test_corosync_conf(void **state)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(parse(good), 0);
	f = open_memstream(&text, &len);
	colo_corosync_conf_print(&cfg, "/bin/colo status --is-primary /p.conf",
				 f);
	fclose(f);
	assert_non_null(strstr(text, "crypto_cipher: aes256\n"));
	assert_non_null(strstr(text, "crypto_hash: sha256\n"));
	assert_non_null(strstr(text, "keyfile: /etc/corosync/authkey\n"));
	assert_non_null(strstr(text, "token: 800\n"));
	/* two nodes: consensus below the token (half of it, >= 100 ms) */
	assert_non_null(strstr(text, "consensus: 400\n"));
	assert_int_equal(colo_corosync_consensus_ms(150), 100);
	/* knet's link pings do not follow a short token: corosync reads
	 * them in the interface section only */
	assert_non_null(strstr(text, "\tinterface {\n"
				     "\t\tlinknumber: 0\n"
				     "\t\tknet_ping_interval: 250\n"
				     "\t\tknet_ping_timeout: 1000\n"
				     "\t}\n"));
	assert_non_null(strstr(text, "ring0_addr: 10.79.0.2\n"));
	assert_non_null(strstr(text, "host: 10.79.0.3\n"));
	assert_non_null(strstr(text, "algorithm: ffsplit\n"));
	assert_non_null(strstr(text, "exec_colo_primary: /bin/colo status "
				     "--is-primary /p.conf\n"));
	free(text);
}

static void test_daemon_argv(void **state)
{
	struct colo_argv a;
	char sock[256];
	char err2[256];

	(void)state;
	assert_int_equal(parse(good), 0);
	assert_int_equal(colo_pair_find_self(&cfg, "beta", err2, sizeof(err2)),
			 1);
	assert_int_equal(colo_pair_find_self(&cfg, "gamma", err2, sizeof(err2)),
			 -1);
	/* alpha as secondary connects to beta's (IPv6) link address */
	colo_daemon_argv(&cfg, 0, COLO_ROLE_SECONDARY, COLO_DAEMON_PROXY,
			 "colo", &a);
	assert_string_equal(a.argv[1], "proxy");
	assert_string_equal(a.argv[3], "secondary");
	assert_string_equal(a.argv[5], "packet:eth1");
	assert_string_equal(a.argv[8], "--link-connect");
	assert_string_equal(a.argv[9], "[fd78::2]:7070");
	assert_null(a.argv[a.argc]);
	colo_daemon_argv(&cfg, 0, COLO_ROLE_PRIMARY, COLO_DAEMON_PROXY, "colo",
			 &a);
	assert_string_equal(a.argv[8], "--link-listen");
	assert_string_equal(a.argv[9], "10.78.0.1:7070");
	colo_daemon_socket(&cfg, 0, COLO_DAEMON_PROXY, sock, sizeof(sock));
	assert_string_equal(sock, "/run/colo-shop/alpha-proxy.sock");
	assert_string_equal(a.argv[11], sock);
	/* the proxy releases nothing before colo up's first lease */
	assert_string_equal(a.argv[12], "--lease-required");
	/* the link in TLS with alpha's credentials, expecting beta */
	assert_string_equal(a.argv[13], "--tls-creds");
	assert_string_equal(a.argv[14], "/etc/colo/alpha");
	assert_string_equal(a.argv[15], "--tls-peer");
	assert_string_equal(a.argv[16], "beta");
	assert_int_equal(a.argc, 17);
	assert_false(colo_daemon_wanted(&cfg, COLO_DAEMON_BLK));
	assert_false(colo_daemon_wanted(&cfg, COLO_DAEMON_VM));
}

/* kind = vm: the proxy's guest port is colo vm's NIC; colo vm gets the
 * frame link, the proxy's control socket, TLS and the guest's words. */
static void test_vm_argv(void **state)
{
	struct colo_argv a;

	(void)state;
	assert_int_equal(parse_vm("[guest]\nkind = vm\n"
				  "qemu_args = -m 128M -append 'a b'\n"
				  "qemu = /usr/bin/qemu-system-x86_64\n"),
			 0);
	assert_true(colo_daemon_wanted(&cfg, COLO_DAEMON_VM));
	colo_daemon_argv(&cfg, 1, COLO_ROLE_PRIMARY, COLO_DAEMON_PROXY, "colo",
			 &a);
	assert_string_equal(a.argv[6], "--guest");
	assert_string_equal(a.argv[7],
			    "qemu:unix-listen:/run/c/beta-guest.sock");
	colo_daemon_argv(&cfg, 1, COLO_ROLE_SECONDARY, COLO_DAEMON_VM, "colo",
			 &a);
	{
		static const char *const want[] = {
			"colo",
			"vm",
			"--role",
			"secondary",
			"--dir",
			"/dev/shm/colo/beta",
			"--link-connect",
			"10.78.0.1:7072",
			"--control",
			"/run/c/beta-vm.sock",
			"--nic",
			"unix:/run/c/beta-guest.sock",
			"--proxy-control",
			"/run/c/beta-proxy.sock",
			"--tls-creds",
			"/etc/colo/beta",
			"--tls-peer",
			"alpha",
			"--qemu",
			"/usr/bin/qemu-system-x86_64",
			"--interval",
			"20000",
			"--",
			"-m",
			"128M",
			"-append",
			"a b",
		};
		size_t n = sizeof(want) / sizeof(want[0]);

		assert_int_equal(a.argc, (int)n);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(a.argv[i], want[i]);
		assert_null(a.argv[n]);
	}
	colo_daemon_argv(&cfg, 1, COLO_ROLE_PRIMARY, COLO_DAEMON_VM, "colo",
			 &a);
	assert_string_equal(a.argv[6], "--link-listen");
	assert_string_equal(a.argv[7], "10.78.0.2:7072");
	/* a promote: a fresh RAM directory and --promote before "--" */
	colo_daemon_vm_argv(&cfg, 1, COLO_ROLE_PRIMARY, "colo", 2,
			    "/run/c/beta-vm.sock.old", &a);
	assert_string_equal(a.argv[5], "/dev/shm/colo/beta.2");
	assert_string_equal(a.argv[a.argc - 7], "--promote");
	assert_string_equal(a.argv[a.argc - 6], "/run/c/beta-vm.sock.old");
	assert_string_equal(a.argv[a.argc - 5], "--");
	/* the most words qemu_args takes all fit, with every option */
	{
		char buf[4096] = "[guest]\nkind = vm\nqemu = q\nqemu_args =";

		for (int i = 0; i < 60; i++)
			strcat(buf, i == 59 ? " last" : " w");
		strcat(buf, "\n");
		assert_int_equal(parse_vm(buf), 0);
		colo_daemon_vm_argv(&cfg, 0, COLO_ROLE_PRIMARY, "colo", 1,
				    "/run/c/alpha-vm.sock.old", &a);
		assert_true(a.argc < COLO_ARGV_MAX);
		assert_string_equal(a.argv[a.argc - 1], "last");
	}
}

/* kind = vm with a disk: blk runs first, colo vm's drive is blk's
 * export and its checkpoints drive blk's control socket; the survivor's
 * "replicate" names the peer's blk link. */
static void test_vm_disk_argv(void **state)
{
	struct colo_argv a;
	char peer[96];
	int i;

	(void)state;
	assert_int_equal(parse_vm("[guest]\nkind = vm\ndisk = /run/d.img\n"
				  "qemu_args = -m 128M\n"),
			 0);
	assert_string_equal(cfg.disk, "/run/d.img");
	assert_true(colo_daemon_wanted(&cfg, COLO_DAEMON_BLK));
	assert_true(COLO_DAEMON_BLK < COLO_DAEMON_VM); /* start order */
	colo_daemon_argv(&cfg, 1, COLO_ROLE_SECONDARY, COLO_DAEMON_BLK, "colo",
			 &a);
	assert_string_equal(a.argv[2], "secondary");
	assert_string_equal(a.argv[5], "--listen");
	assert_string_equal(a.argv[6], "10.78.0.2:7071");
	assert_string_equal(a.argv[a.argc - 3], "unix-listen:/run/c/beta-disk."
						"sock");
	assert_string_equal(a.argv[a.argc - 1], "/run/c/beta-blk.sock");
	colo_daemon_argv(&cfg, 1, COLO_ROLE_PRIMARY, COLO_DAEMON_BLK, "colo",
			 &a);
	assert_string_equal(a.argv[5], "--secondary");
	assert_string_equal(a.argv[6], "10.78.0.1:7071");
	colo_daemon_blk_peer(&cfg, 1, peer, sizeof(peer));
	assert_string_equal(peer, "10.78.0.1:7071");
	for (int r = COLO_ROLE_PRIMARY; r <= COLO_ROLE_SECONDARY; r++) {
		colo_daemon_vm_argv(&cfg, 1, (enum colo_role)r, "colo", 0, NULL,
				    &a);
		for (i = 0; i < a.argc && strcmp(a.argv[i], "--disk"); i++)
			;
		assert_true(i + 3 < a.argc);
		assert_string_equal(a.argv[i + 1],
				    "unix:/run/c/beta-disk.sock");
		assert_string_equal(a.argv[i + 2], "--blk-control");
		assert_string_equal(a.argv[i + 3], "/run/c/beta-blk.sock");
	}
	/* without a disk, neither */
	assert_int_equal(parse_vm("[guest]\nkind = vm\nqemu_args = -m 1G\n"),
			 0);
	colo_daemon_vm_argv(&cfg, 1, COLO_ROLE_PRIMARY, "colo", 0, NULL, &a);
	for (i = 0; i < a.argc; i++)
		assert_string_not_equal(a.argv[i], "--blk-control");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_default_timeouts),
		cmocka_unit_test(test_errors_name_line_and_key),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_whole_file_rules),
		cmocka_unit_test(test_guest_kind),
		cmocka_unit_test(test_guest_vm),
		cmocka_unit_test(test_shell_words),
		cmocka_unit_test(test_vm_argv),
		cmocka_unit_test(test_vm_disk_argv),
		cmocka_unit_test(test_long_line_keeps_numbering),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_corosync_conf),
		cmocka_unit_test(test_daemon_argv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
