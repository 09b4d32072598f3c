/* smtpd_tls.c - TLS in smtpd: STARTTLS (RFC 3207), the smtps wrapper
 * mode (port 465), the listener's TLS settings, the handshake and its
 * log lines, the Received header's TLS comment.
 *
 * The handshake runs in libevent's OpenSSL filter over the session's
 * socket bufferevent, so it never blocks the event loop; it is bounded
 * by smtpd_starttls_timeout. The server context (lib/tls) is built once
 * per listener from Postfix's smtpd_tls_* parameters; the key files are
 * read through descriptors master opened as root (privfiles.h).
 *
 * SECURITY: after "220 2.0.0 Ready to start TLS" everything the client
 * sent in plaintext behind STARTTLS is discarded (the CVE-2011-0411
 * class: commands injected before the handshake must not run inside
 * the encrypted session), and the session forgets what it learned in
 * plaintext (HELO, the transaction, AUTH), as RFC 3207 4.2 requires.
 * A second STARTTLS is refused. Client certificates are asked for only
 * when configured; an unverified one is recorded, never trusted.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "daemon/tls_config.h"
#include "smtpd.h"
#include "tls/tls.h"

int smtpd_tls_listener_init(struct smtpd_listener *lis, str_t *error)
{
	struct smtpd_tls_config tc;
	str_t e;

	if (smtpd_tls_config_read(lis->cfg, &tc, error) < 0) {
		smtpd_tls_config_free(&tc);
		return -1;
	}
	lis->tls_level = tc.level;
	lis->tls_wrapper = tc.wrapper;
	lis->tls_auth_only = config_bool(lis->cfg, "smtpd_tls_auth_only");
	lis->tls_received_header = config_bool(lis->cfg, "smtpd_tls_received_header");
	lis->tls_loglevel = tc.set.loglevel;
	lis->starttls_timeout = config_time(lis->cfg, "smtpd_starttls_timeout");
	if (lis->starttls_timeout == 0)
		lis->starttls_timeout = 1;
	lis->tls_req_ccert = tc.set.req_ccert;
	lis->tls_ask_ccert = tc.set.ask_ccert;
	if (tc.req_ccert_ignored)
		log_warning(
		        "service %s: smtpd_tls_req_ccert = yes needs smtpd_tls_security_level = "
		        "encrypt (or smtpd_tls_wrappermode = yes): ignored",
		        lis->service);
	if (!smtpd_tls_config_enabled(&tc)) {
		smtpd_tls_config_free(&tc);
		return 0;
	}
	/* Run by hand there is no master writing the shared ticket keys:
	 * this process's own then, quietly. */
	if (lis->server->daemon == NULL || lis->server->daemon->master_fd < 0)
		tc.set.ticket_key_file = NULL;
	str_init(&e);
	if (!tc.has_cert) {
		/* Postfix goes on without TLS too: STARTTLS answers 454. */
		log_warning(
		        "service %s: TLS is enabled but none of smtpd_tls_cert_file, "
		        "smtpd_tls_eccert_file, smtpd_tls_chain_files is set: TLS not available",
		        lis->service);
	} else if (tls_server_new(&tc.set, &lis->tls, &e) < 0) {
		/* A key or certificate that cannot be loaded (a renewal in
		 * progress, a wrong path) makes TLS unavailable, not the
		 * service: mail keeps arriving where TLS is optional, as with
		 * Postfix. `postern check` reports a bad file as an error, a
		 * missing one as a warning. */
		log_warning("service %s: TLS not available: %s", lis->service, str_c(&e));
		lis->tls = NULL;
	}
	str_free(&e);
	smtpd_tls_config_free(&tc);
	return 0;
}

void smtpd_tls_listener_free(struct smtpd_listener *lis)
{
	tls_server_free(&lis->tls);
}

bool smtpd_tls_offered(const struct smtpd_session *s)
{
	return s->tls == NULL && !s->lis->tls_wrapper && s->lis->tls_level != TLS_LEVEL_NONE;
}

bool smtpd_tls_refuse_plaintext(struct smtpd_session *s, enum smtp_verb verb)
{
	/* What Postfix 3.7 refuses before STARTTLS under "encrypt"
	 * (EHLO, HELO, NOOP, QUIT, STARTTLS and XCLIENT/XFORWARD go on). */
	switch (verb) {
	case SMTP_VERB_MAIL:
	case SMTP_VERB_RCPT:
	case SMTP_VERB_DATA:
	case SMTP_VERB_BDAT:
	case SMTP_VERB_RSET:
	case SMTP_VERB_VRFY:
	case SMTP_VERB_ETRN:
	case SMTP_VERB_AUTH:
		break;
	default:
		return false;
	}
	if (s->tls != NULL || s->lis->tls_level != TLS_LEVEL_ENCRYPT)
		return false;
	smtpd_reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
	return true;
}

/* Put the TLS filter over the session's socket and start the handshake. */
static bool handshake_start(struct smtpd_session *s)
{
	struct smtpd_listener *lis = s->lis;
	struct bufferevent *filter;
	char *peer = xasprintf("%s[%s]", s->name, s->addr);
	SSL *ssl = tls_server_ssl_new(lis->tls, peer);

	free(peer);
	if (ssl == NULL)
		return false;
	filter = bufferevent_openssl_filter_new(lis->server->base, s->bev, ssl,
	                                        BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (filter == NULL) {
		/* libevent freed ssl, and may have freed the socket's
		 * bufferevent with it: the session has no connection left to
		 * write to (out of memory only). */
		s->bev = NULL;
		return false;
	}
	/* A client that closes without close_notify has simply gone. */
	bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
	s->state = SMTPD_ST_TLS;
	smtpd_session_set_bev(s, filter, lis->starttls_timeout);
	bufferevent_enable(filter, EV_READ | EV_WRITE);
	return true;
}

void smtpd_cmd_starttls(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	struct evbuffer *in;

	if (cmd->arg_len > 0) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->tls != NULL) {
		smtpd_reply_error(s, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (!smtpd_tls_offered(s)) {
		smtpd_reply_error(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (s->lis->tls == NULL) {
		smtpd_reply_error(s, "454 4.7.0 TLS not available due to local problem");
		return;
	}
	/* Counted as a success once the handshake is (Postfix's
	 * starttls=0/1 for a failed one). */
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	/* Why discard: whatever the client pipelined behind STARTTLS was
	 * sent in plaintext; run inside the TLS session it would be an
	 * injection (CVE-2011-0411). Only bytes that arrive after the 220
	 * may start the handshake. */
	in = bufferevent_get_input(s->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (!handshake_start(s)) {
		log_warning("cannot start TLS for %s[%s]: out of resources", s->name, s->addr);
		smtpd_session_abort(s);
	}
}

void smtpd_tls_wrapper_start(struct smtpd_session *s)
{
	if (s->lis->tls == NULL) {
		/* A plaintext reply means nothing to a client that speaks TLS
		 * from its first byte: log and close (Postfix's words). */
		log_warning("Wrapper-mode request dropped from %s[%s] for service %s. TLS context "
		            "initialization failed. For details see earlier warnings in your logs.",
		            s->name, s->addr, s->lis->service);
		smtpd_session_abort(s);
		return;
	}
	s->tls_wrapper_pending = true;
	s->last_cmd = "CONNECT";
	if (!handshake_start(s)) {
		log_warning("cannot start TLS for %s[%s]: out of resources", s->name, s->addr);
		smtpd_session_abort(s);
	}
}

/* Postfix logs the failure ("SSL_accept error from name[addr]: -1"),
 * then each OpenSSL error behind it. */
static void handshake_failed(struct smtpd_session *s, const char *why)
{
	unsigned long e;
	char buf[256];

	log_info("SSL_accept error from %s[%s]: %s", s->name, s->addr, why);
	while ((e = bufferevent_get_openssl_error(s->bev)) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_warning("TLS library problem: %s", buf);
	}
	log_info("lost connection after %s from %s[%s]",
	         s->tls_wrapper_pending ? "CONNECT" : "STARTTLS", s->name, s->addr);
	smtpd_session_drop(s);
}

/* RFC 3207 4.2: the client must start over, with EHLO. */
static void session_forget(struct smtpd_session *s)
{
	smtpd_transaction_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	smtpd_auth_reset(s);
}

static void handshake_done(struct smtpd_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
	struct smtpd_listener *lis = s->lis;

	s->tls = xcalloc(1, sizeof(*s->tls));
	tls_info_get(ssl, s->tls);
	if (lis->tls_loglevel >= 1) {
		str_t line;
		char *peer = xasprintf("%s[%s]", s->name, s->addr);

		str_init(&line);
		tls_info_log_line(s->tls, peer, &line);
		log_info("%s", str_c(&line));
		str_free(&line);
		free(peer);
	}
	smtpd_session_set_bev(s, s->bev, s->set->timeout);
	s->state = SMTPD_ST_CMD;
	session_forget(s);
	/* smtpd_tls_req_ccert: without a certificate that verifies, no
	 * mail (Postfix: "421 4.7.1 ... Error: client certificate not
	 * trusted"). */
	if (lis->tls_req_ccert && !s->tls->peer_verified) {
		log_info("NOQUEUE: abort: TLS from %s[%s]: %s", s->name, s->addr,
		         s->tls->peer_cert ? "Client certificate not trusted"
		                           : "No client certificate presented");
		smtpd_hangup(s, "421 4.7.1 %s Error: client certificate not trusted",
		             s->set->myhostname);
		return;
	}
	if (!s->tls_wrapper_pending)
		smtpd_cmd_ok(s, SMTP_VERB_STARTTLS);
	if (s->tls_wrapper_pending) {
		s->tls_wrapper_pending = false;
		s->state = SMTPD_ST_CONNECT;
		smtpd_session_connected(s);
		return;
	}
	smtpd_session_resume(s);
}

void smtpd_tls_event(struct smtpd_session *s, short what)
{
	if ((what & BEV_EVENT_CONNECTED) != 0) {
		handshake_done(s);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) != 0) {
		handshake_failed(s, "timed out");
		return;
	}
	if ((what & BEV_EVENT_EOF) != 0) {
		handshake_failed(s, "lost connection");
		return;
	}
	handshake_failed(s, "-1");
}

void smtpd_tls_request_fill(struct smtpd_session *s)
{
	struct restrict_request *r = &s->req;
	const struct tls_info *t = s->tls;

	r->tls = t != NULL;
	if (t == NULL || !t->peer_cert)
		return;
	r->ccert_fingerprint = t->cert_fingerprint;
	r->ccert_pubkey_fingerprint = t->pkey_fingerprint;
	r->ccert_subject = t->peer_cn;
	r->ccert_issuer = t->issuer_cn;
	r->ccert_verified = t->peer_verified;
}

void smtpd_tls_received(const struct smtpd_session *s, str_t *h)
{
	if (s->tls == NULL || !s->lis->tls_received_header)
		return;
	str_append(h, "\n\t");
	tls_info_received(s->tls, s->lis->tls_ask_ccert, h);
}

void smtpd_tls_session_free(struct smtpd_session *s)
{
	free(s->tls);
	s->tls = NULL;
}
