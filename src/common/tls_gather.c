/*
 * tls_gather.c - an OpenSSL output BIO that gathers a session's records in
 * memory, so that a frame of many records leaves in one send().
 *
 * Why: OpenSSL writes each TLS record (16 KiB at most) with its own
 * write() on a socket BIO. Over loopback or a fast link the per-write
 * cost of the TCP stack (a segment pushed, the softirq that receives it)
 * then outweighs the encryption: measured on the blk link, SSL_write's
 * write() calls took twice the CPU of the AES-GCM itself for 64 KiB
 * frames. The buffer is allocated once and grows only for a frame larger
 * than any before (no allocation per frame in steady state).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>

#include "tls_gather.h"

#define GATHER_INITIAL (128 * 1024)

struct colo_tls_gather {
	int fd;
	uint8_t *buf;
	size_t cap, head, tail; /* unsent bytes are buf[head..tail) */
};

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

/* Appends a record; only fails when memory runs out. */
static int gather_write(BIO *b, const char *data, int len)
{
	struct colo_tls_gather *g = BIO_get_data(b);
	size_t need;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (g->head == g->tail)
		g->head = g->tail = 0;
	need = g->tail + (size_t)len;
	if (need > g->cap && g->head) {
		memmove(g->buf, g->buf + g->head, g->tail - g->head);
		g->tail -= g->head;
		g->head = 0;
		need = g->tail + (size_t)len;
	}
	if (need > g->cap) {
		size_t cap = g->cap * 2 > need ? g->cap * 2 : need;
		uint8_t *nb = realloc(g->buf, cap);

		if (!nb)
			return -1;
		g->buf = nb;
		g->cap = cap;
	}
	memcpy(g->buf + g->tail, data, (size_t)len);
	g->tail += (size_t)len;
	return len;
}

/* OpenSSL flushes after handshake flights; sending is the owner's call. */
static long gather_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "colo gather");

	if (m && BIO_meth_set_write(m, gather_write) &&
	    BIO_meth_set_ctrl(m, gather_ctrl))
		method = m;
	else
		BIO_meth_free(m);
}

struct colo_tls_gather *colo_tls_gather_new(int fd, BIO **bio)
{
	struct colo_tls_gather *g;
	BIO *b;

	pthread_once(&method_once, method_init);
	if (!method)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->fd = fd;
	g->buf = malloc(GATHER_INITIAL);
	b = g->buf ? BIO_new(method) : NULL;
	if (!b) {
		free(g->buf);
		free(g);
		return NULL;
	}
	g->cap = GATHER_INITIAL;
	BIO_set_data(b, g);
	BIO_set_init(b, 1);
	*bio = b;
	return g;
}

void colo_tls_gather_free(struct colo_tls_gather *g)
{
	if (!g)
		return;
	free(g->buf);
	free(g);
}

size_t colo_tls_gather_unsent(const struct colo_tls_gather *g)
{
	return g->tail - g->head;
}

int colo_tls_gather_flush(struct colo_tls_gather *g)
{
	while (g->head < g->tail) {
		ssize_t n = send(g->fd, g->buf + g->head, g->tail - g->head,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		g->head += (size_t)n;
	}
	g->head = g->tail = 0;
	return 0;
}
