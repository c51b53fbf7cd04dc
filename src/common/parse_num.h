/*
 * parse_num.h - strict parsing of numeric command-line arguments, shared
 * by every subcommand so that "10x", "-1", " 5" and overflow are refused
 * the same way everywhere; and the help/usage end of an option switch.
 */
#ifndef COLO_PARSE_NUM_H
#define COLO_PARSE_NUM_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Decimal digits only (no sign, space or suffix), at most max.
 * Returns 0, or -1 leaving *out untouched. */
static inline int colo_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Like colo_parse_u64, with an optional K or M (binary) suffix. */
static inline int colo_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end == 'K' || *end == 'k')
		shift = 10, end++;
	else if (*end == 'M' || *end == 'm')
		shift = 20, end++;
	if (*end || v > (max >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

/* The last case of a command's getopt switch: -h/--help prints the usage
 * on stdout and the command succeeds (0); any other option the command
 * does not know prints it on stderr and fails (2). */
static inline int colo_cli_help_or_usage(int c, const char *usage)
{
	fputs(usage, c == 'h' ? stdout : stderr);
	return c == 'h' ? 0 : 2;
}

#endif
