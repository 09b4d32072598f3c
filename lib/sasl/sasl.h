/* sasl.h - the server side of SMTP AUTH, behind one interface, with
 * three implementations chosen by smtpd_sasl_type:
 *
 *   postern  (postern's default; needs nothing else installed) PLAIN and
 *            LOGIN checked against postern's own database: the password
 *            hash of the mailboxes row (lib/auth/password.h, Dovecot's
 *            schemes), through `database_readonly`; an inactive mailbox or
 *            a mailbox of an inactive domain never authenticates. The
 *            login is the full address (user@domain); a name without
 *            '@' gets "@" smtpd_sasl_local_domain when that is set.
 *   cyrus    the Cyrus SASL library (libsasl2), as Postfix uses it:
 *            smtpd_sasl_path is the application name whose NAME.conf
 *            (pwcheck_method, auxprop_plugin, mech_list, sasldb_path)
 *            is searched in cyrus_sasl_config_path, else
 *            $config_directory/sasl, else Cyrus's built-in path; so
 *            sasldb (saslpasswd2) and saslauthd work as with Postfix.
 *            smtpd_sasl_service ("smtp") and smtpd_sasl_local_domain
 *            (the realm) are passed on.
 *   dovecot  Dovecot's authentication protocol (auth-client, version 1.2)
 *            on smtpd_sasl_path: "private/auth" (a unix socket relative
 *            to queue_directory, as Postfix), an absolute path, or
 *            "inet:host:port".
 *
 * smtpd_sasl_security_options / smtpd_sasl_tls_security_options
 * (noanonymous, noplaintext, noactive, nodictionary, mutual_auth,
 * forward_secrecy) and smtpd_sasl_mechanism_filter choose the mechanisms
 * offered.
 *
 * Threads: sasl_server_create/free, sasl_server_mechanisms and
 * sasl_session_new/free are called from the event thread; sasl_session_step
 * blocks (database query, password hash, Cyrus, a socket) and is called
 * from a worker thread (table_async_job), one step at a time per session.
 * The implementation does its own locking (Cyrus calls are serialised).
 *
 * Secrets: passwords and responses are never logged, never put in error
 * texts, and wiped from memory when a step is done.
 */
#ifndef POSTERN_SASL_H
#define POSTERN_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

/* Cyrus's <sasl/sasl.h> defines SASL_OK, SASL_CONTINUE and SASL_FAIL as
 * macros of its own codes: code that includes both (sasl_cyrus.c only)
 * must include this header first and use the enumerators by other
 * names. With -Ilib, <sasl/sasl.h> is this file: sasl_cyrus.c is
 * compiled with -iquote (Makefile.in) so that it finds Cyrus's. */

struct config;
struct sasl_server;
struct sasl_session;

/* Longest decoded client response and server challenge accepted. */
#define SASL_MESSAGE_MAX 12288

/* Build the server of one smtpd listener from its configuration (cfg
 * with the service's -o overrides; the parameters above and
 * config_directory, queue_directory, the database ones). Nothing is
 * contacted yet, except that the dovecot type asks the auth server for
 * its mechanism list once (a short timeout; when it is down, the list
 * is asked again by sasl_server_refresh and AUTH is not offered
 * meanwhile). -1 with a message naming the parameter on a bad setting
 * (unknown type, bad security option, database settings that do not
 * parse, Cyrus initialisation failure). */
/* Why not sasl_server_new: libsasl2 exports a function of that name, and
 * two definitions of one symbol in a program break Cyrus (its own calls
 * could reach ours). Every other name here is free in libsasl2; keep new
 * ones clear of its sasl_* functions too. */
int sasl_server_create(struct config *cfg, struct sasl_server **srv_r, str_t *error);
void sasl_server_free(struct sasl_server **srvp);

/* The mechanisms offered, upper case, space separated ("PLAIN LOGIN"),
 * for a session with or without TLS; "" when none (AUTH is then not
 * announced). The string lives until the next call or free. */
const char *sasl_server_mechanisms(struct sasl_server *srv, bool tls);

/* dovecot: reconnect and ask again for the mechanisms when the last try
 * failed more than a few seconds ago (blocking: call from a worker);
 * others: nothing. */
void sasl_server_refresh(struct sasl_server *srv);

/* The client, for the implementations that want it (Dovecot's
 * rip/lip/secured, Cyrus's iplocalport/ipremoteport). */
struct sasl_peer {
	const char *client_addr; /* numeric */
	unsigned client_port;
	const char *server_addr;
	unsigned server_port;
	bool tls;
};

/* One AUTH exchange (a session may run several after failures). NULL
 * never: errors show at the first step. peer is copied. */
struct sasl_session *sasl_session_new(struct sasl_server *srv, const struct sasl_peer *peer);
void sasl_session_free(struct sasl_session **sp);

enum sasl_result {
	SASL_OK, /* authenticated: sasl_session_username() */
	SASL_CONTINUE, /* send the challenge (334), then step again */
	SASL_FAIL, /* wrong credentials, unknown or inactive user: 535 */
	SASL_TEMPFAIL, /* backend unavailable (database down, no Dovecot): 454 */
	SASL_BAD_MECH, /* mechanism not offered: 504 */
	SASL_BAD_MESSAGE, /* malformed response (bad PLAIN layout...): 501 */
};

/* One step. The first call gives mech (upper case, offered for the
 * session's TLS state) and the initial response (may be NULL: none;
 * "" for the "=" empty response); later calls give mech NULL and the
 * client's decoded response. The server's next challenge (raw bytes,
 * the caller base64-encodes it) is appended to challenge on
 * SASL_CONTINUE. On SASL_FAIL/TEMPFAIL/BAD_*, reason gets the text for
 * Postfix's log line and reply ("authentication failure", Cyrus's
 * sasl_errdetail, Dovecot's reason=) without any secret in it. Blocking;
 * from a worker thread. */
enum sasl_result sasl_session_step(struct sasl_session *sess, const char *mech,
                                   const unsigned char *response, size_t response_len,
                                   str_t *challenge, str_t *reason);

/* After SASL_OK: the login (for permit_sasl_authenticated,
 * smtpd_sender_login_maps, the log line's sasl_username=) and the
 * mechanism. Valid until sasl_session_free. */
const char *sasl_session_username(const struct sasl_session *sess);
const char *sasl_session_mechanism(const struct sasl_session *sess);
/* The login: after SASL_OK the authenticated one, after a failure the
 * one the client named when the implementation knows it (Postfix's
 * ", sasl_username=..." on its failure log line), else NULL. A name the
 * client sent: clean it before logging. */
const char *sasl_session_login(const struct sasl_session *sess);

#endif
