/*
 * cmd_ctl.c - `colo ctl`: one request to a colo daemon's JSON control
 * socket (proxy or blk), or a stream of its events.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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

static int events(const char *path, long count)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static const char req[] = "{\"cmd\":\"events\"}\n";
	char buf[65536];
	size_t len = 0;
	bool first = true;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "colo ctl: %s: path too long\n", path);
		return 1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0) {
		fprintf(stderr, "colo ctl: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	for (;;) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		while ((nl = memchr(buf, '\n', len))) {
			size_t k = (size_t)(nl - buf) + 1;

			if (first) { /* the subscription's own reply */
				first = false;
				if (!memmem(buf, k, "\"ok\":true", 9)) {
					fprintf(stderr, "colo ctl: %.*s",
						(int)k, buf);
					close(fd);
					return 1;
				}
			} else {
				fwrite(buf, 1, k, stdout);
				fflush(stdout);
				if (count > 0 && --count == 0) {
					close(fd);
					return 0;
				}
			}
			memmove(buf, buf + k, len - k);
			len -= k;
		}
		if (len == sizeof(buf))
			len = 0; /* an absurd line: skip it */
	}
	close(fd);
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
		return events(argv[i], argc - i == 3 ? atol(argv[i + 2]) : 0);
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
