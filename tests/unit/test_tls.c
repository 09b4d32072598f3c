/* test_tls.c - unit tests for lib/tls: protocol lists in both Postfix
 * syntaxes, cipher grade and curve errors, chain files against
 * cert/key files (and the key mismatch message naming both files), real
 * handshakes between an OpenSSL client and tls_server_ssl_new() over a
 * BIO pair (tls_info fields, the log line and Received comment in
 * Postfix 3.7's exact words, client certificates trusted and not), ticket
 * resumption across two servers sharing one key file and its end after
 * two rotations, protocol refusal, and tls_selfsigned_write().
 *
 * Every certificate and key is made at run time with
 * tls_selfsigned_write() in a temporary directory: no key is committed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "tls/tls.h"
#include "tls/tls_int.h"
#include "tls_test.h"

#define PEER "localhost[127.0.0.1]"

static char dir[64];
static char *rsa_cert, *rsa_key, *ec_cert, *ec_key, *rsa_chain, *ec_chain;
static char *client_cert, *client_key, *stranger_cert, *stranger_key;
static char *ticket_file;

static char *path_in_dir(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static void make_pair(char **cert, char **key, const char *base, const char *cn, bool ecdsa)
{
	str_t error;
	char *c = xasprintf("%s-cert.pem", base), *k = xasprintf("%s-key.pem", base);

	*cert = path_in_dir(c);
	*key = path_in_dir(k);
	free(c);
	free(k);
	str_init(&error);
	if (tls_selfsigned_write(*cert, *key, cn, 30, ecdsa, &error) < 0)
		fail_msg("tls_selfsigned_write: %s", str_c(&error));
	str_free(&error);
}

/* key then certificate, as smtpd_tls_chain_files wants */
static char *make_chain(const char *name, const char *key, const char *cert)
{
	char *path = path_in_dir(name);
	str_t data, error;

	str_init(&data);
	str_init(&error);
	assert_int_equal(fs_read_file(key, 1 << 20, &data, &error), 0);
	assert_int_equal(fs_read_file(cert, 1 << 20, &data, &error), 0);
	assert_int_equal(fs_write_durable(path, data.buf, data.len, 0600, &error), 0);
	str_free(&data);
	str_free(&error);
	return path;
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/postern-test-tls-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	make_pair(&rsa_cert, &rsa_key, "rsa", "mail.example.test", false);
	make_pair(&ec_cert, &ec_key, "ec", "mail.example.test", true);
	make_pair(&client_cert, &client_key, "client", "client.example.test", false);
	make_pair(&stranger_cert, &stranger_key, "stranger", "stranger.example.test", true);
	rsa_chain = make_chain("rsa-chain.pem", rsa_key, rsa_cert);
	ec_chain = make_chain("ec-chain.pem", ec_key, ec_cert);
	ticket_file = path_in_dir("ticket-keys");
	return 0;
}

static int group_teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);

	(void)state;
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(cmd);
	free(rsa_cert);
	free(rsa_key);
	free(ec_cert);
	free(ec_key);
	free(rsa_chain);
	free(ec_chain);
	free(client_cert);
	free(client_key);
	free(stranger_cert);
	free(stranger_key);
	free(ticket_file);
	return 0;
}

/* ---- log capture ---- */

static strv_t logged = STRV_INIT;

static void log_hook(enum log_level level, const char *text, void *context)
{
	(void)context;
	(void)level;
	strv_add(&logged, text);
}

static bool logged_has(const char *needle)
{
	for (size_t i = 0; i < logged.n; i++)
		if (strstr(logged.v[i], needle) != NULL)
			return true;
	return false;
}

static size_t logged_count(const char *needle)
{
	size_t n = 0;

	for (size_t i = 0; i < logged.n; i++)
		n += strstr(logged.v[i], needle) != NULL;
	return n;
}

/* ---- settings ---- */

static void default_settings(struct tls_server_settings *set)
{
	tls_test_server_settings(set, rsa_cert, rsa_key, ticket_file);
}

/* tls_server_new() must fail with a message containing each needle. */
static void server_fails_v(const struct tls_server_settings *set, const char *const *needles)
{
	struct tls_server *srv = NULL;
	str_t error;

	str_init(&error);
	assert_int_equal(tls_server_new(set, &srv, &error), -1);
	assert_null(srv);
	for (; *needles != NULL; needles++)
		if (strstr(str_c(&error), *needles) == NULL)
			fail_msg("\"%s\" not in \"%s\"", *needles, str_c(&error));
	str_free(&error);
}

#define server_fails(set, ...) server_fails_v(set, (const char *const[]){__VA_ARGS__, NULL})

/* ---- handshakes over a BIO pair ---- */

struct client_opts {
	const char *cert, *key; /* client certificate */
	int max_version; /* 0: any */
	const char *groups, *sigalgs, *ciphers;
	bool weak; /* security level 0, for TLSv1.1 */
	SSL_SESSION *session; /* to resume */
};

/* Run a handshake between a client made from opts and a new SSL of srv.
 * 0 when both sides completed; *client_r and *server_r get the SSLs
 * (free them), *session_r (if not NULL) the client's resumable
 * session. */
static int handshake(struct tls_server *srv, const struct client_opts *opts, SSL **client_r,
                     SSL **server_r, SSL_SESSION **session_r)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *client, *server;
	int ret = -1;

	assert_non_null(cctx);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	if (opts->weak) {
		SSL_CTX_set_security_level(cctx, 0);
		assert_int_equal(SSL_CTX_set_cipher_list(cctx, "DEFAULT:@SECLEVEL=0"), 1);
	}
	if (opts->max_version != 0)
		assert_int_equal(SSL_CTX_set_max_proto_version(cctx, opts->max_version), 1);
	if (opts->weak)
		assert_int_equal(SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION), 1);
	if (opts->groups != NULL)
		assert_int_equal(SSL_CTX_set1_groups_list(cctx, opts->groups), 1);
	if (opts->sigalgs != NULL)
		assert_int_equal(SSL_CTX_set1_sigalgs_list(cctx, opts->sigalgs), 1);
	if (opts->ciphers != NULL)
		assert_int_equal(SSL_CTX_set_cipher_list(cctx, opts->ciphers), 1);
	if (opts->cert != NULL) {
		assert_int_equal(SSL_CTX_use_certificate_file(cctx, opts->cert, SSL_FILETYPE_PEM),
		                 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(cctx, opts->key, SSL_FILETYPE_PEM), 1);
	}
	client = SSL_new(cctx);
	SSL_CTX_free(cctx); /* the SSL holds a reference */
	server = tls_server_ssl_new(srv, PEER);
	assert_non_null(client);
	assert_non_null(server);
	if (opts->session != NULL)
		assert_int_equal(SSL_set_session(client, opts->session), 1);
	SSL_set_connect_state(client);
	if (tls_test_pump(client, server) == 0) {
		char byte;

		/* TLS 1.3 tickets arrive after the handshake: let the client
		 * read them (nothing else is there to read). */
		assert_true(SSL_read(client, &byte, 1) <= 0);
		if (session_r != NULL)
			*session_r = SSL_get1_session(client);
		/* Why: SSL_free() of a connection never shut down marks its
		 * session not resumable (ssl_clear_bad_session()). */
		(void)SSL_shutdown(client);
		ret = 0;
	}
	*client_r = client;
	*server_r = server;
	return ret;
}

/* ---- tests ---- */

static void test_protocols(void **state)
{
	static const struct {
		const char *value;
		unsigned disabled;
	} ok[] = {
	        {"", 0},
	        {"  ", 0},
	        {">=TLSv1.2",
	         TLS_PROTO_SSLv2 | TLS_PROTO_SSLv3 | TLS_PROTO_TLSv1 | TLS_PROTO_TLSv1_1},
	        {"<=TLSv1.2", TLS_PROTO_TLSv1_3},
	        {">=TLSv1, <=TLSv1.2", TLS_PROTO_SSLv2 | TLS_PROTO_SSLv3 | TLS_PROTO_TLSv1_3},
	        {"!SSLv2, !SSLv3, !TLSv1, !TLSv1.1",
	         TLS_PROTO_SSLv2 | TLS_PROTO_SSLv3 | TLS_PROTO_TLSv1 | TLS_PROTO_TLSv1_1},
	        {"!SSLv2:!SSLv3", TLS_PROTO_SSLv2 | TLS_PROTO_SSLv3},
	        {"TLSv1.2 TLSv1.3",
	         TLS_PROTO_SSLv2 | TLS_PROTO_SSLv3 | TLS_PROTO_TLSv1 | TLS_PROTO_TLSv1_1},
	        {"TLSv1.2, TLSv1.3, !TLSv1.3", TLS_PROTO_SSLv2 | TLS_PROTO_SSLv3 | TLS_PROTO_TLSv1 |
	                                               TLS_PROTO_TLSv1_1 | TLS_PROTO_TLSv1_3},
	        /* Postfix 3.7.11 accepts these (names compare without case) */
	        {"!sslv2, !tlsv1", TLS_PROTO_SSLv2 | TLS_PROTO_TLSv1},
	        {">=tlsv1.2",
	         TLS_PROTO_SSLv2 | TLS_PROTO_SSLv3 | TLS_PROTO_TLSv1 | TLS_PROTO_TLSv1_1},
	};
	static const struct {
		const char *value, *message;
	} bad[] = {
	        {">=TLSv1.4", "smtpd_tls_protocols: unknown protocol >=TLSv1.4 (expected SSLv2, "
	                      "SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, optionally with ! or >= / "
	                      "<=)"},
	        {"!TLSv2", "unknown protocol !TLSv2"},
	        {"TLSv1.2 =TLSv1.3", "unknown protocol =TLSv1.3"},
	        {"!", "unknown protocol !"},
	        {">=TLSv1.3 <=TLSv1.2", "leaves no protocol enabled"},
	        {"!TLSv1 !TLSv1.1 !TLSv1.2 !TLSv1.3", "leaves no protocol enabled"},
	        {"SSLv3", "leaves no protocol enabled"},
	};
	str_t error;

	(void)state;
	str_init(&error);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		unsigned disabled = 12345;

		str_reset(&error);
		if (tls_protocols_parse("smtpd_tls_protocols", ok[i].value, &disabled, &error) < 0)
			fail_msg("\"%s\": %s", ok[i].value, str_c(&error));
		if (disabled != ok[i].disabled)
			fail_msg("\"%s\": disabled %#x, expected %#x", ok[i].value, disabled,
			         ok[i].disabled);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned disabled = 12345;

		str_reset(&error);
		assert_int_equal(
		        tls_protocols_parse("smtpd_tls_protocols", bad[i].value, &disabled, &error),
		        -1);
		assert_int_equal(disabled, 12345);
		if (strstr(str_c(&error), bad[i].message) == NULL)
			fail_msg("\"%s\": \"%s\" lacks \"%s\"", bad[i].value, str_c(&error),
			         bad[i].message);
	}
	str_free(&error);
}

static void test_cipher_errors(void **state)
{
	struct tls_server_settings set;
	struct tls_server *srv;

	(void)state;
	default_settings(&set);
	set.grade = "bogus";
	server_fails(&set, "smtpd_tls_ciphers: unknown cipher grade \"bogus\"");
	default_settings(&set);
	set.grade = "high";
	set.grades.high = "";
	server_fails(&set, "cipher list of grade high is empty");
	default_settings(&set);
	set.exclude_ciphers = "RC4, !MD5";
	server_fails(&set, "invalid cipher exclusion \"!MD5\"");
	default_settings(&set);
	set.grade_param = "smtpd_tls_mandatory_ciphers";
	set.grades.medium = "NO-SUCH-CIPHER";
	server_fails(&set, "smtpd_tls_mandatory_ciphers = medium: OpenSSL refuses the cipher list",
	             "NO-SUCH-CIPHER");
	default_settings(&set);
	set.eecdh_grade = "strong";
	set.strong_curve = "no-such-curve";
	server_fails(&set, "unknown curve \"no-such-curve\"");
	default_settings(&set);
	set.eecdh_grade = "extreme";
	server_fails(&set, "unknown grade \"extreme\"");
	default_settings(&set);
	set.fingerprint_digest = "nodigest";
	server_fails(&set, "smtpd_tls_fingerprint_digest", "nodigest");
	default_settings(&set);
	set.protocols = ">=TLSv1.3 <=TLSv1.2";
	set.protocols_param = "smtpd_tls_mandatory_protocols";
	server_fails(&set, "smtpd_tls_mandatory_protocols", "no protocol enabled");

	/* low and export are medium, as in Postfix 3.6+; exclusions and an
	 * unknown auto curve are fine */
	default_settings(&set);
	set.grade = "low";
	set.grades.low = "NO-SUCH-CIPHER";
	set.exclude_ciphers = "RC4, aNULL:MD5";
	set.auto_curves = "no-such-curve X25519 prime256v1";
	srv = tls_test_server_ok(&set);
	tls_server_free(&srv);
	assert_null(srv);
	tls_server_free(&srv); /* no-op on NULL */
}

static void test_cert_files(void **state)
{
	struct tls_server_settings set;
	struct tls_server *srv;
	strv_t chains = STRV_INIT;
	char *bad_chain = make_chain("bad-chain.pem", ec_key, rsa_cert);
	char *cert_first = make_chain("cert-first.pem", rsa_cert, rsa_key);
	char *missing = path_in_dir("missing.pem");
	char *empty = path_in_dir("empty.pem");
	str_t error;

	(void)state;
	str_init(&error);
	assert_int_equal(fs_write_durable(empty, "", 0, 0600, &error), 0);

	/* chain files: RSA and ECDSA */
	default_settings(&set);
	strv_add(&chains, rsa_chain);
	strv_add(&chains, ec_chain);
	set.chain_files = &chains;
	set.cert_file = missing; /* ignored when chain files are given */
	srv = tls_test_server_ok(&set);
	tls_server_free(&srv);

	/* cert/key and eccert/eckey; key_file empty means the cert file */
	default_settings(&set);
	set.eccert_file = ec_cert;
	set.eckey_file = ec_key;
	srv = tls_test_server_ok(&set);
	tls_server_free(&srv);
	default_settings(&set);
	set.cert_file = rsa_chain; /* key and certificate in one file */
	set.key_file = "";
	srv = tls_test_server_ok(&set);
	tls_server_free(&srv);

	/* the key does not match: both files named */
	default_settings(&set);
	set.key_file = ec_key;
	server_fails(&set, "the private key in ", ec_key, " does not match the certificate in ",
	             rsa_cert);
	strv_free(&chains);
	strv_add(&chains, bad_chain);
	default_settings(&set);
	set.chain_files = &chains;
	server_fails(&set, bad_chain, "does not match");

	/* order in a chain file: key first */
	strv_free(&chains);
	strv_add(&chains, cert_first);
	set.chain_files = &chains;
	server_fails(&set, cert_first, "expected a private key followed by its certificate chain");

	/* missing, empty, none at all */
	default_settings(&set);
	set.cert_file = missing;
	server_fails(&set, missing);
	default_settings(&set);
	set.key_file = empty;
	server_fails(&set, empty, "no certificate or private key");
	default_settings(&set);
	set.key_file = rsa_cert;
	server_fails(&set, rsa_cert, "no private key");
	default_settings(&set);
	set.cert_file = "";
	set.key_file = "";
	server_fails(&set, "no server certificate");
	default_settings(&set);
	set.ca_file = missing;
	server_fails(&set, missing);

	strv_free(&chains);
	str_free(&error);
	free(bad_chain);
	free(cert_first);
	free(missing);
	free(empty);
}

static void check_fingerprint(const char *fp)
{
	/* SHA-256: 32 upper-case hex pairs joined by ':' */
	assert_int_equal(strlen(fp), 95);
	for (size_t i = 0; i < 95; i++) {
		if (i % 3 == 2)
			assert_int_equal(fp[i], ':');
		else
			assert_non_null(strchr("0123456789ABCDEF", fp[i]));
	}
}

static void test_handshake_anonymous(void **state)
{
	struct tls_server_settings set;
	struct tls_server *srv;
	struct client_opts opts = {0};
	SSL *client, *server;
	struct tls_info info;
	str_t line;

	(void)state;
	str_init(&line);
	default_settings(&set);
	srv = tls_test_server_ok(&set);
	assert_int_equal(handshake(srv, &opts, &client, &server, NULL), 0);
	tls_info_get(server, &info);
	assert_string_equal(info.protocol, "TLSv1.3");
	assert_string_equal(info.cipher, "TLS_AES_256_GCM_SHA384");
	assert_int_equal(info.cipher_bits, 256);
	assert_int_equal(info.cipher_alg_bits, 256);
	assert_string_equal(info.kex, "X25519");
	assert_string_equal(info.server_sig, "RSA-PSS");
	assert_int_equal(info.server_sig_bits, 2048);
	assert_string_equal(info.server_digest, "SHA256");
	assert_false(info.peer_cert);
	assert_false(info.resumed);
	tls_info_log_line(&info, PEER, &line);
	/* as Postfix 3.7.11 logged it (tls_info.c) */
	assert_string_equal(str_c(&line),
	                    "Anonymous TLS connection established from localhost[127.0.0.1]: "
	                    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
	                    "key-exchange X25519 server-signature RSA-PSS (2048 bits) "
	                    "server-digest SHA256");
	str_reset(&line);
	tls_info_received(&info, false, &line);
	assert_string_equal(str_c(&line),
	                    "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n\t"
	                    " key-exchange X25519 server-signature RSA-PSS (2048 bits) "
	                    "server-digest SHA256)\n\t(No client certificate requested)");
	str_reset(&line);
	tls_info_received(&info, true, &line);
	assert_non_null(strstr(str_c(&line), ")\n\t(Client did not present a certificate)"));
	assert_string_equal(tls_ssl_peer(server), PEER);
	SSL_free(client);
	SSL_free(server);

	/* TLS 1.2: no key-exchange or signature details, as Postfix */
	opts.max_version = TLS1_2_VERSION;
	assert_int_equal(handshake(srv, &opts, &client, &server, NULL), 0);
	tls_info_get(server, &info);
	str_reset(&line);
	tls_info_log_line(&info, PEER, &line);
	assert_string_equal(str_c(&line),
	                    "Anonymous TLS connection established from localhost[127.0.0.1]: "
	                    "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)");
	str_reset(&line);
	tls_info_received(&info, true, &line);
	assert_string_equal(str_c(&line),
	                    "(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 "
	                    "bits))\n\t(Client did not present a certificate)");
	SSL_free(client);
	SSL_free(server);
	tls_server_free(&srv);

	/* ECDSA from a chain file, P-256 key exchange */
	strv_t chains = STRV_INIT;
	strv_add(&chains, rsa_chain);
	strv_add(&chains, ec_chain);
	default_settings(&set);
	set.chain_files = &chains;
	srv = tls_test_server_ok(&set);
	memset(&opts, 0, sizeof(opts));
	opts.groups = "P-256";
	opts.sigalgs = "ecdsa_secp256r1_sha256";
	assert_int_equal(handshake(srv, &opts, &client, &server, NULL), 0);
	tls_info_get(server, &info);
	str_reset(&line);
	tls_info_log_line(&info, PEER, &line);
	assert_string_equal(str_c(&line),
	                    "Anonymous TLS connection established from localhost[127.0.0.1]: "
	                    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
	                    "key-exchange ECDHE (prime256v1) server-signature ECDSA (prime256v1) "
	                    "server-digest SHA256");
	SSL_free(client);
	SSL_free(server);
	tls_server_free(&srv);
	strv_free(&chains);
	str_free(&line);
}

static void test_handshake_client_cert(void **state)
{
	struct tls_server_settings set;
	struct tls_server *srv;
	struct client_opts opts = {0};
	SSL *client, *server;
	struct tls_info info;
	str_t line;

	(void)state;
	str_init(&line);
	default_settings(&set);
	set.ask_ccert = true;
	set.ca_file = client_cert; /* the self-signed client is its own CA */
	set.loglevel = 2;
	srv = tls_test_server_ok(&set);

	strv_free(&logged);
	log_set_hook(log_hook, NULL);
	opts.cert = client_cert;
	opts.key = client_key;
	assert_int_equal(handshake(srv, &opts, &client, &server, NULL), 0);
	log_set_hook(NULL, NULL);
	/* loglevel 2: Postfix's progress lines */
	assert_true(logged_has("setting up TLS connection from " PEER));
	assert_true(logged_has("SSL_accept:SSLv3/TLS read client hello"));
	assert_true(logged_has(PEER ": depth=0 verify=1 subject=/CN=client.example.test"));
	assert_true(logged_has(PEER ": TLS cipher list \"aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:"
	                            "!aNULL\""));
	/* the client was sent the CA names of ca_file */
	STACK_OF(X509_NAME) *names = SSL_get_client_CA_list(client);
	assert_int_equal(sk_X509_NAME_num(names), 1);

	tls_info_get(server, &info);
	assert_true(info.peer_cert);
	assert_true(info.peer_verified);
	assert_string_equal(info.verify_error, "");
	assert_string_equal(info.peer_cn, "client.example.test");
	assert_string_equal(info.issuer_cn, "client.example.test");
	check_fingerprint(info.cert_fingerprint);
	check_fingerprint(info.pkey_fingerprint);
	assert_string_not_equal(info.cert_fingerprint, info.pkey_fingerprint);
	assert_string_equal(info.client_sig, "RSA-PSS");
	assert_int_equal(info.client_sig_bits, 2048);
	assert_string_equal(info.client_digest, "SHA256");
	tls_info_log_line(&info, PEER, &line);
	assert_string_equal(str_c(&line),
	                    "Trusted TLS connection established from localhost[127.0.0.1]: "
	                    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
	                    "key-exchange X25519 server-signature RSA-PSS (2048 bits) "
	                    "server-digest SHA256 client-signature RSA-PSS (2048 bits) "
	                    "client-digest SHA256");
	str_reset(&line);
	tls_info_received(&info, true, &line);
	assert_string_equal(str_c(&line),
	                    "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n\t"
	                    " key-exchange X25519 server-signature RSA-PSS (2048 bits) "
	                    "server-digest SHA256\n\t client-signature RSA-PSS (2048 bits) "
	                    "client-digest SHA256)\n\t(Client CN \"client.example.test\", Issuer "
	                    "\"client.example.test\" (verified OK))");
	str_reset(&line);
	tls_info_peer_line(&info, PEER, &line);
	assert_non_null(strstr(str_c(&line), PEER ": subject_CN=client.example.test, "
	                                          "issuer=client.example.test, fingerprint="));
	SSL_free(client);
	SSL_free(server);

	/* a certificate from elsewhere: the handshake still completes */
	opts.cert = stranger_cert;
	opts.key = stranger_key;
	assert_int_equal(handshake(srv, &opts, &client, &server, NULL), 0);
	tls_info_get(server, &info);
	assert_true(info.peer_cert);
	assert_false(info.peer_verified);
	assert_string_not_equal(info.verify_error, "");
	assert_string_equal(info.client_sig, "ECDSA");
	assert_string_equal(info.client_sig_curve, "prime256v1");
	str_reset(&line);
	tls_info_log_line(&info, PEER, &line);
	assert_non_null(strstr(str_c(&line), "Untrusted TLS connection established from "));
	assert_non_null(strstr(str_c(&line), " client-signature ECDSA (prime256v1) client-digest "
	                                     "SHA256"));
	str_reset(&line);
	tls_info_received(&info, true, &line);
	assert_non_null(strstr(str_c(&line), "\n\t(Client CN \"stranger.example.test\", Issuer "
	                                     "\"stranger.example.test\" (not verified))"));
	SSL_free(client);
	SSL_free(server);
	tls_server_free(&srv);
	str_free(&line);
}

static void test_received_sanitized(void **state)
{
	struct tls_info info;
	str_t out;

	(void)state;
	memset(&info, 0, sizeof(info));
	strcpy(info.protocol, "TLSv1.2");
	strcpy(info.cipher, "ECDHE-RSA-AES128-GCM-SHA256");
	info.cipher_bits = info.cipher_alg_bits = 128;
	info.peer_cert = true;
	strcpy(info.peer_cn, "a\\b) (c\xc3\xa9");
	strcpy(info.issuer_cn, "CA \"x\"");
	str_init(&out);
	tls_info_received(&info, true, &out);
	/* smtpd.c comment_sanitize(): '\\', 8-bit and unbalanced ')' go,
	 * an open '(' is closed */
	assert_string_equal(str_c(&out),
	                    "(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 "
	                    "bits))\n\t(Client CN \"a?b? (c?"
	                    "?)\", Issuer \"CA \"x\"\" (not "
	                    "verified))");
	str_free(&out);
}

static void wait_next_second(void)
{
	time_t start = time(NULL);

	while (time(NULL) == start)
		usleep(20000);
}

static void test_tickets(void **state)
{
	struct tls_server_settings set;
	struct tls_server *a, *b;
	struct client_opts opts = {0};
	SSL *client, *server;
	SSL_SESSION *session = NULL, *session2 = NULL;
	struct tls_info info;
	time_t next = 0;
	struct stat st;
	str_t error, line;

	(void)state;
	str_init(&error);
	str_init(&line);
	(void)unlink(ticket_file);
	assert_int_equal(tls_ticket_keys_rotate(ticket_file, 3600, -1, -1, &next, &error), 0);
	assert_true(next > time(NULL) + 3500);
	assert_int_equal(stat(ticket_file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* still current: not rewritten */
	ino_t ino = st.st_ino;
	assert_int_equal(tls_ticket_keys_rotate(ticket_file, 3600, -1, -1, &next, &error), 0);
	assert_int_equal(stat(ticket_file, &st), 0);
	assert_int_equal(st.st_ino, ino);

	default_settings(&set);
	a = tls_test_server_ok(&set);
	b = tls_test_server_ok(&set);

	/* a session from a resumes on b */
	assert_int_equal(handshake(a, &opts, &client, &server, &session), 0);
	assert_non_null(session);
	SSL_free(client);
	SSL_free(server);
	opts.session = session;
	assert_int_equal(handshake(b, &opts, &client, &server, NULL), 0);
	assert_int_equal(SSL_session_reused(client), 1);
	tls_info_get(server, &info);
	assert_true(info.resumed);
	tls_info_log_line(&info, PEER, &line);
	/* resumed: nothing was signed, so no server-digest (as Postfix) */
	assert_string_equal(str_c(&line),
	                    "Anonymous TLS connection established from localhost[127.0.0.1]: "
	                    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
	                    "key-exchange X25519 server-signature RSA-PSS (2048 bits)");
	SSL_free(client);
	SSL_free(server);

	/* one rotation: the old key still decrypts */
	assert_int_equal(tls_ticket_keys_rotate(ticket_file, 0, -1, -1, &next, &error), 0);
	wait_next_second();
	assert_int_equal(handshake(b, &opts, &client, &server, &session2), 0);
	assert_int_equal(SSL_session_reused(client), 1);
	SSL_free(client);
	SSL_free(server);

	/* two rotations: the first key is gone, a full handshake follows */
	assert_int_equal(tls_ticket_keys_rotate(ticket_file, 0, -1, -1, &next, &error), 0);
	wait_next_second();
	assert_int_equal(handshake(b, &opts, &client, &server, NULL), 0);
	assert_int_equal(SSL_session_reused(client), 0);
	SSL_free(client);
	SSL_free(server);
	/* ... but the ticket issued after the first rotation still works */
	opts.session = session2;
	assert_int_equal(handshake(a, &opts, &client, &server, NULL), 0);
	assert_int_equal(SSL_session_reused(client), 1);
	SSL_free(client);
	SSL_free(server);

	SSL_SESSION_free(session);
	SSL_SESSION_free(session2);
	tls_server_free(&a);
	tls_server_free(&b);

	/* session_timeout 0: no resumption at all */
	default_settings(&set);
	set.session_timeout = 0;
	a = tls_test_server_ok(&set);
	opts.session = NULL;
	session = NULL;
	assert_int_equal(handshake(a, &opts, &client, &server, &session), 0);
	SSL_free(client);
	SSL_free(server);
	opts.session = session;
	assert_int_equal(handshake(a, &opts, &client, &server, NULL), 0);
	assert_int_equal(SSL_session_reused(client), 0);
	SSL_free(client);
	SSL_free(server);
	SSL_SESSION_free(session);
	tls_server_free(&a);
	str_free(&error);
	str_free(&line);
}

static void test_tickets_process_key(void **state)
{
	struct tls_server_settings set;
	struct tls_server *a;
	struct client_opts opts = {0};
	SSL *client, *server;
	SSL_SESSION *session = NULL;
	char *missing = path_in_dir("no-ticket-keys");

	(void)state;
	strv_free(&logged);
	log_set_hook(log_hook, NULL);
	default_settings(&set);
	set.ticket_key_file = missing;
	a = tls_test_server_ok(&set);
	tls_server_free(&a);
	a = tls_test_server_ok(&set);
	log_set_hook(NULL, NULL);
	/* one warning per process, whatever the number of servers */
	assert_true(logged_count("using a key of this process") <= 1);

	assert_int_equal(handshake(a, &opts, &client, &server, &session), 0);
	SSL_free(client);
	SSL_free(server);
	opts.session = session;
	assert_int_equal(handshake(a, &opts, &client, &server, NULL), 0);
	assert_int_equal(SSL_session_reused(client), 1);
	SSL_free(client);
	SSL_free(server);
	SSL_SESSION_free(session);
	tls_server_free(&a);
	free(missing);
}

static void test_ticket_file_format(void **state)
{
	struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
	size_t n = 0;
	str_t text, error;
	static const char *bad[] = {
	        "",
	        "something else\n",
	        "postern-ticket-keys 1\n",
	        "postern-ticket-keys 1\n00112233445566778899aabbccddeeff 1700000000 00\n",
	        "postern-ticket-keys 1\n00112233445566778899aabbccddeeff 1700000000 "
	        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f "
	        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	};

	(void)state;
	str_init(&text);
	str_init(&error);
	memset(keys, 0x5a, sizeof(keys));
	keys[0].created = 1700000001;
	keys[1].created = 1700000000;
	tls_ticket_keys_format(keys, 2, &text);
	memset(keys, 0, sizeof(keys));
	assert_int_equal(tls_ticket_keys_parse(text.buf, text.len, "f", keys, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_int_equal(keys[0].created, 1700000001);
	assert_int_equal(keys[1].aes[31], 0x5a);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		str_reset(&error);
		assert_int_equal(
		        tls_ticket_keys_parse(bad[i], strlen(bad[i]), "/x/keys", keys, &n, &error),
		        -1);
		assert_non_null(strstr(str_c(&error), "/x/keys"));
		/* never the secrets themselves */
		assert_null(strstr(str_c(&error), "000102"));
	}
	str_free(&text);
	str_free(&error);
}

static void test_protocol_refused(void **state)
{
	struct tls_server_settings set;
	struct tls_server *srv;
	struct client_opts opts = {0};
	SSL *client, *server;
	str_t errors;

	(void)state;
	str_init(&errors);
	default_settings(&set);
	set.protocols = ">=TLSv1.2";
	srv = tls_test_server_ok(&set);
	opts.max_version = TLS1_1_VERSION;
	opts.weak = true;
	ERR_clear_error();
	assert_int_equal(handshake(srv, &opts, &client, &server, NULL), -1);
	tls_errors_append(&errors);
	/* Postfix: "error:0A000102:SSL routines::unsupported protocol:
	 * ../ssl/statem/statem_srvr.c:1664:" */
	assert_non_null(strstr(str_c(&errors), "error:0A000102:SSL routines::unsupported "
	                                       "protocol:"));
	str_reset(&errors);
	tls_errors_append(&errors); /* the queue was emptied */
	assert_string_equal(str_c(&errors), "");
	SSL_free(client);
	SSL_free(server);

	/* the same client is welcome where TLSv1.1 is allowed */
	tls_server_free(&srv);
	default_settings(&set);
	set.protocols = "";
	set.grades.medium = "DEFAULT:@SECLEVEL=0";
	srv = tls_test_server_ok(&set);
	assert_int_equal(handshake(srv, &opts, &client, &server, NULL), 0);
	assert_string_equal(SSL_get_version(server), "TLSv1.1");
	SSL_free(client);
	SSL_free(server);
	tls_server_free(&srv);
	str_free(&errors);
}

static void test_selfsigned(void **state)
{
	char *cert = path_in_dir("ss-cert.pem"), *key = path_in_dir("ss-key.pem");
	struct stat st;
	str_t error;
	X509 *x;
	FILE *f;

	(void)state;
	str_init(&error);
	assert_int_equal(tls_selfsigned_write(cert, key, "mx.example.org", 10, true, &error), 0);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(cert, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	f = fopen(cert, "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	assert_int_equal(X509_check_host(x, "mx.example.org", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "other.example.org", 0, 0, NULL), 0);
	assert_int_equal(X509_cmp_current_time(X509_get0_notAfter(x)) > 0, 1);
	assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
	X509_free(x);

	assert_int_equal(tls_selfsigned_write(cert, key, "", 10, false, &error), -1);
	assert_non_null(strstr(str_c(&error), cert));
	str_reset(&error);
	char *nodir = path_in_dir("no/such/key.pem");
	assert_int_equal(tls_selfsigned_write(cert, nodir, "x.example", 10, false, &error), -1);
	assert_non_null(strstr(str_c(&error), nodir));
	free(nodir);
	free(cert);
	free(key);
	str_free(&error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_protocols),
	        cmocka_unit_test(test_cipher_errors),
	        cmocka_unit_test(test_cert_files),
	        cmocka_unit_test(test_handshake_anonymous),
	        cmocka_unit_test(test_handshake_client_cert),
	        cmocka_unit_test(test_received_sanitized),
	        cmocka_unit_test(test_tickets),
	        cmocka_unit_test(test_tickets_process_key),
	        cmocka_unit_test(test_ticket_file_format),
	        cmocka_unit_test(test_protocol_refused),
	        cmocka_unit_test(test_selfsigned),
	};
	int ret;

	(void)log_open("postern/test_tls", LOG_TARGET_STDERR, NULL, &(const char *){NULL});
	ret = cmocka_run_group_tests(tests, group_setup, group_teardown);
	strv_free(&logged);
	return ret;
}
