/* test_mastercf.c - unit tests for lib/conf/mastercf: Postfix's stock
 * service lines, continuation and comment handling, arguments and -o
 * overrides in all their forms, inet service names, and every error with
 * its exact "file, line N" message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "conf/mastercf.h"

/* One line per service: every field, then each argument and override in
 * <> so that white space inside them shows. */
static void describe(const struct master_service *s, str_t *out)
{
	str_appendf(out, "%s/%s", s->name, s->type);
	if (s->port != NULL)
		str_appendf(out, " host=%s port=%s", s->host != NULL ? s->host : "*", s->port);
	str_appendf(out, " %c%c%c wakeup=%u%s maxproc=%ld cmd=%s", s->private_ ? 'y' : 'n',
	            s->unpriv ? 'y' : 'n', s->chroot ? 'y' : 'n', s->wakeup,
	            s->wakeup_conditional ? "?" : "", s->maxproc, s->command);
	for (size_t i = 0; i < s->argv.n; i++)
		str_appendf(out, " <%s>", s->argv.v[i]);
	assert_int_equal(s->override_names.n, s->override_values.n);
	for (size_t i = 0; i < s->override_names.n; i++)
		str_appendf(out, " -o <%s>=<%s>", s->override_names.v[i], s->override_values.v[i]);
	str_append_c(out, '\n');
}

/* Parse text; return every service described and every error, each on a
 * line, in one string the caller frees. */
static char *parse(const char *text, size_t len, int *ret_r)
{
	struct master_conf *conf = NULL;
	strv_t errors = STRV_INIT;
	str_t out;
	char *result;

	str_init(&out);
	*ret_r = mastercf_parse_text(text, len, "master.cf", &conf, &errors);
	assert_non_null(conf);
	for (size_t i = 0; i < conf->n; i++) {
		assert_string_equal(conf->services[i].file, "master.cf");
		describe(&conf->services[i], &out);
	}
	for (size_t i = 0; i < errors.n; i++)
		str_appendf(&out, "%s\n", errors.v[i]);
	assert_int_equal(*ret_r, errors.n > 0 ? -1 : 0);
	mastercf_destroy(&conf);
	assert_null(conf);
	strv_free(&errors);
	result = str_steal(&out);
	str_free(&out); /* str_steal leaves an empty, allocated string */
	return result;
}

static void check(const char *text, const char *expected)
{
	int ret;
	char *got = parse(text, strlen(text), &ret);

	if (strcmp(got, expected) != 0)
		fail_msg("input:\n%s\ngot:\n%s\nexpected:\n%s", text, got, expected);
	free(got);
}

/* ---- valid input ---------------------------------------------------------- */

static void test_stock_lines(void **state)
{
	static const struct {
		const char *text;
		const char *expected;
	} cases[] = {
	        {"smtp      inet  n       -       y       -       -       smtpd\n",
	         "smtp/inet host=* port=smtp nyy wakeup=0 maxproc=-1 cmd=smtpd\n"},
	        {"pickup    unix  n       -       y       60      1       pickup\n",
	         "pickup/unix nyy wakeup=60 maxproc=1 cmd=pickup\n"},
	        {"qmgr      unix  n       -       n       300     1       qmgr\n",
	         "qmgr/unix nyn wakeup=300 maxproc=1 cmd=qmgr\n"},
	        /* Defaults: private y, unpriv y, chroot n; maxproc 0 = no limit. */
	        {"cleanup   unix  -       -       -       -       0       cleanup\n",
	         "cleanup/unix yyn wakeup=0 maxproc=0 cmd=cleanup\n"},
	        {"tlsmgr    unix  -       -       y       1000?   1       tlsmgr\n",
	         "tlsmgr/unix yyy wakeup=1000? maxproc=1 cmd=tlsmgr\n"},
	        /* '?' only matters for a wakeup that happens. */
	        {"x unix - - - 0? 1 x\n", "x/unix yyn wakeup=0 maxproc=1 cmd=x\n"},
	        {"postlog   unix-dgram n  -       n       -       1       postlogd\n",
	         "postlog/unix-dgram nyn wakeup=0 maxproc=1 cmd=postlogd\n"},
	        {"qmgr fifo n - n 300 1 qmgr\n", "qmgr/fifo nyn wakeup=300 maxproc=1 cmd=qmgr\n"},
	        {"smtpd pass - - n - - smtpd\n", "smtpd/pass yyn wakeup=0 maxproc=-1 cmd=smtpd\n"},
	        /* An inet service is public even with "-". */
	        {"smtp inet - - - - - smtpd\n",
	         "smtp/inet host=* port=smtp nyn wakeup=0 maxproc=-1 cmd=smtpd\n"},
	        {"127.0.0.1:10025 inet n  -       n       -       -       smtpd\n",
	         "127.0.0.1:10025/inet host=127.0.0.1 port=10025 nyn wakeup=0 maxproc=-1 "
	         "cmd=smtpd\n"},
	        {"[::1]:2525 inet n - n - - smtpd\n",
	         "[::1]:2525/inet host=::1 port=2525 nyn wakeup=0 maxproc=-1 cmd=smtpd\n"},
	        {"[192.0.2.1]:submission inet n - n - - smtpd\n",
	         "[192.0.2.1]:submission/inet host=192.0.2.1 port=submission nyn wakeup=0 "
	         "maxproc=-1 cmd=smtpd\n"},
	        {"mx.example.org:smtp inet n - n - - smtpd\n",
	         "mx.example.org:smtp/inet host=mx.example.org port=smtp nyn wakeup=0 "
	         "maxproc=-1 cmd=smtpd\n"},
	        {"2525 inet n - n - - smtpd\n",
	         "2525/inet host=* port=2525 nyn wakeup=0 maxproc=-1 cmd=smtpd\n"},
	        /* Postfix's stock submission entry, comments between the -o
		 * lines included. */
	        {"submission inet n       -       y       -       -       smtpd\n"
	         "  -o syslog_name=postfix/submission\n"
	         "  -o smtpd_tls_security_level=encrypt\n"
	         "#  -o smtpd_sasl_auth_enable=yes\n"
	         "  #  -o smtpd_tls_auth_only=yes\n"
	         "\n"
	         "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
	         "  -o milter_macro_daemon_name=ORIGINATING\n",
	         "submission/inet host=* port=submission nyy wakeup=0 maxproc=-1 cmd=smtpd"
	         " -o <syslog_name>=<postfix/submission>"
	         " -o <smtpd_tls_security_level>=<encrypt>"
	         " -o <smtpd_client_restrictions>=<permit_sasl_authenticated,reject>"
	         " -o <milter_macro_daemon_name>=<ORIGINATING>\n"},
	        /* The pipe service: arguments, with ${recipient} kept whole. */
	        {"maildrop  unix  -       n       n       -       -       pipe\n"
	         "  flags=DRhu user=vmail argv=/usr/bin/maildrop -d ${recipient}\n",
	         "maildrop/unix ynn wakeup=0 maxproc=-1 cmd=pipe <flags=DRhu> <user=vmail> "
	         "<argv=/usr/bin/maildrop> <-d> <${recipient}>\n"},
	        /* A comma is data, not a separator, in master.cf. */
	        {"a unix - - n - - smtp -o x=a,b, c\n",
	         "a/unix yyn wakeup=0 maxproc=-1 cmd=smtp <c> -o <x>=<a,b,>\n"},
	        /* A '#' after the start of a line is data. */
	        {"a unix - - n - - smtp #notacomment\n",
	         "a/unix yyn wakeup=0 maxproc=-1 cmd=smtp <#notacomment>\n"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check(cases[i].text, cases[i].expected);
}

static void test_override_forms(void **state)
{
	static const struct {
		const char *text;
		const char *expected;
	} cases[] = {
	        /* Separate, joined and brace forms; empty values; '=' in values. */
	        {"s unix - - n - - smtpd -o a=1 -ob=2 -o c= -o d=x=y\n",
	         "s/unix yyn wakeup=0 maxproc=-1 cmd=smtpd -o <a>=<1> -o <b>=<2> -o <c>=<> "
	         "-o <d>=<x=y>\n"},
	        {"s unix - - n - - smtpd -o { smtpd_helo_restrictions = permit_mynetworks, "
	         "reject }\n",
	         "s/unix yyn wakeup=0 maxproc=-1 cmd=smtpd -o <smtpd_helo_restrictions>="
	         "<permit_mynetworks, reject>\n"},
	        {"s unix - - n - - smtpd -o {a=  spaced  value  } -o{b=c} -o { e = }\n",
	         "s/unix yyn wakeup=0 maxproc=-1 cmd=smtpd -o <a>=<spaced  value> -o <b>=<c> "
	         "-o <e>=<>\n"},
	        /* A brace group across continuation lines. */
	        {"s unix - - n - - smtpd -o { a =\n  x y }\n",
	         "s/unix yyn wakeup=0 maxproc=-1 cmd=smtpd -o <a>=<x y>\n"},
	        /* Braces inside a name=value token stay: they are the value's. */
	        {"s unix - - n - - smtpd -o a={ x y }\n",
	         "s/unix yyn wakeup=0 maxproc=-1 cmd=smtpd -o <a>=<{ x y }>\n"},
	        /* A later override of the same name is kept, in order. */
	        {"s unix - - n - - smtpd -o a=1 -o a=2\n",
	         "s/unix yyn wakeup=0 maxproc=-1 cmd=smtpd -o <a>=<1> -o <a>=<2>\n"},
	        /* Other options stay in argv; option letters that take a value
		 * take the next argument with them. */
	        {"s unix - - n - - smtpd -v -n other -o a=1 -D\n",
	         "s/unix yyn wakeup=0 maxproc=-1 cmd=smtpd <-v> <-n> <other> <-D> -o <a>=<1>\n"},
	        /* Option scanning stops at the first non-option argument: here
		 * "-oi" and "-o" belong to the command that pipe runs. */
	        {"spamassassin unix - n n - - pipe\n"
	         "  user=spamd argv=/usr/bin/spamc -f -e /usr/sbin/sendmail -oi -f ${sender} "
	         "${recipient} -o x\n",
	         "spamassassin/unix ynn wakeup=0 maxproc=-1 cmd=pipe <user=spamd> "
	         "<argv=/usr/bin/spamc> <-f> <-e> </usr/sbin/sendmail> <-oi> <-f> <${sender}> "
	         "<${recipient}> <-o> <x>\n"},
	        /* ... and at "--". */
	        {"s unix - - n - - cmd -o a=1 -- -o b=2\n",
	         "s/unix yyn wakeup=0 maxproc=-1 cmd=cmd <--> <-o> <b=2> -o <a>=<1>\n"},
	        /* Brace-grouped arguments lose their braces. */
	        {"p unix - n n - - pipe flags=R argv=/bin/cmd { two words } {} {{nested}}\n",
	         "p/unix ynn wakeup=0 maxproc=-1 cmd=pipe <flags=R> <argv=/bin/cmd> "
	         "<two words> <> <{nested}>\n"},
	        /* A '}' without a '{' is data, as in Postfix. */
	        {"p unix - n n - - pipe argv=/bin/echo a}\n",
	         "p/unix ynn wakeup=0 maxproc=-1 cmd=pipe <argv=/bin/echo> <a}>\n"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check(cases[i].text, cases[i].expected);
}

static void test_line_ends_and_layout(void **state)
{
	(void)state;
	/* CRLF line ends, a last line without a line end, tabs. */
	check("# comment\r\n"
	      "smtp\tinet\tn\t-\tn\t-\t-\tsmtpd\r\n"
	      "\t-o a=1\r\n"
	      "\r\n"
	      "qmgr unix n - n 300 1 qmgr",
	      "smtp/inet host=* port=smtp nyn wakeup=0 maxproc=-1 cmd=smtpd -o <a>=<1>\n"
	      "qmgr/unix nyn wakeup=300 maxproc=1 cmd=qmgr\n");
	/* Fields split over continuation lines. */
	check("smtp inet n -\n  n - - smtpd\n",
	      "smtp/inet host=* port=smtp nyn wakeup=0 maxproc=-1 cmd=smtpd\n");
	/* An empty file, only comments, only white space. */
	check("", "");
	check("# a\n   # b\n\n \t \n", "");
}

/* ---- errors --------------------------------------------------------------- */

static void test_errors(void **state)
{
	static const struct {
		const char *text;
		const char *expected;
	} cases[] = {
	        {"smtp tcp n - n - - smtpd\n",
	         "master.cf, line 1: field \"type\": expected inet, unix, unix-dgram, fifo or "
	         "pass, got \"tcp\"\n"},
	        {"smtp inet n - n - -\n",
	         "master.cf, line 1: missing field \"command\": expected service type private "
	         "unpriv chroot wakeup maxproc command [args]\n"},
	        {"smtp\n", "master.cf, line 1: missing field \"type\": expected service type "
	                   "private unpriv chroot wakeup maxproc command [args]\n"},
	        {"pickup unix yes - n 60 1 pickup\n",
	         "master.cf, line 1: field \"private\": expected y, n or -, got \"yes\"\n"},
	        {"pickup unix n N n 60 1 pickup\n",
	         "master.cf, line 1: field \"unpriv\": expected y, n or -, got \"N\"\n"},
	        {"pickup unix n - 1 60 1 pickup\n",
	         "master.cf, line 1: field \"chroot\": expected y, n or -, got \"1\"\n"},
	        {"smtp inet y - n - - smtpd\n",
	         "master.cf, line 1: field \"private\": an inet service cannot be private, "
	         "expected n or -, got \"y\"\n"},
	        {"pickup unix n - n 60s 1 pickup\n",
	         "master.cf, line 1: field \"wakeup\": expected a number of seconds from 0 to "
	         "2147483647, optionally followed by '?', or -, got \"60s\"\n"},
	        {"pickup unix n - n 60?? 1 pickup\n",
	         "master.cf, line 1: field \"wakeup\": expected a number of seconds from 0 to "
	         "2147483647, optionally followed by '?', or -, got \"60??\"\n"},
	        {"pickup unix n - n -? 1 pickup\n",
	         "master.cf, line 1: field \"wakeup\": expected a number of seconds from 0 to "
	         "2147483647, optionally followed by '?', or -, got \"-?\"\n"},
	        {"pickup unix n - n ? 1 pickup\n",
	         "master.cf, line 1: field \"wakeup\": expected a number of seconds from 0 to "
	         "2147483647, optionally followed by '?', or -, got \"?\"\n"},
	        {"pickup unix n - n 2147483648 1 pickup\n",
	         "master.cf, line 1: field \"wakeup\": expected a number of seconds from 0 to "
	         "2147483647, optionally followed by '?', or -, got \"2147483648\"\n"},
	        {"pickup unix n - n 60 -1 pickup\n",
	         "master.cf, line 1: field \"maxproc\": expected a number from 0 (no limit) to "
	         "2147483647, or - for default_process_limit, got \"-1\"\n"},
	        {"pickup unix n - n 60 1x pickup\n",
	         "master.cf, line 1: field \"maxproc\": expected a number from 0 (no limit) to "
	         "2147483647, or - for default_process_limit, got \"1x\"\n"},
	        {"pickup unix n - n 60 1 -\n",
	         "master.cf, line 1: field \"command\": expected a program name, got \"-\"\n"},
	        /* -o problems. */
	        {"s unix - - n - - smtpd -o\n",
	         "master.cf, line 1: \"-o\" without a value: expected -o name=value\n"},
	        {"s unix - - n - - smtpd\n  -o\n",
	         "master.cf, line 1: \"-o\" without a value: expected -o name=value\n"},
	        {"s unix - - n - - smtpd -o syslog_name\n",
	         "master.cf, line 1: \"-o syslog_name\": expected -o name=value\n"},
	        {"s unix - - n - - smtpd -ofoo\n",
	         "master.cf, line 1: \"-o foo\": expected -o name=value\n"},
	        {"s unix - - n - - smtpd -o =x\n",
	         "master.cf, line 1: \"-o =x\": missing parameter name before '='\n"},
	        {"s unix - - n - - smtpd -o { = x }\n",
	         "master.cf, line 1: \"-o = x\": missing parameter name before '='\n"},
	        {"s unix - - n - - smtpd -o { a b = x }\n",
	         "master.cf, line 1: \"-o a b = x\": bad parameter name \"a b\": expected "
	         "letters, digits, '_', '-' and '.'\n"},
	        {"s unix - - n - - smtpd -o my/name=x\n",
	         "master.cf, line 1: \"-o my/name=x\": bad parameter name \"my/name\": expected "
	         "letters, digits, '_', '-' and '.'\n"},
	        /* Braces. */
	        {"s unix - - n - - smtpd -o { a = b\n",
	         "master.cf, line 1: missing '}' in \"{ a = b\"\n"},
	        {"p unix - n n - - pipe argv=/bin/x {a b\n  c\n",
	         "master.cf, line 1: missing '}' in \"{a b c\"\n"},
	        {"p unix - n n - - pipe argv=${recipient\n",
	         "master.cf, line 1: missing '}' in \"argv=${recipient\"\n"},
	        {"p unix - n n - - pipe { a }b\n",
	         "master.cf, line 1: \"{ a }b\": text after '}'\n"},
	        {"s unix - - n - - smtpd -o {a=b}c\n",
	         "master.cf, line 1: \"-o {a=b}c\": text after '}'\n"},
	        /* inet service names. */
	        {":25 inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service \":25\": empty host "
	         "before ':'; expected port, host:port, [ipv4]:port or [ipv6]:port\n"},
	        {"localhost: inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service \"localhost:\": empty "
	         "port; expected port, host:port, [ipv4]:port or [ipv6]:port\n"},
	        {"[::1]25 inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service \"[::1]25\": expected "
	         "':' and a port after ']'; expected port, host:port, [ipv4]:port or "
	         "[ipv6]:port\n"},
	        {"[::1:25 inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service \"[::1:25\": missing "
	         "']'; expected port, host:port, [ipv4]:port or [ipv6]:port\n"},
	        {"[]:25 inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service \"[]:25\": empty "
	         "address inside []; expected port, host:port, [ipv4]:port or [ipv6]:port\n"},
	        {"[mx.example.org]:25 inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service "
	         "\"[mx.example.org]:25\": expected an IPv4 or IPv6 address inside []; "
	         "expected port, host:port, [ipv4]:port or [ipv6]:port\n"},
	        {"::1:25 inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service \"::1:25\": an IPv6 "
	         "address must be written in brackets, as in [::1]:25; expected port, "
	         "host:port, [ipv4]:port or [ipv6]:port\n"},
	        {"host]:25 inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service \"host]:25\": "
	         "misplaced '[' or ']'; expected port, host:port, [ipv4]:port or "
	         "[ipv6]:port\n"},
	        {"h*st:25 inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service \"h*st:25\": bad host "
	         "name; expected port, host:port, [ipv4]:port or [ipv6]:port\n"},
	        {"70000 inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service \"70000\": expected a "
	         "port number from 1 to 65535 or a service name; expected port, host:port, "
	         "[ipv4]:port or [ipv6]:port\n"},
	        {"127.0.0.1:0 inet n - n - - smtpd\n",
	         "master.cf, line 1: field \"service\": bad inet service \"127.0.0.1:0\": "
	         "expected a port number from 1 to 65535 or a service name; expected port, "
	         "host:port, [ipv4]:port or [ipv6]:port\n"},
	        /* Layout. */
	        {"  -o a=b\nsmtp inet n - n - - smtpd\n",
	         "smtp/inet host=* port=smtp nyn wakeup=0 maxproc=-1 cmd=smtpd\n"
	         "master.cf, line 1: continuation line (it starts with white space) without a "
	         "service line before it\n"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check(cases[i].text, cases[i].expected);
}

/* Every bad line is reported, the good ones still come back, and the line
 * named is where the service starts. */
static void test_all_errors_collected(void **state)
{
	(void)state;
	check("# master.cf\n"
	      "smtp      inet  n       -       y       -       -       smtpd\n"
	      "pickup    unix  n       -       y       sixty   1       pickup\n"
	      "submission inet n       -       y       -       -       smtpd\n"
	      "  -o syslog_name=postfix/submission\n"
	      "  -o smtpd_tls_security_level\n"
	      "qmgr      unix  n       -       n       300     1       qmgr\n"
	      "\n"
	      "smtp      inet  n       -       n       -       -       smtpd\n"
	      "smtp      unix  -       -       n       -       -       smtp\n"
	      "bad       tcp   n       -       n       -       -       smtpd\n",
	      "smtp/inet host=* port=smtp nyy wakeup=0 maxproc=-1 cmd=smtpd\n"
	      "qmgr/unix nyn wakeup=300 maxproc=1 cmd=qmgr\n"
	      "smtp/unix yyn wakeup=0 maxproc=-1 cmd=smtp\n"
	      "master.cf, line 3: field \"wakeup\": expected a number of seconds from 0 to "
	      "2147483647, optionally followed by '?', or -, got \"sixty\"\n"
	      "master.cf, line 4: \"-o smtpd_tls_security_level\": expected -o name=value\n"
	      "master.cf, line 9: duplicate service \"smtp\" of type \"inet\": first defined at "
	      "line 2\n"
	      "master.cf, line 11: field \"type\": expected inet, unix, unix-dgram, fifo or "
	      "pass, got \"tcp\"\n");
}

static void test_nul_byte(void **state)
{
	static const char text[] = "smtp inet n - n - - smtpd\n"
	                           "pickup unix n - n 60 1 pi\0ckup\n"
	                           "qmgr unix n - n 300 1 qmgr\n"
	                           "  -o a=\0\n"
	                           "  -o b=2\n"
	                           "cleanup unix n - n - 0 cleanup\n"
	                           "# \0 in a comment\n";
	int ret;
	char *got;

	(void)state;
	got = parse(text, sizeof(text) - 1, &ret);
	assert_int_equal(ret, -1);
	/* The services with a NUL byte are dropped whole. */
	assert_string_equal(got, "smtp/inet host=* port=smtp nyn wakeup=0 maxproc=-1 cmd=smtpd\n"
	                         "cleanup/unix nyn wakeup=0 maxproc=0 cmd=cleanup\n"
	                         "master.cf, line 2: NUL byte in line\n"
	                         "master.cf, line 4: NUL byte in line\n"
	                         "master.cf, line 7: NUL byte in line\n");
	free(got);
}

static void test_overlong(void **state)
{
	str_t text, expected;
	int ret;
	char *got;

	(void)state;
	str_init(&text);
	str_init(&expected);
	/* Exactly MASTERCF_LINE_MAX bytes once joined: accepted. The joined
	 * line is "s unix - - n - - smtpd" + " -o a=<value>". */
	str_append(&text, "s unix - - n - - smtpd\n  -o a=");
	while (text.len < MASTERCF_LINE_MAX + 2) /* the LF and two blanks make one space */
		str_append_c(&text, 'x');
	str_append_c(&text, '\n');
	got = parse(text.buf, text.len, &ret);
	assert_int_equal(ret, 0);
	assert_non_null(strstr(got, "-o <a>=<xxx"));
	free(got);

	/* One byte more, then a good service after it. */
	str_truncate(&text, text.len - 1);
	str_append(&text, "x\n  -o b=1\nqmgr unix n - n 300 1 qmgr\n");
	got = parse(text.buf, text.len, &ret);
	assert_int_equal(ret, -1);
	assert_string_equal(got, "qmgr/unix nyn wakeup=300 maxproc=1 cmd=qmgr\n"
	                         "master.cf, line 1: service entry longer than 65536 bytes (with "
	                         "its continuation lines)\n");
	free(got);

	/* One physical line of 1 MiB. */
	str_reset(&text);
	str_append(&text, "\n\ns unix - - n - - smtpd ");
	for (size_t i = 0; i < 1024 * 1024; i++)
		str_append_c(&text, 'y');
	got = parse(text.buf, text.len, &ret);
	assert_int_equal(ret, -1);
	assert_string_equal(got, "master.cf, line 3: service entry longer than 65536 bytes (with "
	                         "its continuation lines)\n");
	free(got);
	str_free(&text);
	str_free(&expected);
}

/* ---- API ------------------------------------------------------------------ */

static void test_find_and_limit(void **state)
{
	const char *text = "smtp inet n - n - - smtpd\n"
	                   "smtp unix - - n - - smtp\n"
	                   "pickup unix n - n 60 1 pickup\n"
	                   "anvil unix - - n - 0 anvil\n";
	struct master_conf *conf = NULL;
	strv_t errors = STRV_INIT;
	const struct master_service *s;

	(void)state;
	assert_int_equal(mastercf_parse_text(text, strlen(text), "m.cf", &conf, &errors), 0);
	assert_int_equal(conf->n, 4);
	s = mastercf_find(conf, "smtp", "unix");
	assert_ptr_equal(s, &conf->services[1]);
	assert_int_equal(s->type_id, MASTER_TYPE_UNIX);
	assert_null(s->host);
	assert_null(s->port);
	assert_string_equal(s->file, "m.cf");
	assert_int_equal(s->line, 2);
	assert_ptr_equal(mastercf_find(conf, "smtp", NULL), &conf->services[0]);
	assert_int_equal(mastercf_find(conf, "smtp", "inet")->type_id, MASTER_TYPE_INET);
	assert_null(mastercf_find(conf, "smtp", "fifo"));
	assert_null(mastercf_find(conf, "nothere", NULL));
	assert_int_equal(mastercf_process_limit(&conf->services[0], 100), 100);
	assert_int_equal(mastercf_process_limit(mastercf_find(conf, "pickup", NULL), 100), 1);
	assert_int_equal(mastercf_process_limit(mastercf_find(conf, "anvil", NULL), 100), 0);
	mastercf_destroy(&conf);
	mastercf_destroy(&conf);
	assert_int_equal(errors.n, 0);
}

static void test_load(void **state)
{
	char dir[] = "/tmp/test_mastercf.XXXXXX";
	char *path, *missing;
	FILE *fp;
	struct master_conf *conf = NULL;
	strv_t errors = STRV_INIT;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/master.cf", dir);
	missing = xasprintf("%s/nothere.cf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("smtp inet n - n - - smtpd\nbad unix\n", fp);
	assert_int_equal(fclose(fp), 0);

	assert_int_equal(mastercf_load(path, &conf, &errors), -1);
	assert_int_equal(conf->n, 1);
	assert_string_equal(conf->services[0].file, path);
	assert_int_equal(errors.n, 1);
	assert_true(strncmp(errors.v[0], path, strlen(path)) == 0);
	assert_non_null(strstr(errors.v[0], ", line 2: missing field \"private\""));
	mastercf_destroy(&conf);
	strv_free(&errors);

	assert_int_equal(mastercf_load(missing, &conf, &errors), -1);
	assert_non_null(conf);
	assert_int_equal(conf->n, 0);
	assert_int_equal(errors.n, 1);
	assert_non_null(strstr(errors.v[0], missing));
	mastercf_destroy(&conf);
	strv_free(&errors);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	free(path);
	free(missing);
}

/* A service sees main.cf with its own -o overrides, later ones winning,
 * and a bad override is reported at its master.cf line. */
static void test_service_config(void **state)
{
	static const char main_text[] = "myhostname = mx.example\nsyslog_name = postern\n";
	static const char master_text[] =
	        "smtp inet n - n - - smtpd\n"
	        "submission inet n - n - - smtpd\n"
	        "  -o syslog_name=postern/submission\n"
	        "  -o smtpd_helo_required=yes -o smtpd_helo_required=often\n";
	strv_t errors = STRV_INIT;
	struct config *cfg, *svc;
	struct master_conf *mc;
	const char *value, *error;
	bool b;

	(void)state;
	assert_int_equal(config_parse_text(main_text, sizeof(main_text) - 1, "main.cf",
	                                   "/etc/postern", &cfg, &errors),
	                 0);
	assert_int_equal(mastercf_parse_text(master_text, sizeof(master_text) - 1, "master.cf", &mc,
	                                     &errors),
	                 0);
	svc = mastercf_service_config(cfg, mastercf_find(mc, "submission", "inet"));
	assert_int_equal(config_expand(svc, "syslog_name", &value, &error), 0);
	assert_string_equal(value, "postern/submission");
	assert_int_equal(config_get_bool(svc, "smtpd_helo_required", &b, &error), -1);
	assert_string_equal(error, "master.cf, line 2 (service submission/inet): bad value for "
	                           "smtpd_helo_required: \"often\": expected yes or no");
	assert_int_equal(config_expand(svc, "myhostname", &value, &error), 0);
	assert_string_equal(value, "mx.example");
	config_destroy(&svc);
	/* main.cf itself is untouched */
	assert_int_equal(config_expand(cfg, "syslog_name", &value, &error), 0);
	assert_string_equal(value, "postern");
	mastercf_destroy(&mc);
	config_destroy(&cfg);
	strv_free(&errors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_service_config), cmocka_unit_test(test_stock_lines),
	        cmocka_unit_test(test_override_forms), cmocka_unit_test(test_line_ends_and_layout),
	        cmocka_unit_test(test_errors),         cmocka_unit_test(test_all_errors_collected),
	        cmocka_unit_test(test_nul_byte),       cmocka_unit_test(test_overlong),
	        cmocka_unit_test(test_find_and_limit), cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
