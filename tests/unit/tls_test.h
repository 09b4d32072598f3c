/* tls_test.h - helpers shared by tests/unit/test_tls*.c: server settings
 * with Postfix 3.7's defaults, a server context that must build, and the
 * handshake loop of two SSLs joined by a BIO pair. */
#ifndef POSTERN_TLS_TEST_H
#define POSTERN_TLS_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/ssl.h>

#include "base/str.h"
#include "tls/tls.h"

/* Postfix 3.7's tls_*_cipherlist defaults. */
static inline void tls_test_grades(struct tls_cipher_grades *g)
{
	g->high = "aNULL:-aNULL:HIGH:@STRENGTH";
	g->medium = "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH";
	g->low = "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH";
	g->export_ = "aNULL:-aNULL:HIGH:MEDIUM:LOW:EXPORT:+RC4:@STRENGTH";
	g->null = "eNULL:!aNULL";
}

/* smtpd's defaults with cert/key; ticket_file may be NULL. */
static inline void tls_test_server_settings(struct tls_server_settings *set, const char *cert,
                                            const char *key, const char *ticket_file)
{
	memset(set, 0, sizeof(*set));
	set->cert_file = cert;
	set->key_file = key;
	set->protocols = "!SSLv2, !SSLv3";
	set->protocols_param = "smtpd_tls_protocols";
	set->grade = "medium";
	set->grade_param = "smtpd_tls_ciphers";
	tls_test_grades(&set->grades);
	set->exclude_ciphers = "";
	set->eecdh_grade = "auto";
	set->auto_curves = "X25519 X448 prime256v1 secp384r1";
	set->strong_curve = "prime256v1";
	set->ultra_curve = "secp384r1";
	set->verify_depth = 9;
	set->fingerprint_digest = "sha256";
	set->session_timeout = ticket_file != NULL ? 3600 : 0;
	set->ticket_key_file = ticket_file;
	set->loglevel = 1;
}

static inline struct tls_server *tls_test_server_ok(const struct tls_server_settings *set)
{
	struct tls_server *srv = NULL;
	str_t error;

	str_init(&error);
	if (tls_server_new(set, &srv, &error) < 0)
		fail_msg("tls_server_new: %s", str_c(&error));
	str_free(&error);
	return srv;
}

/* Join client and server (in their connect / accept states) with a BIO
 * pair and run both handshakes to the end. 0 when both completed, -1
 * when either side failed (the OpenSSL error queue says why). */
static inline int tls_test_pump(SSL *client, SSL *server)
{
	BIO *cbio, *sbio;
	bool cdone = false, sdone = false;

	assert_int_equal(BIO_new_bio_pair(&cbio, 0, &sbio, 0), 1);
	SSL_set_bio(client, cbio, cbio);
	SSL_set_bio(server, sbio, sbio);
	for (int i = 0; i < 50 && !(cdone && sdone); i++) {
		if (!cdone) {
			int r = SSL_do_handshake(client);
			if (r == 1)
				cdone = true;
			else if (SSL_get_error(client, r) != SSL_ERROR_WANT_READ &&
			         SSL_get_error(client, r) != SSL_ERROR_WANT_WRITE)
				break;
		}
		if (!sdone) {
			int r = SSL_do_handshake(server);
			if (r == 1)
				sdone = true;
			else if (SSL_get_error(server, r) != SSL_ERROR_WANT_READ &&
			         SSL_get_error(server, r) != SSL_ERROR_WANT_WRITE)
				break;
		}
	}
	return cdone && sdone ? 0 : -1;
}

#endif
