/*
 * siphash.h - SipHash-2-4, the keyed hash of the flow table, so that
 * crafted traffic cannot pile every flow into one bucket.
 */
#ifndef COLO_SIPHASH_H
#define COLO_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* siphash.c APIs: */
uint64_t colo_siphash(const uint64_t key[2], const void *data, size_t len);
/* A fresh random key. With no entropy yet (early boot) it falls back to
 * addresses (of salt and the stack) and is still unknown to a remote
 * sender. */
void colo_siphash_key(uint64_t key[2], const void *salt);

#endif
