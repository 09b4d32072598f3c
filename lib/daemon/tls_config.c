/* tls_config.c - smtpd's TLS parameters into lib/tls settings (see
 * tls_config.h). Used by smtpd and by `postern check`.
 */
#include "daemon/tls_config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "conf/config.h"

static int level_read(struct config *cfg, enum tls_level *level_r, str_t *error)
{
	const char *v = config_str(cfg, "smtpd_tls_security_level");

	/* Postfix: empty means the obsolete booleans decide, and
	 * smtpd_enforce_tls wins over smtpd_use_tls. */
	if (v[0] == '\0')
		*level_r = config_bool(cfg, "smtpd_enforce_tls") ? TLS_LEVEL_ENCRYPT
		           : config_bool(cfg, "smtpd_use_tls")   ? TLS_LEVEL_MAY
		                                                 : TLS_LEVEL_NONE;
	else if (strcasecmp(v, "none") == 0)
		*level_r = TLS_LEVEL_NONE;
	else if (strcasecmp(v, "may") == 0)
		*level_r = TLS_LEVEL_MAY;
	else if (strcasecmp(v, "encrypt") == 0)
		*level_r = TLS_LEVEL_ENCRYPT;
	else {
		str_appendf(error,
		            "%s: smtpd_tls_security_level: \"%s\": expected none, may or encrypt",
		            config_where(cfg, "smtpd_tls_security_level"), v);
		return -1;
	}
	return 0;
}

int smtpd_tls_config_read(struct config *cfg, struct smtpd_tls_config *tc, str_t *error)
{
	struct tls_server_settings *set = &tc->set;
	bool mandatory;

	memset(tc, 0, sizeof(*tc));
	str_init(&tc->exclude);
	if (level_read(cfg, &tc->level, error) < 0)
		return -1;
	tc->wrapper = config_bool(cfg, "smtpd_tls_wrappermode");
	/* Mandatory TLS uses the mandatory protocol and cipher settings;
	 * the wrapper mode is mandatory TLS too (Postfix 3.7:
	 * enforce_tls = wrappermode || enforce_tls). */
	mandatory = tc->level == TLS_LEVEL_ENCRYPT || tc->wrapper;
	set->chain_files = config_list(cfg, "smtpd_tls_chain_files");
	set->cert_file = config_str(cfg, "smtpd_tls_cert_file");
	set->key_file = config_str(cfg, "smtpd_tls_key_file");
	set->eccert_file = config_str(cfg, "smtpd_tls_eccert_file");
	set->eckey_file = config_str(cfg, "smtpd_tls_eckey_file");
	tc->has_cert = (set->chain_files != NULL && set->chain_files->n > 0) ||
	               set->cert_file[0] != '\0' || set->eccert_file[0] != '\0';
	set->protocols_param = mandatory ? "smtpd_tls_mandatory_protocols" : "smtpd_tls_protocols";
	set->protocols = config_str(cfg, set->protocols_param);
	set->grade_param = mandatory ? "smtpd_tls_mandatory_ciphers" : "smtpd_tls_ciphers";
	set->grade = config_str(cfg, set->grade_param);
	set->grades.high = config_str(cfg, "tls_high_cipherlist");
	set->grades.medium = config_str(cfg, "tls_medium_cipherlist");
	set->grades.low = config_str(cfg, "tls_low_cipherlist");
	set->grades.export_ = config_str(cfg, "tls_export_cipherlist");
	set->grades.null = config_str(cfg, "tls_null_cipherlist");
	str_append(&tc->exclude, config_str(cfg, "smtpd_tls_exclude_ciphers"));
	if (mandatory && config_str(cfg, "smtpd_tls_mandatory_exclude_ciphers")[0] != '\0') {
		str_append(&tc->exclude, ", ");
		str_append(&tc->exclude, config_str(cfg, "smtpd_tls_mandatory_exclude_ciphers"));
	}
	set->exclude_ciphers = str_c(&tc->exclude);
	set->preempt_ciphers = config_bool(cfg, "tls_preempt_cipherlist");
	set->eecdh_grade = config_str(cfg, "smtpd_tls_eecdh_grade");
	set->auto_curves = config_str(cfg, "tls_eecdh_auto_curves");
	set->strong_curve = config_str(cfg, "tls_eecdh_strong_curve");
	set->ultra_curve = config_str(cfg, "tls_eecdh_ultra_curve");
	/* Postfix: a client certificate can be required only where TLS is. */
	set->req_ccert = config_bool(cfg, "smtpd_tls_req_ccert");
	if (set->req_ccert && !mandatory) {
		tc->req_ccert_ignored = true;
		set->req_ccert = false;
	}
	set->ask_ccert = set->req_ccert || config_bool(cfg, "smtpd_tls_ask_ccert");
	set->ca_file = config_str(cfg, "smtpd_tls_CAfile");
	set->ca_path = config_str(cfg, "smtpd_tls_CApath");
	set->verify_depth = (int)config_int(cfg, "smtpd_tls_ccert_verifydepth");
	set->fingerprint_digest = config_str(cfg, "smtpd_tls_fingerprint_digest");
	set->session_timeout = (unsigned)config_time(cfg, "smtpd_tls_session_cache_timeout");
	tc->ticket_file =
	        xasprintf("%s/%s", config_str(cfg, "data_directory"), TLS_SMTPD_TICKET_FILE);
	set->ticket_key_file = tc->ticket_file;
	set->loglevel = (int)config_int(cfg, "smtpd_tls_loglevel");
	return 0;
}

void smtpd_tls_config_free(struct smtpd_tls_config *tc)
{
	str_free(&tc->exclude);
	free(tc->ticket_file);
	tc->ticket_file = NULL;
}
