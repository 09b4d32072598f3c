/* confcheck_tls.c - the TLS and SASL part of the whole-configuration
 * check: for
 * main.cf and every smtpd service of master.cf (its -o overrides
 * applied), the server context smtpd would build is built here too, so
 * a certificate that does not load, a key that does not match it, a
 * bad protocol list or cipher grade is an error of `postern check`
 * (and refuses `postern start` and a reload) instead of a warning in
 * smtpd's log and a 454 to every STARTTLS. Key files readable by group
 * or others are a warning. Where smtpd_sasl_auth_enable = yes, the SASL
 * server is built the same way (a bad smtpd_sasl_type, security option
 * or database setting is an error; a Dovecot auth server that does not
 * answer is only a warning in the log).
 *
 * Called from confcheck.c. Run as root, as master is, it reads the key
 * files as master will for the daemons (privfiles.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"
#include "base/strv.h"
#include "conf/config.h"
#include "conf/mastercf.h"
#include "confcheck.h"
#include "daemon/privfiles.h"
#include "daemon/tls_config.h"
#include "sasl/sasl.h"
#include "tls/tls.h"

static void add_once(strv_t *list, char *msg)
{
	for (size_t i = 0; i < list->n; i++) {
		if (strcmp(list->v[i], msg) == 0) {
			free(msg);
			return;
		}
	}
	strv_add_owned(list, msg);
}

static void key_modes(struct config *cfg, strv_t *warnings)
{
	static const char *const params[] = {"smtpd_tls_key_file", "smtpd_tls_eckey_file"};
	const strv_t *chain = config_list(cfg, "smtpd_tls_chain_files");
	strv_t keys = STRV_INIT, where = STRV_INIT;
	struct stat st;

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		const char *v = config_str(cfg, params[i]);

		if (v[0] != '\0') {
			strv_add(&keys, v);
			strv_add(&where, params[i]);
		}
	}
	for (size_t i = 0; chain != NULL && i < chain->n; i++) {
		strv_add(&keys, chain->v[i]);
		strv_add(&where, "smtpd_tls_chain_files");
	}
	for (size_t i = 0; i < keys.n; i++) {
		if (stat(keys.v[i], &st) < 0)
			continue;
		/* Run as root (a real install): a key owned by another user
		 * (mail_owner, say) is readable by that user's processes. */
		if (geteuid() == 0 && st.st_uid != 0) {
			add_once(warnings,
			         xasprintf("%s: %s %s holds a private key and is owned by uid %lu, "
			                   "not root: chown root it (master reads it as root and "
			                   "hands it to smtpd)",
			                   config_where(cfg, where.v[i]), where.v[i], keys.v[i],
			                   (unsigned long)st.st_uid));
			continue;
		}
		if ((st.st_mode & (S_IRWXG | S_IRWXO)) == 0)
			continue;
		add_once(warnings,
		         xasprintf("%s: %s %s holds a private key and is readable by others than "
		                   "its owner (mode %03o): chmod 600 it (master reads it as root "
		                   "and hands it to smtpd)",
		                   config_where(cfg, where.v[i]), where.v[i], keys.v[i],
		                   (unsigned)(st.st_mode & 0777)));
	}
	strv_free(&keys);
	strv_free(&where);
}

/* The first certificate or key file named that does not exist, or NULL. */
static const char *missing_file(const struct tls_server_settings *set)
{
	const char *files[] = {set->cert_file, set->key_file, set->eccert_file, set->eckey_file};
	struct stat st;

	if (set->chain_files != NULL && set->chain_files->n > 0) {
		for (size_t i = 0; i < set->chain_files->n; i++)
			if (stat(set->chain_files->v[i], &st) < 0 && errno == ENOENT)
				return set->chain_files->v[i];
		return NULL;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i] != NULL && files[i][0] != '\0' && stat(files[i], &st) < 0 &&
		    errno == ENOENT)
			return files[i];
	return NULL;
}

static void check_one(struct config *cfg, const char *label, strv_t *errors, strv_t *warnings)
{
	const char *missing;
	struct smtpd_tls_config tc;
	struct tls_server *srv = NULL;
	str_t error;

	str_init(&error);
	if (smtpd_tls_config_read(cfg, &tc, &error) < 0) {
		add_once(errors, str_steal(&error));
	} else if (smtpd_tls_config_enabled(&tc)) {
		tc.set.ticket_key_file = NULL; /* master's file: not a check's business */
		if (!tc.has_cert)
			add_once(
			        warnings,
			        xasprintf("%s: TLS is enabled (smtpd_tls_security_level or "
			                  "smtpd_tls_wrappermode) but none of smtpd_tls_cert_file, "
			                  "smtpd_tls_eccert_file, smtpd_tls_chain_files is set: "
			                  "STARTTLS will answer 454",
			                  label));
		else if ((missing = missing_file(&tc.set)) != NULL)
			/* Not yet made (a new install, a certificate still to be
			 * requested): Postfix runs without TLS then, and so
			 * does smtpd; anything else wrong with the files is an
			 * error. */
			add_once(
			        warnings,
			        xasprintf("%s: TLS: %s does not exist: STARTTLS will answer 454 "
			                  "(make a test certificate with `postern tls selfsigned`, "
			                  "or point smtpd_tls_cert_file/smtpd_tls_key_file at real "
			                  "ones)",
			                  label, missing));
		else if (tls_server_new(&tc.set, &srv, &error) < 0)
			add_once(errors, xasprintf("%s: TLS: %s", label, str_c(&error)));
		if (tc.req_ccert_ignored)
			add_once(warnings, xasprintf("%s: smtpd_tls_req_ccert = yes needs "
			                             "smtpd_tls_security_level = encrypt (or "
			                             "smtpd_tls_wrappermode = yes): ignored",
			                             label));
		key_modes(cfg, warnings);
	}
	tls_server_free(&srv);
	smtpd_tls_config_free(&tc);
	if (config_bool(cfg, "smtpd_sasl_auth_enable")) {
		struct sasl_server *sasl = NULL;

		str_reset(&error);
		if (sasl_server_create(cfg, &sasl, &error) < 0)
			add_once(errors, xasprintf("%s: SASL: %s", label, str_c(&error)));
		sasl_server_free(&sasl);
	}
	str_free(&error);
}

void confcheck_tls(struct config *cfg, const struct master_conf *mc, strv_t *errors,
                   strv_t *warnings)
{
	check_one(cfg, "main.cf", errors, warnings);
	for (size_t i = 0; mc != NULL && i < mc->n; i++) {
		const struct master_service *s = &mc->services[i];
		struct config *svc;
		char *label;

		if (strcmp(s->command, "smtpd") != 0 || s->override_names.n == 0)
			continue;
		svc = mastercf_service_config(cfg, s);
		label = xasprintf("%s, line %u: service %s/%s", s->file, s->line, s->name, s->type);
		check_one(svc, label, errors, warnings);
		free(label);
		config_destroy(&svc);
	}
}
