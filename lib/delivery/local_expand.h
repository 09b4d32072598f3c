/* local_expand.h - Postfix local(8)'s $name expansion of forward_path,
 * luser_relay and mailbox_command.
 *
 * Used by server/local. Syntax (Postfix mac_expand): $name, ${name},
 * $(name), ${name?text} (text when name has a non-empty value),
 * ${name:text} (text when name is undefined or empty), {text} may also be
 * written ${name?{text}}; $$ is a dollar. text is itself expanded. Names
 * are those of struct local_expand_vars; any other $NAME is left as
 * written (a shell variable of mailbox_command such as "$EXTENSION").
 *
 * Each value put in is filtered: a character not in filter (when filter
 * is not NULL) becomes '_' (forward_expansion_filter), so an address
 * extension cannot put "../" or a shell character into a path.
 */
#ifndef POSTERN_LOCAL_EXPAND_H
#define POSTERN_LOCAL_EXPAND_H

#include <stdbool.h>

#include "base/str.h"

/* The attributes of one local recipient; NULL for undefined (no
 * extension, no passwd entry). */
struct local_expand_vars {
	const char *user; /* local part without extension, lower case */
	const char *home;
	const char *shell;
	const char *local; /* whole local part, lower case */
	const char *extension;
	const char *domain;
	const char *recipient; /* the full address */
	const char *recipient_delimiter; /* the delimiter found, or the first of
	                                  * recipient_delimiter */
	const char *mailbox; /* home_mailbox or the spool file name */
};

/* Result flags of local_expand(). */
enum {
	LOCAL_EXPAND_UNDEF = 1 << 0, /* a plain $name was undefined: Postfix
	                              * skips such a forward_path element */
};

/* Expand pattern into out (appended). Returns the LOCAL_EXPAND_* flags
 * (>= 0), or -1 with why appended for a syntax error (an unclosed brace). */
int local_expand(const char *pattern, const struct local_expand_vars *vars, const char *filter,
                 str_t *out, str_t *why);

#endif
