/* config_edit.h - edit main.cf text in place, as `postconf -e` / `-X` do.
 *
 * Used by `postern conf set` and `postern conf unset` (and later by the
 * web admin's settings page). Comments, blank lines and the order of
 * untouched entries are kept byte for byte.
 */
#ifndef POSTERN_CONFIG_EDIT_H
#define POSTERN_CONFIG_EDIT_H

#include <stddef.h>

#include "base/str.h"

/* Apply one edit to main.cf text (len bytes), writing the result to out.
 * value != NULL: the first entry for name (with its continuation lines)
 * becomes "name = value" and later entries for name are removed; when
 * there is none, "name = value" is appended. value == NULL: every entry
 * for name is removed. Returns the number of entries found for name. The
 * caller has checked that name is a parameter name and that value holds
 * no newline. */
int config_edit_text(const char *text, size_t len, const char *name, const char *value, str_t *out);

#endif
