/*
 * demo_creds.h - throwaway TLS credentials for `colo demo`.
 */
#ifndef COLO_DEMO_CREDS_H
#define COLO_DEMO_CREDS_H

#include <stdbool.h>
#include <stddef.h>

/* demo_creds.c APIs: */
/* One CA; for each host dir/HOST/ with ca-cert.pem and the server and
 * client pairs naming HOST. 0, or -1 with a reason in err. */
int colo_demo_make_creds(const char *dir, const char *const *hosts, size_t n,
			 char *err, size_t errlen);
/* Removes what colo_demo_make_creds made (whatever of it exists). */
void colo_demo_remove_creds(const char *dir, const char *const *hosts,
			    size_t n);

#endif
