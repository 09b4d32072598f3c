/* password.h - password hashes in Dovecot's scheme-prefixed form.
 *
 * Mailbox and admin passwords are stored as Dovecot stores them,
 * "{SCHEME}hash", so that Dovecot authenticates IMAP users from the same
 * rows (doc: Dovecot "Password Schemes"). New hashes are {ARGON2ID}
 * (argon2id, m=64 MiB, t=3, p=1, 16-byte salt, 32-byte hash: the encoded
 * form `doveadm pw -s ARGON2ID` writes) or, with password_scheme =
 * BLF-CRYPT, {BLF-CRYPT} (bcrypt "$2y$"). Verification understands what
 * an existing Dovecot or PostfixAdmin database holds: {ARGON2ID},
 * {ARGON2I}, {BLF-CRYPT}, {SHA512-CRYPT}, {SHA256-CRYPT}, {MD5-CRYPT},
 * {CRYPT}, and {PLAIN}/{CLEARTEXT} only when password_allow_plaintext =
 * yes. Scheme names are case-insensitive, as in Dovecot.
 *
 * Used by `postern user add|passwd`, the web admin and SMTP AUTH.
 */
#ifndef POSTERN_PASSWORD_H
#define POSTERN_PASSWORD_H

#include <stdbool.h>

#include "base/str.h"

struct config;

/* The schemes postern hashes new passwords with. */
enum password_scheme {
	PASSWORD_ARGON2ID,
	PASSWORD_BLF_CRYPT,
};

/* What a verification found. */
enum password_result {
	PASSWORD_MATCH,
	PASSWORD_MISMATCH,
	/* The stored value cannot be checked: unknown scheme, no "{SCHEME}"
	 * prefix, malformed hash, or a plaintext scheme while
	 * password_allow_plaintext = no. The reason has been logged as a
	 * warning (never with the password). Callers treat it as a failed
	 * login. */
	PASSWORD_UNUSABLE,
};

/* The password settings of a configuration. */
struct password_config {
	enum password_scheme scheme; /* password_scheme */
	bool allow_plaintext; /* password_allow_plaintext */
};

/* The Dovecot scheme name for password_scheme ("ARGON2ID", "BLF-CRYPT";
 * case-insensitive). -1 for any other name. */
int password_scheme_parse(const char *name, enum password_scheme *scheme_r);

/* Read password_scheme and password_allow_plaintext from cfg. -1 with a
 * message naming the parameter, where it was set and what was expected. */
int password_config_get(struct config *cfg, struct password_config *pc, str_t *error);

/* Hash plain (a NUL-terminated string, at most PASSWORD_MAX bytes) with a
 * fresh random salt; the "{SCHEME}..." text is appended to out. -1 with a
 * message on error (no randomness, too long, library failure); out is
 * then unchanged. */
int password_hash(enum password_scheme scheme, const char *plain, str_t *out, str_t *error);

/* Check plain against a stored "{SCHEME}hash". Comparisons take a time
 * that does not depend on where the values differ. See enum
 * password_result; who (may be NULL: "password") names the account in
 * the logged reason of PASSWORD_UNUSABLE. */
enum password_result password_verify(const char *plain, const char *stored, bool allow_plaintext,
                                     const char *who);

/* Longest password accepted, in bytes: libxcrypt's limit
 * (CRYPT_MAX_PASSPHRASE_SIZE less the NUL), so that a password set under
 * one scheme can be set under any other. */
#define PASSWORD_MAX 511

#endif
