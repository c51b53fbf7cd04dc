/*
 * pcap_io.c - libpcap glue for the analyzer and the sample writer.
 *
 * Files are opened with stdio and handed to libpcap so that an open
 * failure reports errno in our own words. Output is the classic
 * microsecond pcap format, which every tool reads; the sample traffic
 * uses whole microseconds, so writing it loses nothing.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcap_io.h"
#include "log.h"

#define COLO_PCAP_SNAPLEN 262144

struct colo_pcap_writer {
	pcap_t *dead;
	pcap_dumper_t *dumper;
	char *path;
	int failed;
};

static int read_frames(pcap_t *p, const char *path, struct colo_capture *c,
		       char *err, size_t errlen)
{
	struct pcap_pkthdr *h;
	const u_char *data;
	int rc;

	while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
		uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000000ull +
			      (uint64_t)h->ts.tv_usec;

		if (h->ts.tv_sec < 0) {
			colo_set_err(err, errlen,
				"%s: frame %zu has a negative timestamp", path,
				c->n + 1);
			return -1;
		}
		if (colo_capture_add(c, ts, data, h->caplen, h->len)) {
			colo_set_err(err, errlen, "%s: out of memory at frame %zu",
				path, c->n + 1);
			return -1;
		}
	}
	if (rc == PCAP_ERROR_BREAK)
		return 0;
	colo_set_err(err, errlen, "%s: after frame %zu: %s", path, c->n,
		pcap_geterr(p));
	return -1;
}

int colo_pcap_read(const char *path, struct colo_capture *c, char *err,
		   size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	FILE *f;
	pcap_t *p;
	int dlt, rc;

	f = fopen(path, "rb");
	if (!f) {
		colo_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* The timestamps come back in nanoseconds (tv_usec holds ns) whatever
	 * the file's own resolution. */
	p = pcap_fopen_offline_with_tstamp_precision(
		f, PCAP_TSTAMP_PRECISION_NANO, ebuf);
	if (!p) {
		fclose(f);
		colo_set_err(err, errlen, "%s: not a readable capture: %s", path,
			ebuf[0] ? ebuf : "unknown error");
		return -1;
	}
	dlt = pcap_datalink(p);
	if (dlt != DLT_EN10MB) {
		const char *name = pcap_datalink_val_to_name(dlt);

		colo_set_err(err, errlen,
			"%s: link type %s (%d) is not supported; "
			"need Ethernet (EN10MB)",
			path, name ? name : "unknown", dlt);
		pcap_close(p);
		return -1;
	}
	rc = read_frames(p, path, c, err, errlen);
	pcap_close(p); /* closes f */
	return rc;
}

struct colo_pcap_writer *colo_pcap_writer_open(const char *path, char *err,
					       size_t errlen)
{
	struct colo_pcap_writer *w;
	FILE *f;

	w = calloc(1, sizeof(*w));
	if (w)
		w->path = strdup(path);
	if (!w || !w->path) {
		colo_set_err(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	w->dead = pcap_open_dead_with_tstamp_precision(
		DLT_EN10MB, COLO_PCAP_SNAPLEN, PCAP_TSTAMP_PRECISION_MICRO);
	if (!w->dead) {
		colo_set_err(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	f = fopen(path, "wb");
	if (!f) {
		colo_set_err(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	w->dumper = pcap_dump_fopen(w->dead, f);
	if (!w->dumper) {
		colo_set_err(err, errlen, "%s: %s", path, pcap_geterr(w->dead));
		fclose(f);
		goto fail;
	}
	return w;
fail:
	if (w) {
		if (w->dead)
			pcap_close(w->dead);
		free(w->path);
		free(w);
	}
	return NULL;
}

void colo_pcap_writer_add(struct colo_pcap_writer *w,
			  const struct colo_frame *f)
{
	struct pcap_pkthdr h;

	memset(&h, 0, sizeof(h));
	h.ts.tv_sec = (time_t)(f->ts_ns / 1000000000ull);
	h.ts.tv_usec = (suseconds_t)(f->ts_ns % 1000000000ull / 1000);
	h.caplen = f->len;
	h.len = f->wire_len > f->len ? f->wire_len : f->len;
	pcap_dump((u_char *)w->dumper, &h, f->data);
	if (ferror(pcap_dump_file(w->dumper)))
		w->failed = errno ? errno : EIO;
}

int colo_pcap_writer_close(struct colo_pcap_writer *w, char *err,
			   size_t errlen)
{
	int rc = 0;

	if (!w)
		return 0;
	if (pcap_dump_flush(w->dumper) || ferror(pcap_dump_file(w->dumper))) {
		if (!w->failed)
			w->failed = errno ? errno : EIO;
	}
	if (w->failed) {
		colo_set_err(err, errlen, "%s: write failed: %s", w->path,
			strerror(w->failed));
		rc = -1;
	}
	pcap_dump_close(w->dumper);
	pcap_close(w->dead);
	free(w->path);
	free(w);
	return rc;
}

int colo_pcap_write(const char *path, const struct colo_capture *c, char *err,
		    size_t errlen)
{
	struct colo_pcap_writer *w;

	w = colo_pcap_writer_open(path, err, errlen);
	if (!w)
		return -1;
	for (size_t i = 0; i < c->n; i++)
		colo_pcap_writer_add(w, &c->frames[i]);
	return colo_pcap_writer_close(w, err, errlen);
}
