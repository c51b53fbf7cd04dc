/*
 * cmd_proxy.c - `colo proxy`: the command line of the network proxy.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../commands.h"
#include "log.h"
#include "proxy.h"
#include "parse_num.h"
#include "tls_args.h"

static const char usage[] =
	"Usage:\n"
	"  colo proxy --role primary --client PORT --guest PORT\n"
	"             --link-listen HOST:PORT [--control PATH]\n"
	"             [--compare-timeout MS] [--max-queue N] [options]\n"
	"  colo proxy --role secondary --client PORT --guest PORT\n"
	"             --link-connect HOST:PORT [--control PATH] [options]\n"
	"\n"
	"The COLO network proxy on a host running one replica of a guest.\n"
	"\n"
	"Primary: client ingress for the guest (its MAC, broadcast, "
	"multicast)\n"
	"is mirrored to the secondary over the replication link, then\n"
	"delivered to the primary guest. The primary guest's egress and the\n"
	"secondary guest's egress (from the link) go through the comparer;\n"
	"what it releases leaves on the client interface. A divergence asks\n"
	"for a checkpoint (control event checkpoint-request); the command\n"
	"checkpoint-done releases what is held. Without a secondary (none "
	"yet,\n"
	"or none heard from for the peer timeout) the primary is degraded: it\n"
	"releases everything held and passes traffic straight through until a\n"
	"secondary connects again.\n"
	"\n"
	"Secondary: mirrored ingress from the link is rewritten into the\n"
	"secondary guest's TCP sequence space and injected into the guest;\n"
	"the guest's egress is rewritten into the primary's space and sent\n"
	"over the link to the comparer. The client interface stays silent\n"
	"until failover (control command, or FAILOVER from the primary): then\n"
	"the guest is wired to the client interface through the rewriter and\n"
	"gratuitous ARP / unsolicited neighbour advertisements announce the\n"
	"guest's addresses.\n"
	"\n"
	"PORT (interfaces; frames carry virtio-net headers, GSO up to 64 "
	"KiB):\n"
	"  packet:IFNAME   AF_PACKET on an interface (host end of a veth, or\n"
	"                  the tap device a VM holds); set promiscuous\n"
	"  tap:IFNAME[,mac=MAC]\n"
	"                  a TAP device the proxy owns whose interface is\n"
	"                  a namespace/container guest's NIC (move it\n"
	"                  there; the proxy never brings it up); not for a\n"
	"                  QEMU VM (use packet: on its tap, or qemu:)\n"
	"  qemu:SOCK       QEMU's -netdev socket framing; SOCK is\n"
	"                  tcp-listen:HOST:PORT, tcp:HOST:PORT,\n"
	"                  unix-listen:PATH or unix:PATH\n"
	"\n"
	"Options:\n"
	"  --role primary|secondary\n"
	"  --client PORT           the client-facing interface\n"
	"  --guest PORT            this host's guest\n"
	"  --link-listen HOST:PORT primary: where the secondary connects\n"
	"  --link-connect HOST:PORT secondary: the primary's link address\n"
	"  --control PATH          JSON control socket (see colo ctl):\n"
	"                          status, stats, checkpoint-done, failover,\n"
	"                          lease, quit; events: divergence,\n"
	"                          checkpoint-request, peer-lost, ...\n"
	"  --compare-timeout MS    primary: hold a frame at most this long\n"
	"                          before asking for a checkpoint (3000)\n"
	"  --max-queue N           primary: frames per flow queue (1024)\n"
	"  --ping MS               link liveness ping interval (100)\n"
	"  --peer-timeout MS       peer lost after this long without data "
	"(500)\n"
	"  --tls-creds DIR         run the link in TLS 1.3 with mutual x509\n"
	"                          authentication; DIR holds ca-cert.pem,\n"
	"                          server-cert.pem/-key.pem (primary) and\n"
	"                          client-cert.pem/-key.pem (secondary), as\n"
	"                          QEMU's tls-creds-x509\n"
	"  --tls-peer HOST         the peer host's name in its certificate\n"
	"                          (required with --tls-creds)\n"
	"  --insecure              allow a link off loopback without TLS\n"
	"                          (anyone reaching the port owns the pair)\n"
	"  --lease-required        release nothing to the client before the\n"
	"                          first lease command, nor after its "
	"deadline\n"
	"  --stamps                time every stage of the path (kernel to\n"
	"                          read, read to write, answers, comparer\n"
	"                          hold); histograms under \"stamps\" in\n"
	"                          stats (off: no cost)\n"
	"  --busy-poll US          after work, poll this long without\n"
	"                          sleeping (lower latency, a CPU spinning;\n"
	"                          0: off, the default)\n"
	"  -q, --quiet             log warnings only\n"
	"  -h, --help              this text\n"
	"\n"
	"SIGINT/SIGTERM exit cleanly. Exit status: 0 ok, 1 runtime error,\n"
	"2 usage error. See doc/colo-proxy.1.md.\n";

int colo_cmd_proxy(int argc, char **argv)
{
	enum {
		O_ROLE = 256,
		O_CLIENT,
		O_GUEST,
		O_LL,
		O_LC,
		O_CTL,
		O_CT,
		O_MQ,
		O_PING,
		O_PT,
		O_LEASE,
		O_STAMPS,
		O_BUSY
	};
	static const struct option lopts[] = {
		{ "role", required_argument, NULL, O_ROLE },
		{ "client", required_argument, NULL, O_CLIENT },
		{ "guest", required_argument, NULL, O_GUEST },
		{ "link-listen", required_argument, NULL, O_LL },
		{ "link-connect", required_argument, NULL, O_LC },
		{ "control", required_argument, NULL, O_CTL },
		{ "compare-timeout", required_argument, NULL, O_CT },
		{ "max-queue", required_argument, NULL, O_MQ },
		{ "ping", required_argument, NULL, O_PING },
		{ "peer-timeout", required_argument, NULL, O_PT },
		COLO_TLS_LONG_OPTIONS,
		{ "lease-required", no_argument, NULL, O_LEASE },
		{ "stamps", no_argument, NULL, O_STAMPS },
		{ "busy-poll", required_argument, NULL, O_BUSY },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct colo_proxy_opts o = { .ping_ms = 100, .peer_timeout_ms = 500 };
	const char *role = NULL, *ll = NULL, *lc = NULL;
	uint64_t v;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", lopts, NULL)) != -1) {
		if (colo_tls_arg(c, optarg, &o.tls_creds, &o.tls_peer,
				 &o.insecure))
			continue;
		switch (c) {
		case O_ROLE:
			role = optarg;
			break;
		case O_CLIENT:
			o.client_spec = optarg;
			break;
		case O_GUEST:
			o.guest_spec = optarg;
			break;
		case O_LL:
			ll = optarg;
			break;
		case O_LC:
			lc = optarg;
			break;
		case O_CTL:
			o.control = optarg;
			break;
		case O_CT:
		case O_PING:
		case O_PT:
			if (colo_parse_u64(optarg, 3600000, &v) < 0 || !v) {
				fprintf(stderr,
					"colo proxy: bad milliseconds "
					"'%s'\n",
					optarg);
				return 2;
			}
			if (c == O_CT)
				o.compare_timeout_ms = v;
			else if (c == O_PING)
				o.ping_ms = v;
			else
				o.peer_timeout_ms = v;
			break;
		case O_MQ:
			if (colo_parse_u64(optarg, 1u << 20, &v) < 0 || !v) {
				fprintf(stderr,
					"colo proxy: bad --max-queue "
					"'%s'\n",
					optarg);
				return 2;
			}
			o.max_queue = (uint32_t)v;
			break;
		case O_BUSY:
			if (colo_parse_u64(optarg, 1000000, &v) < 0) {
				fprintf(stderr, "colo proxy: --busy-poll: 0 to "
						"1000000 us\n");
				return 2;
			}
			o.busy_poll_us = (uint32_t)v;
			break;
		case O_STAMPS:
			o.stamps = true;
			break;
		case O_LEASE:
			o.lease_required = true;
			break;
		case 'q':
			colo_log_quiet = true;
			break;
		default:
			return colo_cli_help_or_usage(c, usage);
		}
	}
	if (optind < argc || !role || !o.client_spec || !o.guest_spec) {
		fprintf(stderr,
			"colo proxy: --role, --client and --guest are "
			"required\n%s",
			usage);
		return 2;
	}
	if (colo_tls_args_error(o.tls_creds, o.tls_peer, o.insecure, false)) {
		fprintf(stderr, "colo proxy: %s\n",
			colo_tls_args_error(o.tls_creds, o.tls_peer, o.insecure,
					    false));
		return 2;
	}
	if (strcmp(role, "primary") == 0) {
		if (!ll || lc) {
			fprintf(stderr,
				"colo proxy: the primary needs "
				"--link-listen (and no --link-connect)\n");
			return 2;
		}
		o.link = ll;
		return colo_proxy_primary_run(&o);
	}
	if (strcmp(role, "secondary") == 0) {
		if (!lc || ll) {
			fprintf(stderr,
				"colo proxy: the secondary needs "
				"--link-connect (and no --link-listen)\n");
			return 2;
		}
		if (o.compare_timeout_ms || o.max_queue) {
			fprintf(stderr, "colo proxy: --compare-timeout and "
					"--max-queue are primary options\n");
			return 2;
		}
		o.link = lc;
		return colo_proxy_secondary_run(&o);
	}
	fprintf(stderr, "colo proxy: --role must be primary or secondary\n");
	return 2;
}
