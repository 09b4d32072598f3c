/* tls.h - TLS for postern's servers (OpenSSL 3), with Postfix's
 * parameters, defaults and log lines.
 *
 * Used by smtpd (STARTTLS and the smtps wrapper mode), master (the
 * session ticket keys it shares among smtpd processes) and `postern tls`
 * (a self-signed test certificate). Later: the smtp client, the web
 * admin's HTTPS. Knows nothing about configuration files: the caller
 * reads the parameters and fills struct tls_server_settings.
 *
 * Files named in the settings (certificates, keys, CA file, ticket keys)
 * are read with fs_read_file() (base/fs.h), which goes through
 * fs_open_inherited(), so a daemon whose master opened the key file as
 * root reads it through the inherited descriptor and never needs root
 * itself. (ca_path, a directory, is read by OpenSSL when it verifies.)
 *
 * Every error message names the file or parameter and what was expected.
 */
#ifndef POSTERN_TLS_H
#define POSTERN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/str.h"
#include "base/strv.h"

typedef struct ssl_st SSL;

/* ---- protocols (tls_proto.c) ---- */

/* Bits of the protocol versions a list disables. */
enum {
	TLS_PROTO_SSLv2 = 1 << 0,
	TLS_PROTO_SSLv3 = 1 << 1,
	TLS_PROTO_TLSv1 = 1 << 2,
	TLS_PROTO_TLSv1_1 = 1 << 3,
	TLS_PROTO_TLSv1_2 = 1 << 4,
	TLS_PROTO_TLSv1_3 = 1 << 5,
};

/* Parse a Postfix protocol list (smtpd_tls_protocols, ..._mandatory_):
 * ">=TLSv1.2", "<=TLSv1.2", ">=TLSv1, <=TLSv1.2", "!SSLv2, !SSLv3, !TLSv1",
 * "TLSv1.2 TLSv1.3" (an inclusion list), separators comma, colon or
 * white space, names compared without regard to case as Postfix 3.7
 * does ("!sslv2" works there). An empty value disables nothing.
 * *disabled_r gets the TLS_PROTO_* bits of every version the list leaves
 * out. -1 with "param: unknown protocol X (expected SSLv2, SSLv3, TLSv1,
 * TLSv1.1, TLSv1.2, TLSv1.3, optionally with ! or >= / <=)" or when no
 * TLS version is left enabled; param names the parameter in messages. */
int tls_protocols_parse(const char *param, const char *value, unsigned *disabled_r, str_t *error);

/* ---- server contexts (tls_server.c) ---- */

/* The OpenSSL cipher list of each Postfix grade (tls_*_cipherlist).
 * As in Postfix 3.6 and later, grades "low" and "export" use the medium
 * list; low and export_ are not read. */
struct tls_cipher_grades {
	const char *high, *medium, *low, *export_, *null;
};

struct tls_server_settings {
	/* Keys and certificates. chain_files (smtpd_tls_chain_files), when
	 * not empty, is used instead of the four below: each file holds a
	 * private key followed by its certificate chain, leaf first (one
	 * RSA and one ECDSA file, typically). Otherwise cert_file/key_file
	 * (RSA or ECDSA) and eccert_file/eckey_file (ECDSA; may be empty).
	 * A key that does not match its certificate is an error naming both
	 * files. */
	const strv_t *chain_files;
	const char *cert_file, *key_file;
	const char *eccert_file, *eckey_file;

	/* Protocols: the value of smtpd_tls_protocols (opportunistic) or
	 * smtpd_tls_mandatory_protocols (security level encrypt), and its
	 * parameter name for messages. */
	const char *protocols, *protocols_param;
	/* Ciphers: the grade ("high", "medium", "low", "export", "null")
	 * with its parameter name, the grade lists, and the cipher names
	 * to exclude (smtpd_tls_exclude_ciphers, plus the mandatory ones
	 * with encrypt), comma/space/colon separated. With ask_ccert or
	 * req_ccert, aNULL is excluded too (as Postfix's smtpd does). */
	const char *grade, *grade_param;
	struct tls_cipher_grades grades;
	const char *exclude_ciphers;
	bool preempt_ciphers; /* tls_preempt_cipherlist */
	/* ECDHE groups: eecdh_grade "auto" (or empty) uses auto_curves (a
	 * list of group names; unknown ones are skipped, and when none is
	 * known OpenSSL's default stays, with a warning), "strong"/"ultra"
	 * the one named curve, "none" excludes kECDHE from the TLS 1.2
	 * ciphers. */
	const char *eecdh_grade, *auto_curves, *strong_curve, *ultra_curve;

	/* Client certificates: ask (smtpd_tls_ask_ccert) or require
	 * (smtpd_tls_req_ccert); verified against ca_file/ca_path (may be
	 * empty) down to verify_depth (0: OpenSSL's default). The CA
	 * names of ca_file are sent to the client. An unverified
	 * certificate never fails the handshake: the session learns
	 * whether it verified. */
	bool ask_ccert, req_ccert;
	const char *ca_file, *ca_path;
	int verify_depth;
	const char *fingerprint_digest; /* smtpd_tls_fingerprint_digest: md5, sha1, sha256, ... */

	/* Session resumption with RFC 5077 tickets: lifetime in seconds (0
	 * = no resumption). The keys come from ticket_key_file (written by
	 * master: tls_ticket_keys_rotate), re-read when it changes (looked
	 * at no more than once a second); when unreadable, a key made in
	 * this process (resumption only with the same process), with one
	 * warning per process; NULL or empty: that key, without a warning. The file is replaced by rename:
	 * it must not be one of the inherited files (fs_inherited_add). */
	unsigned session_timeout;
	const char *ticket_key_file;

	/* smtpd_tls_loglevel: 0 nothing, 1 the "established" line and
	 * failures (both logged by the caller), 2 adds the handshake's
	 * progress ("SSL_accept:..."), each certificate the client sends
	 * ("PEER: depth=0 verify=1 subject=...") and, per connection,
	 * "setting up TLS connection from PEER" and the cipher list. */
	int loglevel;
};

struct tls_server;

/* Build a server context. -1 with a message naming the file or
 * parameter on any error (missing/unreadable file, bad PEM, key does
 * not match certificate, unknown grade, a cipher list OpenSSL refuses,
 * protocols that leave nothing). */
int tls_server_new(const struct tls_server_settings *set, struct tls_server **srv_r, str_t *error);
/* No-op on NULL; *srvp set to NULL. */
void tls_server_free(struct tls_server **srvp);

/* A new server-side SSL for one connection (accept state; the caller
 * hands it to libevent's bufferevent_openssl_filter_new). peer names the
 * client for log lines ("name[addr]"); it is copied and lives as long as
 * the SSL. NULL on memory failure only. The SSL keeps the context alive
 * even after tls_server_free(). */
SSL *tls_server_ssl_new(struct tls_server *srv, const char *peer);

/* What the handshake gave, for log lines, the Received header, the
 * restrictions and the policy protocol. "peer" is the other side: the
 * client for a server SSL, the server for a client SSL; "server_*" and
 * "client_*" name the roles whichever side reads them. */
struct tls_info {
	char protocol[16]; /* "TLSv1.3" */
	char cipher[64]; /* "TLS_AES_256_GCM_SHA384" */
	int cipher_bits, cipher_alg_bits; /* "(256/256 bits)" */
	/* Key exchange and signatures: TLS 1.3 only, as in Postfix; all
	 * empty for TLS 1.2 and older. */
	char kex[32]; /* "X25519", "ECDHE", "DHE"; "" when unknown */
	char kex_curve[32]; /* with ECDHE: "prime256v1" */
	int kex_bits; /* with DHE */
	char server_sig[32]; /* "RSA-PSS", "ECDSA" */
	int server_sig_bits; /* RSA */
	char server_sig_curve[32]; /* ECDSA: "prime256v1" */
	char server_digest[16]; /* "SHA256"; "" when none (resumed) */
	bool resumed; /* the session was resumed from a ticket */
	/* Client certificate. */
	bool peer_cert; /* the client presented one */
	bool peer_verified; /* ... and its chain verified against the CAs */
	/* Client role (tls_client_ssl_new() with a verify_name): the name
	 * was checked, and the certificate matched it. */
	bool peer_name_checked, peer_name_matched;
	char verify_error[128]; /* why not, in OpenSSL's words; "" if verified */
	/* Subject and issuer CN as UTF-8, cut to fit; "" when there is none
	 * or it holds a NUL or an ASCII control (Postfix refuses those).
	 * tls_info_received() reduces them to printable ASCII. */
	char peer_cn[256];
	char issuer_cn[256];
	/* smtpd_tls_fingerprint_digest of the DER certificate and of its
	 * DER SubjectPublicKeyInfo: upper-case hex pairs joined by ':', as
	 * Postfix (room for SHA-512). */
	char cert_fingerprint[192];
	char pkey_fingerprint[192];
	char client_sig[32]; /* "client-signature RSA-PSS (2048 bits)" parts */
	int client_sig_bits;
	char client_sig_curve[32];
	char client_digest[16];
};

/* Fill info from a connection whose handshake has completed. */
void tls_info_get(SSL *ssl, struct tls_info *info);

/* Postfix's line after the handshake (smtpd_tls_loglevel >= 1):
 * "Anonymous TLS connection established from PEER: TLSv1.3 with cipher
 * TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519
 * server-signature RSA-PSS (2048 bits) server-digest SHA256" ("Trusted"
 * / "Untrusted" with a verified / unverified client certificate, and
 * then client-signature ... client-digest ...). Appended to out. */
void tls_info_log_line(const struct tls_info *info, const char *peer, str_t *out);

/* Postfix's client certificate line (loglevel >= 2, with a certificate):
 * "PEER: subject_CN=client.example.test, issuer=Test CA,
 * fingerprint=CE:F4:..., pkey_fingerprint=81:3F:...". Appended to out. */
void tls_info_peer_line(const struct tls_info *info, const char *peer, str_t *out);

/* The Received header's TLS comment (smtpd_tls_received_header = yes),
 * lines separated by "\n\t", appended to out: "(using TLSv1.3 with
 * cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n\t key-exchange X25519
 * server-signature RSA-PSS (2048 bits) server-digest SHA256)\n\t(No
 * client certificate requested)" (or "(Client did not present a
 * certificate)", "(Client CN \"x\", Issuer \"y\" (verified OK))", "(not
 * verified)"), as Postfix 3.7 writes it. ask is whether a certificate
 * was requested. */
void tls_info_received(const struct tls_info *info, bool ask, str_t *out);

/* The OpenSSL errors queued in this thread as text, for log lines, in
 * Postfix's form ("error:0A000102:SSL routines::unsupported protocol:
 * ../ssl/statem/statem_srvr.c:1664:"), several joined by "; "; nothing
 * is appended when the queue is empty. The queue is cleared. */
void tls_errors_append(str_t *out);

/* ---- client contexts (tls_client.c) ---- */

struct tls_client_settings {
	/* Protocols: smtp_tls_protocols (or ..._mandatory_protocols) and
	 * its parameter name for messages, as for the server. */
	const char *protocols, *protocols_param;
	/* Ciphers: grade ("high", "medium", "low", "export", "null") with
	 * its parameter name, the grade lists, and the names to exclude
	 * (smtp_tls_exclude_ciphers, plus the mandatory ones with encrypt
	 * and above). */
	const char *grade, *grade_param;
	struct tls_cipher_grades grades;
	const char *exclude_ciphers;
	const char *exclude_param; /* its parameter's name, for messages */
	/* Trust anchors for server certificates (smtp_tls_CAfile,
	 * smtp_tls_CApath); either may be NULL or empty. */
	const char *ca_file, *ca_path;
	/* Optional client certificate (smtp_tls_cert_file, smtp_tls_key_file;
	 * key_file empty: in cert_file). NULL or empty: none. */
	const char *cert_file, *key_file;
	/* smtp_tls_loglevel: 2 adds "setting up TLS connection to PEER",
	 * the handshake's progress and each server certificate. */
	int loglevel;
};

struct tls_client;

/* Build a client context. -1 with a message naming the file or
 * parameter on any error (as tls_server_new()). */
int tls_client_new(const struct tls_client_settings *set, struct tls_client **cli_r, str_t *error);
/* No-op on NULL; *clip set to NULL. SSLs made from it stay usable. */
void tls_client_free(struct tls_client **clip);

/* A new client-side SSL for one connection (connect state). peer names
 * the server for log lines ("host[addr]:port"; copied). sni, when not
 * NULL, is sent as the server name (RFC 6066). verify_name, when not
 * NULL, is the name the server certificate must match (no partial
 * wildcards such as "mx*.example.com"); NULL: no name check.
 *
 * Why verification never fails the handshake: the security level
 * (may, encrypt, verify, secure) decides what an unverified server
 * means, and "may" delivers anyway; so the handshake completes and the
 * caller reads tls_info_get()'s peer_verified / peer_name_matched.
 * NULL on memory failure, or when OpenSSL refuses sni or verify_name
 * (an empty name, say). */
SSL *tls_client_ssl_new(struct tls_client *cli, const char *peer, const char *sni,
                        const char *verify_name);

/* Offer the session kept under key (if any, and not expired) on ssl, and
 * keep the session this connection gets under key, for the next
 * connection (session resumption). key names the server and what the
 * session must match: "host[addr]:port" and the SNI name, say. The
 * SSL must come from cli, and the cache must not outlive cli: a live
 * SSL whose cli was freed does not cache (the SSLs keep working).
 * tls_info_get()'s resumed says whether it was used. */
void tls_client_ssl_resume(struct tls_client *cli, SSL *ssl, const char *key);

/* Postfix's client line after the handshake (smtp_tls_loglevel >= 1):
 * "Verified TLS connection established to mx.example.com[192.0.2.1]:25:
 * TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
 * key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest
 * SHA256". The first word: "Anonymous" (no server certificate),
 * "Untrusted" (its chain did not verify), "Trusted" (chain verified,
 * name not checked or not matched), "Verified" (chain and name).
 * Appended to out. */
void tls_info_client_log_line(const struct tls_info *info, const char *peer, str_t *out);

/* ---- session ticket keys (tls_tickets.c) ---- */

/* The ticket key file master keeps for smtpd, in data_directory. */
#define TLS_SMTPD_TICKET_FILE "smtpd_tls_tickets"

/* Master: make sure path holds a current key (created within the last
 * `lifetime` seconds; lifetime 0 rotates on every call); otherwise write
 * a new key file with a fresh key first and the previous one after it
 * (so tickets made with the old key still resume), atomically (temporary
 * file, fsync, rename), mode 0600, owned by uid/gid (-1: unchanged). An
 * unreadable or malformed file is replaced with a warning. *next_r is
 * when to call again. -1 with a message naming the file. The format is
 * described in tls_tickets.c. */
int tls_ticket_keys_rotate(const char *path, unsigned lifetime, long uid, long gid, time_t *next_r,
                           str_t *error);

/* ---- test certificates (tls_selfsigned.c) ---- */

/* Write a self-signed certificate for cn (also its subjectAltName DNS
 * name) valid for days, with a new key (RSA 2048, or ECDSA P-256 when
 * ecdsa), to cert_path (mode 0644) and key_path (mode 0600), each
 * atomically. -1 with a message naming the file. */
int tls_selfsigned_write(const char *cert_path, const char *key_path, const char *cn, unsigned days,
                         bool ecdsa, str_t *error);

#endif
