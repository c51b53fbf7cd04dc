/*
 * ram.h - guest RAM as the frame sees it: the file QEMU's shared memory
 * backend maps (so this process reads and writes the very pages the guest
 * uses, while the VM is stopped), and the cache of the last checkpoint's
 * contents that every change is found against.
 *
 * Why compare against a cache: QEMU 7.2 under TCG gives no dirty log to
 * an outside process and this kernel has no soft-dirty bits, so the only
 * ground truth is the bytes. memcmp against the cache stops at the first
 * differing byte of a changed page and reads each unchanged page twice at
 * memory speed; per-page hashes would read each page once but must hash
 * all of it, and a hash match is not proof.
 *
 * The scan is a pipeline (colo_ram_scan_*): RAM is cut into chunks that
 * the caller and --scan-threads - 1 helper threads claim in turn, and the
 * caller gets each chunk's changed pages as soon as the chunk is done, so
 * it sends them while the rest is still being compared. Claiming chunks
 * (rather than fixed halves) keeps a helper that the scheduler delays
 * from holding up the end of the scan on a busy host.
 *
 * Pages in holes of the RAM file (never written by the guest) are known
 * to be zero without reading them (SEEK_DATA), so the scan reads only
 * the RAM the guest has touched; a guest that has touched all of it pays
 * for all of it.
 *
 * Only the primary uses the cache: the secondary's QEMUs map the file
 * copy-on-write, so its file is the last checkpoint (secondary.c).
 */
#ifndef COLO_VM_RAM_H
#define COLO_VM_RAM_H

#include <stddef.h>
#include <stdint.h>

#define COLO_RAM_PAGE 4096u

struct colo_ram {
	uint64_t size;
	uint8_t *guest; /* the backend file, MAP_SHARED */
	uint8_t *cache; /* the last checkpoint, private */
	int fd;
};

/* ram.c APIs: */
/* Creates (or truncates) path to size bytes and maps it; the cache starts
 * all zero, as does a fresh file. 0, or -1 with a reason in err. */
int colo_ram_open(struct colo_ram *r, const char *path, uint64_t size,
		  char *err, size_t errlen);
void colo_ram_close(struct colo_ram *r);
/* Writes the guest RAM as it is into path (the primary's dump for the
 * tests: its QEMU maps this very file shared, so these are the bytes its
 * guest sees, and unlike QEMU's pmemsave it does not allocate the holes
 * the scan skips). 0, or -1 with the reason in err. */
int colo_ram_dump(const struct colo_ram *r, const char *path, char *err,
		  size_t errlen);
/* Forgets the last checkpoint (the cache reads as zero again): a new
 * secondary starts from a fresh RAM file, so everything must go. */
void colo_ram_forget(struct colo_ram *r);
/* Page numbers where guest differs from cache, into *pages (malloc'd,
 * caller frees); returns the count or -1 (out of memory). threads: how
 * many threads scan (1 = this one). */
long colo_ram_changed(const struct colo_ram *r, unsigned int threads,
		      uint32_t **pages);

struct colo_ram_scan;
/* Starts a pipelined scan (threads - 1 helpers start at once); NULL when
 * out of memory. Until _end only pages already given out may change (the
 * caller updates their cache behind the scan). */
struct colo_ram_scan *colo_ram_scan_start(const struct colo_ram *r,
					  unsigned int threads);
/* Up to max more changed pages (page numbers, in no particular order)
 * into pages; this thread scans while it waits. 0 once all are given. */
uint32_t colo_ram_scan_next(struct colo_ram_scan *s, uint32_t *pages,
			    uint32_t max);
/* Stops the helpers (also mid-scan) and frees the scan. */
void colo_ram_scan_end(struct colo_ram_scan *s);

#endif
