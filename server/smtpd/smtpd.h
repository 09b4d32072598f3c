/* smtpd.h - shared state of the smtpd program: server, listeners, sessions.
 *
 * One process, one libevent loop, any number of listeners (one per
 * master.cf inet service whose command is smtpd, each with its own -o
 * overrides) and sessions. The files split by job:
 *   smtpd.c          main(), listeners, accept
 *   smtpd_session.c  session life cycle, line reader, dispatch, replies,
 *                    timeouts, error limits
 *   smtpd_helo.c     HELO, EHLO
 *   smtpd_mail.c     MAIL FROM (ESMTP parameters)
 *   smtpd_rcpt.c     RCPT TO (DSN parameters, the queue file is opened)
 *   smtpd_quota.c    RCPT refused when a mailbox is over quota
 *   smtpd_data.c     DATA, BDAT, the content stream to cleanup
 *   smtpd_misc.c     RSET, NOOP, QUIT, HELP
 *   smtpd_tls.c      STARTTLS, the smtps wrapper mode, TLS settings and
 *                    log lines (lib/tls)
 *   smtpd_auth.c     AUTH, the AUTH= MAIL parameter, SASL settings
 *                    (lib/sasl)
 *   smtpd_xclient.c  XCLIENT, XFORWARD (smtpd_authorized_xclient_hosts,
 *                    smtpd_authorized_xforward_hosts)
 *   smtpd_etrn.c     ETRN: fast_flush_domains, the deferred queue flushed
 *                    in a worker (lib/queue/queue_flush.c)
 *   smtpd_vrfy.c     VRFY (the recipient restrictions decide)
 *   smtpd_log.c      Postfix-format log lines (reject, disconnect stats)
 *   smtpd_limit.c    smtpd_client_connection_count_limit (shared count)
 *   smtpd_netlist.c  client address/network lists (limit exceptions,
 *                    bare newline exclusions)
 *   smtpd_forbid.c   smtpd_forbidden_commands (unknown commands that end
 *                    the session)
 *   (lib/dns/dns.c: the client's host name, c-ares, forward-confirmed)
 */
#ifndef POSTERN_SMTPD_H
#define POSTERN_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "base/strv.h"
#include "cleanup/cleanup.h"
#include "daemon/conn_count.h"
#include "daemon/tls_config.h"
#include "smtp/restrict.h"
#include "smtp/smtp_cmd.h"

struct bufferevent;
struct sockaddr;
struct config;
struct daemon;
struct event;
struct event_base;
struct evconnlistener;
struct queue_dir;
struct dns;
struct dns_req;
struct table_async;
struct table_async_request;
struct smtpd_quota;
struct smtpd_forbidden;
struct smtpd_etrn;
struct smtpd_etrn_check;
struct smtpd_xstate;
struct tls_server;
struct tls_info;
struct sasl_server;
struct sasl_session;

/* smtpd_forbid_bare_newline (Postfix 3.7.11's values). */
enum smtpd_bare_newline {
	SMTPD_BARE_NO, /* a bare LF ends a line, ".\n" ends DATA */
	SMTPD_BARE_NORMALIZE, /* "yes" too: LF ends a line, DATA ends at CRLF.CRLF only */
	SMTPD_BARE_REJECT, /* refused: a command ends the session, a message at its end */
};

/* Settings of one listener, read once from its configuration. Strings
 * are owned by the listener's config. */
struct smtpd_settings {
	const char *myhostname;
	const char *banner; /* smtpd_banner, expanded */
	const char *mail_name;
	size_t line_limit; /* line_length_limit */
	uint64_t size_limit; /* message_size_limit; 0 = none */
	uint64_t queue_minfree; /* queue_minfree, bytes */
	int64_t rcpt_limit; /* smtpd_recipient_limit */
	int64_t hop_limit; /* hopcount_limit */
	uint64_t timeout; /* smtpd_timeout, seconds */
	int64_t soft_error_limit;
	int64_t hard_error_limit;
	uint64_t error_sleep; /* smtpd_error_sleep_time, seconds */
	int64_t junk_limit; /* smtpd_junk_command_limit */
	enum smtpd_bare_newline bare_newline;
	int bare_newline_code; /* smtpd_forbid_bare_newline_reject_code */
	bool disable_vrfy;
	bool helo_required;
	bool smtputf8;
	bool strict_smtputf8; /* UTF-8 addresses only with SMTPUTF8 declared */
	bool sloppy_envelopes; /* strict_rfc821_envelopes = no */
	bool peername_lookup; /* smtpd_peername_lookup */
	const strv_t *discard_ehlo; /* smtpd_discard_ehlo_keywords */
};

struct smtpd_server;

/* smtpd_netlist.c: a list of client addresses and networks. */
struct smtpd_net;
struct smtpd_netlist {
	struct smtpd_net *v;
	size_t n;
};
/* Parse list (param's value; host names and tables are skipped with a
 * warning naming service and param). */
void smtpd_netlist_init(struct smtpd_netlist *l, const strv_t *list, const char *service,
                        const char *param);
void smtpd_netlist_free(struct smtpd_netlist *l);
/* Does the numeric address (as in a session's addr) match? The first
 * matching element decides; "!element" is a no. */
bool smtpd_netlist_match(const struct smtpd_netlist *l, const char *addr);

struct smtpd_listener {
	struct smtpd_server *server;
	char *service; /* master.cf service name, "(command line)" */
	struct config *cfg;
	struct smtpd_settings set;
	struct restrict_engine *engine;
	struct cleanup_settings *cleanup;
	struct smtpd_quota *quota; /* NULL: no over-quota check */
	unsigned conn_limit; /* smtpd_client_connection_count_limit; 0 = none */
	struct conn_count *conn_count; /* NULL: connections not counted */
	struct smtpd_netlist limit_nets; /* smtpd_client_event_limit_exceptions */
	struct smtpd_netlist bare_newline_exclusions; /* smtpd_forbid_bare_newline_exclusions */
	struct smtpd_forbidden *forbidden; /* smtpd_forbidden_commands */

	/* ETRN (smtpd_etrn.c): fast_flush_domains and the flush runner. */
	struct smtpd_etrn *etrn;

	/* XCLIENT and XFORWARD (smtpd_xclient.c): who may use them. */
	struct smtpd_netlist xclient_hosts; /* smtpd_authorized_xclient_hosts */
	struct smtpd_netlist xforward_hosts; /* smtpd_authorized_xforward_hosts */

	/* TLS (smtpd_tls.c). */
	enum tls_level tls_level; /* daemon/tls_config.h */
	bool tls_wrapper; /* smtpd_tls_wrappermode: TLS from the first byte */
	bool tls_auth_only; /* smtpd_tls_auth_only */
	bool tls_received_header; /* smtpd_tls_received_header */
	bool tls_ask_ccert; /* a client certificate is asked for */
	bool tls_req_ccert; /* ... and must verify (encrypt only) */
	int tls_loglevel;
	uint64_t starttls_timeout; /* smtpd_starttls_timeout, seconds */
	struct tls_server *tls; /* NULL: no TLS (level none, or it could not be set up) */

	/* SMTP AUTH (smtpd_auth.c). */
	struct sasl_server *sasl; /* NULL: smtpd_sasl_auth_enable = no */
	struct smtpd_netlist sasl_exceptions; /* smtpd_sasl_exceptions_networks */
	bool sasl_broken_clients; /* broken_sasl_auth_clients */
	bool sasl_auth_header; /* smtpd_sasl_authenticated_header */
	size_t sasl_response_limit; /* smtpd_sasl_response_limit */
	uint64_t sasl_failure_delay; /* smtpd_sasl_failure_delay, seconds */
	unsigned sasl_failure_limit; /* smtpd_sasl_failure_limit (0 = none) */
	struct table_async_request *sasl_refresh; /* asking for the mechanisms again */
	time_t sasl_refresh_at; /* when that was last started */
};

struct smtpd_server {
	struct daemon *daemon;
	struct event_server *es; /* the skeleton (event_server.h) */
	struct event_base *base;
	struct table_async *pool;
	struct dns *dns; /* the resolver of every listener */
	struct queue_dir *qd;
	struct smtpd_listener **listeners;
	size_t n_listeners;
	size_t n_sessions;
	struct smtpd_session *sessions; /* every open session, for shutdown */
	bool draining; /* SIGUSR1 from master: exit when the last session ends */
};

enum smtpd_state {
	SMTPD_ST_CONNECT, /* client restrictions running; no banner yet */
	SMTPD_ST_CMD, /* reading commands */
	SMTPD_ST_DATA, /* reading DATA content up to "." */
	SMTPD_ST_BDAT, /* reading a BDAT chunk */
	SMTPD_ST_TLS, /* TLS handshake (STARTTLS or the smtps wrapper) */
	SMTPD_ST_AUTH, /* reading an AUTH response line */
	SMTPD_ST_CLOSING, /* flushing the last reply, then freed */
};

/* Outcome of the content so far (DATA/BDAT). */
enum smtpd_content_err {
	SMTPD_CONTENT_OK,
	SMTPD_CONTENT_TOO_BIG,
	SMTPD_CONTENT_HOPS,
	SMTPD_CONTENT_BARE_LF, /* smtpd_forbid_bare_newline = reject */
	SMTPD_CONTENT_BARE_CR,
};

struct smtpd_session {
	struct smtpd_session *next, *prev; /* server->sessions */
	struct smtpd_listener *lis;
	const struct smtpd_settings *set;
	struct bufferevent *bev;
	char addr[64]; /* numeric address from inet_ntop */
	unsigned port;
	char local_addr[64]; /* the server's end of the connection */
	unsigned local_port;
	const char *name; /* verified host name, or "unknown" */
	const char *reverse_name; /* PTR name (maybe unverified), or "unknown" */
	char *name_buf; /* owns name and reverse_name when looked up */
	char *reverse_buf;
	struct dns_req *dns; /* name lookup in progress */
	enum smtpd_state state;
	unsigned conn_count; /* connections from addr incl. this one; 0 = not counted */
	struct conn_count_key conn_key;
	bool conn_exempt; /* smtpd_client_event_limit_exceptions */
	enum smtpd_bare_newline bare_mode; /* the setting, or NO for an exclusion */
	bool waiting; /* a restriction check is pending: input paused */
	bool access_denied; /* client restrictions rejected at connect */
	str_t denied_reply;
	struct event *resume_ev; /* input processing on a later loop turn */
	struct event *sleep_ev; /* smtpd_error_sleep_time */

	/* Session. */
	char *helo; /* NULL before HELO/EHLO */
	bool esmtp;
	struct restrict_session *rs;
	struct restrict_pending *pending;
	struct table_async_request *quota_req; /* over-quota check running */
	struct restrict_request req; /* strings borrowed from the session */
	const char *last_cmd; /* "lost connection after X" */
	unsigned cmd_total[SMTP_VERB_COUNT];
	unsigned cmd_ok[SMTP_VERB_COUNT];
	unsigned errors;
	unsigned junk;
	str_t line; /* the current line */
	bool skipping_line; /* dropping the rest of an overlong command line */
	bool line_cut; /* s->line is the cut start of an overlong line */
	str_t scratch;

	/* Transaction. */
	bool in_mail;
	char *sender; /* internal form; "" for <> */
	char *envid;
	unsigned ret;
	bool smtputf8;
	bool body_8bitmime; /* MAIL FROM ... BODY=8BITMIME */
	uint64_t size_declared;
	struct restrict_actions actions;
	struct cleanup *cleanup;
	size_t nrcpt;
	char *first_rcpt; /* for the Received header's "for" */
	char *cur_rcpt; /* RCPT being checked */
	char *cur_orcpt;
	char *vrfy_arg; /* VRFY being checked: its argument as sent */
	unsigned cur_notify;
	bool bdat_used; /* a BDAT sequence is open (until LAST or RSET) */
	bool bdat_error; /* a chunk was refused: the rest are discarded (551) */
	uint64_t bdat_total; /* bytes of the chunks taken so far */
	/* Content. */
	bool in_header;
	bool in_continued_line; /* the last piece had more = true */
	bool prev_line_crlf; /* the last DATA line ended in CRLF (or none yet) */
	uint64_t data_size;
	int64_t hops;
	enum smtpd_content_err content_err;
	uint64_t bdat_remaining;
	uint64_t bdat_chunk; /* size of the current chunk */
	bool bdat_last;
	bool bdat_discard; /* skipping a chunk after an error */
	str_t bdat_line; /* partial line carried across BDAT chunks */

	/* ETRN (smtpd_etrn.c): the request in progress (input paused), or
	 * NULL. smtpd_session.c never touches it: smtpd_etrn.c finds the
	 * session again through this field when an answer arrives, and
	 * drops the answer when the session is gone. */
	struct smtpd_etrn_check *etrn_check;
	char *etrn_domain; /* ETRN's domain while its restrictions run */

	/* XCLIENT and XFORWARD (smtpd_xclient.c). XCLIENT rewrites name,
	 * reverse_name (in name_buf/reverse_buf), addr, port, helo and esmtp
	 * above; the rest is in *xstate (NULL until the first XCLIENT or
	 * XFORWARD value to keep; freed with the session). */
	bool xauth_known; /* xclient_ok and xforward_ok are decided */
	bool xclient_ok; /* addr is in smtpd_authorized_xclient_hosts */
	bool xforward_ok; /* the real client is in smtpd_authorized_xforward_hosts */
	bool port_unknown; /* XCLIENT PORT=[UNAVAILABLE]: port means nothing */
	struct smtpd_xstate *xstate;

	/* TLS (smtpd_tls.c): what the handshake gave; NULL in plaintext. */
	struct tls_info *tls;
	bool tls_wrapper_pending; /* smtps: the handshake comes before the banner */

	/* SMTP AUTH (smtpd_auth.c). */
	char *sasl_username; /* NULL until AUTH succeeded */
	char *sasl_method;
	char *sasl_sender; /* MAIL's AUTH= value (authenticated sessions) */
	char *auth_mech; /* the exchange in progress */
	struct sasl_session *sasl; /* the exchange's state, while not in a worker */
	struct table_async_request *auth_req; /* a step running in a worker */
	unsigned auth_failures;
	unsigned auth_rounds; /* challenges sent in the exchange so far */
	struct event *auth_delay_ev; /* the pause after a failed AUTH */
	str_t auth_reply; /* held back during that pause */
};

/* smtpd_limit.c */
/* Read the listener's limit and exceptions and open its shared counter
 * (nothing is fatal: a counter that cannot be used counts nothing). */
void smtpd_limit_init(struct smtpd_listener *lis, const char *queue_directory);
void smtpd_limit_free(struct smtpd_listener *lis);
/* Count the new session's connection (at accept). */
void smtpd_limit_connect(struct smtpd_session *s, const struct sockaddr *sa);
/* Once the client's name is known: over the limit and not exempt -> the
 * warning and the 421 (session closing); true then. */
bool smtpd_limit_exceeded(struct smtpd_session *s);
/* The session ends: uncount it (idempotent). */
void smtpd_limit_disconnect(struct smtpd_session *s);

/* smtpd_helo.c: clean a HELO name in place as Postfix does (controls,
 * white space, invalid 8-bit and <>()";@\ become '?'); returns name. */
char *smtpd_helo_clean(const struct smtpd_session *s, char *name);

/* smtpd_forbid.c */
/* The listener's smtpd_forbidden_commands; -1 with a message naming the
 * parameter (a table that cannot be opened, or a remote one). */
int smtpd_forbidden_new(struct config *cfg, const char *config_dir, struct smtpd_forbidden **fp,
                        str_t *error);
void smtpd_forbidden_free(struct smtpd_forbidden **fp);
/* Does the first word of an unknown command (len bytes) end the session?
 * A header-like word ("Subject:") always does. */
bool smtpd_forbidden_match(const struct smtpd_forbidden *f, const char *word, size_t len);

/* smtpd_session.c */
/* Close every session (shutdown): pending checks cancelled, open queue
 * files removed, nothing sent. */
void smtpd_session_close_all(struct smtpd_server *srv);
void smtpd_session_start(struct smtpd_listener *lis, int fd, const struct sockaddr *sa, int salen);
/* Send one reply line (without CRLF; a multi-line reply has "\r\n" between
 * its lines already). */
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Count an error reply: sends it, sleeps past the soft limit, hangs up at
 * the hard limit. */
void smtpd_reply_error(struct smtpd_session *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Send a 421/521 reply and close after it is flushed. */
void smtpd_hangup(struct smtpd_session *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Input is paused while a check runs; call when it is done. */
void smtpd_session_wait(struct smtpd_session *s);
void smtpd_session_resume(struct smtpd_session *s);
/* Forget the transaction (RSET, end of message, HELO). */
void smtpd_transaction_reset(struct smtpd_session *s);
/* Fill s->req for a stage. */
void smtpd_request_fill(struct smtpd_session *s);
/* Mark the current command as succeeded (for the disconnect counts). */
void smtpd_cmd_ok(struct smtpd_session *s, enum smtp_verb verb);
/* Command handlers: the argument is arg/len from smtp_cmd. */
typedef void smtpd_cmd_fn(struct smtpd_session *s, const struct smtp_cmd *cmd);
smtpd_cmd_fn smtpd_cmd_helo, smtpd_cmd_ehlo, smtpd_cmd_mail, smtpd_cmd_rcpt, smtpd_cmd_data,
        smtpd_cmd_bdat, smtpd_cmd_rset, smtpd_cmd_noop, smtpd_cmd_quit, smtpd_cmd_help,
        smtpd_cmd_vrfy, smtpd_cmd_etrn, smtpd_cmd_starttls, smtpd_cmd_auth, smtpd_cmd_xclient;

/* smtpd_data.c: consume content from the input buffer; returns false
 * when the session must stop reading for now (need more data, waiting,
 * or closing). */
bool smtpd_data_input(struct smtpd_session *s);
bool smtpd_bdat_input(struct smtpd_session *s);

/* smtpd_rcpt.c: the recipient passed every check: queue it, reply 250,
 * resume input. */
void smtpd_rcpt_accept(struct smtpd_session *s);

/* smtpd_quota.c */
/* The listener's over-quota check, or NULL when smtpd_reject_over_quota
 * = no or virtual_mailbox_maps does not name db:mailboxes (no quota to
 * check). cfg is copied. */
struct smtpd_quota *smtpd_quota_new(struct config *cfg, const char *config_dir);
/* Only after the table_async pool is destroyed (its workers use it).
 * *qp set to NULL; no-op on NULL. */
void smtpd_quota_destroy(struct smtpd_quota **qp);
/* Check s->cur_rcpt, which the restrictions accepted: either
 * smtpd_rcpt_accept(s) is called, or a 552/452 (over quota) or 451
 * (lookup failure) is sent and logged and input resumed; later, from the
 * event loop, through s->quota_req (cancel it when the session ends). */
void smtpd_quota_check(struct smtpd_session *s);

/* smtpd_etrn.c */
/* The listener's ETRN state: fast_flush_domains parsed from lis->cfg.
 * -1 with a message naming the parameter (*ep is set all the same and
 * must be destroyed). */
int smtpd_etrn_new(struct smtpd_listener *lis, struct smtpd_etrn **ep, str_t *error);
/* Only after the table_async pool is destroyed (it runs the flushes and
 * the lookups). *ep set to NULL; no-op on NULL. */
void smtpd_etrn_destroy(struct smtpd_etrn **ep);

/* smtpd_xclient.c (the verbs: smtpd_cmd_xclient, for XFORWARD too) */
/* The EHLO keyword with its attribute list for verb (SMTP_VERB_XCLIENT
 * or SMTP_VERB_XFORWARD), Postfix 3.7's words, or NULL when this client
 * may not use the verb. */
const char *smtpd_xclient_ehlo_keyword(struct smtpd_session *s, enum smtp_verb verb);
/* The queue file was just opened (s->cleanup): add the XCLIENT LOGIN
 * (sasl_method/sasl_username) and XFORWARD (log_* attributes, which the
 * transaction takes: the next one has none) attributes, and append
 * Postfix's additions to the "ID: client=name[addr]" log line to
 * log_suffix (", sasl_method=XCLIENT, sasl_username=u, orig_queue_id=I,
 * orig_client=name[addr]"). */
void smtpd_xclient_queue(struct smtpd_session *s, str_t *log_suffix);
/* Free the listener's XCLIENT/XFORWARD host lists (at shutdown). */
void smtpd_xclient_free(struct smtpd_listener *lis);
/* Forget the XFORWARD values (a MAIL refused by the restrictions or for
 * queue space, as Postfix's mail_reset()). */
void smtpd_xforward_reset(struct smtpd_session *s);
/* The login an XCLIENT LOGIN= gave the session, or NULL. */
const char *smtpd_xclient_login(const struct smtpd_session *s);
/* The session ends: free its XCLIENT/XFORWARD values. */
void smtpd_xclient_session_free(struct smtpd_session *s);

/* smtpd_tls.c */
/* The listener's TLS settings and server context. A certificate that
 * cannot be loaded is a warning naming the file (TLS then unavailable:
 * STARTTLS answers 454), as in Postfix; a bad setting is an error. */
int smtpd_tls_listener_init(struct smtpd_listener *lis, str_t *error);
void smtpd_tls_listener_free(struct smtpd_listener *lis);
/* Is STARTTLS announced to this session? */
bool smtpd_tls_offered(const struct smtpd_session *s);
/* Security level encrypt, no TLS yet, and a verb Postfix refuses then
 * (MAIL, RCPT, DATA, BDAT, RSET, VRFY, ETRN, AUTH): the 530 reply was
 * sent; true then. */
bool smtpd_tls_refuse_plaintext(struct smtpd_session *s, enum smtp_verb verb);
/* smtps: start the handshake before the client restrictions and the
 * banner; smtpd_session_connected(s) follows when it is done. */
void smtpd_tls_wrapper_start(struct smtpd_session *s);
/* A bufferevent event in SMTPD_ST_TLS (handshake done, failed, timed out). */
void smtpd_tls_event(struct smtpd_session *s, short what);
/* Fill the TLS fields of s->req. */
void smtpd_tls_request_fill(struct smtpd_session *s);
/* Append the Received header's TLS comment lines ("\n\t(using ...)")
 * when smtpd_tls_received_header = yes and the session is encrypted. */
void smtpd_tls_received(const struct smtpd_session *s, str_t *h);
void smtpd_tls_session_free(struct smtpd_session *s);

/* smtpd_auth.c */
/* The listener's SASL server (smtpd_sasl_auth_enable = yes) and settings;
 * -1 with a message naming the parameter. */
int smtpd_auth_listener_init(struct smtpd_listener *lis, str_t *error);
void smtpd_auth_listener_free(struct smtpd_listener *lis);
/* The EHLO AUTH line(s) for this session ("AUTH PLAIN LOGIN", and
 * "AUTH=PLAIN LOGIN" for broken clients) appended to kws (n entries, at
 * most 2 more); the strings live in the session's scratch storage until
 * the reply is sent. */
size_t smtpd_auth_ehlo_keywords(struct smtpd_session *s, const char **kws, size_t n);
/* An AUTH response line in SMTPD_ST_AUTH. */
void smtpd_auth_response(struct smtpd_session *s);
/* MAIL FROM's AUTH=value: -1 after an error reply. */
int smtpd_auth_mail_param(struct smtpd_session *s, const char *value);
/* The queue file was opened: sasl_* attributes and the log suffix. */
void smtpd_auth_queue(struct smtpd_session *s, str_t *log_suffix);
/* Stop a step running in a worker and the failure pause (the session is
 * closing): neither comes back to the session. */
void smtpd_auth_cancel(struct smtpd_session *s);
/* Forget the login (STARTTLS, RFC 3207) and any exchange in progress. */
void smtpd_auth_reset(struct smtpd_session *s);
void smtpd_auth_session_free(struct smtpd_session *s);

/* smtpd_session.c: the connection is set up (name known, TLS done for
 * smtps): run the client restrictions, then the banner. */
void smtpd_session_connected(struct smtpd_session *s);
/* Replace the session's bufferevent (the TLS filter over the socket's)
 * and give it the session's callbacks and timeouts (seconds). */
void smtpd_session_set_bev(struct smtpd_session *s, struct bufferevent *bev, uint64_t timeout);
/* A socket address as numeric text (IPv4-mapped IPv6 as IPv4) and port. */
void smtpd_sockaddr_text(const struct sockaddr *sa, char *buf, size_t size, unsigned *port_r);
/* End the session without a reply (no connection to reply on, or one
 * that speaks TLS we cannot give): log the disconnect statistics, free it
 * on the next loop turn. Safe from a command handler. */
void smtpd_session_abort(struct smtpd_session *s);
/* End the session now (from a bufferevent callback): log the disconnect
 * statistics and free it. */
void smtpd_session_drop(struct smtpd_session *s);

/* smtpd_log.c */
void smtpd_log_reject(struct smtpd_session *s, const char *stage, const char *reply,
                      const char *recipient);
void smtpd_log_disconnect(struct smtpd_session *s);

#endif
