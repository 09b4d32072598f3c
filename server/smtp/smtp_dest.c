/* smtp_dest.c - from a nexthop to the ordered list of server addresses
 * a delivery tries (Postfix smtp(8) "SMTP DESTINATION SYNTAX" and
 * smtp_addr.c, on c-ares through lib/dns).
 *
 * Used by smtp.c. Nexthop forms, several separated by commas or spaces
 * (Postfix 3.5), each optionally with "inet:" in front:
 *   domain, domain:port        MX lookup (SMTP); the host itself (LMTP)
 *   [host], [host]:port        no MX lookup: the host's A/AAAA records,
 *                              or the literal address ([192.0.2.1],
 *                              [2001:db8::1], [ipv6:2001:db8::1])
 *   unix:path                  LMTP only: a socket, relative to
 *                              queue_directory unless absolute
 * The port is a number or smtp/submission/smtps/lmtp; default 25 (24 for
 * LMTP).
 *
 * MX lookups: the records sorted by preference, equal preferences in
 * random order; a list holding this host's own name (myhostname) is cut
 * before that preference (and "mail loops back to myself" when nothing
 * is left); no MX record: the domain's own A/AAAA (implicit MX, RFC
 * 5321 5.1); a null MX "0 ." (RFC 7505): the mail bounces at once,
 * 5.1.10. Each host's addresses come from A and AAAA queries in parallel
 * (inet_protocols), ordered by smtp_address_preference; at most
 * smtp_mx_address_limit addresses in all.
 *
 * Failures, in Postfix's words: a domain that does not exist bounces
 * (5.4.4 "Host or domain name not found. Name service error for
 * name=D type=MX: Host not found"); a DNS failure defers (4.4.3 "...
 * Host not found, try again"). Only when every destination of the list
 * failed; otherwise the ones that resolved are tried.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "dns/dns.h"
#include "smtp.h"
#include "table/table_async.h"

struct dest_host {
	char *name;
	unsigned dest_index; /* position of its destination in the list */
	unsigned pref;
	unsigned tiebreak;
	unsigned port;
	strv_t v4, v6;
	/* Per family: answered, temporary failure, does not exist. */
	bool tempfail, notfound;
};

struct query {
	struct smtp_dest_lookup *l;
	struct dns_req *req;
	struct table_async_request *native; /* getaddrinfo() in a worker */
	size_t host; /* index, for A/AAAA */
	unsigned dest_index, port; /* for MX */
	char *name; /* for MX */
	enum dns_type type;
};

struct smtp_dest_lookup {
	struct smtp_job *job;
	bool fallback;
	struct dest_host *hosts;
	size_t nhosts;
	strv_t dest_names; /* the destinations of the list, as written */
	struct smtp_addr *direct; /* literal addresses and unix sockets */
	size_t ndirect;
	struct query **queries;
	size_t nqueries;
	size_t pending;
	struct event *later;
	/* The worst failure so far: hard (bounce) only counts when nothing
	 * else is left. */
	str_t soft_error, hard_error;
	struct queue_dsn hard_dsn;
};

static void finish(struct smtp_dest_lookup *l);

static const struct timeval now_tv = {0, 0};

static unsigned port_parse(const char *text, bool lmtp, bool *ok)
{
	uint64_t n;

	*ok = true;
	if (text == NULL || text[0] == '\0')
		return lmtp ? 24 : 25;
	if (parse_uint64(text, 1, 65535, &n) == 0)
		return (unsigned)n;
	if (strcmp(text, "smtp") == 0)
		return 25;
	if (strcmp(text, "submission") == 0)
		return 587;
	if (strcmp(text, "smtps") == 0 || strcmp(text, "submissions") == 0)
		return 465;
	if (strcmp(text, "lmtp") == 0)
		return 24;
	*ok = false;
	return 0;
}

static void add_direct(struct smtp_dest_lookup *l, const char *host, const char *addr, int family,
                       unsigned port, unsigned dest_index)
{
	struct smtp_addr *a;

	l->direct = xreallocarray(l->direct, l->ndirect + 1, sizeof(*l->direct));
	a = &l->direct[l->ndirect++];
	memset(a, 0, sizeof(*a));
	a->host = xstrdup(host);
	(void)snprintf(a->addr, sizeof(a->addr), "%s", addr);
	a->family = family;
	a->port = port;
	a->dest = xstrdup(l->dest_names.v[dest_index]);
}

static size_t add_host(struct smtp_dest_lookup *l, const char *name, unsigned dest_index,
                       unsigned pref, unsigned port)
{
	struct dest_host *h;

	l->hosts = xreallocarray(l->hosts, l->nhosts + 1, sizeof(*l->hosts));
	h = &l->hosts[l->nhosts];
	memset(h, 0, sizeof(*h));
	h->name = xstrdup(name);
	h->dest_index = dest_index;
	h->pref = pref;
	h->tiebreak = (unsigned)random();
	h->port = port;
	return l->nhosts++;
}

static void on_answer(const struct dns_answer *answer, void *ctx);

static void start_query(struct smtp_dest_lookup *l, const char *name, enum dns_type type,
                        size_t host, unsigned dest_index, unsigned port)
{
	struct query *q = xcalloc(1, sizeof(*q));

	q->l = l;
	q->host = host;
	q->dest_index = dest_index;
	q->port = port;
	q->type = type;
	q->name = xstrdup(name);
	l->queries = xreallocarray(l->queries, l->nqueries + 1, sizeof(*l->queries));
	l->queries[l->nqueries++] = q;
	l->pending++;
	q->req = dns_query(l->job->agent->set.dns, name, type, on_answer, q);
}

/* A getaddrinfo() in a worker thread (table_async_job): it blocks. */
struct native_job {
	char *name;
	strv_t v4, v6;
	int error; /* EAI_* or 0 */
};

static void native_run(void *p)
{
	struct native_job *nj = p;
	struct addrinfo hints, *res = NULL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	nj->error = getaddrinfo(nj->name, NULL, &hints, &res);
	for (struct addrinfo *ai = res; nj->error == 0 && ai != NULL; ai = ai->ai_next) {
		char text[INET6_ADDRSTRLEN];
		const void *a =
		        ai->ai_family == AF_INET
		                ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
		                : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;

		if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
		    inet_ntop(ai->ai_family, a, text, sizeof(text)) != NULL &&
		    strv_find(ai->ai_family == AF_INET ? &nj->v4 : &nj->v6, text) < 0)
			strv_add(ai->ai_family == AF_INET ? &nj->v4 : &nj->v6, text);
	}
	if (res != NULL)
		freeaddrinfo(res);
}

static void native_free(void *p)
{
	struct native_job *nj = p;

	free(nj->name);
	strv_free(&nj->v4);
	strv_free(&nj->v6);
	free(nj);
}

static void native_done(void *p, const char *error, void *ctx)
{
	struct native_job *nj = p;
	struct query *q = ctx;
	struct smtp_dest_lookup *l = q->l;
	struct dest_host *h = &l->hosts[q->host];
	const struct smtp_settings *s = &l->job->agent->set;

	q->native = NULL;
	if (error == NULL && nj->error == 0) {
		for (size_t i = 0; s->ipv4 && i < nj->v4.n; i++)
			strv_add(&h->v4, nj->v4.v[i]);
		for (size_t i = 0; s->ipv6 && i < nj->v6.n; i++)
			strv_add(&h->v6, nj->v6.v[i]);
	} else if (error == NULL && (nj->error == EAI_NONAME || nj->error == EAI_NODATA)) {
		if (l->hard_error.len == 0) {
			str_appendf(&l->hard_error,
			            "Host or domain name not found. Name service error "
			            "for name=%s type=A: Host not found",
			            h->name);
			l->hard_dsn = (struct queue_dsn){5, 4, 4};
		}
	} else {
		str_reset(&l->soft_error);
		str_appendf(&l->soft_error,
		            "Host or domain name not found. Name service error for "
		            "name=%s type=A: %s",
		            h->name, error != NULL ? error : gai_strerror(nj->error));
	}
	if (--l->pending == 0)
		finish(l);
}

static void native_lookup(struct smtp_dest_lookup *l, size_t host)
{
	struct query *q = xcalloc(1, sizeof(*q));
	struct native_job *nj = xcalloc(1, sizeof(*nj));

	q->l = l;
	q->host = host;
	q->type = DNS_T_A;
	q->name = xstrdup(l->hosts[host].name);
	nj->name = xstrdup(l->hosts[host].name);
	l->queries = xreallocarray(l->queries, l->nqueries + 1, sizeof(*l->queries));
	l->queries[l->nqueries++] = q;
	l->pending++;
	q->native = table_async_job(l->job->agent->set.tables, native_run, native_done, native_free,
	                            nj, q);
}

static void lookup_host_addresses(struct smtp_dest_lookup *l, size_t host)
{
	const struct smtp_settings *s = &l->job->agent->set;
	char *name;

	if (!s->dns_lookup) {
		native_lookup(l, host);
		return;
	}
	name = xstrdup(l->hosts[host].name);
	if (s->ipv6)
		start_query(l, name, DNS_T_AAAA, host, 0, 0);
	if (s->ipv4)
		start_query(l, name, DNS_T_A, host, 0, 0);
	free(name);
}

static const char *type_name(enum dns_type type)
{
	return type == DNS_T_MX ? "MX" : type == DNS_T_A ? "A" : "AAAA";
}

static void note_failure(struct smtp_dest_lookup *l, const char *name, enum dns_type type,
                         const struct dns_answer *answer)
{
	if (answer->status == DNS_TEMPFAIL) {
		str_reset(&l->soft_error);
		str_appendf(
		        &l->soft_error,
		        "Host or domain name not found. Name service error for name=%s type=%s: "
		        "Host not found, try again",
		        name, type_name(type));
	} else if (l->hard_error.len == 0) {
		str_appendf(
		        &l->hard_error,
		        "Host or domain name not found. Name service error for name=%s type=%s: %s",
		        name, type_name(type),
		        answer->nxdomain ? "Host not found"
		                         : "Host found but no data record of requested type");
		l->hard_dsn = (struct queue_dsn){5, 4, 4};
	}
}

static void on_mx(struct smtp_dest_lookup *l, struct query *q, const struct dns_answer *answer)
{
	const struct smtp_settings *s = &l->job->agent->set;
	unsigned self_pref = (unsigned)-1;

	if (answer->status == DNS_NOTFOUND && !answer->nxdomain) {
		/* No MX: the domain is its own exchanger (RFC 5321 5.1). */
		size_t h = add_host(l, q->name, q->dest_index, 0, q->port);

		lookup_host_addresses(l, h);
		return;
	}
	if (answer->status != DNS_OK) {
		note_failure(l, q->name, DNS_T_MX, answer);
		return;
	}
	for (size_t i = 0; i < answer->n; i++) {
		if (answer->rr[i].data[0] == '\0') {
			/* A null MX: the domain accepts no mail (RFC 7505). */
			str_reset(&l->hard_error);
			str_appendf(&l->hard_error, "Domain %s does not accept mail (nullMX)",
			            q->name);
			l->hard_dsn = (struct queue_dsn){5, 1, 10};
			return;
		}
		if (strcasecmp(answer->rr[i].data, s->myhostname) == 0 &&
		    answer->rr[i].pref < self_pref)
			self_pref = answer->rr[i].pref;
	}
	for (size_t i = 0; i < answer->n; i++) {
		/* Why cut at our own preference: an MX host must only hand
		 * mail to more preferred hosts, else it loops. */
		if (answer->rr[i].pref >= self_pref)
			continue;
		lookup_host_addresses(l, add_host(l, answer->rr[i].data, q->dest_index,
		                                  answer->rr[i].pref, q->port));
	}
	if (self_pref != (unsigned)-1 && l->hard_error.len == 0) {
		bool any = false;

		for (size_t i = 0; i < answer->n; i++)
			any |= answer->rr[i].pref < self_pref;
		if (!any) {
			str_appendf(&l->hard_error, "mail for %s loops back to myself", q->name);
			l->hard_dsn = (struct queue_dsn){5, 4, 6};
		}
	}
}

static void on_answer(const struct dns_answer *answer, void *ctx)
{
	struct query *q = ctx;
	struct smtp_dest_lookup *l = q->l;

	q->req = NULL;
	if (q->type == DNS_T_MX) {
		on_mx(l, q, answer);
	} else {
		struct dest_host *h = &l->hosts[q->host];

		if (answer->status == DNS_OK) {
			for (size_t i = 0; i < answer->n; i++)
				strv_add(q->type == DNS_T_A ? &h->v4 : &h->v6, answer->rr[i].data);
		} else if (answer->status == DNS_TEMPFAIL) {
			h->tempfail = true;
			note_failure(l, h->name, q->type, answer);
		} else {
			h->notfound = true;
			if (l->hosts[q->host].v4.n == 0 && l->hosts[q->host].v6.n == 0)
				note_failure(l, h->name, q->type, answer);
		}
	}
	if (--l->pending == 0)
		finish(l);
}

static int host_order(const void *a, const void *b)
{
	const struct dest_host *x = a, *y = b;

	if (x->dest_index != y->dest_index)
		return x->dest_index < y->dest_index ? -1 : 1;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->tiebreak < y->tiebreak ? -1 : x->tiebreak > y->tiebreak;
}

static void append_addr(struct smtp_job *job, const char *host, const char *addr, int family,
                        unsigned port, unsigned pref, const char *dest)
{
	const struct smtp_settings *s = &job->agent->set;
	struct smtp_addr *a;

	/* smtp_mx_address_limit bounds the destination's own list; the
	 * fallback relays come on top. */
	if (s->mx_address_limit > 0 && !job->fallback_added && job->naddrs >= s->mx_address_limit)
		return;
	job->addrs = xreallocarray(job->addrs, job->naddrs + 1, sizeof(*job->addrs));
	a = &job->addrs[job->naddrs++];
	memset(a, 0, sizeof(*a));
	a->host = xstrdup(host);
	(void)snprintf(a->addr, sizeof(a->addr), "%s", addr);
	a->family = family;
	a->port = port;
	a->pref = pref;
	a->dest = xstrdup(dest);
}

static void append_family(struct smtp_dest_lookup *l, const struct dest_host *h, const strv_t *list,
                          int family)
{
	for (size_t i = 0; i < list->n; i++)
		append_addr(l->job, h->name, list->v[i], family, h->port, h->pref,
		            l->dest_names.v[h->dest_index]);
}

static void finish(struct smtp_dest_lookup *l)
{
	struct smtp_job *job = l->job;
	const struct smtp_settings *s = &job->agent->set;
	size_t before = job->naddrs;

	if (l->nhosts > 1)
		qsort(l->hosts, l->nhosts, sizeof(*l->hosts), host_order);
	for (size_t i = 0; i < l->ndirect; i++)
		append_addr(job, l->direct[i].host, l->direct[i].addr, l->direct[i].family,
		            l->direct[i].port, 0, l->direct[i].dest);
	for (size_t i = 0; i < l->nhosts; i++) {
		const struct dest_host *h = &l->hosts[i];
		bool v6_first = s->address_preference == 6 ||
		                (s->address_preference == 0 && (h->tiebreak & 1) != 0);

		if (v6_first) {
			append_family(l, h, &h->v6, AF_INET6);
			append_family(l, h, &h->v4, AF_INET);
		} else {
			append_family(l, h, &h->v4, AF_INET);
			append_family(l, h, &h->v6, AF_INET6);
		}
	}
	if (job->naddrs == before && !l->fallback) {
		/* Nothing to try. A DNS failure anywhere makes it a deferral:
		 * the answer may be different in a minute. */
		if (l->soft_error.len > 0 || l->hard_error.len == 0) {
			smtp_job_settle_rest(job, 'd', &(struct queue_dsn){4, 4, 3},
			                     l->soft_error.len > 0 ? str_c(&l->soft_error)
			                                           : "no server address to try");
		} else {
			smtp_job_settle_rest(job, 'b', &l->hard_dsn, str_c(&l->hard_error));
		}
	}
	smtp_dest_cancel(&job->lookup);
	smtp_job_addresses_ready(job);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	finish(arg);
}

/* One destination of the list; -1 with why for a syntax error. */
static int parse_one(struct smtp_dest_lookup *l, const char *dest, unsigned index, str_t *why)
{
	const struct smtp_settings *s = &l->job->agent->set;
	char *copy, *host, *port_text = NULL;
	bool bracket = false, port_ok;
	unsigned port;
	unsigned char buf[sizeof(struct in6_addr)];
	int rc = -1;

	if (strncasecmp(dest, "inet:", 5) == 0)
		dest += 5;
	if (strncasecmp(dest, "unix:", 5) == 0) {
		char *path;

		if (!s->lmtp) {
			str_appendf(why, "unix: destination \"%s\" is for LMTP only", dest);
			return -1;
		}
		path = dest[5] == '/' ? xstrdup(dest + 5)
		                      : xasprintf("%s/%s", s->queue_dir, dest + 5);
		if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			str_appendf(why, "unix socket path too long: %s", path);
			free(path);
			return -1;
		}
		add_direct(l, path, path, AF_UNIX, 0, index);
		free(path);
		return 0;
	}
	copy = xstrdup(dest);
	host = copy;
	if (host[0] == '[') {
		char *end = strchr(host, ']');

		if (end == NULL) {
			str_appendf(why, "malformed destination \"%s\": missing ]", dest);
			goto out;
		}
		*end = '\0';
		host++;
		bracket = true;
		if (end[1] == ':')
			port_text = end + 2;
		else if (end[1] != '\0') {
			str_appendf(why, "malformed destination \"%s\"", dest);
			goto out;
		}
		if (strncasecmp(host, "ipv6:", 5) == 0)
			host += 5;
	} else {
		char *colon = strrchr(host, ':');

		if (colon != NULL) {
			*colon = '\0';
			port_text = colon + 1;
		}
	}
	port = port_parse(port_text, s->lmtp, &port_ok);
	if (!port_ok || host[0] == '\0') {
		str_appendf(why, "malformed destination \"%s\": bad %s", dest,
		            host[0] == '\0' ? "host" : "port");
		goto out;
	}
	if (inet_pton(AF_INET, host, buf) == 1) {
		add_direct(l, host, host, AF_INET, port, index);
	} else if (inet_pton(AF_INET6, host, buf) == 1) {
		add_direct(l, host, host, AF_INET6, port, index);
	} else if (!dns_hostname_valid(host)) {
		str_appendf(why, "malformed destination \"%s\": bad host name", dest);
		goto out;
	} else if (bracket || s->lmtp || !s->dns_lookup) {
		lookup_host_addresses(l, add_host(l, host, index, 0, port));
	} else {
		start_query(l, host, DNS_T_MX, 0, index, port);
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

static struct smtp_dest_lookup *lookup_new(struct smtp_job *job, bool fallback)
{
	struct smtp_dest_lookup *l = xcalloc(1, sizeof(*l));

	l->job = job;
	l->fallback = fallback;
	str_init(&l->soft_error);
	str_init(&l->hard_error);
	l->later = evtimer_new(job->agent->base, on_later, l);
	return l;
}

/* Parse every destination; finish later (from the loop) in any case. */
static void lookup_run(struct smtp_dest_lookup *l, const strv_t *dests)
{
	str_t why;

	str_init(&why);
	for (size_t i = 0; i < dests->n; i++)
		strv_add(&l->dest_names, dests->v[i]);
	for (size_t i = 0; i < dests->n; i++) {
		if (parse_one(l, dests->v[i], (unsigned)i, &why) < 0) {
			log_warning("%s: %s", l->job->queue_id, str_c(&why));
			str_reset(&l->soft_error);
			str_appendf(&l->soft_error, "mail transport unavailable: %s", str_c(&why));
			str_reset(&why);
		}
	}
	str_free(&why);
	if (l->pending == 0)
		evtimer_add(l->later, &now_tv);
}

void smtp_dest_start(struct smtp_job *job, const char *nexthop)
{
	strv_t dests = STRV_INIT;
	const char *err;

	job->lookup = lookup_new(job, false);
	if (strv_split_list(&dests, nexthop, &err) < 0 || dests.n == 0) {
		str_appendf(&job->lookup->soft_error, "mail transport unavailable: empty nexthop");
		evtimer_add(job->lookup->later, &now_tv);
	} else {
		lookup_run(job->lookup, &dests);
	}
	strv_free(&dests);
}

bool smtp_dest_fallback(struct smtp_job *job)
{
	const struct smtp_settings *s = &job->agent->set;

	if (job->fallback_added || s->fallback_relay.n == 0 || s->lmtp)
		return false;
	job->fallback_added = true;
	job->lookup = lookup_new(job, true);
	lookup_run(job->lookup, &s->fallback_relay);
	return true;
}

void smtp_dest_cancel(struct smtp_dest_lookup **lp)
{
	struct smtp_dest_lookup *l = *lp;

	if (l == NULL)
		return;
	*lp = NULL;
	for (size_t i = 0; i < l->nqueries; i++) {
		dns_cancel(&l->queries[i]->req);
		table_async_cancel(&l->queries[i]->native);
		free(l->queries[i]->name);
		free(l->queries[i]);
	}
	free(l->queries);
	for (size_t i = 0; i < l->nhosts; i++) {
		free(l->hosts[i].name);
		strv_free(&l->hosts[i].v4);
		strv_free(&l->hosts[i].v6);
	}
	free(l->hosts);
	for (size_t i = 0; i < l->ndirect; i++) {
		free(l->direct[i].host);
		free(l->direct[i].dest);
	}
	strv_free(&l->dest_names);
	free(l->direct);
	event_free(l->later);
	str_free(&l->soft_error);
	str_free(&l->hard_error);
	free(l);
}
