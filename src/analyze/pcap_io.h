/*
 * pcap_io.h - read and write Ethernet captures with libpcap.
 *
 * The rest of the analyzer never sees a pcap_t: captures come in as a
 * struct colo_capture and go out through a small writer. Every failure is
 * turned into a one-line message for the user, never a crash.
 */
#ifndef COLO_PCAP_IO_H
#define COLO_PCAP_IO_H

#include <stddef.h>
#include <stdint.h>

#include "capture.h"

struct colo_pcap_writer;

/* pcap_io.c APIs: */
/* Appends every frame of the pcap or pcapng file at path to c, with
 * nanosecond timestamps. Only Ethernet (DLT_EN10MB) captures are
 * accepted. Returns 0, or -1 with a message in err; frames read before a
 * failure stay in c. */
int colo_pcap_read(const char *path, struct colo_capture *c, char *err,
		   size_t errlen);
/* A classic pcap file (microsecond timestamps, Ethernet). */
struct colo_pcap_writer *colo_pcap_writer_open(const char *path, char *err,
					       size_t errlen);
void colo_pcap_writer_add(struct colo_pcap_writer *w,
			  const struct colo_frame *f);
/* Flushes and closes; returns -1 with a message if any write failed. */
int colo_pcap_writer_close(struct colo_pcap_writer *w, char *err,
			   size_t errlen);
/* Writes the whole capture to path. */
int colo_pcap_write(const char *path, const struct colo_capture *c, char *err,
		    size_t errlen);

#endif
