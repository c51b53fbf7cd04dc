/*
 * names.h - the printable name of an enum value, from a table indexed by
 * the value, so that a name function is one table and one line instead
 * of a switch per enum (and an unknown value prints "?" rather than
 * reading past the table).
 */
#ifndef COLO_NAMES_H
#define COLO_NAMES_H

#include <stddef.h>

static inline const char *colo_name_in(const char *const *names, size_t n,
				       unsigned int v)
{
	return v < n && names[v] ? names[v] : "?";
}

#define COLO_NAME_OF(table, v)                                             \
	colo_name_in((table), sizeof(table) / sizeof((table)[0]),          \
		     (unsigned int)(v))

#endif
