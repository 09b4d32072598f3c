/* confcheck.h - the whole-configuration check: what `postern check`
 * prints, what `postern start` and master's reload refuse.
 *
 * One function so that the three can never disagree (issue 11): a
 * configuration that `postern check` rejects is never started, and a
 * reload to it keeps the running one.
 */
#ifndef POSTERN_CONFCHECK_H
#define POSTERN_CONFCHECK_H

#include "base/strv.h"

/* Check the configuration in config_dir: parse main.cf and master.cf,
 * type-check every parameter and every master.cf -o override, open every
 * lookup table (no database is contacted), check the restriction lists,
 * the files that hold passwords, and, when run as root, that mail_owner
 * can read every file the unprivileged daemons read (main.cf, master.cf,
 * table files, the database_readonly password file): a child process
 * drops to mail_owner (privilege.h) and opens each one.
 *
 * Appends one message per problem to errors (each names the file and
 * line, or the file, and the fix) and to warnings. Returns 0 when there
 * is no error (warnings allowed), -1 otherwise. Nothing is changed on
 * disk and no daemon is signalled. */
int confcheck_run(const char *config_dir, strv_t *errors, strv_t *warnings);

struct config;
struct master_conf;
/* confcheck_tls.c: smtpd's TLS and SASL settings of main.cf and of every
 * smtpd service: the TLS server context is built (certificates and keys
 * loaded), key files readable by others are warned about, the SASL
 * server is built where AUTH is enabled. */
void confcheck_tls(struct config *cfg, const struct master_conf *mc, strv_t *errors,
                   strv_t *warnings);

#endif
