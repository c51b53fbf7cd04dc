/*
 * tls_args.h - the three options every command with a network link takes
 * (--tls-creds DIR, --tls-peer HOST, --insecure), parsed and checked in
 * one place so that they mean and refuse the same everywhere.
 */
#ifndef COLO_TLS_ARGS_H
#define COLO_TLS_ARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

/* getopt_long ids, above any command's own (those start at 256). */
enum { COLO_OPT_TLS_CREDS = 0x7400, COLO_OPT_TLS_PEER, COLO_OPT_INSECURE };

/* The entries for a command's struct option table. */
/* clang-format off */
#define COLO_TLS_LONG_OPTIONS \
	{ "tls-creds", required_argument, NULL, COLO_OPT_TLS_CREDS }, \
	{ "tls-peer", required_argument, NULL, COLO_OPT_TLS_PEER }, \
	{ "insecure", no_argument, NULL, COLO_OPT_INSECURE }
/* clang-format on */

/* Records getopt's c if it is one of the three; false otherwise. */
static inline bool colo_tls_arg(int c, const char *arg, const char **dir,
				const char **peer, bool *insecure)
{
	switch (c) {
	case COLO_OPT_TLS_CREDS:
		*dir = arg;
		return true;
	case COLO_OPT_TLS_PEER:
		*peer = arg;
		return true;
	case COLO_OPT_INSECURE:
		*insecure = true;
		return true;
	default:
		return false;
	}
}

/* NULL when they go together as they must: credentials with the peer's
 * name (unless peer_optional: then any certificate of the CA), and
 * neither with --insecure; else what is wrong. */
static inline const char *colo_tls_args_error(const char *dir, const char *peer,
					      bool insecure, bool peer_optional)
{
	if ((!peer_optional && !dir != !peer) || (peer && !dir) ||
	    (dir && insecure))
		return peer_optional
			       ? "--tls-peer needs --tls-creds, and "
				 "--insecure goes without them"
			       : "--tls-creds and --tls-peer go together, "
				 "and not with --insecure";
	return NULL;
}

#endif
