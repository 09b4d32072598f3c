/* dns.c - asynchronous DNS on the libevent loop (see dns.h).
 *
 * Used by smtpd: the client's host name at connect time, and the
 * restriction engine's reject_unknown_sender_domain /
 * reject_unknown_recipient_domain (MX, A, AAAA queries). c-ares tells us
 * which sockets it uses (ARES_OPT_SOCK_STATE_CB); we watch them with
 * libevent and run ares_process_fd() when they are ready, plus one timer
 * for c-ares's own timeouts.
 *
 * Failure: a query that cannot be answered ends as DNS_TEMPFAIL with
 * c-ares's reason (never as "not found": only NXDOMAIN and an empty
 * NOERROR answer are DNS_NOTFOUND); a client name lookup that fails in
 * any way ends as "unknown", as in Postfix.
 *
 * Why the deferred delivery: c-ares may answer inside the call that
 * starts a query (/etc/hosts, a bad name, no server); callers expect the
 * callback on a later turn of the loop, so every answer goes through an
 * event.
 *
 * SECURITY: DNS answers are outside input. c-ares parses the packets
 * (bounded by the packet length); we copy at most DNS_MAX_RR records per
 * answer, and names are used only as data (logs, replies after the
 * caller's checks, table keys). The PTR name is used only when it is a
 * syntactically valid host name (letters, digits, '-', '_', '.', at most
 * 255 octets), lower-cased.
 */
#include "dns/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"

#define DNS_TIMEOUT_MS 5000
#define DNS_TRIES 2
/* Records kept from one answer; more are ignored. */
#define DNS_MAX_RR 100

struct dns_sock {
	int fd;
	struct event *ev;
	struct dns_sock *next;
	struct dns *dns;
};

struct dns {
	struct event_base *base;
	ares_channel chan;
	struct event *timer;
	struct dns_sock *socks;
	bool destroying;
};

struct dns_req {
	struct dns *dns;
	dns_query_cb *qcb; /* the callback: NULL once cancelled */
	dns_name_cb *ncb;
	void *ctx;
	bool ares_pending; /* a c-ares query still holds req */
	struct event *deliver;
	/* dns_query */
	enum dns_type type;
	struct dns_answer answer;
	struct dns_rr *rr;
	strv_t data;
	str_t why;
	/* dns_client_name */
	int family;
	unsigned char bin[16];
	size_t binlen;
	char *addr;
	char *ptr_name;
	const char *name; /* result */
	const char *reverse;
};

static void dns_schedule(struct dns *dns)
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
	struct dns *dns = arg;

	(void)fd;
	(void)what;
	ares_process_fd(dns->chan, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_schedule(dns);
}

static void dns_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct dns_sock *ds = arg;
	struct dns *dns = ds->dns;

	ares_process_fd(dns->chan, (what & EV_READ) != 0 ? fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) != 0 ? fd : ARES_SOCKET_BAD);
	dns_schedule(dns);
}

static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
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

/* "a b,c" -> "a,c,b" as ares_set_servers_ports_csv() wants it. */
static int set_servers(struct dns *dns, const char *servers, str_t *error)
{
	strv_t list = STRV_INIT;
	str_t csv;
	const char *why;
	int rc;

	if (strv_split_list(&list, servers, &why) < 0) {
		str_appendf(error, "dns_servers: %s", why);
		return -1;
	}
	str_init(&csv);
	for (size_t i = 0; i < list.n; i++)
		str_appendf(&csv, "%s%s", i > 0 ? "," : "", list.v[i]);
	rc = list.n > 0 ? ares_set_servers_ports_csv(dns->chan, str_c(&csv)) : ARES_SUCCESS;
	if (rc != ARES_SUCCESS)
		str_appendf(error, "dns_servers: bad server list \"%s\": %s", servers,
		            ares_strerror(rc));
	str_free(&csv);
	strv_free(&list);
	return rc == ARES_SUCCESS ? 0 : -1;
}

int dns_new(struct event_base *base, const char *servers, struct dns **dns_r, str_t *error)
{
	struct dns *dns = xcalloc(1, sizeof(*dns));
	struct ares_options opts;
	int mask = ARES_OPT_SOCK_STATE_CB;
	int rc;

	*dns_r = NULL;
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		str_appendf(error, "c-ares: %s", ares_strerror(rc));
		free(dns);
		return -1;
	}
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = dns;
	/* Why RES_OPTIONS turns our defaults off: options given here would
	 * override the environment's, and it is the way to shorten the
	 * resolver's timeouts (tests, slow links) as with the system resolver. */
	if (getenv("RES_OPTIONS") == NULL) {
		opts.timeout = DNS_TIMEOUT_MS;
		opts.tries = DNS_TRIES;
		mask |= ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	}
	rc = ares_init_options(&dns->chan, &opts, mask);
	if (rc != ARES_SUCCESS) {
		str_appendf(error, "c-ares: cannot start the resolver: %s", ares_strerror(rc));
		ares_library_cleanup();
		free(dns);
		return -1;
	}
	dns->base = base;
	if (servers != NULL && servers[0] != '\0' && set_servers(dns, servers, error) < 0) {
		ares_destroy(dns->chan);
		ares_library_cleanup();
		free(dns);
		return -1;
	}
	dns->timer = evtimer_new(base, dns_on_timer, dns);
	*dns_r = dns;
	return 0;
}

static void req_free(struct dns_req *req)
{
	if (req->deliver != NULL)
		event_free(req->deliver);
	free(req->rr);
	strv_free(&req->data);
	str_free(&req->why);
	free(req->addr);
	free(req->ptr_name);
	free(req);
}

static bool req_live(const struct dns_req *req)
{
	return (req->qcb != NULL || req->ncb != NULL) && !req->dns->destroying;
}

static void req_on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req *req = arg;

	(void)fd;
	(void)what;
	if (req->qcb != NULL)
		req->qcb(&req->answer, req->ctx);
	else if (req->ncb != NULL)
		req->ncb(req->name, req->reverse, req->ctx);
	req_free(req);
}

/* The answer is known: hand it over on the next loop turn. */
static void req_finish(struct dns_req *req)
{
	req->ares_pending = false;
	if (!req_live(req)) {
		req_free(req);
		return;
	}
	event_active(req->deliver, EV_TIMEOUT, 0);
}

static struct dns_req *req_new(struct dns *dns, void *ctx)
{
	struct dns_req *req = xcalloc(1, sizeof(*req));

	req->dns = dns;
	req->ctx = ctx;
	str_init(&req->why);
	req->deliver = event_new(dns->base, -1, 0, req_on_deliver, req);
	return req;
}

/* ---- Record queries ---- */

static void answer_add(struct dns_req *req, unsigned pref, const char *data)
{
	if (req->data.n >= DNS_MAX_RR)
		return;
	strv_add(&req->data, data);
	req->rr = xreallocarray(req->rr, req->data.n, sizeof(*req->rr));
	req->rr[req->data.n - 1].pref = pref;
}

static int parse_answer(struct dns_req *req, const unsigned char *abuf, int alen)
{
	int rc;

	if (req->type == DNS_T_MX) {
		struct ares_mx_reply *mx = NULL;

		rc = ares_parse_mx_reply(abuf, alen, &mx);
		if (rc == ARES_SUCCESS)
			for (struct ares_mx_reply *m = mx; m != NULL; m = m->next)
				answer_add(req, m->priority, m->host != NULL ? m->host : "");
		if (mx != NULL)
			ares_free_data(mx);
		return rc;
	}
	{
		struct hostent *he = NULL;
		int family = req->type == DNS_T_A ? AF_INET : AF_INET6;

		rc = req->type == DNS_T_A ? ares_parse_a_reply(abuf, alen, &he, NULL, NULL)
		                          : ares_parse_aaaa_reply(abuf, alen, &he, NULL, NULL);
		if (rc == ARES_SUCCESS && he != NULL && he->h_addrtype == family)
			for (char **a = he->h_addr_list; *a != NULL; a++) {
				char text[INET6_ADDRSTRLEN]; /* inet_ntop's bound */

				if (inet_ntop(family, *a, text, sizeof(text)) != NULL)
					answer_add(req, 0, text);
			}
		if (he != NULL)
			ares_free_hostent(he);
		return rc;
	}
}

static void req_on_query(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_req *req = arg;
	struct dns_answer *a = &req->answer;

	(void)timeouts;
	if (status == ARES_SUCCESS && req_live(req))
		status = parse_answer(req, abuf, alen);
	if (status == ARES_SUCCESS && req->data.n == 0)
		status = ARES_ENODATA;
	switch (status) {
	case ARES_SUCCESS:
		a->status = DNS_OK;
		break;
	case ARES_ENOTFOUND:
		a->status = DNS_NOTFOUND;
		a->nxdomain = true;
		break;
	case ARES_ENODATA:
		a->status = DNS_NOTFOUND;
		break;
	default:
		a->status = DNS_TEMPFAIL;
		break;
	}
	str_set(&req->why, status == ARES_SUCCESS ? "" : ares_strerror(status));
	a->why = str_c(&req->why);
	for (size_t i = 0; i < req->data.n; i++)
		req->rr[i].data = req->data.v[i];
	a->rr = req->rr;
	a->n = req->data.n;
	req_finish(req);
}

struct dns_req *dns_query(struct dns *dns, const char *name, enum dns_type type, dns_query_cb *cb,
                          void *ctx)
{
	struct dns_req *req = req_new(dns, ctx);

	req->qcb = cb;
	req->type = type;
	req->ares_pending = true;
	ares_query(dns->chan, name, 1 /* class IN */, (int)type, req_on_query, req);
	dns_schedule(dns);
	return req;
}

/* ---- The client's name ---- */

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

bool dns_hostname_valid(const char *name)
{
	size_t len = strlen(name), label = 0;
	bool non_numeric = false;

	if (len == 0 || len > 255)
		return false;
	for (const char *p = name; *p != '\0'; p++) {
		char c = *p;

		if (c == '.') {
			if (label == 0 || p[1] == '\0')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		           (c >= '0' && c <= '9')) {
			if (++label > 63)
				return false;
			if (c < '0' || c > '9')
				non_numeric = true;
		} else if (c == '-') {
			non_numeric = true;
			if (++label == 1 || p[1] == '\0' || p[1] == '.')
				return false;
		} else {
			return false;
		}
	}
	return non_numeric;
}

static void name_finish(struct dns_req *req, const char *name, const char *reverse)
{
	req->name = name;
	req->reverse = reverse;
	req_finish(req);
}

static void req_on_forward(void *arg, int status, int timeouts, struct hostent *he)
{
	struct dns_req *req = arg;

	(void)timeouts;
	if (status == ARES_SUCCESS && he != NULL && he->h_addrtype == req->family) {
		for (char **a = he->h_addr_list; *a != NULL; a++)
			if ((size_t)he->h_length == req->binlen &&
			    memcmp(*a, req->bin, req->binlen) == 0) {
				name_finish(req, req->ptr_name, req->ptr_name);
				return;
			}
	}
	if (req_live(req))
		log_warning("hostname %s does not resolve to address %s%s", req->ptr_name,
		            req->addr, status == ARES_SUCCESS ? "" : ": lookup failed");
	name_finish(req, "unknown", req->ptr_name);
}

static void req_on_reverse(void *arg, int status, int timeouts, struct hostent *he)
{
	struct dns_req *req = arg;

	(void)timeouts;
	if (status != ARES_SUCCESS || he == NULL || he->h_name == NULL ||
	    !valid_hostname(he->h_name) || !req_live(req)) {
		name_finish(req, "unknown", "unknown");
		return;
	}
	req->ptr_name = xstrdup(he->h_name);
	for (char *p = req->ptr_name; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	ares_gethostbyname(req->dns->chan, req->ptr_name, req->family, req_on_forward, req);
}

struct dns_req *dns_client_name(struct dns *dns, const char *addr, dns_name_cb *cb, void *ctx)
{
	struct dns_req *req = req_new(dns, ctx);

	req->ncb = cb;
	req->addr = xstrdup(addr);
	if (inet_pton(AF_INET, addr, req->bin) == 1) {
		req->family = AF_INET;
		req->binlen = 4;
	} else if (inet_pton(AF_INET6, addr, req->bin) == 1) {
		req->family = AF_INET6;
		req->binlen = 16;
	} else {
		name_finish(req, "unknown", "unknown");
		return req;
	}
	req->ares_pending = true;
	ares_gethostbyaddr(dns->chan, req->bin, (int)req->binlen, req->family, req_on_reverse, req);
	dns_schedule(dns);
	return req;
}

void dns_cancel(struct dns_req **reqp)
{
	struct dns_req *req = *reqp;

	if (req == NULL)
		return;
	*reqp = NULL;
	req->qcb = NULL;
	req->ncb = NULL;
	/* Still inside c-ares: freed when its callback comes (at the latest
	 * from ares_destroy). Otherwise the delivery event is the last
	 * holder. */
	if (!req->ares_pending)
		req_free(req);
}

void dns_destroy(struct dns **dnsp)
{
	struct dns *dns = *dnsp;

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
