/* smtpd_limit.c - smtpd_client_connection_count_limit: simultaneous
 * connections per client address across every smtpd process of a service
 * (Postfix counts them in anvil(8); postern in a shared file,
 * lib/daemon/conn_count.h).
 *
 * smtpd.c opens the counter per listener (smtpd_limit_init); the session
 * counts itself when it starts and uncounts when it is freed; the verdict
 * waits until the client's name is known so the warning names it as
 * Postfix's does:
 *   warning: Connection concurrency limit exceeded: 51 from name[addr] for service smtp
 *   421 4.7.0 myhostname Error: too many connections from addr
 *
 * smtpd_client_event_limit_exceptions (default $mynetworks) exempts
 * clients by address or network (a.b.c.d, a.b.c.d/n, [ipv6], [ipv6]/n,
 * "!" negates, the first match decides). Host names and tables need a
 * lookup Postfix makes before it counts; here they are ignored with a
 * warning at start, so an exception list never denies anybody.
 *
 * Failure: a counter that cannot be set up is logged and the listener
 * counts nothing (accepts all), never the reverse.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "daemon/conn_count.h"
#include "smtpd.h"

struct smtpd_limit_net {
	bool neg;
	uint8_t family;
	uint8_t addr[16];
	unsigned prefix;
};

/* "1.2.3.4", "[::1]", "::1" with an optional "/n". -1 when not an address. */
static int parse_net(const char *item, struct smtpd_limit_net *n)
{
	char buf[INET6_ADDRSTRLEN + 2];
	const char *slash = strchr(item, '/');
	size_t len = slash != NULL ? (size_t)(slash - item) : strlen(item);
	unsigned max;

	if (len >= 2 && item[0] == '[' && item[len - 1] == ']') {
		item++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, item, len);
	buf[len] = '\0';
	memset(n->addr, 0, sizeof(n->addr));
	if (inet_pton(AF_INET, buf, n->addr) == 1)
		n->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, n->addr) == 1)
		n->family = AF_INET6;
	else
		return -1;
	max = n->family == AF_INET ? 32 : 128;
	n->prefix = max;
	if (slash != NULL) {
		char *end;
		unsigned long bits = strtoul(slash + 1, &end, 10);

		if (slash[1] == '\0' || *end != '\0' || bits > max)
			return -1;
		n->prefix = (unsigned)bits;
	}
	return 0;
}

static bool net_match(const struct smtpd_limit_net *n, const struct conn_count_key *key)
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (n->family != key->family || memcmp(n->addr, key->addr, full) != 0)
		return false;
	return rest == 0 || ((n->addr[full] ^ key->addr[full]) & (0xff00 >> rest) & 0xff) == 0;
}

void smtpd_limit_init(struct smtpd_listener *lis, const char *queue_directory)
{
	const strv_t *list = config_list(lis->cfg, "smtpd_client_event_limit_exceptions");
	char *path, *p;

	lis->conn_limit = (unsigned)config_int(lis->cfg, "smtpd_client_connection_count_limit");
	if (lis->conn_limit == 0)
		return;
	for (size_t i = 0; list != NULL && i < list->n; i++) {
		struct smtpd_limit_net n = {.neg = list->v[i][0] == '!'};

		if (parse_net(list->v[i] + (n.neg ? 1 : 0), &n) < 0) {
			log_warning(
			        "service %s: smtpd_client_event_limit_exceptions: \"%s\" ignored: "
			        "only addresses and networks are supported here",
			        lis->service, list->v[i]);
			continue;
		}
		lis->limit_nets = xreallocarray(lis->limit_nets, lis->n_limit_nets + 1, sizeof(n));
		lis->limit_nets[lis->n_limit_nets++] = n;
	}
	path = xasprintf("%s/pid/smtpd.%s.conn", queue_directory, lis->service);
	for (p = strrchr(path, '/') + 1; *p != '\0'; p++)
		if (*p == '/' || *p == ' ')
			*p = '_';
	lis->conn_count = conn_count_open(path);
	free(path);
}

void smtpd_limit_free(struct smtpd_listener *lis)
{
	conn_count_close(&lis->conn_count);
	free(lis->limit_nets);
	lis->limit_nets = NULL;
	lis->n_limit_nets = 0;
}

void smtpd_limit_connect(struct smtpd_session *s, const struct sockaddr *sa)
{
	struct smtpd_listener *lis = s->lis;
	struct conn_count_key key;

	if (lis->conn_count == NULL)
		return;
	s->conn_count = conn_count_connect(lis->conn_count, sa, lis->conn_limit, &key);
	if (s->conn_count == 0)
		return;
	s->conn_key = key;
	for (size_t i = 0; i < lis->n_limit_nets; i++) {
		if (net_match(&lis->limit_nets[i], &key)) {
			s->conn_exempt = !lis->limit_nets[i].neg;
			break;
		}
	}
}

bool smtpd_limit_exceeded(struct smtpd_session *s)
{
	if (s->conn_count <= s->lis->conn_limit || s->conn_exempt || s->lis->conn_limit == 0)
		return false;
	log_warning("Connection concurrency limit exceeded: %u from %s[%s] for service %s",
	            s->conn_count, s->name, s->addr, s->lis->service);
	smtpd_hangup(s, "421 4.7.0 %s Error: too many connections from %s", s->set->myhostname,
	             s->addr);
	return true;
}

void smtpd_limit_disconnect(struct smtpd_session *s)
{
	if (s->conn_count > 0)
		conn_count_disconnect(s->lis->conn_count, &s->conn_key);
	s->conn_count = 0;
}
