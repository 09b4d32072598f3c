/* params.h - the one table of every main.cf parameter postern knows.
 *
 * Each entry gives the name, type, default (Postfix's default wherever
 * Postfix has the parameter; it may reference other parameters as $name),
 * bounds, reload behaviour and a one-line help text. The table drives
 * main.cf parsing and validation (config.c), `postern conf -d`, unknown-
 * parameter warnings, and the parameter list in the documentation. A
 * parameter is declared here and nowhere else.
 */
#ifndef POSTERN_PARAMS_H
#define POSTERN_PARAMS_H

#include <stddef.h>
#include <stdint.h>

enum param_type {
	PARAM_STR, /* free text */
	PARAM_BOOL, /* yes | no */
	PARAM_INT, /* signed decimal within [min, max] */
	PARAM_SIZE, /* byte count, decimal, within [min, max] */
	PARAM_TIME, /* number with unit s m h d w (default unit below) */
	PARAM_LIST, /* comma/white-space separated list, { } groups */
	PARAM_TABLES, /* list of type:name lookup tables */
};

enum param_reload {
	PARAM_RELOAD_LIVE, /* `postern reload` applies it */
	PARAM_RELOAD_RESTART, /* needs `postern stop; postern start` */
};

/* Defaults computed at run time instead of from text. */
enum param_dynamic {
	PARAM_STATIC = 0,
	PARAM_DYN_HOSTNAME, /* myhostname: the host's name, made fully qualified */
	PARAM_DYN_DOMAIN, /* mydomain: myhostname without its first label */
	PARAM_DYN_CONFIG_DIR, /* config_directory: -c DIR or the built-in path */
};

/* Whether postern does what the parameter says. */
enum param_status {
	PARAM_IMPLEMENTED = 0,
	/* Parsed, checked and shown, but nothing acts on it yet: setting it to
	 * anything but its default draws a warning naming file and line. */
	PARAM_NOT_YET,
	/* Informational: its value is for people and for $name expansion in
	 * other values (mail_version, command_directory); no behaviour hangs
	 * on it, so there is nothing to implement and nothing to warn about. */
	PARAM_INFO,
};

struct param_def {
	const char *name;
	enum param_type type;
	const char *defval; /* raw default text; "" for empty */
	int64_t min, max; /* PARAM_INT/SIZE: value bounds; PARAM_TIME: seconds */
	char time_unit; /* PARAM_TIME: unit when the value has none */
	enum param_reload reload;
	enum param_dynamic dynamic;
	const char *help;
	enum param_status status;
};

/* The definition of name, or NULL when postern does not know it. */
const struct param_def *param_find(const char *name);
/* Number of definitions, and the i-th in name order. */
size_t param_count(void);
const struct param_def *param_at(size_t i);
/* Human description of what a value of this type must look like, for
 * error messages ("a number from 0 to 100", "yes or no", ...). The
 * result is written into buf (of size len) and returned. */
const char *param_expectation(const struct param_def *def, char *buf, size_t len);
/* True when def is accepted but not implemented yet. */
static inline int param_not_yet(const struct param_def *def)
{
	return def != NULL && def->status == PARAM_NOT_YET;
}
/* Parameters per transport (master.cf service name + suffix), like
 * relay_destination_concurrency_limit: true when name has such a suffix
 * and *prefix_len_r is set to the length of the service name. */
int param_transport_suffix(const char *name, size_t *prefix_len_r);

#endif
