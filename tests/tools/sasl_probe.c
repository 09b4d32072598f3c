/* sasl_probe.c - lib/sasl from the command line, for the system tests
 * (tests/system/test_sasl_backends.py) while smtpd's AUTH is not there:
 *
 *   sasl_probe -c CONFIGDIR MECH USER PASS [tls]
 *
 * reads CONFIGDIR/main.cf, builds the SASL server of its smtpd_sasl_*
 * settings, prints the mechanisms offered ("mechanisms: PLAIN LOGIN")
 * and runs one exchange: PLAIN with an initial response, LOGIN answering
 * "Username:" and "Password:", and prints one line: "OK username",
 * "FAIL reason", "TEMPFAIL reason", "BAD_MECH reason" or
 * "BAD_MESSAGE reason". Exit 0 after OK, 1 after a refusal, 2 on a usage
 * or configuration error. The password is on the command line: test use
 * only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "sasl/sasl.h"

static const char *const result_names[] = {
        [SASL_OK] = "OK",
        [SASL_CONTINUE] = "CONTINUE",
        [SASL_FAIL] = "FAIL",
        [SASL_TEMPFAIL] = "TEMPFAIL",
        [SASL_BAD_MECH] = "BAD_MECH",
        [SASL_BAD_MESSAGE] = "BAD_MESSAGE",
};

static int usage(void)
{
	fprintf(stderr, "usage: sasl_probe -c CONFIGDIR MECH USER PASS [tls]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct sasl_peer peer = {"127.0.0.1", 40000, "127.0.0.1", 25, false};
	struct config *cfg = NULL;
	struct sasl_server *srv = NULL;
	struct sasl_session *sess;
	strv_t errors = STRV_INIT;
	enum sasl_result r;
	const char *mech, *user, *pass;
	str_t error, ch, reason, msg;
	int rounds = 0;

	if (argc < 6 || argc > 7 || strcmp(argv[1], "-c") != 0)
		return usage();
	if (argc == 7) {
		if (strcmp(argv[6], "tls") != 0)
			return usage();
		peer.tls = true;
	}
	mech = argv[3];
	user = argv[4];
	pass = argv[5];
	log_open("sasl_probe", LOG_TARGET_STDERR, NULL, NULL);
	if (config_load(argv[2], &cfg, &errors) < 0) {
		fprintf(stderr, "sasl_probe: %s\n", errors.n > 0 ? errors.v[0] : "main.cf");
		return 2;
	}
	strv_free(&errors);
	str_init(&error);
	if (sasl_server_create(cfg, &srv, &error) < 0) {
		fprintf(stderr, "sasl_probe: %s\n", str_c(&error));
		return 2;
	}
	printf("mechanisms: %s\n", sasl_server_mechanisms(srv, peer.tls));
	str_init(&ch);
	str_init(&reason);
	str_init(&msg);
	sess = sasl_session_new(srv, &peer);
	if (strcmp(mech, "PLAIN") == 0) {
		str_append_c(&msg, '\0');
		str_append(&msg, user);
		str_append_c(&msg, '\0');
		str_append(&msg, pass);
		r = sasl_session_step(sess, mech, (const unsigned char *)msg.buf, msg.len, &ch,
		                      &reason);
	} else {
		r = sasl_session_step(sess, mech, NULL, 0, &ch, &reason);
	}
	/* Answer challenges the LOGIN way, whatever the mechanism. */
	while (r == SASL_CONTINUE && rounds++ < 10) {
		const char *answer = strcmp(str_c(&ch), "Username:") == 0 ? user : pass;

		str_reset(&ch);
		r = sasl_session_step(sess, NULL, (const unsigned char *)answer, strlen(answer),
		                      &ch, &reason);
	}
	if (r == SASL_OK)
		printf("OK %s\n", sasl_session_username(sess));
	else
		printf("%s %s\n", result_names[r], str_c(&reason));
	sasl_session_free(&sess);
	sasl_server_free(&srv);
	config_destroy(&cfg);
	str_free(&error);
	str_free(&ch);
	str_free(&reason);
	str_free(&msg);
	return r == SASL_OK ? 0 : 1;
}
