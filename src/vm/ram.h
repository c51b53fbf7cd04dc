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
 * all of it, and a hash match is not proof. The scan is split across
 * threads (--scan-threads).
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
/* Forgets the last checkpoint (the cache reads as zero again): a new
 * secondary starts from a fresh RAM file, so everything must go. */
void colo_ram_forget(struct colo_ram *r);
/* Page numbers where guest differs from cache, ascending, into *pages
 * (malloc'd, caller frees); returns the count or -1 (out of memory).
 * threads: how many threads scan (1 = this one). */
long colo_ram_changed(const struct colo_ram *r, unsigned int threads,
		      uint32_t **pages);

#endif
