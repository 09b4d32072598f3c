/* sasl_private.h - what sasl.c shares with its backends (sasl_postern.c,
 * sasl_cyrus.c, sasl_dovecot.c) and with tests/unit/test_sasl.c: the
 * server and session objects, the backend vtable, the security options,
 * the mechanism filter and the PLAIN/LOGIN decoders. Not for smtpd: it
 * uses sasl.h only.
 */
#ifndef POSTERN_SASL_PRIVATE_H
#define POSTERN_SASL_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>

#include "base/str.h"
#include "base/strv.h"
#include "sasl/sasl.h"

/* What a mechanism is (Dovecot's MECH flags). */
enum {
	SASL_MECH_ANONYMOUS = 1 << 0, /* no credentials at all */
	SASL_MECH_PLAINTEXT = 1 << 1, /* the password crosses in the clear */
	SASL_MECH_DICTIONARY = 1 << 2, /* open to passive dictionary attacks */
	SASL_MECH_ACTIVE = 1 << 3, /* open to active (non-dictionary) attacks */
	SASL_MECH_FORWARD_SECRECY = 1 << 4, /* has forward secrecy */
	SASL_MECH_MUTUAL_AUTH = 1 << 5, /* authenticates the server too */
	/* The backend applied the security options itself (Cyrus lists
	 * what its own checks let through): never filtered again. */
	SASL_MECH_PREFILTERED = 1 << 6,
};

/* The words of smtpd_sasl_security_options (Postfix's names). */
enum {
	SASL_OPT_NOANONYMOUS = 1 << 0,
	SASL_OPT_NOPLAINTEXT = 1 << 1,
	SASL_OPT_NOACTIVE = 1 << 2,
	SASL_OPT_NODICTIONARY = 1 << 3,
	SASL_OPT_MUTUAL_AUTH = 1 << 4,
	SASL_OPT_FORWARD_SECRECY = 1 << 5,
};

/* Longest authentication identity (login) accepted, in bytes: RFC 4616's
 * 255 for PLAIN, used for LOGIN too. */
#define SASL_LOGIN_MAX 255

struct sasl_mech {
	char *name; /* upper case */
	unsigned flags; /* SASL_MECH_* */
};

struct sasl_mech_list {
	struct sasl_mech *v;
	size_t n;
};

void sasl_mech_list_add(struct sasl_mech_list *l, const char *name, unsigned flags);
void sasl_mech_list_free(struct sasl_mech_list *l);

struct sasl_server;
struct sasl_session;

/* One implementation. init reads its settings from cfg (cfg is not kept:
 * a config is not to be used from two threads) and sets the mechanisms
 * with sasl_server_set_mechs; -1 with a message naming the parameter.
 * step gets mech on the first call only (upper case, checked as offered)
 * and sees no response longer than SASL_MESSAGE_MAX. On SASL_OK it sets
 * sess->username. */
struct sasl_backend {
	const char *name;
	int (*init)(struct sasl_server *srv, struct config *cfg, str_t *error);
	void (*deinit)(struct sasl_server *srv);
	void (*refresh)(struct sasl_server *srv); /* NULL: nothing to do */
	enum sasl_result (*step)(struct sasl_session *sess, const char *mech,
	                         const unsigned char *response, size_t response_len,
	                         str_t *challenge, str_t *reason);
	void (*session_free)(struct sasl_session *sess); /* the backend's part */
};

extern const struct sasl_backend sasl_backend_postern;
extern const struct sasl_backend sasl_backend_cyrus;
extern const struct sasl_backend sasl_backend_dovecot;

struct sasl_server {
	const struct sasl_backend *backend;
	char *service; /* smtpd_sasl_service */
	char *path; /* smtpd_sasl_path */
	char *local_domain; /* smtpd_sasl_local_domain; "" when unset */
	unsigned options[2]; /* SASL_OPT_*, [tls] */
	strv_t filter; /* smtpd_sasl_mechanism_filter */
	pthread_mutex_t lock; /* mechs: a dovecot refresh runs in a worker */
	struct sasl_mech_list mechs[2]; /* the backend's, [tls] */
	str_t offered[2]; /* sasl_server_mechanisms' answer, [tls] */
	void *backend_data;
};

struct sasl_session {
	struct sasl_server *srv;
	struct sasl_peer peer; /* strings owned */
	char *mech; /* after the first step */
	char *username; /* after SASL_OK */
	char *tried; /* the login a failed exchange named, when known, or NULL */
	bool started, finished;
	void *backend_data;
};

/* Replace the mechanisms of srv for tls (locks). Takes list's contents. */
void sasl_server_set_mechs(struct sasl_server *srv, bool tls, struct sasl_mech_list *list);

/* Parse the words of a security options list (param names it, where says
 * where it was set, for the message). -1 with "WHERE: bad value for
 * PARAM: \"WORD\": expected ..." on an unknown word. */
int sasl_security_parse(const char *param, const char *where, const strv_t *words,
                        unsigned *options_r, str_t *error);
/* True when a mechanism with flags passes options. */
bool sasl_security_allows(unsigned options, unsigned flags);
/* Log a warning for each word of filter that is a table other than
 * static: (not supported; taken as static:rest). */
void sasl_filter_check(const strv_t *filter);
/* Postfix's smtpd_sasl_mechanism_filter match: the first word that
 * matches mech (case-insensitive) decides, "!name" excluding; any
 * "type:name" matches everything; no match excludes. */
bool sasl_filter_allows(const strv_t *filter, const char *mech);

/* PLAIN (RFC 4616): "authzid NUL authcid NUL passwd". authcid and passwd
 * are set (replaced) on SASL_OK; passwd is the caller's to wipe. A layout
 * that is not exactly that, an empty authcid, an authcid over
 * SASL_LOGIN_MAX bytes or with control characters, a password over
 * PASSWORD_MAX bytes: SASL_BAD_MESSAGE with the reason. An authzid other
 * than "" or authcid: SASL_FAIL "authorization failure" (postern has no
 * proxy logins). */
enum sasl_result sasl_plain_decode(const unsigned char *data, size_t len, str_t *authcid,
                                   str_t *passwd, str_t *reason);

/* LOGIN (draft-murchison-sasl-login): challenges "Username:" and
 * "Password:". Call with each response (the first call's response may be
 * NULL: no initial response). SASL_CONTINUE with the challenge appended;
 * SASL_OK once both are in user and passwd (the caller wipes passwd);
 * SASL_BAD_MESSAGE for a bad user name or an over-long password. */
struct sasl_login {
	int state; /* 0 start, 1 username asked, 2 password asked */
	str_t user, passwd;
};
void sasl_login_init(struct sasl_login *l);
/* Wipes the password. */
void sasl_login_free(struct sasl_login *l);
enum sasl_result sasl_login_step(struct sasl_login *l, const unsigned char *response, size_t len,
                                 str_t *challenge, str_t *reason);

/* Wipe s's bytes, then free it. */
void sasl_str_wipe(str_t *s);

#endif
