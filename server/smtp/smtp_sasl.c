/* smtp_sasl.c - the SASL client of SMTP AUTH (RFC 4954) for the smtp and
 * lmtp clients: mechanism choice and the exchange.
 *
 * Used by smtp_session.c once a password was found in
 * smtp_sasl_password_maps. The mechanisms are built in: PLAIN (RFC
 * 4616), LOGIN and CRAM-MD5 (RFC 2195), the ones relay hosts and
 * submission services offer; the choice among those the server
 * offers, in that order of preference (CRAM-MD5 first: the password
 * never crosses the wire), keeps only what smtp_sasl_mechanism_filter
 * names (when set) and what the security options allow, with Cyrus
 * SASL's meaning:
 *   noplaintext   no PLAIN, LOGIN (the password in the clear)
 *   noanonymous   no ANONYMOUS (never offered by this client anyway)
 *   nodictionary, noactive, mutual_auth   none of the three
 * smtp_sasl_tls_security_options applies instead once TLS is active,
 * so the usual smarthost setup (`smtp_sasl_tls_security_options =
 * noanonymous`, STARTTLS first) sends PLAIN only inside TLS.
 *
 * The password is kept only for the exchange and wiped after it.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base64.h"
#include "base/mem.h"
#include "smtp.h"

enum mech { MECH_CRAM_MD5, MECH_PLAIN, MECH_LOGIN };

static const char *const mech_names[] = {"CRAM-MD5", "PLAIN", "LOGIN"};

struct smtp_sasl {
	enum mech mech;
	char *user, *password;
	unsigned step;
	str_t initial;
};

static bool listed(const strv_t *list, const char *word)
{
	for (size_t i = 0; i < list->n; i++)
		if (strcasecmp(list->v[i], word) == 0)
			return true;
	return false;
}

static bool offered(const char *offer, const char *name)
{
	size_t len = strlen(name);

	for (const char *p = offer; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, " \t");

		if (n == len && strncasecmp(p, name, n) == 0)
			return true;
		p += n;
		p += strspn(p, " \t");
	}
	return false;
}

static bool allowed(const strv_t *options, enum mech m)
{
	if (listed(options, "nodictionary") || listed(options, "noactive") ||
	    listed(options, "mutual_auth"))
		return false;
	if (m != MECH_CRAM_MD5 && listed(options, "noplaintext"))
		return false;
	return true;
}

struct smtp_sasl *smtp_sasl_new(const struct smtp_settings *s, const char *offer, bool tls,
                                const char *user, const char *password, str_t *why)
{
	const strv_t *options = tls ? &s->sasl_tls_security : &s->sasl_security;
	struct smtp_sasl *sasl;

	for (enum mech m = MECH_CRAM_MD5; m <= MECH_LOGIN; m++) {
		if (!offered(offer, mech_names[m]) || !allowed(options, m))
			continue;
		if (s->sasl_mech_filter.n > 0 && !listed(&s->sasl_mech_filter, mech_names[m]))
			continue;
		sasl = xcalloc(1, sizeof(*sasl));
		sasl->mech = m;
		sasl->user = xstrdup(user);
		sasl->password = xstrdup(password);
		str_init(&sasl->initial);
		return sasl;
	}
	str_appendf(why, "no mechanism available (server offers \"%s\"; %s = %s%s)", offer,
	            tls ? "smtp_sasl_tls_security_options" : "smtp_sasl_security_options",
	            options->n > 0 ? options->v[0] : "", options->n > 1 ? ", ..." : "");
	return NULL;
}

void smtp_sasl_free(struct smtp_sasl **sp)
{
	struct smtp_sasl *sasl = *sp;

	if (sasl == NULL)
		return;
	*sp = NULL;
	OPENSSL_cleanse(sasl->password, strlen(sasl->password));
	if (sasl->initial.buf != NULL)
		OPENSSL_cleanse(sasl->initial.buf, sasl->initial.len);
	free(sasl->user);
	free(sasl->password);
	str_free(&sasl->initial);
	free(sasl);
}

const char *smtp_sasl_mech(const struct smtp_sasl *sasl)
{
	return mech_names[sasl->mech];
}

const char *smtp_sasl_initial(struct smtp_sasl *sasl)
{
	str_t raw;

	if (sasl->mech != MECH_PLAIN)
		return NULL;
	/* authzid NUL authcid NUL password (RFC 4616), no authzid. */
	str_init(&raw);
	str_append_c(&raw, '\0');
	str_append(&raw, sasl->user);
	str_append_c(&raw, '\0');
	str_append(&raw, sasl->password);
	str_reset(&sasl->initial);
	base64_encode(raw.buf, raw.len, &sasl->initial);
	OPENSSL_cleanse(raw.buf, raw.len);
	str_free(&raw);
	return str_c(&sasl->initial);
}

int smtp_sasl_step(struct smtp_sasl *sasl, const char *challenge, str_t *out, str_t *why)
{
	const char *err;
	str_t decoded;
	int rc = -1;

	str_init(&decoded);
	if (base64_decode(challenge, strlen(challenge), 4096, &decoded, &err) < 0) {
		str_appendf(why, "malformed SASL challenge: %s", err);
		goto out;
	}
	switch (sasl->mech) {
	case MECH_PLAIN:
		str_append(why, "unexpected SASL challenge after PLAIN");
		goto out;
	case MECH_LOGIN:
		/* "Username:" then "Password:"; the prompts are not read,
		 * only counted, as every LOGIN client does. */
		if (sasl->step == 0)
			base64_encode(sasl->user, strlen(sasl->user), out);
		else if (sasl->step == 1)
			base64_encode(sasl->password, strlen(sasl->password), out);
		else {
			str_append(why, "too many SASL LOGIN challenges");
			goto out;
		}
		break;
	case MECH_CRAM_MD5: {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;
		str_t resp;

		if (sasl->step > 0) {
			str_append(why, "too many SASL CRAM-MD5 challenges");
			goto out;
		}
		if (HMAC(EVP_md5(), sasl->password, (int)strlen(sasl->password),
		         (const unsigned char *)decoded.buf, decoded.len, mac, &maclen) == NULL) {
			str_append(why, "CRAM-MD5: HMAC failed");
			goto out;
		}
		str_init(&resp);
		str_appendf(&resp, "%s ", sasl->user);
		for (unsigned i = 0; i < maclen; i++)
			str_appendf(&resp, "%02x", mac[i]);
		base64_encode(resp.buf, resp.len, out);
		str_free(&resp);
		break;
	}
	}
	sasl->step++;
	rc = 0;
out:
	str_free(&decoded);
	return rc;
}
