/* password.c - Dovecot-compatible password hashing and verification.
 *
 * Implements password.h with libargon2 (argon2id/argon2i, the encoded
 * "$argon2id$v=19$m=...,t=...,p=...$salt$hash" form Dovecot reads and
 * writes) and libxcrypt's crypt_r (bcrypt, SHA-crypt, MD5-crypt, DES and
 * whatever else {CRYPT} may hold). Used by the user commands, the web
 * admin and SMTP AUTH.
 *
 * On failure: hashing returns -1 with a message and leaves the output
 * unchanged; verification never "fails open": anything it cannot check
 * is PASSWORD_UNUSABLE, logged with the reason (never the password).
 * Buffers that held derived secrets are wiped before they are freed.
 */
#include "auth/password.h"

#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "conf/config.h"

/* Dovecot's ARGON2ID defaults (doveadm pw -s ARGON2ID): 64 MiB, 3 passes,
 * one lane, 16 bytes of salt, 32 bytes of hash. */
#define ARGON2_T_COST 3
#define ARGON2_M_COST 65536
#define ARGON2_PARALLELISM 1
#define ARGON2_SALT_LEN 16
#define ARGON2_HASH_LEN 32

/* Bounds on the parameters of a stored argon2 hash: a hash in the
 * database asking for 4 GiB per login would be a denial of service. */
#define ARGON2_VERIFY_M_MAX (1024 * 1024) /* KiB: 1 GiB */
#define ARGON2_VERIFY_T_MAX 64
#define ARGON2_VERIFY_P_MAX 64

/* bcrypt cost for new {BLF-CRYPT} hashes. Why 12 and not Dovecot's 5:
 * doveadm's default dates from slower machines; cost 12 takes about a
 * quarter of a second today, the usual recommendation for logins. */
#define BCRYPT_COST 12
#define BCRYPT_SALT_BYTES 16

/* The longest "{SCHEME}" prefix looked at. */
#define SCHEME_NAME_MAX 32

int password_scheme_parse(const char *name, enum password_scheme *scheme_r)
{
	if (ascii_casecmp_eq(name, "ARGON2ID")) {
		*scheme_r = PASSWORD_ARGON2ID;
		return 0;
	}
	if (ascii_casecmp_eq(name, "BLF-CRYPT")) {
		*scheme_r = PASSWORD_BLF_CRYPT;
		return 0;
	}
	return -1;
}

int password_config_get(struct config *cfg, struct password_config *pc, str_t *error)
{
	const char *value, *why;

	if (config_expand(cfg, "password_scheme", &value, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	if (password_scheme_parse(value, &pc->scheme) < 0) {
		str_appendf(
		        error,
		        "%s: bad value for password_scheme: \"%s\": expected ARGON2ID or BLF-CRYPT",
		        config_where(cfg, "password_scheme"), value);
		return -1;
	}
	if (config_get_bool(cfg, "password_allow_plaintext", &pc->allow_plaintext, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	return 0;
}

/* Fill buf with len bytes from the kernel's random source. */
static int random_bytes(unsigned char *buf, size_t len, str_t *error)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(buf + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			str_appendf(error, "cannot get random bytes for a password salt: %m");
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

static void wipe_free(char *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

static int hash_argon2id(const char *plain, str_t *out, str_t *error)
{
	unsigned char salt[ARGON2_SALT_LEN];
	size_t enclen = argon2_encodedlen(ARGON2_T_COST, ARGON2_M_COST, ARGON2_PARALLELISM,
	                                  ARGON2_SALT_LEN, ARGON2_HASH_LEN, Argon2_id);
	char *encoded;
	int rc;

	if (random_bytes(salt, sizeof(salt), error) < 0)
		return -1;
	encoded = xmalloc(enclen);
	rc = argon2id_hash_encoded(ARGON2_T_COST, ARGON2_M_COST, ARGON2_PARALLELISM, plain,
	                           strlen(plain), salt, sizeof(salt), ARGON2_HASH_LEN, encoded,
	                           enclen);
	explicit_bzero(salt, sizeof(salt));
	if (rc != ARGON2_OK) {
		str_appendf(error, "argon2id hashing failed: %s", argon2_error_message(rc));
		wipe_free(encoded, enclen);
		return -1;
	}
	str_append(out, "{ARGON2ID}");
	str_append(out, encoded);
	wipe_free(encoded, enclen);
	return 0;
}

static int hash_bcrypt(const char *plain, str_t *out, str_t *error)
{
	unsigned char rbytes[BCRYPT_SALT_BYTES];
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	int ret = -1;

	if (random_bytes(rbytes, sizeof(rbytes), error) < 0)
		return -1;
	if (crypt_gensalt_rn("$2y$", BCRYPT_COST, (const char *)rbytes, sizeof(rbytes), setting,
	                     sizeof(setting)) == NULL) {
		explicit_bzero(rbytes, sizeof(rbytes));
		str_appendf(error, "bcrypt salt generation failed: %m");
		return -1;
	}
	explicit_bzero(rbytes, sizeof(rbytes));
	cd = xcalloc(1, sizeof(*cd));
	h = crypt_r(plain, setting, cd);
	if (h == NULL || strncmp(h, "$2y$", 4) != 0) {
		str_appendf(error, "bcrypt hashing failed: %m");
	} else {
		str_append(out, "{BLF-CRYPT}");
		str_append(out, h);
		ret = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ret;
}

int password_hash(enum password_scheme scheme, const char *plain, str_t *out, str_t *error)
{
	if (strlen(plain) > PASSWORD_MAX) {
		str_appendf(error, "password longer than %d bytes", PASSWORD_MAX);
		return -1;
	}
	switch (scheme) {
	case PASSWORD_ARGON2ID:
		return hash_argon2id(plain, out, error);
	case PASSWORD_BLF_CRYPT:
		return hash_bcrypt(plain, out, error);
	}
	str_append(error, "unknown password scheme");
	return -1;
}

/* Equal lengths and bytes, in a time that depends only on the lengths. */
static bool ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen > blen ? alen : blen;
	unsigned char diff = alen != blen;

	for (size_t i = 0; i < n; i++) {
		unsigned char x = i < alen ? (unsigned char)a[i] : 0;
		unsigned char y = i < blen ? (unsigned char)b[i] : 0;

		diff |= x ^ y;
	}
	return diff == 0;
}

/* Read "NAME=<digits>" at *pp (the number ends at ',' or '$'). */
static int argon2_param(const char **pp, const char *name, uint64_t max, uint64_t *value_r)
{
	size_t nlen = strlen(name), len;
	const char *p = *pp;
	char *digits;
	int ret;

	if (strncmp(p, name, nlen) != 0 || p[nlen] != '=')
		return -1;
	p += nlen + 1;
	len = strcspn(p, ",$");
	digits = xstrndup(p, len);
	ret = parse_uint64(digits, 1, max, value_r);
	free(digits);
	*pp = p + len;
	return ret;
}

/* Check the cost parameters of an encoded argon2 hash against our bounds
 * before libargon2 allocates memory for them. */
static int argon2_params_ok(const char *encoded, const char *prefix)
{
	const char *p = encoded + strlen(prefix);
	uint64_t m, t, par;

	/* "$argon2id$v=19$m=65536,t=3,p=1$..." (the v= part may be absent
	 * in hashes of version 0x10). */
	if (strncmp(p, "v=", 2) == 0) {
		p = strchr(p, '$');
		if (p == NULL)
			return -1;
		p++;
	}
	if (argon2_param(&p, "m", ARGON2_VERIFY_M_MAX, &m) < 0 || *p++ != ',' ||
	    argon2_param(&p, "t", ARGON2_VERIFY_T_MAX, &t) < 0 || *p++ != ',' ||
	    argon2_param(&p, "p", ARGON2_VERIFY_P_MAX, &par) < 0 || *p != '$')
		return -1;
	return 0;
}

static enum password_result verify_argon2(const char *plain, const char *hash, argon2_type type,
                                          const char **why_r)
{
	const char *prefix = type == Argon2_id ? "$argon2id$" : "$argon2i$";
	int rc;

	if (strncmp(hash, prefix, strlen(prefix)) != 0) {
		*why_r = type == Argon2_id ? "hash does not start with $argon2id$"
		                           : "hash does not start with $argon2i$";
		return PASSWORD_UNUSABLE;
	}
	if (argon2_params_ok(hash, prefix) < 0) {
		*why_r = "malformed argon2 parameters, or costs above postern's bounds";
		return PASSWORD_UNUSABLE;
	}
	/* argon2_verify compares in constant time. */
	rc = argon2_verify(hash, plain, strlen(plain), type);
	if (rc == ARGON2_OK)
		return PASSWORD_MATCH;
	if (rc == ARGON2_VERIFY_MISMATCH)
		return PASSWORD_MISMATCH;
	*why_r = argon2_error_message(rc);
	return PASSWORD_UNUSABLE;
}

static enum password_result verify_crypt(const char *plain, const char *hash,
                                         const char *const *prefixes, const char **why_r)
{
	enum password_result res;
	struct crypt_data *cd;
	const char *h;
	bool prefix_ok = prefixes == NULL;

	for (size_t i = 0; prefixes != NULL && prefixes[i] != NULL; i++)
		if (strncmp(hash, prefixes[i], strlen(prefixes[i])) == 0)
			prefix_ok = true;
	if (!prefix_ok) {
		*why_r = "the hash does not have the form of its scheme";
		return PASSWORD_UNUSABLE;
	}
	cd = xcalloc(1, sizeof(*cd));
	h = crypt_r(plain, hash, cd);
	/* libxcrypt answers a setting it cannot use with NULL or with a
	 * string starting with '*' (which never equals a real hash). */
	if (h == NULL || h[0] == '*') {
		*why_r = "the hash is not in a format crypt(3) understands";
		res = PASSWORD_UNUSABLE;
	} else {
		res = ct_equal(h, strlen(h), hash, strlen(hash)) ? PASSWORD_MATCH
		                                                 : PASSWORD_MISMATCH;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return res;
}

enum password_result password_verify(const char *plain, const char *stored, bool allow_plaintext,
                                     const char *who)
{
	static const char *const blf[] = {"$2y$", "$2b$", "$2a$", NULL};
	static const char *const sha512[] = {"$6$", NULL};
	static const char *const sha256[] = {"$5$", NULL};
	static const char *const md5[] = {"$1$", NULL};
	const char *close, *hash, *why = NULL;
	enum password_result res = PASSWORD_UNUSABLE;
	char *scheme = NULL;

	if (who == NULL)
		who = "password";
	if (stored[0] != '{' ||
	    (close = memchr(stored, '}', strnlen(stored, SCHEME_NAME_MAX))) == NULL) {
		log_warning("%s: stored password has no {SCHEME} prefix: cannot verify", who);
		return PASSWORD_UNUSABLE;
	}
	scheme = xstrndup(stored + 1, (size_t)(close - stored - 1));
	hash = close + 1;
	if (strlen(plain) > PASSWORD_MAX) {
		res = PASSWORD_MISMATCH; /* no stored password can be this long */
	} else if (ascii_casecmp_eq(scheme, "ARGON2ID")) {
		res = verify_argon2(plain, hash, Argon2_id, &why);
	} else if (ascii_casecmp_eq(scheme, "ARGON2I")) {
		res = verify_argon2(plain, hash, Argon2_i, &why);
	} else if (ascii_casecmp_eq(scheme, "BLF-CRYPT")) {
		res = verify_crypt(plain, hash, blf, &why);
	} else if (ascii_casecmp_eq(scheme, "SHA512-CRYPT")) {
		res = verify_crypt(plain, hash, sha512, &why);
	} else if (ascii_casecmp_eq(scheme, "SHA256-CRYPT")) {
		res = verify_crypt(plain, hash, sha256, &why);
	} else if (ascii_casecmp_eq(scheme, "MD5-CRYPT")) {
		res = verify_crypt(plain, hash, md5, &why);
	} else if (ascii_casecmp_eq(scheme, "CRYPT")) {
		res = verify_crypt(plain, hash, NULL, &why);
	} else if (ascii_casecmp_eq(scheme, "PLAIN") || ascii_casecmp_eq(scheme, "CLEARTEXT")) {
		if (allow_plaintext)
			res = ct_equal(plain, strlen(plain), hash, strlen(hash))
			              ? PASSWORD_MATCH
			              : PASSWORD_MISMATCH;
		else
			why = "plaintext passwords are refused (password_allow_plaintext = no)";
	} else {
		why = "unknown password scheme";
	}
	if (res == PASSWORD_UNUSABLE)
		log_warning("%s: cannot verify a {%s} password: %s", who, scheme,
		            why != NULL ? why : "unusable hash");
	free(scheme);
	return res;
}
