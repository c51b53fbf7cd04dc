/*
 * tls.c - the TLS wrapper every link uses (OpenSSL 3).
 *
 * OpenSSL rather than GnuTLS: on this machine's measurements its AES-GCM
 * is as fast or faster (see doc/security.md). Kernel TLS stays off
 * (no SSL_OP_ENABLE_KTLS): every session gathers its records in memory
 * (colo_tls_gather), and a socket that the kernel also encrypts would
 * send each record encrypted twice.
 *
 * Policy is fixed, not configurable: TLS 1.3 only, both ends present a
 * certificate from the one CA, the peer's certificate must name the
 * expected host (subjectAltName DNS, or CN when it has none), no session
 * tickets or early data (nothing a recorded session could replay).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "tls_gather.h"

#define READ_AHEAD (256 * 1024)

struct colo_tls_creds {
	SSL_CTX *server; /* NULL: no server-cert.pem / server-key.pem */
	SSL_CTX *client; /* NULL: no client-cert.pem / client-key.pem */
};

struct colo_tls {
	SSL *ssl;
	bool done;
	struct colo_tls_gather *gather; /* NULL: records go straight out */
};

static void ssl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	snprintf(err, errlen, "%s: %s", what, buf);
}

static bool file_exists(const char *dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, R_OK) == 0;
}

/* One context per direction, since QEMU's layout gives each its own
 * certificate (with serverAuth resp. clientAuth usage). */
static SSL_CTX *ctx_new(const char *dir, bool server, char *err, size_t errlen)
{
	const char *cert = server ? "server-cert.pem" : "client-cert.pem";
	const char *key = server ? "server-key.pem" : "client-key.pem";
	char ca_path[PATH_MAX], cert_path[PATH_MAX], key_path[PATH_MAX];
	SSL_CTX *ctx =
		SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!ctx) {
		ssl_err(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	snprintf(ca_path, sizeof(ca_path), "%s/ca-cert.pem", dir);
	snprintf(cert_path, sizeof(cert_path), "%s/%s", dir, cert);
	snprintf(key_path, sizeof(key_path), "%s/%s", dir, key);
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION)) {
		ssl_err(err, errlen, "TLS 1.3");
		goto fail;
	}
	if (!SSL_CTX_load_verify_locations(ctx, ca_path, NULL)) {
		ssl_err(err, errlen, ca_path);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		ssl_err(err, errlen, cert_path);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		ssl_err(err, errlen, key_path);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_err(err, errlen, key_path);
		goto fail;
	}
	SSL_CTX_set_verify(
		ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	/* Never kernel TLS, even where OpenSSL enables it by default: the
	 * records are gathered and sent as bytes (colo_tls_gather). */
	SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_KTLS);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_max_early_data(ctx, 0);
	/* The link's output buffer moves (it is compacted and grows), and
	 * a retried write may carry more than the first attempt. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
	/* One recv takes many records (not two per record: header, body).
	 * Bytes read ahead are invisible to epoll: readers drain the
	 * session until it says EAGAIN (colo_tls_read's contract). */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, READ_AHEAD);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct colo_tls_creds *colo_tls_creds_load(const char *dir, char *err,
					   size_t errlen)
{
	struct colo_tls_creds *c;

	if (!file_exists(dir, "ca-cert.pem")) {
		snprintf(err, errlen, "%s/ca-cert.pem: not readable", dir);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (file_exists(dir, "server-cert.pem") &&
	    !(c->server = ctx_new(dir, true, err, errlen)))
		goto fail;
	if (file_exists(dir, "client-cert.pem") &&
	    !(c->client = ctx_new(dir, false, err, errlen)))
		goto fail;
	if (!c->server && !c->client) {
		snprintf(err, errlen,
			 "%s: neither server-cert.pem nor client-cert.pem",
			 dir);
		goto fail;
	}
	return c;
fail:
	colo_tls_creds_free(c);
	return NULL;
}

void colo_tls_creds_free(struct colo_tls_creds *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->server);
	SSL_CTX_free(c->client);
	free(c);
}

bool colo_tls_creds_can(const struct colo_tls_creds *c, bool server)
{
	return server ? c->server != NULL : c->client != NULL;
}

struct colo_tls *colo_tls_new(const struct colo_tls_creds *c, int fd,
			      bool server, const char *peer_host, char *err,
			      size_t errlen)
{
	SSL_CTX *ctx = server ? c->server : c->client;
	struct colo_tls *t;

	if (!ctx) {
		snprintf(err, errlen, "no %s certificate in the credentials",
			 server ? "server" : "client");
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->ssl = SSL_new(ctx);
	if (!t->ssl || !SSL_set_fd(t->ssl, fd)) {
		ssl_err(err, errlen, "SSL_new");
		goto fail;
	}
	/* The host check applies to the client's certificate too: a
	 * listener accepts exactly its pair's host, not any holder of a
	 * certificate from the CA. */
	SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (!peer_host && !server) {
		snprintf(err, errlen, "a TLS client must name the peer host");
		goto fail;
	}
	if (peer_host && !SSL_set1_host(t->ssl, peer_host)) {
		ssl_err(err, errlen, "peer host");
		goto fail;
	}
	if (!server && !SSL_set_tlsext_host_name(t->ssl, peer_host)) {
		ssl_err(err, errlen, "SNI");
		goto fail;
	}
	if (server)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	return t;
fail:
	colo_tls_free(t);
	return NULL;
}

void colo_tls_free(struct colo_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	colo_tls_gather_free(t->gather);
	free(t);
}

int colo_tls_handshake(struct colo_tls *t, uint32_t *want, char *err,
		       size_t errlen)
{
	int r, e;
	long v;

	if (t->done)
		return 1;
	ERR_clear_error();
	r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		t->done = true;
		return 1;
	}
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*want = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
		return 0;
	}
	v = SSL_get_verify_result(t->ssl);
	if (v != X509_V_OK)
		snprintf(err, errlen, "peer certificate: %s",
			 X509_verify_cert_error_string(v));
	else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		snprintf(err, errlen, "TLS handshake: %s",
			 r == 0 || errno == 0 ? "peer closed the connection"
					      : strerror(errno));
	else
		ssl_err(err, errlen, "TLS handshake");
	ERR_clear_error();
	return -1;
}

bool colo_tls_established(const struct colo_tls *t)
{
	return t->done;
}

/* Maps an SSL_read/SSL_write failure onto the errno a socket call
 * would have set. */
static ssize_t io_fail(struct colo_tls *t, int r)
{
	int e = SSL_get_error(t->ssl, r);

	ERR_clear_error();
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			errno = ECONNRESET; /* EOF without close_notify */
		return -1;
	default:
		errno = EPROTO;
		return -1;
	}
}

ssize_t colo_tls_read(struct colo_tls *t, void *buf, size_t len)
{
	size_t n = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_read_ex(t->ssl, buf, len, &n);
	return r == 1 ? (ssize_t)n : io_fail(t, r);
}

ssize_t colo_tls_write(struct colo_tls *t, const void *buf, size_t len)
{
	size_t n = 0, done = 0;
	int r;

	if (len == 0)
		return 0;
	ERR_clear_error();
	errno = 0;
	if (!t->gather) {
		r = SSL_write_ex(t->ssl, buf, len, &n);
		return r == 1 ? (ssize_t)n : io_fail(t, r);
	}
	/* Partial writes return record by record: take all of buf. */
	while (done < len) {
		r = SSL_write_ex(t->ssl, (const uint8_t *)buf + done,
				 len - done, &n);
		if (r != 1)
			return done ? (ssize_t)done : io_fail(t, r);
		done += n;
	}
	return (ssize_t)done;
}

bool colo_tls_ktls_allowed(const struct colo_tls *t)
{
	return (SSL_get_options(t->ssl) & SSL_OP_ENABLE_KTLS) != 0;
}

int colo_tls_gather(struct colo_tls *t)
{
	BIO *b;

	if (t->gather)
		return 0;
#ifdef BIO_get_ktls_send
	/* Gathered records go out through send(): a socket the kernel
	 * encrypts as well would carry them encrypted twice. */
	if (BIO_get_ktls_send(SSL_get_wbio(t->ssl))) {
		errno = EPROTO;
		return -1;
	}
#endif
	t->gather = colo_tls_gather_new(SSL_get_fd(t->ssl), &b);
	if (!t->gather) {
		errno = ENOMEM;
		return -1;
	}
	SSL_set0_wbio(t->ssl, b);
	return 0;
}

int colo_tls_flush(struct colo_tls *t)
{
	return t->gather ? colo_tls_gather_flush(t->gather) : 0;
}

bool colo_tls_unflushed(const struct colo_tls *t)
{
	return colo_tls_unsent(t) > 0;
}

size_t colo_tls_unsent(const struct colo_tls *t)
{
	return t->gather ? colo_tls_gather_unsent(t->gather) : 0;
}

bool colo_tls_pending(const struct colo_tls *t)
{
	return SSL_pending(t->ssl) > 0 || SSL_has_pending(t->ssl);
}
