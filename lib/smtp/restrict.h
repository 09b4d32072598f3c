/* restrict.h - smtpd's access policy: Postfix's restriction lists.
 *
 * smtpd_client_restrictions, smtpd_helo_restrictions,
 * smtpd_sender_restrictions, smtpd_relay_restrictions,
 * smtpd_recipient_restrictions, smtpd_data_restrictions and
 * smtpd_end_of_data_restrictions, with Postfix's names, evaluation order
 * and smtpd_delay_reject semantics (smtpd_check.c and SMTPD_ACCESS_README
 * are the reference), the implicit smtpd_reject_unlisted_recipient /
 * smtpd_reject_unlisted_sender checks, recipient validation against
 * virtual_mailbox_domains / virtual_mailbox_maps / virtual_alias_maps /
 * mydestination / relay_domains (temporary lookup failure: 451 4.3.0,
 * never 550), and the access-table actions of access(5).
 *
 * Every check is asynchronous: table lookups go through table_async (a
 * slow database stalls only the sessions that wait on it), and the answer
 * always comes back through the callback on the event loop, never before
 * the call returns (the table_async.h contract, kept even when no lookup
 * was needed).
 *
 * The engine is built once per process from the service's configuration
 * (main.cf with master.cf -o overrides): an unknown restriction name, a
 * restriction in a list where it makes no sense, or a missing table
 * argument is an error at startup naming the parameter (Postfix logs a
 * fatal "unknown smtpd restriction"). reject_unknown_sender_domain and
 * reject_unknown_recipient_domain ask DNS (restrict_engine_set_dns).
 *
 * Who the client proved to be: permit_sasl_authenticated (permits when
 * req->sasl_username is set); reject_sender_login_mismatch and its
 * authenticated_/unauthenticated_/known_ variants, which look the MAIL
 * FROM address up in smtpd_sender_login_maps (never the AUTH= value) and
 * answer "553 5.7.1 <s>: Sender address rejected: not owned by user L" or
 * "... not logged in" (a login restriction with an empty
 * smtpd_sender_login_maps is a startup error; with smtpd_sasl_auth_enable
 * = no they are skipped with Postfix's warning); permit_tls_clientcerts
 * (relay_clientcerts), permit_tls_all_clientcerts and check_ccert_access,
 * from the req->ccert_* fields smtpd fills after the TLS handshake.
 *
 * Later issues add check_policy_service, reject_rbl_client, the other
 * DNS checks (reject_unknown_helo_hostname ...: refused at startup as
 * "not supported yet" until then) and rate limits: each is one more
 * entry in the restriction table in restrict.c (a function that may
 * start lookups), nothing else changes.
 */
#ifndef POSTERN_RESTRICT_H
#define POSTERN_RESTRICT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"
#include "base/strv.h"

struct config;
struct table_async;

/* The SMTP stage a check runs for. */
enum restrict_stage {
	RESTRICT_CONNECT, /* smtpd_client_restrictions */
	RESTRICT_HELO, /* smtpd_helo_restrictions */
	RESTRICT_MAIL, /* smtpd_sender_restrictions (+ reject_unlisted_sender) */
	RESTRICT_RCPT, /* relay + recipient restrictions (+ unlisted recipient);
	                * with smtpd_delay_reject = yes also client, helo and
	                * sender restrictions, as Postfix does */
	RESTRICT_ETRN, /* smtpd_etrn_restrictions (client and HELO lists first
	                * with smtpd_delay_reject = yes); request: etrn_domain */
	RESTRICT_DATA, /* smtpd_data_restrictions */
	RESTRICT_END_OF_DATA, /* smtpd_end_of_data_restrictions */
};

/* What smtpd knows about the session and transaction. All strings are
 * borrowed for the duration of restrict_check() (the engine copies what
 * it keeps while a lookup is pending). NULL means "not known yet". */
struct restrict_request {
	const char *etrn_domain; /* RESTRICT_ETRN: the domain, for the reply */
	const char *client_address; /* "192.0.2.1", "2001:db8::1" */
	const char *client_name; /* verified reverse name, or "unknown" */
	const char *reverse_client_name; /* unverified PTR name, or "unknown" */
	unsigned client_port;
	const char *helo_name; /* as sent, NULL before HELO/EHLO */
	const char *protocol; /* "SMTP", "ESMTP" */
	const char *sender; /* internal form, "" for <>, NULL before MAIL */
	const char *recipient; /* internal form, RCPT stage only */
	const char *sasl_username; /* NULL unless authenticated */
	const char *sasl_method;
	const char *sasl_sender; /* MAIL FROM's AUTH= value when authenticated, or NULL */
	bool tls; /* the session is encrypted */
	/* TLS client certificate (NULL when none was presented): the
	 * fingerprints as Postfix prints them (upper-case hex pairs joined
	 * by ':', smtpd_tls_fingerprint_digest), subject and issuer CN, and
	 * whether it verified against smtpd_tls_CAfile/CApath. */
	const char *ccert_fingerprint;
	const char *ccert_pubkey_fingerprint;
	const char *ccert_subject;
	const char *ccert_issuer;
	bool ccert_verified;
	size_t recipient_count; /* accepted so far in this transaction */
	size_t message_size; /* END_OF_DATA: the size; else SIZE= or 0 */
};

enum restrict_verdict {
	RESTRICT_ACCEPT, /* no list rejected: go on */
	RESTRICT_REJECT, /* 5xx: reply holds the complete reply */
	RESTRICT_DEFER, /* 4xx (defer, DEFER, temporary lookup failure,
	                 * defer_unauth_destination ...) */
};

/* Actions that apply to the whole message (access(5) HOLD, DISCARD,
 * FILTER, REDIRECT, PREPEND): collected across the checks of one
 * transaction and handed to cleanup (cleanup_hold() ...). smtpd owns the
 * struct, initialises it at MAIL and resets it at RSET/end of message. */
struct restrict_actions {
	bool hold;
	str_t hold_reason;
	bool discard;
	str_t discard_reason;
	str_t filter; /* "" or "transport:nexthop" (the last FILTER wins) */
	str_t redirect; /* "" or an address (the last REDIRECT wins) */
	strv_t prepend; /* header lines from PREPEND, in order */
};
void restrict_actions_init(struct restrict_actions *a);
void restrict_actions_reset(struct restrict_actions *a);
void restrict_actions_free(struct restrict_actions *a);

struct restrict_result {
	enum restrict_verdict verdict;
	/* REJECT/DEFER: the complete reply without CRLF, as Postfix words it:
	 *   "554 5.7.1 <u@x.example>: Relay access denied"
	 *   "550 5.1.1 <u@d.example>: Recipient address rejected: User unknown
	 *    in virtual mailbox table"
	 *   "451 4.3.0 <u@d.example>: Temporary lookup failure"
	 * smtpd sends it and logs "NOQUEUE: reject: RCPT from
	 * name[addr]: <reply>; from=<...> to=<...> proto=ESMTP helo=<...>". */
	str_t reply;
	/* For the log line: "RCPT", "MAIL", "CONNECT", "HELO", "DATA",
	 * "END-OF-MESSAGE" (the stage that rejected). */
	const char *stage_name;
};
void restrict_result_init(struct restrict_result *r);
void restrict_result_free(struct restrict_result *r);

struct restrict_engine;

/* Build the engine from cfg (the service's configuration: it must
 * outlive the engine). pool delivers the lookups. -1 with a message
 * naming the parameter and the offending element on error. */
int restrict_engine_new(struct config *cfg, struct table_async *pool,
                        struct restrict_engine **engine_r, str_t *error);
void restrict_engine_destroy(struct restrict_engine **enginep);
/* The resolver for reject_unknown_sender_domain and
 * reject_unknown_recipient_domain (it must outlive the engine). Without
 * one these restrictions answer as for a DNS temporary failure. */
struct dns;
void restrict_engine_set_dns(struct restrict_engine *engine, struct dns *dns);

/* The answer; result is valid only during the call. */
typedef void restrict_done_cb(const struct restrict_result *result, void *ctx);

struct restrict_pending;

/* Run the checks of stage for req, adding message actions to actions
 * (may be NULL at CONNECT/HELO where none can apply to a message), and
 * call done(result, ctx) later from the event loop. Returns a handle
 * for restrict_cancel(), valid until done has run. Never NULL.
 * Per-session state that Postfix caches (e.g. the client restrictions'
 * verdict under smtpd_delay_reject) is the caller's: smtpd passes the
 * stage and the engine decides what to (re-)evaluate; a session-level
 * cache lives in struct restrict_session below. */
struct restrict_session;
struct restrict_session *restrict_session_new(struct restrict_engine *engine);
/* Cancel the session's pending checks (restrict_cancel) before this. */
void restrict_session_destroy(struct restrict_session **sessp);
/* Forget transaction state (RSET, end of message, new MAIL). */
void restrict_session_reset_transaction(struct restrict_session *sess);

struct restrict_pending *restrict_check(struct restrict_session *sess, enum restrict_stage stage,
                                        const struct restrict_request *req,
                                        struct restrict_actions *actions, restrict_done_cb *done,
                                        void *ctx);
/* Cancel a check whose callback has not run (the client went away): the
 * callback will not be called. *pp set to NULL; no-op on NULL. */
void restrict_cancel(struct restrict_pending **pp);

/* Validate the restriction parameters of cfg without building an engine
 * (for `postern check`): every problem appended to errors as
 * "main.cf, line N: smtpd_..._restrictions: ...". */
void restrict_config_check(struct config *cfg, strv_t *errors);

#endif
