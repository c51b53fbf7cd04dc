/*
 * cmd_switchover.c - `colo switchover PAIR.conf`: a planned move of the
 * primary role to the secondary, for maintenance of the primary's host.
 *
 *   colo switchover [--host NAME] [--timeout S] PAIR.conf
 *
 * It asks this host's supervisor (RUN_DIR/NAME-up.sock); on either host
 * the primary does the work (up.c). It then waits until this host's
 * supervisor sees the other host primary, because the operator's next
 * step (stopping the old primary's host) is safe only then.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "commands.h"
#include "control.h"
#include "pair_config.h"
#include "up.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: colo switchover [--host NAME] [--timeout S] PAIR.conf\n"
		"\n"
		"Moves the primary role of a protected pair to its secondary "
		"without loss;\nthe old primary joins as secondary. Run on "
		"either host.\n"
		"  --host NAME   this host's [host NAME] (default: found by "
		"address)\n"
		"  --timeout S   wait at most S seconds for the new primary "
		"(default 30)\n");
}

/* The name of the primary in this host's state file ("" if none). */
static void primary_now(const char *state, char *out, size_t len)
{
	struct json_object *o = json_object_from_file(state), *v;

	out[0] = '\0';
	if (o && json_object_object_get_ex(o, "primary", &v))
		snprintf(out, len, "%s", json_object_get_string(v));
	json_object_put(o);
}

int colo_cmd_switchover(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = NULL;
	long timeout_s = 30;
	struct colo_pair_config cfg;
	char err[COLO_PAIR_ERR_MAX], sock[512], state[512],
		from[64] = "", to[64] = "", now[64];
	struct json_object *r = NULL, *v;
	char *reply, *end;
	uint64_t t0, deadline;
	int c, self;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'H') {
			host = optarg;
		} else if (c == 't') {
			timeout_s = strtol(optarg, &end, 10);
			if (*end || timeout_s < 1 || timeout_s > 3600) {
				fprintf(stderr, "colo switchover: --timeout: "
						"1 to 3600 seconds\n");
				return 2;
			}
		} else {
			usage(c == 'h' ? stdout : stderr);
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	self = colo_pair_open("colo switchover", argv[optind], host, &cfg);
	if (self < 0)
		return 1;
	colo_up_socket_path(&cfg, self, sock, sizeof(sock));
	colo_up_state_path(&cfg, self, state, sizeof(state));
	t0 = colo_now_ns();
	reply = colo_control_request(sock, "{\"cmd\":\"switchover\"}", 5000,
				     err, sizeof(err));
	if (!reply) {
		fprintf(stderr,
			"colo switchover: %s: %s (is colo up running?)\n", sock,
			err);
		return 1;
	}
	r = json_tokener_parse(reply);
	free(reply);
	if (!r || !json_object_object_get_ex(r, "ok", &v) ||
	    !json_object_get_boolean(v)) {
		fprintf(stderr, "colo switchover: refused: %s\n",
			r && json_object_object_get_ex(r, "error", &v)
				? json_object_get_string(v)
				: "bad reply");
		json_object_put(r);
		return 1;
	}
	if (json_object_object_get_ex(r, "from", &v))
		snprintf(from, sizeof(from), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(r, "to", &v))
		snprintf(to, sizeof(to), "%s", json_object_get_string(v));
	json_object_put(r);
	printf("switch-over from %s to %s started\n", from, to);
	fflush(stdout);
	deadline = t0 + (uint64_t)timeout_s * 1000 * COLO_NS_PER_MS;
	for (;;) {
		primary_now(state, now, sizeof(now));
		if (!strcmp(now, to))
			break;
		if (colo_now_ns() > deadline) {
			fprintf(stderr,
				"colo switchover: %s is not primary after %ld "
				"s (primary now: %s); see colo status and the "
				"logs of colo up\n",
				to, timeout_s, now[0] ? now : "none");
			return 1;
		}
		nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}
	printf("%s is primary (%llu ms); %s joins as secondary\n", to,
	       (unsigned long long)((colo_now_ns() - t0) / COLO_NS_PER_MS),
	       from);
	return 0;
}
