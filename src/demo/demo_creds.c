/*
 * demo_creds.c - throwaway TLS credentials for `colo demo`.
 *
 * The demo's proxies run their link in TLS like a real pair, so the demo
 * makes a one-day CA and, per host, the server and client certificates
 * of QEMU's tls-creds-x509 layout, with the OpenSSL API (no openssl
 * binary needed). Files are created 0600 with O_EXCL | O_NOFOLLOW inside
 * the demo's private mkdtemp directory.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "demo_creds.h"

static FILE *create(const char *dir, const char *name)
{
	char path[512];
	int fd, n;

	/* A path that does not fit is refused, never cut short. */
	n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	return fd < 0 ? NULL : fdopen(fd, "w");
}

static int write_pem(const char *dir, const char *name, X509 *cert,
		     EVP_PKEY *key)
{
	FILE *f = create(dir, name);
	int ok;

	if (!f)
		return -1;
	ok = cert ? PEM_write_X509(f, cert)
		  : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!e)
		return -1;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

/* A certificate for key named cn, signed by ca_key (self-signed when
 * issuer is NULL), valid one day. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
		       EVP_PKEY *ca_key, const char *usage, const char *host)
{
	X509 *x = X509_new();
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char san[300];
	int ok;

	if (!x || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
	     X509_set_version(x, 2) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -60) &&
	     X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
	     X509_set_pubkey(x, key) &&
	     X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
					MBSTRING_ASC, (const unsigned char *)cn,
					-1, -1, 0) &&
	     X509_set_issuer_name(x,
				  X509_get_subject_name(issuer ? issuer : x));
	BN_free(bn);
	if (!ok)
		goto fail;
	if (!issuer) {
		if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") ||
		    add_ext(x, x, NID_key_usage,
			    "critical,keyCertSign,cRLSign"))
			goto fail;
	} else {
		snprintf(san, sizeof(san), "DNS:%s", host);
		if (add_ext(x, issuer, NID_basic_constraints, "CA:FALSE") ||
		    add_ext(x, issuer, NID_ext_key_usage, usage) ||
		    add_ext(x, issuer, NID_subject_alt_name, san))
			goto fail;
	}
	if (!X509_sign(x, ca_key, EVP_sha256()))
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

/* One kind (server or client) of a host's pair, into out. */
static int host_pair(const char *out, const char *host, const char *kind,
		     X509 *ca, EVP_PKEY *ca_key)
{
	bool server = strcmp(kind, "server") == 0;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = key ? make_cert(key, host, ca, ca_key,
				  server ? "serverAuth" : "clientAuth", host)
		      : NULL;
	char name[32];
	int r = -1;

	if (x) {
		snprintf(name, sizeof(name), "%s-cert.pem", kind);
		r = write_pem(out, name, x, NULL);
		snprintf(name, sizeof(name), "%s-key.pem", kind);
		if (r == 0)
			r = write_pem(out, name, NULL, key);
	}
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}

int colo_demo_make_creds(const char *dir, const char *const *hosts, size_t n,
			 char *err, size_t errlen)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	X509 *ca = ca_key ? make_cert(ca_key, "colo demo CA", NULL, ca_key,
				      NULL, NULL)
			  : NULL;
	int r = -1;

	if (!ca) {
		snprintf(err, errlen, "making the demo CA failed");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char out[512];

		snprintf(out, sizeof(out), "%s/%s", dir, hosts[i]);
		if (mkdir(out, 0700) < 0 ||
		    write_pem(out, "ca-cert.pem", ca, NULL) < 0 ||
		    host_pair(out, hosts[i], "server", ca, ca_key) < 0 ||
		    host_pair(out, hosts[i], "client", ca, ca_key) < 0) {
			snprintf(err, errlen, "%s: %s", out,
				 errno ? strerror(errno) : "OpenSSL error");
			goto out;
		}
	}
	r = 0;
out:
	ERR_clear_error();
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return r;
}

void colo_demo_remove_creds(const char *dir, const char *const *hosts, size_t n)
{
	static const char *const files[] = { "ca-cert.pem", "server-cert.pem",
					     "server-key.pem",
					     "client-cert.pem",
					     "client-key.pem" };

	for (size_t i = 0; i < n; i++) {
		char p[512];

		for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
			snprintf(p, sizeof(p), "%s/%s/%s", dir, hosts[i],
				 files[f]);
			unlink(p);
		}
		snprintf(p, sizeof(p), "%s/%s", dir, hosts[i]);
		rmdir(p);
	}
}
