/*
 * digest.c - granule digests for the resync by digest.
 *
 * A granule may be as large as 1 GiB, so it is read and hashed in pieces
 * of at most PIECE bytes through one buffer allocated with the digester:
 * no allocation per granule, and the memory does not follow the
 * granularity.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "repl_link.h"

#define PIECE (1U << 20)

struct colo_digester {
	EVP_MD_CTX *ctx;
	const EVP_MD *md;
	uint8_t *buf; /* PIECE bytes */
};

struct colo_digester *colo_digester_new(void)
{
	struct colo_digester *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->ctx = EVP_MD_CTX_new();
	d->md = EVP_sha256();
	d->buf = malloc(PIECE);
	if (!d->ctx || !d->md || !d->buf) {
		colo_digester_free(d);
		return NULL;
	}
	return d;
}

void colo_digester_free(struct colo_digester *d)
{
	if (!d)
		return;
	EVP_MD_CTX_free(d->ctx);
	free(d->buf);
	free(d);
}

static int digest_granule(struct colo_digester *d, struct colo_blk_dev *dev,
			  uint64_t off, uint32_t len, uint8_t *out)
{
	unsigned int olen = 0;

	if (!EVP_DigestInit_ex(d->ctx, d->md, NULL))
		return -ENOMEM;
	while (len) {
		uint32_t n = len < PIECE ? len : PIECE;
		int r = dev->ops->pread(dev, d->buf, n, off);

		if (r < 0)
			return r;
		if (!EVP_DigestUpdate(d->ctx, d->buf, n))
			return -ENOMEM;
		off += n;
		len -= n;
	}
	if (!EVP_DigestFinal_ex(d->ctx, out, &olen) ||
	    olen != COLO_LINK_DIGEST_LEN)
		return -ENOMEM;
	return 0;
}

int colo_digest_range(struct colo_digester *d, struct colo_blk_dev *dev,
		      uint64_t off, uint32_t len, uint32_t gran, uint8_t *out)
{
	while (len) {
		uint32_t n = len < gran ? len : gran;
		int r = digest_granule(d, dev, off, n, out);

		if (r < 0)
			return r;
		out += COLO_LINK_DIGEST_LEN;
		off += n;
		len -= n;
	}
	return 0;
}

uint32_t colo_digest_next_diff(const uint8_t *a, const uint8_t *b, uint32_t i,
			       uint32_t n)
{
	for (; i < n; i++)
		if (memcmp(a + (size_t)i * COLO_LINK_DIGEST_LEN,
			   b + (size_t)i * COLO_LINK_DIGEST_LEN,
			   COLO_LINK_DIGEST_LEN))
			return i;
	return n;
}
