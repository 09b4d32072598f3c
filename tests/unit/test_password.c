/* test_password.c - lib/auth/password: hashes made by Dovecot's `doveadm
 * pw` (pasted below as data) verify here, in every scheme postern reads;
 * hashes postern makes have Dovecot's encoded form and verify here (the
 * system test tests/system/test_db_cli.py has doveadm verify them too);
 * wrong passwords, plaintext without password_allow_plaintext, unknown
 * schemes, missing prefixes and malformed or oversized hashes are
 * refused, the last three with a logged reason; the password_scheme and
 * password_allow_plaintext parameters. */
#include "table_test.h"

#include "conf/config.h"
#include "auth/password.h"

/* Made with `doveadm pw -s SCHEME -p secret` (Dovecot 2.3), and for the
 * DES {CRYPT} with perl's crypt("secret", "ab"), which doveadm verifies. */
static const char *const dovecot_secret[] = {
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$ATrQJCdKPqFR0y5i4x5xLA$"
        "jxth4E+U6XrzpZL3S5eV5np8jlRqP9J3iha1U1DTI7o",
        "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$xVJl2DiMqEbK0Qcdzl2I7w$"
        "pS07P6855vIWPuhXzJLUcXVwVsYwQ4kEbtDu9Go1fI8",
        "{BLF-CRYPT}$2y$05$iVCZkc4iazvKT3SgaEqwZu2fCNb4ZXw4nrn.v8e4B62LzHUO.SWg6",
        "{SHA512-CRYPT}$6$5wVTIopJrbQ/fiRK$8LvGlflwuA/hv9w38LAx77sgklKjARU/Ejvb.5rBHQZHIc5.ID/"
        "ao0VTu0kXnjEeXwRPzNrIS.aVEulkXHK7Z.",
        "{SHA256-CRYPT}$5$cI7LBYtCMWDGiC9l$Hr03CSfnWt4ZE.QZrhA/U6dYxB7.zBsgVLgNyXEANJD",
        "{MD5-CRYPT}$1$YJfa9HZA$6VojCee0ZP0atV9jm8Kby1",
        "{CRYPT}$2y$05$5aTaq49F2SQRP9jNH1Wlfe0bIP6PPr/UaMwcg016L4y/YBntwtpbC",
        "{CRYPT}abNANd1rDfiNc",
        /* scheme names are case-insensitive, as in Dovecot */
        "{sha512-crypt}$6$5wVTIopJrbQ/fiRK$8LvGlflwuA/hv9w38LAx77sgklKjARU/Ejvb.5rBHQZHIc5.ID/"
        "ao0VTu0kXnjEeXwRPzNrIS.aVEulkXHK7Z.",
};

/* doveadm pw -p 'pässwörd ✓' (UTF-8 bytes are hashed as they are). */
static const char utf8_password[] = "p\xc3\xa4ssw\xc3\xb6rd \xe2\x9c\x93";
static const char *const dovecot_utf8[] = {
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$ZoWW0Cd+97CScDodeTxQvQ$"
        "0Ie3K9QBdnFQOpHDhM2LPXPKG2I+iFh02zziZ4lZZ0o",
        "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$dEA9YjyXetz9BIHV2bl6Sw$"
        "Mg3zyjMiluXx1d35e4A+Fj38D2n5uu5Qo07/EUY5JAk",
        "{BLF-CRYPT}$2y$05$6oVGR8Fx1LRr4XqfCfbiMumB21Qe4pOYcx9dIUE1H5aTzNR.gTHb2",
        "{SHA512-CRYPT}$6$6IdV8SFia4T8Mn4A$8gV0BU/nHZ9XlTGMAcUH1XjYmPjTDXiCikv.aIvBdFkR2JN9zQGcj"
        "JzzQuvlwjVT.iTQQPrdmIA0VWGLtN35I0",
        "{SHA256-CRYPT}$5$3gdpF40XSuyB.8xV$qdxrEXreC6jN0D4pXL7F6EhdQASrFx/rCg.TU/0bnY5",
        "{MD5-CRYPT}$1$fsET4tLX$7BMf34v6xwRSyWMjoHk3U.",
};

/* The demo password of sql/ demo.sql (alice@example.com). */
static const char demo_alice[] =
        "{SHA512-CRYPT}$6$IPfxIhBYfTdiaSeY$uJMzU6e5owBIVlAI.vaedJHY/YkkcGlCo7JXrlCfFBd8ciB/"
        "toz/V.W/XTLBmuj9iWoGtfoL2vxxtMydMSh0g1";

static void test_dovecot_hashes_verify(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dovecot_secret) / sizeof(dovecot_secret[0]); i++) {
		if (password_verify("secret", dovecot_secret[i], false, NULL) != PASSWORD_MATCH)
			fail_msg("doveadm hash %s does not verify with the right password",
			         dovecot_secret[i]);
		if (password_verify("Secret", dovecot_secret[i], false, NULL) != PASSWORD_MISMATCH)
			fail_msg("doveadm hash %s verifies with a wrong password",
			         dovecot_secret[i]);
	}
	for (size_t i = 0; i < sizeof(dovecot_utf8) / sizeof(dovecot_utf8[0]); i++) {
		if (password_verify(utf8_password, dovecot_utf8[i], false, NULL) != PASSWORD_MATCH)
			fail_msg("doveadm hash %s of a UTF-8 password does not verify",
			         dovecot_utf8[i]);
	}
	assert_int_equal(password_verify("demo", demo_alice, false, NULL), PASSWORD_MATCH);
	assert_int_equal(password_verify("dem", demo_alice, false, NULL), PASSWORD_MISMATCH);
}

/* A new hash: its prefix and Dovecot's encoded parameters, a fresh salt
 * each time, and it verifies. */
static void test_hash_argon2id(void **state)
{
	str_t h1, h2, error;

	(void)state;
	str_init(&h1);
	str_init(&h2);
	str_init(&error);
	assert_int_equal(password_hash(PASSWORD_ARGON2ID, "secret", &h1, &error), 0);
	assert_int_equal(password_hash(PASSWORD_ARGON2ID, "secret", &h2, &error), 0);
	assert_int_equal(error.len, 0);
	/* {ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$<22 b64 salt>$<43 b64 hash> */
	assert_true(strncmp(str_c(&h1), "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$", 41) == 0);
	assert_int_equal(h1.len, 41 + 22 + 1 + 43);
	assert_int_equal(str_c(&h1)[41 + 22], '$');
	assert_string_not_equal(str_c(&h1), str_c(&h2)); /* salted */
	assert_int_equal(password_verify("secret", str_c(&h1), false, NULL), PASSWORD_MATCH);
	assert_int_equal(password_verify("secreT", str_c(&h1), false, NULL), PASSWORD_MISMATCH);
	str_free(&h1);
	str_free(&h2);
	str_free(&error);
}

static void test_hash_bcrypt(void **state)
{
	str_t h, error;

	(void)state;
	str_init(&h);
	str_init(&error);
	assert_int_equal(password_hash(PASSWORD_BLF_CRYPT, "secret", &h, &error), 0);
	/* {BLF-CRYPT}$2y$12$<22 salt><31 hash> */
	assert_true(strncmp(str_c(&h), "{BLF-CRYPT}$2y$12$", 18) == 0);
	assert_int_equal(h.len, 18 + 53);
	assert_int_equal(password_verify("secret", str_c(&h), false, NULL), PASSWORD_MATCH);
	assert_int_equal(password_verify("secret!", str_c(&h), false, NULL), PASSWORD_MISMATCH);
	str_free(&h);
	str_free(&error);
}

static void test_hash_too_long(void **state)
{
	char *longpw = xmalloc(PASSWORD_MAX + 2);
	str_t h, error;

	(void)state;
	str_init(&h);
	str_init(&error);
	memset(longpw, 'x', PASSWORD_MAX + 1);
	longpw[PASSWORD_MAX + 1] = '\0';
	assert_int_equal(password_hash(PASSWORD_ARGON2ID, longpw, &h, &error), -1);
	assert_non_null(strstr(str_c(&error), "longer than 511 bytes"));
	assert_int_equal(h.len, 0); /* output unchanged */
	/* and such a password never matches anything */
	assert_int_equal(password_verify(longpw, dovecot_secret[2], false, NULL),
	                 PASSWORD_MISMATCH);
	longpw[PASSWORD_MAX] = '\0'; /* exactly the limit is fine */
	str_reset(&error);
	assert_int_equal(password_hash(PASSWORD_BLF_CRYPT, longpw, &h, &error), 0);
	assert_int_equal(password_verify(longpw, str_c(&h), false, NULL), PASSWORD_MATCH);
	free(longpw);
	str_free(&h);
	str_free(&error);
}

static void test_plaintext(void **state)
{
	struct test_log tl;

	(void)state;
	test_log_start(&tl, false);
	/* allowed */
	assert_int_equal(password_verify("secret", "{PLAIN}secret", true, NULL), PASSWORD_MATCH);
	assert_int_equal(password_verify("secret", "{CLEARTEXT}secret", true, NULL),
	                 PASSWORD_MATCH);
	assert_int_equal(password_verify("secre", "{PLAIN}secret", true, NULL), PASSWORD_MISMATCH);
	assert_int_equal(password_verify("secrets", "{PLAIN}secret", true, NULL),
	                 PASSWORD_MISMATCH);
	assert_int_equal(password_verify("", "{PLAIN}", true, NULL), PASSWORD_MATCH);
	assert_int_equal(tl.lines.n, 0);
	/* refused by default, even with the right password, and logged */
	assert_int_equal(password_verify("secret", "{PLAIN}secret", false, "alice@example.com"),
	                 PASSWORD_UNUSABLE);
	assert_int_equal(password_verify("secret", "{CLEARTEXT}secret", false, NULL),
	                 PASSWORD_UNUSABLE);
	assert_int_equal(tl.lines.n, 2);
	assert_non_null(strstr(tl.lines.v[0], "alice@example.com"));
	assert_non_null(strstr(tl.lines.v[0], "password_allow_plaintext = no"));
	assert_null(strstr(tl.lines.v[0], "secret")); /* never the password */
	test_log_stop(&tl);
}

/* Values that cannot be checked are refused with a reason in the log. */
static void test_unusable(void **state)
{
	static const struct {
		const char *stored, *reason;
	} cases[] = {
	        {"{SSHA}abcdef", "unknown password scheme"},
	        {"{SHA512-CRYPT}$5$cI7LBYtCMWDGiC9l$Hr03CSfnWt4ZE.QZrhA/U6dYxB7.zBsgVLgNyXEANJD",
	         "form of its scheme"},
	        {"{BLF-CRYPT}$6$abc$def", "form of its scheme"},
	        {"{CRYPT}$9$nonsense", "crypt(3)"},
	        {"{ARGON2ID}$argon2i$v=19$m=32768,t=4,p=1$xVJl2DiMqEbK0Qcdzl2I7w$"
	         "pS07P6855vIWPuhXzJL"
	         "UcXVwVsYwQ4kEbtDu9Go1fI8",
	         "$argon2id$"},
	        {"{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$ATrQJCdKPqFR0y5i4x5xLA$jxth4E+U6Xrzp"
	         "ZL3S5eV5np8jlRqP9J3iha1U1DTI7o",
	         "bounds"},
	        {"{ARGON2ID}$argon2id$v=19$m=65536,t=3$ATrQJCdKPqFR0y5i4x5xLA$jxth", "bounds"},
	        {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$!!$jxth", ""},
	        {"secret", "no {SCHEME} prefix"},
	        {"$6$5wVTIopJrbQ/fiRK$8LvGlflwuA", "no {SCHEME} prefix"},
	        {"{SHA512-CRYPT", "no {SCHEME} prefix"},
	        {"", "no {SCHEME} prefix"},
	};
	struct test_log tl;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_log_start(&tl, false);
		if (password_verify("secret", cases[i].stored, true, "bob") != PASSWORD_UNUSABLE)
			fail_msg("stored value [%s] was not refused", cases[i].stored);
		if (tl.lines.n != 1 || strstr(tl.lines.v[0], cases[i].reason) == NULL ||
		    strstr(tl.lines.v[0], "bob") == NULL)
			fail_msg("stored value [%s]: expected one warning naming bob and [%s], got "
			         "%zu: [%s]",
			         cases[i].stored, cases[i].reason, tl.lines.n,
			         tl.lines.n > 0 ? tl.lines.v[0] : "");
		test_log_stop(&tl);
	}
}

static void test_config(void **state)
{
	static const struct {
		const char *maincf;
		int ret;
		enum password_scheme scheme;
		bool plain;
		const char *error;
	} cases[] = {
	        {"", 0, PASSWORD_ARGON2ID, false, NULL},
	        {"password_scheme = BLF-CRYPT\n", 0, PASSWORD_BLF_CRYPT, false, NULL},
	        {"password_scheme = blf-crypt\npassword_allow_plaintext = yes\n", 0,
	         PASSWORD_BLF_CRYPT, true, NULL},
	        {"password_scheme = argon2id\n", 0, PASSWORD_ARGON2ID, false, NULL},
	        {"password_scheme = SHA512-CRYPT\n", -1, PASSWORD_ARGON2ID, false,
	         "main.cf, line 1: bad value for password_scheme: \"SHA512-CRYPT\": expected "
	         "ARGON2ID or BLF-CRYPT"},
	        {"\npassword_allow_plaintext = maybe\n", -1, PASSWORD_ARGON2ID, false,
	         "password_allow_plaintext"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct password_config pc = {PASSWORD_ARGON2ID, false};
		strv_t errors = STRV_INIT;
		struct config *cfg = NULL;
		str_t error;

		str_init(&error);
		assert_int_equal(config_parse_text(cases[i].maincf, strlen(cases[i].maincf),
		                                   "main.cf", ".", &cfg, &errors),
		                 0);
		assert_int_equal(password_config_get(cfg, &pc, &error), cases[i].ret);
		if (cases[i].ret == 0) {
			assert_int_equal(pc.scheme, cases[i].scheme);
			assert_int_equal(pc.allow_plaintext, cases[i].plain);
		} else if (strstr(str_c(&error), cases[i].error) == NULL) {
			fail_msg("main.cf [%s]: expected an error containing [%s], got [%s]",
			         cases[i].maincf, cases[i].error, str_c(&error));
		}
		config_destroy(&cfg);
		strv_free(&errors);
		str_free(&error);
	}
}

static void test_scheme_names(void **state)
{
	enum password_scheme s;

	(void)state;
	assert_int_equal(password_scheme_parse("ARGON2ID", &s), 0);
	assert_int_equal(s, PASSWORD_ARGON2ID);
	assert_int_equal(password_scheme_parse("Blf-Crypt", &s), 0);
	assert_int_equal(s, PASSWORD_BLF_CRYPT);
	assert_int_equal(password_scheme_parse("ARGON2I", &s), -1);
	assert_int_equal(password_scheme_parse("PLAIN", &s), -1);
	assert_int_equal(password_scheme_parse("", &s), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_dovecot_hashes_verify),
	        cmocka_unit_test(test_hash_argon2id),
	        cmocka_unit_test(test_hash_bcrypt),
	        cmocka_unit_test(test_hash_too_long),
	        cmocka_unit_test(test_plaintext),
	        cmocka_unit_test(test_unusable),
	        cmocka_unit_test(test_config),
	        cmocka_unit_test(test_scheme_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
