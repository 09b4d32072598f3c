/* test_sasl.c - lib/sasl: smtpd_sasl_type and the security options
 * refused with a message naming the parameter; the mechanism filter
 * with Postfix's semantics; the mechanisms offered with and without TLS;
 * PLAIN and LOGIN decoding at their edges (bounds, missing NULs, a
 * foreign authzid); and the postern backend against a real SQLite
 * database with the demo rows: an active mailbox authenticates (any case,
 * with smtpd_sasl_local_domain), a wrong password, an inactive mailbox,
 * a mailbox of an inactive domain and an unknown user do not, and a
 * database file that vanished is a temporary failure. The Cyrus and
 * Dovecot backends run against the real things in
 * tests/system/test_sasl_backends.py. */
#include "db_test.h"

#include "auth/password.h"
#include "sasl/sasl_private.h"

static struct config *config_for(const char *text)
{
	return test_db_config(text);
}

/* sasl_server_create on text; the error (or "") in a copy to free. */
static char *create_error(const char *text)
{
	struct config *cfg = config_for(text);
	struct sasl_server *srv = NULL;
	str_t error;
	int rc;
	char *copy;

	str_init(&error);
	rc = sasl_server_create(cfg, &srv, &error);
	if (rc == 0)
		assert_int_equal(error.len, 0);
	else
		assert_null(srv);
	sasl_server_free(&srv);
	config_destroy(&cfg);
	copy = str_steal(&error);
	str_free(&error); /* str_steal leaves a fresh empty buffer */
	return copy;
}

static void test_bad_settings(void **state)
{
	char *e;

	(void)state;
	e = create_error("smtpd_sasl_type = sasldb\n");
	assert_non_null(strstr(e, "smtpd_sasl_type"));
	assert_non_null(strstr(e, "\"sasldb\""));
	assert_non_null(strstr(e, "expected postern, cyrus, dovecot or ldap"));
	assert_non_null(strstr(e, "main.cf, line 1"));
	free(e);
	e = create_error("smtpd_sasl_security_options = noanonymous, noplain\n");
	assert_non_null(strstr(e, "bad value for smtpd_sasl_security_options: \"noplain\""));
	free(e);
	e = create_error("smtpd_sasl_tls_security_options = forward-secrecy\n");
	assert_non_null(strstr(e, "smtpd_sasl_tls_security_options"));
	free(e);
	/* Database settings are read at creation: a DSN that does not parse. */
	e = create_error("database = oracle://x/y\n");
	assert_true(strlen(e) > 0);
	free(e);
}

static void test_security_options(void **state)
{
	strv_t words = STRV_INIT;
	unsigned opts = 0;
	str_t error;

	(void)state;
	str_init(&error);
	strv_add(&words, "noanonymous");
	strv_add(&words, "NOPLAINTEXT");
	strv_add(&words, "noactive");
	strv_add(&words, "nodictionary");
	strv_add(&words, "mutual_auth");
	strv_add(&words, "forward_secrecy");
	assert_int_equal(sasl_security_parse("p", "here", &words, &opts, &error), 0);
	assert_int_equal(opts, SASL_OPT_NOANONYMOUS | SASL_OPT_NOPLAINTEXT | SASL_OPT_NOACTIVE |
	                               SASL_OPT_NODICTIONARY | SASL_OPT_MUTUAL_AUTH |
	                               SASL_OPT_FORWARD_SECRECY);
	strv_free(&words);
	assert_int_equal(sasl_security_parse("p", "here", &words, &opts, &error), 0);
	assert_int_equal(opts, 0);

	assert_true(sasl_security_allows(SASL_OPT_NOANONYMOUS, SASL_MECH_PLAINTEXT));
	assert_false(sasl_security_allows(SASL_OPT_NOANONYMOUS, SASL_MECH_ANONYMOUS));
	assert_false(sasl_security_allows(SASL_OPT_NOPLAINTEXT, SASL_MECH_PLAINTEXT));
	assert_false(sasl_security_allows(SASL_OPT_NODICTIONARY, SASL_MECH_DICTIONARY));
	assert_false(sasl_security_allows(SASL_OPT_NOACTIVE, SASL_MECH_ACTIVE));
	assert_false(sasl_security_allows(SASL_OPT_MUTUAL_AUTH, 0));
	assert_true(sasl_security_allows(SASL_OPT_MUTUAL_AUTH, SASL_MECH_MUTUAL_AUTH));
	assert_false(sasl_security_allows(SASL_OPT_FORWARD_SECRECY, SASL_MECH_DICTIONARY));
	assert_true(sasl_security_allows(SASL_OPT_FORWARD_SECRECY | SASL_OPT_NOPLAINTEXT,
	                                 SASL_MECH_PREFILTERED));
	str_free(&error);
}

/* The filter of a list value. */
static bool filter(const char *value, const char *mech)
{
	strv_t f = STRV_INIT;
	const char *why;
	bool ok;

	assert_int_equal(strv_split_list(&f, value, &why), 0);
	ok = sasl_filter_allows(&f, mech);
	strv_free(&f);
	return ok;
}

static void test_mechanism_filter(void **state)
{
	struct test_log tl;
	strv_t f = STRV_INIT;

	(void)state;
	/* Postfix's default. */
	assert_true(filter("!external, static:rest", "PLAIN"));
	assert_true(filter("!external, static:rest", "CRAM-MD5"));
	assert_false(filter("!external, static:rest", "EXTERNAL"));
	/* Names alone: only those, any case. */
	assert_true(filter("plain, login", "PLAIN"));
	assert_true(filter("plain, login", "LOGIN"));
	assert_false(filter("plain, login", "CRAM-MD5"));
	/* The first match decides. */
	assert_false(filter("!login, login, static:rest", "LOGIN"));
	assert_true(filter("login, !login", "LOGIN"));
	assert_false(filter("", "PLAIN"));
	/* Another table type: a warning, then static:rest. */
	test_log_start(&tl, false);
	strv_add(&f, "!gssapi");
	strv_add(&f, "hash:/etc/postfix/sasl_mechs");
	sasl_filter_check(&f);
	assert_non_null(test_log_find(&tl, "smtpd_sasl_mechanism_filter"));
	assert_non_null(test_log_find(&tl, "hash:/etc/postfix/sasl_mechs"));
	assert_true(sasl_filter_allows(&f, "PLAIN"));
	assert_false(sasl_filter_allows(&f, "GSSAPI"));
	strv_free(&f);
	strv_add(&f, "static:rest");
	{
		size_t before = tl.lines.n;

		sasl_filter_check(&f);
		assert_int_equal(tl.lines.n, before);
	}
	strv_free(&f);
	test_log_stop(&tl);
}

/* The mechanisms of the postern backend for main.cf text. */
static void mechs(const char *text, const char *plain, const char *tls)
{
	struct config *cfg = config_for(text);
	struct sasl_server *srv = NULL;
	str_t error;

	str_init(&error);
	if (sasl_server_create(cfg, &srv, &error) < 0)
		fail_msg("%s: %s", text, str_c(&error));
	assert_string_equal(sasl_server_mechanisms(srv, false), plain);
	assert_string_equal(sasl_server_mechanisms(srv, true), tls);
	sasl_server_free(&srv);
	assert_null(srv);
	sasl_server_free(&srv);
	config_destroy(&cfg);
	str_free(&error);
}

static void test_mechanisms(void **state)
{
	(void)state;
	mechs("", "PLAIN LOGIN", "PLAIN LOGIN");
	mechs("smtpd_sasl_security_options = noanonymous, noplaintext\n", "", "");
	mechs("smtpd_sasl_security_options = noanonymous, noplaintext\n"
	      "smtpd_sasl_tls_security_options = noanonymous\n",
	      "", "PLAIN LOGIN");
	mechs("smtpd_sasl_mechanism_filter = !login, static:rest\n", "PLAIN", "PLAIN");
	mechs("smtpd_sasl_mechanism_filter = login\n", "LOGIN", "LOGIN");
	/* nodictionary: PLAIN and LOGIN are plaintext, not dictionary
	 * mechanisms (Dovecot's flags). */
	mechs("smtpd_sasl_security_options = nodictionary\n", "PLAIN LOGIN", "PLAIN LOGIN");
	mechs("smtpd_sasl_security_options = mutual_auth\n", "", "");
}

static enum sasl_result plain(const char *data, size_t len, str_t *user, str_t *pw, str_t *why)
{
	str_reset(why);
	return sasl_plain_decode((const unsigned char *)data, len, user, pw, why);
}

static void test_plain_decode(void **state)
{
	char big[700];
	str_t user, pw, why;

	(void)state;
	str_init(&user);
	str_init(&pw);
	str_init(&why);
	assert_int_equal(plain("\0alice@example.com\0secret", 25, &user, &pw, &why), SASL_OK);
	assert_string_equal(str_c(&user), "alice@example.com");
	assert_string_equal(str_c(&pw), "secret");
	/* authzid = authcid is fine; another is not. */
	assert_int_equal(plain("a@b\0a@b\0pw", 10, &user, &pw, &why), SASL_OK);
	assert_int_equal(plain("root@b\0a@b\0pw", 13, &user, &pw, &why), SASL_FAIL);
	assert_string_equal(str_c(&why), "authorization failure");
	assert_int_equal(plain("a@c\0a@b\0pw", 10, &user, &pw, &why), SASL_FAIL);
	/* Missing NULs, one too many, empty pieces. */
	assert_int_equal(plain("", 0, &user, &pw, &why), SASL_BAD_MESSAGE);
	assert_int_equal(plain("alice", 5, &user, &pw, &why), SASL_BAD_MESSAGE);
	assert_int_equal(plain("\0alice", 6, &user, &pw, &why), SASL_BAD_MESSAGE);
	assert_non_null(strstr(str_c(&why), "malformed PLAIN response"));
	assert_int_equal(plain("\0alice\0pw\0x", 11, &user, &pw, &why), SASL_BAD_MESSAGE);
	assert_int_equal(plain("\0\0pw", 4, &user, &pw, &why), SASL_BAD_MESSAGE);
	assert_non_null(strstr(str_c(&why), "empty user name"));
	/* An empty password is a layout PLAIN allows (it then fails). */
	assert_int_equal(plain("\0alice\0", 7, &user, &pw, &why), SASL_OK);
	assert_int_equal(pw.len, 0);
	assert_int_equal(plain("\0al\tice\0pw", 10, &user, &pw, &why), SASL_BAD_MESSAGE);
	assert_non_null(strstr(str_c(&why), "control character"));
	/* Bounds: user name 255, authzid 255, password PASSWORD_MAX. */
	memset(big, 'a', sizeof(big));
	big[0] = '\0';
	big[256] = '\0';
	assert_int_equal(plain(big, 258, &user, &pw, &why), SASL_OK);
	assert_int_equal(user.len, 255);
	big[256] = 'a';
	big[257] = '\0';
	assert_int_equal(plain(big, 259, &user, &pw, &why), SASL_BAD_MESSAGE);
	assert_non_null(strstr(str_c(&why), "longer than 255"));
	memset(big, 'a', sizeof(big));
	big[256] = '\0'; /* authzid of 256 */
	big[258] = '\0';
	assert_int_equal(plain(big, 260, &user, &pw, &why), SASL_BAD_MESSAGE);
	memset(big, 'a', sizeof(big));
	big[0] = '\0';
	big[2] = '\0';
	assert_int_equal(plain(big, 3 + PASSWORD_MAX, &user, &pw, &why), SASL_OK);
	assert_int_equal(pw.len, PASSWORD_MAX);
	assert_int_equal(plain(big, 4 + PASSWORD_MAX, &user, &pw, &why), SASL_BAD_MESSAGE);
	assert_non_null(strstr(str_c(&why), "password longer than"));
	str_free(&user);
	sasl_str_wipe(&pw);
	str_free(&why);
}

static void test_login_steps(void **state)
{
	struct sasl_login l;
	str_t ch, why;

	(void)state;
	str_init(&ch);
	str_init(&why);
	sasl_login_init(&l);
	assert_int_equal(sasl_login_step(&l, NULL, 0, &ch, &why), SASL_CONTINUE);
	assert_string_equal(str_c(&ch), "Username:");
	str_reset(&ch);
	assert_int_equal(sasl_login_step(&l, (const unsigned char *)"bob", 3, &ch, &why),
	                 SASL_CONTINUE);
	assert_string_equal(str_c(&ch), "Password:");
	str_reset(&ch);
	assert_int_equal(sasl_login_step(&l, (const unsigned char *)"pw", 2, &ch, &why), SASL_OK);
	assert_string_equal(str_c(&l.user), "bob");
	assert_string_equal(str_c(&l.passwd), "pw");
	assert_int_equal(sasl_login_step(&l, (const unsigned char *)"x", 1, &ch, &why),
	                 SASL_BAD_MESSAGE);
	sasl_login_free(&l);

	/* An initial response is the user name. */
	sasl_login_init(&l);
	str_reset(&ch);
	assert_int_equal(sasl_login_step(&l, (const unsigned char *)"bob", 3, &ch, &why),
	                 SASL_CONTINUE);
	assert_string_equal(str_c(&ch), "Password:");
	assert_int_equal(sasl_login_step(&l, (const unsigned char *)"p\0w", 3, &ch, &why),
	                 SASL_BAD_MESSAGE);
	sasl_login_free(&l);

	/* An empty user name, one with a NUL. */
	sasl_login_init(&l);
	assert_int_equal(sasl_login_step(&l, (const unsigned char *)"", 0, &ch, &why),
	                 SASL_BAD_MESSAGE);
	sasl_login_free(&l);
	sasl_login_init(&l);
	assert_int_equal(sasl_login_step(&l, (const unsigned char *)"b\0b", 3, &ch, &why),
	                 SASL_BAD_MESSAGE);
	sasl_login_free(&l);
	str_free(&ch);
	str_free(&why);
}

/* ---- the postern backend on SQLite ---------------------------------------- */

struct fixture {
	struct test_db db;
	struct sasl_server *srv;
	struct test_log tl;
};

static int setup_db(void **state)
{
	struct fixture *fx = xcalloc(1, sizeof(*fx));
	str_t error;

	test_db_setup(&fx->db, true, true);
	/* bob's mailbox inactive, carol's domain inactive. */
	test_db_sql(&fx->db, "UPDATE mailboxes SET active = 0 WHERE address = 'bob@example.com'");
	test_db_sql(&fx->db, "UPDATE domains SET active = 0 WHERE name = 'example.net'");
	config_set(fx->db.cfg, "smtpd_sasl_local_domain", "example.com", "test");
	str_init(&error);
	if (sasl_server_create(fx->db.cfg, &fx->srv, &error) < 0)
		fail_msg("sasl_server_create: %s", str_c(&error));
	str_free(&error);
	test_log_start(&fx->tl, false);
	*state = fx;
	return 0;
}

static int teardown_db(void **state)
{
	struct fixture *fx = *state;

	test_log_stop(&fx->tl);
	sasl_server_free(&fx->srv);
	test_db_teardown(&fx->db);
	free(fx);
	return 0;
}

/* One PLAIN exchange with an initial response; reason copied to why. */
static enum sasl_result auth_plain(struct fixture *fx, const char *user, const char *pw,
                                   char **username_r, str_t *why)
{
	static const struct sasl_peer peer = {"192.0.2.1", 40000, "192.0.2.25", 25, false};
	struct sasl_session *sess = sasl_session_new(fx->srv, &peer);
	enum sasl_result r;
	str_t msg, ch;

	str_init(&msg);
	str_init(&ch);
	str_append_c(&msg, '\0');
	str_append(&msg, user);
	str_append_c(&msg, '\0');
	str_append(&msg, pw);
	str_reset(why);
	r = sasl_session_step(sess, "plain", (const unsigned char *)msg.buf, msg.len, &ch, why);
	if (username_r != NULL)
		*username_r = r == SASL_OK ? xstrdup(sasl_session_username(sess)) : NULL;
	if (r == SASL_OK)
		assert_string_equal(sasl_session_mechanism(sess), "PLAIN");
	sasl_session_free(&sess);
	assert_null(sess);
	str_free(&msg);
	str_free(&ch);
	return r;
}

static void test_postern_plain(void **state)
{
	struct fixture *fx = *state;
	char *name = NULL;
	str_t why;

	str_init(&why);
	assert_int_equal(auth_plain(fx, "alice@example.com", "demo", &name, &why), SASL_OK);
	assert_string_equal(name, "alice@example.com");
	free(name);
	/* Case folded; the local domain appended. */
	assert_int_equal(auth_plain(fx, "Alice@Example.COM", "demo", &name, &why), SASL_OK);
	assert_string_equal(name, "alice@example.com");
	free(name);
	assert_int_equal(auth_plain(fx, "ALICE", "demo", &name, &why), SASL_OK);
	assert_string_equal(name, "alice@example.com");
	free(name);

	assert_int_equal(auth_plain(fx, "alice@example.com", "Demo", NULL, &why), SASL_FAIL);
	assert_string_equal(str_c(&why), "authentication failure");
	assert_int_equal(auth_plain(fx, "alice@example.com", "", NULL, &why), SASL_FAIL);
	/* Inactive mailbox, inactive domain, unknown user: the same answer. */
	assert_int_equal(auth_plain(fx, "bob@example.com", "demo", NULL, &why), SASL_FAIL);
	assert_string_equal(str_c(&why), "authentication failure");
	assert_int_equal(auth_plain(fx, "carol@example.net", "demo", NULL, &why), SASL_FAIL);
	assert_string_equal(str_c(&why), "authentication failure");
	assert_int_equal(auth_plain(fx, "nobody@example.com", "demo", NULL, &why), SASL_FAIL);
	assert_string_equal(str_c(&why), "authentication failure");
	/* An SQL wildcard is not one. */
	assert_int_equal(auth_plain(fx, "%@example.com", "demo", NULL, &why), SASL_FAIL);
	/* Nothing was logged with a password in it. */
	for (size_t i = 0; i < fx->tl.lines.n; i++)
		assert_null(strstr(fx->tl.lines.v[i], "demo"));
	str_free(&why);
}

static void test_postern_login_and_steps(void **state)
{
	struct fixture *fx = *state;
	static const struct sasl_peer peer = {"::1", 1, "::1", 587, true};
	struct sasl_session *sess;
	str_t ch, why;

	str_init(&ch);
	str_init(&why);
	sess = sasl_session_new(fx->srv, &peer);
	assert_int_equal(sasl_session_step(sess, "LOGIN", NULL, 0, &ch, &why), SASL_CONTINUE);
	assert_string_equal(str_c(&ch), "Username:");
	str_reset(&ch);
	assert_int_equal(
	        sasl_session_step(sess, NULL, (const unsigned char *)"alice", 5, &ch, &why),
	        SASL_CONTINUE);
	assert_string_equal(str_c(&ch), "Password:");
	str_reset(&ch);
	assert_int_equal(sasl_session_step(sess, NULL, (const unsigned char *)"demo", 4, &ch, &why),
	                 SASL_OK);
	assert_string_equal(sasl_session_username(sess), "alice@example.com");
	assert_string_equal(sasl_session_mechanism(sess), "LOGIN");
	/* Finished: no more steps. */
	assert_int_equal(sasl_session_step(sess, NULL, (const unsigned char *)"x", 1, &ch, &why),
	                 SASL_BAD_MESSAGE);
	sasl_session_free(&sess);

	/* PLAIN without an initial response: an empty challenge first. */
	sess = sasl_session_new(fx->srv, &peer);
	str_reset(&ch);
	assert_int_equal(sasl_session_step(sess, "PLAIN", NULL, 0, &ch, &why), SASL_CONTINUE);
	assert_int_equal(ch.len, 0);
	assert_int_equal(sasl_session_step(sess, NULL, (const unsigned char *)"\0alice\0demo", 11,
	                                   &ch, &why),
	                 SASL_OK);
	sasl_session_free(&sess);

	/* Mechanisms not offered; an over-long response. */
	sess = sasl_session_new(fx->srv, &peer);
	str_reset(&why);
	assert_int_equal(sasl_session_step(sess, "CRAM-MD5", NULL, 0, &ch, &why), SASL_BAD_MECH);
	assert_string_equal(str_c(&why), "unsupported authentication mechanism");
	sasl_session_free(&sess);
	sess = sasl_session_new(fx->srv, &peer);
	{
		unsigned char *big = xcalloc(SASL_MESSAGE_MAX + 1, 1);

		assert_int_equal(
		        sasl_session_step(sess, "PLAIN", big, SASL_MESSAGE_MAX + 1, &ch, &why),
		        SASL_BAD_MESSAGE);
		free(big);
	}
	sasl_session_free(&sess);
	/* Freed before any step. */
	sess = sasl_session_new(fx->srv, &peer);
	sasl_session_free(&sess);
	str_free(&ch);
	str_free(&why);
}

static void test_postern_tempfail(void **state)
{
	struct fixture *fx = *state;
	char *moved = xasprintf("%s.moved", fx->db.db_path);
	str_t why;

	str_init(&why);
	assert_int_equal(auth_plain(fx, "alice@example.com", "demo", NULL, &why), SASL_OK);
	assert_int_equal(rename(fx->db.db_path, moved), 0);
	assert_int_equal(auth_plain(fx, "alice@example.com", "demo", NULL, &why), SASL_TEMPFAIL);
	assert_string_equal(str_c(&why), "user database unavailable");
	assert_non_null(test_log_find(&fx->tl, "does not exist"));
	assert_int_equal(auth_plain(fx, "nobody@example.com", "x", NULL, &why), SASL_TEMPFAIL);
	/* Back: it works again. */
	assert_int_equal(rename(moved, fx->db.db_path), 0);
	assert_int_equal(auth_plain(fx, "alice@example.com", "demo", NULL, &why), SASL_OK);
	free(moved);
	str_free(&why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bad_settings),
	        cmocka_unit_test(test_security_options),
	        cmocka_unit_test(test_mechanism_filter),
	        cmocka_unit_test(test_mechanisms),
	        cmocka_unit_test(test_plain_decode),
	        cmocka_unit_test(test_login_steps),
	        cmocka_unit_test_setup_teardown(test_postern_plain, setup_db, teardown_db),
	        cmocka_unit_test_setup_teardown(test_postern_login_and_steps, setup_db,
	                                        teardown_db),
	        cmocka_unit_test_setup_teardown(test_postern_tempfail, setup_db, teardown_db),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
