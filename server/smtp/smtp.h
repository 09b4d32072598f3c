/* smtp.h - the SMTP and LMTP client (Postfix smtp(8)/lmtp(8)): state
 * shared by its files.
 *
 *   smtp.c           main: the event server, requests from qmgr (one per
 *                    qmgr connection, delivery.h), jobs, replies and the
 *                    per-recipient log lines
 *   smtp_settings.c  the smtp_* / lmtp_* parameters of the service
 *   smtp_dest.c      nexthop syntax, MX / A / AAAA lookups (c-ares), the
 *                    ordered list of server addresses to try
 *   smtp_session.c   one connection: connect, replies, failures, QUIT,
 *                    the connection cache (smtp_session.h: its state)
 *   smtp_greet.c     greeting, EHLO/LHLO, STARTTLS, AUTH, XFORWARD
 *   smtp_xact.c      MAIL/RCPT/DATA with or without PIPELINING, the
 *                    content, the replies to its end, RSET
 *   smtp_tls.c       TLS policy (security levels, smtp_tls_policy_maps),
 *                    client contexts, the handshake's verdict
 *   smtp_sasl.c      the SASL client: smtp_sasl_password_maps, mechanism
 *                    choice (PLAIN, LOGIN, CRAM-MD5), the exchange
 *
 * One binary serves both protocols: run as "lmtp" (argv[0] or master.cf
 * command) it speaks LMTP and reads the lmtp_* parameters, as Postfix's
 * smtp(8) does.
 */
#ifndef POSTERN_SMTP_H
#define POSTERN_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "base/str.h"
#include "base/strv.h"
#include "queue/queue_file.h"

struct config;
struct dns;
struct event_base;
struct event_server;
struct maps;
struct table_async;
struct table_async_request;
struct tls_client;
struct smtp_job;
struct smtp_session;

/* ---- settings (smtp_settings.c) ---- */

enum smtp_tls_level {
	SMTP_TLS_NONE,
	SMTP_TLS_MAY,
	SMTP_TLS_ENCRYPT,
	SMTP_TLS_DANE, /* dane / dane-only: treated as may / encrypt until DANE exists */
	SMTP_TLS_VERIFY,
	SMTP_TLS_SECURE,
};

struct smtp_settings {
	bool lmtp;
	const char *name; /* "smtp" or "lmtp": the log's relay name style */
	/* Timeouts, seconds. */
	unsigned connect_timeout, helo_timeout, xforward_timeout, mail_timeout, rcpt_timeout,
	        data_init_timeout, data_xfer_timeout, data_done_timeout, quit_timeout,
	        starttls_timeout, rset_timeout;
	char *helo_name;
	bool never_send_ehlo, skip_5xx_greeting;
	bool send_xforward;
	strv_t discard_ehlo; /* smtp_discard_ehlo_keywords */
	unsigned mx_address_limit, mx_session_limit;
	unsigned line_length_limit;
	bool mime_output_conversion; /* !disable_mime_output_conversion */
	unsigned mime_nesting_limit;
	bool ipv4, ipv6; /* inet_protocols */
	int address_preference; /* 0 any, 4 ipv4, 6 ipv6 */
	char *bind_address, *bind_address6;
	strv_t fallback_relay;
	bool dns_lookup; /* false: smtp_host_lookup = native (no MX, getaddrinfo) */
	char *queue_dir;
	struct queue_dir *qd;
	char *myhostname;
	/* Connection cache. */
	bool cache_on_demand;
	strv_t cache_destinations;
	unsigned cache_time_limit, reuse_time_limit;
	/* TLS. */
	enum smtp_tls_level tls_level;
	char *tls_policy_maps; /* "" when none */
	char *tls_servername; /* smtp_tls_servername: "", "hostname", "nexthop" or a name */
	strv_t tls_verify_match, tls_secure_match;
	bool tls_note_starttls_offer;
	int tls_loglevel;
	struct tls_client *tls_opportunistic, *tls_mandatory; /* NULL: TLS unavailable */
	char *tls_error; /* why the contexts could not be built */
	/* SASL. */
	bool sasl_enable;
	char *sasl_password_maps;
	strv_t sasl_security, sasl_tls_security, sasl_mech_filter;
	bool sender_dependent_auth;
	bool sasl_soft_bounce;
	/* Async lookups and DNS. */
	struct table_async *tables;
	struct dns *dns;
};

/* Read the service's parameters; fatal (with the parameter's name) on a
 * broken value, as every daemon at startup. */
void smtp_settings_read(struct config *cfg, struct event_base *base, bool lmtp,
                        struct smtp_settings *s);
void smtp_settings_free(struct smtp_settings *s);

/* TLS policy of one delivery (smtp_tls.c). */
struct smtp_tls_policy {
	enum smtp_tls_level level;
	strv_t match; /* names the certificate must match (verify, secure) */
	char *servername; /* SNI or NULL */
	bool has_protocols; /* protocols= given: disabled_protocols applies */
	unsigned disabled_protocols; /* TLS_PROTO_* bits */
};

/* ---- jobs (smtp.c) ---- */

enum smtp_rcpt_state {
	SMTP_RCPT_TODO, /* not yet settled */
	SMTP_RCPT_DONE, /* outcome set */
};

struct smtp_rcpt {
	char *id; /* rcpt_id from qmgr */
	char *address;
	char *orig; /* orig_recipient */
	char *orcpt; /* the queue file's ORCPT ("rfc822;a@b") or NULL */
	unsigned notify; /* QUEUE_NOTIFY_* */
	size_t queue_index; /* in the queue file, when has_index */
	/* A temporary failure at some server: reason and dsn hold it; the
	 * next server may still take the recipient. */
	bool soft;
	/* The server that gave the outcome (for Remote-MTA), and whether it
	 * took NOTIFY (DSN): then it, not we, reports success. */
	char *remote_mta;
	bool dsn_passed;
	bool has_index;
	enum smtp_rcpt_state state;
	char action; /* 's' sent, 'd' deferred, 'b' bounced */
	struct queue_dsn dsn;
	char *reason;
};

/* One server address to try. */
struct smtp_addr {
	char *host; /* the name ("mx1.example.com"), or the literal */
	char addr[108]; /* numeric address, or the unix socket path (sun_path) */
	int family; /* AF_INET, AF_INET6, AF_UNIX */
	unsigned port;
	unsigned pref;
	char *dest; /* the nexthop destination it came from, as written */
};

struct smtp_job {
	struct smtp_agent *agent;
	struct smtp_qconn *qconn; /* the qmgr connection that asked */
	uint64_t request_id;
	char queue_id[64];
	char *nexthop; /* as qmgr sent it */
	uint64_t time_active, agent_start, connected;
	bool cache_wanted; /* qmgr has more for this destination */
	struct queue_file *qf;
	const struct queue_envelope *env;
	struct smtp_rcpt *rcpts;
	size_t nrcpts;
	/* Where to go. */
	struct smtp_dest_lookup *lookup;
	struct smtp_addr *addrs;
	size_t naddrs, next_addr;
	unsigned sessions; /* that reached the greeting */
	bool greeted; /* some server greeted with 2xx */
	bool fallback_added;
	bool plaintext_retry; /* the next session goes without TLS ("may") */
	char *dest_key; /* "nexthop" as written, for the connection cache */
	/* Why the last attempt failed (the deferral's text when every
	 * address failed) and its code. */
	str_t last_error;
	struct queue_dsn last_dsn;
	struct smtp_session *session;
	/* TLS policy of the nexthop (level, names to match). */
	struct smtp_tls_policy tls;
	struct table_async_request *tls_lookup;
};

/* Settle recipient r of job (a final outcome for this attempt); text is
 * the reason as logged. */
void smtp_rcpt_set(struct smtp_job *job, struct smtp_rcpt *r, char action,
                   const struct queue_dsn *dsn, const char *reason);
/* Settle every recipient not yet settled. */
void smtp_job_settle_rest(struct smtp_job *job, char action, const struct queue_dsn *dsn,
                          const char *reason);
/* Recipients not yet settled. */
size_t smtp_job_todo(const struct smtp_job *job);
/* No job and no cached connection left: let the event server know
 * (max_idle, drain). */
void smtp_agent_check_idle(struct smtp_agent *agent);
/* The session ended (closed or cached): try the next address, or reply
 * to qmgr when nothing is left to do. */
void smtp_job_session_done(struct smtp_job *job);
/* The address list is ready (or failed: job settled). */
void smtp_job_addresses_ready(struct smtp_job *job);

/* ---- destinations (smtp_dest.c) ---- */

/* Parse nexthop and start looking up its addresses; calls
 * smtp_job_addresses_ready() later (never from within this call). On
 * a lookup that fails for good or for now, the job's recipients are
 * settled before that call. */
void smtp_dest_start(struct smtp_job *job, const char *nexthop);
void smtp_dest_cancel(struct smtp_dest_lookup **lp);
/* Append the smtp_fallback_relay hosts' addresses (later call of
 * smtp_job_addresses_ready()). Returns false when there are none. */
bool smtp_dest_fallback(struct smtp_job *job);

/* ---- sessions (smtp_session.c) ---- */

/* Connect to job->addrs[job->next_addr - 1] and deliver; ends with
 * smtp_job_session_done(). */
void smtp_session_start(struct smtp_job *job, const struct smtp_addr *a);
/* A cached connection to the same destination, or NULL. */
struct smtp_session *smtp_cache_take(struct smtp_agent *agent, const char *dest_key);
/* Run job on a cached session. */
void smtp_session_reuse(struct smtp_session *s, struct smtp_job *job);
void smtp_cache_flush(struct smtp_agent *agent);
/* "host[addr]:port" of a session, for log lines. */
const char *smtp_session_peer(const struct smtp_session *s);
/* How many deliveries this connection has carried, this one included. */
unsigned smtp_session_uses(const struct smtp_session *s);
/* The server's name ("mx.example.com"). */
const char *smtp_session_host(const struct smtp_session *s);

/* ---- the agent (smtp.c) ---- */

LIST_HEAD(smtp_session_list, smtp_session);
LIST_HEAD(smtp_qconn_list, smtp_qconn);

struct smtp_agent {
	bool lmtp;
	struct event_server *srv;
	struct event_base *base;
	struct config *cfg;
	struct smtp_settings set;
	size_t njobs;
	size_t nqconns; /* connections from qmgr still open */
	struct smtp_qconn_list qconns; /* the same, freed by finish() */
	struct smtp_session_list cache; /* idle connections kept for reuse */
	size_t ncached;
};

/* ---- TLS (smtp_tls.c) ---- */

/* The policy for job's nexthop: smtp_tls_policy_maps (async: calls
 * done(job) later) or the level. Sync when no map: returns true with pol
 * filled; else false and done() runs later with job->tls_policy set. */
void smtp_tls_policy_init(struct smtp_tls_policy *pol);
void smtp_tls_policy_free(struct smtp_tls_policy *pol);
/* Parse a policy map value ("encrypt", "secure match=a:b", "none") into
 * pol; -1 with why. */
int smtp_tls_policy_parse(const char *value, struct smtp_tls_policy *pol, str_t *why);
const char *smtp_tls_level_name(enum smtp_tls_level level);
/* Build the client contexts (fatal errors become tls_error: TLS
 * then defers mail that needs it). */
void smtp_tls_init(struct config *cfg, struct smtp_settings *s);
void smtp_tls_free_contexts(struct smtp_settings *s);

/* ---- SASL (smtp_sasl.c) ---- */

struct smtp_sasl;
/* Choose a mechanism among the server's offer (space separated) under
 * the settings; NULL with why when none fits. */
struct smtp_sasl *smtp_sasl_new(const struct smtp_settings *s, const char *offer, bool tls,
                                const char *user, const char *password, str_t *why);
void smtp_sasl_free(struct smtp_sasl **sp);
const char *smtp_sasl_mech(const struct smtp_sasl *sasl);
/* The initial response (base64, "=" for an empty one) or NULL. */
const char *smtp_sasl_initial(struct smtp_sasl *sasl);
/* Answer a 334 challenge (base64 text); the base64 response in out, or
 * -1 with why. */
int smtp_sasl_step(struct smtp_sasl *sasl, const char *challenge, str_t *out, str_t *why);

#endif
