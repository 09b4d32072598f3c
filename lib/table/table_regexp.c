/* table_regexp.c - regexp:/path and pcre:/path, first-match pattern tables.
 *
 * Both types follow their Postfix manuals (regexp_table(5), pcre_table(5))
 * and both are compiled with PCRE2. Inline form (Postfix 3.7):
 * "regexp:{ {rule}, {rule} }", rule N counted as line N in errors.
 *   /pattern/flags result      first matching rule wins
 *   !/pattern/flags result     matches when the pattern does not
 *   if /pattern/flags ... endif   (also "if !/pattern/"), nested
 *   /pat1/!/pat2/ result       regexp: only: pat1 matches and pat2 does not
 * Any non-alphanumeric character may delimit a pattern ("|x/y|" too); a
 * backslash escapes the delimiter. Results may use $1..$99, ${1} or $(1)
 * for the text of a capture group (an empty or unmatched group gives empty
 * text) and $$ for a literal $.
 *
 * Flags, each toggling a default as the manuals say:
 *   regexp: i (case-insensitive, on by default), m (multi-line: ^ and $
 *           at line breaks, '.' not matching a newline; off), x (extended
 *           syntax, on; basic POSIX syntax is not available with PCRE2,
 *           so turning it off is an error).
 *   pcre:   i (caseless, on), m (multiline, off), s (dotall, on),
 *           x (extended, off), A (anchored), E (dollar_endonly),
 *           U (ungreedy), X (obsolete, ignored with a warning).
 * regexp: patterns are POSIX extended expressions in Postfix; PCRE2 reads
 * almost all of them the same way (GNU extensions such as \< \> differ).
 *
 * Failure: every bad line (unknown flag, bad pattern with PCRE2's message
 * and offset, bad $n, unbalanced if/endif) is an error at open naming the
 * file and line; Postfix skips such rules with a warning, which for an
 * access table is a silent hole. A lookup that exceeds the match limit
 * (a pathological pattern against a long key) is a temporary failure with
 * a logged reason, never a silent "not found": a daemon must not hang on
 * one header line, and a skipped reject rule must not let mail through.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "table/table.h"
#include "table/table_backends.h"
#include "table/table_file.h"

/* Backtracking steps allowed per pattern per lookup (PCRE2's own default
 * is 10 million); ordinary header patterns stay far below. */
#define REGEXP_MATCH_LIMIT 1000000
#define REGEXP_DEPTH_LIMIT 100000
/* Deepest if/endif nesting. */
#define REGEXP_NESTING_MAX 100

enum re_op { RE_MATCH, RE_IF, RE_ENDIF };

struct re_pattern {
	pcre2_code *code;
	bool positive; /* false when negated with '!' */
};

struct re_rule {
	enum re_op op;
	unsigned lineno;
	struct re_pattern first;
	struct re_pattern second; /* regexp: /p1/!/p2/, else code NULL */
	char *result; /* RE_MATCH: result text with $n as written */
	unsigned max_sub; /* highest $n in result; 0 = use result as is */
	size_t endif; /* RE_IF: index of its endif */
};

struct table_regexp {
	struct table t;
	bool pcre; /* pcre: flags, else regexp: flags */
	char *label;
	struct re_rule *rules;
	size_t n, cap;
	pcre2_match_context *mctx;
	pcre2_match_data *md;
	uint32_t max_captures;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static void pcre2_message(int code, str_t *out)
{
	PCRE2_UCHAR buf[256];

	if (pcre2_get_error_message(code, buf, sizeof(buf)) < 0)
		str_appendf(out, "PCRE2 error %d", code);
	else
		str_append(out, (const char *)buf);
}

/* Parse "[!...]DpatternDflags" at *pp, compile it, advance *pp past the
 * flags. -1 with why set on error. */
static int parse_pattern(struct table_regexp *tr, unsigned lineno, char **pp,
                         struct re_pattern *pat, uint32_t *captures_r, str_t *why)
{
	char *p = *pp, *start, delim;
	uint32_t options = PCRE2_CASELESS | PCRE2_DOTALL;
	bool newline_mode = false, extended = true;
	PCRE2_SIZE offset;
	int code;

	pat->positive = true;
	for (;; p++) {
		if (*p == '!')
			pat->positive = !pat->positive;
		else if (!is_space(*p))
			break;
	}
	if (*p == '\0') {
		str_append(why, "no pattern");
		return -1;
	}
	delim = *p++;
	if (is_alnum(delim) || delim == '\\') {
		str_appendf(why,
		            "bad pattern delimiter \"%c\": use a character that is not a "
		            "letter or digit, such as /",
		            delim);
		return -1;
	}
	start = p;
	for (; *p != '\0' && *p != delim; p++)
		if (*p == '\\' && p[1] != '\0')
			p++;
	if (*p == '\0') {
		str_appendf(why, "no closing pattern delimiter \"%c\"", delim);
		return -1;
	}
	*p++ = '\0';
	for (; *p != '\0' && !is_space(*p) && !(!tr->pcre && *p == '!'); p++) {
		switch (*p) {
		case 'i':
			options ^= PCRE2_CASELESS;
			break;
		case 'm':
			if (tr->pcre)
				options ^= PCRE2_MULTILINE;
			else
				newline_mode = !newline_mode;
			break;
		case 'x':
			if (tr->pcre)
				options ^= PCRE2_EXTENDED;
			else
				extended = !extended;
			break;
		case 's':
		case 'A':
		case 'E':
		case 'U':
		case 'X':
			if (tr->pcre) {
				options ^= *p == 's'   ? PCRE2_DOTALL
				           : *p == 'A' ? PCRE2_ANCHORED
				           : *p == 'E' ? PCRE2_DOLLAR_ENDONLY
				           : *p == 'U' ? PCRE2_UNGREEDY
				                       : 0;
				if (*p == 'X')
					log_warning("%s, line %u: ignoring obsolete pcre option "
					            "\"X\"",
					            tr->label, lineno);
				break;
			}
			__attribute__((fallthrough)); /* not a regexp: option */
		default:
			str_appendf(why, "unknown %s option \"%c\"", tr->pcre ? "pcre" : "regexp",
			            *p);
			return -1;
		}
	}
	if (!extended) {
		str_append(why, "option \"x\" (basic regular expressions) is not supported: "
		                "postern reads regexp: patterns as extended expressions");
		return -1;
	}
	if (newline_mode) /* POSIX REG_NEWLINE */
		options = (options | PCRE2_MULTILINE) & ~(uint32_t)PCRE2_DOTALL;
	pat->code = pcre2_compile((PCRE2_SPTR)start, PCRE2_ZERO_TERMINATED, options, &code, &offset,
	                          NULL);
	if (pat->code == NULL) {
		str_appendf(why, "error in pattern %c%s%c at offset %zu: ", delim, start, delim,
		            (size_t)offset);
		pcre2_message(code, why);
		return -1;
	}
	if (pcre2_pattern_info(pat->code, PCRE2_INFO_CAPTURECOUNT, captures_r) != 0)
		*captures_r = 0;
	*pp = p;
	return 0;
}

/* Walk a result template: check it (out == NULL: sets *max_sub_r, -1 with
 * why on bad syntax) or expand it into out from a match of subject. */
static int expand(const char *tmpl, str_t *out, const char *subject, const PCRE2_SIZE *ov,
                  int pairs, unsigned *max_sub_r, str_t *why)
{
	unsigned max_sub = 0;

	for (const char *p = tmpl; *p != '\0'; p++) {
		const char *name, *end;
		unsigned long n;

		if (*p != '$') {
			if (out != NULL)
				str_append_c(out, *p);
			continue;
		}
		p++;
		if (*p == '$') {
			if (out != NULL)
				str_append_c(out, '$');
			continue;
		}
		if (*p == '{' || *p == '(') {
			char close = *p == '{' ? '}' : ')';

			name = p + 1;
			end = strchr(name, close);
			if (end == NULL) {
				if (why != NULL)
					str_appendf(why, "missing '%c' after \"$%c\" in result",
					            close, *p);
				return -1;
			}
			p = end; /* the loop steps past the closing brace */
		} else {
			name = p;
			for (end = p; is_alnum(*end) || *end == '_'; end++)
				;
			p = end - 1;
		}
		if (end == name) {
			if (why != NULL)
				str_append(why, "\"$\" without a group number in result (write $$ "
				                "for a literal $)");
			return -1;
		}
		if (strspn(name, "0123456789") < (size_t)(end - name)) {
			if (why != NULL)
				str_appendf(why, "non-numeric replacement index \"%.*s\" in result",
				            (int)(end - name), name);
			return -1;
		}
		n = (end - name) > 2 ? 100 : strtoul(name, NULL, 10);
		if (n < 1 || n > 99) {
			if (why != NULL)
				str_appendf(why,
				            "out of range replacement index \"%.*s\" in result",
				            (int)(end - name), name);
			return -1;
		}
		if (n > max_sub)
			max_sub = (unsigned)n;
		if (out != NULL && (int)n < pairs && ov[2 * n] != PCRE2_UNSET)
			str_append_n(out, subject + ov[2 * n], ov[2 * n + 1] - ov[2 * n]);
	}
	if (max_sub_r != NULL)
		*max_sub_r = max_sub;
	return 0;
}

static struct re_rule *add_rule(struct table_regexp *tr)
{
	if (tr->n == tr->cap) {
		tr->cap = tr->cap == 0 ? 16 : tr->cap * 2;
		tr->rules = xreallocarray(tr->rules, tr->cap, sizeof(*tr->rules));
	}
	memset(&tr->rules[tr->n], 0, sizeof(tr->rules[0]));
	return &tr->rules[tr->n++];
}

static void free_rule(struct re_rule *rule)
{
	pcre2_code_free(rule->first.code);
	pcre2_code_free(rule->second.code);
	free(rule->result);
	memset(rule, 0, sizeof(*rule));
}

/* Is line the keyword kw followed by white space or nothing? */
static char *keyword(char *line, const char *kw)
{
	size_t n = strlen(kw);

	if (strncasecmp(line, kw, n) != 0 || is_alnum(line[n]))
		return NULL;
	line += n;
	while (is_space(*line))
		line++;
	return line;
}

static int parse_match(struct table_regexp *tr, char *p, struct re_rule *rule, str_t *why)
{
	uint32_t captures = 0, unused;

	if (parse_pattern(tr, rule->lineno, &p, &rule->first, &captures, why) < 0)
		return -1;
	if (!tr->pcre && *p == '!' &&
	    parse_pattern(tr, rule->lineno, &p, &rule->second, &unused, why) < 0)
		return -1;
	while (is_space(*p))
		p++;
	if (*p == '\0') {
		str_append(why, "no result after the pattern");
		return -1;
	}
	if (expand(p, NULL, NULL, NULL, 0, &rule->max_sub, why) < 0)
		return -1;
	if (rule->max_sub > 0 && !rule->first.positive) {
		str_append(why, "$number in the result of a negated pattern (nothing was matched)");
		return -1;
	}
	if (rule->max_sub > captures) {
		str_appendf(why, "out of range replacement index \"%u\": the pattern has %u groups",
		            rule->max_sub, captures);
		return -1;
	}
	if (captures > tr->max_captures)
		tr->max_captures = captures;
	rule->op = RE_MATCH;
	rule->result = xstrdup(p);
	return 0;
}

static void parse_line(struct table_regexp *tr, unsigned lineno, char *line, size_t *stack,
                       size_t *depth, struct table_file_errors *errors)
{
	struct re_rule rule;
	char *rest;
	str_t why;

	memset(&rule, 0, sizeof(rule));
	rule.lineno = lineno;
	str_init(&why);
	if (!is_alnum(line[0])) {
		if (parse_match(tr, line, &rule, &why) < 0)
			goto bad;
		*add_rule(tr) = rule;
	} else if ((rest = keyword(line, "if")) != NULL) {
		uint32_t captures;

		if (*depth >= REGEXP_NESTING_MAX) {
			str_append(&why, "if nested too deeply");
			goto bad;
		}
		if (parse_pattern(tr, lineno, &rest, &rule.first, &captures, &why) < 0)
			goto bad;
		while (is_space(*rest))
			rest++;
		if (*rest != '\0') {
			str_appendf(&why,
			            "text after if pattern: \"%s\" (do not indent rules inside "
			            "if/endif: a line starting with white space continues the "
			            "previous line)",
			            rest);
			goto bad;
		}
		if (captures > tr->max_captures)
			tr->max_captures = captures;
		rule.op = RE_IF;
		stack[(*depth)++] = tr->n;
		*add_rule(tr) = rule;
	} else if ((rest = keyword(line, "endif")) != NULL) {
		if (*depth == 0) {
			str_append(&why, "endif without matching if");
			goto bad;
		}
		if (*rest != '\0') {
			str_appendf(&why, "text after endif: \"%s\"", rest);
			goto bad;
		}
		tr->rules[stack[--*depth]].endif = tr->n;
		rule.op = RE_ENDIF;
		*add_rule(tr) = rule;
	} else {
		str_append(&why, "expected /pattern/ result, if /pattern/ or endif");
		goto bad;
	}
	str_free(&why);
	return;
bad:
	table_file_errors_add(errors, "%s, line %u: %s", tr->label, lineno, str_c(&why));
	free_rule(&rule);
	str_free(&why);
}

/* The rules of an inline table, "{ {rule}, {rule} }" (Postfix 3.7's
 * regexp:{...} and pcre:{...} form, as in the default of
 * smtpd_forbidden_commands), one per line of text: rule N is line N. */
static int inline_rules(const char *name, str_t *text, str_t *why)
{
	char *inner = table_list_unbrace(name, why);
	strv_t elements = STRV_INIT;
	int ret = -1;

	if (inner == NULL || table_list_split(&elements, inner, why) < 0)
		goto out;
	for (size_t i = 0; i < elements.n; i++) {
		char *rule;

		if (elements.v[i][0] != '{') {
			str_appendf(why, "rule %zu: \"%s\": expected {rule}", i + 1, elements.v[i]);
			goto out;
		}
		rule = table_list_unbrace(elements.v[i], why);
		if (rule == NULL)
			goto out;
		if (strchr(rule, '\n') != NULL) {
			free(rule);
			str_appendf(why, "rule %zu: a rule cannot span lines", i + 1);
			goto out;
		}
		str_append(text, rule);
		str_append_c(text, '\n');
		free(rule);
	}
	ret = 0;
out:
	free(inner);
	strv_free(&elements);
	return ret;
}

static int regexp_open_common(struct table *t, const char *name,
                              const struct table_open_context *ctx, bool pcre, str_t *error)
{
	struct table_regexp *tr = (struct table_regexp *)t;
	struct table_file_stamp stamp;
	struct table_file_errors errors;
	struct table_file_lines lines;
	bool inline_table = name[0] == '{';
	char *path = inline_table ? xstrdup(name) : table_file_path(name, ctx);
	size_t stack[REGEXP_NESTING_MAX], depth = 0;
	str_t text, line, why;
	unsigned lineno;
	int rc, ret = -1;

	tr->pcre = pcre;
	tr->label = xasprintf("%s:%s", pcre ? "pcre" : "regexp", path);
	str_init(&text);
	str_init(&line);
	str_init(&why);
	table_file_errors_init(&errors);
	if (inline_table ? inline_rules(name, &text, &why) < 0
	                 : table_file_read(path, &text, &stamp, &why) < 0) {
		str_appendf(error, "%s: %s", tr->label, str_c(&why));
		goto out;
	}
	table_file_lines_init(&lines, tr->label, text.buf, text.len);
	while ((rc = table_file_next(&lines, &line, &lineno, &why)) != 0) {
		if (rc < 0) {
			table_file_errors_add(&errors, "%s", str_c(&why));
			str_reset(&why);
			continue;
		}
		parse_line(tr, lineno, line.buf, stack, &depth, &errors);
	}
	while (depth > 0)
		table_file_errors_add(&errors, "%s, line %u: if has no matching endif", tr->label,
		                      tr->rules[stack[--depth]].lineno);
	if (errors.count > 0) {
		table_file_errors_move(&errors, error);
		goto out;
	}
	tr->mctx = pcre2_match_context_create(NULL);
	if (tr->mctx == NULL)
		log_panic("%s: out of memory creating a PCRE2 match context", tr->label);
	pcre2_set_match_limit(tr->mctx, REGEXP_MATCH_LIMIT);
	pcre2_set_depth_limit(tr->mctx, REGEXP_DEPTH_LIMIT);
	tr->md = pcre2_match_data_create(tr->max_captures + 1, NULL);
	if (tr->md == NULL)
		log_panic("%s: out of memory creating PCRE2 match data", tr->label);
	ret = 0;
out:
	table_file_errors_free(&errors);
	str_free(&text);
	str_free(&line);
	str_free(&why);
	free(path);
	return ret;
}

static int regexp_open(struct table *t, const char *name, const struct table_open_context *ctx,
                       str_t *error)
{
	return regexp_open_common(t, name, ctx, false, error);
}

static int pcre_open(struct table *t, const char *name, const struct table_open_context *ctx,
                     str_t *error)
{
	return regexp_open_common(t, name, ctx, true, error);
}

/* 1 when the pattern decides "match", 0 when not, -1 on a matching error
 * (match limit) with r set to TEMPFAIL. */
static int run(struct table_regexp *tr, const struct re_pattern *pat, unsigned lineno,
               const char *key, size_t len, struct table_result *r)
{
	int rc = pcre2_match(pat->code, (PCRE2_SPTR)key, len, 0, 0, tr->md, tr->mctx);

	if (rc >= 0)
		return pat->positive ? 1 : 0;
	if (rc == PCRE2_ERROR_NOMATCH)
		return pat->positive ? 0 : 1;
	r->status = TABLE_TEMPFAIL;
	str_appendf(&r->error, "%s, line %u: ", tr->label, lineno);
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	    rc == PCRE2_ERROR_HEAPLIMIT)
		str_append(&r->error, "pattern too complex for this key (PCRE2: ");
	else
		str_append(&r->error, "pattern matching failed (PCRE2: ");
	pcre2_message(rc, &r->error);
	str_append(&r->error, ")");
	log_warning("%s", str_c(&r->error));
	return -1;
}

static void regexp_lookup(struct table *t, const char *key, struct table_result *r)
{
	struct table_regexp *tr = (struct table_regexp *)t;
	size_t len = strlen(key);

	r->status = TABLE_NOTFOUND;
	for (size_t i = 0; i < tr->n; i++) {
		const struct re_rule *rule = &tr->rules[i];
		int hit;

		switch (rule->op) {
		case RE_MATCH:
			hit = run(tr, &rule->first, rule->lineno, key, len, r);
			if (hit < 0)
				return;
			if (hit == 0)
				continue;
			if (rule->max_sub > 0) {
				/* Expand now: the second pattern reuses the match data. */
				str_reset(&r->value);
				(void)expand(rule->result, &r->value, key,
				             pcre2_get_ovector_pointer(tr->md),
				             (int)pcre2_get_ovector_count(tr->md), NULL, NULL);
			} else {
				str_set(&r->value, rule->result);
			}
			if (rule->second.code != NULL) {
				hit = run(tr, &rule->second, rule->lineno, key, len, r);
				if (hit < 0)
					return;
				if (hit == 0)
					continue;
			}
			r->status = TABLE_FOUND;
			return;
		case RE_IF:
			hit = run(tr, &rule->first, rule->lineno, key, len, r);
			if (hit < 0)
				return;
			if (hit == 0)
				i = rule->endif; /* skip the block */
			break;
		case RE_ENDIF:
			break;
		}
	}
	str_reset(&r->value);
}

static void regexp_close(struct table *t)
{
	struct table_regexp *tr = (struct table_regexp *)t;

	for (size_t i = 0; i < tr->n; i++)
		free_rule(&tr->rules[i]);
	xfree(&tr->rules);
	tr->n = tr->cap = 0;
	pcre2_match_data_free(tr->md);
	tr->md = NULL;
	pcre2_match_context_free(tr->mctx);
	tr->mctx = NULL;
	xfree(&tr->label);
}

const struct table_backend table_backend_regexp = {
        .type = "regexp",
        .flags = TABLE_F_PATTERN,
        .size = sizeof(struct table_regexp),
        .open = regexp_open,
        .lookup = regexp_lookup,
        .close = regexp_close,
};

const struct table_backend table_backend_pcre = {
        .type = "pcre",
        .flags = TABLE_F_PATTERN,
        .size = sizeof(struct table_regexp),
        .open = pcre_open,
        .lookup = regexp_lookup,
        .close = regexp_close,
};
