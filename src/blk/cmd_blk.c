/*
 * cmd_blk.c - `colo blk`: the block replication commands.
 *
 *   colo blk primary    the primary's replicating export
 *   colo blk secondary  the secondary's disk-buffer export
 *   colo blk serve      a plain image over NBD (cmd_serve.c)
 *   colo blk ctl        send one request to a control socket
 *
 * primary and secondary share one shape: open the image, wrap it in the
 * replicating device, export that over NBD, answer the control socket,
 * and run the main thread's event loop until SIGTERM/SIGINT or a "quit"
 * request. The NBD and replication data paths keep their own threads.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../commands.h"
#include "blk_commands.h"
#include "control.h"
#include "disk_buffer.h"
#include "evloop.h"
#include "file_dev.h"
#include "log.h"
#include "nbd_server.h"
#include "repl_primary.h"
#include "repl_secondary.h"
#include "parse_num.h"
#include "sock_spec.h"
#include "tls.h"
#include "tls_args.h"

/* clang-format off */
static const char blk_help[] =
	"usage: colo blk COMMAND [OPTIONS]\n"
	"\n"
	"Block replication for COLO, as NBD exports any NBD client can use\n"
	"(QEMU -drive driver=nbd, qemu-io, qemu-img, nbd-client).\n"
	"\n"
	"commands:\n"
	"  primary    export the primary's image; forward every write to the\n"
	"             secondary\n"
	"  secondary  receive the primary's writes; export the secondary\n"
	"             guest's view through the disk buffer\n"
	"  serve      export a plain image file\n"
	"  ctl        send one request to a control socket\n"
	"\n"
	"'colo blk COMMAND --help' describes one command.\n";

static const char primary_help[] =
	"usage: colo blk primary --image FILE --export SOCK\n"
	"                        --secondary HOST:PORT [OPTIONS]\n"
	"\n"
	"Exports FILE over NBD. Every write goes to FILE and is forwarded, in\n"
	"order, to the secondary (`colo blk secondary`) over the replication\n"
	"link. By default a write completes only once the secondary has\n"
	"applied it, so no write acknowledged to a client is lost if the\n"
	"primary dies while the pair is protected.\n"
	"\n"
	"When the secondary is unreachable the export keeps working\n"
	"(state \"degraded\"), the changed regions are recorded, and the link\n"
	"is retried every second. When a secondary connects, only the\n"
	"recorded regions are copied and the state becomes \"protected\".\n"
	"The first time nothing is known of the secondary's image: the\n"
	"granules whose SHA-256 differ on the two sides are copied (all of\n"
	"FILE with --resync full or a secondary that cannot hash).\n"
	"\n"
	"options:\n"
	"  --image FILE          raw image (or block device) to serve\n"
	"  --export SOCK         tcp-listen:HOST:PORT or unix-listen:PATH;\n"
	"                        may be given up to 4 times\n"
	"  --secondary HOST:PORT the secondary's --listen address\n"
	"                        (unix:PATH also works)\n"
	"  --control PATH        JSON control socket (UNIX); see below\n"
	"  --name NAME           NBD export name (default \"colo\"; clients\n"
	"                        asking for \"\" get it too)\n"
	"  --granularity BYTES   of the record of changed regions\n"
	"                        (default 64K; power of two >= 512)\n"
	"  --async               complete writes before the secondary has\n"
	"                        them: faster, but writes not yet applied\n"
	"                        there are lost with the primary\n"
	"  --timeout MS          link silence that means the secondary is\n"
	"                        lost (default 5000)\n"
	"  --resync digest|full  a secondary whose image is unknown gets\n"
	"                        only the granules whose digests differ\n"
	"                        (default), or all of FILE\n"
	"  --tls-creds DIR       run the replication link in TLS 1.3 with\n"
	"                        mutual x509 authentication; DIR as QEMU's\n"
	"                        tls-creds-x509: ca-cert.pem and the client pair\n"
	"                        (client-cert.pem, client-key.pem)\n"
	"  --tls-peer HOST       the secondary host's name in its certificate\n"
	"                        (required with --tls-creds)\n"
	"  --export-tls-peer HOST  TCP exports serve only an NBD client whose\n"
	"                        certificate names HOST (default: any of the\n"
	"                        CA; needs --tls-creds)\n"
	"  --insecure            allow the link off loopback without TLS\n"
	"                        (anyone reaching it can write the secondary's image)\n"
	"  --quiet               log warnings only\n"
	"  -h, --help            this text\n"
	"\n"
	"control requests (one JSON object per line; see colo blk ctl):\n"
	"  {\"cmd\":\"status\"}       state: degraded | resyncing | protected\n"
	"  {\"cmd\":\"stats\"}        counters, incl. bytes copied by resyncs\n"
	"  {\"cmd\":\"checkpoint\"}   barrier: returns once every write sent\n"
	"                         before it is applied on the secondary and\n"
	"                         the secondary dropped its disk buffer at\n"
	"                         that point; fails unless protected.\n"
	"                         Optional \"timeout_ms\".\n"
	"  {\"cmd\":\"prepare\"}      the first step of a two-step checkpoint:\n"
	"                         returns once every write sent before it\n"
	"                         is applied on the secondary, which keeps\n"
	"                         its buffers until its own \"commit\" (or\n"
	"                         \"abort\"). Fails unless protected, and\n"
	"                         when the secondary already holds a\n"
	"                         prepared checkpoint. Optional\n"
	"                         \"timeout_ms\". colo vm --blk-control\n"
	"                         sends it after stopping the VM.\n"
	"  {\"cmd\":\"failover\"}     give up the secondary: stop replicating\n"
	"  {\"cmd\":\"drop-secondary\"}  give up the secondary now, as the\n"
	"                         link's --timeout would (degraded, changes\n"
	"                         recorded, the link retried); optional\n"
	"                         \"reason\" (status: last_loss, drops)\n"
	"  {\"cmd\":\"quit\"}         exit as on SIGTERM\n"
	"\n"
	"Signals: SIGTERM, SIGINT disconnect the clients and exit 0.\n"
	"Exit status: 0 after a signal, quit or --help; 1 when the image or a\n"
	"socket cannot be opened; 2 for bad arguments.\n";

static const char secondary_help[] =
	"usage: colo blk secondary --image FILE --listen HOST:PORT\n"
	"                          --export SOCK [OPTIONS]\n"
	"\n"
	"Applies the primary's writes to FILE and exports the secondary\n"
	"guest's view of it over NBD, through COLO's disk buffer:\n"
	"  - before a primary write overwrites a granule for the first time\n"
	"    since the last checkpoint, its original content is saved in the\n"
	"    hidden buffer;\n"
	"  - the guest's writes go to the active buffer only;\n"
	"  - the guest reads active, else hidden, else FILE.\n"
	"A checkpoint drops both buffers (the guest then sees FILE, which\n"
	"equals the primary's disk). A failover folds them into FILE, so that\n"
	"FILE holds exactly what the guest saw, and serves FILE directly.\n"
	"\n"
	"options:\n"
	"  --image FILE          the secondary's copy of the disk (same size\n"
	"                        as the primary's)\n"
	"  --listen HOST:PORT    where the primary connects (tcp; or\n"
	"                        unix-listen:PATH)\n"
	"  --export SOCK         tcp-listen:HOST:PORT or unix-listen:PATH;\n"
	"                        may be given up to 4 times\n"
	"  --control PATH        JSON control socket (UNIX); see below\n"
	"  --name NAME           NBD export name (default \"colo\")\n"
	"  --granularity BYTES   disk buffer granule (default 64K; power of\n"
	"                        two >= 512). Memory is proportional to the\n"
	"                        granules buffered since the last checkpoint.\n"
	"  --buffer-dir DIR      where the buffer files live (unnamed files;\n"
	"                        default: FILE's directory)\n"
	"  --timeout MS          primary silence that ends the link\n"
	"                        (default 10000); also the time a new\n"
	"                        connection has for its TLS handshake (or,\n"
	"                        without TLS, its HELLO)\n"
	"  --tls-creds DIR       run the replication link in TLS 1.3 with\n"
	"                        mutual x509 authentication; DIR as QEMU's\n"
	"                        tls-creds-x509: ca-cert.pem and the server pair\n"
	"                        (server-cert.pem, server-key.pem)\n"
	"  --tls-peer HOST       the primary host's name in its certificate\n"
	"                        (required with --tls-creds)\n"
	"  --export-tls-peer HOST  TCP exports serve only an NBD client whose\n"
	"                        certificate names HOST (default: any of the\n"
	"                        CA; needs --tls-creds)\n"
	"  --insecure            allow the link off loopback without TLS\n"
	"                        (anyone reaching it can write the image)\n"
	"  --resync digest|full  as the primary's, once \"replicate\" made\n"
	"                        this process one\n"
	"  --quiet               log warnings only\n"
	"  -h, --help            this text\n"
	"\n"
	"control requests:\n"
	"  {\"cmd\":\"status\"}       link and buffer state\n"
	"  {\"cmd\":\"stats\"}        counters\n"
	"  {\"cmd\":\"checkpoint\"}   drop both buffers now. Prefer the\n"
	"                         primary's checkpoint, which drops them at\n"
	"                         the exact point of the write stream.\n"
	"  {\"cmd\":\"commit\"}       the second step of a two-step checkpoint:\n"
	"                         drop both buffers at the point the\n"
	"                         primary's \"prepare\" marked. Fails when\n"
	"                         none is prepared, and (dropping nothing)\n"
	"                         when the primary wrote after the prepare.\n"
	"                         colo vm --blk-control sends it once the\n"
	"                         new secondary VM is loaded. Optional\n"
	"                         \"id\" (a number): status then reports it\n"
	"                         as \"commit_id\".\n"
	"  {\"cmd\":\"abort\"}        forget the prepared checkpoint and keep\n"
	"                         buffering (\"aborted\": whether one was)\n"
	"  {\"cmd\":\"failover\"}     drop the link, fold the buffers into FILE\n"
	"                         and serve FILE directly: FILE is what the\n"
	"                         secondary guest saw, so the primary's\n"
	"                         writes since the last checkpoint are\n"
	"                         rolled back, as the secondary VM's state\n"
	"                         is. A prepared but uncommitted checkpoint\n"
	"                         is rolled back too.\n"
	"                         With \"view\":\"primary\" the buffers\n"
	"                         are dropped instead: FILE keeps every write\n"
	"                         the primary had acknowledged, for a\n"
	"                         secondary VM that restarts from FILE (or\n"
	"                         none at all).\n"
	"  {\"cmd\":\"replicate\",\"secondary\":\"HOST:PORT\"}\n"
	"                         after failover: become a primary in\n"
	"                         place, replicating FILE to a new\n"
	"                         `colo blk secondary` (unix:PATH too). The\n"
	"                         exports and their clients stay; the first\n"
	"                         resync goes by digest; from then on the\n"
	"                         control socket answers as colo blk\n"
	"                         primary's (status, stats, checkpoint,\n"
	"                         prepare, failover, quit). TLS: the same\n"
	"                         --tls-creds (with the client pair) and\n"
	"                         --tls-peer.\n"
	"  {\"cmd\":\"quit\"}         exit as on SIGTERM\n"
	"\n"
	"Signals: SIGTERM, SIGINT disconnect the clients and exit 0.\n"
	"Exit status: 0 after a signal, quit or --help; 1 when the image or a\n"
	"socket cannot be opened; 2 for bad arguments.\n";

static const char ctl_help[] =
	"usage: colo blk ctl [--timeout MS] SOCKET COMMAND [KEY=VALUE...]\n"
	"       colo blk ctl [--timeout MS] SOCKET COMMAND '{JSON-ARGS}'\n"
	"       colo blk ctl [--timeout MS] SOCKET '{\"cmd\":\"...\", ...}'\n"
	"       colo blk ctl SOCKET events [COUNT]\n"
	"\n"
	"Sends one request to the control socket of `colo blk primary` or\n"
	"`colo blk secondary` and prints the JSON reply. KEY=VALUE pairs\n"
	"become members of the request (numbers when VALUE is a decimal\n"
	"number, strings otherwise), as do the members of a JSON-ARGS\n"
	"object; COMMAND help lists the commands. `events` prints the\n"
	"daemon's events, one JSON line each, until it exits (or COUNT were\n"
	"printed). The same client as `colo ctl`, which accepts the same\n"
	"forms except KEY=VALUE.\n"
	"\n"
	"Exit status: 0 when the reply says \"ok\": true, 1 when it does not\n"
	"or no reply came (--timeout, default 10 s), 2 for bad arguments.\n";
/* clang-format on */

/* ---- common plumbing */

#define MAX_EXPORTS 4

struct blk_args {
	const char *cmd;
	const char *image, *control, *name, *peer, *buffer_dir;
	const char *exports[MAX_EXPORTS];
	int n_exports;
	uint32_t granularity;
	unsigned int timeout_ms;
	bool async;
	const char *tls_dir, *tls_peer;
	const char *export_peer; /* NULL: any NBD client certificate */
	bool insecure;
	bool resync_full;	      /* --resync full */
	struct colo_tls_creds *creds; /* loaded by link_setup */
};

/* The main thread's loop (signals and the control socket) and the role
 * objects the control handlers act on. Handlers run on this thread,
 * beside (never inside) the NBD and replication threads, through their
 * thread-safe calls. */
struct blk_main {
	const char *cmd;
	struct colo_loop *loop;
	struct colo_repl_primary *p;   /* primary */
	struct colo_disk_buffer *db;   /* secondary */
	struct colo_repl_secondary *s; /* secondary */
	int64_t commit_id;	       /* secondary: the last commit's "id" */
	/* secondary: what "replicate" needs to become a primary in place
	 * (the image under the buffers, the options it was started with) */
	struct colo_blk_dev *image;
	const struct blk_args *args;
};

static int usage_error(const char *cmd, const char *msg, const char *arg)
{
	fprintf(stderr, "colo blk %s: %s%s\n", cmd, msg, arg ? arg : "");
	fprintf(stderr, "Try 'colo blk %s --help'.\n", cmd);
	return 2;
}

enum {
	OPT_IMAGE = 256,
	OPT_EXPORT,
	OPT_SECONDARY,
	OPT_LISTEN,
	OPT_CONTROL,
	OPT_NAME,
	OPT_GRANULARITY,
	OPT_BUFFER_DIR,
	OPT_ASYNC,
	OPT_TIMEOUT,
	OPT_QUIET,
	OPT_EXPORT_TLS_PEER,
	OPT_RESYNC,
};

static const struct option long_options[] = {
	{ "image", required_argument, NULL, OPT_IMAGE },
	{ "export", required_argument, NULL, OPT_EXPORT },
	{ "secondary", required_argument, NULL, OPT_SECONDARY },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "granularity", required_argument, NULL, OPT_GRANULARITY },
	{ "buffer-dir", required_argument, NULL, OPT_BUFFER_DIR },
	{ "async", no_argument, NULL, OPT_ASYNC },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "export-tls-peer", required_argument, NULL, OPT_EXPORT_TLS_PEER },
	{ "resync", required_argument, NULL, OPT_RESYNC },
	COLO_TLS_LONG_OPTIONS,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* 0 to run, 1 after --help (exit 0), 2 on a usage error. */
static int parse_args(int argc, char **argv, struct blk_args *a,
		      const char *help, bool primary)
{
	uint64_t v;
	int c;

	a->cmd = argv[0];
	a->name = "colo";
	a->granularity = COLO_DISK_BUFFER_DEFAULT_GRAN;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
		if (colo_tls_arg(c, optarg, &a->tls_dir, &a->tls_peer,
				 &a->insecure))
			continue;
		switch (c) {
		case OPT_IMAGE:
			a->image = optarg;
			break;
		case OPT_EXPORT:
			if (a->n_exports == MAX_EXPORTS)
				return usage_error(a->cmd, "at most 4 --export",
						   NULL);
			a->exports[a->n_exports++] = optarg;
			break;
		case OPT_SECONDARY:
		case OPT_LISTEN:
			if ((c == OPT_SECONDARY) != primary)
				return usage_error(a->cmd,
						   primary ? "--listen is for "
							     "the secondary"
							   : "--secondary is "
							     "for the primary",
						   NULL);
			a->peer = optarg;
			break;
		case OPT_CONTROL:
			a->control = optarg;
			break;
		case OPT_NAME:
			if (strlen(optarg) > 4096)
				return usage_error(a->cmd, "--name too long",
						   NULL);
			a->name = optarg;
			break;
		case OPT_GRANULARITY:
			if (colo_parse_size(optarg, 1U << 30, &v) || v < 512 ||
			    (v & (v - 1)))
				return usage_error(a->cmd,
						   "--granularity: expected a "
						   "power of two >= 512, got ",
						   optarg);
			a->granularity = (uint32_t)v;
			break;
		case OPT_BUFFER_DIR:
			if (primary)
				return usage_error(a->cmd,
						   "--buffer-dir is "
						   "for the secondary",
						   NULL);
			a->buffer_dir = optarg;
			break;
		case OPT_ASYNC:
			if (!primary)
				return usage_error(a->cmd,
						   "--async is for the "
						   "primary",
						   NULL);
			a->async = true;
			break;
		case OPT_TIMEOUT:
			if (colo_parse_size(optarg, 3600000, &v) || v < 100)
				return usage_error(a->cmd,
						   "--timeout: expected "
						   "100..3600000 ms, got ",
						   optarg);
			a->timeout_ms = (unsigned int)v;
			break;
		case OPT_QUIET:
			colo_log_quiet = true;
			break;
		case OPT_EXPORT_TLS_PEER:
			a->export_peer = optarg;
			break;
		case OPT_RESYNC:
			if (strcmp(optarg, "digest") && strcmp(optarg, "full"))
				return usage_error(a->cmd,
						   "--resync: expected digest "
						   "or full, got ",
						   optarg);
			a->resync_full = !strcmp(optarg, "full");
			break;
		case 'h':
			fputs(help, stdout);
			return 1;
		default:
			return usage_error(a->cmd, "bad arguments", NULL);
		}
	}
	if (optind < argc)
		return usage_error(a->cmd,
				   "unexpected argument: ", argv[optind]);
	if (!a->image)
		return usage_error(a->cmd, "--image FILE is required", NULL);
	if (!a->n_exports)
		return usage_error(a->cmd, "--export SOCK is required", NULL);
	if (!a->peer)
		return usage_error(a->cmd,
				   primary ? "--secondary HOST:PORT is required"
					   : "--listen HOST:PORT is required",
				   NULL);
	if (colo_tls_args_error(a->tls_dir, a->tls_peer, a->insecure, false))
		return usage_error(a->cmd,
				   colo_tls_args_error(a->tls_dir, a->tls_peer,
						       a->insecure, false),
				   NULL);
	if (a->export_peer && !a->tls_dir)
		return usage_error(a->cmd,
				   "--export-tls-peer needs --tls-creds", NULL);
	return 0;
}

/* A link without TLS stays on loopback unless --insecure: 0, or -1 with
 * the reason in err. */
static int plain_link_check(const struct blk_args *a, const char *spec,
			    char *err, size_t errlen)
{
	struct colo_sock_spec sp;
	struct colo_sock_addr addr;

	if (a->insecure)
		return 0;
	if (colo_sock_spec_parse(spec, &sp, err, errlen) < 0 ||
	    colo_sock_resolve(&sp, &addr, err, errlen) < 0)
		return -1;
	if (colo_sock_addr_is_loopback(&addr))
		return 0;
	snprintf(err, errlen,
		 "%s is not a loopback address: the replication link needs "
		 "--tls-creds DIR and --tls-peer HOST (or --insecure to run "
		 "it in the clear)",
		 spec);
	return -1;
}

/* The link's security, decided before anything starts: credentials
 * loaded (with the pair this role uses: the primary connects, the
 * secondary listens), or the safe default that a plain link stays on
 * loopback unless --insecure. 0, or 2 (bad arguments) after a message. */
static int link_setup(struct blk_args *a, const char *spec, bool server)
{
	char err[512];

	if (a->tls_dir) {
		a->creds = colo_tls_creds_load(a->tls_dir, err, sizeof(err));
		if (!a->creds) {
			fprintf(stderr, "colo blk %s: --tls-creds: %s\n",
				a->cmd, err);
			return 2;
		}
		if (!colo_tls_creds_can(a->creds, server)) {
			fprintf(stderr,
				"colo blk %s: --tls-creds %s: no %s-cert.pem "
				"/ %s-key.pem\n",
				a->cmd, a->tls_dir,
				server ? "server" : "client",
				server ? "server" : "client");
			return 2;
		}
		return 0;
	}
	if (plain_link_check(a, spec, err, sizeof(err)) < 0) {
		fprintf(stderr, "colo blk %s: %s %s\n", a->cmd,
			server ? "--listen" : "--secondary", err);
		return 2;
	}
	return 0;
}

/* HOST:PORT -> tcp[-listen]:HOST:PORT; full SOCK strings pass as is. */
static void peer_spec(const char *peer, bool listen, char *out, size_t n)
{
	if (!strncmp(peer, "tcp:", 4) || !strncmp(peer, "tcp-listen:", 11) ||
	    !strncmp(peer, "unix:", 5) || !strncmp(peer, "unix-listen:", 12))
		snprintf(out, n, "%s", peer);
	else
		snprintf(out, n, "%s:%s", listen ? "tcp-listen" : "tcp", peer);
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

/* "quit" runs on the loop's thread, so it stops the loop directly; the
 * reply still leaves before the control server closes. */
static int quit_cmd(void *ctx, struct json_object *req,
		    struct json_object *reply, char *err, size_t errlen)
{
	struct blk_main *m = ctx;

	(void)req, (void)reply, (void)err, (void)errlen;
	colo_log_info("blk %s: quit requested, stopping", m->cmd);
	colo_loop_stop(m->loop);
	return 0;
}

static void on_stop_signal(void *opaque, const struct signalfd_siginfo *si)
{
	struct blk_main *m = opaque;

	colo_log_info("blk %s: signal %u, stopping", m->cmd, si->ssi_signo);
	colo_loop_stop(m->loop);
}

/* The loop with SIGINT/SIGTERM. The signals are blocked before any
 * thread starts, so every thread inherits the mask and only the loop's
 * signalfd takes them. */
static int blk_main_init(struct blk_main *m, const char *cmd)
{
	m->cmd = cmd;
	m->loop = colo_loop_new();
	colo_ignore_sigpipe();
	if (!m->loop ||
	    colo_loop_on_signal(m->loop, SIGINT, on_stop_signal, m) ||
	    colo_loop_on_signal(m->loop, SIGTERM, on_stop_signal, m)) {
		fprintf(stderr,
			"colo blk %s: cannot set up the event loop: %s\n", cmd,
			strerror(errno));
		return -1;
	}
	return 0;
}

static void blk_main_destroy(struct blk_main *m)
{
	colo_loop_free(m->loop);
}

/* Serve until SIGTERM/SIGINT or quit. */
static int run(struct blk_args *a, struct blk_main *m, struct colo_blk_dev *dev,
	       const struct colo_control_table *ctl, int (*start)(void *),
	       void *start_arg)
{
	struct colo_control_server *c = NULL;
	struct colo_nbd_server *s;
	char err[512];
	int rc = 1;

	s = colo_nbd_server_new(dev, a->name, "colo block replication");
	if (!s) {
		fprintf(stderr, "colo blk %s: out of memory\n", a->cmd);
		return 1;
	}
	/* TCP exports in TLS with the same credentials; the client is this
	 * host's QEMU: any certificate of the CA unless --export-tls-peer. */
	colo_nbd_server_set_tls(s, a->creds, a->export_peer, a->insecure);
	for (int i = 0; i < a->n_exports; i++) {
		if (colo_nbd_server_listen(s, a->exports[i], err, sizeof(err)) <
		    0) {
			fprintf(stderr, "colo blk %s: --export %s\n", a->cmd,
				err);
			goto out;
		}
	}
	if (a->control) {
		c = colo_control_server_new(m->loop, a->control, ctl, err,
					    sizeof(err));
		if (!c) {
			fprintf(stderr, "colo blk %s: --control %s\n", a->cmd,
				err);
			goto out;
		}
	}
	if (start(start_arg) < 0 || colo_nbd_server_start(s) < 0) {
		fprintf(stderr, "colo blk %s: cannot start threads\n", a->cmd);
		goto out;
	}
	colo_log_info("blk %s: serving %s (%llu bytes)", a->cmd, a->image,
		      (unsigned long long)dev->size);
	if (colo_loop_run(m->loop) < 0)
		colo_log_warn("blk %s: event loop: %s", a->cmd,
			      strerror(errno));
	else
		rc = 0;
out:
	colo_nbd_server_free(s);
	colo_control_server_free(c);
	return rc;
}

/* ---- primary */

static void primary_fill(struct colo_repl_primary *p, struct json_object *o,
			 bool full)
{
	struct colo_repl_primary_stats st;

	colo_repl_primary_get_stats(p, &st);
	json_object_object_add(o, "role", json_object_new_string("primary"));
	json_object_object_add(
		o, "state",
		json_object_new_string(colo_repl_state_name(st.state)));
	json_object_object_add(
		o, "protected",
		json_object_new_boolean(st.state == COLO_REPL_PROTECTED));
	json_object_object_add(
		o, "mode", json_object_new_string(st.async ? "async" : "sync"));
	add_u64(o, "dirty_bytes", st.dirty_bytes);
	add_u64(o, "inflight", st.inflight);
	add_u64(o, "last_resync_bytes", st.last_resync_bytes);
	add_u64(o, "last_resync_compared", st.last_resync_compared);
	add_u64(o, "link_losses", st.link_losses);
	add_u64(o, "drops", st.drops);
	json_object_object_add(o, "last_loss",
			       json_object_new_string(st.last_loss));
	if (!full)
		return;
	json_object_object_add(
		o, "resync",
		json_object_new_string(st.resync_full ? "full" : "digest"));
	add_u64(o, "total_resync_compared", st.total_resync_compared);
	add_u64(o, "last_resync_ms", st.last_resync_ms);
	add_u64(o, "digest_resyncs", st.digest_resyncs);
	add_u64(o, "writes", st.writes);
	add_u64(o, "forwarded", st.forwarded);
	add_u64(o, "forwarded_bytes", st.forwarded_bytes);
	add_u64(o, "acked_seq", st.acked_seq);
	add_u64(o, "degraded_writes", st.degraded_writes);
	add_u64(o, "connects", st.connects);
	add_u64(o, "completions_under_lock", st.completions_under_lock);
	add_u64(o, "resyncs", st.resyncs);
	add_u64(o, "total_resync_bytes", st.total_resync_bytes);
	add_u64(o, "checkpoints", st.checkpoints);
	add_u64(o, "prepares", st.prepares);
	add_u64(o, "granularity", st.granularity);
}

static int primary_status(void *ctx, struct json_object *req,
			  struct json_object *reply, char *err, size_t errlen)
{
	(void)req, (void)err, (void)errlen;
	primary_fill(((struct blk_main *)ctx)->p, reply, false);
	return 0;
}

static int primary_stats(void *ctx, struct json_object *req,
			 struct json_object *reply, char *err, size_t errlen)
{
	(void)req, (void)err, (void)errlen;
	primary_fill(((struct blk_main *)ctx)->p, reply, true);
	return 0;
}

/* The optional "timeout_ms" of a barrier request: 0 (the link's
 * timeout), the value, or -1 after an error. */
static long barrier_timeout(struct json_object *req, char *err, size_t errlen)
{
	struct json_object *t;
	int64_t v;

	if (!json_object_object_get_ex(req, "timeout_ms", &t))
		return 0;
	v = json_object_get_int64(t);
	if (!json_object_is_type(t, json_type_int) || v < 1 || v > 3600000) {
		snprintf(err, errlen, "timeout_ms: 1..3600000");
		return -1;
	}
	return (long)v;
}

static int primary_checkpoint(void *ctx, struct json_object *req,
			      struct json_object *reply, char *err,
			      size_t errlen)
{
	struct blk_main *m = ctx;
	long timeout_ms = barrier_timeout(req, err, errlen);
	int r;

	if (timeout_ms < 0)
		return -1;
	r = colo_repl_primary_checkpoint(m->p, (unsigned int)timeout_ms);
	if (r < 0) {
		snprintf(err, errlen, "checkpoint: %s",
			 r == -ENOTCONN ? "not protected" : strerror(-r));
		return -1;
	}
	primary_fill(m->p, reply, false);
	return 0;
}

static int primary_prepare(void *ctx, struct json_object *req,
			   struct json_object *reply, char *err, size_t errlen)
{
	struct blk_main *m = ctx;
	long timeout_ms = barrier_timeout(req, err, errlen);
	int r;

	if (timeout_ms < 0)
		return -1;
	r = colo_repl_primary_prepare(m->p, (unsigned int)timeout_ms);
	if (r < 0) {
		snprintf(err, errlen, "prepare: %s",
			 r == -ENOTCONN ? "not protected"
			 : r == -EALREADY
				 ? "the secondary already holds a prepared "
				   "checkpoint (commit or abort it there "
				   "first)"
				 : strerror(-r));
		return -1;
	}
	primary_fill(m->p, reply, false);
	return 0;
}

static int primary_failover(void *ctx, struct json_object *req,
			    struct json_object *reply, char *err, size_t errlen)
{
	struct blk_main *m = ctx;

	(void)req, (void)err, (void)errlen;
	colo_repl_primary_stop(m->p);
	primary_fill(m->p, reply, false);
	return 0;
}

/* The optional "reason" of drop-secondary: printable, short (it goes to
 * the log and to status). NULL after an error (in err). */
static const char *drop_reason(struct json_object *req, char *err,
			       size_t errlen)
{
	struct json_object *v;
	const char *s;
	size_t n;

	if (!json_object_object_get_ex(req, "reason", &v))
		return "on request";
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (!json_object_is_type(v, json_type_string) || n < 1 || n > 64)
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			goto bad;
	return s;
bad:
	snprintf(err, errlen, "reason: 1 to 64 printable ASCII characters");
	return NULL;
}

/* "drop-secondary": give the secondary up now instead of waiting for
 * the link's timeout (colo up, when the peer left the quorate group);
 * the same bookkeeping as a lost link, and the link is tried again. */
static int primary_drop_secondary(void *ctx, struct json_object *req,
				  struct json_object *reply, char *err,
				  size_t errlen)
{
	struct blk_main *m = ctx;
	const char *why = drop_reason(req, err, errlen);
	bool dropped;

	if (!why)
		return -1;
	dropped = colo_repl_primary_drop(m->p, why) == 0;
	primary_fill(m->p, reply, false);
	json_object_object_add(reply, "dropped",
			       json_object_new_boolean(dropped));
	return 0;
}

static const struct colo_control_cmd primary_cmds[] = {
	{ "status", primary_status, "replication state" },
	{ "stats", primary_stats, "replication counters" },
	{ "checkpoint", primary_checkpoint,
	  "barrier + secondary buffer drop; optional timeout_ms" },
	{ "prepare", primary_prepare,
	  "barrier; the secondary holds its buffers until its commit; "
	  "optional timeout_ms" },
	{ "failover", primary_failover, "stop replicating; serve alone" },
	{ "drop-secondary", primary_drop_secondary,
	  "give the secondary up now, as its link's timeout would; optional "
	  "reason" },
	{ "quit", quit_cmd, "exit" },
};

static int primary_start(void *arg)
{
	return colo_repl_primary_start(arg);
}

/* What both roles do first: their arguments, the main loop, the image.
 * -1 to go on (the caller then closes *image and destroys m), else the
 * exit status (0 after --help). */
static int blk_start(int argc, char **argv, const char *help, bool primary,
		     struct blk_args *a, struct blk_main *m,
		     struct colo_blk_dev **image)
{
	char err[512];
	int rc = parse_args(argc, argv, a, help, primary);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (blk_main_init(m, a->cmd)) {
		blk_main_destroy(m);
		return 1;
	}
	*image = colo_file_dev_open(a->image, false, err, sizeof(err));
	if (!*image) {
		fprintf(stderr, "colo blk %s: %s\n",
			primary ? "primary" : "secondary", err);
		blk_main_destroy(m);
		return 1;
	}
	return -1;
}

/* The replicating device's settings from the command line: the same for
 * colo blk primary and for a secondary that "replicate" makes one (whose
 * --async is refused at parsing, so false). */
static void primary_cfg(const struct blk_args *a, struct colo_blk_dev *image,
			const char *spec, struct colo_repl_primary_cfg *cfg)
{
	*cfg = (struct colo_repl_primary_cfg){
		.image = image,
		.secondary = spec,
		.granularity = a->granularity,
		.async = a->async,
		.timeout_ms = a->timeout_ms,
		.creds = a->creds,
		.tls_peer = a->tls_peer,
		.resync_full = a->resync_full,
	};
}

static int cmd_primary(int argc, char **argv)
{
	struct blk_args a = { 0 };
	struct colo_repl_primary_cfg cfg = { 0 };
	struct colo_repl_primary *p;
	struct colo_control_table ctl;
	struct colo_blk_dev *image;
	struct blk_main m = { 0 };
	char spec[512], err[512];
	int rc = blk_start(argc, argv, primary_help, true, &a, &m, &image);

	if (rc >= 0)
		return rc;
	peer_spec(a.peer, false, spec, sizeof(spec));
	rc = link_setup(&a, spec, false);
	if (rc) {
		colo_file_dev_close(image);
		blk_main_destroy(&m);
		return rc;
	}
	primary_cfg(&a, image, spec, &cfg);
	p = colo_repl_primary_new(&cfg, err, sizeof(err));
	if (!p) {
		fprintf(stderr, "colo blk primary: --secondary %s\n", err);
		colo_file_dev_close(image);
		blk_main_destroy(&m);
		return 2;
	}
	m.p = p;
	ctl = (struct colo_control_table){
		primary_cmds, sizeof(primary_cmds) / sizeof(primary_cmds[0]), &m
	};
	rc = run(&a, &m, colo_repl_primary_dev(p), &ctl, primary_start, p);
	colo_repl_primary_free(p);
	colo_tls_creds_free(a.creds);
	colo_file_dev_close(image);
	blk_main_destroy(&m);
	return rc;
}

/* ---- secondary */

static void secondary_fill(struct blk_main *m, struct json_object *o, bool full)
{
	struct colo_repl_secondary_stats ls;
	struct colo_disk_buffer_stats bs;
	const char *state;

	colo_repl_secondary_get_stats(m->s, &ls);
	colo_disk_buffer_get_stats(m->db, &bs);
	state = bs.failed_over ? "failed-over"
		: ls.resyncing ? "resyncing"
		: ls.connected ? "replicating"
			       : "waiting";
	json_object_object_add(o, "role", json_object_new_string("secondary"));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "connected",
			       json_object_new_boolean(ls.connected));
	json_object_object_add(o, "failed_over",
			       json_object_new_boolean(bs.failed_over));
	json_object_object_add(o, "prepared",
			       json_object_new_boolean(bs.prepared));
	json_object_object_add(o, "commit_id",
			       json_object_new_int64(m->commit_id));
	add_u64(o, "hidden_granules", bs.hidden_granules);
	add_u64(o, "active_granules", bs.active_granules);
	add_u64(o, "granularity", bs.granularity);
	if (!full)
		return;
	add_u64(o, "map_bytes", bs.map_bytes);
	add_u64(o, "primary_writes", ls.writes);
	add_u64(o, "primary_write_bytes", ls.write_bytes);
	add_u64(o, "originals_saved", bs.originals_saved);
	add_u64(o, "guest_writes", bs.guest_writes);
	add_u64(o, "guest_reads", bs.guest_reads);
	add_u64(o, "barriers", ls.barriers);
	add_u64(o, "checkpoints", bs.checkpoints);
	add_u64(o, "prepares", ls.prepares);
	add_u64(o, "connects", ls.connects);
	add_u64(o, "resyncs", ls.resyncs);
	add_u64(o, "resync_bytes", ls.resync_bytes);
	add_u64(o, "digest_reqs", ls.digest_reqs);
	add_u64(o, "digest_bytes", ls.digest_bytes);
	add_u64(o, "last_seq", ls.last_seq);
	add_u64(o, "hello_timeouts", ls.hello_timeouts);
	add_u64(o, "refused", ls.refused);
	add_u64(o, "lobby_evicted", ls.lobby_evicted);
	add_u64(o, "link_buffer_bytes", ls.buffer_bytes);
}

static int secondary_status(void *ctx, struct json_object *req,
			    struct json_object *reply, char *err, size_t errlen)
{
	(void)req, (void)err, (void)errlen;
	secondary_fill(ctx, reply, false);
	return 0;
}

static int secondary_stats(void *ctx, struct json_object *req,
			   struct json_object *reply, char *err, size_t errlen)
{
	(void)req, (void)err, (void)errlen;
	secondary_fill(ctx, reply, true);
	return 0;
}

static int secondary_checkpoint(void *ctx, struct json_object *req,
				struct json_object *reply, char *err,
				size_t errlen)
{
	struct blk_main *m = ctx;
	int r = colo_disk_buffer_checkpoint(m->db);

	(void)req;
	if (r < 0) {
		snprintf(err, errlen, "checkpoint: %s",
			 r == -ESHUTDOWN ? "failed over" : strerror(-r));
		return -1;
	}
	secondary_fill(m, reply, false);
	return 0;
}

static int secondary_commit(void *ctx, struct json_object *req,
			    struct json_object *reply, char *err, size_t errlen)
{
	struct blk_main *m = ctx;
	struct json_object *id = NULL;
	int r;

	/* The caller's name for this checkpoint, reported by status: a
	 * caller whose reply was lost learns from it whether the commit
	 * happened. */
	if (json_object_object_get_ex(req, "id", &id) &&
	    (!json_object_is_type(id, json_type_int) ||
	     json_object_get_int64(id) < 0)) {
		snprintf(err, errlen, "id: a number >= 0");
		return -1;
	}
	r = colo_disk_buffer_commit(m->db);
	if (r == 0)
		m->commit_id = id ? json_object_get_int64(id) : 0;
	if (r < 0) {
		snprintf(err, errlen, "commit: %s",
			 r == -ENOENT ? "no checkpoint is prepared"
			 : r == -ESTALE
				 ? "the primary wrote after the prepare; "
				   "nothing dropped, prepare again"
			 : r == -ESHUTDOWN ? "failed over"
					   : strerror(-r));
		return -1;
	}
	secondary_fill(m, reply, false);
	return 0;
}

static int secondary_abort(void *ctx, struct json_object *req,
			   struct json_object *reply, char *err, size_t errlen)
{
	struct blk_main *m = ctx;
	bool was = colo_disk_buffer_abort(m->db);

	(void)req, (void)err, (void)errlen;
	if (was)
		colo_log_info("blk secondary: prepared checkpoint aborted");
	secondary_fill(m, reply, false);
	json_object_object_add(reply, "aborted", json_object_new_boolean(was));
	return 0;
}

static int secondary_failover(void *ctx, struct json_object *req,
			      struct json_object *reply, char *err,
			      size_t errlen)
{
	struct blk_main *m = ctx;
	struct json_object *v;
	bool guest_view = true;
	int r;

	if (json_object_object_get_ex(req, "view", &v)) {
		const char *s = json_object_get_string(v);

		if (!json_object_is_type(v, json_type_string) ||
		    (strcmp(s, "guest") && strcmp(s, "primary"))) {
			snprintf(err, errlen, "view: \"guest\" or \"primary\"");
			return -1;
		}
		guest_view = !strcmp(s, "guest");
	}
	r = colo_repl_secondary_failover(m->s, guest_view);
	if (r < 0) {
		snprintf(err, errlen, "failover: %s (may be retried)",
			 strerror(-r));
		return -1;
	}
	secondary_fill(m, reply, false);
	return 0;
}

/* What a secondary answers for itself, until "replicate" makes it a
 * primary. */
static const struct colo_control_cmd secondary_cmds[] = {
	{ "status", secondary_status, "link and buffer state" },
	{ "stats", secondary_stats, "counters" },
	{ "checkpoint", secondary_checkpoint, "drop both buffers now" },
	{ "commit", secondary_commit,
	  "drop both buffers at the point the primary prepared" },
	{ "abort", secondary_abort,
	  "forget the prepared checkpoint, keep buffering" },
	{ "failover", secondary_failover,
	  "fold the buffers into the image, serve it directly; "
	  "view=primary: drop them instead" },
};

#define N_CMDS(t) (sizeof(t) / sizeof((t)[0]))

/*
 * The secondary's requests go to the table of the role this process
 * plays now: a failed-over secondary that replicates answers as
 * `colo blk primary` does (colo up and colo vm cannot tell them apart).
 */
static int role_dispatch(void *ctx, struct json_object *req,
			 struct json_object *reply, char *err, size_t errlen)
{
	struct blk_main *m = ctx;
	const struct colo_control_cmd *t = m->p ? primary_cmds : secondary_cmds;
	size_t n = m->p ? N_CMDS(primary_cmds) : N_CMDS(secondary_cmds);
	struct json_object *c = NULL;
	const char *name;

	json_object_object_get_ex(req, "cmd", &c);
	name = c ? json_object_get_string(c) : "";
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return t[i].fn(ctx, req, reply, err, errlen);
	snprintf(err, errlen, "%s: %s", name,
		 m->p ? "not a primary's request (this secondary replicates "
			"as a primary now)"
		      : "a primary's request (send \"replicate\" first)");
	return -1;
}

/*
 * "replicate": a failed-over secondary becomes a primary in place. The
 * image it serves is wrapped in a replicating device and the export is
 * routed through it, so the connected clients go on; the link to the new
 * secondary connects in the background and resyncs by digest.
 */
static int secondary_replicate(void *ctx, struct json_object *req,
			       struct json_object *reply, char *err,
			       size_t errlen)
{
	struct blk_main *m = ctx;
	const struct blk_args *a = m->args;
	struct colo_repl_primary_cfg cfg = { 0 };
	struct json_object *v;
	char spec[512];
	bool fresh = !m->p;
	int r;

	if (!json_object_object_get_ex(req, "secondary", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !json_object_get_string_len(v)) {
		snprintf(err, errlen,
			 "replicate: \"secondary\": \"HOST:PORT\" (or "
			 "\"unix:PATH\") is required");
		return -1;
	}
	if (m->p && colo_repl_primary_running(m->p)) {
		snprintf(err, errlen, "replicate: already replicating");
		return -1;
	}
	if (!colo_disk_buffer_failed_over(m->db)) {
		snprintf(err, errlen,
			 "replicate: not failed over (send \"failover\" "
			 "first: only the image a failed-over secondary "
			 "serves can be replicated)");
		return -1;
	}
	peer_spec(json_object_get_string(v), false, spec, sizeof(spec));
	if (a->creds && !colo_tls_creds_can(a->creds, false)) {
		snprintf(err, errlen,
			 "replicate: --tls-creds %s: no client-cert.pem / "
			 "client-key.pem",
			 a->tls_dir);
		return -1;
	}
	if (!a->creds && plain_link_check(a, spec, err, errlen) < 0)
		return -1;
	if (m->p) {
		/* A primary in place that failed its secondary over: the
		 * next one is another host's image. */
		if (colo_repl_primary_retarget(m->p, spec, err, errlen) < 0)
			return -1;
	} else {
		primary_cfg(a, m->image, spec, &cfg);
		m->p = colo_repl_primary_new(&cfg, err, errlen);
		if (!m->p)
			return -1;
		r = colo_disk_buffer_route(m->db, colo_repl_primary_dev(m->p));
		if (r < 0) {
			snprintf(err, errlen, "replicate: %s", strerror(-r));
			colo_repl_primary_free(m->p);
			m->p = NULL;
			return -1;
		}
	}
	r = colo_repl_primary_start(m->p);
	if (r < 0) {
		/* routed already: the primary stays, degraded, and a later
		 * replicate may start it */
		snprintf(err, errlen, "replicate: cannot start: %s",
			 strerror(-r));
		return -1;
	}
	colo_log_info("blk secondary: %s to %s: a primary now",
		      fresh ? "replicating" : "replicating again", spec);
	primary_fill(m->p, reply, false);
	return 0;
}

/* The secondary's control table: every request but these two goes to
 * the current role's table. */
static const struct colo_control_cmd secondary_ctl_cmds[] = {
	{ "status", role_dispatch,
	  "link and buffer state (as a primary's "
	  "after replicate)" },
	{ "stats", role_dispatch, "counters" },
	{ "checkpoint", role_dispatch,
	  "drop both buffers now (primary: "
	  "barrier + secondary buffer drop)" },
	{ "commit", role_dispatch,
	  "drop both buffers at the point the primary prepared" },
	{ "abort", role_dispatch,
	  "forget the prepared checkpoint, keep buffering" },
	{ "failover", role_dispatch,
	  "fold the buffers into the image, serve it directly; "
	  "view=primary: drop them instead (primary: stop replicating)" },
	{ "replicate", secondary_replicate,
	  "after failover: become a primary replicating to "
	  "secondary=HOST:PORT" },
	{ "prepare", role_dispatch,
	  "after replicate: as colo blk primary's prepare" },
	{ "drop-secondary", role_dispatch,
	  "after replicate: as colo blk primary's drop-secondary" },
	{ "quit", quit_cmd, "exit" },
};

static int secondary_start(void *arg)
{
	return colo_repl_secondary_start(arg);
}

static int cmd_secondary(int argc, char **argv)
{
	struct blk_args a = { 0 };
	struct colo_repl_secondary *s = NULL;
	struct colo_disk_buffer *db = NULL;
	struct colo_control_table ctl;
	struct colo_blk_dev *image;
	struct blk_main m = { 0 };
	char spec[512], err[512], dir[4096];
	int rc = blk_start(argc, argv, secondary_help, false, &a, &m, &image);

	if (rc >= 0)
		return rc;
	if (!a.buffer_dir) {
		const char *slash = strrchr(a.image, '/');

		if (!slash)
			snprintf(dir, sizeof(dir), ".");
		else
			snprintf(dir, sizeof(dir), "%.*s",
				 (int)(slash - a.image + (slash == a.image)),
				 a.image);
		a.buffer_dir = dir;
	}
	rc = 1;
	db = colo_disk_buffer_new(image, a.granularity, a.buffer_dir, err,
				  sizeof(err));
	if (!db) {
		fprintf(stderr, "colo blk secondary: %s\n", err);
		goto out;
	}
	s = colo_repl_secondary_new(db, a.timeout_ms, err, sizeof(err));
	peer_spec(a.peer, true, spec, sizeof(spec));
	if (s && (rc = link_setup(&a, spec, true)) != 0)
		goto out;
	rc = 1;
	if (s)
		colo_repl_secondary_set_tls(s, a.creds, a.tls_peer);
	if (!s || colo_repl_secondary_listen(s, spec, err, sizeof(err)) < 0) {
		fprintf(stderr, "colo blk secondary: --listen %s\n", err);
		goto out;
	}
	m.db = db;
	m.s = s;
	m.image = image;
	m.args = &a;
	ctl = (struct colo_control_table){ secondary_ctl_cmds,
					   N_CMDS(secondary_ctl_cmds), &m };
	rc = run(&a, &m, colo_disk_buffer_dev(db), &ctl, secondary_start, s);
out:
	/* after the exports: the buffer's view may route through it */
	colo_repl_primary_free(m.p);
	colo_repl_secondary_free(s);
	colo_tls_creds_free(a.creds);
	colo_disk_buffer_free(db);
	colo_file_dev_close(image);
	blk_main_destroy(&m);
	return rc;
}

/* ---- ctl: the common control client with blk's KEY=VALUE syntax */

static int ctl_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "colo blk ctl: %s%s\nTry 'colo blk ctl --help'.\n", msg,
		arg ? arg : "");
	return 2;
}

static bool print_event(void *opaque, const char *line, size_t len)
{
	long *left = opaque;

	fwrite(line, 1, len, stdout);
	fflush(stdout);
	return *left <= 0 || --*left > 0;
}

static int ctl_events(const char *path, int argc, char **argv)
{
	char err[512];
	long count = 0;

	if (argc > 1)
		return ctl_usage("events takes at most a COUNT", NULL);
	if (argc == 1) {
		uint64_t v;

		if (colo_parse_u64(argv[0], 1u << 30, &v))
			return ctl_usage("events: COUNT must be a number, got ",
					 argv[0]);
		count = (long)v;
	}
	if (colo_control_subscribe(path, 10000, print_event, &count, err,
				   sizeof(err))) {
		fprintf(stderr, "colo blk ctl: %s\n", err);
		return 1;
	}
	return 0;
}

/* KEY=VALUE, or one JSON object, into req. 0, or 2 after a message. */
static int ctl_args(struct json_object *req, int argc, char **argv)
{
	if (argc == 1 && argv[0][0] == '{') {
		struct json_object *args = json_tokener_parse(argv[0]);

		if (!args || !json_object_is_type(args, json_type_object)) {
			json_object_put(args);
			return ctl_usage("JSON-ARGS must be a JSON object",
					 NULL);
		}
		json_object_object_foreach(args, k, v)
			json_object_object_add(req, k, json_object_get(v));
		json_object_put(args);
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		char *end, key[256];
		long long v;

		if (!eq || eq == argv[i] || eq - argv[i] >= (long)sizeof(key))
			return ctl_usage("expected KEY=VALUE, got ", argv[i]);
		snprintf(key, sizeof(key), "%.*s", (int)(eq - argv[i]),
			 argv[i]);
		errno = 0;
		v = strtoll(eq + 1, &end, 10);
		json_object_object_add(
			req, key,
			eq[1] && !*end && !errno
				? json_object_new_int64(v)
				: json_object_new_string(eq + 1));
	}
	return 0;
}

static int cmd_ctl(int argc, char **argv)
{
	struct json_object *req;
	unsigned int timeout_ms = 10000;
	int i = 1, rc;

	while (i < argc && argv[i][0] == '-') {
		uint64_t v;

		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(ctl_help, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--timeout") || i + 1 == argc)
			return ctl_usage("bad option ", argv[i]);
		if (colo_parse_u64(argv[i + 1], 3600000, &v) || !v)
			return ctl_usage("--timeout: expected 1..3600000 ms, "
					 "got ",
					 argv[i + 1]);
		timeout_ms = (unsigned int)v;
		i += 2;
	}
	if (argc - i < 2)
		return ctl_usage("SOCKET and COMMAND are required", NULL);
	if (!strcmp(argv[i + 1], "events"))
		return ctl_events(argv[i], argc - i - 2, argv + i + 2);
	if (argv[i + 1][0] == '{') {
		req = json_tokener_parse(argv[i + 1]);
		if (!req || argc - i > 2) {
			json_object_put(req);
			return ctl_usage("bad JSON request", NULL);
		}
	} else {
		req = json_object_new_object();
		json_object_object_add(req, "cmd",
				       json_object_new_string(argv[i + 1]));
		rc = ctl_args(req, argc - i - 2, argv + i + 2);
		if (rc) {
			json_object_put(req);
			return rc;
		}
	}
	return colo_control_call(argv[i], req, timeout_ms, "colo blk ctl");
}

int colo_cmd_blk(int argc, char **argv)
{
	if (argc < 2) {
		fputs(blk_help, stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(blk_help, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "primary"))
		return cmd_primary(argc - 1, argv + 1);
	if (!strcmp(argv[1], "secondary"))
		return cmd_secondary(argc - 1, argv + 1);
	if (!strcmp(argv[1], "serve"))
		return colo_blk_cmd_serve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "ctl"))
		return cmd_ctl(argc - 1, argv + 1);
	fprintf(stderr,
		"colo blk: unknown command '%s'\nTry 'colo blk "
		"--help'.\n",
		argv[1]);
	return 2;
}
