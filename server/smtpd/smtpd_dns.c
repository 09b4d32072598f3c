/* smtpd_dns.c - reverse and forward-confirming name lookups for smtpd
 * (see smtpd_dns.h), c-ares on the libevent loop.
 *
 * Used by smtpd_session.c at connect time when smtpd_peername_lookup =
 * yes. c-ares tells us which sockets it uses (ARES_OPT_SOCK_STATE_CB); we
 * watch them with libevent and run ares_process_fd() when they are ready,
 * plus one timer for c-ares's own timeouts. A lookup that fails in any way
 * ends as "unknown", as in Postfix.
 *
 * Why the deferred delivery: c-ares answers from /etc/hosts at once,
 * inside ares_gethostbyaddr(); the session expects its callback on a
 * later turn of the loop (the table_async.h rule), so every answer goes
 * through an event.
 *
 * SECURITY: DNS answers are outside input. The PTR name is used only when
 * it is a syntactically valid host name (letters, digits, '-', '.', at
 * most 255 octets), lower-cased; it reaches logs and table lookups only.
 */
#include "smtpd_dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/mem.h"

#define DNS_TIMEOUT_MS 5000
#define DNS_TRIES 2

struct dns_sock {
	int fd;
	struct event *ev;
	struct dns_sock *next;
	struct smtpd_dns *dns;
};

struct smtpd_dns {
	struct event_base *base;
	ares_channel chan;
	struct event *timer;
	struct dns_sock *socks;
	bool destroying;
};

struct smtpd_dns_req {
	struct smtpd_dns *dns;
	smtpd_dns_cb *cb; /* NULL once cancelled */
	void *ctx;
	int family;
	unsigned char bin[16];
	size_t binlen;
	char *addr;
	char *ptr_name;
	const char *name; /* result */
	const char *reverse;
	bool ares_pending; /* a c-ares query still holds req */
	struct event *deliver;
};

static void dns_schedule(struct smtpd_dns *dns)
{
	struct timeval tv, *tvp;

	if (dns->destroying)
		return;
	tvp = ares_timeout(dns->chan, NULL, &tv);
	if (tvp != NULL)
		evtimer_add(dns->timer, tvp);
	else
		evtimer_del(dns->timer);
}

static void dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_dns *dns = arg;

	(void)fd;
	(void)what;
	ares_process_fd(dns->chan, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_schedule(dns);
}

static void dns_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct dns_sock *ds = arg;
	struct smtpd_dns *dns = ds->dns;

	ares_process_fd(dns->chan, (what & EV_READ) != 0 ? fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) != 0 ? fd : ARES_SOCKET_BAD);
	dns_schedule(dns);
}

static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct smtpd_dns *dns = data;
	struct dns_sock *ds, *prev = NULL;

	for (ds = dns->socks; ds != NULL; prev = ds, ds = ds->next)
		if (ds->fd == fd)
			break;
	if (ds != NULL) {
		event_free(ds->ev);
		ds->ev = NULL;
	}
	if (!readable && !writable) {
		if (ds != NULL) {
			if (prev != NULL)
				prev->next = ds->next;
			else
				dns->socks = ds->next;
			free(ds);
		}
		return;
	}
	if (ds == NULL) {
		ds = xcalloc(1, sizeof(*ds));
		ds->fd = fd;
		ds->dns = dns;
		ds->next = dns->socks;
		dns->socks = ds;
	}
	ds->ev = event_new(
	        dns->base, fd,
	        (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0)),
	        dns_on_sock, ds);
	event_add(ds->ev, NULL);
}

struct smtpd_dns *smtpd_dns_new(struct event_base *base)
{
	struct smtpd_dns *dns = xcalloc(1, sizeof(*dns));
	struct ares_options opts;
	int rc;

	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS)
		log_fatal("c-ares: %s", ares_strerror(rc));
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = dns;
	opts.timeout = DNS_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	rc = ares_init_options(&dns->chan, &opts,
	                       ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS)
		log_fatal("c-ares: cannot start the resolver: %s", ares_strerror(rc));
	dns->base = base;
	dns->timer = evtimer_new(base, dns_on_timer, dns);
	return dns;
}

static void req_free(struct smtpd_dns_req *req)
{
	if (req->deliver != NULL)
		event_free(req->deliver);
	free(req->addr);
	free(req->ptr_name);
	free(req);
}

static void req_on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_dns_req *req = arg;

	(void)fd;
	(void)what;
	if (req->cb != NULL)
		req->cb(req->name, req->reverse, req->ctx);
	req_free(req);
}

/* The answer is known: hand it over on the next loop turn. */
static void req_finish(struct smtpd_dns_req *req, const char *name, const char *reverse)
{
	req->ares_pending = false;
	if (req->cb == NULL || req->dns->destroying) {
		req_free(req);
		return;
	}
	req->name = name;
	req->reverse = reverse;
	event_active(req->deliver, EV_TIMEOUT, 0);
}

static bool valid_hostname(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len == 0 || len > 255)
		return false;
	for (const char *p = name; *p != '\0'; p++) {
		char c = *p;

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

static void req_on_forward(void *arg, int status, int timeouts, struct hostent *he)
{
	struct smtpd_dns_req *req = arg;

	(void)timeouts;
	if (status == ARES_SUCCESS && he != NULL && he->h_addrtype == req->family) {
		for (char **a = he->h_addr_list; *a != NULL; a++)
			if ((size_t)he->h_length == req->binlen &&
			    memcmp(*a, req->bin, req->binlen) == 0) {
				req_finish(req, req->ptr_name, req->ptr_name);
				return;
			}
	}
	if (req->cb != NULL && !req->dns->destroying)
		log_warning("hostname %s does not resolve to address %s%s", req->ptr_name,
		            req->addr, status == ARES_SUCCESS ? "" : ": lookup failed");
	req_finish(req, "unknown", req->ptr_name);
}

static void req_on_reverse(void *arg, int status, int timeouts, struct hostent *he)
{
	struct smtpd_dns_req *req = arg;

	(void)timeouts;
	if (status != ARES_SUCCESS || he == NULL || he->h_name == NULL ||
	    !valid_hostname(he->h_name) || req->cb == NULL || req->dns->destroying) {
		req_finish(req, "unknown", "unknown");
		return;
	}
	req->ptr_name = xstrdup(he->h_name);
	for (char *p = req->ptr_name; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	ares_gethostbyname(req->dns->chan, req->ptr_name, req->family, req_on_forward, req);
}

struct smtpd_dns_req *smtpd_dns_client_name(struct smtpd_dns *dns, const char *addr,
                                            smtpd_dns_cb *cb, void *ctx)
{
	struct smtpd_dns_req *req = xcalloc(1, sizeof(*req));

	req->dns = dns;
	req->cb = cb;
	req->ctx = ctx;
	req->addr = xstrdup(addr);
	req->deliver = event_new(dns->base, -1, 0, req_on_deliver, req);
	if (inet_pton(AF_INET, addr, req->bin) == 1) {
		req->family = AF_INET;
		req->binlen = 4;
	} else if (inet_pton(AF_INET6, addr, req->bin) == 1) {
		req->family = AF_INET6;
		req->binlen = 16;
	} else {
		req->name = req->reverse = "unknown";
		event_active(req->deliver, EV_TIMEOUT, 0);
		return req;
	}
	req->ares_pending = true;
	ares_gethostbyaddr(dns->chan, req->bin, (int)req->binlen, req->family, req_on_reverse, req);
	dns_schedule(dns);
	return req;
}

void smtpd_dns_cancel(struct smtpd_dns_req **reqp)
{
	struct smtpd_dns_req *req = *reqp;

	if (req == NULL)
		return;
	*reqp = NULL;
	req->cb = NULL;
	/* Still inside c-ares: freed when its callback comes (at the latest
	 * from ares_destroy). Otherwise the delivery event is the last
	 * holder. */
	if (!req->ares_pending)
		req_free(req);
}

void smtpd_dns_destroy(struct smtpd_dns **dnsp)
{
	struct smtpd_dns *dns = *dnsp;

	if (dns == NULL)
		return;
	dns->destroying = true;
	ares_destroy(dns->chan); /* runs the pending callbacks: they free */
	while (dns->socks != NULL) {
		struct dns_sock *ds = dns->socks;

		dns->socks = ds->next;
		if (ds->ev != NULL)
			event_free(ds->ev);
		free(ds);
	}
	event_free(dns->timer);
	ares_library_cleanup();
	free(dns);
	*dnsp = NULL;
}
