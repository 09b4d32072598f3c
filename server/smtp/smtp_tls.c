/* smtp_tls.c - outbound TLS policy: the security levels of Postfix's
 * smtp_tls_security_level and smtp_tls_policy_maps, the client contexts
 * (lib/tls) and what a finished handshake means under a level.
 *
 * Used by smtp.c (the policy of a job) and smtp_session.c (the
 * handshake's verdict). Two contexts are built at startup: one with the
 * opportunistic protocols and ciphers (may), one with the mandatory ones
 * (encrypt and above), as Postfix keeps them apart. A context that cannot
 * be built (a missing client certificate, a bad cipher list) is logged
 * and makes TLS unavailable: mail that needs it is deferred with the
 * reason, mail at "may" goes in plaintext.
 *
 * Levels (Postfix TLS_README):
 *   none     no STARTTLS
 *   may      STARTTLS when offered; any certificate; a failed handshake
 *            is retried in plaintext on a new connection
 *   encrypt  STARTTLS required; any certificate
 *   verify   STARTTLS required; the certificate must chain to a trusted
 *            CA (smtp_tls_CAfile/CApath) and match smtp_tls_verify_cert_match
 *            (hostname: the MX host name)
 *   secure   the same, with smtp_tls_secure_cert_match (nexthop,
 *            dot-nexthop) or the policy's match= names
 *   dane     acts as may until DANE exists (a later issue: the hook is
 *            the level; smtp_settings.c warns)
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "smtp.h"
#include "tls/tls.h"

const char *smtp_tls_level_name(enum smtp_tls_level level)
{
	switch (level) {
	case SMTP_TLS_NONE:
		return "none";
	case SMTP_TLS_MAY:
		return "may";
	case SMTP_TLS_ENCRYPT:
		return "encrypt";
	case SMTP_TLS_DANE:
		return "dane";
	case SMTP_TLS_VERIFY:
		return "verify";
	case SMTP_TLS_SECURE:
		return "secure";
	}
	return "?";
}

void smtp_tls_policy_init(struct smtp_tls_policy *pol)
{
	memset(pol, 0, sizeof(*pol));
}

void smtp_tls_policy_free(struct smtp_tls_policy *pol)
{
	strv_free(&pol->match);
	free(pol->servername);
	memset(pol, 0, sizeof(*pol));
}

int smtp_tls_policy_parse(const char *value, struct smtp_tls_policy *pol, str_t *why)
{
	strv_t words = STRV_INIT;
	const char *err;
	int rc = -1;

	if (strv_split_list(&words, value, &err) < 0 || words.n == 0) {
		str_appendf(why, "empty or malformed TLS policy \"%s\"", value);
		goto out;
	}
	if (strcasecmp(words.v[0], "none") == 0)
		pol->level = SMTP_TLS_NONE;
	else if (strcasecmp(words.v[0], "may") == 0 || strcasecmp(words.v[0], "dane") == 0)
		pol->level = SMTP_TLS_MAY;
	else if (strcasecmp(words.v[0], "encrypt") == 0 || strcasecmp(words.v[0], "dane-only") == 0)
		pol->level = SMTP_TLS_ENCRYPT;
	else if (strcasecmp(words.v[0], "verify") == 0)
		pol->level = SMTP_TLS_VERIFY;
	else if (strcasecmp(words.v[0], "secure") == 0 ||
	         strcasecmp(words.v[0], "fingerprint") == 0)
		pol->level = SMTP_TLS_SECURE;
	else {
		str_appendf(why, "unknown TLS security level \"%s\"", words.v[0]);
		goto out;
	}
	for (size_t i = 1; i < words.n; i++) {
		const char *w = words.v[i];

		if (strncasecmp(w, "match=", 6) == 0) {
			/* Names separated by ':' (Postfix's policy syntax). */
			const char *p = w + 6;

			while (*p != '\0') {
				size_t len = strcspn(p, ":");

				if (len > 0)
					strv_add_n(&pol->match, p, len);
				p += len;
				if (*p == ':')
					p++;
			}
		} else if (strncasecmp(w, "servername=", 11) == 0) {
			free(pol->servername);
			pol->servername = xstrdup(w + 11);
		} else if (strncasecmp(w, "protocols=", 10) == 0) {
			/* Postfix separates the list with ':' here. */
			str_t list;
			int bad;

			str_init(&list);
			for (const char *p = w + 10; *p != '\0'; p++)
				str_append_c(&list, *p == ':' ? ' ' : *p);
			bad = tls_protocols_parse("protocols", str_c(&list),
			                          &pol->disabled_protocols, why);
			str_free(&list);
			if (bad < 0)
				goto out;
			pol->has_protocols = true;
		} else if (strncasecmp(w, "ciphers=", 8) == 0 ||
		           strncasecmp(w, "exclude=", 8) == 0) {
			/* Why fail rather than ignore: the attribute asks for
			 * stronger TLS than the global settings may give. */
			str_appendf(why,
			            "TLS policy \"%s\": attribute \"%s\" is not implemented yet",
			            value, w);
			goto out;
		} else {
			str_appendf(why, "TLS policy \"%s\": unknown attribute \"%s\"", value, w);
			goto out;
		}
	}
	rc = 0;
out:
	strv_free(&words);
	return rc;
}

/* The smtp_ or lmtp_ name of a TLS parameter. */
#define NAME(s, smtp_name, lmtp_name) ((s)->lmtp ? (lmtp_name) : (smtp_name))

static int build(struct config *cfg, struct smtp_settings *s, bool mandatory,
                 struct tls_client **cli_r, str_t *error)
{
	struct tls_client_settings set;
	str_t exclude;
	const char *mexcl;
	int rc;

	memset(&set, 0, sizeof(set));
	set.protocols_param =
	        mandatory ? NAME(s, "smtp_tls_mandatory_protocols", "lmtp_tls_mandatory_protocols")
	                  : NAME(s, "smtp_tls_protocols", "lmtp_tls_protocols");
	set.protocols = config_str(cfg, set.protocols_param);
	set.grade_param =
	        mandatory ? NAME(s, "smtp_tls_mandatory_ciphers", "lmtp_tls_mandatory_ciphers")
	                  : NAME(s, "smtp_tls_ciphers", "lmtp_tls_ciphers");
	set.grade = config_str(cfg, set.grade_param);
	set.grades.high = config_str(cfg, "tls_high_cipherlist");
	set.grades.medium = config_str(cfg, "tls_medium_cipherlist");
	set.grades.low = config_str(cfg, "tls_low_cipherlist");
	set.grades.export_ = config_str(cfg, "tls_export_cipherlist");
	set.grades.null = config_str(cfg, "tls_null_cipherlist");
	str_init(&exclude);
	str_append(&exclude, config_str(cfg, NAME(s, "smtp_tls_exclude_ciphers",
	                                          "lmtp_tls_exclude_ciphers")));
	mexcl = config_str(cfg, NAME(s, "smtp_tls_mandatory_exclude_ciphers",
	                             "lmtp_tls_mandatory_exclude_ciphers"));
	if (mandatory && mexcl[0] != '\0') {
		if (exclude.len > 0)
			str_append(&exclude, ", ");
		str_append(&exclude, mexcl);
	}
	set.exclude_ciphers = str_c(&exclude);
	set.exclude_param =
	        mandatory ? NAME(s, "smtp_tls_mandatory_exclude_ciphers",
	                         "lmtp_tls_mandatory_exclude_ciphers")
	                  : NAME(s, "smtp_tls_exclude_ciphers", "lmtp_tls_exclude_ciphers");
	set.ca_file = config_str(cfg, NAME(s, "smtp_tls_CAfile", "lmtp_tls_CAfile"));
	set.ca_path = config_str(cfg, NAME(s, "smtp_tls_CApath", "lmtp_tls_CApath"));
	set.cert_file = config_str(cfg, NAME(s, "smtp_tls_cert_file", "lmtp_tls_cert_file"));
	set.key_file = config_str(cfg, NAME(s, "smtp_tls_key_file", "lmtp_tls_key_file"));
	set.loglevel = s->tls_loglevel;
	rc = tls_client_new(&set, cli_r, error);
	str_free(&exclude);
	return rc;
}

void smtp_tls_init(struct config *cfg, struct smtp_settings *s)
{
	str_t error;

	/* Contexts are built even with level none: smtp_tls_policy_maps
	 * may ask for TLS per destination. */
	str_init(&error);
	if (build(cfg, s, false, &s->tls_opportunistic, &error) < 0 ||
	    build(cfg, s, true, &s->tls_mandatory, &error) < 0) {
		log_warning("TLS is not available to the %s client: %s", s->name, str_c(&error));
		s->tls_error = xstrdup(str_c(&error));
		tls_client_free(&s->tls_opportunistic);
		tls_client_free(&s->tls_mandatory);
	}
	str_free(&error);
}

void smtp_tls_free_contexts(struct smtp_settings *s)
{
	tls_client_free(&s->tls_opportunistic);
	tls_client_free(&s->tls_mandatory);
}
