/* tls_server.c - OpenSSL server contexts built from Postfix's smtpd_tls_*
 * parameters, and the SSL of each connection.
 *
 * Used by smtpd (STARTTLS, the smtps wrapper mode) through tls.h; the
 * caller fills struct tls_server_settings from main.cf. tls_server_new()
 * either returns a complete context or fails with one message that names
 * the file or parameter at fault; nothing is half set up.
 *
 * Keys and certificates are read with fs_read_file() (base/fs.h) into
 * memory BIOs, never opened by OpenSSL: a daemon whose master opened the
 * 0600 root key file reads it through the inherited descriptor
 * (fs_inherit.c). Buffers that held key material are cleansed. No
 * message ever quotes key material.
 *
 * What the context does, and why where it differs from OpenSSL's
 * defaults:
 *   - protocols from tls_protocols_parse() as SSL_OP_NO_* plus a
 *     minimum and maximum version (OpenSSL prefers the range; the
 *     options also cover a hole such as "!TLSv1.1");
 *   - the TLS 1.2 cipher list of the grade, exclusions appended as
 *     ":!name" (Postfix tls_set_ciphers()); TLS 1.3 suites stay
 *     OpenSSL's, as in Postfix;
 *   - client certificates are asked for but never fail the handshake:
 *     the verify callback records and accepts, smtpd decides (Postfix
 *     does the same and applies smtpd_tls_req_ccert itself);
 *   - resumption only with RFC 5077 tickets whose keys master shares
 *     (tls_tickets.c); OpenSSL's internal session cache is off, since
 *     each smtpd process would have its own;
 *   - no renegotiation (client-initiated renegotiation is a DoS vector
 *     and SMTP has no use for it), no compression (CRIME).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "tls/tls.h"
#include "tls/tls_int.h"

/* Largest PEM file read (a key and a long chain fit many times). */
#define PEM_MAX_SIZE (1024 * 1024)

struct tls_server {
	SSL_CTX *ctx;
	int loglevel;
	char *digest; /* smtpd_tls_fingerprint_digest */
	char *cipher_list; /* what SSL_CTX_set_cipher_list() got, for loglevel 2 */
};

/* ---- ex_data: the peer of an SSL, the server of a context ---- */

static int peer_index = -1, server_index = -1;
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void peer_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

static void index_init(void)
{
	peer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, peer_free);
	server_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static const struct tls_server *server_of(const SSL *ssl)
{
	if (server_index < 0)
		return NULL;
	return SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), server_index);
}

const char *tls_ssl_peer(const SSL *ssl)
{
	const char *peer = peer_index < 0 ? NULL : SSL_get_ex_data(ssl, peer_index);

	return peer != NULL ? peer : "unknown";
}

int tls_ex_init(str_t *error)
{
	pthread_once(&index_once, index_init);
	if (peer_index < 0 || server_index < 0) {
		str_append(error, "cannot allocate OpenSSL ex_data indexes");
		return -1;
	}
	return 0;
}

int tls_ssl_set_peer(SSL *ssl, const char *peer)
{
	char *copy = xstrdup(peer != NULL ? peer : "unknown");

	if (SSL_set_ex_data(ssl, peer_index, copy) != 1) {
		free(copy);
		return -1;
	}
	return 0;
}

const char *tls_ssl_fingerprint_digest(const SSL *ssl)
{
	const struct tls_server *srv = server_of(ssl);

	return srv != NULL && srv->digest != NULL ? srv->digest : "sha256";
}

/* ---- PEM files ------------------------------------------------------- */

/* The objects of one PEM file in file order: each either a key or a
 * certificate. */
struct pem_obj {
	EVP_PKEY *key;
	X509 *cert;
};

struct pem_file {
	struct pem_obj *v;
	size_t n;
};

static void pem_file_free(struct pem_file *pf)
{
	for (size_t i = 0; i < pf->n; i++) {
		EVP_PKEY_free(pf->v[i].key);
		X509_free(pf->v[i].cert);
	}
	free(pf->v);
	pf->v = NULL;
	pf->n = 0;
}

static bool name_is(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n >= s && strcmp(name + n - s, suffix) == 0;
}

/* Read every certificate and private key of path. -1 with a message
 * naming path on a read error, bad PEM, an encrypted key, or a file
 * without anything in it. */
static int pem_file_read(const char *path, struct pem_file *pf, str_t *error)
{
	str_t data;
	BIO *bio;
	int ret = -1;

	memset(pf, 0, sizeof(*pf));
	str_init(&data);
	if (fs_read_file(path, PEM_MAX_SIZE, &data, error) < 0)
		goto out;
	bio = BIO_new_mem_buf(data.buf, (int)data.len);
	if (bio == NULL) {
		str_appendf(error, "%s: out of memory", path);
		goto out;
	}
	ERR_clear_error();
	for (;;) {
		char *name = NULL, *header = NULL;
		unsigned char *der = NULL;
		long len = 0;
		const unsigned char *p;
		struct pem_obj obj = {NULL, NULL};
		bool bad = false, encrypted = false;

		if (PEM_read_bio(bio, &name, &header, &der, &len) != 1) {
			unsigned long e = ERR_peek_last_error();

			if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
				ERR_clear_error();
				ret = 0;
			} else {
				str_appendf(error, "%s: bad PEM data: ", path);
				tls_errors_append(error);
			}
			break;
		}
		p = der;
		if (strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "X509 CERTIFICATE") == 0) {
			obj.cert = d2i_X509(NULL, &p, len);
			bad = obj.cert == NULL;
		} else if (strcmp(name, "TRUSTED CERTIFICATE") == 0) {
			obj.cert = d2i_X509_AUX(NULL, &p, len);
			bad = obj.cert == NULL;
		} else if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0 ||
		           (name_is(name, "PRIVATE KEY") && strstr(header, "ENCRYPTED") != NULL)) {
			encrypted = true;
		} else if (name_is(name, "PRIVATE KEY")) {
			obj.key = d2i_AutoPrivateKey(NULL, &p, len);
			bad = obj.key == NULL;
		}
		/* anything else (EC PARAMETERS, DH PARAMETERS) is skipped */
		if (bad) {
			str_appendf(error, "%s: cannot decode a PEM \"%s\" block: ", path, name);
			tls_errors_append(error);
		} else if (encrypted) {
			str_appendf(error,
			            "%s: the private key is encrypted (a daemon cannot ask "
			            "for its passphrase); store it without one, mode 0600",
			            path);
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_clear_free(der, (size_t)len);
		if (bad || encrypted)
			break;
		if (obj.key != NULL || obj.cert != NULL) {
			pf->v = xreallocarray(pf->v, pf->n + 1, sizeof(*pf->v));
			pf->v[pf->n++] = obj;
		}
	}
	BIO_free(bio);
	if (ret == 0 && pf->n == 0) {
		str_appendf(error, "%s: no certificate or private key in PEM format", path);
		ret = -1;
	}
out:
	OPENSSL_cleanse(data.buf, data.cap);
	str_free(&data);
	if (ret < 0)
		pem_file_free(pf);
	return ret;
}

/* Install key with leaf certificate cert and its chain (leaf excluded).
 * The files name where each came from, for the mismatch message. */
static int install_pair(SSL_CTX *ctx, EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain,
                        const char *key_file, const char *cert_file, str_t *error)
{
	if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1) {
		if (strcmp(key_file, cert_file) == 0)
			str_appendf(error,
			            "%s: the private key does not match the certificate that "
			            "follows it",
			            key_file);
		else
			str_appendf(error,
			            "the private key in %s does not match the certificate in %s",
			            key_file, cert_file);
		ERR_clear_error();
		return -1;
	}
	if (SSL_CTX_use_cert_and_key(ctx, cert, key, chain, 1) != 1) {
		str_appendf(error, "%s: cannot use this certificate and key: ", cert_file);
		tls_errors_append(error);
		return -1;
	}
	return 0;
}

/* smtpd_tls_chain_files: each file holds one or more groups of a
 * private key followed by its certificate chain, leaf first. */
static int load_chain_file(SSL_CTX *ctx, const char *path, str_t *error)
{
	struct pem_file pf;
	int ret = 0;

	if (pem_file_read(path, &pf, error) < 0)
		return -1;
	for (size_t i = 0; i < pf.n && ret == 0;) {
		if (pf.v[i].key == NULL || i + 1 >= pf.n || pf.v[i + 1].cert == NULL) {
			str_appendf(error,
			            "%s: expected a private key followed by its certificate "
			            "chain, leaf first (smtpd_tls_chain_files)",
			            path);
			ret = -1;
			break;
		}
		EVP_PKEY *key = pf.v[i].key;
		X509 *leaf = pf.v[i + 1].cert;
		STACK_OF(X509) *chain = sk_X509_new_null();
		size_t j = i + 2;

		for (; j < pf.n && pf.v[j].cert != NULL; j++)
			(void)sk_X509_push(chain, pf.v[j].cert);
		ret = install_pair(ctx, key, leaf, chain, path, path, error);
		sk_X509_free(chain); /* the certificates stay in pf */
		i = j;
	}
	pem_file_free(&pf);
	return ret;
}

/* smtpd_tls_cert_file / key_file (or eccert / eckey): the certificate
 * file holds the leaf then its chain; the key file (which may be the
 * same file) holds the key. */
int tls_ctx_load_cert_key(SSL_CTX *ctx, const char *cert_file, const char *key_file, str_t *error)
{
	struct pem_file certs, keys;
	EVP_PKEY *key = NULL;
	X509 *leaf = NULL;
	STACK_OF(X509) * chain;
	int ret;

	if (key_file == NULL || *key_file == '\0')
		key_file = cert_file;
	if (pem_file_read(cert_file, &certs, error) < 0)
		return -1;
	if (pem_file_read(key_file, &keys, error) < 0) {
		pem_file_free(&certs);
		return -1;
	}
	chain = sk_X509_new_null();
	for (size_t i = 0; i < certs.n; i++) {
		if (certs.v[i].cert == NULL)
			continue;
		if (leaf == NULL)
			leaf = certs.v[i].cert;
		else
			(void)sk_X509_push(chain, certs.v[i].cert);
	}
	for (size_t i = 0; i < keys.n && key == NULL; i++)
		key = keys.v[i].key;
	if (leaf == NULL) {
		str_appendf(error, "%s: no certificate in PEM format", cert_file);
		ret = -1;
	} else if (key == NULL) {
		str_appendf(error, "%s: no private key in PEM format", key_file);
		ret = -1;
	} else {
		ret = install_pair(ctx, key, leaf, chain, key_file, cert_file, error);
	}
	sk_X509_free(chain);
	pem_file_free(&certs);
	pem_file_free(&keys);
	return ret;
}

static int load_certificates(SSL_CTX *ctx, const struct tls_server_settings *set, str_t *error)
{
	if (set->chain_files != NULL && set->chain_files->n > 0) {
		for (size_t i = 0; i < set->chain_files->n; i++)
			if (load_chain_file(ctx, set->chain_files->v[i], error) < 0)
				return -1;
		return 0;
	}
	bool rsa = set->cert_file != NULL && *set->cert_file != '\0';
	bool ec = set->eccert_file != NULL && *set->eccert_file != '\0';
	if (!rsa && !ec) {
		str_append(error, "no server certificate: set smtpd_tls_chain_files, or "
		                  "smtpd_tls_cert_file and smtpd_tls_key_file");
		return -1;
	}
	if (rsa && tls_ctx_load_cert_key(ctx, set->cert_file, set->key_file, error) < 0)
		return -1;
	if (ec && tls_ctx_load_cert_key(ctx, set->eccert_file, set->eckey_file, error) < 0)
		return -1;
	return 0;
}

/* ca_file: the trust anchors for client certificates, and (when asking
 * for one) the CA names sent to the client. */
static int load_ca_file(SSL_CTX *ctx, const char *path, bool send_names, str_t *error)
{
	struct pem_file pf;
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
	int ret = 0;

	if (pem_file_read(path, &pf, error) < 0) {
		sk_X509_NAME_free(names);
		return -1;
	}
	for (size_t i = 0; i < pf.n && ret == 0; i++) {
		if (pf.v[i].cert == NULL)
			continue;
		if (X509_STORE_add_cert(store, pf.v[i].cert) != 1) {
			str_appendf(error, "%s: cannot add a CA certificate: ", path);
			tls_errors_append(error);
			ret = -1;
			break;
		}
		X509_NAME *name = X509_NAME_dup(X509_get_subject_name(pf.v[i].cert));
		if (name != NULL)
			(void)sk_X509_NAME_push(names, name);
	}
	if (ret == 0 && sk_X509_NAME_num(names) == 0) {
		str_appendf(error, "%s: no CA certificate in PEM format", path);
		ret = -1;
	}
	if (ret == 0 && send_names) {
		SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
		names = NULL;
	}
	sk_X509_NAME_pop_free(names, X509_NAME_free);
	pem_file_free(&pf);
	return ret;
}

int tls_ctx_load_cas(SSL_CTX *ctx, const char *ca_file, const char *ca_path, bool send_names,
                     str_t *error)
{
	if (ca_file != NULL && *ca_file != '\0' &&
	    load_ca_file(ctx, ca_file, send_names, error) < 0)
		return -1;
	if (ca_path != NULL && *ca_path != '\0' && SSL_CTX_load_verify_dir(ctx, ca_path) != 1) {
		str_appendf(error, "%s: cannot use as a CA directory: ", ca_path);
		tls_errors_append(error);
		return -1;
	}
	return 0;
}

/* ---- protocols, ciphers, groups ------------------------------------- */

int tls_ctx_set_protocols(SSL_CTX *ctx, const char *param, const char *value, str_t *error)
{
	static const struct {
		unsigned bit;
		uint64_t option;
		int version;
	} map[] = {
	        {TLS_PROTO_SSLv3, SSL_OP_NO_SSLv3, SSL3_VERSION},
	        {TLS_PROTO_TLSv1, SSL_OP_NO_TLSv1, TLS1_VERSION},
	        {TLS_PROTO_TLSv1_1, SSL_OP_NO_TLSv1_1, TLS1_1_VERSION},
	        {TLS_PROTO_TLSv1_2, SSL_OP_NO_TLSv1_2, TLS1_2_VERSION},
	        {TLS_PROTO_TLSv1_3, SSL_OP_NO_TLSv1_3, TLS1_3_VERSION},
	};
	unsigned disabled;
	uint64_t options = 0;
	int min = 0, max = 0;

	if (tls_protocols_parse(param, value, &disabled, error) < 0)
		return -1;
	/* SSLv2 is gone from OpenSSL 3; SSLv3 is refused by a minimum of
	 * TLSv1 whenever it is disabled (the option alone is deprecated). */
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (disabled & map[i].bit) {
			options |= map[i].option;
		} else {
			if (min == 0)
				min = map[i].version;
			max = map[i].version;
		}
	}
	SSL_CTX_set_options(ctx, options);
	if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, max) != 1) {
		str_appendf(error, "%s = %s: OpenSSL refuses the protocol range: ", param, value);
		tls_errors_append(error);
		return -1;
	}
	return 0;
}

/* The cipher list: the grade's list plus ":!name" per exclusion
 * (Postfix tls_set_ciphers()). */
int tls_ctx_set_ciphers(SSL_CTX *ctx, const struct tls_cipher_spec *spec, char **list_r,
                        str_t *error)
{
	const char *param = spec->param;
	const char *grade = spec->grade != NULL && *spec->grade != '\0' ? spec->grade : "medium";
	const char *base;
	str_t list;
	int ret = -1;

	/* Why low and export mean medium: Postfix 3.6 and later treat
	 * them so (the ciphers they named are gone from OpenSSL), and
	 * configurations that still say "low" must keep working. */
	if (strcmp(grade, "high") == 0)
		base = spec->grades->high;
	else if (strcmp(grade, "medium") == 0 || strcmp(grade, "low") == 0 ||
	         strcmp(grade, "export") == 0)
		base = spec->grades->medium;
	else if (strcmp(grade, "null") == 0)
		base = spec->grades->null;
	else {
		str_appendf(error,
		            "%s: unknown cipher grade \"%s\" (expected high, medium, low, "
		            "export or null)",
		            param, grade);
		return -1;
	}
	if (base == NULL || *base == '\0') {
		str_appendf(error, "%s = %s: the cipher list of grade %s is empty", param, grade,
		            grade);
		return -1;
	}
	str_init(&list);
	str_append(&list, base);
	const char *p = spec->exclude != NULL ? spec->exclude : "";
	bool have_anull = false;
	for (;;) {
		static const char seps[] = ", \t\r\n:";

		p += strspn(p, seps);
		if (*p == '\0')
			break;
		size_t len = strcspn(p, seps);
		if (strchr("!+-@", *p) != NULL) {
			str_appendf(error,
			            "invalid cipher exclusion \"%.*s\": no '!', '+', '-' or "
			            "'@' in front (%s)",
			            (int)len, p, spec->exclude_param);
			goto out;
		}
		if (len == 5 && strncmp(p, "aNULL", 5) == 0)
			have_anull = true;
		str_appendf(&list, ":!%.*s", (int)len, p);
		p += len;
	}
	if (spec->no_anull && !have_anull)
		str_append(&list, ":!aNULL");
	if (spec->no_kecdhe)
		str_append(&list, ":!kECDHE");
	ERR_clear_error();
	if (SSL_CTX_set_cipher_list(ctx, str_c(&list)) != 1) {
		str_appendf(error, "%s = %s: OpenSSL refuses the cipher list \"%s\": ", param,
		            grade, str_c(&list));
		tls_errors_append(error);
		goto out;
	}
	*list_r = str_steal(&list);
	ret = 0;
out:
	str_free(&list);
	return ret;
}

/* ECDHE groups (tls_eecdh_auto_curves, tls_eecdh_strong_curve, ...). */
static int set_groups(SSL_CTX *ctx, const struct tls_server_settings *set, str_t *error)
{
	const char *grade =
	        set->eecdh_grade != NULL && *set->eecdh_grade != '\0' ? set->eecdh_grade : "auto";
	const char *curve;

	if (strcmp(grade, "none") == 0)
		return 0; /* ciphers exclude kECDHE; TLS 1.3 keeps OpenSSL's groups */
	if (strcmp(grade, "strong") == 0)
		curve = set->strong_curve;
	else if (strcmp(grade, "ultra") == 0)
		curve = set->ultra_curve;
	else if (strcmp(grade, "auto") == 0)
		curve = NULL;
	else {
		str_appendf(error,
		            "smtpd_tls_eecdh_grade: unknown grade \"%s\" (expected auto, "
		            "strong, ultra or none)",
		            grade);
		return -1;
	}
	if (curve != NULL) {
		if (*curve == '\0' || SSL_CTX_set1_groups_list(ctx, curve) != 1) {
			str_appendf(error, "smtpd_tls_eecdh_grade = %s: unknown curve \"%s\"",
			            grade, curve);
			ERR_clear_error();
			return -1;
		}
		return 0;
	}

	/* auto: the names of auto_curves that this OpenSSL knows, in their
	 * order; each is tried alone first, so one unknown name does not
	 * throw away the whole list (Postfix does the same). */
	const char *p = set->auto_curves != NULL ? set->auto_curves : "";
	str_t known;

	str_init(&known);
	for (;;) {
		static const char seps[] = ", \t\r\n:";

		p += strspn(p, seps);
		if (*p == '\0')
			break;
		size_t len = strcspn(p, seps);
		char *name = xstrndup(p, len);

		if (SSL_CTX_set1_groups_list(ctx, name) == 1) {
			if (known.len > 0)
				str_append_c(&known, ':');
			str_append(&known, name);
		}
		free(name);
		p += len;
	}
	ERR_clear_error();
	int ret = 0;
	if (known.len == 0) {
		/* Postfix warns and keeps OpenSSL's default groups. */
		if (set->auto_curves != NULL && *set->auto_curves != '\0')
			log_warning("none of the curves in tls_eecdh_auto_curves (%s) is known to "
			            "OpenSSL; using OpenSSL's default groups",
			            set->auto_curves);
		/* No call above succeeded: OpenSSL's default is still in place. */
	} else if (SSL_CTX_set1_groups_list(ctx, str_c(&known)) != 1) {
		str_appendf(error,
		            "tls_eecdh_auto_curves: OpenSSL refuses \"%s\": ", str_c(&known));
		tls_errors_append(error);
		ret = -1;
	}
	ERR_clear_error();
	str_free(&known);
	return ret;
}

/* ---- callbacks -------------------------------------------------------- */

void tls_verify_log(const SSL *ssl, X509_STORE_CTX *store_ctx, int ok)
{
	X509 *cert = X509_STORE_CTX_get_current_cert(store_ctx);
	char *subject =
	        cert != NULL ? X509_NAME_oneline(X509_get_subject_name(cert), NULL, 0) : NULL;

	log_info("%s: depth=%d verify=%d subject=%s", tls_ssl_peer(ssl),
	         X509_STORE_CTX_get_error_depth(store_ctx), ok, subject != NULL ? subject : "");
	OPENSSL_free(subject);
}

/* Accept every client certificate; OpenSSL keeps the verification
 * result in the session (SSL_get_verify_result), which is what
 * tls_info_get() reports. Logs each certificate at loglevel >= 2 as
 * Postfix: "PEER: depth=1 verify=1 subject=/CN=Test CA". */
static int verify_cb(int ok, X509_STORE_CTX *store_ctx)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	const struct tls_server *srv = ssl != NULL ? server_of(ssl) : NULL;

	if (srv != NULL && srv->loglevel >= 2)
		tls_verify_log(ssl, store_ctx, ok);
	return 1;
}

/* Handshake progress at loglevel >= 2, in Postfix's words
 * (tls_info_callback()): "SSL_accept:SSLv3/TLS read client hello". */
void tls_info_cb(const SSL *ssl, int where, int ret)
{
	const char *role = (where & SSL_ST_CONNECT)  ? "SSL_connect"
	                   : (where & SSL_ST_ACCEPT) ? "SSL_accept"
	                                             : "undefined";

	if (where & SSL_CB_LOOP) {
		log_info("%s:%s", role, SSL_state_string_long(ssl));
	} else if (where & SSL_CB_ALERT) {
		if ((ret & 0xff) != SSL3_AD_CLOSE_NOTIFY)
			log_info("SSL3 alert %s:%s:%s", (where & SSL_CB_READ) ? "read" : "write",
			         SSL_alert_type_string_long(ret), SSL_alert_desc_string_long(ret));
	} else if (where & SSL_CB_EXIT) {
		if (ret == 0) {
			log_info("%s:failed in %s", role, SSL_state_string_long(ssl));
		} else if (ret < 0) {
			int e = SSL_get_error(ssl, ret);

			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				log_info("%s:error in %s", role, SSL_state_string_long(ssl));
		}
	}
}

/* ---- the context -------------------------------------------------------- */

/* The session id context: resumption only among contexts with the same
 * client certificate policy (a session made where no certificate was
 * asked for must not resume where one is required). */
static int set_session_id_context(SSL_CTX *ctx, const struct tls_server_settings *set, str_t *error)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	str_t text;
	int ret = 0;

	str_init(&text);
	str_appendf(&text, "postern smtpd ask=%d req=%d ca_file=%s ca_path=%s", set->ask_ccert,
	            set->req_ccert, set->ca_file != NULL ? set->ca_file : "",
	            set->ca_path != NULL ? set->ca_path : "");
	if (EVP_Digest(text.buf, text.len, md, &md_len, EVP_sha256(), NULL) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, md,
	                                   md_len > SSL_MAX_SID_CTX_LENGTH ? SSL_MAX_SID_CTX_LENGTH
	                                                                   : md_len) != 1) {
		str_append(error, "cannot set the TLS session id context: ");
		tls_errors_append(error);
		ret = -1;
	}
	str_free(&text);
	return ret;
}

static int configure(struct tls_server *srv, const struct tls_server_settings *set, str_t *error)
{
	SSL_CTX *ctx = srv->ctx;
	uint64_t options = SSL_OP_ALL | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;

	if (set->preempt_ciphers)
		options |= SSL_OP_CIPHER_SERVER_PREFERENCE;
	SSL_CTX_set_options(ctx, options);
	struct tls_cipher_spec spec = {
	        .param = set->grade_param != NULL ? set->grade_param : "smtpd_tls_ciphers",
	        .grade = set->grade,
	        .grades = &set->grades,
	        .exclude = set->exclude_ciphers,
	        .exclude_param = "smtpd_tls_exclude_ciphers",
	        /* An anonymous cipher cannot carry a client certificate:
	         * asking for one excludes them, as Postfix's smtpd does. */
	        .no_anull = set->ask_ccert || set->req_ccert,
	        /* eecdh_grade none: no ECDHE key exchange below TLS 1.3 */
	        .no_kecdhe = set->eecdh_grade != NULL && strcmp(set->eecdh_grade, "none") == 0,
	};
	if (tls_ctx_set_protocols(ctx,
	                          set->protocols_param != NULL ? set->protocols_param
	                                                       : "smtpd_tls_protocols",
	                          set->protocols, error) < 0 ||
	    tls_ctx_set_ciphers(ctx, &spec, &srv->cipher_list, error) < 0 ||
	    set_groups(ctx, set, error) < 0)
		return -1;
	/* DHE with OpenSSL's built-in groups sized to the certificate, as
	 * Postfix 3.7 does without smtpd_tls_dh1024_param_file. */
	(void)SSL_CTX_set_dh_auto(ctx, 1);
	if (load_certificates(ctx, set, error) < 0)
		return -1;

	bool ask = set->ask_ccert || set->req_ccert;
	if (tls_ctx_load_cas(ctx, set->ca_file, set->ca_path, ask, error) < 0)
		return -1;
	if (ask) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, verify_cb);
		if (set->verify_depth > 0)
			SSL_CTX_set_verify_depth(ctx, set->verify_depth);
	}
	if (set_session_id_context(ctx, set, error) < 0)
		return -1;

	/* Sessions: tickets only, never OpenSSL's per-process cache. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (set->session_timeout == 0) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		/* TLS 1.3 with SSL_OP_NO_TICKET would issue stateful tickets
		 * for a cache that is off: issue none. */
		(void)SSL_CTX_set_num_tickets(ctx, 0);
	} else {
		SSL_CTX_set_timeout(ctx, (long)set->session_timeout);
		if (tls_tickets_attach(ctx, set->ticket_key_file, error) < 0)
			return -1;
	}
	if (set->loglevel >= 2)
		SSL_CTX_set_info_callback(ctx, tls_info_cb);
	return 0;
}

int tls_server_new(const struct tls_server_settings *set, struct tls_server **srv_r, str_t *error)
{
	struct tls_server *srv;

	if (tls_ex_init(error) < 0)
		return -1;
	srv = xcalloc(1, sizeof(*srv));
	srv->loglevel = set->loglevel;
	srv->digest = xstrdup(set->fingerprint_digest != NULL && *set->fingerprint_digest != '\0'
	                              ? set->fingerprint_digest
	                              : "sha256");
	if (EVP_get_digestbyname(srv->digest) == NULL) {
		str_appendf(error, "smtpd_tls_fingerprint_digest: unknown digest \"%s\"",
		            srv->digest);
		tls_server_free(&srv);
		return -1;
	}
	ERR_clear_error();
	srv->ctx = SSL_CTX_new(TLS_server_method());
	if (srv->ctx == NULL || SSL_CTX_set_ex_data(srv->ctx, server_index, srv) != 1) {
		str_append(error, "cannot create a TLS server context: ");
		tls_errors_append(error);
		tls_server_free(&srv);
		return -1;
	}
	if (configure(srv, set, error) < 0) {
		tls_server_free(&srv);
		return -1;
	}
	*srv_r = srv;
	return 0;
}

void tls_server_free(struct tls_server **srvp)
{
	struct tls_server *srv = *srvp;

	if (srv == NULL)
		return;
	/* SSLs still alive hold a reference to ctx and keep it; their
	 * lookups of the server then find nothing, not freed memory. */
	if (srv->ctx != NULL) {
		(void)SSL_CTX_set_ex_data(srv->ctx, server_index, NULL);
		SSL_CTX_free(srv->ctx);
	}
	free(srv->digest);
	free(srv->cipher_list);
	free(srv);
	*srvp = NULL;
}

SSL *tls_server_ssl_new(struct tls_server *srv, const char *peer)
{
	SSL *ssl = SSL_new(srv->ctx);

	if (ssl == NULL)
		return NULL;
	if (tls_ssl_set_peer(ssl, peer) < 0) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	if (srv->loglevel >= 2) {
		log_info("setting up TLS connection from %s", tls_ssl_peer(ssl));
		log_info("%s: TLS cipher list \"%s\"", tls_ssl_peer(ssl), srv->cipher_list);
	}
	return ssl;
}
