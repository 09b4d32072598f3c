/* test_restrict_login.c - unit tests for lib/smtp/restrict_auth.c and
 * check_ccert_access: the four *_sender_login_mismatch restrictions with
 * smtpd_sender_login_maps (owner, alias owners, case, extensions,
 * @domain, the null sender, "not owned" and "not logged in", a table
 * that cannot answer: 451 4.3.0, never 553), permit_tls_clientcerts,
 * permit_tls_all_clientcerts and check_ccert_access, and the startup
 * error of a login restriction without smtpd_sender_login_maps. Each
 * expected reply is Postfix 3.7's (smtpd_check.c).
 *
 * Every request is made of strings that are overwritten and freed as
 * soon as restrict_check() returns: the engine must have copied what it
 * keeps while its lookups run (run under ASan with `make unit
 * SANITIZE=1` to see a miss as a use after free).
 *
 * Real tables only (texthash: and sqlite: files in a private temporary
 * directory) through a real table_async pool on a real libevent loop.
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
#include "conf/config.h"
#include "smtp/restrict.h"
#include "table/table_async.h"
#include "restrict_test.h"
#include "table_test.h"

/* Certificate fingerprints as smtpd prints them. */
#define FP_LISTED "AA:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"
#define FP_OTHER "BB:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01"
#define PK_LISTED "CC:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00"
#define PK_OTHER "DD:00:00:00:00:00:00:00:00:00:00:00:00:00:00:02"
#define FP_REJECT "EE:00:00:00:00:00:00:00:00:00:00:00:00:00:00:03"
#define FP_TEXT "EE:00:00:00:00:00:00:00:00:00:00:00:00:00:00:04"

/* ---- Fixture: a main.cf, a pool, an engine, one session ---- */

static const char base_cf[] = "myhostname = mx.example.com\n"
                              "mydomain = example.com\n"
                              "mydestination = $myhostname, localhost\n"
                              "inet_interfaces = loopback-only\n"
                              "mynetworks = 127.0.0.0/8\n"
                              "relay_domains = relay.example\n"
                              "recipient_delimiter = +\n"
                              "smtpd_sasl_auth_enable = yes\n"
                              "smtpd_sender_login_maps = texthash:@DIR@/logins\n"
                              "relay_clientcerts = texthash:@DIR@/ccerts\n"
                              "smtpd_relay_restrictions = permit_mynetworks, "
                              "reject_unauth_destination\n";

static void fx_setup(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->dir = test_tmpdir();
	/* Logins are mailbox addresses: a mailbox owns itself, an alias is
	 * owned by the mailboxes it points to (db:sender_login's answers). */
	fx_file(f, "logins",
	        "alice@example.com alice@example.com\n"
	        "bob@example.com bob@example.com\n"
	        "sales@example.com bob@example.com,alice@example.com\n"
	        "team@example.com bob@example.com   carol@example.com\n"
	        "@catchall.example carol@example.com\n");
	fx_file(f, "ccerts", FP_LISTED " client-a\n" PK_LISTED " client-b\n");
	fx_file(f, "ccert_access",
	        FP_REJECT " REJECT\n" FP_TEXT " 550 5.7.0 revoked\n" FP_LISTED " DUNNO\n" PK_LISTED
	                  " OK\n");
	fx_file(f, "broken.cf",
	        "dbpath = @DIR@/no/such/dir/x.db\n"
	        "query = SELECT 'x' WHERE '%s' = 'x'\n");
}

static void fx_start(struct fx *f, const char *extra)
{
	fx_start_cf(f, base_cf, extra);
}

/* ---- Running one check ---- */

/* One case: what the client proved and what it sent; "" expects ACCEPT. */
struct acase {
	enum restrict_stage stage;
	const char *sender; /* "" for <> */
	const char *login; /* SASL login, NULL: not authenticated */
	const char *auth_param; /* MAIL FROM's AUTH= (must change nothing) */
	const char *fp, *pk; /* certificate and public key fingerprints */
	bool verified;
	const char *rcpt;
	const char *expect;
};

/* A copy that is scribbled over and freed once restrict_check returns. */
static char *volatile_dup(strv_t *keep, const char *s)
{
	if (s == NULL)
		return NULL;
	strv_add(keep, s);
	return keep->v[keep->n - 1];
}

static void scribble(strv_t *keep)
{
	for (size_t i = 0; i < keep->n; i++)
		memset(keep->v[i], 'X', strlen(keep->v[i]));
	strv_free(keep);
}

static void run_case(struct fx *f, const struct acase *c, size_t i)
{
	struct restrict_request q;
	struct outcome o = {0};
	strv_t keep = STRV_INIT;
	enum restrict_verdict want;
	struct restrict_pending *p;

	memset(&q, 0, sizeof(q));
	q.client_address = "192.0.2.1";
	q.client_name = "unknown";
	q.reverse_client_name = "unknown";
	q.helo_name = "client.example.net";
	q.protocol = "ESMTP";
	q.sender = volatile_dup(&keep, c->sender);
	q.recipient = volatile_dup(&keep, c->rcpt);
	q.sasl_username = volatile_dup(&keep, c->login);
	q.sasl_method = c->login != NULL ? "PLAIN" : NULL;
	q.sasl_sender = volatile_dup(&keep, c->auth_param);
	q.tls = c->fp != NULL;
	q.ccert_fingerprint = volatile_dup(&keep, c->fp);
	q.ccert_pubkey_fingerprint = volatile_dup(&keep, c->pk);
	q.ccert_subject = c->fp != NULL ? volatile_dup(&keep, "client.cn.example") : NULL;
	q.ccert_issuer = c->fp != NULL ? volatile_dup(&keep, "Test CA") : NULL;
	q.ccert_verified = c->verified;
	str_init(&o.reply);
	p = restrict_check(f->sess, c->stage, &q, NULL, on_done, &o);
	assert_non_null(p);
	assert_int_equal(o.calls, 0);
	scribble(&keep);
	run_until(f, &o.calls);
	assert_int_equal(o.calls, 1);
	want = c->expect[0] == '\0'  ? RESTRICT_ACCEPT
	       : c->expect[0] == '5' ? RESTRICT_REJECT
	                             : RESTRICT_DEFER;
	if (o.verdict != want || strcmp(str_c(&o.reply), c->expect) != 0)
		fail_msg("case %zu (sender <%s> login %s fp %s rcpt <%s>): expected \"%s\", got "
		         "verdict %d \"%s\"",
		         i, c->sender != NULL ? c->sender : "(none)",
		         c->login != NULL ? c->login : "(none)", c->fp != NULL ? c->fp : "(none)",
		         c->rcpt != NULL ? c->rcpt : "", c->expect, (int)o.verdict,
		         str_c(&o.reply));
	str_free(&o.reply);
}

static void run_cases(struct fx *f, const struct acase *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		run_case(f, &cases[i], i);
}

#define RUN(f, cases) run_cases(f, cases, sizeof(cases) / sizeof(cases[0]))

#define ALICE "alice@example.com"
#define BOB "bob@example.com"
#define CAROL "carol@example.com"
#define NOT_OWNED(s, l) "553 5.7.1 <" s ">: Sender address rejected: not owned by user " l
#define NOT_LOGGED_IN(s) "553 5.7.1 <" s ">: Sender address rejected: not logged in"

/* ---- Sender login ---- */

static void test_login_mismatch(void **state)
{
	struct fx f;
	static const struct acase cases[] = {
	        /* The owner, compared without regard to case. */
	        {RESTRICT_MAIL, ALICE, ALICE, NULL, NULL, NULL, false, NULL, ""},
	        {RESTRICT_MAIL, ALICE, "Alice@EXAMPLE.com", NULL, NULL, NULL, false, NULL, ""},
	        {RESTRICT_MAIL, "ALICE@Example.COM", ALICE, NULL, NULL, NULL, false, NULL, ""},
	        /* An alias: every login listed (commas or white space). */
	        {RESTRICT_MAIL, "sales@example.com", ALICE, NULL, NULL, NULL, false, NULL, ""},
	        {RESTRICT_MAIL, "sales@example.com", BOB, NULL, NULL, NULL, false, NULL, ""},
	        {RESTRICT_MAIL, "team@example.com", CAROL, NULL, NULL, NULL, false, NULL, ""},
	        {RESTRICT_MAIL, "team@example.com", ALICE, NULL, NULL, NULL, false, NULL,
	         NOT_OWNED("team@example.com", ALICE)},
	        /* user+ext@domain falls back to user@domain, then @domain. */
	        {RESTRICT_MAIL, "alice+lists@example.com", ALICE, NULL, NULL, NULL, false, NULL,
	         ""},
	        {RESTRICT_MAIL, "anyone@catchall.example", CAROL, NULL, NULL, NULL, false, NULL,
	         ""},
	        {RESTRICT_MAIL, "anyone@catchall.example", ALICE, NULL, NULL, NULL, false, NULL,
	         NOT_OWNED("anyone@catchall.example", ALICE)},
	        /* Not owned; unknown to the map (reject_sender_login_mismatch
	         * forbids unknown senders to a logged-in client). */
	        {RESTRICT_MAIL, BOB, ALICE, NULL, NULL, NULL, false, NULL, NOT_OWNED(BOB, ALICE)},
	        {RESTRICT_MAIL, "x@other.example", ALICE, NULL, NULL, NULL, false, NULL,
	         NOT_OWNED("x@other.example", ALICE)},
	        /* A login that is no address at all. */
	        {RESTRICT_MAIL, ALICE, "alice", NULL, NULL, NULL, false, NULL,
	         NOT_OWNED(ALICE, "alice")},
	        /* AUTH= plays no part (Postfix ignores it for these checks). */
	        {RESTRICT_MAIL, BOB, ALICE, BOB, NULL, NULL, false, NULL, NOT_OWNED(BOB, ALICE)},
	        {RESTRICT_MAIL, ALICE, ALICE, "<>", NULL, NULL, false, NULL, ""},
	        /* Not logged in: an owned sender is refused, others pass. */
	        {RESTRICT_MAIL, ALICE, NULL, NULL, NULL, NULL, false, NULL, NOT_LOGGED_IN(ALICE)},
	        {RESTRICT_MAIL, "sales@example.com", NULL, NULL, NULL, NULL, false, NULL,
	         NOT_LOGGED_IN("sales@example.com")},
	        {RESTRICT_MAIL, "x@other.example", NULL, NULL, NULL, NULL, false, NULL, ""},
	        /* The null sender is never checked. */
	        {RESTRICT_MAIL, "", ALICE, NULL, NULL, NULL, false, NULL, ""},
	        {RESTRICT_MAIL, "", NULL, NULL, NULL, NULL, false, NULL, ""},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_delay_reject = no\n"
	             "smtpd_sender_restrictions = reject_sender_login_mismatch\n");
	RUN(&f, cases);
	fx_stop(&f);
	test_rmtree(&f.dir);
}

static void test_login_variants(void **state)
{
	struct fx f;
	/* At RCPT in smtpd_recipient_restrictions (and, with delay, in the
	 * sender list): the same check wherever Postfix allows it. */
	static const struct acase authenticated[] = {
	        {RESTRICT_RCPT, ALICE, ALICE, NULL, NULL, NULL, false, "u@relay.example", ""},
	        {RESTRICT_RCPT, BOB, ALICE, NULL, NULL, NULL, false, "u@relay.example",
	         NOT_OWNED(BOB, ALICE)},
	        {RESTRICT_RCPT, "x@other.example", ALICE, NULL, NULL, NULL, false,
	         "u@relay.example", NOT_OWNED("x@other.example", ALICE)},
	        /* Only logged-in clients are checked. */
	        {RESTRICT_RCPT, ALICE, NULL, NULL, NULL, NULL, false, "u@relay.example", ""},
	};
	static const struct acase unauthenticated[] = {
	        {RESTRICT_RCPT, ALICE, NULL, NULL, NULL, NULL, false, "u@relay.example",
	         NOT_LOGGED_IN(ALICE)},
	        {RESTRICT_RCPT, "x@other.example", NULL, NULL, NULL, NULL, false, "u@relay.example",
	         ""},
	        /* Only clients that did not log in are checked. */
	        {RESTRICT_RCPT, BOB, ALICE, NULL, NULL, NULL, false, "u@relay.example", ""},
	        {RESTRICT_RCPT, "", NULL, NULL, NULL, NULL, false, "u@relay.example", ""},
	};
	static const struct acase known[] = {
	        {RESTRICT_RCPT, ALICE, ALICE, NULL, NULL, NULL, false, "u@relay.example", ""},
	        /* A logged-in client may use an address nobody owns. */
	        {RESTRICT_RCPT, "x@other.example", ALICE, NULL, NULL, NULL, false,
	         "u@relay.example", ""},
	        {RESTRICT_RCPT, BOB, ALICE, NULL, NULL, NULL, false, "u@relay.example",
	         NOT_OWNED(BOB, ALICE)},
	        {RESTRICT_RCPT, BOB, NULL, NULL, NULL, NULL, false, "u@relay.example",
	         NOT_LOGGED_IN(BOB)},
	        {RESTRICT_RCPT, "x@other.example", NULL, NULL, NULL, NULL, false, "u@relay.example",
	         ""},
	        {RESTRICT_RCPT, "", ALICE, NULL, NULL, NULL, false, "u@relay.example", ""},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_recipient_restrictions = "
	             "reject_authenticated_sender_login_mismatch\n");
	RUN(&f, authenticated);
	fx_stop(&f);
	fx_start(&f, "smtpd_sender_restrictions = "
	             "reject_unauthenticated_sender_login_mismatch\n");
	RUN(&f, unauthenticated);
	fx_stop(&f);
	fx_start(&f, "smtpd_relay_restrictions = reject_known_sender_login_mismatch, "
	             "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\n");
	RUN(&f, known);
	fx_stop(&f);
	/* As a restriction named by an access table's answer. */
	fx_file(&f, "sender_access", "example.com reject_sender_login_mismatch\n");
	fx_start(&f, "smtpd_delay_reject = no\n"
	             "smtpd_sender_restrictions = check_sender_access "
	             "texthash:@DIR@/sender_access\n");
	{
		static const struct acase nested[] = {
		        {RESTRICT_MAIL, BOB, ALICE, NULL, NULL, NULL, false, NULL,
		         NOT_OWNED(BOB, ALICE)},
		        {RESTRICT_MAIL, ALICE, ALICE, NULL, NULL, NULL, false, NULL, ""},
		        {RESTRICT_MAIL, "x@other.example", ALICE, NULL, NULL, NULL, false, NULL,
		         ""},
		};

		RUN(&f, nested);
	}
	fx_stop(&f);
	test_rmtree(&f.dir);
}

static void test_login_sasl_disabled(void **state)
{
	struct fx f;
	struct test_log tl;
	/* Postfix: "restriction `...' ignored: no SASL support". */
	static const struct acase cases[] = {
	        {RESTRICT_MAIL, ALICE, NULL, NULL, NULL, NULL, false, NULL, ""},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_sasl_auth_enable = no\n"
	             "smtpd_delay_reject = no\n"
	             "smtpd_sender_restrictions = reject_sender_login_mismatch\n");
	test_log_start(&tl, false);
	RUN(&f, cases);
	assert_non_null(test_log_find(
	        &tl, "restriction `reject_sender_login_mismatch' ignored: no SASL support"));
	test_log_stop(&tl);
	fx_stop(&f);
	test_rmtree(&f.dir);
}

#if HAVE_SQLITE
static void test_login_tempfail(void **state)
{
	struct fx f;
	/* The map cannot answer: 451, never "not owned" or "not logged in". */
	static const struct acase cases[] = {
	        {RESTRICT_MAIL, ALICE, ALICE, NULL, NULL, NULL, false, NULL,
	         "451 4.3.0 <alice@example.com>: Temporary lookup failure"},
	        {RESTRICT_MAIL, ALICE, NULL, NULL, NULL, NULL, false, NULL,
	         "451 4.3.0 <alice@example.com>: Temporary lookup failure"},
	        {RESTRICT_MAIL, "", NULL, NULL, NULL, NULL, false, NULL, ""},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_delay_reject = no\n"
	             "smtpd_sender_login_maps = sqlite:@DIR@/broken.cf\n"
	             "smtpd_sender_restrictions = reject_known_sender_login_mismatch\n");
	RUN(&f, cases);
	fx_stop(&f);
	fx_start(&f, "smtpd_delay_reject = no\n"
	             "smtpd_sender_login_maps = sqlite:@DIR@/broken.cf\n"
	             "smtpd_sender_restrictions = reject_sender_login_mismatch\n");
	RUN(&f, cases);
	fx_stop(&f);
	test_rmtree(&f.dir);
}
#endif

static void test_login_config_errors(void **state)
{
	struct fx f;
	static const struct {
		const char *text;
		const char *engine_error; /* NULL: the engine builds */
		const char *check_error; /* restrict_config_check's, or NULL */
	} cases[] = {
	        {"smtpd_sender_login_maps =\n"
	         "smtpd_recipient_restrictions = reject_sender_login_mismatch\n",
	         "smtpd_sender_login_maps: is empty, but smtpd_recipient_restrictions uses",
	         "main.cf, line 1: smtpd_sender_login_maps: is empty"},
	        {"smtpd_sender_login_maps =\n"
	         "smtpd_sender_restrictions = permit_mynetworks, "
	         "reject_unauthenticated_sender_login_mismatch\n",
	         "smtpd_sender_login_maps: is empty, but smtpd_sender_restrictions uses",
	         "main.cf, line 1: smtpd_sender_login_maps: is empty"},
	        {"smtpd_sender_login_maps = nosuchtype:/x\n"
	         "smtpd_sender_restrictions = reject_known_sender_login_mismatch\n",
	         "smtpd_sender_login_maps: \"nosuchtype:/x\" is not a type:table",
	         "main.cf, line 1: smtpd_sender_login_maps: \"nosuchtype:/x\""},
	        /* The default (db:sender_login) is usable; an empty map that
	         * no restriction uses is no error. */
	        {"smtpd_sender_restrictions = reject_authenticated_sender_login_mismatch\n", NULL,
	         NULL},
	        {"smtpd_sender_login_maps =\n", NULL, NULL},
	        {"smtpd_relay_restrictions = permit_tls_clientcerts, "
	         "permit_tls_all_clientcerts, check_ccert_access texthash:/x, "
	         "reject_unauth_destination\n",
	         NULL, NULL},
	        {"smtpd_client_restrictions = check_ccert_access\n",
	         "\"check_ccert_access\" needs a type:table argument",
	         "main.cf, line 1: smtpd_client_restrictions: restriction \"check_ccert_access\""},
	};

	(void)state;
	fx_setup(&f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *cfg = NULL;
		strv_t errors = STRV_INIT;
		struct restrict_engine *engine = NULL;
		str_t error;
		int rc;

		if (config_parse_text(cases[i].text, strlen(cases[i].text), "main.cf", f.dir, &cfg,
		                      &errors) < 0)
			fail_msg("case %zu: main.cf: %s", i, errors.v[0]);
		restrict_config_check(cfg, &errors);
		if (cases[i].check_error == NULL) {
			if (errors.n != 0)
				fail_msg("case %zu: unexpected \"%s\"", i, errors.v[0]);
		} else if (errors.n != 1 || strstr(errors.v[0], cases[i].check_error) == NULL) {
			fail_msg("case %zu: expected one error \"%s\", got %zu: \"%s\"", i,
			         cases[i].check_error, errors.n, errors.n > 0 ? errors.v[0] : "");
		}
		str_init(&error);
		rc = restrict_engine_new(cfg, NULL, &engine, &error);
		if (cases[i].engine_error == NULL) {
			if (rc != 0)
				fail_msg("case %zu: restrict_engine_new: %s", i, str_c(&error));
			restrict_engine_destroy(&engine);
		} else if (rc != -1 || engine != NULL ||
		           strstr(str_c(&error), cases[i].engine_error) == NULL) {
			fail_msg("case %zu: expected \"%s\", got %d \"%s\"", i,
			         cases[i].engine_error, rc, str_c(&error));
		}
		str_free(&error);
		strv_free(&errors);
		config_destroy(&cfg);
	}
	test_rmtree(&f.dir);
}

/* ---- TLS client certificates ---- */

static void test_permit_tls_clientcerts(void **state)
{
	struct fx f;
	static const char relay[] = "554 5.7.1 <u@other.example>: Relay access denied";
	static const struct acase listed[] = {
	        {RESTRICT_RCPT, ALICE, NULL, NULL, FP_LISTED, PK_OTHER, true, "u@other.example",
	         ""},
	        /* The fingerprint pins the key: no CA needs to vouch for it. */
	        {RESTRICT_RCPT, ALICE, NULL, NULL, FP_LISTED, PK_OTHER, false, "u@other.example",
	         ""},
	        /* The public key fingerprint, when the certificate's is not. */
	        {RESTRICT_RCPT, ALICE, NULL, NULL, FP_OTHER, PK_LISTED, false, "u@other.example",
	         ""},
	        {RESTRICT_RCPT, ALICE, NULL, NULL, FP_OTHER, PK_OTHER, true, "u@other.example",
	         relay},
	        {RESTRICT_RCPT, ALICE, NULL, NULL, FP_OTHER, NULL, true, "u@other.example", relay},
	        {RESTRICT_RCPT, ALICE, NULL, NULL, NULL, NULL, false, "u@other.example", relay},
	        /* A lower-case fingerprint is the same key. */
	        {RESTRICT_RCPT, ALICE, NULL, NULL,
	         "aa:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff", NULL, true, "u@other.example",
	         ""},
	};
	static const struct acase all[] = {
	        {RESTRICT_RCPT, ALICE, NULL, NULL, FP_OTHER, PK_OTHER, true, "u@other.example", ""},
	        {RESTRICT_RCPT, ALICE, NULL, NULL, FP_OTHER, PK_OTHER, false, "u@other.example",
	         relay},
	        /* Postfix: an unverified certificate still passes when
	         * relay_clientcerts lists it. */
	        {RESTRICT_RCPT, ALICE, NULL, NULL, FP_LISTED, PK_OTHER, false, "u@other.example",
	         ""},
	        {RESTRICT_RCPT, ALICE, NULL, NULL, NULL, NULL, false, "u@other.example", relay},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_relay_restrictions = permit_tls_clientcerts, "
	             "reject_unauth_destination\n");
	RUN(&f, listed);
	fx_stop(&f);
	fx_start(&f, "smtpd_relay_restrictions = permit_tls_all_clientcerts, "
	             "reject_unauth_destination\n");
	RUN(&f, all);
	fx_stop(&f);
	/* An empty relay_clientcerts permits nobody. */
	fx_start(&f, "relay_clientcerts =\n"
	             "smtpd_relay_restrictions = permit_tls_clientcerts, "
	             "reject_unauth_destination\n");
	{
		static const struct acase empty[] = {
		        {RESTRICT_RCPT, ALICE, NULL, NULL, FP_LISTED, PK_LISTED, true,
		         "u@other.example", relay},
		};

		RUN(&f, empty);
	}
	fx_stop(&f);
	test_rmtree(&f.dir);
}

static void test_check_ccert_access(void **state)
{
	struct fx f;
	static const struct acase cases[] = {
	        {RESTRICT_CONNECT, NULL, NULL, NULL, FP_REJECT, PK_OTHER, true, NULL,
	         "554 5.7.1 <client.cn.example>: Client certificate rejected: Access denied"},
	        /* Verified or not: the fingerprint decides. */
	        {RESTRICT_CONNECT, NULL, NULL, NULL, FP_REJECT, PK_OTHER, false, NULL,
	         "554 5.7.1 <client.cn.example>: Client certificate rejected: Access denied"},
	        {RESTRICT_CONNECT, NULL, NULL, NULL, FP_TEXT, NULL, true, NULL,
	         "550 5.7.0 <client.cn.example>: Client certificate rejected: revoked"},
	        /* DUNNO for the certificate: the public key is looked up next. */
	        {RESTRICT_CONNECT, NULL, NULL, NULL, FP_LISTED, PK_LISTED, true, NULL, ""},
	        {RESTRICT_CONNECT, NULL, NULL, NULL, FP_OTHER, PK_LISTED, true, NULL, ""},
	        /* Unknown, or no certificate: the next restriction (reject). */
	        {RESTRICT_CONNECT, NULL, NULL, NULL, FP_OTHER, PK_OTHER, true, NULL,
	         "554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied"},
	        {RESTRICT_CONNECT, NULL, NULL, NULL, FP_LISTED, NULL, true, NULL,
	         "554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied"},
	        {RESTRICT_CONNECT, NULL, NULL, NULL, NULL, NULL, false, NULL,
	         "554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied"},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, "smtpd_delay_reject = no\n"
	             "smtpd_client_restrictions = check_ccert_access "
	             "texthash:@DIR@/ccert_access, reject\n");
	RUN(&f, cases);
	fx_stop(&f);
	test_rmtree(&f.dir);
}

#if HAVE_SQLITE
static void test_ccert_tempfail(void **state)
{
	struct fx f;
	static const struct acase relay[] = {
	        {RESTRICT_RCPT, ALICE, NULL, NULL, FP_LISTED, PK_LISTED, true, "u@other.example",
	         "451 4.3.0 <u@other.example>: Temporary lookup failure"},
	        /* No certificate: nothing to look up, the next restriction. */
	        {RESTRICT_RCPT, ALICE, NULL, NULL, NULL, NULL, false, "u@other.example",
	         "554 5.7.1 <u@other.example>: Relay access denied"},
	};
	static const struct acase access[] = {
	        {RESTRICT_CONNECT, NULL, NULL, NULL, FP_LISTED, PK_LISTED, true, NULL,
	         "451 4.3.0 <client.cn.example>: Temporary lookup failure"},
	};

	(void)state;
	fx_setup(&f);
	fx_start(&f, "relay_clientcerts = sqlite:@DIR@/broken.cf\n"
	             "smtpd_relay_restrictions = permit_tls_clientcerts, "
	             "reject_unauth_destination\n");
	RUN(&f, relay);
	fx_stop(&f);
	fx_start(&f, "smtpd_delay_reject = no\n"
	             "smtpd_client_restrictions = check_ccert_access "
	             "sqlite:@DIR@/broken.cf\n");
	RUN(&f, access);
	fx_stop(&f);
	test_rmtree(&f.dir);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_mismatch),
		cmocka_unit_test(test_login_variants),
		cmocka_unit_test(test_login_sasl_disabled),
#if HAVE_SQLITE
		cmocka_unit_test(test_login_tempfail),
#endif
		cmocka_unit_test(test_login_config_errors),
		cmocka_unit_test(test_permit_tls_clientcerts),
		cmocka_unit_test(test_check_ccert_access),
#if HAVE_SQLITE
		cmocka_unit_test(test_ccert_tempfail),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
