/* smtp_settings.c - the smtp_* and lmtp_* parameters of one smtp or
 * lmtp service, read once at startup (the service's -o overrides
 * included).
 *
 * Used by smtp.c. Each setting is a pair of parameter names, the
 * smtp_ one and the lmtp_ one, written out in full so that a reader (and
 * tests/unit/test_params_used.c) finds every name as it is. A value that
 * is not valid is fatal, naming the parameter: a delivery agent with a
 * broken configuration must not guess.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "dns/dns.h"
#include "queue/queue_dir.h"
#include "smtp.h"
#include "table/table_async.h"

/* The smtp_ and lmtp_ names of one setting. */
struct pair {
	const char *smtp, *lmtp;
};

static const char *pick(const struct smtp_settings *s, struct pair p)
{
	return s->lmtp ? p.lmtp : p.smtp;
}

static unsigned get_time(struct config *cfg, const struct smtp_settings *s, struct pair p)
{
	uint64_t v = config_time(cfg, pick(s, p));

	return v > 86400 ? 86400u : (unsigned)v;
}

static unsigned get_uint(struct config *cfg, const struct smtp_settings *s, struct pair p)
{
	int64_t v = config_int(cfg, pick(s, p));

	return v < 0 ? 0u : (unsigned)v;
}

static void copy_list(strv_t *dst, const strv_t *src)
{
	for (size_t i = 0; src != NULL && i < src->n; i++)
		strv_add(dst, src->v[i]);
}

static enum smtp_tls_level level_parse(const char *value, const char *param)
{
	static const struct {
		const char *name;
		enum smtp_tls_level level;
	} levels[] = {
	        {"none", SMTP_TLS_NONE},         {"may", SMTP_TLS_MAY},
	        {"encrypt", SMTP_TLS_ENCRYPT},   {"dane", SMTP_TLS_DANE},
	        {"dane-only", SMTP_TLS_ENCRYPT}, {"fingerprint", SMTP_TLS_SECURE},
	        {"verify", SMTP_TLS_VERIFY},     {"secure", SMTP_TLS_SECURE},
	};

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcasecmp(value, levels[i].name) == 0)
			return levels[i].level;
	log_fatal("%s: unknown TLS security level \"%s\" (expected none, may, encrypt, dane, "
	          "dane-only, fingerprint, verify or secure)",
	          param, value);
}

static void read_tls_level(struct config *cfg, struct smtp_settings *s)
{
	const char *param =
	        pick(s, (struct pair){"smtp_tls_security_level", "lmtp_tls_security_level"});
	const char *value = config_str(cfg, param);

	if (value[0] != '\0') {
		s->tls_level = level_parse(value, param);
		if (strcasecmp(value, "dane-only") == 0)
			log_warning("%s = dane-only: DANE is not implemented yet: using mandatory "
			            "TLS (encrypt)",
			            param);
		else if (strcasecmp(value, "fingerprint") == 0)
			log_warning("%s = fingerprint: not implemented yet: acting as secure (the "
			            "certificate must verify and match the host names)",
			            param);
		if (s->tls_level == SMTP_TLS_DANE) {
			/* Why: DANE needs DNSSEC-validated TLSA records, which
			 * a later issue brings; until then "dane" acts as
			 * "may", as Postfix does without a validating
			 * resolver, and says so once. */
			log_warning("%s = %s: DANE is not implemented yet: using opportunistic "
			            "TLS (may)",
			            param, value);
			s->tls_level = SMTP_TLS_MAY;
		}
		return;
	}
	/* The obsolete booleans, when the level is not set. */
	if (!s->lmtp && config_bool(cfg, "smtp_enforce_tls"))
		s->tls_level = SMTP_TLS_ENCRYPT;
	else if (!s->lmtp && config_bool(cfg, "smtp_use_tls"))
		s->tls_level = SMTP_TLS_MAY;
	else
		s->tls_level = SMTP_TLS_NONE;
}

void smtp_settings_read(struct config *cfg, struct event_base *base, bool lmtp,
                        struct smtp_settings *s)
{
	const char *protocols = config_str(cfg, "inet_protocols");
	const char *pref;
	str_t error;

	memset(s, 0, sizeof(*s));
	s->lmtp = lmtp;
	s->name = lmtp ? "lmtp" : "smtp";
	s->connect_timeout =
	        get_time(cfg, s, (struct pair){"smtp_connect_timeout", "lmtp_connect_timeout"});
	s->helo_timeout = get_time(cfg, s, (struct pair){"smtp_helo_timeout", "lmtp_lhlo_timeout"});
	s->xforward_timeout =
	        get_time(cfg, s, (struct pair){"smtp_xforward_timeout", "lmtp_xforward_timeout"});
	s->mail_timeout = get_time(cfg, s, (struct pair){"smtp_mail_timeout", "lmtp_mail_timeout"});
	s->rcpt_timeout = get_time(cfg, s, (struct pair){"smtp_rcpt_timeout", "lmtp_rcpt_timeout"});
	s->data_init_timeout =
	        get_time(cfg, s, (struct pair){"smtp_data_init_timeout", "lmtp_data_init_timeout"});
	s->data_xfer_timeout =
	        get_time(cfg, s, (struct pair){"smtp_data_xfer_timeout", "lmtp_data_xfer_timeout"});
	s->data_done_timeout =
	        get_time(cfg, s, (struct pair){"smtp_data_done_timeout", "lmtp_data_done_timeout"});
	s->quit_timeout = get_time(cfg, s, (struct pair){"smtp_quit_timeout", "lmtp_quit_timeout"});
	s->starttls_timeout =
	        get_time(cfg, s, (struct pair){"smtp_starttls_timeout", "lmtp_starttls_timeout"});
	s->rset_timeout = get_time(cfg, s, (struct pair){"smtp_rset_timeout", "lmtp_rset_timeout"});
	/* Postfix: lmtp_connect_timeout 0 means the system's timeout; a
	 * bound is kept here all the same (the kernel's is minutes). */
	if (s->connect_timeout == 0)
		s->connect_timeout = 30;
	s->helo_name = xstrdup(
	        config_str(cfg, pick(s, (struct pair){"smtp_helo_name", "lmtp_lhlo_name"})));
	s->never_send_ehlo = !lmtp && config_bool(cfg, "smtp_never_send_ehlo");
	s->skip_5xx_greeting = config_bool(
	        cfg, pick(s, (struct pair){"smtp_skip_5xx_greeting", "lmtp_skip_5xx_greeting"}));
	s->send_xforward = config_bool(cfg, pick(s, (struct pair){"smtp_send_xforward_command",
	                                                          "lmtp_send_xforward_command"}));
	copy_list(&s->discard_ehlo,
	          config_list(cfg, pick(s, (struct pair){"smtp_discard_ehlo_keywords",
	                                                 "lmtp_discard_lhlo_keywords"})));
	s->mx_address_limit =
	        lmtp ? 0
	             : get_uint(cfg, s,
	                        (struct pair){"smtp_mx_address_limit", "smtp_mx_address_limit"});
	s->mx_session_limit =
	        lmtp ? 0
	             : get_uint(cfg, s,
	                        (struct pair){"smtp_mx_session_limit", "smtp_mx_session_limit"});
	s->line_length_limit =
	        get_uint(cfg, s, (struct pair){"smtp_line_length_limit", "lmtp_line_length_limit"});
	s->mime_output_conversion = !config_bool(cfg, "disable_mime_output_conversion");
	s->mime_nesting_limit = (unsigned)config_int(cfg, "mime_nesting_limit");
	s->ipv4 = strstr(protocols, "all") != NULL || strstr(protocols, "ipv4") != NULL;
	s->ipv6 = strstr(protocols, "all") != NULL || strstr(protocols, "ipv6") != NULL;
	if (!s->ipv4 && !s->ipv6)
		log_fatal("inet_protocols = %s: expected all, ipv4, ipv6 or \"ipv4, ipv6\"",
		          protocols);
	pref = config_str(
	        cfg, pick(s, (struct pair){"smtp_address_preference", "lmtp_address_preference"}));
	if (strcasecmp(pref, "ipv4") == 0)
		s->address_preference = 4;
	else if (strcasecmp(pref, "ipv6") == 0)
		s->address_preference = 6;
	else if (strcasecmp(pref, "any") == 0)
		s->address_preference = 0;
	else
		log_fatal("%s = %s: expected any, ipv4 or ipv6",
		          pick(s,
		               (struct pair){"smtp_address_preference", "lmtp_address_preference"}),
		          pref);
	s->bind_address = xstrdup(
	        config_str(cfg, pick(s, (struct pair){"smtp_bind_address", "lmtp_bind_address"})));
	s->bind_address6 = xstrdup(config_str(
	        cfg, pick(s, (struct pair){"smtp_bind_address6", "lmtp_bind_address6"})));
	if (!lmtp)
		copy_list(&s->fallback_relay, config_list(cfg, "smtp_fallback_relay"));
	/* smtp_host_lookup = native, or the obsolete disable_dns_lookups:
	 * no MX lookups, host names through getaddrinfo() (/etc/hosts, then
	 * the resolver), as Postfix. "dns, native" is dns here. */
	s->dns_lookup = lmtp || (strstr(config_str(cfg, "smtp_host_lookup"), "dns") != NULL &&
	                         !config_bool(cfg, "disable_dns_lookups"));
	s->queue_dir = xstrdup(config_str(cfg, "queue_directory"));
	{
		unsigned mask = 0;

		str_init(&error);
		if (queue_dir_hash_names(config_str(cfg, "hash_queue_names"), &mask, &error) < 0)
			log_fatal("hash_queue_names: %s", str_c(&error));
		str_free(&error);
		s->qd = queue_dir_new(s->queue_dir, (unsigned)config_int(cfg, "hash_queue_depth"),
		                      mask);
	}
	s->myhostname = xstrdup(config_str(cfg, "myhostname"));
	s->cache_on_demand =
	        config_bool(cfg, pick(s, (struct pair){"smtp_connection_cache_on_demand",
	                                               "lmtp_connection_cache_on_demand"}));
	copy_list(&s->cache_destinations,
	          config_list(cfg, pick(s, (struct pair){"smtp_connection_cache_destinations",
	                                                 "lmtp_connection_cache_destinations"})));
	s->cache_time_limit = get_time(cfg, s,
	                               (struct pair){"smtp_connection_cache_time_limit",
	                                             "lmtp_connection_cache_time_limit"});
	s->reuse_time_limit = get_time(cfg, s,
	                               (struct pair){"smtp_connection_reuse_time_limit",
	                                             "lmtp_connection_reuse_time_limit"});
	/* TLS. */
	read_tls_level(cfg, s);
	s->tls_policy_maps = xstrdup(config_str(
	        cfg, pick(s, (struct pair){"smtp_tls_policy_maps", "lmtp_tls_policy_maps"})));
	s->tls_servername = xstrdup(config_str(
	        cfg, pick(s, (struct pair){"smtp_tls_servername", "lmtp_tls_servername"})));
	copy_list(&s->tls_verify_match,
	          config_list(cfg, pick(s, (struct pair){"smtp_tls_verify_cert_match",
	                                                 "lmtp_tls_verify_cert_match"})));
	copy_list(&s->tls_secure_match,
	          config_list(cfg, pick(s, (struct pair){"smtp_tls_secure_cert_match",
	                                                 "lmtp_tls_secure_cert_match"})));
	s->tls_note_starttls_offer =
	        config_bool(cfg, pick(s, (struct pair){"smtp_tls_note_starttls_offer",
	                                               "lmtp_tls_note_starttls_offer"}));
	s->tls_loglevel = (int)config_int(
	        cfg, pick(s, (struct pair){"smtp_tls_loglevel", "lmtp_tls_loglevel"}));
	smtp_tls_init(cfg, s);
	/* SASL. */
	s->sasl_enable = config_bool(
	        cfg, pick(s, (struct pair){"smtp_sasl_auth_enable", "lmtp_sasl_auth_enable"}));
	s->sasl_password_maps = xstrdup(config_str(
	        cfg, pick(s, (struct pair){"smtp_sasl_password_maps", "lmtp_sasl_password_maps"})));
	copy_list(&s->sasl_security,
	          config_list(cfg, pick(s, (struct pair){"smtp_sasl_security_options",
	                                                 "lmtp_sasl_security_options"})));
	copy_list(&s->sasl_tls_security,
	          config_list(cfg, pick(s, (struct pair){"smtp_sasl_tls_security_options",
	                                                 "lmtp_sasl_tls_security_options"})));
	copy_list(&s->sasl_mech_filter,
	          config_list(cfg, pick(s, (struct pair){"smtp_sasl_mechanism_filter",
	                                                 "lmtp_sasl_mechanism_filter"})));
	s->sender_dependent_auth =
	        !lmtp && config_bool(cfg, "smtp_sender_dependent_authentication");
	s->sasl_soft_bounce = config_bool(
	        cfg,
	        pick(s, (struct pair){"smtp_sasl_auth_soft_bounce", "lmtp_sasl_auth_soft_bounce"}));
	/* Lookups and DNS. */
	str_init(&error);
	s->tables = table_async_new(
	        base, 0,
	        &(struct table_open_context){.cfg = cfg,
	                                     .config_dir = config_str(cfg, "config_directory")},
	        &error);
	if (s->tables == NULL)
		log_fatal("%s", str_c(&error));
	if (dns_new(base, config_str(cfg, "dns_servers"), &s->dns, &error) < 0)
		log_fatal("dns_servers: %s", str_c(&error));
	str_free(&error);
}

void smtp_settings_free(struct smtp_settings *s)
{
	table_async_destroy(&s->tables);
	dns_destroy(&s->dns);
	smtp_tls_free_contexts(s);
	free(s->helo_name);
	free(s->bind_address);
	free(s->bind_address6);
	strv_free(&s->fallback_relay);
	strv_free(&s->discard_ehlo);
	free(s->queue_dir);
	queue_dir_destroy(&s->qd);
	free(s->myhostname);
	strv_free(&s->cache_destinations);
	free(s->tls_policy_maps);
	free(s->tls_servername);
	strv_free(&s->tls_verify_match);
	strv_free(&s->tls_secure_match);
	free(s->tls_error);
	free(s->sasl_password_maps);
	strv_free(&s->sasl_security);
	strv_free(&s->sasl_tls_security);
	strv_free(&s->sasl_mech_filter);
}
