/*
 * log.h - the daemon's stderr log: one line per event, UTC timestamp
 * first, so divergences can be lined up with guest and hypervisor logs.
 */
#ifndef COLO_LOG_H
#define COLO_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* log.c APIs: */
/* Informational lines (connections, divergences) are dropped when quiet;
 * warnings and errors never are. */
extern bool colo_log_quiet;
/* Names the daemon on every line, e.g. "colo compare" (default "colo"). */
extern const char *colo_log_name;
void colo_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void colo_log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Formats an error message into a caller's buffer (err may be NULL: the
 * caller does not want the text). */
void colo_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
