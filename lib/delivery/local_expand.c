/* local_expand.c - $name expansion for the local delivery agent (see
 * local_expand.h).
 *
 * Used by server/local for forward_path, luser_relay and mailbox_command.
 * The patterns come from main.cf (trusted); the values (local part,
 * extension) come from the envelope, so they are filtered character by
 * character before they reach a path or a command line. Recursion into
 * ${name?text} is bounded by LOCAL_EXPAND_DEPTH.
 */
#include <stddef.h>
#include <string.h>

#include "delivery/local_expand.h"

#define LOCAL_EXPAND_DEPTH 10

static int lookup(const struct local_expand_vars *v, const char *name, size_t len,
                  const char **value_r)
{
	static const struct {
		const char *name;
		size_t off;
	} names[] = {
	        {"user", offsetof(struct local_expand_vars, user)},
	        {"home", offsetof(struct local_expand_vars, home)},
	        {"shell", offsetof(struct local_expand_vars, shell)},
	        {"local", offsetof(struct local_expand_vars, local)},
	        {"extension", offsetof(struct local_expand_vars, extension)},
	        {"domain", offsetof(struct local_expand_vars, domain)},
	        {"recipient", offsetof(struct local_expand_vars, recipient)},
	        {"recipient_delimiter", offsetof(struct local_expand_vars, recipient_delimiter)},
	        {"mailbox", offsetof(struct local_expand_vars, mailbox)},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0) {
			*value_r = *(const char *const *)(const void *)((const char *)v +
			                                                names[i].off);
			return 0;
		}
	}
	return -1;
}

static void put_filtered(str_t *out, const char *value, const char *filter)
{
	for (const char *p = value; *p != '\0'; p++)
		str_append_c(out, filter == NULL || strchr(filter, *p) != NULL ? *p : '_');
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

static int expand(const char *p, size_t len, const struct local_expand_vars *vars,
                  const char *filter, str_t *out, str_t *why, int depth)
{
	int flags = 0;

	if (depth > LOCAL_EXPAND_DEPTH) {
		str_append(why, "expansion nested too deeply");
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		const char *name, *value, *text = NULL;
		size_t nlen, tlen = 0, start = i;
		char op = 0;

		if (p[i] != '$') {
			str_append_c(out, p[i]);
			continue;
		}
		if (i + 1 < len && p[i + 1] == '$') {
			str_append_c(out, '$');
			i++;
			continue;
		}
		if (i + 1 < len && (p[i + 1] == '{' || p[i + 1] == '(')) {
			char close = p[i + 1] == '{' ? '}' : ')';
			size_t j = i + 2;

			name = p + j;
			while (j < len && name_char(p[j]))
				j++;
			nlen = (size_t)(p + j - name);
			if (j < len && (p[j] == '?' || p[j] == ':')) {
				size_t level = 1;

				op = p[j++];
				text = p + j;
				for (; j < len; j++) {
					if (p[j] == p[i + 1])
						level++;
					else if (p[j] == close && --level == 0)
						break;
				}
				tlen = (size_t)(p + j - text);
				/* ${name?{text}}: the inner braces group text. */
				if (tlen >= 2 && text[0] == '{' && text[tlen - 1] == '}') {
					text++;
					tlen -= 2;
				}
			}
			if (j >= len || p[j] != close) {
				str_appendf(why, "missing '%c' in \"%.*s\"", close, (int)len, p);
				return -1;
			}
			i = j;
		} else {
			size_t j = i + 1;

			name = p + j;
			while (j < len && name_char(p[j]))
				j++;
			nlen = (size_t)(p + j - name);
			i = j - 1;
		}
		if (nlen == 0) {
			str_appendf(why, "'$' without a name in \"%.*s\"", (int)len, p);
			return -1;
		}
		if (lookup(vars, name, nlen, &value) < 0) {
			/* Not ours ($EXTENSION, $HOME ...): left as written, for the
			 * shell of mailbox_command (Postfix's documented
			 * procmail -a "$EXTENSION"). */
			str_append_n(out, p + start, i + 1 - start);
			continue;
		}
		if (op == '?' || op == ':') {
			bool set = value != NULL && value[0] != '\0';
			int f = 0;

			if ((op == '?') == set)
				f = expand(text, tlen, vars, filter, out, why, depth + 1);
			if (f < 0)
				return -1;
			flags |= f;
		} else if (value == NULL) {
			flags |= LOCAL_EXPAND_UNDEF;
		} else {
			put_filtered(out, value, filter);
		}
	}
	return flags;
}

int local_expand(const char *pattern, const struct local_expand_vars *vars, const char *filter,
                 str_t *out, str_t *why)
{
	return expand(pattern, strlen(pattern), vars, filter, out, why, 0);
}
