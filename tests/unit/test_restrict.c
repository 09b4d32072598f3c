/* test_restrict.c - unit tests for lib/smtp/restrict*.c, smtpd's
 * restriction lists: every restriction and access(5) action with the
 * exact reply Postfix gives, smtpd_delay_reject on and off, OK ending
 * only its own list, address classes and recipient validation, a table
 * that cannot answer (451 4.3.0, never 550), the open-relay battery
 * (address forms that must never relay for an untrusted client, and that
 * a mynetworks client may use), the callback contract (never before
 * restrict_check() returns) and cancelling a check whose lookup is still
 * running (run under ASan with `make unit SANITIZE=1`).
 *
 * Real tables only: texthash:, regexp:, cidr:, inline: files written to a
 * private temporary directory, sqlite: tables on a database made here,
 * all through a real table_async pool on a real libevent loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include <config.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "address/address.h"
#include "conf/config.h"
#include "smtp/restrict.h"
#include "table/table_async.h"
#include "restrict_test.h"
#include "table_test.h"

#if HAVE_SQLITE
#include <sqlite3.h>
#endif

/* ---- Fixture: a main.cf, a pool, an engine, one session ---- */

/* Base configuration shared by the tests; extra lines come after it and
 * win (main.cf: the last setting of a name counts). */
static const char base_cf[] = "myhostname = mx.example.com\n"
                              "mydomain = example.com\n"
                              "mydestination = $myhostname, localhost\n"
                              "inet_interfaces = loopback-only\n"
                              "mynetworks = 127.0.0.0/8 [::1]/128 10.1.0.0/16\n"
                              "virtual_mailbox_domains = vmail.example\n"
                              "virtual_mailbox_maps = texthash:@DIR@/vmailbox\n"
                              "virtual_alias_domains = valias.example\n"
                              "virtual_alias_maps = texthash:@DIR@/valias\n"
                              "relay_domains = relay.example\n"
                              "recipient_delimiter = +\n"
                              "smtpd_relay_restrictions = permit_mynetworks, "
                              "reject_unauth_destination\n";

static void fx_setup(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->dir = test_tmpdir();
	fx_file(f, "vmailbox",
	        "u@vmail.example vmail.example/u/\n"
	        "v@vmail.example vmail.example/v/\n");
	fx_file(f, "valias",
	        "a@valias.example u@vmail.example\n"
	        "postmaster@mx.example.com u@vmail.example\n"
	        "alias@vmail.example u@vmail.example\n");
}

static void fx_start(struct fx *f, const char *extra)
{
	fx_start_cf(f, base_cf, extra);
}

/* ---- Running one check ---- */

static void run_for(struct fx *f, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
}

static void default_request(struct restrict_request *q)
{
	memset(q, 0, sizeof(*q));
	q->client_address = "192.0.2.1";
	q->client_name = "unknown";
	q->reverse_client_name = "unknown";
	q->client_port = 40000;
	q->helo_name = "client.example.net";
	q->protocol = "ESMTP";
	q->sender = "s@sender.example";
}

/* Run a check; the answer must come only after restrict_check returned. */
static void check(struct fx *f, enum restrict_stage stage, const struct restrict_request *q,
                  struct restrict_actions *acts, struct outcome *o)
{
	struct restrict_pending *p;

	o->calls = 0;
	str_init(&o->reply);
	p = restrict_check(f->sess, stage, q, acts, on_done, o);
	assert_non_null(p);
	assert_int_equal(o->calls, 0);
	run_until(f, &o->calls);
	assert_int_equal(o->calls, 1);
}

static const char *verdict_name(enum restrict_verdict v)
{
	return v == RESTRICT_ACCEPT ? "ACCEPT" : v == RESTRICT_REJECT ? "REJECT" : "DEFER";
}

/* One table-driven case: the reply expected, "" for ACCEPT. */
struct rcase {
	enum restrict_stage stage;
	const char *client; /* NULL: 192.0.2.1 */
	const char *client_name; /* NULL: unknown */
	const char *helo; /* NULL: client.example.net; "-" for none */
	const char *sender; /* NULL: s@sender.example */
	const char *rcpt;
	const char *expect;
};

static void run_cases(struct fx *f, const struct rcase *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct rcase *c = &cases[i];
		struct restrict_request q;
		struct outcome o;
		enum restrict_verdict want;

		default_request(&q);
		if (c->client != NULL)
			q.client_address = c->client;
		if (c->client_name != NULL)
			q.client_name = c->client_name;
		if (c->helo != NULL)
			q.helo_name = strcmp(c->helo, "-") == 0 ? NULL : c->helo;
		if (c->sender != NULL)
			q.sender = c->sender;
		q.recipient = c->rcpt;
		check(f, c->stage, &q, NULL, &o);
		want = c->expect[0] == '\0'  ? RESTRICT_ACCEPT
		       : c->expect[0] == '5' ? RESTRICT_REJECT
		                             : RESTRICT_DEFER;
		if (o.verdict != want || strcmp(str_c(&o.reply), c->expect) != 0)
			fail_msg("case %zu (rcpt <%s> client %s helo %s sender <%s>): expected %s "
			         "\"%s\", got %s \"%s\"",
			         i, c->rcpt != NULL ? c->rcpt : "", q.client_address,
			         q.helo_name != NULL ? q.helo_name : "(none)",
			         q.sender != NULL ? q.sender : "", verdict_name(want), c->expect,
			         verdict_name(o.verdict), str_c(&o.reply));
		str_free(&o.reply);
	}
}

#define RUN(f, cases) run_cases(f, cases, sizeof(cases) / sizeof(cases[0]))

/* ---- Tests ---- */

static void test_recipient_validation(void **state)
{
	struct fx f;
	static const struct rcase cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@other.example",
	         "554 5.7.1 <u@other.example>: Relay access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "U@VMAIL.EXAMPLE", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u+tag@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "nobody@vmail.example",
	         "550 5.1.1 <nobody@vmail.example>: Recipient address rejected: User unknown in "
	         "virtual mailbox table"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "alias@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "a@valias.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "x@valias.example",
	         "550 5.1.1 <x@valias.example>: Recipient address rejected: User unknown in "
	         "virtual alias table"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "postmaster@mx.example.com", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "nobody@mx.example.com",
	         "550 5.1.1 <nobody@mx.example.com>: Recipient address rejected: User unknown in "
	         "local recipient table"},
	        /* no domain: $myorigin is appended, as Postfix does */
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "postmaster", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "nobody",
	         "550 5.1.1 <nobody>: Recipient address rejected: User unknown in local recipient "
	         "table"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "anyone@relay.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "anyone@sub.relay.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "anyone@relay.example.evil.example",
	         "554 5.7.1 <anyone@relay.example.evil.example>: Relay access denied"},
	        /* mynetworks: addresses, networks, IPv6, IPv4-mapped */
	        {RESTRICT_RCPT, "127.0.0.1", NULL, NULL, NULL, "u@other.example", ""},
	        {RESTRICT_RCPT, "10.1.200.3", NULL, NULL, NULL, "u@other.example", ""},
	        {RESTRICT_RCPT, "10.2.0.1", NULL, NULL, NULL, "u@other.example",
	         "554 5.7.1 <u@other.example>: Relay access denied"},
	        {RESTRICT_RCPT, "::1", NULL, NULL, NULL, "u@other.example", ""},
	        {RESTRICT_RCPT, "::ffff:127.0.0.2", NULL, NULL, NULL, "u@other.example", ""},
	        {RESTRICT_RCPT, "2001:db8::1", NULL, NULL, NULL, "u@other.example",
	         "554 5.7.1 <u@other.example>: Relay access denied"},
	        /* mynetworks clients still get unknown users refused */
	        {RESTRICT_RCPT, "127.0.0.1", NULL, NULL, NULL, "nobody@vmail.example",
	         "550 5.1.1 <nobody@vmail.example>: Recipient address rejected: User unknown in "
	         "virtual mailbox table"},
	        /* nothing to check before RCPT */
	        {RESTRICT_CONNECT, NULL, NULL, NULL, NULL, NULL, ""},
	        {RESTRICT_MAIL, NULL, NULL, NULL, NULL, NULL, ""},
	        {RESTRICT_DATA, NULL, NULL, NULL, NULL, NULL, ""},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, NULL);
	RUN(&f, cases);
	fx_teardown(&f);
}

/* defer_unauth_destination: relay_domains_reject_code made temporary (554 -> 454), as Postfix answers. */
static void test_relay_codes_and_defer(void **state)
{
	struct fx f;
	static const struct rcase cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@other.example",
	         "454 4.7.1 <u@other.example>: Relay access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@relay.example",
	         "550 5.1.1 <u@relay.example>: Recipient address rejected: User unknown in relay "
	         "recipient table"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "ok@relay.example", ""},
	};

	(void)state;
	fx_setup(&f);
	fx_file(&f, "relayrcpt", "ok@relay.example x\n");
	/* Postfix's default relay list ends in defer_unauth_destination. */
	fx_start(&f, "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
	             "defer_unauth_destination\n"
	             "relay_recipient_maps = texthash:@DIR@/relayrcpt\n");
	RUN(&f, cases);
	fx_teardown(&f);
}

static void test_generic_restrictions(void **state)
{
	struct fx f;
	static const struct rcase reject_cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@vmail.example",
	         "554 5.7.1 <u@vmail.example>: Recipient address rejected: Access denied"},
	        /* permit in the relay list ends only that list */
	        {RESTRICT_RCPT, "127.0.0.1", NULL, NULL, NULL, "u@vmail.example",
	         "554 5.7.1 <u@vmail.example>: Recipient address rejected: Access denied"},
	};
	static const struct rcase defer_cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@vmail.example",
	         "450 4.7.1 <u@vmail.example>: Recipient address rejected: Try again later"},
	};
	static const struct rcase codes_cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@vmail.example",
	         "550 5.7.1 <u@vmail.example>: Recipient address rejected: Access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@other.example",
	         "550 5.7.1 <u@other.example>: Relay access denied"},
	};
	static const struct rcase sasl_cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@other.example",
	         "554 5.7.1 <u@other.example>: Relay access denied"},
	};
	struct restrict_request q;
	struct outcome o;

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_recipient_restrictions = reject\n");
	RUN(&f, reject_cases);
	fx_stop(&f);

	fx_start(&f, "smtpd_recipient_restrictions = defer\n");
	RUN(&f, defer_cases);
	fx_stop(&f);

	fx_start(&f, "smtpd_recipient_restrictions = reject\n"
	             "reject_code = 550\nrelay_domains_reject_code = 550\n"
	             "smtpd_relay_restrictions = reject_unauth_destination\n");
	RUN(&f, codes_cases);
	fx_stop(&f);

	/* permit_sasl_authenticated: only with a SASL login. */
	fx_start(&f, "smtpd_relay_restrictions = permit_sasl_authenticated, "
	             "reject_unauth_destination\n");
	RUN(&f, sasl_cases);
	default_request(&q);
	q.recipient = "u@other.example";
	q.sasl_username = "user";
	q.sasl_method = "PLAIN";
	check(&f, RESTRICT_RCPT, &q, NULL, &o);
	assert_int_equal(o.verdict, RESTRICT_ACCEPT);
	str_free(&o.reply);
	fx_teardown(&f);
}

static void test_delay_reject(void **state)
{
	struct fx f;
	static const struct rcase delayed[] = {
	        /* yes: the client's reject is reported at RCPT */
	        {RESTRICT_CONNECT, NULL, NULL, NULL, NULL, NULL, ""},
	        {RESTRICT_HELO, NULL, NULL, NULL, NULL, NULL, ""},
	        {RESTRICT_MAIL, NULL, NULL, NULL, NULL, NULL, ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@vmail.example",
	         "554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied"},
	        {RESTRICT_RCPT, "127.0.0.1", "localhost", NULL, NULL, "u@vmail.example", ""},
	};
	static const struct rcase immediate[] = {
	        {RESTRICT_CONNECT, NULL, NULL, NULL, NULL, NULL,
	         "554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied"},
	        {RESTRICT_CONNECT, "127.0.0.1", "localhost", NULL, NULL, NULL, ""},
	        {RESTRICT_HELO, NULL, NULL, "client", NULL, NULL,
	         "504 5.5.2 <client>: Helo command rejected: need fully-qualified hostname"},
	        {RESTRICT_MAIL, NULL, NULL, NULL, "nobody@vmail.example", NULL,
	         "550 5.1.0 <nobody@vmail.example>: Sender address rejected: User unknown in "
	         "virtual mailbox table"},
	        {RESTRICT_MAIL, NULL, NULL, NULL, "u@vmail.example", NULL, ""},
	        {RESTRICT_MAIL, NULL, NULL, NULL, "", NULL, ""},
	        /* lists already applied are not repeated at RCPT */
	        {RESTRICT_RCPT, NULL, NULL, "client", "nobody@vmail.example", "u@vmail.example",
	         ""},
	};
	struct restrict_request q;
	struct outcome o;

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_client_restrictions = permit_mynetworks, reject\n");
	RUN(&f, delayed);
	default_request(&q);
	q.recipient = "u@vmail.example";
	check(&f, RESTRICT_RCPT, &q, NULL, &o);
	assert_string_equal(o.stage, "RCPT");
	str_free(&o.reply);
	fx_stop(&f);

	fx_start(&f, "smtpd_delay_reject = no\n"
	             "smtpd_client_restrictions = permit_mynetworks, reject\n"
	             "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname\n"
	             "smtpd_sender_restrictions = reject_unlisted_sender\n");
	RUN(&f, immediate);
	default_request(&q);
	check(&f, RESTRICT_CONNECT, &q, NULL, &o);
	assert_string_equal(o.stage, "CONNECT");
	str_free(&o.reply);
	fx_teardown(&f);
}

static void test_ok_ends_only_its_list(void **state)
{
	struct fx f;
	static const struct rcase cases[] = {
	        /* permit in the client list; the sender list still rejects */
	        {RESTRICT_RCPT, NULL, NULL, NULL, "bad@sender.example", "u@vmail.example",
	         "554 5.7.1 <bad@sender.example>: Sender address rejected: Access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, "good@sender.example", "u@vmail.example", ""},
	        /* OK from an access table also ends only its list */
	        {RESTRICT_RCPT, NULL, NULL, NULL, "good@sender.example", "ok@vmail.example",
	         "550 5.1.1 <ok@vmail.example>: Recipient address rejected: User unknown in "
	         "virtual mailbox table"},
	};

	(void)state;
	fx_setup(&f);
	fx_file(&f, "senders", "bad@sender.example REJECT\n");
	fx_file(&f, "rcpts", "ok@vmail.example OK\n");
	fx_start(&f,
	         "smtpd_client_restrictions = permit, reject\n"
	         "smtpd_sender_restrictions = check_sender_access texthash:@DIR@/senders\n"
	         "smtpd_recipient_restrictions = check_recipient_access texthash:@DIR@/rcpts\n");
	RUN(&f, cases);
	fx_teardown(&f);
}

static void test_helo_and_fqdn(void **state)
{
	struct fx f;
	static const struct rcase cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, "client", NULL, "u@vmail.example",
	         "504 5.5.2 <client>: Helo command rejected: need fully-qualified hostname"},
	        {RESTRICT_RCPT, NULL, NULL, "bad_name!.example", NULL, "u@vmail.example",
	         "501 5.5.2 <bad_name!.example>: Helo command rejected: Invalid name"},
	        {RESTRICT_RCPT, NULL, NULL, "24383590", NULL, "u@vmail.example",
	         "501 5.5.2 <24383590>: Helo command rejected: Invalid name"},
	        {RESTRICT_RCPT, NULL, NULL, "[300.1.1.1]", NULL, "u@vmail.example",
	         "501 5.5.2 <[300.1.1.1]>: Helo command rejected: Invalid name"},
	        {RESTRICT_RCPT, NULL, NULL, "[192.0.2.1]", NULL, "u@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, "[IPv6:2001:db8::1]", NULL, "u@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, "client.example.net.", NULL, "u@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, "-", NULL, "u@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, "user@localhost", "u@vmail.example",
	         "504 5.5.2 <user@localhost>: Sender address rejected: need fully-qualified "
	         "address"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, "", "u@vmail.example", ""},
	        {RESTRICT_RCPT, "127.0.0.1", NULL, NULL, NULL, "u@vmail",
	         "504 5.5.2 <u@vmail>: Recipient address rejected: need fully-qualified address"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@[192.0.2.7]",
	         "554 5.7.1 <u@[192.0.2.7]>: Relay access denied"},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_helo_restrictions = reject_invalid_helo_hostname, "
	             "reject_non_fqdn_helo_hostname\n"
	             "smtpd_sender_restrictions = reject_non_fqdn_sender\n"
	             "smtpd_recipient_restrictions = reject_non_fqdn_recipient\n");
	RUN(&f, cases);
	fx_teardown(&f);
}

static const char access_table[] = "reject.example REJECT\n"
                                   "rejtext@a.example REJECT No thanks\n"
                                   "dsn@a.example REJECT 5.7.9 Custom code\n"
                                   "defer@a.example DEFER\n"
                                   "defertext@a.example DEFER Come back later\n"
                                   "nnn@a.example 521 Go away\n"
                                   "nnn4@a.example 452 4.2.2 Mailbox full\n"
                                   "num@a.example 12345\n"
                                   "ok@a.example OK\n"
                                   "dunno@a.example DUNNO\n"
                                   "hold@a.example HOLD\n"
                                   "discard@a.example DISCARD\n"
                                   "filter@a.example FILTER smtp:[127.0.0.1]:10025\n"
                                   "redirect@a.example REDIRECT other@b.example\n"
                                   "prepend@a.example PREPEND X-Tag: yes\n"
                                   "warn@a.example WARN Watch this\n"
                                   "list@a.example permit_mynetworks, reject\n"
                                   "dip@a.example DEFER_IF_PERMIT Maybe later\n"
                                   "dir@a.example DEFER_IF_REJECT Policy later\n"
                                   "bad@a.example FROB\n"
                                   "parent.example REJECT Parent\n"
                                   "localonly@ REJECT Localpart\n"
                                   "user@a.example REJECT Stripped\n";

static void test_access_actions(void **state)
{
	struct fx f;
	static const struct rcase cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "x@reject.example",
	         "554 5.7.1 <x@reject.example>: Recipient address rejected: Access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "rejtext@a.example",
	         "554 5.7.1 <rejtext@a.example>: Recipient address rejected: No thanks"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "dsn@a.example",
	         "554 5.7.9 <dsn@a.example>: Recipient address rejected: Custom code"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "defer@a.example",
	         "450 4.7.1 <defer@a.example>: Recipient address rejected: Access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "defertext@a.example",
	         "450 4.7.1 <defertext@a.example>: Recipient address rejected: Come back later"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "nnn@a.example",
	         "521 5.7.1 <nnn@a.example>: Recipient address rejected: Go away"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "nnn4@a.example",
	         "452 4.2.2 <nnn4@a.example>: Recipient address rejected: Mailbox full"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "num@a.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "ok@a.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "dunno@a.example",
	         "554 5.7.1 <dunno@a.example>: Recipient address rejected: Access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "list@a.example",
	         "554 5.7.1 <list@a.example>: Recipient address rejected: Access denied"},
	        {RESTRICT_RCPT, "127.0.0.1", NULL, NULL, NULL, "list@a.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "dip@a.example",
	         "450 4.7.1 <dip@a.example>: Recipient address rejected: Maybe later"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, "bad@s.example", "dip@a.example",
	         "554 5.7.1 <bad@s.example>: Sender address rejected: Access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, "bad@s.example", "dir@a.example",
	         "450 4.7.1 <dir@a.example>: Recipient address rejected: Policy later"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "dir@a.example",
	         "450 4.7.1 <dir@a.example>: Recipient address rejected: Policy later"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "bad@a.example",
	         "451 4.3.5 Server configuration error"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "x@sub.parent.example",
	         "554 5.7.1 <x@sub.parent.example>: Recipient address rejected: Parent"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "x@parent.example",
	         "554 5.7.1 <x@parent.example>: Recipient address rejected: Parent"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "x@notparent.example",
	         "554 5.7.1 <x@notparent.example>: Recipient address rejected: Access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "localonly@z.example",
	         "554 5.7.1 <localonly@z.example>: Recipient address rejected: Localpart"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "user+ext@a.example",
	         "554 5.7.1 <user+ext@a.example>: Recipient address rejected: Stripped"},
	};

	(void)state;
	fx_setup(&f);
	fx_file(&f, "access", access_table);
	fx_file(&f, "senders", "bad@s.example REJECT\n");
	fx_start(&f, "smtpd_relay_restrictions =\n"
	             "smtpd_reject_unlisted_recipient = no\n"
	             "smtpd_recipient_restrictions = check_recipient_access texthash:@DIR@/access, "
	             "check_sender_access texthash:@DIR@/senders, "
	             "check_recipient_access inline:{ dunno@a.example=REJECT, "
	             "dir@a.example=REJECT, x@notparent.example=REJECT, list@a.example=OK }\n");
	RUN(&f, cases);
	fx_teardown(&f);
}

static void test_message_actions_and_warn(void **state)
{
	struct fx f;
	struct restrict_actions acts;
	struct restrict_request q;
	struct outcome o;
	struct test_log tl;
	static const char *const rcpts[] = {
	        "hold@a.example",     "discard@a.example", "filter@a.example",
	        "redirect@a.example", "prepend@a.example", "warn@a.example",
	};

	(void)state;
	fx_setup(&f);
	fx_file(&f, "access", access_table);
	fx_start(&f,
	         "smtpd_relay_restrictions =\n"
	         "smtpd_reject_unlisted_recipient = no\n"
	         "smtpd_recipient_restrictions = check_recipient_access texthash:@DIR@/access\n");
	restrict_actions_init(&acts);
	test_log_start(&tl, true);
	for (size_t i = 0; i < sizeof(rcpts) / sizeof(rcpts[0]); i++) {
		default_request(&q);
		q.recipient = rcpts[i];
		check(&f, RESTRICT_RCPT, &q, &acts, &o);
		assert_int_equal(o.verdict, RESTRICT_ACCEPT);
		str_free(&o.reply);
	}
	assert_true(acts.hold);
	assert_string_equal(str_c(&acts.hold_reason),
	                    "<hold@a.example>: Recipient address triggers HOLD action");
	assert_true(acts.discard);
	assert_string_equal(str_c(&acts.filter), "smtp:[127.0.0.1]:10025");
	assert_string_equal(str_c(&acts.redirect), "other@b.example");
	assert_int_equal(acts.prepend.n, 1);
	assert_string_equal(acts.prepend.v[0], "X-Tag: yes");
	assert_non_null(test_log_find(&tl, "NOQUEUE: warn: RCPT from unknown[192.0.2.1]: Watch "
	                                   "this; from=<s@sender.example> to=<warn@a.example> "
	                                   "proto=ESMTP helo=<client.example.net>"));
	assert_non_null(test_log_find(&tl, "NOQUEUE: hold: RCPT from unknown[192.0.2.1]: "
	                                   "<hold@a.example>: Recipient address triggers HOLD "
	                                   "action; from=<s@sender.example>"));
	test_log_stop(&tl);
	restrict_actions_reset(&acts);
	assert_false(acts.hold);
	assert_int_equal(acts.prepend.n, 0);
	restrict_actions_free(&acts);
	fx_teardown(&f);
}

static void test_client_helo_sender_access(void **state)
{
	struct fx f;
	static const struct rcase cases[] = {
	        {RESTRICT_RCPT, "192.0.2.55", NULL, NULL, NULL, "u@vmail.example",
	         "554 5.7.1 <unknown[192.0.2.55]>: Client host rejected: Net"},
	        {RESTRICT_RCPT, "198.51.100.1", "x.bad.example", NULL, NULL, "u@vmail.example",
	         "554 5.7.1 <x.bad.example[198.51.100.1]>: Client host rejected: Name"},
	        {RESTRICT_RCPT, "203.0.113.9", NULL, NULL, NULL, "u@vmail.example",
	         "554 5.7.1 <unknown[203.0.113.9]>: Client host rejected: Cidr"},
	        {RESTRICT_RCPT, "2001:db8:1:2::5", NULL, NULL, NULL, "u@vmail.example",
	         "554 5.7.1 <unknown[2001:db8:1:2::5]>: Client host rejected: Net6"},
	        {RESTRICT_RCPT, "198.51.100.2", NULL, "mail.evil.example", NULL, "u@vmail.example",
	         "554 5.7.1 <mail.evil.example>: Helo command rejected: Helo bad"},
	        {RESTRICT_RCPT, "198.51.100.2", NULL, NULL, "", "u@vmail.example",
	         "554 5.7.1 <>: Sender address rejected: Null"},
	        {RESTRICT_RCPT, "198.51.100.2", NULL, NULL, "spam42@x.example", "u@vmail.example",
	         "554 5.7.1 <spam42@x.example>: Sender address rejected: Regexp"},
	        {RESTRICT_RCPT, "198.51.100.2", NULL, NULL, NULL, "u@vmail.example", ""},
	};

	(void)state;
	fx_setup(&f);
	fx_file(&f, "clients",
	        "192.0.2 REJECT Net\n"
	        "bad.example REJECT Name\n"
	        "2001:db8:1 REJECT Net6\n");
	fx_file(&f, "clients.cidr", "203.0.113.0/24 REJECT Cidr\n");
	fx_file(&f, "helo", "evil.example REJECT Helo bad\n");
	fx_file(&f, "senders", "<> REJECT Null\n");
	fx_file(&f, "senders.re", "/^spam[0-9]+@/ REJECT Regexp\n");
	fx_start(&f, "smtpd_client_restrictions = check_client_access texthash:@DIR@/clients, "
	             "check_client_access cidr:@DIR@/clients.cidr\n"
	             "smtpd_helo_restrictions = check_helo_access texthash:@DIR@/helo\n"
	             "smtpd_sender_restrictions = check_sender_access texthash:@DIR@/senders, "
	             "check_sender_access regexp:@DIR@/senders.re\n");
	RUN(&f, cases);
	fx_teardown(&f);
}

static void test_warn_if_reject(void **state)
{
	struct fx f;
	struct test_log tl;
	static const struct rcase cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@vmail.example", ""},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_recipient_restrictions = warn_if_reject reject_non_fqdn_sender\n");
	test_log_start(&tl, true);
	{
		static const struct rcase c2[] = {
		        {RESTRICT_RCPT, NULL, NULL, NULL, "me@localhost", "u@vmail.example", ""},
		};
		RUN(&f, c2);
	}
	RUN(&f, cases);
	assert_non_null(test_log_find(&tl, "NOQUEUE: reject_warning: RCPT from "
	                                   "unknown[192.0.2.1]: 504 5.5.2 <me@localhost>: Sender "
	                                   "address rejected: need fully-qualified address;"));
	test_log_stop(&tl);
	fx_teardown(&f);
}

static void test_data_stages(void **state)
{
	struct fx f;
	struct restrict_request q;
	struct outcome o;

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_data_restrictions = permit_mynetworks, reject\n"
	             "smtpd_end_of_data_restrictions = reject\n");
	default_request(&q);
	check(&f, RESTRICT_DATA, &q, NULL, &o);
	assert_int_equal(o.verdict, RESTRICT_REJECT);
	assert_string_equal(str_c(&o.reply),
	                    "554 5.7.1 <DATA>: Data command rejected: Access denied");
	assert_string_equal(o.stage, "DATA");
	str_free(&o.reply);
	check(&f, RESTRICT_END_OF_DATA, &q, NULL, &o);
	assert_string_equal(str_c(&o.reply),
	                    "554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied");
	assert_string_equal(o.stage, "END-OF-MESSAGE");
	str_free(&o.reply);
	q.client_address = "127.0.0.1";
	check(&f, RESTRICT_DATA, &q, NULL, &o);
	assert_int_equal(o.verdict, RESTRICT_ACCEPT);
	assert_string_equal(str_c(&o.reply), "");
	str_free(&o.reply);
	fx_teardown(&f);
}

/* mynetworks with negation, a cidr: table and host names; domain lists
 * with negation, tables and parent_domain_matches_subdomains. */
static void test_lists_with_tables(void **state)
{
	struct fx f;
	static const struct rcase cases[] = {
	        {RESTRICT_RCPT, "127.0.0.2", NULL, NULL, NULL, "u@other.example",
	         "554 5.7.1 <u@other.example>: Relay access denied"},
	        {RESTRICT_RCPT, "127.0.0.3", NULL, NULL, NULL, "u@other.example", ""},
	        {RESTRICT_RCPT, "198.51.100.77", NULL, NULL, NULL, "u@other.example", ""},
	        {RESTRICT_RCPT, "192.0.2.9", "mail.trusted.example", NULL, NULL, "u@other.example",
	         ""},
	        {RESTRICT_RCPT, "192.0.2.9", "trusted.example.evil", NULL, NULL, "u@other.example",
	         "554 5.7.1 <u@other.example>: Relay access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@relay.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@x.relay.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@bad.relay.example",
	         "554 5.7.1 <u@bad.relay.example>: Relay access denied"},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@tab.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@deep.sub.tab.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@nottab.example",
	         "554 5.7.1 <u@nottab.example>: Relay access denied"},
	        /* mydestination from a table: local class, validated as local */
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "postmaster@local-tab.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "nobody@local-tab.example",
	         "550 5.1.1 <nobody@local-tab.example>: Recipient address rejected: User unknown "
	         "in "
	         "local recipient table"},
	};

	(void)state;
	fx_setup(&f);
	fx_file(&f, "trusted.cidr", "198.51.100.0/24 OK\n");
	fx_file(&f, "relaydoms", "tab.example x\n");
	fx_file(&f, "localdoms", "local-tab.example x\n");
	fx_file(&f, "localrcpt", "postmaster x\n");
	fx_start(&f, "mynetworks = !127.0.0.2 127.0.0.0/8 cidr:@DIR@/trusted.cidr "
	             ".trusted.example\n"
	             "relay_domains = !bad.relay.example relay.example texthash:@DIR@/relaydoms\n"
	             "mydestination = localhost texthash:@DIR@/localdoms\n"
	             "local_recipient_maps = texthash:@DIR@/localrcpt\n");
	RUN(&f, cases);
	fx_teardown(&f);
}

/* A table that cannot answer: 451 4.3.0, never 550 or a permit. */
static void test_lookup_failure(void **state)
{
	struct fx f;
	/* The alias table fails: a mailbox still makes the address valid
	 * (the table cache may answer it during an outage); an address found
	 * nowhere is the failure, never "User unknown". */
	static const struct rcase cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "nobody@vmail.example",
	         "451 4.3.0 <nobody@vmail.example>: Temporary lookup failure"},
	        {RESTRICT_RCPT, "127.0.0.1", NULL, NULL, NULL, "nobody@vmail.example",
	         "451 4.3.0 <nobody@vmail.example>: Temporary lookup failure"},
	};
	static const struct rcase access_cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@vmail.example",
	         "451 4.3.0 <u@vmail.example>: Temporary lookup failure"},
	};
	static const struct rcase domain_cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@other.example",
	         "451 4.3.0 <u@other.example>: Temporary lookup failure"},
	};
	static const struct rcase mysql_cases[] = {
	        {RESTRICT_RCPT, NULL, NULL, NULL, NULL, "u@vmail.example",
	         "451 4.3.0 <u@vmail.example>: Temporary lookup failure"},
	};

	(void)state;
	fx_setup(&f);
	fx_file(&f, "broken.cf",
	        "dbpath = @DIR@/no/such/dir/x.db\n"
	        "query = SELECT 'x' WHERE '%s' = 'x'\n");
	fx_file(&f, "down.cf",
	        "hosts = 127.0.0.1:1\nuser = u\npassword = p\ndbname = d\n"
	        "query = SELECT 'x' WHERE 'y' = '%s'\n"
	        "connect_timeout = 2\n");
	fx_start(&f, "virtual_alias_maps = sqlite:@DIR@/broken.cf\n");
	RUN(&f, cases);
	fx_stop(&f);

	fx_start(&f,
	         "smtpd_recipient_restrictions = check_recipient_access sqlite:@DIR@/broken.cf\n");
	RUN(&f, access_cases);
	fx_stop(&f);

	/* relay_domains as a table that fails: no "Relay access denied". */
	fx_start(&f, "relay_domains = sqlite:@DIR@/broken.cf\n");
	RUN(&f, domain_cases);
	fx_stop(&f);

#if HAVE_MYSQL
	fx_start(&f, "virtual_mailbox_maps = mysql:@DIR@/down.cf\n");
	RUN(&f, mysql_cases);
	fx_stop(&f);
#else
	(void)mysql_cases;
#endif
	test_rmtree(&f.dir);
}

/* ---- The open-relay battery ---- */

struct relay_form {
	const char *wire; /* what follows "RCPT TO:" */
	bool local_ok; /* for a mynetworks client: accepted (else refused as unknown) */
};

static const struct relay_form relay_forms[] = {
        {"<user@other.example>", true},
        {"<user%other.example@mx.example.com>", true},
        {"<user%other.example@localhost>", true},
        {"<user%other.example@[127.0.0.1]>", true},
        {"<other.example!user@mx.example.com>", true},
        {"<other.example!user@localhost>", true},
        {"<other.example!user>", true},
        {"<mx.example.com!other.example!user@mx.example.com>", true},
        {"<@mx.example.com:user@other.example>", true},
        {"<@mx.example.com,@localhost:user@other.example>", true},
        {"<@relay.example:user@other.example>", true},
        {"<\"user@other.example\"@mx.example.com>", true},
        {"<\"user%other.example\"@mx.example.com>", true},
        {"<\"other.example!user\"@mx.example.com>", true},
        {"<\"user@other.example\"@localhost>", true},
        {"<\"user@other.example\">", true},
        {"<user@other.example.>", true},
        {"<user%other.example.@mx.example.com.>", true},
        {"<USER%OTHER.EXAMPLE@MX.EXAMPLE.COM>", true},
        {"<user@[192.0.2.99]>", true},
        {"<user@[IPv6:2001:db8::99]>", true},
        {"<user%other.example@relay.example>", true},
        {"<other.example!user@relay.example>", true},
        {"<\"user@other.example\"@relay.example>", true},
        {"<\"user%other.example\"@vmail.example>", false},
        {"<user%other.example@vmail.example>", false},
        {"<user@other.example.mx.example.com>", true},
        {"<user@mx.example.com.other.example>", true},
        {"<user@relay.example.other.example>", true},
        {"<user%other.example%mx.example.com@mx.example.com>", true},
        {"<\"user@other.example\"@[127.0.0.1]>", true},
        {"<user@localhost@other.example>", true},
        {"<user@other.example@localhost>", true},
};

static void test_open_relay_battery(void **state)
{
	struct fx f;
	size_t refused_by_engine = 0;

	(void)state;
	fx_setup(&f);
	fx_start(&f, NULL);
	for (size_t i = 0; i < sizeof(relay_forms) / sizeof(relay_forms[0]); i++) {
		const char *wire = relay_forms[i].wire;
		struct mail_path *path = NULL;
		struct address_error aerr;
		str_t internal;
		struct restrict_request q;
		struct outcome o;

		if (address_parse_path(wire, strlen(wire), ADDRESS_RECIPIENT, ADDRESS_PARSE_SLOPPY,
		                       &path, &aerr) < 0)
			continue; /* refused by smtpd as a syntax error: also no relay */
		str_init(&internal);
		address_internal_string(&path->addr, &internal);
		default_request(&q);
		q.recipient = str_c(&internal);
		check(&f, RESTRICT_RCPT, &q, NULL, &o);
		if (o.verdict == RESTRICT_ACCEPT)
			fail_msg("RCPT TO:%s (internal <%s>) relayed for an untrusted client", wire,
			         str_c(&internal));
		if (o.verdict != RESTRICT_REJECT ||
		    strstr(str_c(&o.reply), ": Relay access denied") == NULL)
			fail_msg("RCPT TO:%s: expected Relay access denied, got \"%s\"", wire,
			         str_c(&o.reply));
		refused_by_engine++;
		str_free(&o.reply);

		/* The same form from a mynetworks client: relayed, or refused as
		 * an unknown local user, never "Relay access denied". */
		q.client_address = "127.0.0.1";
		check(&f, RESTRICT_RCPT, &q, NULL, &o);
		if (relay_forms[i].local_ok && o.verdict != RESTRICT_ACCEPT)
			fail_msg("RCPT TO:%s from 127.0.0.1: expected accept, got \"%s\"", wire,
			         str_c(&o.reply));
		if (!relay_forms[i].local_ok && (o.verdict != RESTRICT_REJECT ||
		                                 strstr(str_c(&o.reply), "User unknown") == NULL))
			fail_msg("RCPT TO:%s from 127.0.0.1: expected User unknown, got \"%s\"",
			         wire, str_c(&o.reply));
		str_free(&o.reply);
		str_free(&internal);
		mail_path_destroy(&path);
	}
	/* At least 25 forms reached the engine (the parser let them through). */
	if (refused_by_engine < 25)
		fail_msg("only %zu forms reached the relay check", refused_by_engine);
	fx_teardown(&f);
}

/* ---- reject_unknown_*_domain without DNS ----
 * The DNS answers themselves are tested against a real DNS server in
 * tests/system/test_smtpd_dns.py; here: what needs no lookup (the null
 * sender, address literals, domains this server is final destination
 * for) and the temporary-failure actions (an engine without a resolver
 * answers as for a DNS timeout). */

static void test_unknown_domain_no_dns(void **state)
{
	struct fx f;
	static const struct rcase dip[] = {
	        /* defer_if_permit: the request would be permitted: 450. */
	        {RESTRICT_RCPT, NULL, NULL, NULL, "s@nowhere.example", "u@vmail.example",
	         "450 4.1.8 <s@nowhere.example>: Sender address rejected: Domain not found"},
	        /* ... but a later reject wins. */
	        {RESTRICT_RCPT, NULL, NULL, NULL, "s@nowhere.example", "u@other.example",
	         "554 5.7.1 <u@other.example>: Relay access denied"},
	        /* No lookup: the null sender, a literal, final destinations. */
	        {RESTRICT_RCPT, NULL, NULL, NULL, "", "u@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, "s@[192.0.2.7]", "u@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, "v@vmail.example", "u@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, "x@valias.example", "u@vmail.example", ""},
	        {RESTRICT_RCPT, NULL, NULL, NULL, "root@mx.example.com", "u@vmail.example", ""},
	        /* The recipient check: relay_domains are not final: looked up. */
	        {RESTRICT_RCPT, "127.0.0.1", NULL, NULL, "", "u@relay.example",
	         "450 4.1.2 <u@relay.example>: Recipient address rejected: Domain not found"},
	        {RESTRICT_RCPT, "127.0.0.1", NULL, NULL, "", "u@vmail.example", ""},
	        /* Two deferrals: the first one is given. */
	        {RESTRICT_RCPT, "127.0.0.1", NULL, NULL, "s@nowhere.example", "u@relay.example",
	         "450 4.1.8 <s@nowhere.example>: Sender address rejected: Domain not found"},
	};
	static const struct rcase defer[] = {
	        /* unknown_address_tempfail_action = defer: at once. */
	        {RESTRICT_MAIL, NULL, NULL, NULL, "s@nowhere.example", NULL,
	         "450 4.1.8 <s@nowhere.example>: Sender address rejected: Domain not found"},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_sender_restrictions = reject_unknown_sender_domain\n"
	             "smtpd_recipient_restrictions = reject_unknown_recipient_domain\n"
	             "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
	             "smtpd_reject_unlisted_recipient = no\n");
	RUN(&f, dip);
	fx_stop(&f);
	fx_start(&f, "smtpd_sender_restrictions = reject_unknown_sender_domain\n"
	             "smtpd_delay_reject = no\n"
	             "reject_tempfail_action = defer\n");
	RUN(&f, defer);
	fx_teardown(&f);
}

/* ---- Configuration errors ---- */

static void test_config_errors(void **state)
{
	struct fx f;
	struct config *cfg = NULL;
	strv_t errors = STRV_INIT;
	struct restrict_engine *engine = NULL;
	str_t error;
	static const char text[] = "smtpd_recipient_restrictions = permit_mynetworks, "
	                           "reject_everything, check_recipient_access\n"
	                           "smtpd_sender_restrictions = reject_unknown_helo_hostname\n"
	                           "mynetworks = 10.0.0.1/8\n";

	(void)state;
	fx_setup(&f);
	assert_int_equal(config_parse_text(text, strlen(text), "main.cf", f.dir, &cfg, &errors), 0);
	restrict_config_check(cfg, &errors);
	assert_int_equal(errors.n, 4);
	assert_non_null(strstr(errors.v[0], "main.cf, line 2: smtpd_sender_restrictions"));
	assert_non_null(strstr(errors.v[0], "\"reject_unknown_helo_hostname\" is not supported"));
	assert_non_null(strstr(errors.v[1], "main.cf, line 1: smtpd_recipient_restrictions: "
	                                    "unknown restriction \"reject_everything\""));
	assert_non_null(strstr(errors.v[2], "\"check_recipient_access\" needs a type:table"));
	assert_non_null(strstr(errors.v[3], "main.cf, line 3: mynetworks: non-null host address "
	                                    "bits in \"10.0.0.1/8\""));
	str_init(&error);
	assert_int_equal(restrict_engine_new(cfg, NULL, &engine, &error), -1);
	assert_null(engine);
	assert_non_null(strstr(str_c(&error), "smtpd_"));
	str_free(&error);
	strv_free(&errors);
	config_destroy(&cfg);
	test_rmtree(&f.dir);
}

/* ---- Cancelling ---- */

static void test_cancel_before_answer(void **state)
{
	struct fx f;
	struct restrict_request q;
	struct outcome o = {0};
	struct restrict_pending *p;

	(void)state;
	fx_setup(&f);
	fx_start(&f, NULL);
	default_request(&q);
	q.recipient = "u@vmail.example";
	str_init(&o.reply);
	/* No lookup needed yet (CONNECT) and one needed (RCPT): both cancelled
	 * before the loop runs never call back. */
	p = restrict_check(f.sess, RESTRICT_CONNECT, &q, NULL, on_done, &o);
	restrict_cancel(&p);
	assert_null(p);
	p = restrict_check(f.sess, RESTRICT_RCPT, &q, NULL, on_done, &o);
	restrict_cancel(&p);
	restrict_cancel(&p); /* no-op on NULL */
	run_for(&f, 50);
	assert_int_equal(o.calls, 0);
	str_free(&o.reply);
	fx_teardown(&f);
}

#if HAVE_SQLITE
static void sql_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("sqlite: %s: %s", sql, err);
}

/* A check waiting on a database lookup in a worker is cancelled (the
 * session went away): no callback, no leak, no crash when the answer
 * arrives later; a check running alongside still gets its answer. */
static void test_cancel_mid_lookup(void **state)
{
	struct fx f;
	struct restrict_request q;
	struct outcome o = {0}, o2 = {0};
	struct restrict_pending *p;
	sqlite3 *db = NULL, *lock = NULL;
	char *dbpath;

	(void)state;
	fx_setup(&f);
	dbpath = xasprintf("%s/mail.db", f.dir);
	assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
	sql_exec(db, "CREATE TABLE mailboxes (address TEXT PRIMARY KEY, maildir TEXT)");
	sql_exec(db, "INSERT INTO mailboxes VALUES ('u@vmail.example', 'vmail.example/u/')");
	sqlite3_close(db);
	fx_file(&f, "mailboxes.cf",
	        "dbpath = @DIR@/mail.db\n"
	        "query = SELECT maildir FROM mailboxes WHERE address = '%s'\n"
	        "query_timeout = 3\n");
	fx_start(&f, "virtual_mailbox_maps = sqlite:@DIR@/mailboxes.cf\n"
	             "virtual_alias_maps =\n"
	             "table_cache_size = 0\n");
	/* Hold the write lock: the worker's lookup waits. */
	assert_int_equal(sqlite3_open(dbpath, &lock), SQLITE_OK);
	sql_exec(lock, "BEGIN EXCLUSIVE");

	default_request(&q);
	q.recipient = "u@vmail.example";
	str_init(&o.reply);
	p = restrict_check(f.sess, RESTRICT_RCPT, &q, NULL, on_done, &o);
	run_for(&f, 200);
	assert_int_equal(o.calls, 0); /* still waiting on the database */
	restrict_cancel(&p);
	assert_null(p);

	/* Another session's check goes on after the lock is released. */
	sql_exec(lock, "COMMIT");
	sqlite3_close(lock);
	check(&f, RESTRICT_RCPT, &q, NULL, &o2);
	assert_int_equal(o2.verdict, RESTRICT_ACCEPT);
	run_for(&f, 100);
	assert_int_equal(o.calls, 0);
	str_free(&o.reply);
	str_free(&o2.reply);
	free(dbpath);
	fx_teardown(&f);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recipient_validation),
		cmocka_unit_test(test_relay_codes_and_defer),
		cmocka_unit_test(test_generic_restrictions),
		cmocka_unit_test(test_delay_reject),
		cmocka_unit_test(test_ok_ends_only_its_list),
		cmocka_unit_test(test_helo_and_fqdn),
		cmocka_unit_test(test_access_actions),
		cmocka_unit_test(test_message_actions_and_warn),
		cmocka_unit_test(test_client_helo_sender_access),
		cmocka_unit_test(test_warn_if_reject),
		cmocka_unit_test(test_data_stages),
		cmocka_unit_test(test_lists_with_tables),
		cmocka_unit_test(test_lookup_failure),
		cmocka_unit_test(test_open_relay_battery),
		cmocka_unit_test(test_unknown_domain_no_dns),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_cancel_before_answer),
#if HAVE_SQLITE
		cmocka_unit_test(test_cancel_mid_lookup),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
