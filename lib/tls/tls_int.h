/* tls_int.h - what the files of lib/tls share with each other and with
 * nobody else (tests may include it).
 *
 * tls_server.c builds contexts and owns the per-connection ex_data;
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

/* ---- tls_server.c: per-connection and per-context data ---- */

/* The peer string given to tls_server_ssl_new() ("name[addr]"), or
 * "unknown" for an SSL made elsewhere. */
const char *tls_ssl_peer(const SSL *ssl);
/* smtpd_tls_fingerprint_digest of the server that made ssl ("sha256"
 * when unknown). */
const char *tls_ssl_fingerprint_digest(const SSL *ssl);

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
