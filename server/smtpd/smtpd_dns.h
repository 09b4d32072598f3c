/* smtpd_dns.h - the client's host name: asynchronous reverse lookup with
 * forward confirmation (smtpd_peername_lookup = yes), on c-ares driven by
 * the smtpd event loop.
 *
 * As Postfix: the address's PTR name is looked up, then that name's
 * addresses; the name is "verified" only when they include the client
 * address. The answer gives client_name (verified name or "unknown") and
 * reverse_client_name (the PTR name, verified or not, or "unknown").
 * Every failure (no PTR, timeout, no server) is just "unknown": nothing
 * here fails the session.
 */
#ifndef POSTERN_SMTPD_DNS_H
#define POSTERN_SMTPD_DNS_H

struct event_base;
struct smtpd_dns;
struct smtpd_dns_req;

/* The resolver for one process (resolv.conf and /etc/hosts as the
 * system has them). Exits (log_fatal) when c-ares cannot start. */
struct smtpd_dns *smtpd_dns_new(struct event_base *base);
/* Cancel what is pending (callbacks are not called) and free; *dnsp set
 * to NULL; no-op on NULL. */
void smtpd_dns_destroy(struct smtpd_dns **dnsp);

/* name and reverse_name are valid only during the call. */
typedef void smtpd_dns_cb(const char *name, const char *reverse_name, void *ctx);

/* Look up the name of addr (numeric IPv4 or IPv6). cb is called once,
 * later from the event loop, never before this returns. The handle is
 * valid until then. */
struct smtpd_dns_req *smtpd_dns_client_name(struct smtpd_dns *dns, const char *addr,
                                            smtpd_dns_cb *cb, void *ctx);
/* The callback will not be called; *reqp set to NULL; no-op on NULL. */
void smtpd_dns_cancel(struct smtpd_dns_req **reqp);

#endif
