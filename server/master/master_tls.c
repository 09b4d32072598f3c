/* master_tls.c - the TLS session ticket keys master keeps for smtpd.
 *
 * smtpd processes come and go (max_idle, max_use, reloads) and a client
 * reconnects to whichever one accepts it; a session resumes only when
 * that process can decrypt the client's ticket. So the ticket keys are
 * not made per process: master writes them to
 * $data_directory/smtpd_tls_tickets (mode 0600, owned by mail_owner,
 * which the smtpd processes run as), makes a new key every
 * smtpd_tls_session_cache_timeout and keeps the previous one (tickets
 * it made still resume until they expire). smtpd re-reads the file when
 * it changes (lib/tls). Postfix's tlsmgr does the same job.
 *
 * Failure: a key file that cannot be written is a warning, retried a
 * minute later; smtpd then uses keys of its own (resumption only with
 * the same process). Never fatal.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "master.h"
#include "tls/tls.h"

static void on_rotate(evutil_socket_t fd, short what, void *arg);

static void rotate(struct master *m)
{
	unsigned lifetime = (unsigned)config_time(m->main_cfg, "smtpd_tls_session_cache_timeout");
	char *path;
	time_t next = 0, now = time(NULL);
	struct timeval tv = {60, 0};
	str_t error;

	if (lifetime == 0)
		return; /* no resumption: nothing to share */
	path = xasprintf("%s/%s", config_str(m->main_cfg, "data_directory"), TLS_SMTPD_TICKET_FILE);
	str_init(&error);
	if (tls_ticket_keys_rotate(path, lifetime, m->privileged ? (long)m->owner_uid : -1,
	                           m->privileged ? (long)m->owner_gid : -1, &next, &error) < 0)
		log_warning("TLS session ticket keys: %s", str_c(&error));
	else if (next > now)
		tv.tv_sec = next - now;
	else
		tv.tv_sec = 1;
	str_free(&error);
	free(path);
	if (m->tickets_ev == NULL)
		m->tickets_ev = evtimer_new(m->base, on_rotate, m);
	if (m->tickets_ev != NULL)
		evtimer_add(m->tickets_ev, &tv);
}

static void on_rotate(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	rotate(arg);
}

void master_tls_tickets(struct master *m)
{
	if (m->tickets_ev != NULL)
		evtimer_del(m->tickets_ev);
	rotate(m);
}

void master_tls_free(struct master *m)
{
	if (m->tickets_ev != NULL)
		event_free(m->tickets_ev);
	m->tickets_ev = NULL;
}
