/* smtp_greet.c - from the server's greeting to the mail transaction:
 * EHLO (LHLO) and the extensions it offers, HELO for old servers,
 * STARTTLS with the security level's verdict on the certificate, SMTP
 * AUTH with smtp_sasl_password_maps, XFORWARD for content filters.
 *
 * Used by smtp_session.c (the reply dispatcher). Each step ends either in
 * the next one or in smtp_session_fail() with Postfix's words for why.
 */
#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "address/xtext.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "table/table_async.h"
#include "tls/tls.h"

#include "smtp_session.h"

static void after_ehlo(struct smtp_session *s);
static void start_auth(struct smtp_session *s);

/* ---- EHLO ---- */

static void parse_feature(struct smtp_session *s, const char *line)
{
	char word[32];
	size_t len = strcspn(line, " =");
	const char *args = line + len;

	while (*args == ' ' || *args == '=')
		args++;
	if (len == 0 || len >= sizeof(word))
		return;
	memcpy(word, line, len);
	word[len] = '\0';
	/* smtp_discard_ehlo_keywords: as if the server had not said it. */
	for (size_t i = 0; i < s->agent->set.discard_ehlo.n; i++)
		if (strcasecmp(s->agent->set.discard_ehlo.v[i], word) == 0)
			return;
	if (strcasecmp(word, "PIPELINING") == 0)
		s->pipelining = true;
	else if (strcasecmp(word, "8BITMIME") == 0)
		s->eightbit = true;
	else if (strcasecmp(word, "SMTPUTF8") == 0)
		s->smtputf8 = true;
	else if (strcasecmp(word, "DSN") == 0)
		s->dsn = true;
	else if (strcasecmp(word, "CHUNKING") == 0)
		s->chunking = true;
	else if (strcasecmp(word, "STARTTLS") == 0)
		s->starttls = true;
	else if (strcasecmp(word, "SIZE") == 0) {
		s->size = true;
		uint64_t n;

		if (*args != '\0' && parse_uint64(args, 0, UINT64_MAX, &n) == 0)
			s->size_limit = n;
	} else if (strcasecmp(word, "AUTH") == 0) {
		/* "AUTH=LOGIN PLAIN" is the old form; the standard one wins. */
		if (s->auth_mechs == NULL || line[len] != '=') {
			free(s->auth_mechs);
			s->auth_mechs = xstrdup(args);
		}
	} else if (strcasecmp(word, "XFORWARD") == 0) {
		const char *err;

		s->xforward = true;
		strv_free(&s->xforward_names);
		(void)strv_split_list(&s->xforward_names, args, &err);
	}
}

static void features_reset(struct smtp_session *s)
{
	s->esmtp = s->pipelining = s->dsn = s->eightbit = s->smtputf8 = false;
	s->starttls = s->xforward = s->chunking = false;
	s->size = false;
	s->size_limit = 0;
	free(s->auth_mechs);
	s->auth_mechs = NULL;
	strv_free(&s->xforward_names);
}

static void send_ehlo(struct smtp_session *s)
{
	const struct smtp_settings *set = &s->agent->set;
	char *line;

	features_reset(s);
	if (set->never_send_ehlo) {
		s->state = S_HELO;
		line = xasprintf("HELO %s", set->helo_name);
	} else {
		s->state = S_EHLO;
		line = xasprintf("%s %s", set->lmtp ? "LHLO" : "EHLO", set->helo_name);
	}
	smtp_session_set_timeout(s, set->helo_timeout);
	smtp_session_send(s, line);
	free(line);
}

/* The greeting: 2xx goes on; anything else ends this server. */
void smtp_greet_on_greeting(struct smtp_session *s)
{
	str_t why;

	if (s->code / 100 == 2) {
		if (s->job != NULL) {
			s->job->sessions++;
			s->job->greeted = true;
		}
		send_ehlo(s);
		return;
	}
	if (s->job != NULL)
		s->job->sessions++;
	str_init(&why);
	str_appendf(&why, "host %s[%s] refused to talk to me: %s", s->host, s->addr,
	            str_c(&s->reply));
	/* smtp_skip_5xx_greeting: a 5xx greeting is a reason to try the
	 * next server, not to bounce, unless it is the last one. */
	smtp_session_fail(s, &(struct queue_dsn){s->code >= 500 ? 5 : 4, 0, 0}, str_c(&why),
	                  s->code >= 500 && !s->agent->set.skip_5xx_greeting);
	str_free(&why);
}

void smtp_greet_on_ehlo(struct smtp_session *s)
{
	str_t why;

	if (s->code / 100 == 2) {
		s->esmtp = s->state == S_EHLO;
		for (size_t i = 1; s->esmtp && i < s->reply_lines.n; i++)
			parse_feature(s, s->reply_lines.v[i]);
		after_ehlo(s);
		return;
	}
	if (s->state == S_EHLO && !s->agent->set.lmtp && !s->tls_active) {
		/* An old server: fall back to HELO (RFC 5321 4.1.4). */
		char *line = xasprintf("HELO %s", s->agent->set.helo_name);

		s->state = S_HELO;
		smtp_session_send(s, line);
		free(line);
		return;
	}
	str_init(&why);
	str_appendf(&why, "host %s[%s] refused to talk to me: %s", s->host, s->addr,
	            str_c(&s->reply));
	smtp_session_fail(s, &(struct queue_dsn){s->code >= 500 ? 5 : 4, 0, 0}, str_c(&why), false);
	str_free(&why);
}

/* ---- TLS ---- */

static struct tls_client *tls_context(const struct smtp_session *s, enum smtp_tls_level level)
{
	const struct smtp_settings *set = &s->agent->set;

	return level >= SMTP_TLS_ENCRYPT ? set->tls_mandatory : set->tls_opportunistic;
}

/* The nexthop's domain: "example.com" of "[example.com]:587". */
static void nexthop_domain(const char *key, str_t *out)
{
	const char *p = key;
	size_t len;

	if (*p == '[') {
		p++;
		len = strcspn(p, "]");
	} else {
		len = strcspn(p, ":, ");
	}
	str_append_n(out, p, len);
}

static void start_tls(struct smtp_session *s)
{
	s->state = S_STARTTLS;
	smtp_session_set_timeout(s, s->agent->set.starttls_timeout);
	smtp_session_send(s, "STARTTLS");
}

void smtp_greet_on_starttls(struct smtp_session *s)
{
	const struct smtp_job *job = s->job;
	const struct smtp_settings *set = &s->agent->set;
	struct bufferevent *filter;
	const char *sni = NULL;
	str_t name, why;
	SSL *ssl;

	if (s->code != 220) {
		str_init(&why);
		if (job->tls.level >= SMTP_TLS_ENCRYPT) {
			str_appendf(&why,
			            "TLS is required, but host %s[%s] refused to start TLS: %s",
			            s->host, s->addr, str_c(&s->reply));
			smtp_session_fail(s, &(struct queue_dsn){4, 7, 5}, str_c(&why), false);
		} else {
			/* may: go on in plaintext, as Postfix does. */
			after_ehlo(s);
		}
		str_free(&why);
		return;
	}
	str_init(&name);
	if (job->tls.servername != NULL) {
		str_append(&name, job->tls.servername);
	} else if (strcasecmp(set->tls_servername, "hostname") == 0) {
		str_append(&name, s->host);
	} else if (strcasecmp(set->tls_servername, "nexthop") == 0) {
		nexthop_domain(s->dest, &name);
	} else {
		str_append(&name, set->tls_servername);
	}
	if (name.len > 0 && inet_pton(AF_INET, str_c(&name), (unsigned char[16]){0}) != 1 &&
	    inet_pton(AF_INET6, str_c(&name), (unsigned char[16]){0}) != 1)
		sni = str_c(&name);
	ssl = tls_client_ssl_new(tls_context(s, job->tls.level), s->peer, sni, NULL);
	if (ssl == NULL) {
		str_free(&name);
		smtp_session_fail(s, &(struct queue_dsn){4, 7, 5},
		                  "cannot start TLS: out of memory", false);
		return;
	}
	if (job->tls.has_protocols) {
		static const struct {
			unsigned bit;
			uint64_t op;
		} map[] = {{TLS_PROTO_TLSv1, SSL_OP_NO_TLSv1},
		           {TLS_PROTO_TLSv1_1, SSL_OP_NO_TLSv1_1},
		           {TLS_PROTO_TLSv1_2, SSL_OP_NO_TLSv1_2},
		           {TLS_PROTO_TLSv1_3, SSL_OP_NO_TLSv1_3}};

		for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (job->tls.disabled_protocols & map[i].bit)
				SSL_set_options(ssl, map[i].op);
	}
	/* Resume the session of the last connection to this server (same
	 * address, SNI name and level): a shorter handshake. The
	 * certificate checks of tls_done() still run on a resumed session
	 * (OpenSSL keeps the peer's certificate and verify result in it). */
	{
		char *key = xasprintf("%s/%s/%s", s->peer, name.len > 0 ? str_c(&name) : "",
		                      smtp_tls_level_name(job->tls.level));

		tls_client_ssl_resume(tls_context(s, job->tls.level), ssl, key);
		free(key);
	}
	str_free(&name);
	filter = bufferevent_openssl_filter_new(s->agent->base, s->bev, ssl,
	                                        BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (filter == NULL) {
		s->bev = NULL;
		smtp_session_fail(s, &(struct queue_dsn){4, 7, 5}, "cannot start TLS", false);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
	s->bev = filter;
	s->state = S_HANDSHAKE;
	bufferevent_setcb(filter, smtp_session_on_read, NULL, smtp_session_on_event, s);
	smtp_session_set_timeout(s, set->starttls_timeout);
	bufferevent_enable(filter, EV_READ | EV_WRITE);
}

/* Does the server certificate match one of the names the level asks
 * for ("hostname", "nexthop", "dot-nexthop" or a name)? */
static bool cert_matches(const struct smtp_session *s, SSL *ssl)
{
	const struct smtp_job *job = s->job;
	const struct smtp_settings *set = &s->agent->set;
	const strv_t *match = job->tls.match.n > 0                ? &job->tls.match
	                      : job->tls.level == SMTP_TLS_SECURE ? &set->tls_secure_match
	                                                          : &set->tls_verify_match;
	X509 *cert = SSL_get1_peer_certificate(ssl);
	bool ok = false;
	str_t name;

	if (cert == NULL)
		return false;
	str_init(&name);
	for (size_t i = 0; i < match->n && !ok; i++) {
		str_reset(&name);
		if (strcasecmp(match->v[i], "hostname") == 0) {
			str_append(&name, s->host);
		} else if (strcasecmp(match->v[i], "nexthop") == 0) {
			nexthop_domain(s->dest, &name);
		} else if (strcasecmp(match->v[i], "dot-nexthop") == 0) {
			/* OpenSSL: a name with a leading dot matches any
			 * subdomain of it. */
			str_append_c(&name, '.');
			nexthop_domain(s->dest, &name);
		} else {
			str_append(&name, match->v[i]);
		}
		ok = X509_check_host(cert, str_c(&name), name.len, 0, NULL) == 1;
	}
	str_free(&name);
	X509_free(cert);
	return ok;
}

void smtp_greet_tls_done(struct smtp_session *s)
{
	const struct smtp_job *job = s->job;
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
	struct tls_info info;
	str_t line;

	tls_info_get(ssl, &info);
	if (job->tls.level >= SMTP_TLS_VERIFY) {
		info.peer_name_checked = true;
		info.peer_name_matched = info.peer_verified && cert_matches(s, ssl);
	}
	if (s->agent->set.tls_loglevel >= 1) {
		str_init(&line);
		tls_info_client_log_line(&info, s->peer, &line);
		log_info("%s", str_c(&line));
		str_free(&line);
	}
	s->tls_active = true;
	if (job->tls.level >= SMTP_TLS_VERIFY && !info.peer_name_matched) {
		str_init(&line);
		str_appendf(&line, "Server certificate not verified%s%s",
		            info.verify_error[0] ? ": " : "", info.verify_error);
		log_info("%s: %s: %s", job->queue_id, s->peer, str_c(&line));
		smtp_session_fail(s, &(struct queue_dsn){4, 7, 5}, str_c(&line), false);
		str_free(&line);
		return;
	}
	send_ehlo(s);
}

void smtp_greet_tls_failed(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	str_t why;

	str_init(&why);
	str_appendf(&why, "Cannot start TLS: handshake failure");
	log_info("SSL_connect error to %s: lost connection", s->peer);
	tls_errors_append(&why);
	if (job->tls.level == SMTP_TLS_MAY && job->next_addr > 0) {
		/* Opportunistic TLS that failed: the same server once more,
		 * in plaintext (Postfix's "may" fallback). */
		job->next_addr--;
		job->plaintext_retry = true;
	}
	smtp_session_fail(s, &(struct queue_dsn){4, 7, 5}, str_c(&why), false);
	str_free(&why);
}

/* After EHLO (or after TLS, EHLO again): TLS, then AUTH, then mail. */
static void after_ehlo(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	const struct smtp_settings *set = &s->agent->set;
	enum smtp_tls_level level = job->tls.level;
	str_t why;

	if (!s->tls_active && level != SMTP_TLS_NONE && !s->no_tls) {
		str_init(&why);
		if (!s->starttls || !s->esmtp) {
			if (level >= SMTP_TLS_ENCRYPT) {
				str_appendf(&why,
				            "TLS is required, but was not offered by host %s[%s]",
				            s->host, s->addr);
				smtp_session_fail(s, &(struct queue_dsn){4, 7, 4}, str_c(&why),
				                  false);
				str_free(&why);
				return;
			}
		} else if (tls_context(s, level) == NULL) {
			if (level >= SMTP_TLS_ENCRYPT) {
				str_appendf(
				        &why,
				        "TLS is required, but our TLS engine is unavailable: %s",
				        set->tls_error != NULL ? set->tls_error : "no context");
				smtp_session_fail(s, &(struct queue_dsn){4, 7, 5}, str_c(&why),
				                  false);
				str_free(&why);
				return;
			}
		} else {
			str_free(&why);
			start_tls(s);
			return;
		}
		str_free(&why);
	} else if (!s->tls_active && s->starttls && set->tls_note_starttls_offer &&
	           level == SMTP_TLS_NONE) {
		log_info("Host offered STARTTLS: [%s]", s->host);
	}
	start_auth(s);
}

/* ---- AUTH ---- */

static void auth_lookup_next(struct smtp_session *s);

static void on_auth_password(const struct table_result *r, void *ctx)
{
	struct smtp_session *s = ctx;
	const struct smtp_settings *set = &s->agent->set;
	const char *value, *colon;
	char *user;
	str_t why;

	s->sasl_req = NULL;
	if (r->status == TABLE_TEMPFAIL) {
		str_init(&why);
		str_appendf(&why,
		            "SASL authentication failed; cannot look up the password for %s: %s",
		            s->host, str_c(&r->error));
		smtp_session_fail(s, &(struct queue_dsn){4, 3, 0}, str_c(&why), false);
		str_free(&why);
		return;
	}
	if (r->status == TABLE_NOTFOUND) {
		auth_lookup_next(s);
		return;
	}
	value = str_c(&r->value);
	colon = strchr(value, ':');
	user = colon != NULL ? xstrndup(value, (size_t)(colon - value)) : xstrdup(value);
	str_init(&why);
	s->sasl = smtp_sasl_new(set, s->auth_mechs, s->tls_active, user,
	                        colon != NULL ? colon + 1 : "", &why);
	free(user);
	if (s->sasl == NULL) {
		str_t msg;

		str_init(&msg);
		str_appendf(&msg,
		            "SASL authentication failed; cannot authenticate to server %s[%s]: %s",
		            s->host, s->addr, str_c(&why));
		smtp_session_fail(s, &(struct queue_dsn){4, 7, 0}, str_c(&msg), false);
		str_free(&msg);
		str_free(&why);
		return;
	}
	str_free(&why);
	{
		const char *initial = smtp_sasl_initial(s->sasl);
		char *line = initial != NULL
		                     ? xasprintf("AUTH %s %s", smtp_sasl_mech(s->sasl), initial)
		                     : xasprintf("AUTH %s", smtp_sasl_mech(s->sasl));

		s->state = S_AUTH;
		smtp_session_set_timeout(s, set->helo_timeout);
		log_debug(1, "> %s: AUTH %s ...", s->peer, smtp_sasl_mech(s->sasl));
		bufferevent_write(s->bev, line, strlen(line));
		bufferevent_write(s->bev, "\r\n", 2);
		free(line);
	}
}

/* smtp_sasl_password_maps: each key in order, each table in order. */
static void auth_lookup_next(struct smtp_session *s)
{
	const struct smtp_settings *set = &s->agent->set;

	if (s->sasl_map >= s->sasl_maps.n) {
		s->sasl_map = 0;
		s->sasl_key++;
	}
	if (s->sasl_key >= s->sasl_keys.n) {
		/* No password for this server: deliver without AUTH. */
		smtp_greet_start_xforward(s);
		return;
	}
	s->state = S_AUTH_LOOKUP;
	s->sasl_req = table_async_lookup(set->tables, s->sasl_maps.v[s->sasl_map++],
	                                 s->sasl_keys.v[s->sasl_key], on_auth_password, s);
}

static void start_auth(struct smtp_session *s)
{
	const struct smtp_settings *set = &s->agent->set;
	const struct smtp_job *job = s->job;
	const char *err;

	if (!set->sasl_enable || s->authenticated || s->auth_mechs == NULL ||
	    set->sasl_password_maps[0] == '\0') {
		smtp_greet_start_xforward(s);
		return;
	}
	strv_free(&s->sasl_keys);
	strv_free(&s->sasl_maps);
	if (strv_split_list(&s->sasl_maps, set->sasl_password_maps, &err) < 0 ||
	    s->sasl_maps.n == 0) {
		smtp_greet_start_xforward(s);
		return;
	}
	/* Postfix's order: the sender and its @domain (sender-dependent
	 * authentication), the server's name, the nexthop as written. */
	if (set->sender_dependent_auth && job->env->sender[0] != '\0') {
		const char *at = strrchr(job->env->sender, '@');

		strv_add(&s->sasl_keys, job->env->sender);
		if (at != NULL)
			strv_add(&s->sasl_keys, at);
	}
	strv_add(&s->sasl_keys, s->host);
	if (strcasecmp(job->dest_key, s->host) != 0)
		strv_add(&s->sasl_keys, job->dest_key);
	s->sasl_key = 0;
	s->sasl_map = 0;
	auth_lookup_next(s);
}

void smtp_greet_on_auth(struct smtp_session *s)
{
	const struct smtp_settings *set = &s->agent->set;
	str_t why, out;

	if (s->code == 334) {
		str_init(&why);
		str_init(&out);
		if (smtp_sasl_step(s->sasl, smtp_session_reply_text(s), &out, &why) < 0) {
			/* Cancel the exchange; the server answers 501. */
			smtp_session_send(s, "*");
		} else {
			log_debug(1, "> %s: (SASL response)", s->peer);
			bufferevent_write(s->bev, out.buf, out.len);
			bufferevent_write(s->bev, "\r\n", 2);
		}
		str_free(&out);
		str_free(&why);
		return;
	}
	smtp_sasl_free(&s->sasl);
	if (s->code / 100 == 2) {
		s->authenticated = true;
		smtp_greet_start_xforward(s);
		return;
	}
	str_init(&why);
	str_appendf(&why, "SASL authentication failed; server %s[%s] said: %s", s->host, s->addr,
	            str_c(&s->reply));
	{
		struct queue_dsn dsn = smtp_reply_dsn(s->code, smtp_session_reply_text(s));

		/* smtp_sasl_auth_soft_bounce: a wrong password is a
		 * configuration error to fix, not a reason to bounce. */
		if (dsn.klass == 5 && set->sasl_soft_bounce)
			dsn.klass = 4;
		smtp_session_fail(s, &dsn, str_c(&why), dsn.klass == 5);
	}
	str_free(&why);
}

/* ---- XFORWARD ---- */

static bool xforward_offered(const struct smtp_session *s, const char *name)
{
	for (size_t i = 0; i < s->xforward_names.n; i++)
		if (strcasecmp(s->xforward_names.v[i], name) == 0)
			return true;
	return false;
}

/* Append " NAME=xtext(value)" when the server takes NAME. */
static void xforward_attr(const struct smtp_session *s, str_t *line, const char *name,
                          const char *value)
{
	if (!xforward_offered(s, name))
		return;
	str_appendf(line, " %s=", name);
	if (value == NULL || value[0] == '\0')
		str_append(line, "[UNAVAILABLE]");
	else
		xtext_encode(value, strlen(value), line);
}

static const char *qattr(const struct smtp_job *job, const char *log_name, const char *name)
{
	const char *v = queue_file_attr(job->qf, log_name);

	return v != NULL ? v : queue_file_attr(job->qf, name);
}

void smtp_greet_start_xforward(struct smtp_session *s)
{
	const struct smtp_job *job = s->job;
	str_t line;

	if (!s->agent->set.send_xforward || !s->xforward) {
		smtp_xact_start(s);
		return;
	}
	/* Two commands, as Postfix sends them, each well under 512 bytes. */
	s->state = S_XFORWARD;
	s->xforward_pending = 0;
	smtp_session_set_timeout(s, s->agent->set.xforward_timeout);
	str_init(&line);
	str_append(&line, "XFORWARD");
	xforward_attr(s, &line, "NAME",
	              qattr(job, QUEUE_ATTR_LOG_CLIENT_NAME, QUEUE_ATTR_CLIENT_NAME));
	xforward_attr(s, &line, "ADDR",
	              qattr(job, QUEUE_ATTR_LOG_CLIENT_ADDRESS, QUEUE_ATTR_CLIENT_ADDRESS));
	xforward_attr(s, &line, "PORT",
	              qattr(job, QUEUE_ATTR_LOG_CLIENT_PORT, QUEUE_ATTR_CLIENT_PORT));
	xforward_attr(s, &line, "PROTO", qattr(job, QUEUE_ATTR_LOG_PROTOCOL, QUEUE_ATTR_PROTOCOL));
	xforward_attr(s, &line, "HELO", qattr(job, QUEUE_ATTR_LOG_HELO_NAME, QUEUE_ATTR_HELO_NAME));
	if (line.len > strlen("XFORWARD")) {
		smtp_session_send(s, str_c(&line));
		s->xforward_pending++;
	}
	str_set(&line, "XFORWARD");
	xforward_attr(s, &line, "IDENT", job->queue_id);
	if (xforward_offered(s, "SOURCE")) {
		const char *ctx = queue_file_attr(job->qf, QUEUE_ATTR_REWRITE_CONTEXT);
		const char *addr = queue_file_attr(job->qf, QUEUE_ATTR_CLIENT_ADDRESS);

		str_appendf(&line, " SOURCE=%s",
		            ctx != NULL ? (strcasecmp(ctx, "local") == 0 ? "LOCAL" : "REMOTE")
		            : addr == NULL || strcmp(addr, "127.0.0.1") == 0 ||
		                            strcmp(addr, "::1") == 0
		                    ? "LOCAL"
		                    : "REMOTE");
	}
	if (line.len > strlen("XFORWARD")) {
		smtp_session_send(s, str_c(&line));
		s->xforward_pending++;
	}
	str_free(&line);
	if (s->xforward_pending == 0)
		smtp_xact_start(s);
}

void smtp_greet_on_xforward(struct smtp_session *s)
{
	str_t why;

	if (s->code / 100 != 2) {
		str_init(&why);
		struct queue_dsn dsn = smtp_reply_dsn(s->code, smtp_session_reply_text(s));

		smtp_session_said(s, "XFORWARD", &why);
		dsn.klass = 4; /* a filter that refuses XFORWARD: try again */
		smtp_session_fail(s, &dsn, str_c(&why), false);
		str_free(&why);
		return;
	}
	if (--s->xforward_pending == 0)
		smtp_xact_start(s);
}
