/* test_tls_client.c - unit tests for lib/tls's client side: real
 * handshakes between tls_client_ssl_new() and tls_server_ssl_new() over
 * a BIO pair. A self-signed server is "Untrusted"; a server signed by a
 * test CA given as ca_file is "Verified" when the name matches and
 * "Trusted" when it does not; SNI reaches the server; a protocol range
 * the server cannot meet fails the handshake; the client log line is
 * Postfix's, word for word.
 *
 * Every certificate and key is made at run time (tls_selfsigned_write()
 * and, for the CA-signed one, the OpenSSL API) in a temporary
 * directory: no key is committed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/mem.h"
#include "base/str.h"
#include "tls/tls.h"
#include "tls_test.h"

#define PEER "mx.example.test[192.0.2.1]:25"

static char dir[64];
static char *self_cert, *self_key, *ca_cert, *ca_key, *mx_cert, *mx_key;

static char *path_in_dir(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static EVP_PKEY *read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *key;

	assert_non_null(f);
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(key);
	return key;
}

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static void add_ext(X509 *issuer, X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for cn with a new RSA key: with ca, a server
 * certificate (cn also its DNS subjectAltName) signed by the CA in
 * ca_cert/ca_key; without, that self-signed CA. (tls_selfsigned_write()
 * makes CA:FALSE certificates, which cannot sign.) */
static void make_cert(const char *cert_path, const char *key_path, const char *cn, bool ca_signed)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	EVP_PKEY *cakey = ca_signed ? read_key(ca_key) : key;
	X509 *x = X509_new(), *ca = ca_signed ? read_cert(ca_cert) : x;
	X509_NAME *name = X509_NAME_new();
	char *san = xasprintf("DNS:%s", cn);
	FILE *f;

	assert_non_null(key);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), ca_signed ? 2 : 1), 1);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                            (const unsigned char *)cn, -1, -1, 0),
	                 1);
	assert_int_equal(X509_set_subject_name(x, name), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(ca)), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	if (ca_signed) {
		add_ext(ca, x, NID_subject_alt_name, san);
		add_ext(ca, x, NID_ext_key_usage, "serverAuth");
	} else {
		add_ext(ca, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(ca, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	}
	assert_true(X509_sign(x, cakey, EVP_sha256()) > 0);
	f = fopen(cert_path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	f = fopen(key_path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	free(san);
	X509_NAME_free(name);
	if (ca_signed) {
		X509_free(ca);
		EVP_PKEY_free(cakey);
	}
	X509_free(x);
	EVP_PKEY_free(key);
}

static int group_setup(void **state)
{
	str_t error;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/postern-test-tlsc-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	self_cert = path_in_dir("self-cert.pem");
	self_key = path_in_dir("self-key.pem");
	ca_cert = path_in_dir("ca-cert.pem");
	ca_key = path_in_dir("ca-key.pem");
	mx_cert = path_in_dir("mx-cert.pem");
	mx_key = path_in_dir("mx-key.pem");
	str_init(&error);
	if (tls_selfsigned_write(self_cert, self_key, "mx.example.test", 30, false, &error) < 0) {
		fprintf(stderr, "tls_selfsigned_write: %s\n", str_c(&error));
		str_free(&error);
		return -1;
	}
	str_free(&error);
	make_cert(ca_cert, ca_key, "Test CA", false);
	make_cert(mx_cert, mx_key, "mx.example.test", true);
	return 0;
}

static int group_teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);

	(void)state;
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(cmd);
	free(self_cert);
	free(self_key);
	free(ca_cert);
	free(ca_key);
	free(mx_cert);
	free(mx_key);
	return 0;
}

/* smtp's defaults (Postfix 3.7), trusting ca_file (may be NULL). */
static void client_settings(struct tls_client_settings *set, const char *ca_file)
{
	memset(set, 0, sizeof(*set));
	set->protocols = "!SSLv2, !SSLv3";
	set->protocols_param = "smtp_tls_protocols";
	set->grade = "medium";
	set->grade_param = "smtp_tls_ciphers";
	tls_test_grades(&set->grades);
	set->exclude_ciphers = "";
	set->ca_file = ca_file;
	set->loglevel = 1;
}

static struct tls_client *client_ok(const struct tls_client_settings *set)
{
	struct tls_client *cli = NULL;
	str_t error;

	str_init(&error);
	if (tls_client_new(set, &cli, &error) < 0)
		fail_msg("tls_client_new: %s", str_c(&error));
	str_free(&error);
	return cli;
}

/* One connection from cli to a server with cert/key. 0 when both
 * handshakes completed; *client_r / *server_r get the SSLs (free them). */
static int connect_to(struct tls_client *cli, const struct tls_server_settings *sset,
                      const char *sni, const char *verify_name, SSL **client_r, SSL **server_r)
{
	struct tls_server *srv = tls_test_server_ok(sset);

	*client_r = tls_client_ssl_new(cli, PEER, sni, verify_name);
	*server_r = tls_server_ssl_new(srv, "localhost[127.0.0.1]");
	assert_non_null(*client_r);
	assert_non_null(*server_r);
	tls_server_free(&srv); /* the SSL keeps its context */
	return tls_test_pump(*client_r, *server_r);
}

/* (a) a self-signed server and no CA: the handshake completes, the
 * server is "Untrusted". */
static void test_self_signed_untrusted(void **state)
{
	struct tls_client_settings cset;
	struct tls_server_settings sset;
	struct tls_client *cli;
	SSL *client, *server;
	struct tls_info info;
	str_t line;

	(void)state;
	str_init(&line);
	client_settings(&cset, NULL);
	cli = client_ok(&cset);
	tls_test_server_settings(&sset, self_cert, self_key, NULL);
	assert_int_equal(connect_to(cli, &sset, NULL, "mx.example.test", &client, &server), 0);
	tls_info_get(client, &info);
	assert_true(info.peer_cert);
	assert_false(info.peer_verified);
	assert_string_not_equal(info.verify_error, "");
	assert_true(info.peer_name_checked);
	assert_true(info.peer_name_matched); /* the name is right, the chain is not */
	assert_string_equal(info.peer_cn, "mx.example.test");
	tls_info_client_log_line(&info, PEER, &line);
	assert_true(strncmp(str_c(&line), "Untrusted TLS connection established to ", 40) == 0);
	SSL_free(client);
	SSL_free(server);
	tls_client_free(&cli);
	assert_null(cli);
	tls_client_free(&cli); /* no-op on NULL */
	str_free(&line);
}

/* (b) signed by the CA in ca_file, name matching: "Verified"; (f) the
 * whole line, word for word. */
static void test_ca_verified(void **state)
{
	struct tls_client_settings cset;
	struct tls_server_settings sset;
	struct tls_client *cli;
	SSL *client, *server;
	struct tls_info info;
	str_t line;

	(void)state;
	str_init(&line);
	client_settings(&cset, ca_cert);
	cli = client_ok(&cset);
	tls_test_server_settings(&sset, mx_cert, mx_key, NULL);
	assert_int_equal(
	        connect_to(cli, &sset, "mx.example.test", "mx.example.test", &client, &server), 0);
	tls_info_get(client, &info);
	assert_true(info.peer_cert);
	assert_string_equal(info.verify_error, "");
	assert_true(info.peer_verified);
	assert_true(info.peer_name_checked);
	assert_true(info.peer_name_matched);
	assert_string_equal(info.issuer_cn, "Test CA");
	/* the server's signature is the peer's on a client SSL */
	assert_string_equal(info.server_sig, "RSA-PSS");
	assert_int_equal(info.server_sig_bits, 2048);
	assert_string_equal(info.server_digest, "SHA256");
	assert_string_equal(info.client_sig, "");
	tls_info_client_log_line(&info, PEER, &line);
	/* Postfix's tls_log_summary() for the smtp client */
	assert_string_equal(str_c(&line),
	                    "Verified TLS connection established to mx.example.test[192.0.2.1]:25: "
	                    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
	                    "key-exchange X25519 server-signature RSA-PSS (2048 bits) "
	                    "server-digest SHA256");
	/* the server's side of the same connection is unchanged */
	tls_info_get(server, &info);
	assert_false(info.peer_cert);
	assert_string_equal(info.server_sig, "RSA-PSS");
	assert_string_equal(info.server_digest, "SHA256");
	SSL_free(client);
	SSL_free(server);
	tls_client_free(&cli);
	str_free(&line);
}

/* (c) same CA, another name: "Trusted", the name did not match; no
 * name to check at all: "Trusted" too. Partial wildcards never match. */
static void test_ca_name_mismatch(void **state)
{
	struct tls_client_settings cset;
	struct tls_server_settings sset;
	struct tls_client *cli;
	SSL *client, *server;
	struct tls_info info;
	str_t line;

	(void)state;
	str_init(&line);
	client_settings(&cset, ca_cert);
	cli = client_ok(&cset);
	tls_test_server_settings(&sset, mx_cert, mx_key, NULL);
	assert_int_equal(connect_to(cli, &sset, NULL, "other.example.test", &client, &server), 0);
	tls_info_get(client, &info);
	assert_true(info.peer_verified);
	assert_true(info.peer_name_checked);
	assert_false(info.peer_name_matched);
	tls_info_client_log_line(&info, PEER, &line);
	assert_true(strncmp(str_c(&line), "Trusted TLS connection established to " PEER ": ",
	                    strlen("Trusted TLS connection established to " PEER ": ")) == 0);
	SSL_free(client);
	SSL_free(server);

	assert_int_equal(connect_to(cli, &sset, NULL, NULL, &client, &server), 0);
	tls_info_get(client, &info);
	assert_true(info.peer_verified);
	assert_false(info.peer_name_checked);
	assert_false(info.peer_name_matched);
	str_reset(&line);
	tls_info_client_log_line(&info, PEER, &line);
	assert_true(strncmp(str_c(&line), "Trusted TLS", 11) == 0);
	SSL_free(client);
	SSL_free(server);

	assert_int_equal(connect_to(cli, &sset, NULL, "mx*.example.test", &client, &server), 0);
	tls_info_get(client, &info);
	assert_false(info.peer_name_matched);
	SSL_free(client);
	SSL_free(server);
	tls_client_free(&cli);
	str_free(&line);
}

/* (d) SNI reaches the server; none is sent when sni is NULL. */
static void test_sni(void **state)
{
	struct tls_client_settings cset;
	struct tls_server_settings sset;
	struct tls_client *cli;
	SSL *client, *server;

	(void)state;
	client_settings(&cset, ca_cert);
	cli = client_ok(&cset);
	tls_test_server_settings(&sset, mx_cert, mx_key, NULL);
	assert_int_equal(connect_to(cli, &sset, "mx.example.test", NULL, &client, &server), 0);
	assert_non_null(SSL_get_servername(server, TLSEXT_NAMETYPE_host_name));
	assert_string_equal(SSL_get_servername(server, TLSEXT_NAMETYPE_host_name),
	                    "mx.example.test");
	SSL_free(client);
	SSL_free(server);
	assert_int_equal(connect_to(cli, &sset, NULL, NULL, &client, &server), 0);
	assert_null(SSL_get_servername(server, TLSEXT_NAMETYPE_host_name));
	SSL_free(client);
	SSL_free(server);
	tls_client_free(&cli);
}

/* (e) client ">=TLSv1.3" against server "<=TLSv1.2": no handshake. */
static void test_protocol_refused(void **state)
{
	struct tls_client_settings cset;
	struct tls_server_settings sset;
	struct tls_client *cli;
	SSL *client, *server;
	str_t errors;

	(void)state;
	str_init(&errors);
	client_settings(&cset, NULL);
	cset.protocols = ">=TLSv1.3";
	cli = client_ok(&cset);
	tls_test_server_settings(&sset, self_cert, self_key, NULL);
	sset.protocols = "<=TLSv1.2";
	ERR_clear_error();
	assert_int_equal(connect_to(cli, &sset, NULL, NULL, &client, &server), -1);
	tls_errors_append(&errors);
	assert_non_null(strstr(str_c(&errors), "SSL routines"));
	SSL_free(client);
	SSL_free(server);
	tls_client_free(&cli);
	str_free(&errors);
}

/* Settings errors name the parameter or file. */
static void test_settings_errors(void **state)
{
	struct tls_client_settings cset;
	struct tls_client *cli = NULL;
	char *missing = path_in_dir("no-such-ca.pem");
	str_t error;

	(void)state;
	str_init(&error);
	client_settings(&cset, NULL);
	cset.protocols = "TLSv9";
	assert_int_equal(tls_client_new(&cset, &cli, &error), -1);
	assert_null(cli);
	assert_non_null(strstr(str_c(&error), "smtp_tls_protocols"));
	str_reset(&error);
	client_settings(&cset, NULL);
	cset.grade = "bogus";
	assert_int_equal(tls_client_new(&cset, &cli, &error), -1);
	assert_non_null(strstr(str_c(&error), "smtp_tls_ciphers"));
	str_reset(&error);
	client_settings(&cset, missing);
	assert_int_equal(tls_client_new(&cset, &cli, &error), -1);
	assert_non_null(strstr(str_c(&error), missing));
	str_reset(&error);
	/* a client certificate: cert and key files, loaded like the server's */
	client_settings(&cset, ca_cert);
	cset.cert_file = self_cert;
	cset.key_file = self_key;
	cli = client_ok(&cset);
	tls_client_free(&cli);
	cset.key_file = ca_key;
	assert_int_equal(tls_client_new(&cset, &cli, &error), -1);
	assert_non_null(strstr(str_c(&error), "does not match"));
	free(missing);
	str_free(&error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_self_signed_untrusted),
	        cmocka_unit_test(test_ca_verified),
	        cmocka_unit_test(test_ca_name_mismatch),
	        cmocka_unit_test(test_sni),
	        cmocka_unit_test(test_protocol_refused),
	        cmocka_unit_test(test_settings_errors),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
