/* smtpd.c - the SMTP server program: main(), listeners, accept.
 *
 * main() is a declaration for the event-server skeleton
 * (lib/daemon/event_server.h), which does options, configuration,
 * listeners, the privilege drop, limits and signals. `smtpd -c DIR [-v]
 * [-e]` run by hand serves every inet service of master.cf whose command
 * is smtpd, each listener with its service's -o overrides, all from one
 * libevent loop; with none, port 25 with main.cf alone. Under master
 * (`-s SERVICE -l FD...`) it serves the sockets handed over.
 *
 * Failure: broken configuration (a bad restriction list, a check table
 * that cannot be opened, a port that cannot be bound) is fatal at start,
 * with a message naming the parameter or service. Later on nothing is
 * fatal: a session that cannot be set up is refused and logged, an accept
 * that fails for lack of descriptors pauses the listener for a second.
 *
 * SECURITY: network-facing. Every byte a client sends is parsed by the
 * session code (smtpd_session.c and friends) with explicit bounds. The
 * process holds no database write credentials (lookups only) and writes
 * only the queue directory. Started as root, it binds its ports and
 * drops to mail_owner before any of this code runs (-R keeps root, for
 * debugging only).
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "daemon/event_server.h"
#include "dns/dns.h"
#include "conf/mastercf.h"
#include "queue/queue_dir.h"
#include "smtpd.h"
#include "table/table_async.h"
#include "table/table_cache.h"

/* smtpd_forbid_bare_newline: no, yes, normalize, reject (any case). */
static enum smtpd_bare_newline bare_newline_read(struct config *cfg)
{
	const char *v = config_str(cfg, "smtpd_forbid_bare_newline");

	if (strcasecmp(v, "no") == 0)
		return SMTPD_BARE_NO;
	if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "normalize") == 0)
		return SMTPD_BARE_NORMALIZE;
	if (strcasecmp(v, "reject") == 0)
		return SMTPD_BARE_REJECT;
	log_fatal("%s: smtpd_forbid_bare_newline: \"%s\": expected no, yes, normalize or reject",
	          config_where(cfg, "smtpd_forbid_bare_newline"), v);
}

static void settings_read(struct smtpd_settings *set, struct config *cfg)
{
	set->myhostname = config_str(cfg, "myhostname");
	set->banner = config_str(cfg, "smtpd_banner");
	set->mail_name = config_str(cfg, "mail_name");
	set->line_limit = (size_t)config_int(cfg, "line_length_limit");
	set->size_limit = (uint64_t)config_int(cfg, "message_size_limit");
	set->queue_minfree = (uint64_t)config_int(cfg, "queue_minfree");
	set->rcpt_limit = config_int(cfg, "smtpd_recipient_limit");
	set->hop_limit = config_int(cfg, "hopcount_limit");
	set->timeout = config_time(cfg, "smtpd_timeout");
	set->soft_error_limit = config_int(cfg, "smtpd_soft_error_limit");
	set->hard_error_limit = config_int(cfg, "smtpd_hard_error_limit");
	set->error_sleep = config_time(cfg, "smtpd_error_sleep_time");
	set->junk_limit = config_int(cfg, "smtpd_junk_command_limit");
	set->bare_newline = bare_newline_read(cfg);
	set->bare_newline_code = (int)config_int(cfg, "smtpd_forbid_bare_newline_reject_code");
	set->disable_vrfy = config_bool(cfg, "disable_vrfy_command");
	set->helo_required = config_bool(cfg, "smtpd_helo_required");
	set->smtputf8 = config_bool(cfg, "smtputf8_enable");
	set->strict_smtputf8 = config_bool(cfg, "strict_smtputf8");
	set->sloppy_envelopes = !config_bool(cfg, "strict_rfc821_envelopes");
	set->discard_ehlo = config_list(cfg, "smtpd_discard_ehlo_keywords");
	set->peername_lookup = config_bool(cfg, "smtpd_peername_lookup");
	if (set->timeout == 0)
		set->timeout = 1;
}

static void *listener_init(struct event_server *es, const char *service, struct config *cfg,
                           void *ctx)
{
	struct smtpd_server *srv = ctx;
	struct smtpd_listener *lis = xcalloc(1, sizeof(*lis));
	str_t error;

	(void)es;
	str_init(&error);
	lis->server = srv;
	lis->service = xstrdup(service);
	lis->cfg = cfg;
	settings_read(&lis->set, cfg);
	if (restrict_engine_new(cfg, srv->pool, &lis->engine, &error) < 0)
		log_fatal("service %s: %s", service, str_c(&error));
	if (cleanup_settings_new(cfg, srv->daemon->config_dir, &lis->cleanup, &error) < 0)
		log_fatal("service %s: %s", service, str_c(&error));
	if (smtpd_forbidden_new(cfg, srv->daemon->config_dir, &lis->forbidden, &error) < 0)
		log_fatal("service %s: %s", service, str_c(&error));
	if (smtpd_etrn_new(lis, &lis->etrn, &error) < 0)
		log_fatal("service %s: %s", service, str_c(&error));
	if (smtpd_tls_listener_init(lis, &error) < 0)
		log_fatal("service %s: %s", service, str_c(&error));
	if (smtpd_auth_listener_init(lis, &error) < 0)
		log_fatal("service %s: %s", service, str_c(&error));
	str_free(&error);
	lis->quota = smtpd_quota_new(cfg, srv->daemon->config_dir);
	smtpd_limit_init(lis, config_str(cfg, "queue_directory"));
	smtpd_netlist_init(&lis->bare_newline_exclusions,
	                   config_list(cfg, "smtpd_forbid_bare_newline_exclusions"), service,
	                   "smtpd_forbid_bare_newline_exclusions");
	smtpd_netlist_init(&lis->xclient_hosts, config_list(cfg, "smtpd_authorized_xclient_hosts"),
	                   service, "smtpd_authorized_xclient_hosts");
	smtpd_netlist_init(&lis->xforward_hosts,
	                   config_list(cfg, "smtpd_authorized_xforward_hosts"), service,
	                   "smtpd_authorized_xforward_hosts");
	restrict_engine_set_dns(lis->engine, srv->dns);
	srv->listeners = xreallocarray(srv->listeners, srv->n_listeners + 1, sizeof(lis));
	srv->listeners[srv->n_listeners++] = lis;
	return lis;
}

static void server_on_accept(struct event_server *es, void *listener_ctx, int fd,
                             struct sockaddr *sa, int salen)
{
	(void)es;
	smtpd_session_start(listener_ctx, fd, sa, salen);
}

static void server_on_stop(struct daemon *d, void *ctx)
{
	struct smtpd_server *srv = ctx;

	(void)d;
	log_info("stopping with %zu sessions open", srv->n_sessions);
}

/* Master's reload, master gone or max_use: the skeleton stopped
 * accepting; this process exits once its sessions have ended (see
 * session_free), so a client in the middle of a session is not cut off. */
static void server_on_drain(struct event_server *es, void *ctx)
{
	struct smtpd_server *srv = ctx;

	srv->draining = true;
	log_info("stopped accepting; exiting after %zu open sessions", srv->n_sessions);
	if (srv->n_sessions == 0)
		event_server_idle(es);
}

/* Answers of remote tables are shared with the other smtpd processes and
 * qmgr, so that in a database outage a recipient another process looked
 * up is not refused with 451 here (table_shared.h). */
static void share_table_answers(struct config *cfg)
{
	char *dir = xasprintf("%s/pid", config_str(cfg, "queue_directory"));
	const char *why;

	if (table_cache_share_process(cfg, dir, &why) < 0)
		log_fatal("%s", why);
	free(dir);
}

/* After the privilege drop: what every listener shares. */
static void server_init(struct event_server *es, void *ctx)
{
	struct smtpd_server *srv = ctx;
	struct daemon *d = event_server_daemon(es);
	struct table_open_context tctx = {0};
	str_t error;
	const char *qpath;
	unsigned mask = 0;

	str_init(&error);
	srv->es = es;
	srv->daemon = d;
	srv->base = d->base;
	tctx.cfg = d->cfg;
	tctx.config_dir = d->config_dir;
	share_table_answers(d->cfg);
	srv->pool = table_async_new(srv->base, 0, &tctx, &error);
	if (srv->pool == NULL)
		log_fatal("%s", str_c(&error));
	/* One resolver for every listener: client names and the DNS
	 * restrictions (it opens no socket before the first query). */
	if (dns_new(srv->base, config_str(d->cfg, "dns_servers"), &srv->dns, &error) < 0)
		log_fatal("%s", str_c(&error));
	qpath = config_str(d->cfg, "queue_directory");
	if (queue_dir_hash_names(config_str(d->cfg, "hash_queue_names"), &mask, &error) < 0)
		log_fatal("hash_queue_names: %s", str_c(&error));
	srv->qd = queue_dir_new(qpath, (unsigned)config_int(d->cfg, "hash_queue_depth"), mask);
	if (queue_dir_create(srv->qd, (uid_t)-1, (gid_t)-1, &error) < 0)
		log_fatal("queue_directory %s: %s", qpath, str_c(&error));
	str_free(&error);
}

static void server_finish(struct event_server *es, void *ctx)
{
	struct smtpd_server *srv = ctx;

	(void)es;
	smtpd_session_close_all(srv);
	/* First the pool: its workers may still run a quota check that uses
	 * a listener's resolvers. */
	table_async_destroy(&srv->pool);
	for (size_t i = 0; i < srv->n_listeners; i++) {
		struct smtpd_listener *lis = srv->listeners[i];

		restrict_engine_destroy(&lis->engine);
		cleanup_settings_destroy(&lis->cleanup);
		smtpd_quota_destroy(&lis->quota);
		smtpd_limit_free(lis);
		smtpd_forbidden_free(&lis->forbidden);
		smtpd_etrn_destroy(&lis->etrn); /* after the pool: see smtpd.h */
		smtpd_netlist_free(&lis->bare_newline_exclusions);
		smtpd_xclient_free(lis);
		smtpd_tls_listener_free(lis);
		smtpd_auth_listener_free(lis); /* after the pool: its jobs use it */
		config_destroy(&lis->cfg);
		free(lis->service);
		free(lis);
	}
	free(srv->listeners);
	dns_destroy(&srv->dns);
	queue_dir_destroy(&srv->qd);
}

int main(int argc, char **argv)
{
	static struct smtpd_server srv;
	static const struct event_server_spec spec = {
	        .daemon = {.program = "smtpd"},
	        .mode = EVENT_SERVER_STREAM,
	        .default_port = "smtp",
	        .init = server_init,
	        .listener_init = listener_init,
	        .on_accept = server_on_accept,
	        .on_stop = server_on_stop,
	        .on_drain = server_on_drain,
	        .finish = server_finish,
	        .ctx = &srv,
	};

	return event_server_main(&spec, argc, argv);
}
