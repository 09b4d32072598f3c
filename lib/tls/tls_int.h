/* tls_int.h - what the files of lib/tls share with each other and with
 * nobody else (tests may include it).
 *
 * tls_server.c builds contexts, holds the context pieces tls_client.c
 * shares and owns the per-connection peer name;
 * tls_info.c reads connections through the accessors below; tls_tickets.c
 * owns the ticket key file format, the reader that smtpd processes use
 * and the OpenSSL ticket callback.
 */
#ifndef POSTERN_TLS_INT_H
#define POSTERN_TLS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "base/str.h"
#include "tls/tls.h"

/* ---- tls_server.c: per-connection and per-context data ---- */

/* The peer string given to tls_server_ssl_new() ("name[addr]"), or
 * "unknown" for an SSL made elsewhere. */
const char *tls_ssl_peer(const SSL *ssl);
/* smtpd_tls_fingerprint_digest of the server that made ssl ("sha256"
 * when unknown). */
const char *tls_ssl_fingerprint_digest(const SSL *ssl);

/* Allocate the ex_data indexes (once per process). 0, or -1 with a
 * message. Every context constructor calls it first. */
int tls_ex_init(str_t *error);
/* Attach a copy of peer ("name[addr]"; NULL: "unknown") to ssl, for
 * tls_ssl_peer(). -1 on memory failure. */
int tls_ssl_set_peer(SSL *ssl, const char *peer);

/* ---- tls_server.c: context pieces the server and client share ---- */

/* Protocols from a Postfix protocol list (tls_protocols_parse()) as
 * SSL_OP_NO_* and a minimum/maximum version. -1 with a message naming
 * param. */
int tls_ctx_set_protocols(SSL_CTX *ctx, const char *param, const char *value, str_t *error);

/* What the TLS 1.2 cipher list is made of (Postfix tls_set_ciphers()). */
struct tls_cipher_spec {
	const char *param; /* the grade's parameter, for messages */
	const char *grade; /* "high", "medium", ...; NULL or "": medium */
	const struct tls_cipher_grades *grades;
	const char *exclude; /* names to exclude, comma/space/colon separated */
	const char *exclude_param; /* its parameter, for messages */
	bool no_anull; /* append ":!aNULL" unless exclude has it */
	bool no_kecdhe; /* append ":!kECDHE" */
};
/* Set the cipher list of spec on ctx; *list_r gets the list (free it),
 * for loglevel 2. -1 with a message naming the parameter. */
int tls_ctx_set_ciphers(SSL_CTX *ctx, const struct tls_cipher_spec *spec, char **list_r,
                        str_t *error);
/* Load a certificate (leaf then chain) from cert_file and its private
 * key from key_file (NULL or "": cert_file), read with fs_read_file().
 * -1 with a message naming the file (a key that does not match names
 * both). */
int tls_ctx_load_cert_key(SSL_CTX *ctx, const char *cert_file, const char *key_file, str_t *error);
/* Trust anchors from ca_file (PEM, read with fs_read_file()) and
 * ca_path (a directory OpenSSL reads when verifying); either may be
 * NULL or "". send_names: send ca_file's subject names to clients as
 * acceptable CAs (server only). -1 with a message naming the file. */
int tls_ctx_load_cas(SSL_CTX *ctx, const char *ca_file, const char *ca_path, bool send_names,
                     str_t *error);
/* One certificate of a chain being verified, for loglevel >= 2, as
 * Postfix: "PEER: depth=0 verify=1 subject=/CN=mx.example.com". */
void tls_verify_log(const SSL *ssl, X509_STORE_CTX *store_ctx, int ok);
/* Handshake progress for loglevel >= 2 (SSL_CTX_set_info_callback). */
void tls_info_cb(const SSL *ssl, int where, int ret);

/* ---- tls_client.c: per-connection client state ---- */

/* For a client SSL made by tls_client_ssl_new(): whether the server's
 * chain failed verification (the name check aside), and OpenSSL's
 * first error for it (X509_V_OK when it verified). false with
 * X509_V_OK for any other SSL. */
bool tls_client_chain_failed(const SSL *ssl, long *error_r);

/* ---- tls_tickets.c: session ticket keys ---- */

#define TLS_TICKET_NAME_LEN 16
#define TLS_TICKET_AES_LEN 32 /* AES-256-CBC */
#define TLS_TICKET_HMAC_LEN 32 /* HMAC-SHA256 */
/* Keys a file may hold; rotation writes two. */
#define TLS_TICKET_KEYS_MAX 8

struct tls_ticket_key {
	unsigned char name[TLS_TICKET_NAME_LEN];
	int64_t created; /* seconds since the epoch */
	unsigned char aes[TLS_TICKET_AES_LEN];
	unsigned char hmac[TLS_TICKET_HMAC_LEN];
};

/* Parse the contents of a ticket key file (format: tls_tickets.c) into
 * keys (at most TLS_TICKET_KEYS_MAX, newest first). -1 with a message
 * naming path on a malformed file or one without keys. */
int tls_ticket_keys_parse(const char *data, size_t len, const char *path,
                          struct tls_ticket_key *keys, size_t *n_r, str_t *error);
/* Append the file form of keys[0..n) to out. */
void tls_ticket_keys_format(const struct tls_ticket_key *keys, size_t n, str_t *out);

/* Install ticket handling on ctx: keys from path (NULL or "": keys of
 * this process only), re-read when the file changes, at most once a
 * second. The store belongs to ctx and is freed with it. 0, or -1 with
 * a message (memory only). */
int tls_tickets_attach(SSL_CTX *ctx, const char *path, str_t *error);

#endif
