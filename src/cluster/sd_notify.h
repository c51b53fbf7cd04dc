/*
 * sd_notify.h - systemd's readiness protocol (Type=notify) without
 * libsystemd: one datagram to $NOTIFY_SOCKET. Without that variable (not
 * under systemd) it does nothing.
 */
#ifndef COLO_CLUSTER_SD_NOTIFY_H
#define COLO_CLUSTER_SD_NOTIFY_H

/* sd_notify.c APIs: */
/* Sends state ("READY=1", "STATUS=...", "STOPPING=1"). */
void colo_sd_notify(const char *state);

#endif
