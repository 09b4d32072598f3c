/* restrict_int.h - what the files of the restriction engine share
 * (restrict.c: lists, stages and the evaluation loop; restrict_access.c:
 * access(5) tables and their actions; restrict_addr.c: mynetworks,
 * domain lists, address classes, relay and recipient validation;
 * restrict_auth.c: SASL sender ownership and TLS client certificates).
 * Not for use outside lib/smtp/restrict*.c: smtpd uses restrict.h.
 *
 * How asynchrony works here (the "why" of the design): every check is
 * written as ordinary synchronous code that asks for table answers with
 * ev_lookup(). The answers come from a memo kept with the pending check.
 * When an answer is not in the memo yet, ev_lookup() records the wanted
 * (table, key) and returns EV_PENDING; the check unwinds at once, the
 * engine starts that one lookup through table_async, and when the answer
 * arrives it is put in the memo and the whole stage is evaluated again
 * from the start. Side effects (message actions, WARN log lines) are only
 * collected during an evaluation and applied when it completes, so
 * running a stage several times is harmless. This keeps Postfix's
 * lookup order (one lookup at a time, the first decisive answer wins)
 * without turning every restriction into a state machine; the cost is a
 * re-evaluation per lookup, bounded by RESTRICT_MAX_LOOKUPS.
 */
#ifndef POSTERN_RESTRICT_INT_H
#define POSTERN_RESTRICT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hash.h"
#include "base/str.h"
#include "base/strv.h"
#include "address/domain_list.h"
#include "address/address.h"
#include "address/address_resolve.h"
#include "smtp/restrict.h"

struct dns;
struct dns_req;

/* Lookups one check may need; more is a configuration problem (451). */
#define RESTRICT_MAX_LOOKUPS 400
/* Nesting of restriction lists given as access-table results. */
#define RESTRICT_MAX_DEPTH 20

/* Restriction kinds (the table of names is in restrict.c). */
enum rkind {
	RK_PERMIT,
	RK_REJECT,
	RK_DEFER,
	RK_WARN_IF_REJECT,
	RK_PERMIT_MYNETWORKS,
	RK_PERMIT_SASL,
	RK_REJECT_UNAUTH_DEST,
	RK_DEFER_UNAUTH_DEST,
	RK_PERMIT_AUTH_DEST,
	RK_REJECT_UNLISTED_RCPT,
	RK_REJECT_UNLISTED_SENDER,
	RK_REJECT_NON_FQDN_HELO,
	RK_REJECT_INVALID_HELO,
	RK_REJECT_NON_FQDN_SENDER,
	RK_REJECT_NON_FQDN_RCPT,
	RK_CHECK_CLIENT_ACCESS,
	RK_CHECK_HELO_ACCESS,
	RK_CHECK_SENDER_ACCESS,
	RK_CHECK_RCPT_ACCESS,
	RK_REJECT_UNKNOWN_SENDER_DOMAIN,
	RK_REJECT_UNKNOWN_RCPT_DOMAIN,
	RK_REJECT_SENDER_LOGIN_MISMATCH,
	RK_REJECT_AUTH_SENDER_LOGIN_MISMATCH,
	RK_REJECT_UNAUTH_SENDER_LOGIN_MISMATCH,
	RK_REJECT_KNOWN_SENDER_LOGIN_MISMATCH,
	RK_PERMIT_TLS_CLIENTCERTS,
	RK_PERMIT_TLS_ALL_CLIENTCERTS,
	RK_CHECK_CCERT_ACCESS,
};

struct rstep {
	enum rkind kind;
	char *arg; /* table spec for check_*_access, else NULL */
};

struct rlist {
	const char *param; /* "smtpd_recipient_restrictions" */
	struct rstep *v;
	size_t n;
};

/* One mynetworks element. */
struct rnet {
	bool neg;
	int family; /* AF_INET, AF_INET6, or 0 for a name / table */
	uint8_t addr[16];
	unsigned prefix;
	char *table; /* type:name */
	char *name; /* host or .domain */
};

struct restrict_engine {
	struct config *cfg;
	struct table_async *pool;
	bool delay_reject;
	bool reject_unlisted_rcpt, reject_unlisted_sender;
	/* receive_override_options = no_unknown_recipient_checks: the
	 * service after a content filter takes any recipient (Postfix's
	 * INPUT_TRANSP_UNKNOWN_RCPT). */
	bool no_unknown_rcpt_checks;
	bool allow_untrusted_routing;
	bool access_parent_style; /* smtpd_access_maps in parent_domain_... */
	int access_reject_code, access_defer_code, defer_code, reject_code;
	int relay_code, unknown_local_code, unknown_alias_code, unknown_mailbox_code,
	        unknown_relay_code, non_fqdn_code, bad_name_code;
	const char *null_access_key; /* smtpd_null_access_lookup_key */
	const char *delimiter; /* recipient_delimiter */
	struct rlist client, helo, sender, relay, recipient, etrn, data, eod;
	struct rnet *nets;
	size_t nnets;
	struct domain_list mydestination, relay_domains, alias_domains, mailbox_domains;
	strv_t alias_maps, mailbox_maps, relay_recipient_maps, local_recipient_maps;
	strv_t interfaces; /* addresses of this machine, canonical text */
	struct address_resolve_options resolve;
	struct dns *dns; /* restrict_engine_set_dns(), or NULL */
	int unknown_addr_code, nullmx_code;
	bool unknown_addr_tf_defer; /* unknown_address_tempfail_action = defer */
	/* restrict_auth.c */
	strv_t sender_login_maps; /* smtpd_sender_login_maps */
	strv_t relay_ccerts; /* relay_clientcerts */
	bool sasl_enable; /* smtpd_sasl_auth_enable */
	bool tls_ask_ccert; /* smtpd_tls_ask_ccert (a warning only) */
};

struct restrict_session {
	struct restrict_engine *engine;
};

/* A memoised table answer. */
struct memo {
	int status; /* enum table_status */
	char *value;
	char *error; /* TEMPFAIL, or a stale answer: why */
	bool stale; /* the table cache's last known answer (table_result.stale) */
};

struct restrict_pending {
	struct restrict_session *sess;
	enum restrict_stage stage;
	struct restrict_request req; /* deep copy */
	struct restrict_actions *actions;
	restrict_done_cb *done;
	void *ctx;
	hash_t *memo; /* "spec\001key" -> struct memo */
	struct table_async_request *areq;
	struct dns_req *dreq; /* a DNS query instead of areq */
	char *want_spec, *want_key;
	size_t lookups;
	bool finished; /* the result below is final, waiting for delivery */
	struct restrict_result result;
	str_t result_reply;
};

/* Results of one restriction. */
enum rr {
	RR_DUNNO, /* go on with the next restriction */
	RR_OK, /* permit: ends the current list */
	RR_STOP, /* decided (ev->decided) or waiting (ev->pending) */
};

/* The state of one evaluation of a stage. */
struct eval {
	struct restrict_pending *p;
	struct restrict_engine *e;
	const struct restrict_request *req;
	bool pending; /* a lookup is wanted: unwind */
	bool decided;
	enum restrict_verdict verdict;
	str_t reply;
	bool warn_if_reject; /* the next restriction only warns */
	bool defer_if_permit;
	str_t dip_reply;
	bool defer_if_reject;
	str_t dir_reply;
	bool rcpt_checked, sender_checked; /* explicit reject_unlisted_* ran */
	unsigned depth;
	/* the list being evaluated: what a generic reject names */
	const char *reply_name;
	const char *reply_class;
	const char *namaddr; /* "name[addr]" of the client */
	const char *tempfail_why; /* a domain list lookup failed: why */
	/* Stale "not found" answers this evaluation went on with (the
	 * database was down): a 5xx resting on them becomes a 451
	 * (ev_reject()). stale_why: the first one's spec, key and reason. */
	unsigned stale_negatives;
	char *stale_why;
	struct restrict_actions acts;
	strv_t logs; /* "warn: ..." lines, logged when the check completes */
};

/* Ask for a table answer: TABLE_FOUND (*value_r set), TABLE_NOTFOUND,
 * TABLE_TEMPFAIL (*error_r set), or EV_PENDING (unwind: ev->pending). */
#define EV_PENDING (-1)
int ev_lookup(struct eval *ev, const char *spec, const char *key, const char **value_r,
              const char **error_r);
/* DNS answers go through the memo too: ev_lookup() with one of these
 * specs and the domain as key starts a dns_query() of that type instead
 * of a table lookup. TABLE_FOUND (value "nullmx" for a null MX),
 * TABLE_NOTFOUND (value "nxdomain" when the name does not exist) or
 * TABLE_TEMPFAIL (error: why). */
#define RESTRICT_DNS_MX "\001dns:mx"
#define RESTRICT_DNS_A "\001dns:a"
#define RESTRICT_DNS_AAAA "\001dns:aaaa"

/* Results of the address helpers besides their normal values. */
#define R_TEMPFAIL (-1)
#define R_PENDING (-2)

/* Flags of the table type of spec (TABLE_F_*), 0 when unknown. */
unsigned restrict_spec_flags(const char *spec);

/* Decide: a reply "CODE D.D.D text" built from fmt. Applies
 * warn_if_reject and defer_if_reject as Postfix does. Returns RR_STOP,
 * or RR_DUNNO when warn_if_reject turned it into a warning. */
enum rr ev_reject(struct eval *ev, int code, const char *dsn, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* "451 4.3.0 <name>: Temporary lookup failure", logging why. */
enum rr ev_tempfail(struct eval *ev, const char *name, const char *why);
/* Queue a log line ("warn: ..." without the stage prefix) for when the
 * check completes. */
void ev_log_whatsup(struct eval *ev, const char *what, const char *text);

/* Evaluate a restriction list given as text (an access-table result). */
enum rr ev_run_text_list(struct eval *ev, const char *text);

/* restrict_access.c */
enum rr restrict_check_client_access(struct eval *ev, const char *spec);
enum rr restrict_check_helo_access(struct eval *ev, const char *spec);
enum rr restrict_check_addr_access(struct eval *ev, const char *spec, const char *addr,
                                   const char *reply_class);
/* check_ccert_access: the certificate's fingerprint, then its public key
 * fingerprint, as whole keys; DUNNO without a client certificate. */
enum rr restrict_check_ccert_access(struct eval *ev, const char *spec);

/* restrict_addr.c */
int restrict_addr_setup(struct restrict_engine *e, str_t *error);
void restrict_addr_free(struct restrict_engine *e);
/* Parse mynetworks into e->nets; -1 with a message on a bad element. */
int restrict_parse_mynetworks(struct restrict_engine *e, const strv_t *list, str_t *error);
enum rr restrict_permit_mynetworks(struct eval *ev);
/* reject_unauth_destination (defer = false) / defer_unauth_destination /
 * permit_auth_destination (permit = true). */
enum rr restrict_unauth_destination(struct eval *ev, bool defer, bool permit);
enum rr restrict_unlisted(struct eval *ev, bool sender);
/* reject_unknown_sender_domain (sender = true) /
 * reject_unknown_recipient_domain. */
enum rr restrict_unknown_domain(struct eval *ev, bool sender);
/* Look address up in the tables of specs in Postfix's mail_addr_find()
 * order (maps.h maps_lookup_addr; localpart: the domain is local, also
 * try the bare local part): 1 found (*value_r, owned by the memo, when
 * value_r is not NULL), 0 not found, R_TEMPFAIL (ev->tempfail_why),
 * R_PENDING. */
int restrict_maps_find_addr(struct eval *ev, const strv_t *specs, const char *address,
                            bool localpart, const char **value_r);
/* The key Postfix looks an address up with: its resolved form
 * (local@domain after the routing rules; trivial-rewrite's recipient),
 * and whether the domain is local. 0 with *key_r (caller frees),
 * R_TEMPFAIL (ev->tempfail_why) or R_PENDING. */
int restrict_resolve_key(struct eval *ev, const char *addr, char **key_r, bool *local_r);
/* An address literal "[1.2.3.4]" / "[IPv6:...]" with a valid address. */
bool restrict_valid_hostliteral(const char *name);
/* A bare IPv4 or IPv6 address ("192.0.2.1", "2001:db8::1"), no brackets. */
bool restrict_valid_hostaddr(const char *name);

/* restrict_auth.c */
/* Load smtpd_sender_login_maps, relay_clientcerts and the SASL/TLS
 * switches. login_user: the first restriction parameter that uses a
 * *_sender_login_mismatch restriction, or NULL; with one, an empty or
 * malformed smtpd_sender_login_maps is an error ("smtpd_sender_login_maps:
 * ..."). -1 with the message appended to error. */
int restrict_auth_setup(struct restrict_engine *e, const char *login_user, str_t *error);
void restrict_auth_free(struct restrict_engine *e);
/* The four *_sender_login_mismatch restrictions (kind says which). */
enum rr restrict_sender_login(struct eval *ev, enum rkind kind);
/* permit_tls_clientcerts (all = false) / permit_tls_all_clientcerts. */
enum rr restrict_permit_tls_clientcerts(struct eval *ev, bool all);

#endif
