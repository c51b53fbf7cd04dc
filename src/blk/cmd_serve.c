/*
 * cmd_serve.c - `colo blk serve`: export an image file over NBD, without
 * replication. The plain counterpart of `colo blk primary/secondary`, and
 * the baseline the block benchmark compares with qemu-nbd.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk_commands.h"
#include "evloop.h"
#include "file_dev.h"
#include "log.h"
#include "nbd_server.h"
#include "tls.h"
#include "tls_args.h"

/* clang-format off: the text is laid out as printed */
static const char help_text[] =
	"usage: colo blk serve --image FILE --export SOCK [--export SOCK]...\n"
	"                      [--name NAME] [--description TEXT] "
	"[--read-only]\n"
	"                      [--max-clients N] [--quiet]\n"
	"                      [--tls-creds DIR [--tls-peer HOST] | "
	"--insecure]\n"
	"\n"
	"Export a raw image file (or block device) over NBD, as qemu-nbd "
	"would,\n"
	"with no replication. QEMU, qemu-img, qemu-io, nbd-client and libnbd\n"
	"clients connect to it, e.g.\n"
	"  qemu-io -f raw 'nbd+unix:///NAME?socket=PATH'\n"
	"  qemu-img info nbd://HOST:PORT/NAME\n"
	"\n"
	"Options:\n"
	"  --image FILE        the raw image to serve; its size is the "
	"export's.\n"
	"  --export SOCK       where clients connect: tcp-listen:HOST:PORT or\n"
	"                      unix-listen:PATH (a stale socket file is "
	"replaced,\n"
	"                      and removed at exit). Up to 4 times.\n"
	"  --name NAME         the export name (default: empty). The export "
	"also\n"
	"                      answers to the empty name, NBD's default "
	"export.\n"
	"  --description TEXT  sent to clients that ask "
	"(NBD_INFO_DESCRIPTION).\n"
	"  --read-only         open the image read-only; writes, trims and "
	"zero\n"
	"                      writes fail with EPERM.\n"
	"  --max-clients N     connections served at once (default 64); more\n"
	"                      are closed at once.\n"
	"  --quiet             do not log connects and disconnects.\n"
	"  --tls-creds DIR     TLS 1.3 with x509 client certificates (NBD\n"
	"                      STARTTLS, as qemu-nbd --tls-creds): DIR holds\n"
	"                      ca-cert.pem, server-cert.pem, server-key.pem\n"
	"                      (QEMU's tls-creds-x509 layout). Required on\n"
	"                      TCP exports, offered on UNIX ones.\n"
	"  --tls-peer HOST     only a client whose certificate names HOST\n"
	"                      (default: any certificate of the CA)\n"
	"  --insecure          allow a TCP export off loopback without TLS\n"
	"  -h, --help          show this help.\n"
	"\n"
	"Protocol: NBD fixed newstyle (no oldstyle), options STARTTLS,\n"
	"EXPORT_NAME, INFO, GO, LIST and ABORT; others are answered "
	"ERR_UNSUP, so\n"
	"clients use simple replies. Commands READ, WRITE (FUA), FLUSH, TRIM,\n"
	"WRITE_ZEROES (NO_HOLE, FUA) and DISC; requests up to 32 MiB. Writes "
	"go\n"
	"through the page cache; FLUSH and FUA make them durable "
	"(fdatasync).\n"
	"Several clients may connect at once (CAN_MULTI_CONN is advertised).\n"
	"A malformed request gets an error reply (EINVAL, ENOSPC past the end "
	"of\n"
	"a write, EPERM when read-only) and the connection stays usable; a "
	"bad\n"
	"magic number, or a write too long to skip, closes that connection "
	"only.\n"
	"\n"
	"Signals: SIGTERM, SIGINT disconnect the clients and exit 0.\n"
	"\n"
	"Exit status: 0 after SIGTERM/SIGINT or --help, 1 when the image or "
	"a\n"
	"socket cannot be opened, 2 for bad arguments.\n";
/* clang-format on */

enum {
	OPT_IMAGE = 256,
	OPT_EXPORT,
	OPT_NAME,
	OPT_DESCRIPTION,
	OPT_READ_ONLY,
	OPT_MAX_CLIENTS,
	OPT_QUIET,
};

static const struct option long_options[] = {
	{ "image", required_argument, NULL, OPT_IMAGE },
	{ "export", required_argument, NULL, OPT_EXPORT },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "description", required_argument, NULL, OPT_DESCRIPTION },
	{ "read-only", no_argument, NULL, OPT_READ_ONLY },
	{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	COLO_TLS_LONG_OPTIONS,
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

#define MAX_EXPORTS 4

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "colo blk serve: %s%s\n", msg, arg ? arg : "");
	fprintf(stderr, "Try 'colo blk serve --help'.\n");
	return 2;
}

struct serve_args {
	const char *image, *name, *description;
	const char *exports[MAX_EXPORTS];
	int n_exports;
	bool read_only;
	unsigned max_clients;
	const char *tls_dir, *tls_peer;
	bool insecure;
};

static int parse_args(int argc, char **argv, struct serve_args *a)
{
	int c;

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
				return usage_error("at most 4 --export", NULL);
			a->exports[a->n_exports++] = optarg;
			break;
		case OPT_NAME:
			a->name = optarg;
			break;
		case OPT_DESCRIPTION:
			a->description = optarg;
			break;
		case OPT_READ_ONLY:
			a->read_only = true;
			break;
		case OPT_MAX_CLIENTS: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (optarg[0] < '0' || optarg[0] > '9' || *end ||
			    v < 1 || v > 1024)
				return usage_error(
					"--max-clients: expected 1..1024, got ",
					optarg);
			a->max_clients = (unsigned)v;
			break;
		}
		case OPT_QUIET:
			colo_log_quiet = true;
			break;
		case 'h':
			fputs(help_text, stdout);
			return 1;
		default:
			return usage_error("bad arguments", NULL);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument: ", argv[optind]);
	if (!a->image)
		return usage_error("--image FILE is required", NULL);
	if (!a->n_exports)
		return usage_error("--export SOCK is required", NULL);
	if (strlen(a->name) > 4096)
		return usage_error("--name: longer than 4096 bytes", NULL);
	if (a->description && strlen(a->description) > 4096)
		return usage_error("--description: longer than 4096 bytes",
				   NULL);
	if (colo_tls_args_error(a->tls_dir, a->tls_peer, a->insecure, true))
		return usage_error(colo_tls_args_error(a->tls_dir, a->tls_peer,
						       a->insecure, true),
				   NULL);
	return 0;
}

static void on_stop_signal(void *opaque, const struct signalfd_siginfo *si)
{
	colo_log_info("signal %u, stopping", si->ssi_signo);
	colo_loop_stop(opaque);
}

static int serve(const struct serve_args *a)
{
	struct colo_nbd_server *s = NULL;
	struct colo_tls_creds *creds = NULL;
	struct colo_loop *loop;
	struct colo_blk_dev *dev;
	char err[512];
	int rc = 1;

	/* The main thread only waits for a signal; the server's threads,
	 * started later, inherit the blocked mask, so only the loop's
	 * signalfd takes SIGINT/SIGTERM. */
	colo_ignore_sigpipe();
	loop = colo_loop_new();
	if (!loop || colo_loop_on_signal(loop, SIGINT, on_stop_signal, loop) ||
	    colo_loop_on_signal(loop, SIGTERM, on_stop_signal, loop)) {
		fprintf(stderr,
			"colo blk serve: cannot set up the event loop: "
			"%s\n",
			strerror(errno));
		colo_loop_free(loop);
		return 1;
	}
	dev = colo_file_dev_open(a->image, a->read_only, err, sizeof(err));
	if (!dev) {
		fprintf(stderr, "colo blk serve: %s\n", err);
		colo_loop_free(loop);
		return 1;
	}
	s = colo_nbd_server_new(dev, a->name, a->description);
	if (!s) {
		fprintf(stderr, "colo blk serve: out of memory\n");
		goto out;
	}
	if (a->tls_dir) {
		creds = colo_tls_creds_load(a->tls_dir, err, sizeof(err));
		if (!creds) {
			fprintf(stderr, "colo blk serve: --tls-creds: %s\n",
				err);
			goto out;
		}
	}
	colo_nbd_server_set_tls(s, creds, a->tls_peer, a->insecure);
	colo_nbd_server_set_multi_conn(s, true);
	if (a->max_clients)
		colo_nbd_server_set_max_clients(s, a->max_clients);
	for (int i = 0; i < a->n_exports; i++) {
		if (colo_nbd_server_listen(s, a->exports[i], err,
					   sizeof(err))) {
			fprintf(stderr, "colo blk serve: %s\n", err);
			goto out;
		}
	}
	if (colo_nbd_server_start(s)) {
		fprintf(stderr, "colo blk serve: cannot start the server\n");
		goto out;
	}
	colo_log_info("serving %s (%llu bytes%s) as '%s'", a->image,
		      (unsigned long long)dev->size,
		      a->read_only ? ", read-only" : "", a->name);
	if (colo_loop_run(loop) < 0)
		colo_log_warn("event loop: %s", strerror(errno));
	else
		rc = 0;
out:
	colo_nbd_server_free(s);
	colo_tls_creds_free(creds);
	colo_file_dev_close(dev);
	colo_loop_free(loop);
	return rc;
}

int colo_blk_cmd_serve(int argc, char **argv)
{
	struct serve_args a = { .name = "" };
	int rc = parse_args(argc, argv, &a);

	if (rc)
		return rc == 1 ? 0 : rc;
	return serve(&a);
}
