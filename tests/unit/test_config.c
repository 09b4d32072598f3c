/* test_config.c - unit tests for lib/conf/config, params and config_edit:
 * main.cf syntax (continuations, comments, CRLF, NUL bytes, overlong
 * lines, bad names), $name expansion (all forms, loops, unterminated
 * braces), typed getters with file:line errors, validation warnings, and
 * in-place editing that keeps comments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "conf/config_edit.h"
#include "conf/params.h"

/* Parse text; return the config and leave errors in *errors. */
static struct config *parse(const char *text, strv_t *errors)
{
	struct config *cfg;

	config_parse_text(text, strlen(text), "main.cf", "/etc/postern", &cfg, errors);
	return cfg;
}

static const char *expanded(struct config *cfg, const char *name)
{
	const char *value, *error;

	if (config_expand(cfg, name, &value, &error) < 0)
		fail_msg("expanding %s: %s", name, error);
	return value;
}

static void test_param_table_sorted(void **state)
{
	(void)state;
	for (size_t i = 1; i < param_count(); i++)
		if (strcmp(param_at(i - 1)->name, param_at(i)->name) >= 0)
			fail_msg("params.c out of order: %s before %s", param_at(i - 1)->name,
			         param_at(i)->name);
	assert_non_null(param_find("myhostname"));
	assert_non_null(param_find("virtual_mailbox_maps"));
	assert_null(param_find("no_such_parameter"));
	/* every default of a typed parameter must itself be valid */
	for (size_t i = 0; i < param_count(); i++) {
		strv_t errors = STRV_INIT;
		struct config *cfg = parse("myhostname = mail.example.com\n", &errors);
		const char *error;

		if (config_check_value(cfg, param_at(i)->name, &error) < 0)
			fail_msg("default of %s is invalid: %s", param_at(i)->name, error);
		config_destroy(&cfg);
		strv_free(&errors);
	}
}

static void test_syntax(void **state)
{
	strv_t errors = STRV_INIT;
	struct config *cfg;

	(void)state;
	cfg = parse("# comment\n"
	            "myhostname = mail.example.com\r\n"
	            "mydestination = a,\n"
	            "  b,\n"
	            "# a comment inside a continuation\n"
	            "\n"
	            "\tc\n"
	            "relayhost=[smtp.example.net]:587   \n"
	            "smtpd_banner = $myhostname # not a comment\n",
	            &errors);
	assert_int_equal(errors.n, 0);
	assert_string_equal(config_raw(cfg, "myhostname"), "mail.example.com");
	assert_string_equal(config_raw(cfg, "mydestination"), "a, b, c");
	assert_string_equal(config_raw(cfg, "relayhost"), "[smtp.example.net]:587");
	assert_string_equal(config_where(cfg, "relayhost"), "main.cf, line 8");
	assert_string_equal(expanded(cfg, "smtpd_banner"), "mail.example.com # not a comment");
	assert_true(config_is_set(cfg, "myhostname"));
	assert_false(config_is_set(cfg, "mynetworks"));
	config_destroy(&cfg);
	strv_free(&errors);
}

static void test_syntax_errors(void **state)
{
	static const struct {
		const char *text;
		const char *message;
	} cases[] = {
	        {"myhostname\n",
	         "main.cf, line 1: missing '=' after parameter name \"myhostname\""},
	        {"a = 1\nbad/name = 2\n", "main.cf, line 2: bad parameter name \"bad/name\""},
	        {"  indented = 1\n", "main.cf, line 1: continuation line"},
	        {"= value\n", "main.cf, line 1: missing parameter name"},
	        {"x = 1\ny = {\n", NULL}, /* braces are not checked at parse time */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strv_t errors = STRV_INIT;
		struct config *cfg = parse(cases[i].text, &errors);

		if (cases[i].message == NULL) {
			assert_int_equal(errors.n, 0);
		} else {
			assert_int_equal(errors.n, 1);
			if (strncmp(errors.v[0], cases[i].message, strlen(cases[i].message)) != 0)
				fail_msg("case %zu: got \"%s\"", i, errors.v[0]);
		}
		config_destroy(&cfg);
		strv_free(&errors);
	}
}

static void test_nul_and_overlong(void **state)
{
	static const char with_nul[] = "a = 1\nb = x\0y\nc = 3\n";
	strv_t errors = STRV_INIT;
	struct config *cfg;
	str_t big;

	(void)state;
	config_parse_text(with_nul, sizeof(with_nul) - 1, "main.cf", "/etc/postern", &cfg, &errors);
	assert_int_equal(errors.n, 1);
	assert_string_equal(errors.v[0], "main.cf, line 2: NUL byte in line");
	/* the lines around the bad one still parse */
	assert_string_equal(config_raw(cfg, "c"), "3");
	config_destroy(&cfg);
	strv_free(&errors);

	str_init(&big);
	str_append(&big, "mydestination = x");
	for (int i = 0; i < 20000; i++)
		str_append(&big, "\n  abcdefghijklmnopq");
	str_append(&big, "\nmyhostname = ok.example\n");
	config_parse_text(big.buf, big.len, "main.cf", "/etc/postern", &cfg, &errors);
	assert_int_equal(errors.n, 1);
	assert_non_null(strstr(errors.v[0], "main.cf, line 1: entry longer than"));
	assert_string_equal(config_raw(cfg, "myhostname"), "ok.example");
	config_destroy(&cfg);
	strv_free(&errors);
	str_free(&big);
}

static void test_duplicate_warning(void **state)
{
	strv_t errors = STRV_INIT;
	struct config *cfg = parse("relayhost = a\nrelayhost = b\n", &errors);

	(void)state;
	assert_string_equal(config_raw(cfg, "relayhost"), "b");
	assert_int_equal(config_parse_warnings(cfg)->n, 1);
	assert_string_equal(config_parse_warnings(cfg)->v[0],
	                    "main.cf, line 2: overriding earlier entry: relayhost=a");
	config_destroy(&cfg);
	strv_free(&errors);
}

static void test_expansion_forms(void **state)
{
	strv_t errors = STRV_INIT;
	struct config *cfg = parse("myhostname = mail.example.com\n"
	                           "x1 = $mydomain\n"
	                           "x2 = ${mydomain}/$(myhostname)\n"
	                           "x3 = ${relayhost?relay:$relayhost}\n"
	                           "x4 = ${relayhost:no relayhost}\n"
	                           "x5 = ${myhostname?{set}:{unset}} ${relayhost?{set}:{unset}}\n"
	                           "x6 = cost $$5\n"
	                           "x7 = $undefined_thing.end\n"
	                           "x8 = trailing $\n",
	                           &errors);

	(void)state;
	assert_int_equal(errors.n, 0);
	assert_string_equal(expanded(cfg, "mydomain"), "example.com");
	assert_string_equal(expanded(cfg, "x1"), "example.com");
	assert_string_equal(expanded(cfg, "x2"), "example.com/mail.example.com");
	assert_string_equal(expanded(cfg, "x3"), "");
	assert_string_equal(expanded(cfg, "x4"), "no relayhost");
	assert_string_equal(expanded(cfg, "x5"), "set unset");
	assert_string_equal(expanded(cfg, "x6"), "cost $5");
	assert_string_equal(expanded(cfg, "x7"), ".end");
	assert_string_equal(expanded(cfg, "x8"), "trailing $");
	assert_string_equal(expanded(cfg, "mydestination"),
	                    "mail.example.com, localhost.example.com, localhost");
	config_set(cfg, "relayhost", "[smtp.example.net]", "-o");
	assert_string_equal(expanded(cfg, "x3"), "relay:[smtp.example.net]");
	assert_string_equal(expanded(cfg, "x4"), "");
	config_destroy(&cfg);
	strv_free(&errors);
}

static void test_expansion_errors(void **state)
{
	static const struct {
		const char *text, *name, *message;
	} cases[] = {
	        {"a = $b\nb = $a\n", "a",
	         "main.cf, line 1: parameter a: expansion loop through $a"},
	        {"a = $a\n", "a", "main.cf, line 1: parameter a: expansion loop through $a"},
	        {"a = ${b\n", "a", "main.cf, line 1: parameter a: unmatched '{'"},
	        {"a = $(b\n", "a", "main.cf, line 1: parameter a: unmatched '('"},
	        {"a = ${b!x}\n", "a", "main.cf, line 1: parameter a: bad parameter reference"},
	        {"a = ${}\n", "a", "main.cf, line 1: parameter a: bad parameter reference"},
	        {"a = ${b?{x}:y}\nb = 1\n", "a", "main.cf, line 1: parameter a: unmatched '{'"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		strv_t errors = STRV_INIT;
		struct config *cfg = parse(cases[i].text, &errors);
		const char *value, *error;

		assert_int_equal(errors.n, 0);
		assert_int_equal(config_expand(cfg, cases[i].name, &value, &error), -1);
		if (strncmp(error, cases[i].message, strlen(cases[i].message)) != 0)
			fail_msg("case %zu: got \"%s\"", i, error);
		/* a failed expansion leaves the config usable */
		assert_int_equal(config_expand(cfg, "myorigin", &value, &error), 0);
		config_destroy(&cfg);
		strv_free(&errors);
	}
}

static void test_deep_chain(void **state)
{
	str_t text;
	strv_t errors = STRV_INIT;
	struct config *cfg;
	const char *value, *error;

	(void)state;
	str_init(&text);
	for (int i = 0; i < 200; i++)
		str_appendf(&text, "p%d = $p%d\n", i, i + 1);
	str_append(&text, "p200 = end\n");
	cfg = parse(str_c(&text), &errors);
	assert_int_equal(config_expand(cfg, "p0", &value, &error), -1);
	assert_non_null(strstr(error, "nested deeper than"));
	assert_int_equal(config_expand(cfg, "p150", &value, &error), 0);
	assert_string_equal(value, "end");
	config_destroy(&cfg);
	strv_free(&errors);
	str_free(&text);
}

static void test_typed_getters(void **state)
{
	strv_t errors = STRV_INIT;
	struct config *cfg = parse("message_size_limit = 52428800\n"
	                           "maximal_queue_lifetime = 2d\n"
	                           "delay_warning_time = 4\n"
	                           "smtpd_helo_required = YES\n"
	                           "virtual_alias_maps = sqlite:/etc/postern/a.cf, db:aliases\n"
	                           "smtpd_recipient_limit = 10MB\n"
	                           "smtpd_tls_auth_only = maybe\n"
	                           "transport_maps = justaname\n"
	                           "minimal_backoff_time = 5y\n",
	                           &errors);
	const char *error;
	const strv_t *list;
	int64_t i;
	uint64_t t;
	bool b;

	(void)state;
	assert_int_equal(config_get_int(cfg, "message_size_limit", &i, &error), 0);
	assert_int_equal(i, 52428800);
	assert_int_equal(config_get_time(cfg, "maximal_queue_lifetime", &t, &error), 0);
	assert_int_equal(t, 2 * 86400);
	assert_int_equal(config_get_time(cfg, "delay_warning_time", &t, &error), 0);
	assert_int_equal(t, 4 * 3600); /* default unit h */
	assert_int_equal(config_get_time(cfg, "queue_run_delay", &t, &error), 0);
	assert_int_equal(t, 300);
	assert_int_equal(config_get_bool(cfg, "smtpd_helo_required", &b, &error), 0);
	assert_true(b);
	assert_int_equal(config_get_list(cfg, "virtual_alias_maps", &list, &error), 0);
	assert_int_equal(list->n, 2);
	assert_string_equal(list->v[1], "db:aliases");

	assert_int_equal(config_get_int(cfg, "smtpd_recipient_limit", &i, &error), -1);
	assert_string_equal(error, "main.cf, line 6: bad value for smtpd_recipient_limit: "
	                           "\"10MB\": expected a whole number from 1 to 2147483647");
	assert_int_equal(config_get_bool(cfg, "smtpd_tls_auth_only", &b, &error), -1);
	assert_string_equal(error, "main.cf, line 7: bad value for smtpd_tls_auth_only: "
	                           "\"maybe\": expected yes or no");
	assert_int_equal(config_get_list(cfg, "transport_maps", &list, &error), -1);
	assert_non_null(strstr(error, "line 8"));
	assert_non_null(strstr(error, "expected a lookup table as type:name"));
	assert_int_equal(config_get_time(cfg, "minimal_backoff_time", &t, &error), -1);
	assert_non_null(strstr(error, "line 9"));
	config_destroy(&cfg);
	strv_free(&errors);
}

static void test_validate(void **state)
{
	strv_t errors = STRV_INIT, warnings = STRV_INIT, services = STRV_INIT;
	struct config *cfg = parse("myhostname = mail.example.com\n"
	                           "mua_restrictions = permit_sasl_authenticated, reject\n"
	                           "smtpd_client_restrictions = $mua_restrictions\n"
	                           "relay_destination_concurrency_limit = 5\n"
	                           "nosuch_destination_concurrency_limit = 5\n"
	                           "tpyo_parameter = 1\n"
	                           "smtpd_timeout = forever\n"
	                           "smtpd_forbid_bare_newline = maybe\n"
	                           "smtpd_forbid_bare_newline_reject_code = 550\n"
	                           /* service names with '-' (Postfix accepts them) */
	                           "policy-spf_time_limit = 3600s\n"
	                           "smtp-amavis_destination_recipient_limit = 1\n",
	                           &errors);

	(void)state;
	assert_int_equal(errors.n, 0);
	strv_add(&services, "relay");
	strv_add(&services, "policy-spf");
	strv_add(&services, "smtp-amavis");
	assert_int_equal(config_validate(cfg, &services, &errors, &warnings), 2);
	assert_int_equal(errors.n, 2);
	/* in the order of the parameter names */
	assert_non_null(strstr(errors.v[1], "main.cf, line 7: bad value for smtpd_timeout"));
	/* a word parameter: one of its words, in any case */
	assert_non_null(strstr(errors.v[0],
	                       "main.cf, line 8: smtpd_forbid_bare_newline: \"maybe\": "
	                       "expected no, yes, normalize or reject"));
	assert_int_equal(warnings.n, 2);
	assert_string_equal(warnings.v[0], "main.cf, line 5: unknown parameter: "
	                                   "nosuch_destination_concurrency_limit=5");
	assert_string_equal(warnings.v[1], "main.cf, line 6: unknown parameter: tpyo_parameter=1");
	config_destroy(&cfg);
	strv_free(&errors);
	strv_free(&warnings);
	strv_free(&services);
}

static void test_clone_and_override(void **state)
{
	strv_t errors = STRV_INIT;
	struct config *cfg = parse("myhostname = a.example\nsyslog_name = postern\n", &errors);
	struct config *svc = config_clone(cfg);

	(void)state;
	config_set(svc, "syslog_name", "postern/submission", "master.cf, line 3");
	assert_string_equal(expanded(svc, "syslog_name"), "postern/submission");
	assert_string_equal(config_where(svc, "syslog_name"), "master.cf, line 3");
	assert_string_equal(expanded(cfg, "syslog_name"), "postern");
	assert_string_equal(expanded(svc, "myhostname"), "a.example");
	config_destroy(&svc);
	config_destroy(&cfg);
	config_destroy(&cfg); /* destroy on NULL is a no-op */
	strv_free(&errors);
}

static void test_edit(void **state)
{
	static const struct {
		const char *in, *name, *value, *out;
		int found;
	} cases[] = {
	        {"# c\na = 1\nb = 2\n", "a", "9", "# c\na = 9\nb = 2\n", 1},
	        {"a = 1\n  more\n# kept\nb = 2\n", "a", "x", "a = x\n# kept\nb = 2\n", 1},
	        {"a = 1\nb = 2\na = 3\n", "a", "x", "a = x\nb = 2\n", 2},
	        {"b = 2", "a", "x", "b = 2\na = x\n", 0},
	        {"", "a", "x", "a = x\n", 0},
	        {"ab = 1\na = 2\n", "a", NULL, "ab = 1\n", 1},
	        {"a=1\n\tcont\n\n# note\nb = 2\n", "a", NULL, "\n# note\nb = 2\n", 1},
	        {"#a = 1\n a = 2\n", "a", "x", "#a = 1\n a = 2\na = x\n", 0},
	        {"a = 1\n", "a", "", "a =\n", 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		str_t out;

		str_init(&out);
		assert_int_equal(config_edit_text(cases[i].in, strlen(cases[i].in), cases[i].name,
		                                  cases[i].value, &out),
		                 cases[i].found);
		if (strcmp(str_c(&out), cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\"", i, str_c(&out));
		str_free(&out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_param_table_sorted), cmocka_unit_test(test_syntax),
	        cmocka_unit_test(test_syntax_errors),      cmocka_unit_test(test_nul_and_overlong),
	        cmocka_unit_test(test_duplicate_warning),  cmocka_unit_test(test_expansion_forms),
	        cmocka_unit_test(test_expansion_errors),   cmocka_unit_test(test_deep_chain),
	        cmocka_unit_test(test_typed_getters),      cmocka_unit_test(test_validate),
	        cmocka_unit_test(test_clone_and_override), cmocka_unit_test(test_edit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
