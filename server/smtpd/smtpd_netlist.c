/* smtpd_netlist.c - client address lists given as addresses and networks:
 * smtpd_client_event_limit_exceptions (smtpd_limit.c) and
 * smtpd_forbid_bare_newline_exclusions (smtpd_data.c), both $mynetworks
 * by default.
 *
 * An element is a.b.c.d, a.b.c.d/n, [ipv6], [ipv6]/n or ipv6[/n]; "!"
 * negates; the first element that matches decides. Host names and tables
 * need lookups Postfix makes before it decides; here they are skipped
 * with a warning at start (naming the service and parameter), so such a
 * list can only ever exempt fewer clients, never match by accident.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "smtpd.h"

struct smtpd_net {
	bool neg;
	uint8_t family;
	uint8_t addr[16];
	unsigned prefix;
};

/* The text form of an address (with optional []) into family/bytes. */
static int parse_addr(const char *item, size_t len, uint8_t *family, uint8_t addr[16])
{
	char buf[INET6_ADDRSTRLEN + 2];

	if (len >= 2 && item[0] == '[' && item[len - 1] == ']') {
		item++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, item, len);
	buf[len] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, buf, addr) == 1)
		*family = AF_INET6;
	else
		return -1;
	return 0;
}

/* "1.2.3.4", "[::1]", "::1" with an optional "/n". -1 when not one. */
static int parse_net(const char *item, struct smtpd_net *n)
{
	const char *slash = strchr(item, '/');
	size_t len = slash != NULL ? (size_t)(slash - item) : strlen(item);
	unsigned max;

	if (parse_addr(item, len, &n->family, n->addr) < 0)
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

static bool net_match(const struct smtpd_net *n, uint8_t family, const uint8_t addr[16])
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (n->family != family || memcmp(n->addr, addr, full) != 0)
		return false;
	return rest == 0 || ((n->addr[full] ^ addr[full]) & (0xff00 >> rest) & 0xff) == 0;
}

void smtpd_netlist_init(struct smtpd_netlist *l, const strv_t *list, const char *service,
                        const char *param)
{
	l->v = NULL;
	l->n = 0;
	for (size_t i = 0; list != NULL && i < list->n; i++) {
		struct smtpd_net n = {.neg = list->v[i][0] == '!'};

		if (parse_net(list->v[i] + (n.neg ? 1 : 0), &n) < 0) {
			log_warning(
			        "service %s: %s: \"%s\" ignored: only addresses and networks are "
			        "supported here",
			        service, param, list->v[i]);
			continue;
		}
		l->v = xreallocarray(l->v, l->n + 1, sizeof(n));
		l->v[l->n++] = n;
	}
}

void smtpd_netlist_free(struct smtpd_netlist *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

bool smtpd_netlist_match(const struct smtpd_netlist *l, const char *addr)
{
	uint8_t family, bytes[16];

	if (l->n == 0 || parse_addr(addr, strlen(addr), &family, bytes) < 0)
		return false;
	for (size_t i = 0; i < l->n; i++)
		if (net_match(&l->v[i], family, bytes))
			return !l->v[i].neg;
	return false;
}
