/* pipe_expand.c - the command line of a pipe(8) service: macro expansion
 * of the argv= templates (see pipe.h).
 *
 * Used by pipe.c once at start (pipe_expand_check: a bad template is
 * reported in the log at once) and for every request.
 *
 * Why one argument per recipient: programs run by a mail system expect
 * the recipients as separate arguments (sendmail RCPT..., spamc -e
 * sendmail ... $recipient). An argument that names a recipient-dependent
 * macro is expanded once per recipient, in order; Postfix's pipe does the
 * same, including the skipping of an argument whose $user is empty
 * (+ext@domain, Cyrus bulletin boards).
 *
 * SECURITY: the result is an argv for execve(): a value is never split at
 * white space and never reaches a shell, whatever an address holds
 * (STYLE.md point 20). Values are never expanded again ($ in an address
 * stays a $). Template length and nesting are bounded by master.cf's
 * line limit; ${name?text} nests at most PIPE_NEST_MAX levels.
 *
 * Failure: an unknown macro name or a malformed form is -1 with the
 * template named; nothing is executed then (4.3.5 deferral in pipe.c).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "address/address.h"
#include "base/mem.h"
#include "pipe.h"

#define PIPE_NEST_MAX 8

/* Recipient-dependent macros and the bit each sets. */
enum {
	DEP_RECIPIENT = 1 << 0,
	DEP_ORIG = 1 << 1,
	DEP_USER = 1 << 2,
	DEP_EXTENSION = 1 << 3,
	DEP_MAILBOX = 1 << 4,
	DEP_DOMAIN = 1 << 5,
};

static const struct {
	const char *name;
	unsigned dep;
} known_names[] = {
        {"client_address", 0},
        {"client_helo", 0},
        {"client_hostname", 0},
        {"client_port", 0},
        {"client_protocol", 0},
        {"domain", DEP_DOMAIN},
        {"envid", 0},
        {"extension", DEP_EXTENSION},
        {"mailbox", DEP_MAILBOX},
        {"nexthop", 0},
        {"original_recipient", DEP_ORIG},
        {"queue_id", 0},
        {"recipient", DEP_RECIPIENT},
        {"sasl_method", 0},
        {"sasl_sender", 0},
        {"sasl_username", 0},
        {"sender", 0},
        {"size", 0},
        {"user", DEP_USER},
};

/* The values one expansion sees: the request's, then the recipient's. */
struct scope {
	const struct pipe_var *vars;
	size_t nvars;
	const struct pipe_var *rcpt_vars;
	size_t nrcpt_vars;
};

static bool name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* The bit of a known name, or -1 when unknown. */
static int name_dep(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(known_names) / sizeof(known_names[0]); i++)
		if (strlen(known_names[i].name) == len &&
		    memcmp(known_names[i].name, name, len) == 0)
			return (int)known_names[i].dep;
	return -1;
}

static const char *scope_get(const struct scope *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->nrcpt_vars; i++)
		if (strlen(s->rcpt_vars[i].name) == len &&
		    memcmp(s->rcpt_vars[i].name, name, len) == 0)
			return s->rcpt_vars[i].value;
	for (size_t i = 0; i < s->nvars; i++)
		if (strlen(s->vars[i].name) == len && memcmp(s->vars[i].name, name, len) == 0)
			return s->vars[i].value;
	return "";
}

/* Walk template t (len bytes): with out, append its expansion; always
 * collect the recipient-dependence bits of the names it uses in *deps.
 * -1 with why set on a malformed form or an unknown name. */
static int walk(const char *t, size_t len, const struct scope *s, unsigned depth, str_t *out,
                unsigned *deps, str_t *why)
{
	size_t i = 0;

	if (depth > PIPE_NEST_MAX) {
		str_append(why, "conditional text nested too deeply");
		return -1;
	}
	while (i < len) {
		const char *name, *text = NULL;
		size_t nlen, tlen = 0;
		char cond = 0;
		int dep;

		if (t[i] != '$') {
			if (out != NULL)
				str_append_c(out, t[i]);
			i++;
			continue;
		}
		i++;
		if (i < len && t[i] == '$') { /* $$: a dollar */
			if (out != NULL)
				str_append_c(out, '$');
			i++;
			continue;
		}
		if (i < len && (t[i] == '{' || t[i] == '(')) {
			char open_c = t[i], close_c = open_c == '{' ? '}' : ')';
			size_t start = ++i;

			while (i < len && name_char(t[i]))
				i++;
			name = t + start;
			nlen = i - start;
			if (i < len && (t[i] == '?' || t[i] == ':')) {
				unsigned level = 1;

				cond = t[i++];
				text = t + i;
				for (; i < len; i++) {
					if (t[i] == open_c)
						level++;
					else if (t[i] == close_c && --level == 0)
						break;
				}
				tlen = (size_t)(t + i - text);
			}
			if (i >= len || t[i] != close_c) {
				str_appendf(why, "missing '%c' after \"$%c%.*s\"", close_c, open_c,
				            (int)nlen, name);
				return -1;
			}
			i++;
		} else {
			size_t start = i;

			while (i < len && name_char(t[i]))
				i++;
			name = t + start;
			nlen = i - start;
		}
		if (nlen == 0) {
			str_append(why, "macro name expected after '$' (write $$ for a dollar)");
			return -1;
		}
		if ((dep = name_dep(name, nlen)) < 0) {
			str_appendf(why, "unknown macro name: \"%.*s\"", (int)nlen, name);
			return -1;
		}
		*deps |= (unsigned)dep;
		if (cond != 0) {
			/* Both branches are checked; one is expanded. */
			const char *value =
			        out != NULL && s != NULL ? scope_get(s, name, nlen) : "";
			bool take = (cond == '?') == (value[0] != '\0');

			if (walk(text, tlen, s, depth + 1, take ? out : NULL, deps, why) < 0)
				return -1;
			continue;
		}
		if (out != NULL && s != NULL)
			str_append(out, scope_get(s, name, nlen));
	}
	return 0;
}

int pipe_expand_check(const strv_t *templates, str_t *error)
{
	for (size_t i = 0; i < templates->n; i++) {
		unsigned deps = 0;
		str_t why;

		str_init(&why);
		if (walk(templates->v[i], strlen(templates->v[i]), NULL, 0, NULL, &deps, &why) <
		    0) {
			str_appendf(error, "argv= argument \"%s\": %s", templates->v[i],
			            str_c(&why));
			str_free(&why);
			return -1;
		}
		str_free(&why);
	}
	return 0;
}

void pipe_quote_local(const char *address, str_t *out)
{
	const char *at = strrchr(address, '@');
	size_t llen = at != NULL ? (size_t)(at - address) : strlen(address);
	char *local = xstrndup(address, llen);

	/* The empty local part ("<>" replaced by nothing, "@domain") stays
	 * empty here: Postfix quotes only what is there. */
	if (llen > 0 && address_local_needs_quoting(local)) {
		str_append_c(out, '"');
		for (size_t i = 0; i < llen; i++) {
			if (local[i] == '"' || local[i] == '\\')
				str_append_c(out, '\\');
			str_append_c(out, local[i]);
		}
		str_append_c(out, '"');
	} else {
		str_append(out, local);
	}
	if (at != NULL)
		str_append(out, at);
	free(local);
}

/* Postfix's morph_recipient(): quoting (q), then case folding of the
 * local part (u) and the domain (h). */
static void morph(const char *address, unsigned flags, str_t *out)
{
	size_t at;
	const char *p;

	str_reset(out);
	if (flags & PIPE_F_QUOTE)
		pipe_quote_local(address, out);
	else
		str_append(out, address);
	p = strrchr(out->buf, '@');
	at = p != NULL ? (size_t)(p - out->buf) : out->len;
	for (size_t i = 0; i < out->len; i++) {
		if ((i < at && (flags & PIPE_F_FOLD_USER)) ||
		    (i > at && (flags & PIPE_F_FOLD_HOST)))
			out->buf[i] = (char)tolower((unsigned char)out->buf[i]);
	}
}

/* The per-recipient values of r into vals (6 entries, strings in bufs).
 * user is NULL when empty (the argument is skipped). */
static void rcpt_values(const struct pipe_rcpt *r, unsigned flags, const char *delimiters,
                        str_t bufs[6], struct pipe_var vals[6])
{
	unsigned fold = flags & (PIPE_F_FOLD_HOST | PIPE_F_FOLD_USER);
	const char *at;
	size_t local_len, ext;

	morph(r->address, flags, &bufs[0]);
	morph(r->orig, flags, &bufs[1]);
	/* user, extension, mailbox, domain: folded, never quoted. */
	morph(r->address, fold, &bufs[2]);
	at = strrchr(bufs[2].buf, '@');
	local_len = at != NULL ? (size_t)(at - bufs[2].buf) : bufs[2].len;
	str_reset(&bufs[5]);
	str_append(&bufs[5], at != NULL ? at + 1 : "");
	str_reset(&bufs[4]);
	str_append_n(&bufs[4], bufs[2].buf, local_len);
	ext = local_len;
	if (delimiters != NULL && delimiters[0] != '\0') {
		for (size_t i = 0; i < local_len; i++) {
			if (strchr(delimiters, bufs[2].buf[i]) != NULL) {
				ext = i;
				break;
			}
		}
	}
	str_reset(&bufs[3]);
	if (ext < local_len)
		str_append_n(&bufs[3], bufs[2].buf + ext + 1, local_len - ext - 1);
	str_truncate(&bufs[2], ext);
	vals[0] = (struct pipe_var){"recipient", str_c(&bufs[0])};
	vals[1] = (struct pipe_var){"original_recipient", str_c(&bufs[1])};
	vals[2] = (struct pipe_var){"user", str_c(&bufs[2])};
	vals[3] = (struct pipe_var){"extension", str_c(&bufs[3])};
	vals[4] = (struct pipe_var){"mailbox", str_c(&bufs[4])};
	vals[5] = (struct pipe_var){"domain", str_c(&bufs[5])};
}

int pipe_expand_argv(const strv_t *templates, const struct pipe_var *vars, size_t nvars,
                     const struct pipe_rcpt *rcpts, size_t nrcpts, unsigned flags,
                     const char *delimiters, strv_t *argv, str_t *error)
{
	struct scope s = {.vars = vars, .nvars = nvars};
	struct pipe_var rv[6];
	str_t bufs[6], arg, why;
	int ret = 0;

	for (size_t i = 0; i < 6; i++)
		str_init(&bufs[i]);
	str_init(&arg);
	str_init(&why);
	for (size_t i = 0; i < templates->n && ret == 0; i++) {
		const char *t = templates->v[i];
		unsigned deps = 0;

		/* First pass: which names (and is it well formed). */
		if (walk(t, strlen(t), NULL, 0, NULL, &deps, &why) < 0) {
			str_appendf(error, "argv= argument \"%s\": %s", t, str_c(&why));
			ret = -1;
			break;
		}
		if (deps == 0) {
			str_reset(&arg);
			s.nrcpt_vars = 0;
			(void)walk(t, strlen(t), &s, 0, &arg, &deps, &why);
			strv_add(argv, str_c(&arg));
			continue;
		}
		for (size_t r = 0; r < nrcpts; r++) {
			rcpt_values(&rcpts[r], flags, delimiters, bufs, rv);
			if ((deps & DEP_USER) && bufs[2].len == 0)
				continue;
			s.rcpt_vars = rv;
			s.nrcpt_vars = 6;
			str_reset(&arg);
			(void)walk(t, strlen(t), &s, 0, &arg, &deps, &why);
			strv_add(argv, str_c(&arg));
		}
	}
	for (size_t i = 0; i < 6; i++)
		str_free(&bufs[i]);
	str_free(&arg);
	str_free(&why);
	return ret;
}
