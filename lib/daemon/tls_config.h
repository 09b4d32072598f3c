/* tls_config.h - smtpd's TLS parameters read from a configuration into
 * the settings lib/tls builds a server context from.
 *
 * One reading of smtpd_tls_security_level (and the obsolete
 * smtpd_use_tls / smtpd_enforce_tls), smtpd_tls_wrappermode, the
 * certificate, protocol, cipher, client-certificate and session
 * parameters, shared by smtpd (server/smtpd/smtpd_tls.c) and `postern
 * check` (lib/confcheck), so both judge a configuration the same way.
 */
#ifndef POSTERN_TLS_CONFIG_H
#define POSTERN_TLS_CONFIG_H

#include <stdbool.h>

#include "base/str.h"
#include "tls/tls.h"

struct config;

enum tls_level {
	TLS_LEVEL_NONE,
	TLS_LEVEL_MAY,
	TLS_LEVEL_ENCRYPT,
};

struct smtpd_tls_config {
	enum tls_level level;
	bool wrapper; /* smtpd_tls_wrappermode */
	bool req_ccert_ignored; /* req_ccert set without "encrypt" or the wrapper mode: ignored */
	bool has_cert; /* some certificate parameter is set */
	struct tls_server_settings set; /* strings borrowed from cfg or owned below */
	/* private */
	str_t exclude;
	char *ticket_file;
};

/* Read the smtpd TLS parameters of cfg. -1 with a message naming the
 * parameter and where it was set for a bad security level; everything
 * else is judged by tls_server_new. tc is to be freed either way. */
int smtpd_tls_config_read(struct config *cfg, struct smtpd_tls_config *tc, str_t *error);
void smtpd_tls_config_free(struct smtpd_tls_config *tc);

/* TLS is wanted: level may/encrypt, or the wrapper mode. */
static inline bool smtpd_tls_config_enabled(const struct smtpd_tls_config *tc)
{
	return tc->level != TLS_LEVEL_NONE || tc->wrapper;
}

#endif
