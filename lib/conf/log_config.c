/* log_config.c - logging set up from main.cf (see log_config.h).
 *
 * Used by daemons at start and reload, and by commands that log like a
 * daemon. On failure it leaves logging on stderr, where a human starting
 * the program sees the message.
 */
#include "conf/log_config.h"

#include <stdlib.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"

int log_config_apply(struct config *cfg, const char *service, bool to_stderr, str_t *error)
{
	const char *name = config_str(cfg, "syslog_name");
	const char *facility = config_str(cfg, "syslog_facility");
	const char *file = config_str(cfg, "maillog_file");
	const char *why;
	char *ident = xasprintf("%s/%s", name, service);
	int ret = 0;

	if (log_set_facility(facility) < 0) {
		str_appendf(error,
		            "%s: bad syslog_facility \"%s\": expected mail, daemon, user "
		            "or local0 to local7",
		            config_where(cfg, "syslog_facility"), facility);
		(void)log_open(ident, LOG_TARGET_STDERR, NULL, &why);
		free(ident);
		return -1;
	}
	if (file[0] != '\0') {
		if (log_open(ident, LOG_TARGET_FILE, file, &why) < 0) {
			str_appendf(error, "%s: %s", config_where(cfg, "maillog_file"), why);
			ret = -1;
		}
	} else {
		(void)log_open(ident, to_stderr ? LOG_TARGET_STDERR : LOG_TARGET_SYSLOG, NULL,
		               &why);
	}
	free(ident);
	return ret;
}
