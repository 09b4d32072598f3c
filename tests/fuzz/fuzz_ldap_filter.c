/* fuzz_ldap_filter.c - libFuzzer target for how a lookup key enters an
 * LDAP search (lib/table/ldap_cf.c escaping, lib/table/sqlcf_template.c
 * expansion), the ldap: table's defence against filter injection.
 *
 * The input is "TEMPLATE NUL KEY" (no NUL: all of it is the key, with the
 * template "(mail=%s)"). Invariants checked (a violation aborts):
 *  - RFC 4515: the escaped key holds none of '*', '(', ')', NUL or a
 *    control byte, every '\' starts a two-hex-digit escape, and
 *    unescaping gives the key back;
 *  - RFC 4514: the same round trip for the DN escaping of search_base;
 *  - a compiled query_filter expanded with the key has exactly as many
 *    '(' and ')' as the template's own text: no key can open or close a
 *    filter component.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/parse.h"
#include "base/str.h"
#include "table/ldap_cf.h"
#include "table/sqlcf_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Undo escaping: "\XX" is a byte; in DNs also "\c" is c. */
static void unescape(const str_t *in, bool dn, str_t *out)
{
	for (size_t i = 0; i < in->len; i++) {
		char c = in->buf[i];

		if (c != '\\') {
			str_append_c(out, c);
			continue;
		}
		if (i + 2 < in->len && parse_hex_digit(in->buf[i + 1]) >= 0 &&
		    parse_hex_digit(in->buf[i + 2]) >= 0) {
			str_append_c(out, (char)(parse_hex_digit(in->buf[i + 1]) * 16 +
			                         parse_hex_digit(in->buf[i + 2])));
			i += 2;
		} else if (dn && i + 1 < in->len) {
			str_append_c(out, in->buf[++i]);
		} else {
			abort(); /* a backslash that escapes nothing */
		}
	}
}

static void check_filter_escape(const char *key)
{
	str_t esc, back;

	str_init(&esc);
	str_init(&back);
	ldap_escape_filter(&esc, key);
	for (size_t i = 0; i < esc.len; i++) {
		unsigned char c = (unsigned char)esc.buf[i];

		if (c == '*' || c == '(' || c == ')' || c < 0x20)
			abort();
		if (c == '\\' && (i + 2 >= esc.len || parse_hex_digit(esc.buf[i + 1]) < 0 ||
		                  parse_hex_digit(esc.buf[i + 2]) < 0))
			abort();
	}
	unescape(&esc, false, &back);
	if (strcmp(str_c(&back), key) != 0)
		abort();
	str_free(&esc);
	str_free(&back);
}

static void check_dn_escape(const char *key)
{
	str_t esc, back;

	str_init(&esc);
	str_init(&back);
	ldap_escape_dn(&esc, key);
	unescape(&esc, true, &back);
	if (strcmp(str_c(&back), key) != 0)
		abort();
	/* No unescaped separator survives. */
	for (size_t i = 0; i < esc.len; i++) {
		if (esc.buf[i] == '\\') {
			if (i + 1 >= esc.len)
				abort(); /* a trailing backslash */
			i += i + 2 < esc.len && parse_hex_digit(esc.buf[i + 1]) >= 0 ? 2 : 1;
			continue;
		}
		if (strchr(",+\"<>;=", esc.buf[i]) != NULL || (unsigned char)esc.buf[i] < 0x20)
			abort();
	}
	str_free(&esc);
	str_free(&back);
}

static size_t count_parens(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == '(' || *s == ')';
	return n;
}

static void check_template(const char *text, const char *key)
{
	struct sqlcf_template t;
	struct sqlcf_addr k;
	unsigned need = 0, labels = 0;
	str_t error, out;

	str_init(&error);
	str_init(&out);
	if (sqlcf_compile_key_template(text, "query_filter", &t, &need, &labels, &error) == 0) {
		size_t want = 0;

		for (size_t i = 0; i < t.n; i++)
			if (t.pieces[i].kind == SQLCF_TEXT)
				want += count_parens(t.pieces[i].text);
		sqlcf_addr_init(&k, key);
		if (sqlcf_expand_escaped(&t, &k, NULL, ldap_escape_filter, &out) &&
		    count_parens(str_c(&out)) != want)
			abort();
		sqlcf_addr_free(&k);
		sqlcf_template_free(&t);
	}
	str_free(&error);
	str_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	char *text, *key;

	if (size > 4096)
		return 0;
	if (nul != NULL) {
		text = xstrndup((const char *)data, (size_t)(nul - data));
		key = xstrndup((const char *)nul + 1, size - (size_t)(nul - data) - 1);
	} else {
		text = xstrdup("(mail=%s)");
		key = xstrndup((const char *)data, size);
	}
	/* A key is a C string: a NUL ends it (table.c refuses such keys). */
	check_filter_escape(key);
	check_dn_escape(key);
	check_template(text, key);
	free(text);
	free(key);
	return 0;
}
