/* mastercf.h - master.cf: the services the master process runs.
 *
 * The format is Postfix's master(5): one service per logical line, a line
 * that starts with white space continues the one before it, and empty
 * lines and lines whose first non-white-space character is '#' are
 * ignored, also between continuation lines. A '#' later in a line is data.
 * Fields are separated by white space only (commas are data here):
 *
 *   service type private unpriv chroot wakeup maxproc command [args...]
 *
 *   type     inet, unix, unix-dgram, fifo or pass
 *   private  y, n or - (y); an inet service is always public: "-" means
 *            n there and "y" is an error, as in Postfix
 *   unpriv   y, n or - (y)
 *   chroot   y, n or - (n, the Postfix >= 3.0 default)
 *   wakeup   seconds, with a trailing '?' for "only once the service was
 *            used"; 0 or - means never
 *   maxproc  a number (0 = no limit) or - for default_process_limit
 *
 * An inet service name is "port", "host:port", "[ipv4]:port" or
 * "[ipv6]:port", port being a number or a service name ("smtp").
 *
 * Arguments after the command are read like the daemon's getopt(3) would,
 * stopping at the first argument that is not an option (or "--"):
 * "-o name=value", "-oname=value" and "-o { name = value with spaces }"
 * become the service's overrides; everything else goes to argv, with a
 * "{ text with spaces }" argument passed without its braces. Why stop at
 * the first non-option: for pipe(8), "argv=/usr/bin/spamc -u x -oi" hands
 * "-oi" to the command, it is not an override (Postfix does the same by
 * calling getopt with a leading '+').
 *
 * Errors: every bad line is reported, one message per line, naming the
 * file, the line where the service starts and what was expected.
 */
#ifndef POSTERN_MASTERCF_H
#define POSTERN_MASTERCF_H

#include <stdbool.h>
#include <stddef.h>

#include "base/strv.h"

/* Longest logical line (a service with its continuation lines joined). */
#define MASTERCF_LINE_MAX (64 * 1024)
/* Largest master.cf accepted. */
#define MASTERCF_FILE_MAX (16 * 1024 * 1024)

enum master_type {
	MASTER_TYPE_INET,
	MASTER_TYPE_UNIX,
	MASTER_TYPE_UNIX_DGRAM,
	MASTER_TYPE_FIFO,
	MASTER_TYPE_PASS,
};

struct master_service {
	char *name; /* as written: "smtp", "127.0.0.1:10025", "pickup" */
	char *type; /* as written: "inet", "unix", ... */
	enum master_type type_id;
	char *host; /* inet: host or address without brackets; NULL = all */
	char *port; /* inet: number or service name; NULL for other types */
	bool private_;
	bool unpriv;
	bool chroot;
	unsigned wakeup; /* seconds; 0 = never */
	bool wakeup_conditional;
	long maxproc; /* 0 = no limit; -1 = default_process_limit */
	char *command;
	strv_t argv; /* arguments other than overrides, braces removed */
	strv_t override_names; /* -o name=value, in order; a later one for */
	strv_t override_values; /* the same name wins when they are applied */
	char *file; /* file name used in messages */
	unsigned line; /* line where the service starts */
};

struct master_conf {
	struct master_service *services; /* in file order */
	size_t n;
};

/* Read the master.cf at path. Every bad line is appended to errors (one
 * message each, "PATH, line N: ...") and makes the call return -1; a conf
 * is returned in *conf_r even then, holding the services that parsed, so
 * `postern check` can go on checking their overrides. A missing or
 * unreadable file is one error (and an empty conf). */
int mastercf_load(const char *path, struct master_conf **conf_r, strv_t *errors);
/* Parse master.cf text from memory (tests, fuzzing); filename is used in
 * messages. The text may hold anything, NUL bytes included. Same contract
 * as mastercf_load. */
int mastercf_parse_text(const char *text, size_t len, const char *filename,
                        struct master_conf **conf_r, strv_t *errors);
/* The service with this name and type ("smtp", "inet"), or NULL. A NULL
 * type matches the first service of that name whatever its type. The
 * result is owned by conf. */
const struct master_service *mastercf_find(const struct master_conf *conf, const char *name,
                                           const char *type);
/* The process limit of a service: its maxproc, or default_process_limit
 * (main.cf) when maxproc was "-". 0 means no limit. */
long mastercf_process_limit(const struct master_service *service, long default_process_limit);
/* Free *confp and set it to NULL; no-op on NULL. */
void mastercf_destroy(struct master_conf **confp);

struct config;
/* The configuration one service runs with: a copy of main_cfg with the
 * service's -o overrides applied in order (later ones win). Each override
 * is recorded as set at "FILE, line N (service NAME/TYPE)" so messages
 * about a bad value point at master.cf. The caller destroys the copy. */
struct config *mastercf_service_config(const struct config *main_cfg,
                                       const struct master_service *service);

/* Append "FILE, line N (service NAME/TYPE): PARAM is accepted but not
 * implemented yet" for each -o override in mc of a parameter that is not
 * implemented yet (see config_not_yet_set), once per service and name. */
void mastercf_not_yet_warnings(const struct config *main_cfg, const struct master_conf *mc,
                               strv_t *warnings);

#endif
