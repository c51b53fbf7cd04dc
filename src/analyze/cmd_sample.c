/*
 * cmd_sample.c - `colo sample`: write the built-in sample captures, the
 * same frames `colo analyze` without arguments replays.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "pcap_io.h"
#include "sample_traffic.h"

static const char sample_help[] =
	"usage: colo sample [--out-dir DIR]\n"
	"\n"
	"Write the built-in sample traffic as DIR/primary.pcap and\n"
	"DIR/secondary.pcap (DIR defaults to the current directory): the\n"
	"output of a primary and a secondary guest running the same small\n"
	"service - TCP with different segmentation, IPv6, VLAN-tagged UDP,\n"
	"DNS, ICMP echo, ARP, a retransmission, and one HTTP response whose\n"
	"Date header differs. The files are identical on every run;\n"
	"samples/README.md describes them. Existing files are replaced.\n"
	"\n"
	"  -o, --out-dir DIR   directory to write to (must exist)\n"
	"  -h, --help          show this help\n"
	"\n"
	"Exit status: 0 written, 1 a file could not be written, 2 usage.\n";

static int write_one(const char *dir, const char *name,
		     const struct colo_capture *c)
{
	char err[512];
	char *path;
	int rc;

	if (asprintf(&path, "%s/%s", dir, name) < 0) {
		fprintf(stderr, "colo sample: out of memory\n");
		return -1;
	}
	rc = colo_pcap_write(path, c, err, sizeof(err));
	if (rc)
		fprintf(stderr, "colo sample: %s\n", err);
	else
		printf("wrote %s (%zu frames)\n", path, c->n);
	free(path);
	return rc;
}

int colo_cmd_sample(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out-dir", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct colo_capture p, s;
	const char *dir = ".";
	int c, rc = 1;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			dir = optarg;
			break;
		case 'h':
			fputs(sample_help, stdout);
			return 0;
		default:
			fprintf(stderr,
				"colo sample: %s '%s'\n"
				"usage: colo sample [--out-dir DIR]\n",
				c == ':' ? "missing argument for"
					 : "unknown option",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"colo sample: unexpected argument '%s'\n"
			"usage: colo sample [--out-dir DIR]\n",
			argv[optind]);
		return 2;
	}
	colo_capture_init(&p);
	colo_capture_init(&s);
	if (colo_sample_generate(&p, &s))
		fprintf(stderr, "colo sample: out of memory\n");
	else if (!write_one(dir, "primary.pcap", &p) &&
		 !write_one(dir, "secondary.pcap", &s))
		rc = 0;
	colo_capture_free(&p);
	colo_capture_free(&s);
	return rc;
}
