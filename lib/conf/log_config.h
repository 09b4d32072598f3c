/* log_config.h - set up logging from main.cf for a daemon or command.
 *
 * Applies syslog_name, syslog_facility and maillog_file: every line then
 * reads "<syslog_name>/<service>[pid]: ..." as Postfix's do, so that
 * pflogsumm --syslog-name=<syslog_name> reads postern's logs. The daemon
 * skeleton calls it at start and on reload.
 */
#ifndef POSTERN_LOG_CONFIG_H
#define POSTERN_LOG_CONFIG_H

#include <stdbool.h>

#include "base/str.h"

struct config;

/* Log as <syslog_name>/<service>; to maillog_file when set, else to syslog
 * (or to stderr when to_stderr, for foreground and command-line use).
 * -1 with a message naming the parameter on a bad facility or an
 * unopenable maillog_file; logging then goes to stderr. */
int log_config_apply(struct config *cfg, const char *service, bool to_stderr, str_t *error);

#endif
