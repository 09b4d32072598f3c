/* test_address.c - unit tests for lib/address/address: the MAIL FROM / RCPT
 * TO parser (valid and invalid paths with the reply smtpd sends, UTF-8
 * with and without SMTPUTF8, every bound at and past its limit, ESMTP
 * parameters), quoting for the wire, xtext and ORCPT, and Postfix's
 * address resolution, including an open-relay battery: address forms that
 * try to route through local.example to somewhere else must resolve to
 * that somewhere else, be flagged routed, or be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/mem.h"
#include "base/str.h"
#include "address/address.h"
#include "address/address_resolve.h"
#include "address/xtext.h"

/* Expected mail_address flags, compactly. */
enum {
	F_QUOTED = 1 << 0,
	F_DOT = 1 << 1, /* trailing_dot */
	F_ROUTE = 1 << 2,
	F_LITERAL = 1 << 3,
	F_UTF8 = 1 << 4,
	F_NULL = 1 << 5,
	F_BARE = 1 << 6, /* !bracketed */
};

#define S ADDRESS_SENDER
#define R ADDRESS_RECIPIENT
#define SLOPPY ADDRESS_PARSE_SLOPPY
#define UTF8 ADDRESS_PARSE_SMTPUTF8

#define SYN_R "501 5.1.3 Bad recipient address syntax"
#define SYN_S "501 5.1.7 Bad sender address syntax"
#define LONG_R "501 5.1.3 Path too long"
#define PARAM "501 5.5.4 Bad parameter syntax"
#define U8 "553 5.6.7 Must declare SMTPUTF8 to send unicode address"

struct parse_case {
	const char *in;
	enum address_role role;
	unsigned flags;
	const char *reply; /* NULL: must parse */
	const char *local;
	const char *domain; /* NULL: none */
	unsigned aflags;
	size_t nparams;
};

static const struct parse_case parse_cases[] = {
        /* valid */
        {"<user@example.com>", R, 0, NULL, "user", "example.com", 0, 0},
        {"<User.Name+tag@Example.COM>", R, 0, NULL, "User.Name+tag", "example.com", 0, 0},
        {"<>", S, 0, NULL, "", NULL, F_NULL, 0},
        {"<> SIZE=100", S, 0, NULL, "", NULL, F_NULL, 1},
        {"<\"john doe\"@example.com>", R, 0, NULL, "john doe", "example.com", F_QUOTED, 0},
        {"<\"a\\\"b\\\\c\"@example.com>", R, 0, NULL, "a\"b\\c", "example.com", F_QUOTED, 0},
        {"<\"user@remote\"@example.com>", R, 0, NULL, "user@remote", "example.com", F_QUOTED, 0},
        {"<\"\"@example.com>", R, 0, NULL, "", "example.com", F_QUOTED, 0},
        {"<\"\\x\"@example.com>", R, 0, NULL, "x", "example.com", F_QUOTED, 0},
        {"<\"plain\"@example.com>", R, 0, NULL, "plain", "example.com", F_QUOTED, 0},
        {"<user@example.com.>", R, 0, NULL, "user", "example.com", F_DOT, 0},
        {"<user@[192.0.2.1]>", R, 0, NULL, "user", "[192.0.2.1]", F_LITERAL, 0},
        {"<user@[IPv6:2001:DB8::1]>", R, 0, NULL, "user", "[ipv6:2001:db8::1]", F_LITERAL, 0},
        {"<user@[ipv6:::1]>", R, 0, NULL, "user", "[ipv6:::1]", F_LITERAL, 0},
        {"<@a.example,@b.example:user@c.example>", R, 0, NULL, "user", "c.example", F_ROUTE, 0},
        {"<@a.example:user@c.example>", R, 0, NULL, "user", "c.example", F_ROUTE, 0},
        {"<postmaster>", R, 0, NULL, "postmaster", NULL, 0, 0},
        {"<Postmaster>", R, 0, NULL, "Postmaster", NULL, 0, 0},
        {"<\"quoted\">", R, 0, NULL, "quoted", NULL, F_QUOTED, 0},
        {"<user@>", R, 0, NULL, "user", "", 0, 0},
        {"<user@example.com> SIZE=1000 BODY=8BITMIME", S, 0, NULL, "user", "example.com", 0, 2},
        {"<user@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+40example.com", R, 0, NULL,
         "user", "example.com", 0, 2},
        {" <user@example.com>", R, 0, NULL, "user", "example.com", 0, 0},
        {"<user@example.com>  SIZE=1  ", S, 0, NULL, "user", "example.com", 0, 1},
        {"<a@b.example> SIZE=1\tBODY=7BIT", S, 0, NULL, "a", "b.example", 0, 2},
        {"<user@example.com> SMTPUTF8", S, 0, NULL, "user", "example.com", 0, 1},
        {"<user@example.com> AUTH=<>", S, 0, NULL, "user", "example.com", 0, 1},
        {"<!#$%&'*+-/=?^_`{|}~@example.com>", R, 0, NULL, "!#$%&'*+-/=?^_`{|}~", "example.com", 0,
         0},
        {"<a.b.c@x.y.z>", R, 0, NULL, "a.b.c", "x.y.z", 0, 0},
        {"<user@a-b.example>", R, 0, NULL, "user", "a-b.example", 0, 0},
        {"<user@a--b.example>", R, 0, NULL, "user", "a--b.example", 0, 0},
        {"<user@123.example>", R, 0, NULL, "user", "123.example", 0, 0},
        {"<user@1.2.3.4>", R, 0, NULL, "user", "1.2.3.4", 0, 0},
        {"<user@localhost>", R, 0, NULL, "user", "localhost", 0, 0},
        {"<user%remote@example.com>", R, 0, NULL, "user%remote", "example.com", 0, 0},
        {"<site!user@example.com>", R, 0, NULL, "site!user", "example.com", 0, 0},
        /* sloppy (strict_rfc821_envelopes = no) */
        {"user@example.com", R, SLOPPY, NULL, "user", "example.com", F_BARE, 0},
        {"user@example.com SIZE=5", S, SLOPPY, NULL, "user", "example.com", F_BARE, 1},
        {"  <user@example.com>  ", R, SLOPPY, NULL, "user", "example.com", 0, 0},
        {"<a..b@example.com>", R, SLOPPY, NULL, "a..b", "example.com", 0, 0},
        {"<a.@example.com>", R, SLOPPY, NULL, "a.", "example.com", 0, 0},
        {"<.a@example.com>", R, SLOPPY, NULL, ".a", "example.com", 0, 0},
        {"postmaster", R, SLOPPY, NULL, "postmaster", NULL, F_BARE, 0},
        {"<>", S, SLOPPY, NULL, "", NULL, F_NULL, 0},
        {"\"a b\"@example.com", R, SLOPPY, NULL, "a b", "example.com", F_QUOTED | F_BARE, 0},
        {"user@", R, SLOPPY, NULL, "user", "", F_BARE, 0},
        /* UTF-8 with SMTPUTF8 */
        {"<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", R, UTF8,
         NULL, "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
         F_UTF8, 0},
        {"<j\xc3\xb6s\xc3\xa9@example.com> SMTPUTF8", S, UTF8, NULL, "j\xc3\xb6s\xc3\xa9",
         "example.com", F_UTF8, 1},
        {"<j\xc3\xb6s\xc3\xa9@example.com> smtputf8 BODY=8BITMIME", S, UTF8, NULL,
         "j\xc3\xb6s\xc3\xa9", "example.com", F_UTF8, 2},
        {"<user@B\xc3\x9c"
         "cher.Example>",
         R, UTF8, NULL, "user",
         "b\xc3\x9c"
         "cher.example",
         F_UTF8, 0},
        {"<\"\xc3\xbc ser\"@example.com>", R, UTF8, NULL, "\xc3\xbc ser", "example.com",
         F_QUOTED | F_UTF8, 0},
        {"<u@example.com> X-NOTE=\xc3\xa4", R, UTF8, NULL, "u", "example.com", 0, 1},
        {"<\xf0\x9f\x98\x80@example.com>", R, UTF8, NULL, "\xf0\x9f\x98\x80", "example.com", F_UTF8,
         0},
        {"<user@example.com>", S, UTF8, NULL, "user", "example.com", 0, 0},

        /* invalid: missing argument */
        {"", R, 0, "501 5.5.4 Syntax: RCPT TO:<address>", NULL, NULL, 0, 0},
        {"   ", R, 0, "501 5.5.4 Syntax: RCPT TO:<address>", NULL, NULL, 0, 0},
        {"", S, 0, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL, NULL, 0, 0},
        /* invalid: syntax */
        {"<>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<>", R, SLOPPY, SYN_R, NULL, NULL, 0, 0},
        {"<\"\">", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<\"\">", S, 0, NULL, "", NULL, F_NULL | F_QUOTED, 0},
        {"<@a.example:\"\">", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"user@example.com", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"user@example.com", S, 0, SYN_S, NULL, NULL, 0, 0},
        {"<user@example.com", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@example.com", R, SLOPPY, SYN_R, NULL, NULL, 0, 0},
        {"user@example.com>", R, SLOPPY, NULL, "user", "example.com", F_BARE, 0}, /* as Postfix */
        {"<<user@example.com>>", R, SLOPPY, NULL, "user", "example.com", 0, 0},
        {"<<user@example.com>>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@@example.com>", S, 0, SYN_S, NULL, NULL, 0, 0},
        {"<user@example..com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@example.com..>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@-example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@example-.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@.example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@.>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@exa_mple.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user name@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"< user@example.com>", R, 0, NULL, "user", "example.com", 0, 0},
        {"<user@example.com >", R, 0, NULL, "user", "example.com", 0, 0},
        {"<user(comment)@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"Joe <user@example.com>", R, SLOPPY, NULL, "Joe", NULL, F_BARE, 1}, /* smtpd: 555 */
        {"<user@example.com>x", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@example.com>SIZE=1", S, 0, SYN_S, NULL, NULL, 0, 0},
        {"<\"unterminated@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<\"a\\\x01\"@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<\"a\tb\"@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<\"a\"b@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<.user@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user.@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<us..er@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user\\@remote.example@local.example>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@remote.example@local.example>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@remote.example@local.example>", R, SLOPPY, SYN_R, NULL, NULL, 0, 0},
        {"<user@remote.example%local.example>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@[192.0.2.256]>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@[192.0.2]>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@[IPv6:2001:db8::g]>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@[IPv6:192.0.2.1]>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@[2001:db8::1]>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@[foo:bar]>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@[192.0.2.1>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@[]>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user@[192.0.2.1].example>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<@a.example user@b.example>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<@a.example,b.example:user@c.example>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<@[192.0.2.1]:user@c.example>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<@a.example:>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<@>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<user%[192.0.2.1]@local.example>", R, 0, SYN_R, NULL, NULL, 0, 0},
        /* any printable word is a parameter (smtpd: 555 Unsupported
         * option for one it does not know, as Postfix) */
        {"<user@example.com> =x", S, 0, NULL, "user", "example.com", 0, 1},
        {"<user@example.com> -SIZE=1", S, 0, NULL, "user", "example.com", 0, 1},
        {"<user@example.com> SIZE=", S, 0, NULL, "user", "example.com", 0, 1},
        {"<user@example.com> SI_ZE=1", S, 0, NULL, "user", "example.com", 0, 1},
        {"<user@example.com> A=b=c", S, 0, NULL, "user", "example.com", 0, 1},
        {"<user@example.com> <other@example.com> (comment)", S, 0, NULL, "user", "example.com", 0,
         2},
        {"< user@example.com >", R, 0, NULL, "user", "example.com", 0, 0},
        /* invalid: parameters */
        {"<user@example.com> ENVID=\x01", S, 0, PARAM, NULL, NULL, 0, 0},
        {"<u@example.com> X-NOTE=\xc3\xa4", R, 0, PARAM, NULL, NULL, 0, 0},
        {"<u@example.com> X-NOTE=\xc0\xaf", R, UTF8, PARAM, NULL, NULL, 0, 0},
        /* UTF-8 without SMTPUTF8, and invalid UTF-8 */
        {"<j\xc3\xb6s\xc3\xa9@example.com>", R, 0, U8, NULL, NULL, 0, 0},
        {"<user@b\xc3\xbc"
         "cher.example>",
         R, 0, U8, NULL, NULL, 0, 0},
        {"<j\xc3\xb6s\xc3\xa9@example.com>", S, UTF8, U8, NULL, NULL, 0, 0},
        {"<j\xc3\xb6s\xc3\xa9@example.com> SMTPUTF8", S, 0, U8, NULL, NULL, 0, 0},
        {"<\"\xc3\xbc\"@example.com>", R, 0, U8, NULL, NULL, 0, 0},
        {"<a\xc0\xaf@example.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0}, /* overlong '/' */
        {"<a\xe0\x80\xaf@example.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0}, /* overlong */
        {"<a\xf0\x80\x80\xaf@example.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0}, /* overlong */
        {"<a\xed\xa0\x80@example.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0}, /* surrogate */
        {"<a\xf4\x90\x80\x80@example.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0}, /* > U+10FFFF */
        {"<a\xc2\x85@example.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0}, /* C1 control NEL */
        {"<a\xe2\x82@example.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0}, /* truncated */
        {"<a\x80@example.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0}, /* lone continuation */
        {"<a\xff@example.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0},
        {"<a\xc3\xb6@ex\xed\xbf\xbf.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0},
        {"<a\xc0\xaf@example.com>", R, 0, SYN_R, NULL, NULL, 0, 0},
        {"<\"\xc3\x28\"@example.com>", R, UTF8, SYN_R, NULL, NULL, 0, 0},
};

/* The text of s as a string the caller frees; s is released. */
static char *take(str_t *s)
{
	char *text = str_steal(s);

	str_free(s);
	return text;
}

static unsigned address_flags(const struct mail_address *a)
{
	return (a->quoted ? F_QUOTED : 0) | (a->trailing_dot ? F_DOT : 0) |
	       (a->source_route ? F_ROUTE : 0) | (a->literal ? F_LITERAL : 0) |
	       (a->utf8 ? F_UTF8 : 0) | (a->null ? F_NULL : 0) | (a->bracketed ? 0 : F_BARE);
}

/* Parse in (len bytes) and return the reply, or "OK local|domain|flags|n". */
static char *parse_summary(const char *in, size_t len, enum address_role role, unsigned flags)
{
	struct mail_path *path = (struct mail_path *)1;
	struct address_error err;
	str_t out;

	str_init(&out);
	if (address_parse_path(in, len, role, flags, &path, &err) < 0) {
		assert_null(path);
		assert_non_null(err.detail);
		assert_true(err.offset <= len);
		address_error_reply(&err, &out);
	} else {
		assert_non_null(path);
		str_appendf(&out, "OK %s|%s|%u|%zu", path->addr.local,
		            path->addr.domain != NULL ? path->addr.domain : "(none)",
		            address_flags(&path->addr), path->nparams);
		assert_int_equal(path->addr.source_route, path->addr.route != NULL);
		mail_path_destroy(&path);
		assert_null(path);
	}
	return take(&out);
}

static void test_parse_table(void **state)
{
	size_t failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		char *got = parse_summary(c->in, strlen(c->in), c->role, c->flags);
		char *want;

		if (c->reply != NULL)
			want = xstrdup(c->reply);
		else
			want = xasprintf("OK %s|%s|%u|%zu", c->local,
			                 c->domain != NULL ? c->domain : "(none)", c->aflags,
			                 c->nparams);
		if (strcmp(got, want) != 0) {
			print_error("case %zu: %s\n  want: %s\n  got:  %s\n", i, c->in, want, got);
			failures++;
		}
		free(got);
		free(want);
	}
	assert_int_equal(failures, 0);
	/* The table must hold at least 80 cases (the brief). */
	assert_true(sizeof(parse_cases) / sizeof(parse_cases[0]) >= 80);
}

static void test_parse_nul_and_offsets(void **state)
{
	static const char nul[] = "<us\0er@example.com>";
	struct mail_path *path;
	struct address_error err;
	char *got;

	(void)state;
	got = parse_summary(nul, sizeof(nul) - 1, R, 0);
	assert_string_equal(got, SYN_R);
	free(got);
	/* a NUL after the path, where a parameter would be */
	got = parse_summary("<a@b.example> \0", 15, R, 0);
	assert_string_equal(got, PARAM);
	free(got);
	/* the length is honoured: the bytes after it are not read */
	got = parse_summary("<a@b.example>JUNK", 13, R, 0);
	assert_string_equal(got, "OK a|b.example|0|0");
	free(got);

	assert_int_equal(address_parse_path("<user@exa_mple.com>", 19, R, 0, &path, &err), -1);
	assert_int_equal(err.kind, ADDRESS_ERR_SYNTAX);
	assert_int_equal(err.offset, 9);
	assert_int_equal(address_parse_path("<j\xc3\xb6@x.example>", 15, R, 0, &path, &err), -1);
	assert_int_equal(err.kind, ADDRESS_ERR_UTF8);
	assert_int_equal(err.offset, 2);
	assert_int_equal(address_parse_path("<a@b.example> X=1 Y", 19, S, 0, &path, &err), 0);
	assert_string_equal(path->params[0].key, "X");
	assert_string_equal(path->params[0].value, "1");
	assert_string_equal(path->params[1].key, "Y");
	assert_null(path->params[1].value);
	assert_ptr_equal(mail_path_param(path, "y"), &path->params[1]);
	assert_null(mail_path_param(path, "Z"));
	mail_path_destroy(&path);
	mail_path_destroy(&path); /* no-op on NULL */
}

/* A string of n copies of c. */
static char *repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Parse printf-formatted text and compare the start of the summary. */
static void expect_bound(enum address_role role, const char *want, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void expect_bound(enum address_role role, const char *want, const char *fmt, ...)
{
	va_list ap;
	str_t in;
	char *got;

	str_init(&in);
	va_start(ap, fmt);
	str_vappendf(&in, fmt, ap);
	va_end(ap);
	got = parse_summary(in.buf, in.len, role, 0);
	if (strncmp(got, want, strlen(want)) != 0)
		fail_msg("%.60s... (%zu bytes): want %s, got %s", str_c(&in), in.len, want, got);
	free(got);
	str_free(&in);
}

static void test_bounds(void **state)
{
	char *a254 = repeat('a', 254), *a255 = repeat('a', 255), *a256 = repeat('a', 256),
	     *a257 = repeat('a', 257), *q254 = repeat('q', 254), *b63 = repeat('b', 63),
	     *b64 = repeat('b', 64), *v998 = repeat('v', 998), *huge = repeat('a', 1 << 20);
	char *dom = xasprintf("%s.%s.%s.%s", b63, b63, b63, b63); /* 255 octets */
	str_t s;

	(void)state;
	assert_int_equal(strlen(dom), 255);
	/* local part: 256 octets as written, quotes included */
	expect_bound(R, "OK ", "<%s@example.com>", a256);
	expect_bound(R, LONG_R, "<%s@example.com>", a257);
	expect_bound(S, "501 5.1.7 Path too long", "<%s@example.com>", a257);
	expect_bound(R, "OK ", "<\"%s\"@example.com>", q254);
	expect_bound(R, LONG_R, "<\"%sq\"@example.com>", q254);
	/* labels: 63 octets */
	expect_bound(R, "OK ", "<u@%s.example>", b63);
	expect_bound(R, LONG_R, "<u@%s.example>", b64);
	/* domain: 255 octets, a trailing dot not counted */
	expect_bound(R, "OK ", "<u@%s>", dom);
	expect_bound(R, "OK ", "<u@%s.>", dom);
	expect_bound(R, LONG_R, "<u@%s.c>", dom);
	/* path: 512 octets from '<' to '>', source route included */
	expect_bound(R, "OK ", "<%s@%s>", a254, dom);
	expect_bound(R, LONG_R, "<%s@%s>", a255, dom);
	expect_bound(R, LONG_R, "<@a.example:%.250s@%s>", a254, dom);
	/* parameters: 16 of them, 1000 octets each */
	str_init(&s);
	str_append(&s, "<a@b.example>");
	for (int i = 0; i < 16; i++)
		str_appendf(&s, " P%d=1", i);
	expect_bound(S, "OK a|b.example|0|16", "%s", str_c(&s));
	expect_bound(S, PARAM, "%s P16=1", str_c(&s));
	expect_bound(S, "OK a|b.example|0|1", "<a@b.example> X=%s", v998);
	expect_bound(S, PARAM, "<a@b.example> X=%sv", v998);
	str_free(&s);
	/* a huge argument fails on a bound */
	huge[0] = '<';
	expect_bound(R, LONG_R, "%s", huge);

	free(a254);
	free(a255);
	free(a256);
	free(a257);
	free(q254);
	free(b63);
	free(b64);
	free(v998);
	free(huge);
	free(dom);
}

/* ---- quoting, internal form ---- */

static void expect_external(const char *local, const char *domain, const char *want)
{
	struct mail_address a = {.local = (char *)local, .domain = (char *)domain};
	str_t out;

	str_init(&out);
	str_append(&out, "[");
	assert_int_equal(address_external(&a, &out), 0);
	str_append(&out, "]");
	if (strcmp(str_c(&out) + 1, want) != 0 || out.buf[out.len - 1] != ']')
		fail_msg("external(%s, %s): want %s, got %s", local, domain, want, str_c(&out));
	str_free(&out);
}

static void test_external(void **state)
{
	struct mail_address a = {.local = (char *)"a\r\nRCPT TO:<x@y>", .domain = (char *)"ex.com"};
	struct mail_address null = {.local = (char *)"", .null = true};
	str_t out;

	(void)state;
	expect_external("user", "example.com", "user@example.com]");
	expect_external("john doe", "example.com", "\"john doe\"@example.com]");
	expect_external("a\"b\\c", "x.example", "\"a\\\"b\\\\c\"@x.example]");
	expect_external("", "x.example", "\"\"@x.example]");
	expect_external("a..b", "x.example", "\"a..b\"@x.example]");
	expect_external(".a", "x.example", "\".a\"@x.example]");
	expect_external("a.", "x.example", "\"a.\"@x.example]");
	expect_external("user@remote", "x.example", "\"user@remote\"@x.example]");
	expect_external("user%remote", "x.example", "user%remote@x.example]");
	expect_external("j\xc3\xb6s\xc3\xa9", "x.example", "j\xc3\xb6s\xc3\xa9@x.example]");
	expect_external("postmaster", NULL, "postmaster]");
	expect_external("u", "[192.0.2.1]", "u@[192.0.2.1]]");

	str_init(&out);
	str_set(&out, "keep");
	assert_int_equal(address_external(&a, &out), -1);
	assert_string_equal(str_c(&out), "keep");
	a.local = (char *)"a\x7f";
	assert_int_equal(address_external(&a, &out), -1);
	a.local = (char *)"ok";
	a.domain = (char *)"ex\tample.com";
	assert_int_equal(address_external(&a, &out), -1);
	assert_int_equal(address_external(&null, &out), 0);
	assert_string_equal(str_c(&out), "keep");
	address_internal_string(&null, &out);
	assert_string_equal(str_c(&out), "keep");
	str_free(&out);

	assert_true(address_local_needs_quoting(""));
	assert_true(address_local_needs_quoting("a b"));
	assert_true(address_local_needs_quoting("a@b"));
	assert_false(address_local_needs_quoting("a.b+c"));
	assert_false(address_local_needs_quoting("\xc3\xb6"));
}

/* Parse, write out again, parse again: the same internal address. */
static void test_round_trip(void **state)
{
	static const char *const paths[] = {
	        "<user@example.com>",          "<\"john doe\"@example.com>",
	        "<\"a\\\"b\\\\c\"@x.example>", "<\"\"@example.com>",
	        "<\"\\x\"@example.com>",       "<\"user@remote\"@x.example>",
	        "<user@[192.0.2.1]>",          "<postmaster>",
	        "<\"a.\"@x.example>",          "<@a.example:u@b.example>",
	        "<j\xc3\xb6@x.example>",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct mail_path *p1, *p2;
		struct address_error err;
		str_t ext, int1, int2;

		str_init(&ext);
		str_init(&int1);
		str_init(&int2);
		assert_int_equal(address_parse_path(paths[i], strlen(paths[i]), R, UTF8, &p1, &err),
		                 0);
		str_append_c(&ext, '<');
		assert_int_equal(address_external(&p1->addr, &ext), 0);
		str_append_c(&ext, '>');
		assert_int_equal(address_parse_path(ext.buf, ext.len, R, UTF8, &p2, &err), 0);
		address_internal_string(&p1->addr, &int1);
		address_internal_string(&p2->addr, &int2);
		assert_string_equal(str_c(&int1), str_c(&int2));
		mail_path_destroy(&p1);
		mail_path_destroy(&p2);
		str_free(&ext);
		str_free(&int1);
		str_free(&int2);
	}
}

static void test_from_internal(void **state)
{
	struct mail_address *a, *copy;
	str_t out;

	(void)state;
	a = address_from_internal("user@remote@Local.Example.");
	assert_string_equal(a->local, "user@remote");
	assert_string_equal(a->domain, "local.example");
	assert_true(a->trailing_dot);
	assert_true(a->quoted);
	copy = mail_address_copy(a);
	mail_address_destroy(&a);
	assert_null(a);
	str_init(&out);
	address_internal_string(copy, &out);
	assert_string_equal(str_c(&out), "user@remote@local.example");
	str_reset(&out);
	assert_int_equal(address_external(copy, &out), 0);
	assert_string_equal(str_c(&out), "\"user@remote\"@local.example");
	mail_address_destroy(&copy);
	mail_address_destroy(&copy);

	a = address_from_internal("");
	assert_true(a->null);
	mail_address_destroy(&a);
	a = address_from_internal("postmaster");
	assert_null(a->domain);
	mail_address_destroy(&a);
	a = address_from_internal("u@[IPv6:2001:DB8::1]");
	assert_true(a->literal);
	assert_string_equal(a->domain, "[ipv6:2001:db8::1]");
	mail_address_destroy(&a);
	str_free(&out);
}

/* ---- xtext and ORCPT ---- */

static void test_xtext(void **state)
{
	static const char *const bad[] = {"+4",  "+",   "+ZZ",  "a=b",
	                                  "a b", "+00", "\x01", "\xc3\xa4"};
	const char *error;
	str_t out, enc;
	char all[255];

	(void)state;
	str_init(&out);
	str_init(&enc);
	assert_int_equal(xtext_decode("user+40example.com", 18, &out, &error), 0);
	assert_string_equal(str_c(&out), "user@example.com");
	str_reset(&out);
	assert_int_equal(xtext_decode("a+2Bb+2bc", 9, &out, &error), 0);
	assert_string_equal(str_c(&out), "a+b+c");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		str_reset(&out);
		error = NULL;
		if (xtext_decode(bad[i], strlen(bad[i]), &out, &error) != -1 || error == NULL)
			fail_msg("xtext_decode accepted \"%s\"", bad[i]);
	}
	xtext_encode("a+b=c d", 7, &enc);
	assert_string_equal(str_c(&enc), "a+2Bb+3Dc+20d");
	for (int i = 0; i < 255; i++)
		all[i] = (char)(i + 1);
	str_reset(&enc);
	str_reset(&out);
	xtext_encode(all, sizeof(all), &enc);
	assert_int_equal(xtext_decode(enc.buf, enc.len, &out, &error), 0);
	assert_int_equal(out.len, sizeof(all));
	assert_memory_equal(out.buf, all, sizeof(all));
	str_free(&out);
	str_free(&enc);
}

static void expect_orcpt(const char *value, bool utf8, const char *want_type, const char *want_addr)
{
	const char *error = NULL;
	str_t type, addr;
	int rc;

	str_init(&type);
	str_init(&addr);
	str_set(&addr, "stale");
	rc = address_orcpt_parse(value, utf8, &type, &addr, &error);
	if (want_type == NULL) {
		if (rc != -1 || error == NULL || addr.len != 0)
			fail_msg("ORCPT \"%s\" accepted as %s;%s", value, str_c(&type),
			         str_c(&addr));
	} else {
		if (rc != 0)
			fail_msg("ORCPT \"%s\" refused: %s", value, error);
		assert_string_equal(str_c(&type), want_type);
		assert_string_equal(str_c(&addr), want_addr);
	}
	str_free(&type);
	str_free(&addr);
}

static void test_orcpt(void **state)
{
	char *long_addr = repeat('a', 501), *ok_addr = repeat('a', 500), *v;

	(void)state;
	expect_orcpt("rfc822;user+40example.com", false, "rfc822", "user@example.com");
	expect_orcpt("RFC822;User@Example.com", false, "rfc822", "User@Example.com");
	expect_orcpt("rfc822;a\\b@x.example", false, "rfc822", "a\\b@x.example");
	expect_orcpt("x-local;foo", false, "x-local", "foo");
	expect_orcpt("utf-8;j\\x{F6}s\\x{e9}@example.com", false, "utf-8",
	             "j\xc3\xb6s\xc3\xa9@example.com");
	expect_orcpt("UTF-8;j\xc3\xb6@example.com", true, "utf-8", "j\xc3\xb6@example.com");
	expect_orcpt("utf-8;\\x{1F600}@example.com", false, "utf-8",
	             "\xf0\x9f\x98\x80@example.com");
	expect_orcpt("utf-8;j\xc3\xb6@example.com", false, NULL, NULL);
	expect_orcpt("utf-8;\\x{D800}@example.com", false, NULL, NULL);
	expect_orcpt("utf-8;\\x{110000}@example.com", false, NULL, NULL);
	expect_orcpt("utf-8;\\x{}@example.com", false, NULL, NULL);
	expect_orcpt("utf-8;\\x{A}@example.com", false, NULL, NULL); /* control */
	expect_orcpt("utf-8;a+b@example.com", false, NULL, NULL);
	expect_orcpt("rfc822;+C3+B6@example.com", false, NULL, NULL);
	expect_orcpt(";user@example.com", false, NULL, NULL);
	expect_orcpt("rfc822", false, NULL, NULL);
	expect_orcpt("rfc822;", false, NULL, NULL);
	expect_orcpt("rfc822;+0A", false, NULL, NULL);
	expect_orcpt("rfc 822;x", false, NULL, NULL);
	expect_orcpt("rfc822;a=b", false, NULL, NULL);
	v = xasprintf("rfc822;%s", ok_addr);
	expect_orcpt(v, false, "rfc822", ok_addr);
	free(v);
	v = xasprintf("rfc822;%s", long_addr);
	expect_orcpt(v, false, NULL, NULL);
	free(v);
	free(long_addr);
	free(ok_addr);
}

/* ---- resolution ---- */

struct lookups {
	unsigned calls;
	bool saw_upper;
};

/* local.example, mail.local.example and our own addresses 192.0.2.25 and
 * 2001:db8::25 are delivered here; virtual.example is a virtual domain
 * (hosted, but not "local" in Postfix's resolver sense); lookups for
 * tempfail.example fail. */
static enum address_local test_is_local(const char *domain, void *ctx)
{
	static const char *const local[] = {"local.example", "mail.local.example", "[192.0.2.25]",
	                                    "[ipv6:2001:db8::25]"};
	struct lookups *l = ctx;

	l->calls++;
	for (const char *c = domain; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			l->saw_upper = true;
	if (strcmp(domain, "tempfail.example") == 0)
		return ADDRESS_LOCAL_TEMPFAIL;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (strcmp(domain, local[i]) == 0)
			return ADDRESS_LOCAL_YES;
	return ADDRESS_LOCAL_NO;
}

/* Option variations for the resolver cases. */
enum {
	O_DEFAULT = 0,
	O_NO_DEQUOTE = 1 << 0,
	O_NO_PERCENT = 1 << 1,
	O_NO_BANG = 1 << 2,
	O_NULLDOM = 1 << 3,
	O_NUMDOM = 1 << 4,
	O_MYDOMAIN = 1 << 5,
	O_NO_ORIGIN = 1 << 6,
};

static void make_options(struct address_resolve_options *opt, unsigned o, struct lookups *l)
{
	address_resolve_options_init(opt);
	opt->swap_bangpath = (o & O_NO_BANG) == 0;
	opt->allow_percent_hack = (o & O_NO_PERCENT) == 0;
	opt->resolve_dequoted_address = (o & O_NO_DEQUOTE) == 0;
	opt->resolve_null_domain = (o & O_NULLDOM) != 0;
	opt->resolve_numeric_domain = (o & O_NUMDOM) != 0;
	opt->myorigin = (o & O_NO_ORIGIN) ? NULL : "local.example";
	opt->myhostname = "mail.local.example";
	opt->mydomain = (o & O_MYDOMAIN) ? "local.example" : NULL;
	opt->is_local_domain = test_is_local;
	opt->ctx = l;
}

/* Parse path (sloppy flag when it has no '<') and resolve it; returns
 * "local@domain [local] [routed] [bad]", "TEMPFAIL", or the parse reply. */
static char *resolve_summary(const char *path, unsigned o, unsigned *rules_r)
{
	struct address_resolve_options opt;
	struct address_resolved res;
	struct address_error err;
	struct mail_path *p;
	struct lookups l = {0, false};
	/* strict_rfc821_envelopes = no, Postfix's default */
	unsigned flags = ADDRESS_PARSE_SMTPUTF8 | ADDRESS_PARSE_SLOPPY;
	str_t out;

	str_init(&out);
	if (address_parse_path(path, strlen(path), strcmp(path, "<>") == 0 ? S : R, flags, &p,
	                       &err) < 0) {
		address_error_reply(&err, &out);
		return take(&out);
	}
	make_options(&opt, o, &l);
	if (address_resolve(&p->addr, &opt, &res) < 0) {
		mail_path_destroy(&p);
		str_append(&out, "TEMPFAIL");
		return take(&out);
	}
	assert_false(l.saw_upper);
	assert_non_null(res.local);
	assert_non_null(res.domain);
	str_appendf(&out, "%s@%s%s%s%s", res.local, res.domain, res.local_domain ? " local" : "",
	            res.routed ? " routed" : "", res.bad ? " bad" : "");
	if (rules_r != NULL)
		*rules_r = res.rules;
	address_resolved_free(&res);
	assert_null(res.local);
	mail_path_destroy(&p);
	return take(&out);
}

struct resolve_case {
	const char *path;
	unsigned options;
	const char *want;
};

/* Ordinary resolution and each rule on its own. */
static const struct resolve_case resolve_cases[] = {
        {"<user@local.example>", O_DEFAULT, "user@local.example local"},
        {"<User@LOCAL.Example.>", O_DEFAULT, "User@local.example local"},
        {"<user@remote.example>", O_DEFAULT, "user@remote.example"},
        {"<user@virtual.example>", O_DEFAULT, "user@virtual.example"},
        {"<postmaster>", O_DEFAULT, "postmaster@local.example local"},
        {"<postmaster>", O_NO_ORIGIN, "postmaster@mail.local.example local"},
        {"<>", O_DEFAULT, "MAILER-DAEMON@mail.local.example local"},
        {"<\"\"@local.example>", O_DEFAULT, "MAILER-DAEMON@local.example local"},
        {"<\"\"@remote.example>", O_DEFAULT, "@remote.example"},
        {"<user@>", O_DEFAULT, "user@ bad"},
        {"<user@>", O_NULLDOM, "user@mail.local.example local"},
        {"<user@1.2.3.4>", O_DEFAULT, "user@1.2.3.4 bad"},
        {"<user@1.2.3.4>", O_NUMDOM, "user@[1.2.3.4]"},
        {"<user@192.0.2.25>", O_NUMDOM, "user@[192.0.2.25] local"},
        {"<user@1.2.3.4.5>", O_NUMDOM, "user@1.2.3.4.5 bad"},
        {"<user@123>", O_DEFAULT, "user@123 bad"},
        {"<user@[192.0.2.25]>", O_DEFAULT, "user@[192.0.2.25] local"},
        {"<user@[IPv6:2001:DB8::25]>", O_DEFAULT, "user@[ipv6:2001:db8::25] local"},
        {"<user@[192.0.2.1]>", O_DEFAULT, "user@[192.0.2.1]"},
        {"<user@mail>", O_MYDOMAIN, "user@mail.local.example local"},
        {"<user@[192.0.2.1]>", O_MYDOMAIN, "user@[192.0.2.1]"},
        {"<user@local.example>", O_MYDOMAIN, "user@local.example local"},
        {"<user%local.example@local.example>", O_DEFAULT, "user@local.example local"},
        {"<local.example!user>", O_DEFAULT, "user@local.example local"},
        {"<user%remote.example@remote2.example>", O_DEFAULT,
         "user%remote.example@remote2.example routed"},
        {"<a!b!user@local.example>", O_DEFAULT, "b!user@a routed"},
        {"<\"a b\"@local.example>", O_DEFAULT, "a b@local.example local"},
        {"<\"a b\"@local.example>", O_NO_DEQUOTE, "a b@local.example local"},
        {"<@a.example,@b.example:user@local.example>", O_DEFAULT, "user@local.example local"},
        {"<user@tempfail.example>", O_DEFAULT, "TEMPFAIL"},
        {"<user%remote.example@tempfail.example>", O_DEFAULT, "TEMPFAIL"},
        {"<user%tempfail.example@local.example>", O_DEFAULT, "TEMPFAIL"},
        {"<user@192.0.2.25>", O_DEFAULT, "user@192.0.2.25 bad"},
        {"<\"user@remote example\"@local.example>", O_DEFAULT, "user@remote example bad"},
        {"<\"user@\"@local.example>", O_DEFAULT, "user@ bad"},
        {"<\"user@\"@local.example>", O_NULLDOM, "user@local.example local"},
        {"<\"@remote.example:user\"@local.example>", O_DEFAULT, "@remote.example:user bad"},
        {"<\"user@[192.0.2.999]\"@local.example>", O_DEFAULT, "user@[192.0.2.999] bad"},
};

/* THE OPEN-RELAY BATTERY. Each address tries to reach remote.example (or
 * another outside host) through this server's local domain. With Postfix's
 * default parameters (swap_bangpath, allow_percent_hack and
 * resolve_dequoted_address on) each resolves as Postfix's trivial-rewrite
 * resolves it; the expected outcome is in want. Whatever it is, the
 * relay check that looks only at the resolved domain and the routed flag
 * (reject_unauth_destination with allow_untrusted_routing = no) must
 * refuse it: relay_safe() checks exactly that for every entry. */
static const struct resolve_case relay_battery[] = {
        {"<user%remote.example@local.example>", O_DEFAULT, "user@remote.example"},
        {"<user%remote.example%local.example@local.example>", O_DEFAULT, "user@remote.example"},
        {"<remote.example!user@local.example>", O_DEFAULT, "user@remote.example"},
        {"<\"user@remote.example\"@local.example>", O_DEFAULT, "user@remote.example"},
        {"<\"user%remote.example\"@local.example>", O_DEFAULT, "user@remote.example"},
        {"<@local.example:user@remote.example>", O_DEFAULT, "user@remote.example"},
        {"<@local.example,@mail.local.example:user@remote.example>", O_DEFAULT,
         "user@remote.example"},
        {"<user@remote.example.>", O_DEFAULT, "user@remote.example"},
        {"<user@[192.0.2.1]>", O_DEFAULT, "user@[192.0.2.1]"},
        {"<user@remote.example@local.example>", O_DEFAULT, SYN_R},
        {"<user\\@remote.example@local.example>", O_DEFAULT, SYN_R},
        {"<\"remote.example!user\"@local.example>", O_DEFAULT, "user@remote.example"},
        {"<user%remote.example.@local.example>", O_DEFAULT, "user@remote.example"},
        {"<USER%REMOTE.EXAMPLE@LOCAL.EXAMPLE>", O_DEFAULT, "USER@remote.example"},
        {"<REMOTE.EXAMPLE!USER@LOCAL.EXAMPLE>", O_DEFAULT, "USER@remote.example"},
        {"<\"USER@REMOTE.EXAMPLE\"@LOCAL.EXAMPLE>", O_DEFAULT, "USER@remote.example"},
        {"<User%Remote.Example.@Local.Example.>", O_DEFAULT, "User@remote.example"},
        {"<\"user%remote.example\"@LOCAL.EXAMPLE.>", O_DEFAULT, "user@remote.example"},
        {"<user@remote.example%local.example>", O_DEFAULT, SYN_R},
        {"<@LOCAL.EXAMPLE,@local.example:user%remote.example@local.example>", O_DEFAULT,
         "user@remote.example"},
        {"<local.example!remote.example!user@local.example>", O_DEFAULT, "user@remote.example"},
        {"<remote.example!user%local.example@local.example>", O_DEFAULT,
         "user%local.example@remote.example routed"},
        {"<user%local.example%remote.example@local.example>", O_DEFAULT,
         "user%local.example@remote.example routed"},
        {"<\"user@remote.example.\"@local.example>", O_DEFAULT, "user@remote.example"},
        {"<\"user@[192.0.2.1]\"@local.example>", O_DEFAULT, "user@[192.0.2.1]"},
        {"<\"user%[192.0.2.1]\"@local.example>", O_DEFAULT, "user@[192.0.2.1]"},
        {"<user%[192.0.2.1]@local.example>", O_DEFAULT, SYN_R},
        {"<user%remote.example@[192.0.2.25]>", O_DEFAULT, "user@remote.example"},
        {"<\"user@remote.example\"@[192.0.2.25]>", O_DEFAULT, "user@remote.example"},
        {"<\"user@remote.example\"@[IPv6:2001:db8::25]>", O_DEFAULT, "user@remote.example"},
        {"<user%remote.example@>", O_DEFAULT, "user@remote.example"},
        {"<user%remote.example>", O_DEFAULT, "user@remote.example"},
        {"<remote.example!user>", O_DEFAULT, "user@remote.example"},
        {"<\"a b%remote.example\"@local.example>", O_DEFAULT, "a b@remote.example"},
        {"<\"a b@remote.example\"@local.example>", O_DEFAULT, "a b@remote.example"},
        {"<\"a@b@remote.example\"@local.example>", O_DEFAULT, "a@b@remote.example routed"},
        {"\"user@remote.example\"@local.example", O_DEFAULT, "user@remote.example"},
        {"user%remote.example@local.example", O_DEFAULT, "user@remote.example"},
        {"<user@1.2.3.4>", O_DEFAULT, "user@1.2.3.4 bad"},
        {"<\"@remote.example:user\"@local.example>", O_DEFAULT, "@remote.example:user bad"},
        /* Virtual domains are hosted here but are not "local" to the
         * resolver: nothing is stripped, the address stays routed. */
        {"<user%remote.example@virtual.example>", O_DEFAULT,
         "user%remote.example@virtual.example routed"},
        {"<remote.example!user@virtual.example>", O_DEFAULT,
         "remote.example!user@virtual.example routed"},
        {"<\"user@remote.example\"@virtual.example>", O_DEFAULT,
         "user@remote.example@virtual.example routed"},
        /* With the rules turned off, the local domain stays but the
         * address is routed. */
        {"<\"user@remote.example\"@local.example>", O_NO_DEQUOTE,
         "user@remote.example@local.example local routed"},
        {"<user%remote.example@local.example>", O_NO_PERCENT,
         "user%remote.example@local.example local routed"},
        {"<remote.example!user@local.example>", O_NO_BANG,
         "remote.example!user@local.example local routed"},
        {"<\"user%remote.example\"@local.example>", O_NO_PERCENT | O_NO_DEQUOTE,
         "user%remote.example@local.example local routed"},
        {"<user%remote.example>", O_NO_PERCENT, "user%remote.example@local.example local routed"},
};

/* A Postfix-style relay check that looks only at the resolver's result:
 * refused when the address is bad or routed, or its domain is not ours. */
static bool relay_safe(const char *summary)
{
	if (strncmp(summary, "501 ", 4) == 0 || strstr(summary, " bad") != NULL ||
	    strstr(summary, " routed") != NULL)
		return true;
	return strstr(summary, " local") == NULL && strstr(summary, "@virtual.example") == NULL;
}

static size_t run_resolve_table(const struct resolve_case *cases, size_t n, bool battery)
{
	size_t failures = 0;

	for (size_t i = 0; i < n; i++) {
		char *got = resolve_summary(cases[i].path, cases[i].options, NULL);

		if (strcmp(got, cases[i].want) != 0) {
			print_error("case %zu: %s (options %#x)\n  want: %s\n  got:  %s\n", i,
			            cases[i].path, cases[i].options, cases[i].want, got);
			failures++;
		}
		if (battery && !relay_safe(got)) {
			print_error("OPEN RELAY: %s resolves to %s\n", cases[i].path, got);
			failures++;
		}
		free(got);
	}
	return failures;
}

static void test_resolve_table(void **state)
{
	(void)state;
	assert_int_equal(run_resolve_table(resolve_cases,
	                                   sizeof(resolve_cases) / sizeof(resolve_cases[0]), false),
	                 0);
}

static void test_open_relay_battery(void **state)
{
	(void)state;
	assert_true(sizeof(relay_battery) / sizeof(relay_battery[0]) >= 30);
	assert_int_equal(run_resolve_table(relay_battery,
	                                   sizeof(relay_battery) / sizeof(relay_battery[0]), true),
	                 0);
	/* the check itself can fail */
	assert_false(relay_safe("user@local.example local"));
	assert_false(relay_safe("user@virtual.example"));
	assert_true(relay_safe("user@remote.example"));
}

static void test_resolve_rules(void **state)
{
	unsigned rules = 0;
	char *got;
	str_t s;

	(void)state;
	str_init(&s);
	got = resolve_summary("<@a.example:user%remote.example.@local.example>", O_DEFAULT, &rules);
	assert_string_equal(got, "user@remote.example");
	free(got);
	address_resolve_rules(rules, &s);
	assert_string_equal(str_c(&s), "source_route,local_domain_stripped,allow_percent_hack,"
	                               "resolve_dequoted_address,trailing_dot");
	str_reset(&s);
	got = resolve_summary("<\"remote.example!a b\"@local.example>", O_DEFAULT, &rules);
	assert_string_equal(got, "a b@remote.example");
	free(got);
	address_resolve_rules(rules, &s);
	assert_string_equal(str_c(&s),
	                    "local_domain_stripped,swap_bangpath,resolve_dequoted_address");
	str_reset(&s);
	got = resolve_summary("<user@1.2.3.4>", O_NUMDOM, &rules);
	free(got);
	address_resolve_rules(rules, &s);
	assert_string_equal(str_c(&s), "resolve_numeric_domain");
	str_reset(&s);
	got = resolve_summary("<>", O_DEFAULT, &rules);
	free(got);
	address_resolve_rules(rules, &s);
	assert_string_equal(str_c(&s), "local_domain_stripped,myhostname,empty_address_recipient");
	str_reset(&s);
	got = resolve_summary("<user@remote.example>", O_DEFAULT, &rules);
	free(got);
	address_resolve_rules(rules, &s);
	assert_string_equal(str_c(&s), "");
	str_free(&s);
}

static void test_resolve_internal_and_limits(void **state)
{
	struct address_resolve_options opt;
	struct address_resolved res;
	struct lookups l = {0, false};
	struct mail_address *a;

	(void)state;
	make_options(&opt, O_DEFAULT, &l);
	/* an address from a queue file or alias expansion */
	a = address_from_internal("user%remote.example@LOCAL.example");
	assert_int_equal(address_resolve(a, &opt, &res), 0);
	assert_string_equal(res.local, "user");
	assert_string_equal(res.domain, "remote.example");
	assert_false(res.local_domain);
	address_resolved_free(&res);
	mail_address_destroy(&a);

	/* a custom empty_address_recipient, and one that never settles */
	opt.empty_address_recipient = "bounces";
	a = address_from_internal("");
	assert_int_equal(address_resolve(a, &opt, &res), 0);
	assert_string_equal(res.local, "bounces");
	assert_string_equal(res.domain, "mail.local.example");
	address_resolved_free(&res);
	opt.empty_address_recipient = "";
	assert_int_equal(address_resolve(a, &opt, &res), 0);
	assert_true(res.bad);
	assert_false(res.local_domain);
	address_resolved_free(&res);
	mail_address_destroy(&a);

	/* no myhostname and no domain: bad, not a crash */
	opt.empty_address_recipient = NULL;
	opt.myhostname = NULL;
	opt.myorigin = NULL;
	a = address_from_internal("user");
	assert_int_equal(address_resolve(a, &opt, &res), 0);
	assert_true(res.bad);
	assert_string_equal(res.domain, "");
	address_resolved_free(&res);
	mail_address_destroy(&a);

	/* the lookups are bounded: a long chain of local hops */
	make_options(&opt, O_DEFAULT, &l);
	{
		str_t s;

		str_init(&s);
		str_append(&s, "user%remote.example");
		for (int i = 0; i < 200; i++)
			str_append(&s, "%local.example");
		str_append(&s, "@local.example");
		a = address_from_internal(str_c(&s));
		l.calls = 0;
		assert_int_equal(address_resolve(a, &opt, &res), 0);
		assert_string_equal(res.domain, "remote.example");
		assert_int_equal(l.calls, 202);
		address_resolved_free(&res);
		mail_address_destroy(&a);
		str_free(&s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse_table),
	        cmocka_unit_test(test_parse_nul_and_offsets),
	        cmocka_unit_test(test_bounds),
	        cmocka_unit_test(test_external),
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_from_internal),
	        cmocka_unit_test(test_xtext),
	        cmocka_unit_test(test_orcpt),
	        cmocka_unit_test(test_resolve_table),
	        cmocka_unit_test(test_open_relay_battery),
	        cmocka_unit_test(test_resolve_rules),
	        cmocka_unit_test(test_resolve_internal_and_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
