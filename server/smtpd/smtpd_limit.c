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
 * clients by address or network (smtpd_netlist.c).
 *
 * Failure: a counter that cannot be set up is logged and the listener
 * counts nothing (accepts all), never the reverse.
 */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "daemon/conn_count.h"
#include "smtpd.h"

void smtpd_limit_init(struct smtpd_listener *lis, const char *queue_directory)
{
	const char *param = "smtpd_client_event_limit_exceptions";
	char *path, *p;

	lis->conn_limit = (unsigned)config_int(lis->cfg, "smtpd_client_connection_count_limit");
	if (lis->conn_limit == 0)
		return;
	smtpd_netlist_init(&lis->limit_nets, config_list(lis->cfg, param), lis->service, param);
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
	smtpd_netlist_free(&lis->limit_nets);
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
	s->conn_exempt = smtpd_netlist_match(&lis->limit_nets, s->addr);
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
