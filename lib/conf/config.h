/* config.h - main.cf: parsing, $name expansion, typed access, overrides.
 *
 * A config holds the parameters set in main.cf (with file and line), the
 * overrides of one master.cf service (-o name=value) or the command line,
 * and falls back to the defaults of params.h. Values are stored as written;
 * "$name", "${name}", "$(name)", "${name?text}", "${name:text}" and "$$"
 * are expanded on use, with a depth limit that reports loops. Expanded and
 * typed values are cached: a config does not change after loading except
 * through config_set(), which drops the caches.
 *
 * Errors: syntax errors and bad values name the file, line and what was
 * expected. The typed getters used by daemons treat a bad value as broken
 * configuration and exit through log_fatal() with that message; `postern
 * check` calls config_validate() first to list every problem instead.
 */
#ifndef POSTERN_CONFIG_H_
#define POSTERN_CONFIG_H_

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"
#include "base/strv.h"
#include "conf/params.h"

struct config;

/* Longest logical main.cf line accepted (a continuation-joined entry). */
#define CONFIG_LINE_MAX (256 * 1024)
/* Largest main.cf accepted. */
#define CONFIG_FILE_MAX (16 * 1024 * 1024)
/* Nesting depth at which $name expansion is declared a loop. */
#define CONFIG_EXPAND_DEPTH 100

/* Read DIR/main.cf. Syntax errors are appended to errors (one message per
 * problem, each naming file and line) and make the call return -1; a
 * config is returned in *cfg_r even then, holding the lines that parsed.
 * A missing main.cf is an error. config_directory takes the value DIR. */
int config_load(const char *config_dir, struct config **cfg_r, strv_t *errors);
/* Parse main.cf text from memory (tests, fuzzing); filename is used in
 * messages. Same contract as config_load. */
int config_parse_text(const char *text, size_t len, const char *filename, const char *config_dir,
                      struct config **cfg_r, strv_t *errors);
void config_destroy(struct config **cfgp);
/* An independent copy (for applying one service's overrides). */
struct config *config_clone(const struct config *cfg);

/* Set name = value with origin (e.g. "master.cf, line 12" or "-o"): later
 * calls win. Unknown names are accepted (validate warns about them). */
void config_set(struct config *cfg, const char *name, const char *value, const char *origin);

/* Warnings collected while parsing (duplicate entries). */
const strv_t *config_parse_warnings(const struct config *cfg);

/* True when name was set in main.cf or by config_set. */
bool config_is_set(const struct config *cfg, const char *name);
/* The value as written (main.cf, override, or default text), or NULL for
 * a name that is neither set nor known. */
const char *config_raw(struct config *cfg, const char *name);
/* Where name was set ("main.cf, line 7") or "default". Returned text is
 * owned by cfg. */
const char *config_where(struct config *cfg, const char *name);
/* Names set explicitly, in name order (for `conf -n`). Caller frees. */
void config_set_names(const struct config *cfg, strv_t *names_r);

/* The expanded value. Returns 0 with *value_r owned by cfg, or -1 with a
 * message in *error_r (owned by cfg) naming the parameter, where it was
 * set, and what went wrong (loop, unmatched brace). */
int config_expand(struct config *cfg, const char *name, const char **value_r, const char **error_r);
/* config_expand() into a copy the caller owns (free), for settings read
 * once at start; the message is appended to error. */
int config_expand_dup(struct config *cfg, const char *name, char **value_r, str_t *error);
/* Expand arbitrary text against cfg (used for table .cf files and
 * overrides). Appends to out; -1 with *error_r (owned by cfg) on error. */
int config_expand_text(struct config *cfg, const char *text, str_t *out, const char **error_r);

/* Typed value of a known parameter, expanded and checked against its
 * definition. Return 0, or -1 with *error_r owned by cfg: "main.cf, line
 * 9: bad value for message_size_limit: \"10MB\": expected a whole number
 * from 0 to ...". */
int config_get_bool(struct config *cfg, const char *name, bool *value_r, const char **error_r);
int config_get_int(struct config *cfg, const char *name, int64_t *value_r, const char **error_r);
int config_get_time(struct config *cfg, const char *name, uint64_t *seconds_r,
                    const char **error_r);
/* List and table-list values; the vector is owned by cfg. */
int config_get_list(struct config *cfg, const char *name, const strv_t **list_r,
                    const char **error_r);

/* Daemon-side getters: the same, but a bad value is log_fatal(). */
const char *config_str(struct config *cfg, const char *name);
bool config_bool(struct config *cfg, const char *name);
int64_t config_int(struct config *cfg, const char *name);
uint64_t config_time(struct config *cfg, const char *name);
const strv_t *config_list(struct config *cfg, const char *name);

/* Check one parameter's current value against its type (after
 * expansion). 0 for a valid value or an unknown name (nothing to check
 * against), -1 with *error_r owned by cfg otherwise. */
int config_check_value(struct config *cfg, const char *name, const char **error_r);
/* Record the $names referenced by text (from master.cf -o overrides), so
 * that config_validate does not call them unknown. */
void config_note_references(struct config *cfg, const char *text);

/* Check every parameter set in cfg: expansion succeeds and the value fits
 * its type. Unknown names give a warning unless they are referenced as
 * $name by another value or are per-transport parameters of a service in
 * service_names (may be NULL). Errors and warnings are appended, each
 * naming file and line. Returns the number of errors. */
int config_validate(struct config *cfg, const strv_t *service_names, strv_t *errors,
                    strv_t *warnings);

/* True when name is a parameter that is accepted but not implemented yet
 * (params.h PARAM_NOT_YET), is set in cfg, and its value differs from its
 * default (compared as values: "No" is "no", "60s" is "1m"). */
bool config_not_yet_set(struct config *cfg, const char *name);
/* Append "WHERE: NAME is accepted but not implemented yet" for each
 * parameter of cfg for which config_not_yet_set() holds. */
void config_not_yet_warnings(struct config *cfg, strv_t *warnings);

#endif
