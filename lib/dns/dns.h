/* dns.h - asynchronous DNS on a libevent loop (c-ares underneath): one
 * resolver per event_base, record queries (MX, A, AAAA) whose answer
 * tells "found" from "no such domain / no data" from "temporary
 * failure", and the client host name lookup of smtpd (PTR with forward
 * confirmation, as Postfix's smtpd_peername_lookup).
 *
 * Callbacks run from the event loop, never before the call that started
 * the query returns (the table_async.h rule), and never after a cancel.
 *
 * The servers are those of /etc/resolv.conf, or the list given to
 * dns_new() (postern's dns_servers parameter, "127.0.0.1:5353 [::1]:53"
 * form). The timeouts are 5 s and 2 tries, unless the environment sets
 * RES_OPTIONS (then resolv.conf/RES_OPTIONS "timeout:" and "attempts:"
 * apply, as for the system resolver).
 */
#ifndef POSTERN_DNS_H
#define POSTERN_DNS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

struct event_base;
struct dns;
struct dns_req;

/* Start a resolver on base. servers: NULL or "" for /etc/resolv.conf,
 * else addresses with optional ports separated by spaces or commas
 * ("127.0.0.1:5353", "[::1]:53", "192.0.2.1"). -1 with the reason in
 * error (a bad server list, c-ares cannot start). */
int dns_new(struct event_base *base, const char *servers, struct dns **dns_r, str_t *error);
/* Cancel what is pending (callbacks are not called) and free; *dnsp set
 * to NULL; no-op on NULL. */
void dns_destroy(struct dns **dnsp);

/* Record types dns_query() asks for. */
enum dns_type {
	DNS_T_A = 1,
	DNS_T_MX = 15,
	DNS_T_AAAA = 28,
};

enum dns_status {
	DNS_OK, /* records in the answer */
	DNS_NOTFOUND, /* NXDOMAIN, or the name has no record of that type */
	DNS_TEMPFAIL, /* timeout, SERVFAIL, refused, no server, bad answer */
};

/* One record: MX: pref and the exchanger ("" for the root, i.e. a null
 * MX "0 ."); A/AAAA: pref 0 and the address as text. */
struct dns_rr {
	unsigned pref;
	const char *data;
};

struct dns_answer {
	enum dns_status status;
	bool nxdomain; /* DNS_NOTFOUND because the name does not exist */
	const char *why; /* c-ares's text when not DNS_OK, else "" */
	const struct dns_rr *rr;
	size_t n;
};

/* The answer is valid only during the call. */
typedef void dns_query_cb(const struct dns_answer *answer, void *ctx);

/* Look up records of type for name (no search domains are appended).
 * cb is called once, later from the event loop. The handle is valid
 * until then. Never NULL. */
struct dns_req *dns_query(struct dns *dns, const char *name, enum dns_type type, dns_query_cb *cb,
                          void *ctx);

/* name and reverse_name are valid only during the call. */
typedef void dns_name_cb(const char *name, const char *reverse_name, void *ctx);

/* The client's host name as Postfix finds it: the PTR name of addr
 * (numeric IPv4 or IPv6), then that name's addresses; the name is
 * "verified" only when they include addr. cb gets name (verified or
 * "unknown") and reverse_name (the PTR name, verified or not, or
 * "unknown"). Every failure is just "unknown". The PTR name is used only
 * when it is a valid host name, lower-cased. Never NULL. */
struct dns_req *dns_client_name(struct dns *dns, const char *addr, dns_name_cb *cb, void *ctx);

/* The callback will not be called; *reqp set to NULL; no-op on NULL. */
void dns_cancel(struct dns_req **reqp);

/* Postfix's valid_hostname(): labels of letters, digits, '_' and '-' (not
 * at either end of a label), at most 63 bytes each and 255 in all, no
 * empty label (so no trailing dot), and not all digits and dots (that is
 * an address). Used for HELO names, ETRN domains, XCLIENT NAME. */
bool dns_hostname_valid(const char *name);

#endif
