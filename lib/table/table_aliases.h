/* table_aliases.h - one entry of an aliases(5) file, parsed as postalias(1) does.
 *
 * An aliases file holds "name: value, value, ..." entries (continuation
 * lines and comments are handled by table_file.h's logical lines). The
 * value is a list of addresses, "|command", "/file" and ":include:/file"
 * targets; it is stored as postalias stores it, so that a table lookup of
 * an alias (hash:/etc/aliases) returns exactly what Postfix's local(8)
 * would get: the tokens of the line re-joined in RFC 822 external form
 * (quoted strings keep their quotes, one ", " between list elements, one
 * space between words), which local delivery parses again. The name is
 * unquoted (internal form); the caller folds it to lower case.
 *
 * Used by the builder (table_postmap.c: `postern map build -A`,
 * newaliases). Local delivery reads the built table through table.h.
 */
#ifndef POSTERN_TABLE_ALIASES_H
#define POSTERN_TABLE_ALIASES_H

#include "base/str.h"

/* Parse one logical line (already joined, comments removed). Returns 1
 * with key (replaced) and value (replaced); 0 for a line with nothing on
 * it; -1 with *why_r set to postalias's complaint: "need name:value pair"
 * (no colon, nothing before or after it, a comma in the name, an empty
 * name or value) or "name must be local" (an '@' or '%' in the name). */
int aliases_parse_line(const char *line, str_t *key, str_t *value, const char **why_r);

#endif
