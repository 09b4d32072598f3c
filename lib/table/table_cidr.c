/* table_cidr.c - cidr:/path, first-match network address tables.
 *
 * cidr_table(5): each rule is "pattern result" where the pattern is an
 * IPv4 or IPv6 address or network/prefix, optionally in [] brackets and
 * optionally negated with '!'; "if pattern" ... "endif" blocks (Postfix
 * 3.2) nest. Rules are tried in file order and the first match wins. The
 * lookup key is a client address as smtpd sees it (no brackets); a key
 * that is not an address is simply not found.
 *
 * Failure: every bad line is an error at open naming the file and line
 * (Postfix only warns and skips the rule; a skipped access rule is a
 * silent hole, so postern refuses the table). Lookups never fail.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/mem.h"
#include "table/table.h"
#include "table/table_backends.h"
#include "table/table_file.h"

enum cidr_op { CIDR_MATCH, CIDR_IF, CIDR_ENDIF };

struct cidr_rule {
	enum cidr_op op;
	bool positive; /* false when negated with '!' */
	int family; /* AF_INET or AF_INET6 */
	unsigned prefix; /* network bits */
	unsigned char net[16];
	char *value; /* CIDR_MATCH */
	size_t endif; /* CIDR_IF: index of its endif */
	unsigned lineno;
};

struct table_cidr {
	struct table t;
	struct cidr_rule *rules;
	size_t n, cap;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Parse "[!...]addr[/len]" (brackets allowed) into rule; NULL or why. */
static const char *parse_pattern_copy(const char *pattern, char *addr, struct cidr_rule *rule,
                                      str_t *why)
{
	char *mask = NULL, *slash;
	unsigned bits;

	rule->positive = true;
	while (*addr == '!') {
		rule->positive = !rule->positive;
		addr++;
	}
	if (*addr == '\0')
		return "no address pattern";
	if (*addr == '[') {
		char *close = strchr(++addr, ']');

		if (close == NULL) {
			str_appendf(why, "missing ']' in \"%s\"", pattern);
			return str_c(why);
		}
		*close = '\0';
		if (close[1] == '/') {
			mask = close + 2;
		} else if (close[1] != '\0') {
			str_appendf(why, "text after ']' in \"%s\"", pattern);
			return str_c(why);
		}
	}
	slash = strchr(addr, '/');
	if (slash != NULL) {
		if (mask != NULL) {
			str_appendf(why, "bad net/mask pattern \"%s\"", pattern);
			return str_c(why);
		}
		*slash = '\0';
		mask = slash + 1;
	}
	rule->family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
	bits = rule->family == AF_INET6 ? 128 : 32;
	memset(rule->net, 0, sizeof(rule->net));
	if (inet_pton(rule->family, addr, rule->net) != 1) {
		str_appendf(why, "bad address \"%s\" in \"%s\": expected an IPv4 or IPv6 address",
		            addr, pattern);
		return str_c(why);
	}
	rule->prefix = bits;
	if (mask != NULL) {
		unsigned long len = 0;

		if (*mask == '\0' || strlen(mask) > 3 ||
		    strspn(mask, "0123456789") != strlen(mask) ||
		    (len = strtoul(mask, NULL, 10)) > bits) {
			str_appendf(why,
			            "bad net/mask pattern \"%s/%s\": the prefix length must be "
			            "0 to %u",
			            addr, mask, bits);
			return str_c(why);
		}
		rule->prefix = (unsigned)len;
	}
	/* All host bits must be zero, as in Postfix: "10.1.2.3/8" is most
	 * likely a typo, and its meaning would be surprising. */
	for (unsigned i = rule->prefix; i < bits; i++) {
		if (rule->net[i / 8] & (0x80u >> (i % 8))) {
			char buf[INET6_ADDRSTRLEN];
			unsigned char net[16];

			memcpy(net, rule->net, sizeof(net));
			for (unsigned j = rule->prefix; j < bits; j++)
				net[j / 8] &= (unsigned char)~(0x80u >> (j % 8));
			inet_ntop(rule->family, net, buf, sizeof(buf));
			str_appendf(why,
			            "non-null host address bits in \"%s/%s\", perhaps you should "
			            "use \"%s/%u\" instead",
			            addr, mask != NULL ? mask : "", buf, rule->prefix);
			return str_c(why);
		}
	}
	return NULL;
}

static const char *parse_pattern(const char *pattern, struct cidr_rule *rule, str_t *why)
{
	char *copy = xstrdup(pattern);
	const char *bad = parse_pattern_copy(pattern, copy, rule, why);

	free(copy);
	return bad;
}

static bool rule_matches(const struct cidr_rule *rule, int family, const unsigned char *addr)
{
	bool hit = true;

	if (rule->family != family)
		return false; /* Postfix: a rule of the other family never matches, even negated */
	for (unsigned i = 0; i < rule->prefix; i += 8) {
		unsigned left = rule->prefix - i;
		unsigned char mask = left >= 8 ? 0xff : (unsigned char)(0xff << (8 - left));

		if ((addr[i / 8] & mask) != rule->net[i / 8]) {
			hit = false;
			break;
		}
	}
	return hit == rule->positive;
}

static struct cidr_rule *add_rule(struct table_cidr *tc)
{
	if (tc->n == tc->cap) {
		tc->cap = tc->cap == 0 ? 16 : tc->cap * 2;
		tc->rules = xreallocarray(tc->rules, tc->cap, sizeof(*tc->rules));
	}
	memset(&tc->rules[tc->n], 0, sizeof(tc->rules[0]));
	return &tc->rules[tc->n++];
}

/* Split "word rest": NUL-terminate the first word, return the rest with
 * leading white space skipped. */
static char *split_word(char *p)
{
	while (*p != '\0' && !is_space(*p))
		p++;
	if (*p != '\0')
		*p++ = '\0';
	while (is_space(*p))
		p++;
	return p;
}

static bool is_keyword(const char *word, const char *kw)
{
	size_t n = strlen(kw);

	return strncasecmp(word, kw, n) == 0 && word[n] == '\0';
}

static void parse_line(struct table_cidr *tc, const char *label, unsigned lineno, char *line,
                       size_t *stack, size_t *depth, struct table_file_errors *errors)
{
	char *word = line, *rest = split_word(line);
	struct cidr_rule rule;
	const char *bad;
	str_t why;

	memset(&rule, 0, sizeof(rule));
	rule.lineno = lineno;
	str_init(&why);
	if (is_keyword(word, "endif")) {
		if (*depth == 0)
			table_file_errors_add(errors, "%s, line %u: endif without matching if",
			                      label, lineno);
		else if (*rest != '\0')
			table_file_errors_add(errors, "%s, line %u: text after endif: \"%s\"",
			                      label, lineno, rest);
		else {
			tc->rules[stack[--*depth]].endif = tc->n;
			rule.op = CIDR_ENDIF;
			*add_rule(tc) = rule;
		}
	} else if (is_keyword(word, "if")) {
		char *after;

		if (*rest == '\0') {
			table_file_errors_add(errors, "%s, line %u: if without an address pattern",
			                      label, lineno);
			goto out;
		}
		after = split_word(rest);
		if (*after != '\0') {
			table_file_errors_add(errors,
			                      "%s, line %u: text after if pattern: \"%s\" (do not "
			                      "indent rules inside if/endif: a line starting with "
			                      "white space continues the previous line)",
			                      label, lineno, after);
			goto out;
		}
		if ((bad = parse_pattern(rest, &rule, &why)) != NULL) {
			table_file_errors_add(errors, "%s, line %u: %s", label, lineno, bad);
			goto out;
		}
		if (*depth >= 100) {
			table_file_errors_add(errors, "%s, line %u: if nested too deeply", label,
			                      lineno);
			goto out;
		}
		rule.op = CIDR_IF;
		stack[(*depth)++] = tc->n;
		*add_rule(tc) = rule;
	} else {
		if (*rest == '\0') {
			table_file_errors_add(errors, "%s, line %u: no lookup result after \"%s\"",
			                      label, lineno, word);
			goto out;
		}
		if ((bad = parse_pattern(word, &rule, &why)) != NULL) {
			table_file_errors_add(errors, "%s, line %u: %s", label, lineno, bad);
			goto out;
		}
		rule.op = CIDR_MATCH;
		rule.value = xstrdup(rest);
		*add_rule(tc) = rule;
	}
out:
	str_free(&why);
}

static int cidr_open(struct table *t, const char *name, const struct table_open_context *ctx,
                     str_t *error)
{
	struct table_cidr *tc = (struct table_cidr *)t;
	struct table_file_stamp stamp;
	struct table_file_errors errors;
	struct table_file_lines lines;
	char *path = table_file_path(name, ctx);
	char *label = xasprintf("cidr:%s", path);
	size_t stack[100], depth = 0;
	str_t text, line, why;
	unsigned lineno;
	int rc, ret = -1;

	str_init(&text);
	str_init(&line);
	str_init(&why);
	table_file_errors_init(&errors);
	if (table_file_read(path, &text, &stamp, &why) < 0) {
		str_appendf(error, "%s: %s", label, str_c(&why));
		goto out;
	}
	table_file_lines_init(&lines, label, text.buf, text.len);
	while ((rc = table_file_next(&lines, &line, &lineno, &why)) != 0) {
		if (rc < 0) {
			table_file_errors_add(&errors, "%s", str_c(&why));
			str_reset(&why);
			continue;
		}
		parse_line(tc, label, lineno, line.buf, stack, &depth, &errors);
	}
	while (depth > 0)
		table_file_errors_add(&errors, "%s, line %u: if has no matching endif", label,
		                      tc->rules[stack[--depth]].lineno);
	if (errors.count > 0) {
		table_file_errors_move(&errors, error);
		goto out;
	}
	ret = 0;
out:
	table_file_errors_free(&errors);
	str_free(&text);
	str_free(&line);
	str_free(&why);
	free(path);
	free(label);
	return ret;
}

static void cidr_lookup(struct table *t, const char *key, struct table_result *r)
{
	const struct table_cidr *tc = (const struct table_cidr *)t;
	unsigned char addr[16];
	int family = strchr(key, ':') != NULL ? AF_INET6 : AF_INET;

	r->status = TABLE_NOTFOUND;
	if (inet_pton(family, key, addr) != 1)
		return;
	for (size_t i = 0; i < tc->n; i++) {
		const struct cidr_rule *rule = &tc->rules[i];

		switch (rule->op) {
		case CIDR_MATCH:
			if (rule_matches(rule, family, addr)) {
				r->status = TABLE_FOUND;
				str_set(&r->value, rule->value);
				return;
			}
			break;
		case CIDR_IF:
			if (!rule_matches(rule, family, addr))
				i = rule->endif; /* skip the block */
			break;
		case CIDR_ENDIF:
			break;
		}
	}
}

static void cidr_close(struct table *t)
{
	struct table_cidr *tc = (struct table_cidr *)t;

	for (size_t i = 0; i < tc->n; i++)
		free(tc->rules[i].value);
	xfree(&tc->rules);
	tc->n = tc->cap = 0;
}

const struct table_backend table_backend_cidr = {
        .type = "cidr",
        .flags = TABLE_F_PATTERN,
        .size = sizeof(struct table_cidr),
        .open = cidr_open,
        .lookup = cidr_lookup,
        .close = cidr_close,
};
