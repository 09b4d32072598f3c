/* tls_selfsigned.c - a self-signed certificate and its new key, for tests
 * and for a first STARTTLS before a real certificate is at hand.
 *
 * Used by `postern tls selfsigned` (server/cli/cli_tls.c) and by the
 * unit tests, which make their keys at run time (no key is ever
 * committed). The key is written first, then the certificate, each
 * atomically with fs_write_durable(): on failure either file is the old
 * one or the new one, never half of either, and a new key without its
 * certificate can be left behind only when the second write fails (the
 * message says so by naming the certificate file). The key buffer is
 * cleansed.
 *
 * The certificate: X.509 v3, random 127-bit serial, valid from now for
 * `days`, subject = issuer = CN=cn, subjectAltName DNS:cn (what clients
 * check; the CN alone is ignored by modern ones), basicConstraints
 * CA:FALSE, extendedKeyUsage serverAuth and clientAuth (the tests use
 * the same kind of certificate for clients), signed with SHA-256.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/fs.h"
#include "tls/tls.h"

static int add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* The certificate for key, or NULL (OpenSSL's errors queued). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, unsigned days)
{
	X509 *cert = X509_new();
	BIGNUM *serial = BN_new();
	X509_NAME *name = X509_NAME_new();
	char *san = NULL;
	bool ok = false;

	if (cert == NULL || serial == NULL || name == NULL)
		goto out;
	/* Positive and 127 bits: RFC 5280 allows 20 octets, the top bit
	 * clear keeps it from reading as negative. */
	if (BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) == NULL)
		goto out;
	if (X509_set_version(cert, X509_VERSION_3) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), 0) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, NULL) == NULL)
		goto out;
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
	                               0) != 1 ||
	    X509_set_subject_name(cert, name) != 1 || X509_set_issuer_name(cert, name) != 1 ||
	    X509_set_pubkey(cert, key) != 1)
		goto out;
	size_t san_len = strlen(cn) + 5;
	san = OPENSSL_malloc(san_len);
	if (san == NULL)
		goto out;
	snprintf(san, san_len, "DNS:%s", cn);
	if (add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(cert, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(cert, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
	    add_ext(cert, NID_subject_alt_name, san) < 0)
		goto out;
	if (X509_sign(cert, key, EVP_sha256()) <= 0)
		goto out;
	ok = true;
out:
	OPENSSL_free(san);
	X509_NAME_free(name);
	BN_free(serial);
	if (!ok) {
		X509_free(cert);
		cert = NULL;
	}
	return cert;
}

/* The PEM of key (unencrypted PKCS#8) or cert appended to out. */
static int pem_append(EVP_PKEY *key, X509 *cert, str_t *out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	int ok;

	if (bio == NULL)
		return -1;
	if (key != NULL)
		ok = PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
	else
		ok = PEM_write_bio_X509(bio, cert);
	len = BIO_get_mem_data(bio, &data);
	if (ok == 1 && len > 0)
		str_append_n(out, data, (size_t)len);
	else
		ok = 0;
	/* the memory BIO's buffer held the key: clear it before freeing */
	if (len > 0)
		OPENSSL_cleanse(data, (size_t)len);
	BIO_free(bio);
	return ok == 1 ? 0 : -1;
}

int tls_selfsigned_write(const char *cert_path, const char *key_path, const char *cn, unsigned days,
                         bool ecdsa, str_t *error)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	str_t key_pem, cert_pem;
	int ret = -1;

	str_init(&key_pem);
	str_init(&cert_pem);
	if (cn == NULL || *cn == '\0' || strlen(cn) > 64) {
		/* 64: the upper bound X.520 sets on a CN */
		str_appendf(error, "%s: the common name must be 1 to 64 characters", cert_path);
		goto out;
	}
	if (days == 0) {
		str_appendf(error, "%s: the validity must be at least one day", cert_path);
		goto out;
	}
	key = ecdsa ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
	if (key == NULL) {
		str_appendf(error, "%s: cannot make a new %s key: ", key_path,
		            ecdsa ? "ECDSA P-256" : "RSA 2048");
		tls_errors_append(error);
		goto out;
	}
	if ((cert = make_cert(key, cn, days)) == NULL) {
		str_appendf(error, "%s: cannot make the certificate for \"%s\": ", cert_path, cn);
		tls_errors_append(error);
		goto out;
	}
	if (pem_append(key, NULL, &key_pem) < 0 || pem_append(NULL, cert, &cert_pem) < 0) {
		str_appendf(error, "%s: cannot write PEM: ", cert_path);
		tls_errors_append(error);
		goto out;
	}
	if (fs_write_durable(key_path, key_pem.buf, key_pem.len, 0600, error) < 0 ||
	    fs_write_durable(cert_path, cert_pem.buf, cert_pem.len, 0644, error) < 0)
		goto out;
	ret = 0;
out:
	OPENSSL_cleanse(key_pem.buf, key_pem.cap);
	str_free(&key_pem);
	str_free(&cert_pem);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ret;
}
