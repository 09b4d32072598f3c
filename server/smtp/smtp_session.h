/* smtp_session.h - one client connection's state, shared by the files
 * that speak to the server (private to server/smtp):
 *
 *   smtp_session.c  the connection: connect, reading replies, failures,
 *                   QUIT, the connection cache, the reply dispatcher
 *   smtp_greet.c    greeting, EHLO/LHLO and its extensions, STARTTLS and
 *                   the certificate check, AUTH, XFORWARD
 *   smtp_xact.c     the mail transaction: MAIL, RCPT, DATA (pipelined or
 *                   not), the content, the replies to its end, RSET
 */
#ifndef POSTERN_SMTP_SESSION_H
#define POSTERN_SMTP_SESSION_H

#include <event2/bufferevent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp.h"

struct table_async_request;

enum sstate {
	S_CONNECTING,
	S_GREETING,
	S_EHLO,
	S_HELO,
	S_STARTTLS,
	S_HANDSHAKE,
	S_AUTH_LOOKUP,
	S_AUTH,
	S_XFORWARD,
	S_RSET,
	S_TRANSACTION, /* replies to MAIL, RCPT..., DATA */
	S_CONTENT,
	S_DOT, /* replies to the end of the content */
	S_DOT_EMPTY, /* 354 with no recipient accepted: "." sent, reply ignored */
	S_QUIT,
	S_IDLE, /* in the connection cache */
};

/* The command a reply answers, for "(in reply to X command)". */
enum step_kind {
	STEP_MAIL,
	STEP_RCPT,
	STEP_DATA,
	STEP_BDAT, /* no command: the content goes in BDAT chunks (RFC 3030) */
};

struct step {
	enum step_kind kind;
	size_t rcpt; /* STEP_RCPT: index in job->rcpts */
};

struct smtp_session {
	LIST_ENTRY(smtp_session) link; /* in agent->cache when idle */
	struct smtp_agent *agent;
	struct smtp_job *job;
	struct bufferevent *bev;
	char *host;
	char addr[108];
	int family;
	unsigned port;
	char *peer; /* host[addr]:port */
	char *dest_key; /* the job's whole nexthop: the connection cache's key */
	char *dest; /* the destination this server belongs to (TLS names) */
	enum sstate state;
	uint64_t started_usec;
	unsigned uses; /* deliveries on this connection (conn_use=) */
	struct event *idle_ev;
	/* The reply being read. */
	str_t reply; /* "250 first line text second line text ..." */
	strv_t reply_lines; /* each line's text after "NNN-" */
	int code;
	unsigned lines;
	/* What the server offered. */
	bool esmtp, pipelining, dsn, eightbit, smtputf8, starttls, xforward, chunking;
	bool size; /* SIZE offered (RFC 1870) */
	uint64_t size_limit; /* 0: no limit announced */
	char *auth_mechs;
	strv_t xforward_names;
	bool tls_active, authenticated;
	bool no_tls; /* a failed handshake at "may": plaintext this time */
	struct smtp_sasl *sasl;
	struct table_async_request *sasl_req;
	strv_t sasl_keys;
	size_t sasl_key, sasl_map;
	strv_t sasl_maps;
	/* The transaction. */
	struct step *steps;
	size_t nsteps, next_send, next_reply;
	bool mail_failed;
	bool too_many; /* a RCPT got 452: the rest in another transaction */
	size_t *accepted; /* indices of recipients RCPT accepted, in order */
	size_t naccepted, lmtp_next;
	unsigned xforward_pending;
	/* BDAT: this transaction sends its content in chunks; replies still
	 * owed; the first failed chunk's reply. */
	bool bdat, bdat_failed;
	unsigned bdat_pending;
	int bdat_fail_code;
	str_t bdat_fail_reply;
	/* Content streaming: from the queue file, or from converted (the
	 * 7-bit form for a server without 8BITMIME) when not NULL. */
	str_t *converted;
	uint64_t content_pos;
	size_t line_len;
	bool at_line_start;
	bool failed; /* the session must not be cached */
	/* In a callback that may end the session: session_free() only sets
	 * dead, and the callback frees it on its way out. */
	bool guard, dead;
	bool pending_cr; /* the last content chunk ended in CR */
};

/* smtp_session.c */
void smtp_session_set_timeout(struct smtp_session *s, unsigned seconds);
/* Write one command line (CRLF added). */
void smtp_session_send(struct smtp_session *s, const char *line);
/* The server's enhanced status code of a reply, or one made from its
 * reply code (5xx: 5.0.0). */
struct queue_dsn smtp_reply_dsn(int code, const char *text);
/* "host H[A] said: REPLY (in reply to COMMAND command)", appended. */
void smtp_session_said(const struct smtp_session *s, const char *command, str_t *out);
/* The text after "NNN " of the current reply. */
const char *smtp_session_reply_text(const struct smtp_session *s);
/* Recipient i failed at this server with the current reply: 5xx
 * bounces it, 4xx keeps it for the next server. */
void smtp_session_rcpt_fail(struct smtp_session *s, size_t i, const char *command);
/* The session cannot go on: why becomes the reason of the recipients
 * left (bounced now when final and dsn is 5.x.x), then it closes. */
void smtp_session_fail(struct smtp_session *s, const struct queue_dsn *dsn, const char *why,
                       bool final);
/* The transaction is over: cache the connection or QUIT. */
void smtp_session_done(struct smtp_session *s);
/* The bufferevent callbacks of a working session. */
void smtp_session_on_read(struct bufferevent *bev, void *arg);
void smtp_session_on_event(struct bufferevent *bev, short what, void *arg);

/* smtp_greet.c */
void smtp_greet_on_greeting(struct smtp_session *s);
void smtp_greet_on_ehlo(struct smtp_session *s);
void smtp_greet_on_starttls(struct smtp_session *s);
void smtp_greet_tls_done(struct smtp_session *s);
void smtp_greet_tls_failed(struct smtp_session *s);
void smtp_greet_on_auth(struct smtp_session *s);
void smtp_greet_on_xforward(struct smtp_session *s);
/* XFORWARD when wanted and offered, then the transaction. */
void smtp_greet_start_xforward(struct smtp_session *s);

/* smtp_xact.c */
void smtp_xact_start(struct smtp_session *s);
void smtp_xact_on_reply(struct smtp_session *s);
void smtp_xact_on_dot(struct smtp_session *s);
void smtp_xact_on_rset(struct smtp_session *s);
/* A reply to a BDAT chunk (the last one's as smtp_xact_on_dot()). */
void smtp_xact_on_bdat(struct smtp_session *s);

#endif
