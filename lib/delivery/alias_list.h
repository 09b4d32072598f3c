/* alias_list.h - the right-hand side of an aliases(5) entry, a .forward
 * file or a :include: file, split into typed destinations.
 *
 * Used by the local delivery agent (server/local) for alias_maps values,
 * forward_path files and :include: files, as Postfix's local(8) reads
 * them:
 *
 *   - destinations are separated by commas outside double quotes, angle
 *     brackets and (comments); comments are dropped, "Name <addr>" gives
 *     addr, white space around a destination is removed;
 *   - a double-quoted part is unquoted (backslash escapes the next
 *     character): `"|/usr/bin/procmail -a x"`, `"/var/log/mail copy"`;
 *   - then the destination's type: `|command` (the rest, leading white
 *     space removed), `/file/name` (a name ending in '/' is a Maildir),
 *     `:include:/file/name` (any case), `\user` (an address delivered to
 *     the mailbox without alias or .forward expansion), else an address.
 *
 * For files (alias_list_parse_file): '#' at the start of a line is a
 * comment, a line starting with white space continues the previous one,
 * every logical line is a list as above.
 *
 * Failure: an unterminated quote, angle bracket or comment, a
 * destination longer than ALIAS_LIST_ITEM_MAX bytes, or more than
 * max_items destinations is an error naming what was wrong (and, for a
 * file, the line); nothing is returned then.
 */
#ifndef POSTERN_ALIAS_LIST_H
#define POSTERN_ALIAS_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

#define ALIAS_LIST_ITEM_MAX 4096

enum alias_item_type {
	ALIAS_ITEM_ADDRESS, /* user, user@domain */
	ALIAS_ITEM_COMMAND, /* |command: value is the command */
	ALIAS_ITEM_FILE, /* /file/name (maildir when it ends in '/') */
	ALIAS_ITEM_INCLUDE, /* :include:/file/name: value is the path */
};

struct alias_item {
	enum alias_item_type type;
	char *value;
	bool no_alias; /* ADDRESS written \user: mailbox only */
};

struct alias_list {
	struct alias_item *items;
	size_t n;
};

/* Parse text (len bytes; a NUL byte is an error) and append its
 * destinations to list (which must be zeroed or hold earlier results).
 * At most max_items in list in all. 0, or -1 with why appended. */
int alias_list_parse(const char *text, size_t len, size_t max_items, struct alias_list *list,
                     str_t *why);
/* The same for the contents of a .forward or :include: file (comments,
 * continuation lines); why names the line ("line 3: ..."). */
int alias_list_parse_file(const char *text, size_t len, size_t max_items, struct alias_list *list,
                          str_t *why);
/* Free every item; list is empty afterwards. */
void alias_list_free(struct alias_list *list);

/* "address", "command", "file", "include" (for logs and tests). */
const char *alias_item_type_name(enum alias_item_type type);

#endif
