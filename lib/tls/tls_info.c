/* tls_info.c - what a completed handshake gave, and Postfix's words for
 * it: the "TLS connection established" log line, the Received header's
 * TLS comment, OpenSSL error text.
 *
 * Used by smtpd after STARTTLS (log line, Received header, the
 * restrictions' view of the client certificate) and by anything that
 * reports an OpenSSL failure. tls_info_get() cannot fail: what OpenSSL
 * does not know is left empty or 0.
 *
 * The formats follow Postfix 3.7 (tls_misc.c tls_log_summary(),
 * tls_get_signature_params(); smtpd.c's Received header) and were
 * checked against Debian 12's Postfix 3.7.11 with OpenSSL 3.0, driven by
 * `openssl s_client -starttls smtp` and swaks. What it logged (maillog)
 * and wrote (postcat -h of the queued message), verbatim:
 *
 *   TLS 1.3, RSA certificate, no client certificate asked for:
 *     Anonymous TLS connection established from localhost[127.0.0.1]:
 *     TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
 *     key-exchange X25519 server-signature RSA-PSS (2048 bits)
 *     server-digest SHA256            (one line in the log)
 *     Received: ... (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384
 *     (256/256 bits)\n\t key-exchange X25519 server-signature RSA-PSS
 *     (2048 bits) server-digest SHA256)\n\t(No client certificate
 *     requested)
 *   smtpd_tls_ask_ccert = yes, client certificate signed by the CAfile:
 *     Trusted TLS connection established from ...: TLSv1.3 ... server-
 *     digest SHA256 client-signature RSA-PSS (2048 bits) client-digest
 *     SHA256
 *     (using ... server-digest SHA256\n\t client-signature RSA-PSS (2048
 *     bits) client-digest SHA256)\n\t(Client CN "client.example.test",
 *     Issuer "Test CA" (verified OK))
 *   ask_ccert = yes, no certificate sent: "(Client did not present a
 *     certificate)"
 *   TLS 1.2: no key-exchange/signature details at all (Postfix collects
 *     them only for TLS 1.3):
 *     ...: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)
 *     (using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256
 *     bits))\n\t(Client did not present a certificate)
 *   TLS 1.3 resumed from a ticket: no server-digest (no signature made):
 *     ... key-exchange X25519 server-signature RSA-PSS (2048 bits)
 *   ECDSA chain file, client limited to P-256:
 *     key-exchange ECDHE (prime256v1) server-signature ECDSA
 *     (prime256v1) server-digest SHA256
 *   a failed handshake (client TLSv1.1 only, smtpd_tls_protocols =
 *     >=TLSv1.2): "SSL_accept error from localhost[127.0.0.1]: -1" then
 *     "warning: TLS library problem: error:0A000102:SSL routines::
 *     unsupported protocol:../ssl/statem/statem_srvr.c:1664:"
 *   loglevel 2, client certificate: "localhost[127.0.0.1]: subject_CN=
 *     client.example.test, issuer=Test CA, fingerprint=CE:F4:...:6F,
 *     pkey_fingerprint=81:3F:...:3E" (sha256 of the DER certificate and
 *     of the DER SubjectPublicKeyInfo, checked with openssl dgst).
 * A resumed session is still "established" in smtpd's line ("reused" is
 * the smtp client's connection reuse).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"
#include "tls/tls_int.h"

/* Copy src into dst of size bytes, cut at a UTF-8 character boundary. */
static void copy_text(char *dst, size_t size, const char *src)
{
	size_t len = strlen(src);

	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)src[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/* Postfix's names for a signing key: "RSA-PSS" (what TLS 1.3 requires
 * of RSA) with its size, "ECDSA" with its curve, else OpenSSL's short
 * name ("ED25519"). */
static void sig_params(EVP_PKEY *pkey, char *name, size_t name_size, int *bits, char *curve,
                       size_t curve_size)
{
	int id = EVP_PKEY_get_base_id(pkey);

	if (id == EVP_PKEY_RSA) {
		copy_text(name, name_size, "RSA-PSS");
		*bits = EVP_PKEY_get_bits(pkey);
	} else if (id == EVP_PKEY_EC) {
		copy_text(name, name_size, "ECDSA");
		if (EVP_PKEY_get_group_name(pkey, curve, curve_size, NULL) != 1)
			curve[0] = '\0';
	} else if (id != NID_undef && OBJ_nid2sn(id) != NULL) {
		copy_text(name, name_size, OBJ_nid2sn(id));
	}
}

/* The TLS 1.3 details (tls_get_signature_params()). The server's
 * signature is the local certificate's on a server SSL and the peer's
 * on a client SSL; the client's the other way round. */
static void signature_params(SSL *ssl, X509 *peer, struct tls_info *info)
{
	EVP_PKEY *dh = NULL;
	X509 *local = SSL_get_certificate(ssl);
	bool server = SSL_is_server(ssl) == 1;
	X509 *server_cert = server ? local : peer, *client_cert = server ? peer : local;
	int nid;

	if (SSL_get_peer_tmp_key(ssl, &dh) == 1 && dh != NULL) {
		int id = EVP_PKEY_get_base_id(dh);

		if (id == EVP_PKEY_DH) {
			copy_text(info->kex, sizeof(info->kex), "DHE");
			info->kex_bits = EVP_PKEY_get_bits(dh);
		} else if (id == EVP_PKEY_EC) {
			copy_text(info->kex, sizeof(info->kex), "ECDHE");
			if (EVP_PKEY_get_group_name(dh, info->kex_curve, sizeof(info->kex_curve),
			                            NULL) != 1)
				info->kex_curve[0] = '\0';
		} else if (id != NID_undef && OBJ_nid2sn(id) != NULL) {
			copy_text(info->kex, sizeof(info->kex), OBJ_nid2sn(id)); /* "X25519" */
		}
		EVP_PKEY_free(dh);
	}
	if (server_cert != NULL) {
		sig_params(X509_get0_pubkey(server_cert), info->server_sig,
		           sizeof(info->server_sig), &info->server_sig_bits, info->server_sig_curve,
		           sizeof(info->server_sig_curve));
		/* Fails on a resumed session: nothing was signed. */
		int server_nid_ok = server ? SSL_get_signature_nid(ssl, &nid)
		                           : SSL_get_peer_signature_nid(ssl, &nid);
		if (server_nid_ok == 1 && nid != NID_undef)
			copy_text(info->server_digest, sizeof(info->server_digest),
			          OBJ_nid2sn(nid));
	}
	if (client_cert != NULL) {
		sig_params(X509_get0_pubkey(client_cert), info->client_sig,
		           sizeof(info->client_sig), &info->client_sig_bits, info->client_sig_curve,
		           sizeof(info->client_sig_curve));
		int client_nid_ok = server ? SSL_get_peer_signature_nid(ssl, &nid)
		                           : SSL_get_signature_nid(ssl, &nid);
		if (client_nid_ok == 1 && nid != NID_undef)
			copy_text(info->client_digest, sizeof(info->client_digest),
			          OBJ_nid2sn(nid));
	}
}

/* Client role: the chain result without the name check, and the name
 * check itself (the verify_name given to tls_client_ssl_new(), matched
 * with the same flags). */
static void client_verification(SSL *ssl, X509 *peer, struct tls_info *info)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
	const char *name = X509_VERIFY_PARAM_get0_host(param, 0);
	long chain_error;

	info->peer_verified = !tls_client_chain_failed(ssl, &chain_error);
	if (!info->peer_verified)
		copy_text(info->verify_error, sizeof(info->verify_error),
		          X509_verify_cert_error_string(chain_error));
	if (name != NULL) {
		info->peer_name_checked = true;
		info->peer_name_matched =
		        X509_check_host(peer, name, 0, X509_VERIFY_PARAM_get_hostflags(param),
		                        NULL) == 1;
	}
}

/* The first CN of name as UTF-8, or "" when there is none or it holds
 * a NUL or an ASCII control (Postfix tls_text_name() refuses those). */
static void common_name(const X509_NAME *name, char *out, size_t size)
{
	int pos = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int len;

	out[0] = '\0';
	if (pos < 0)
		return;
	const ASN1_STRING *value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, pos));
	if ((len = ASN1_STRING_to_UTF8(&utf8, value)) < 0)
		return;
	if (memchr(utf8, '\0', (size_t)len) == NULL) {
		bool clean = true;

		for (int i = 0; i < len && clean; i++)
			clean = utf8[i] >= 0x80 || (utf8[i] >= 0x20 && utf8[i] < 0x7f);
		if (clean)
			copy_text(out, size, (const char *)utf8);
	}
	OPENSSL_free(utf8);
}

/* Upper-case hex pairs joined by ':' (Postfix tls_fprint.c). */
static void hex_pairs(const unsigned char *md, unsigned len, char *out, size_t size)
{
	size_t pos = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < len && pos + 3 <= size; i++) {
		snprintf(out + pos, size - pos, "%s%02X", i > 0 ? ":" : "", md[i]);
		pos += i > 0 ? 3 : 2;
	}
}

static void fingerprints(SSL *ssl, X509 *peer, struct tls_info *info)
{
	const EVP_MD *md = EVP_get_digestbyname(tls_ssl_fingerprint_digest(ssl));
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	unsigned char *der = NULL;
	int der_len;

	if (md == NULL)
		return;
	if (X509_digest(peer, md, buf, &len) == 1)
		hex_pairs(buf, len, info->cert_fingerprint, sizeof(info->cert_fingerprint));
	/* The digest of the DER SubjectPublicKeyInfo, not of the key bits
	 * alone (X509_pubkey_digest): that is what Postfix prints. */
	if ((der_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(peer), &der)) > 0 &&
	    EVP_Digest(der, (size_t)der_len, buf, &len, md, NULL) == 1)
		hex_pairs(buf, len, info->pkey_fingerprint, sizeof(info->pkey_fingerprint));
	OPENSSL_free(der);
}

void tls_info_get(SSL *ssl, struct tls_info *info)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
	X509 *peer = SSL_get0_peer_certificate(ssl);

	memset(info, 0, sizeof(*info));
	copy_text(info->protocol, sizeof(info->protocol), SSL_get_version(ssl));
	if (cipher != NULL) {
		copy_text(info->cipher, sizeof(info->cipher), SSL_CIPHER_get_name(cipher));
		info->cipher_bits = SSL_CIPHER_get_bits(cipher, &info->cipher_alg_bits);
	}
	info->resumed = SSL_session_reused(ssl) == 1;
	if (SSL_version(ssl) >= TLS1_3_VERSION)
		signature_params(ssl, peer, info);
	if (peer == NULL)
		return;
	info->peer_cert = true;
	if (SSL_is_server(ssl) == 1) {
		long verify = SSL_get_verify_result(ssl);

		info->peer_verified = verify == X509_V_OK;
		if (!info->peer_verified)
			copy_text(info->verify_error, sizeof(info->verify_error),
			          X509_verify_cert_error_string(verify));
	} else {
		client_verification(ssl, peer, info);
	}
	common_name(X509_get_subject_name(peer), info->peer_cn, sizeof(info->peer_cn));
	common_name(X509_get_issuer_name(peer), info->issuer_cn, sizeof(info->issuer_cn));
	fingerprints(ssl, peer, info);
}

/* " NAME (curve)" or " NAME (N bits)", Postfix's way. */
static void append_alg(str_t *out, const char *label, const char *name, const char *curve, int bits)
{
	str_appendf(out, "%s %s", label, name);
	if (*curve != '\0')
		str_appendf(out, " (%s)", curve);
	else if (bits > 0)
		str_appendf(out, " (%d bits)", bits);
}

/* Postfix's tls_log_summary(): the same line for both roles but the
 * first word and "from" / "to". */
static void log_line(const struct tls_info *info, const char *trust, const char *direction,
                     const char *peer, str_t *out)
{
	str_appendf(out, "%s TLS connection established %s %s: %s with cipher %s (%d/%d bits)",
	            trust, direction, peer, info->protocol, info->cipher, info->cipher_bits,
	            info->cipher_alg_bits);
	if (info->kex[0] != '\0')
		append_alg(out, " key-exchange", info->kex, info->kex_curve, info->kex_bits);
	if (info->server_sig[0] != '\0') {
		append_alg(out, " server-signature", info->server_sig, info->server_sig_curve,
		           info->server_sig_bits);
		if (info->server_digest[0] != '\0')
			str_appendf(out, " server-digest %s", info->server_digest);
	}
	if (info->client_sig[0] != '\0') {
		append_alg(out, " client-signature", info->client_sig, info->client_sig_curve,
		           info->client_sig_bits);
		if (info->client_digest[0] != '\0')
			str_appendf(out, " client-digest %s", info->client_digest);
	}
}

void tls_info_log_line(const struct tls_info *info, const char *peer, str_t *out)
{
	log_line(info,
	         !info->peer_cert      ? "Anonymous"
	         : info->peer_verified ? "Trusted"
	                               : "Untrusted",
	         "from", peer, out);
}

void tls_info_client_log_line(const struct tls_info *info, const char *peer, str_t *out)
{
	/* Why "Verified" needs both: Postfix's smtp calls a peer verified
	 * only when the chain is trusted and a name matched; a trusted
	 * chain alone is "Trusted". */
	log_line(info,
	         !info->peer_cert          ? "Anonymous"
	         : !info->peer_verified    ? "Untrusted"
	         : info->peer_name_matched ? "Verified"
	                                   : "Trusted",
	         "to", peer, out);
}

void tls_info_peer_line(const struct tls_info *info, const char *peer, str_t *out)
{
	str_appendf(out, "%s: subject_CN=%s, issuer=%s, fingerprint=%s, pkey_fingerprint=%s", peer,
	            info->peer_cn, info->issuer_cn, info->cert_fingerprint, info->pkey_fingerprint);
}

/* Append text as a Received comment may hold it (smtpd.c
 * comment_sanitize()): printable ASCII, backslash and unbalanced ')'
 * become '?', an unclosed '(' is closed at the end. */
static void append_comment_text(str_t *out, const char *text)
{
	int open = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		unsigned char c = *p;

		if (c >= 0x80 || c < 0x20 || c == 0x7f || c == '\\') {
			c = '?';
		} else if (c == '(') {
			open++;
		} else if (c == ')') {
			if (open > 0)
				open--;
			else
				c = '?';
		}
		str_append_c(out, (char)c);
	}
	while (open-- > 0)
		str_append_c(out, ')');
}

void tls_info_received(const struct tls_info *info, bool ask, str_t *out)
{
	bool cont = false;

	/* Why the line breaks fall where they do: Postfix 3.7 writes the
	 * cipher, then the key exchange and server signature on a line of
	 * their own, then the client signature on another (see the
	 * observed headers at the top of this file). */
	str_appendf(out, "(using %s with cipher %s (%d/%d bits)", info->protocol, info->cipher,
	            info->cipher_bits, info->cipher_alg_bits);
	if (info->kex[0] != '\0') {
		str_append(out, "\n\t");
		append_alg(out, " key-exchange", info->kex, info->kex_curve, info->kex_bits);
		cont = true;
	}
	if (info->server_sig[0] != '\0') {
		if (!cont)
			str_append(out, "\n\t");
		append_alg(out, " server-signature", info->server_sig, info->server_sig_curve,
		           info->server_sig_bits);
		if (info->server_digest[0] != '\0')
			str_appendf(out, " server-digest %s", info->server_digest);
	}
	if (info->client_sig[0] != '\0') {
		str_append(out, "\n\t");
		append_alg(out, " client-signature", info->client_sig, info->client_sig_curve,
		           info->client_sig_bits);
		if (info->client_digest[0] != '\0')
			str_appendf(out, " client-digest %s", info->client_digest);
	}
	str_append(out, ")\n\t");
	if (info->peer_cert) {
		str_append(out, "(Client CN \"");
		append_comment_text(out, info->peer_cn);
		str_append(out, "\", Issuer \"");
		append_comment_text(out, info->issuer_cn);
		str_append(out, info->peer_verified ? "\" (verified OK))" : "\" (not verified))");
	} else if (ask) {
		str_append(out, "(Client did not present a certificate)");
	} else {
		str_append(out, "(No client certificate requested)");
	}
}

void tls_errors_append(str_t *out)
{
	const char *file, *func, *data;
	int line, flags;
	unsigned long e;
	char text[256];
	bool first = true;

	/* Postfix tls_print_errors(): "error:0A000102:SSL routines::
	 * unsupported protocol:../ssl/statem/statem_srvr.c:1664:", one per
	 * queued error (here joined by "; "). */
	while ((e = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
		ERR_error_string_n(e, text, sizeof(text));
		if (!first)
			str_append(out, "; ");
		first = false;
		if ((flags & ERR_TXT_STRING) && data != NULL && *data != '\0')
			str_appendf(out, "%s:%s:%d:%s:", text, file, line, data);
		else
			str_appendf(out, "%s:%s:%d:", text, file, line);
	}
}
