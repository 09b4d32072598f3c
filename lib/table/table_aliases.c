/* table_aliases.c - the aliases(5) entry parser (see table_aliases.h).
 *
 * The tokenizer follows Postfix's tok822_scan(): white space separates
 * tokens; "(...)" is a comment (nesting, backslash escapes), "[...]" a
 * domain literal and "\"...\"" a quoted string (both to their closing
 * character or the end of the line, backslash escapes); each of
 * |"(),.:;<>@[]%! alone is an operator; anything else is an atom, in
 * which a backslash takes the next character literally (an atom that
 * then holds white space, a control character or an operator character
 * is written back as a quoted string). Writing back follows
 * tok822_externalize() / tok822_internalize(): a space after a comma and
 * between two words, none around operators.
 *
 * Bounded by the line: every token is a copy of part of it. Never fails
 * other than by returning the reason a line is not an entry.
 */
#include "table/table_aliases.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

/* Token types; operators are their own character. */
enum {
	TOK_ATOM = 256,
	TOK_QSTRING,
	TOK_DOMLIT,
	TOK_COMMENT,
};

struct token {
	int type;
	str_t text; /* atom, quoted string or domain literal: unquoted text */
	str_t ext; /* comment: external form, parentheses included */
	str_t in; /* comment: internal form */
};

struct tokens {
	struct token *v;
	size_t n, cap;
};

static const char opchar[] = "|\"(),.:;<>@[]%!";

static bool is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static struct token *token_add(struct tokens *t, int type)
{
	struct token *tok;

	if (t->n == t->cap) {
		t->cap = t->cap == 0 ? 16 : t->cap * 2;
		t->v = xreallocarray(t->v, t->cap, sizeof(*t->v));
	}
	tok = &t->v[t->n++];
	tok->type = type;
	str_init(&tok->text);
	str_init(&tok->ext);
	str_init(&tok->in);
	return tok;
}

static void tokens_free(struct tokens *t)
{
	for (size_t i = 0; i < t->n; i++) {
		str_free(&t->v[i].text);
		str_free(&t->v[i].ext);
		str_free(&t->v[i].in);
	}
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

/* Copy str escaping the characters of quote_set with a backslash. */
static void copy_quoted(str_t *out, const char *s, size_t len, const char *quote_set)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\0' && strchr(quote_set, s[i]) != NULL)
			str_append_c(out, '\\');
		str_append_c(out, s[i]);
	}
}

/* Postfix's COLLECT: to the end of the line or until stop(c) for an
 * unescaped c; a backslash takes the next character; white space is
 * stored as a blank. Returns the position after the last character
 * taken. */
static const char *collect(str_t *out, const char *s, bool (*stop)(int c, int arg), int arg)
{
	int c;

	while ((c = (unsigned char)*s) != 0) {
		if (c == '\\') {
			if ((c = (unsigned char)*++s) == 0)
				break;
		} else if (stop(c, arg)) {
			break;
		}
		str_append_c(out, is_space(c) ? ' ' : (char)c);
		s++;
	}
	return s;
}

static bool stop_at(int c, int arg)
{
	return c == arg;
}

static bool stop_atom(int c, int arg)
{
	(void)arg;
	return is_space(c) || strchr(opchar, c) != NULL;
}

/* A comment after its '(': text and nested comments up to the matching
 * ')' or the end of the line, into ext (escaped) and in (as written). */
static const char *comment(const char *s, str_t *ext, str_t *in)
{
	int c;

	str_append_c(ext, '(');
	str_append_c(in, '(');
	while ((c = (unsigned char)*s) != 0) {
		s++;
		if (c == '(') {
			s = comment(s, ext, in);
		} else if (c == ')') {
			break;
		} else {
			char ch;

			if (c == '\\') {
				if ((c = (unsigned char)*s) == 0)
					break;
				s++;
			}
			ch = (char)c;
			copy_quoted(ext, &ch, 1, "()\\\r\n");
			str_append_c(in, ch);
		}
	}
	str_append_c(ext, ')');
	str_append_c(in, ')');
	return s;
}

static void scan(const char *s, struct tokens *t)
{
	int c;

	while ((c = (unsigned char)*s++) != 0) {
		struct token *tok;

		if (is_space(c))
			continue;
		if (c == '(') {
			tok = token_add(t, TOK_COMMENT);
			s = comment(s, &tok->ext, &tok->in);
		} else if (c == '[' || c == '"') {
			tok = token_add(t, c == '[' ? TOK_DOMLIT : TOK_QSTRING);
			s = collect(&tok->text, s, stop_at, c == '[' ? ']' : '"');
			if (*s != '\0')
				s++;
		} else if (c != '\\' && strchr(opchar, c) != NULL) {
			token_add(t, c);
		} else {
			tok = token_add(t, TOK_ATOM);
			s = collect(&tok->text, s - 1, stop_atom, 0);
			/* An atom that needs quoting is written back quoted. */
			for (size_t i = 0; i < tok->text.len; i++) {
				unsigned char ch = (unsigned char)tok->text.buf[i];

				if (is_space(ch) || ch < 32 || ch == 127 ||
				    strchr(opchar, ch) != NULL) {
					tok->type = TOK_QSTRING;
					break;
				}
			}
		}
	}
}

static bool is_word(int type)
{
	return type == TOK_ATOM || type == TOK_QSTRING || type == TOK_COMMENT || type == TOK_DOMLIT;
}

/* Postfix tok822_append_space(): a blank after a comma, before '<',
 * and between two words. */
static bool space_after(const struct tokens *t, size_t i, size_t end)
{
	if (i + 1 >= end)
		return false;
	if (t->v[i].type == ',' || t->v[i + 1].type == '<')
		return true;
	return is_word(t->v[i].type) && is_word(t->v[i + 1].type);
}

/* Tokens [from, end) as text: external (quoted) or internal form. */
static void join(const struct tokens *t, size_t from, size_t end, bool external, str_t *out)
{
	str_reset(out);
	for (size_t i = from; i < end; i++) {
		const struct token *tok = &t->v[i];

		switch (tok->type) {
		case TOK_ATOM:
			str_append_n(out, tok->text.buf, tok->text.len);
			break;
		case TOK_QSTRING:
			if (external) {
				str_append_c(out, '"');
				copy_quoted(out, tok->text.buf, tok->text.len, "\"\\\r\n");
				str_append_c(out, '"');
			} else {
				str_append_n(out, tok->text.buf, tok->text.len);
			}
			break;
		case TOK_DOMLIT:
			str_append_c(out, '[');
			if (external)
				copy_quoted(out, tok->text.buf, tok->text.len, "\\\r\n");
			else
				str_append_n(out, tok->text.buf, tok->text.len);
			str_append_c(out, ']');
			break;
		case TOK_COMMENT:
			if (external)
				str_append_n(out, tok->ext.buf, tok->ext.len);
			else
				str_append_n(out, tok->in.buf, tok->in.len);
			break;
		default:
			str_append_c(out, (char)tok->type);
			break;
		}
		if (space_after(t, i, end))
			str_append_c(out, ' ');
	}
}

int aliases_parse_line(const char *line, str_t *key, str_t *value, const char **why_r)
{
	struct tokens t = {0};
	size_t colon;
	int rc = 1;

	scan(line, &t);
	if (t.n == 0) {
		tokens_free(&t);
		return 0;
	}
	for (colon = 0; colon < t.n && t.v[colon].type != ':'; colon++)
		;
	/* Postfix: a colon with something on both sides, no comma before
	 * it; the name must be local (no '@' or '%'). */
	if (colon == t.n || colon == 0 || colon + 1 == t.n) {
		*why_r = "need name:value pair";
		rc = -1;
	}
	for (size_t i = 0; rc > 0 && i < colon; i++) {
		if (t.v[i].type == ',') {
			*why_r = "need name:value pair";
			rc = -1;
		}
	}
	for (size_t i = 0; rc > 0 && i < colon; i++) {
		if (t.v[i].type == '@' || t.v[i].type == '%') {
			*why_r = "name must be local";
			rc = -1;
		}
	}
	if (rc > 0) {
		join(&t, 0, colon, false, key);
		join(&t, colon + 1, t.n, true, value);
		if (key->len == 0 || value->len == 0) {
			*why_r = "need name:value pair";
			rc = -1;
		}
	}
	tokens_free(&t);
	return rc;
}
