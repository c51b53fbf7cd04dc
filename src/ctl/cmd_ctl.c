/*
 * cmd_ctl.c - `colo ctl`: one request to any colo daemon's JSON control
 * socket (proxy, blk, ...), or a stream of its events, through the common
 * client (src/common/control_client.c).
 */
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../commands.h"
#include "control.h"
#include "parse_num.h"

static const char usage[] =
	"Usage:\n"
	"  colo ctl [--timeout MS] SOCKET COMMAND [JSON-ARGS]\n"
	"  colo ctl SOCKET events [COUNT]\n"
	"\n"
	"Sends {\"cmd\": COMMAND, ...JSON-ARGS} as one line to the control\n"
	"socket of a colo daemon (colo proxy --control, colo blk) and prints\n"
	"the one-line JSON reply. JSON-ARGS, if given, is a JSON object whose\n"
	"fields are added to the request. `help` lists a daemon's commands.\n"
	"\n"
	"`events` subscribes to the daemon's events and prints each as one\n"
	"JSON line until the daemon exits (or COUNT events were printed).\n"
	"\n"
	"The proxy's commands: status, stats, checkpoint-done, failover, "
	"quit.\n"
	"Its events: divergence, checkpoint-request, peer-lost,\n"
	"peer-connected, failover, checkpoint-done.\n"
	"\n"
	"Exit status: 0 the reply says ok, 1 it does not or the socket "
	"failed,\n"
	"2 usage error. See doc/colo-ctl.1.md.\n";

/* Prints each event line; stops after count of them (0: never). */
static bool print_event(void *opaque, const char *line, size_t len)
{
	long *left = opaque;

	fwrite(line, 1, len, stdout);
	fflush(stdout);
	return *left <= 0 || --*left > 0;
}

static int events(const char *path, long count, unsigned int timeout_ms)
{
	char err[512];

	if (colo_control_subscribe(path, timeout_ms, print_event, &count, err,
				   sizeof(err)) < 0) {
		fprintf(stderr, "colo ctl: %s\n", err);
		return 1;
	}
	return 0;
}

int colo_cmd_ctl(int argc, char **argv)
{
	struct json_object *req, *args = NULL;
	unsigned long timeout_ms = 5000;
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			uint64_t v;

			if (colo_parse_u64(argv[i + 1], 3600000, &v) < 0 ||
			    !v) {
				fprintf(stderr,
					"colo ctl: --timeout: '%s' is "
					"not a number of ms\n",
					argv[i + 1]);
				return 2;
			}
			timeout_ms = (unsigned long)v;
			i += 2;
			continue;
		}
		fputs(usage, stderr);
		return 2;
	}
	if (argc - i < 2 || argc - i > 3) {
		fputs(usage, stderr);
		return 2;
	}
	if (strcmp(argv[i + 1], "events") == 0)
		return events(argv[i], argc - i == 3 ? atol(argv[i + 2]) : 0,
			      (unsigned int)timeout_ms);
	if (argc - i == 3) {
		args = json_tokener_parse(argv[i + 2]);
		if (!args || !json_object_is_type(args, json_type_object)) {
			fprintf(stderr, "colo ctl: JSON-ARGS must be a JSON "
					"object\n");
			json_object_put(args);
			return 2;
		}
	}
	req = args ? args : json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(argv[i + 1]));
	return colo_control_call(argv[i], req, (unsigned int)timeout_ms,
				 "colo ctl");
}
