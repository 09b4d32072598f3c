/* smtpd_xclient.c - XCLIENT and XFORWARD, as Postfix 3.7 answers them
 * (Postfix's XCLIENT_README and XFORWARD_README).
 *
 * Called from the dispatch table (both verbs arrive at smtpd_cmd_xclient),
 * from EHLO (the keywords, smtpd_helo.c) and from smtpd_rcpt.c when the
 * queue file is opened (the forwarded attributes and the additions to
 * the "ID: client=" log line).
 *
 * XCLIENT, for clients in smtpd_authorized_xclient_hosts, says who the
 * client "really" is: NAME, REVERSE_NAME, ADDR, PORT, PROTO, HELO,
 * LOGIN, DESTADDR, DESTPORT. The session then starts over as that
 * client, as Postfix's does: the transaction and the HELO name are
 * forgotten (unless HELO= and PROTO= came with the command), the client
 * restrictions run again for the new identity and the reply is a fresh
 * "220" greeting, or their reject. The right to use XCLIENT is decided
 * again for the new address: after XCLIENT ADDR= outside the list, a
 * second XCLIENT gets 550. Every later log line (rejects, "ID:
 * client=", the disconnect statistics) names the new client; there is
 * no second "connect from" line (Postfix logs none).
 *
 * XFORWARD, for clients in smtpd_authorized_xforward_hosts (decided once,
 * for the real client, as in Postfix), names the upstream client and
 * message of a content filter: NAME, ADDR, PROTO, HELO, SOURCE, PORT,
 * IDENT. The values are for logging only and for the next transaction
 * only: they go into the queue file as the log_* attributes
 * (queue_file.h) and into the "ID: client=..." line as orig_queue_id=
 * and orig_client=; the restrictions, the reject log lines and the
 * Received: header keep naming the connected client (Postfix does the
 * same, checked against its 3.7).
 *
 * Failure: a bad command gets Postfix's reply (503, 501, 550) and
 * changes nothing. Why all or nothing: Postfix applies the attributes
 * that precede a bad one (XCLIENT ADDR=192.0.2.5 BOGUS=1 answers 501 yet
 * relays for 192.0.2.5 afterwards, while its logs still name the old
 * address); a client that is told 501 must be able to rely on the
 * session being as it was.
 *
 * Memory: the strings of XCLIENT LOGIN/DESTADDR/DESTPORT and of XFORWARD
 * live in s->xstate, allocated on first use and freed with the session
 * (smtpd_xclient_session_free). NAME and REVERSE_NAME go into
 * s->name_buf/s->reverse_buf, HELO into s->helo, which the session frees
 * itself.
 *
 * SECURITY: every value is client text (from an authorized client, but
 * still). A value is at most 255 bytes before decoding (Postfix's
 * limit), is xtext-decoded, and every byte that is not printable
 * becomes '?' before it is stored, logged or echoed in a reply, so a
 * value can never start a header or log line of its own. NAME and
 * REVERSE_NAME must be host names, ADDR/DESTADDR addresses, PORT/DESTPORT
 * 0..65535; HELO is cleaned as the HELO command's argument is.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address/xtext.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "dns/dns.h"
#include "queue/queue_file.h"
#include "smtpd.h"

/* Postfix's limits: a raw (xtext) attribute value, a HELO name, an
 * XFORWARD PROTO value. */
#define XATTR_VALUE_MAX 255
#define XHELO_MAX 255
#define XFORWARD_PROTO_MAX 64

/* The attribute lists announced in EHLO, in Postfix 3.7's words and order. */
#define XCLIENT_KEYWORD "XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT"
#define XFORWARD_KEYWORD "XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT"

#define UNAVAILABLE "[UNAVAILABLE]"
#define TEMPUNAVAIL "[TEMPUNAVAIL]"

/* XFORWARD attributes; XF_CLIENT are those that make "orig_client=". */
enum xf_attr { XF_NAME, XF_ADDR, XF_PROTO, XF_HELO, XF_SOURCE, XF_PORT, XF_IDENT, XF_COUNT };
static const char *const xf_names[XF_COUNT] = {
        [XF_NAME] = "NAME",     [XF_ADDR] = "ADDR", [XF_PROTO] = "PROTO", [XF_HELO] = "HELO",
        [XF_SOURCE] = "SOURCE", [XF_PORT] = "PORT", [XF_IDENT] = "IDENT",
};
#define XF_CLIENT \
	((1u << XF_NAME) | (1u << XF_ADDR) | (1u << XF_PROTO) | (1u << XF_HELO) | (1u << XF_PORT))

struct smtpd_xstate {
	/* XCLIENT: NULL when not given (or [UNAVAILABLE] for LOGIN). */
	char *login;
	char *dest_addr; /* "unknown" for [UNAVAILABLE] */
	char *dest_port;
	/* XFORWARD: values for the transaction that follows; NULL is
	 * "unknown" ([UNAVAILABLE], or not given), for SOURCE "local". */
	unsigned xf_given; /* 1 << XF_*: the attributes received */
	unsigned xf_epoch; /* transaction_epoch() when they were received */
	char *xf[XF_COUNT];
};

/* ---- the session's state ---- */

static void xforward_clear(struct smtpd_xstate *x)
{
	for (size_t i = 0; i < XF_COUNT; i++) {
		free(x->xf[i]);
		x->xf[i] = NULL;
	}
	x->xf_given = 0;
}

static void xstate_free(struct smtpd_xstate *x)
{
	xforward_clear(x);
	free(x->login);
	free(x->dest_addr);
	free(x->dest_port);
	free(x);
}

static struct smtpd_xstate *xstate_get(struct smtpd_session *s)
{
	if (s->xstate == NULL)
		s->xstate = xcalloc(1, sizeof(*s->xstate));
	return s->xstate;
}

void smtpd_xclient_session_free(struct smtpd_session *s)
{
	if (s->xstate != NULL)
		xstate_free(s->xstate);
	s->xstate = NULL;
}

void smtpd_xforward_reset(struct smtpd_session *s)
{
	if (s->xstate != NULL)
		xforward_clear(s->xstate);
}

const char *smtpd_xclient_login(const struct smtpd_session *s)
{
	return s->xstate != NULL ? s->xstate->login : NULL;
}

void smtpd_xclient_free(struct smtpd_listener *lis)
{
	smtpd_netlist_free(&lis->xclient_hosts);
	smtpd_netlist_free(&lis->xforward_hosts);
}

/* ---- authorization ---- */

/* Decided on first use, which is always before an XCLIENT can change
 * s->addr: XFORWARD keeps this answer for the whole session (Postfix
 * decides it once, at connect); XCLIENT's is decided again after each
 * XCLIENT (xclient_restart). Only addresses and networks are matched
 * (smtpd_netlist.c warned at start about host names and tables). */
static void xauth(struct smtpd_session *s)
{
	if (s->xauth_known)
		return;
	s->xauth_known = true;
	s->xclient_ok = smtpd_netlist_match(&s->lis->xclient_hosts, s->addr);
	s->xforward_ok = smtpd_netlist_match(&s->lis->xforward_hosts, s->addr);
}

const char *smtpd_xclient_ehlo_keyword(struct smtpd_session *s, enum smtp_verb verb)
{
	xauth(s);
	if (verb == SMTP_VERB_XCLIENT)
		return s->xclient_ok ? XCLIENT_KEYWORD : NULL;
	if (verb == SMTP_VERB_XFORWARD)
		return s->xforward_ok ? XFORWARD_KEYWORD : NULL;
	return NULL;
}

/* ---- values ---- */

/* Postfix's normalize_mailhost_addr(): an IPv4 address, or an IPv6
 * address after "IPv6:" (any case; without the prefix Postfix refuses
 * it); an IPv4-mapped IPv6 address becomes the IPv4 address. The
 * canonical text goes to out. Stricter than Postfix in one point: an
 * IPv4 part with a leading zero ("192.0.2.010") is refused; Postfix
 * reads it as octal (8) through inet_aton(). */
static int addr_normalize(const char *v, char out[INET6_ADDRSTRLEN])
{
	struct in6_addr a6;
	struct in_addr a4;

	if (strncasecmp(v, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, v + 5, &a6) != 1)
			return -1;
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			memcpy(&a4, &a6.s6_addr[12], sizeof(a4));
			return inet_ntop(AF_INET, &a4, out, INET6_ADDRSTRLEN) != NULL ? 0 : -1;
		}
		return inet_ntop(AF_INET6, &a6, out, INET6_ADDRSTRLEN) != NULL ? 0 : -1;
	}
	if (inet_pton(AF_INET, v, &a4) != 1)
		return -1;
	return inet_ntop(AF_INET, &a4, out, INET6_ADDRSTRLEN) != NULL ? 0 : -1;
}

/* 1 to 5 digits (as Postfix), and a TCP port: 0..65535 (Postfix takes
 * up to 99999). */
static bool port_valid(const char *v, unsigned *port_r)
{
	size_t len = strlen(v);
	unsigned n = 0;

	if (len == 0 || len > 5)
		return false;
	for (const char *p = v; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		n = n * 10 + (unsigned)(*p - '0');
	}
	if (n > 65535)
		return false;
	*port_r = n;
	return true;
}

static bool is_unavailable(const char *v)
{
	return strcasecmp(v, UNAVAILABLE) == 0;
}

/* One "NAME=value" word of the command. */
struct xattr {
	const char *name; /* as sent, name_len bytes */
	size_t name_len;
	str_t value; /* decoded and made printable */
};

/* The next word of the argument at *pp (end at end); false when none is
 * left. White space as smtp_cmd.h defines it. */
static bool next_word(const char **pp, const char *end, const char **word_r, size_t *len_r)
{
	const char *p = *pp;

	while (p < end && strchr(" \t\r\v\f", *p) != NULL)
		p++;
	if (p == end)
		return false;
	*word_r = p;
	while (p < end && strchr(" \t\r\v\f", *p) == NULL)
		p++;
	*len_r = (size_t)(p - *word_r);
	*pp = p;
	return true;
}

/* Split a word into a->name and a->value. On a syntax error the reply
 * (Postfix's) is sent and -1 returned. The value is xtext-decoded; one
 * that is not valid xtext is taken as it is (Postfix does so for clients
 * from before Postfix 2.3, which sent values unencoded). Then every
 * byte that is not printable becomes '?' (the value may be echoed in a
 * reply and may reach a log line), as Postfix's printable() does. */
static int xattr_parse(struct smtpd_session *s, const char *word, size_t len, struct xattr *a)
{
	const char *eq = memchr(word, '=', len);
	size_t vlen;
	const char *why;

	if (eq == NULL || eq + 1 == word + len) {
		smtpd_reply_error(s, "501 5.5.4 Error: attribute=value expected");
		return -1;
	}
	a->name = word;
	a->name_len = (size_t)(eq - word);
	vlen = len - a->name_len - 1;
	if (vlen > XATTR_VALUE_MAX) {
		smtpd_reply_error(s, "501 5.5.4 Error: attribute value too long");
		return -1;
	}
	str_reset(&a->value);
	if (xtext_decode(eq + 1, vlen, &a->value, &why) < 0) {
		str_reset(&a->value);
		str_append_n(&a->value, eq + 1, vlen);
	}
	printable_fix(a->value.buf, s->set->smtputf8 ? PRINTABLE_UTF8 : 0, '?');
	return 0;
}

static bool xattr_is(const struct xattr *a, const char *name)
{
	return a->name_len == strlen(name) && strncasecmp(a->name, name, a->name_len) == 0;
}

/* "501 5.5.4 Bad NAME syntax: value" */
static void reply_bad(struct smtpd_session *s, const char *attr, const struct xattr *a)
{
	smtpd_reply_error(s, "501 5.5.4 Bad %s syntax: %s", attr, str_c(&a->value));
}

/* "501 5.5.4 Bad XCLIENT attribute name: NAME", the name made printable. */
static void reply_bad_name(struct smtpd_session *s, const char *verb, const struct xattr *a)
{
	char *name = xstrndup(a->name, a->name_len);

	printable_fix(name, s->set->smtputf8 ? PRINTABLE_UTF8 : 0, '?');
	smtpd_reply_error(s, "501 5.5.4 Bad %s attribute name: %s", verb, name);
	free(name);
}

/* Replace *field with a copy of v (NULL: none). */
static void set_field(char **field, const char *v)
{
	free(*field);
	*field = v != NULL ? xstrdup(v) : NULL;
}

/* A HELO name or another free-text value: cleaned as the HELO command's
 * argument is (smtpd_helo.c), spaces included. */
static char *clean_text(const struct smtpd_session *s, const char *v)
{
	return printable_fix(xstrdup(v),
	                     (s->set->smtputf8 ? PRINTABLE_UTF8 : 0) | PRINTABLE_NO_SPACE, '?');
}

/* ---- XCLIENT ---- */

/* What one XCLIENT command sets, checked in full before any of it is
 * applied. A "given" flag per attribute: the last occurrence wins. */
struct xclient_new {
	bool name_given, reverse_given, addr_given, port_given, proto_given, helo_given;
	bool login_given, dest_addr_given, dest_port_given;
	char *name; /* a host name, or NULL for "unknown" */
	char *reverse_name;
	char addr[INET6_ADDRSTRLEN]; /* "unknown" for [UNAVAILABLE] */
	bool port_unknown;
	unsigned port;
	bool esmtp;
	char *helo; /* NULL for [UNAVAILABLE] */
	char *login; /* NULL for [UNAVAILABLE] */
	char *dest_addr;
	char *dest_port;
};

static void xclient_new_free(struct xclient_new *n)
{
	free(n->name);
	free(n->reverse_name);
	free(n->helo);
	free(n->login);
	free(n->dest_addr);
	free(n->dest_port);
}

/* One attribute into n; -1 after a 501 reply. */
static int xclient_attr(struct smtpd_session *s, const struct xattr *a, struct xclient_new *n)
{
	const char *v = str_c(&a->value);
	char addr[INET6_ADDRSTRLEN] = "";
	unsigned port = 0;

	if (xattr_is(a, "NAME") || xattr_is(a, "REVERSE_NAME")) {
		bool reverse = xattr_is(a, "REVERSE_NAME");
		bool unknown = is_unavailable(v) || strcasecmp(v, TEMPUNAVAIL) == 0;

		if (!unknown && !dns_hostname_valid(v)) {
			reply_bad(s, reverse ? "REVERSE_NAME" : "NAME", a);
			return -1;
		}
		if (!reverse) {
			set_field(&n->name, unknown ? NULL : v);
			n->name_given = true;
		}
		/* A NAME that is a name is the reverse name too (Postfix). */
		if (reverse || !unknown) {
			set_field(&n->reverse_name, unknown ? NULL : v);
			n->reverse_given = true;
		}
	} else if (xattr_is(a, "ADDR")) {
		if (is_unavailable(v)) {
			strcpy(n->addr, "unknown");
		} else if (addr_normalize(v, addr) < 0) {
			reply_bad(s, "ADDR", a);
			return -1;
		} else {
			strcpy(n->addr, addr);
		}
		n->addr_given = true;
	} else if (xattr_is(a, "PORT")) {
		n->port_unknown = is_unavailable(v);
		if (!n->port_unknown && !port_valid(v, &port)) {
			reply_bad(s, "PORT", a);
			return -1;
		}
		n->port = n->port_unknown ? 0 : port;
		n->port_given = true;
	} else if (xattr_is(a, "PROTO")) {
		if (strcasecmp(v, "SMTP") != 0 && strcasecmp(v, "ESMTP") != 0) {
			reply_bad(s, "PROTO", a);
			return -1;
		}
		n->esmtp = strcasecmp(v, "ESMTP") == 0;
		n->proto_given = true;
	} else if (xattr_is(a, "HELO")) {
		if (!is_unavailable(v) && strlen(v) > XHELO_MAX) {
			reply_bad(s, "HELO", a);
			return -1;
		}
		free(n->helo);
		n->helo = is_unavailable(v) ? NULL : smtpd_helo_clean(s, xstrdup(v));
		n->helo_given = true;
	} else if (xattr_is(a, "LOGIN")) {
		/* Kept for the log and the queue file; the restrictions do not
		 * see it until smtpd has SASL (permit_sasl_authenticated). */
		set_field(&n->login, is_unavailable(v) ? NULL : v);
		n->login_given = true;
	} else if (xattr_is(a, "DESTADDR")) {
		if (!is_unavailable(v) && addr_normalize(v, addr) < 0) {
			reply_bad(s, "DESTADDR", a);
			return -1;
		}
		set_field(&n->dest_addr, is_unavailable(v) ? "unknown" : addr);
		n->dest_addr_given = true;
	} else if (xattr_is(a, "DESTPORT")) {
		if (!is_unavailable(v) && !port_valid(v, &port)) {
			reply_bad(s, "DESTPORT", a);
			return -1;
		}
		set_field(&n->dest_port, is_unavailable(v) ? "unknown" : v);
		n->dest_port_given = true;
	} else {
		reply_bad_name(s, "XCLIENT", a);
		return -1;
	}
	return 0;
}

/* Move a name into the session buffer that owns it (s->name_buf or
 * s->reverse_buf); NULL means "unknown". */
static void set_name(const char **namep, char **bufp, char *value)
{
	char *old = *bufp;

	*bufp = value;
	*namep = value != NULL ? value : "unknown";
	free(old);
}

static void xclient_done(const struct restrict_result *r, void *ctx)
{
	struct smtpd_session *s = ctx;

	s->pending = NULL;
	if (r->verdict != RESTRICT_ACCEPT) {
		/* As at connect (session_connect_done in smtpd_session.c): the
		 * reject is the reply and every command but QUIT gets 503.
		 * Postfix logs it as "reject: XCLIENT from name[addr]". */
		s->access_denied = true;
		str_set(&s->denied_reply, str_c(&r->reply));
		smtpd_log_reject(s, "XCLIENT", str_c(&r->reply), NULL);
		smtpd_reply(s, "%s", str_c(&r->reply));
	} else {
		smtpd_reply(s, "220 %s", s->set->banner);
	}
	smtpd_session_resume(s);
}

_Static_assert(sizeof(((struct smtpd_session *)NULL)->addr) >= INET6_ADDRSTRLEN,
               "s->addr holds any normalized address");

/* Apply n and start the session over as the new client: Postfix jumps
 * back to its greeting stage (the client restrictions run again when
 * smtpd_delay_reject = no, and their verdict replaces the 220). What
 * XCLIENT did not set keeps its value, but the HELO name and the
 * protocol are forgotten unless set. The XFORWARD values go with the
 * transaction. */
static void xclient_restart(struct smtpd_session *s, struct xclient_new *n)
{
	if (n->name_given)
		set_name(&s->name, &s->name_buf, n->name);
	if (n->reverse_given)
		set_name(&s->reverse_name, &s->reverse_buf, n->reverse_name);
	n->name = n->reverse_name = NULL;
	if (n->addr_given)
		memcpy(s->addr, n->addr, sizeof(n->addr));
	if (n->port_given) {
		s->port = n->port;
		s->port_unknown = n->port_unknown;
	}
	smtpd_transaction_reset(s);
	free(s->helo);
	s->helo = n->helo_given ? n->helo : NULL;
	n->helo = NULL;
	s->esmtp = n->proto_given && n->esmtp;
	if (n->login_given || n->dest_addr_given || n->dest_port_given || s->xstate != NULL) {
		struct smtpd_xstate *x = xstate_get(s);

		free(x->login); /* an XCLIENT without LOGIN= logs out (Postfix) */
		x->login = n->login;
		n->login = NULL;
		if (n->dest_addr_given) {
			free(x->dest_addr);
			x->dest_addr = n->dest_addr;
			n->dest_addr = NULL;
		}
		if (n->dest_port_given) {
			free(x->dest_port);
			x->dest_port = n->dest_port;
			n->dest_port = NULL;
		}
		xforward_clear(x);
	}
	/* The new client, from scratch: its own restriction state, access
	 * verdict, bare newline exclusion and XCLIENT authorization. */
	restrict_session_destroy(&s->rs);
	s->rs = restrict_session_new(s->lis->engine);
	s->access_denied = false;
	str_reset(&s->denied_reply);
	s->bare_mode = smtpd_netlist_match(&s->lis->bare_newline_exclusions, s->addr)
	                       ? SMTPD_BARE_NO
	                       : s->set->bare_newline;
	s->xclient_ok = smtpd_netlist_match(&s->lis->xclient_hosts, s->addr);
	smtpd_request_fill(s);
	smtpd_session_wait(s);
	s->pending = restrict_check(s->rs, RESTRICT_CONNECT, &s->req, NULL, xclient_done, s);
}

static void cmd_xclient(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	const char *p = cmd->arg, *end = cmd->arg + cmd->arg_len, *word;
	struct xclient_new n;
	struct xattr a;
	size_t len;
	int ret = 0;

	memset(&n, 0, sizeof(n));
	str_init(&a.value);
	while (ret == 0 && next_word(&p, end, &word, &len)) {
		ret = xattr_parse(s, word, len, &a);
		if (ret == 0)
			ret = xclient_attr(s, &a, &n);
	}
	str_free(&a.value);
	/* Why XCLIENT is never counted as succeeded in the disconnect line
	 * ("xclient=0/1"): Postfix's counter is skipped when XCLIENT jumps
	 * back to the greeting, and log tools see Postfix's numbers. */
	if (ret == 0)
		xclient_restart(s, &n);
	xclient_new_free(&n);
}

/* ---- XFORWARD ---- */

/* A transaction boundary (RSET, HELO/EHLO: smtpd_transaction_reset) has
 * passed when one of these commands succeeded since. The values are
 * also dropped when the queue file takes them (smtpd_xclient_queue) and
 * at XCLIENT, which covers the end of a message. Why counted here:
 * smtpd_transaction_reset() belongs to the session code, which keeps no
 * XFORWARD state; the counts are the session's own. */
static unsigned transaction_epoch(const struct smtpd_session *s)
{
	return s->cmd_ok[SMTP_VERB_RSET] + s->cmd_ok[SMTP_VERB_HELO] + s->cmd_ok[SMTP_VERB_EHLO];
}

/* The XFORWARD values of the transaction to come, or NULL. */
static struct smtpd_xstate *xforward_current(struct smtpd_session *s)
{
	struct smtpd_xstate *x = s->xstate;

	if (x == NULL || x->xf_given == 0)
		return NULL;
	if (x->xf_epoch != transaction_epoch(s)) {
		xforward_clear(x);
		return NULL;
	}
	return x;
}

/* One attribute into vals/given; -1 after a 501 reply. */
static int xforward_attr(struct smtpd_session *s, const struct xattr *a, char *vals[XF_COUNT],
                         unsigned *given)
{
	const char *v = str_c(&a->value);
	bool unknown = is_unavailable(v);
	char addr[INET6_ADDRSTRLEN] = "";
	unsigned port = 0;
	size_t i;
	char *value = NULL;

	for (i = 0; i < XF_COUNT && !xattr_is(a, xf_names[i]); i++)
		;
	switch (i) {
	case XF_NAME:
		/* [TEMPUNAVAIL] is an XCLIENT value only (Postfix: 501). */
		if (!unknown && !dns_hostname_valid(v))
			goto bad;
		value = unknown ? NULL : xstrdup(v);
		break;
	case XF_ADDR:
		if (!unknown && addr_normalize(v, addr) < 0)
			goto bad;
		value = unknown ? NULL : xstrdup(addr);
		break;
	case XF_PORT:
		if (!unknown && !port_valid(v, &port))
			goto bad;
		value = unknown ? NULL : xstrdup(v);
		break;
	case XF_PROTO:
		/* Any protocol name of the upstream MTA, not only SMTP. */
		if (!unknown && strlen(v) > XFORWARD_PROTO_MAX)
			goto bad;
		value = unknown ? NULL : clean_text(s, v);
		break;
	case XF_HELO:
		value = unknown ? NULL : smtpd_helo_clean(s, xstrdup(v));
		break;
	case XF_IDENT:
		value = unknown ? NULL : clean_text(s, v);
		break;
	case XF_SOURCE:
		if (!unknown && strcasecmp(v, "LOCAL") != 0 && strcasecmp(v, "REMOTE") != 0)
			goto bad;
		value = xstrdup(unknown || strcasecmp(v, "LOCAL") == 0 ? "local" : "remote");
		break;
	default:
		reply_bad_name(s, "XFORWARD", a);
		return -1;
	}
	free(vals[i]);
	vals[i] = value;
	*given |= 1u << i;
	return 0;
bad:
	reply_bad(s, xf_names[i], a);
	return -1;
}

static void cmd_xforward(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	const char *p = cmd->arg, *end = cmd->arg + cmd->arg_len, *word;
	char *vals[XF_COUNT] = {NULL};
	unsigned given = 0;
	struct xattr a;
	size_t len;
	int ret = 0;

	str_init(&a.value);
	while (ret == 0 && next_word(&p, end, &word, &len)) {
		ret = xattr_parse(s, word, len, &a);
		if (ret == 0)
			ret = xforward_attr(s, &a, vals, &given);
	}
	str_free(&a.value);
	if (ret == 0) {
		/* Values add up over several XFORWARD commands (Postfix sends
		 * them in pieces to keep each line short). */
		struct smtpd_xstate *x = xforward_current(s);

		if (x == NULL) {
			x = xstate_get(s);
			xforward_clear(x);
		}
		for (size_t i = 0; i < XF_COUNT; i++) {
			if ((given & (1u << i)) == 0)
				continue;
			free(x->xf[i]);
			x->xf[i] = vals[i];
			vals[i] = NULL;
		}
		x->xf_given |= given;
		x->xf_epoch = transaction_epoch(s);
		smtpd_cmd_ok(s, SMTP_VERB_XFORWARD);
		smtpd_reply(s, "250 2.0.0 Ok");
	}
	for (size_t i = 0; i < XF_COUNT; i++)
		free(vals[i]);
}

/* ---- the verbs ---- */

/* Postfix's checks, in its order: not inside a transaction, an argument,
 * an authorized client; then the attributes one by one. */
void smtpd_cmd_xclient(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	bool xclient = cmd->verb == SMTP_VERB_XCLIENT;

	if (s->in_mail) {
		smtpd_reply_error(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (cmd->arg_len == 0) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: %s attribute=value...",
		                  xclient ? "XCLIENT" : "XFORWARD");
		return;
	}
	xauth(s);
	if (!(xclient ? s->xclient_ok : s->xforward_ok)) {
		smtpd_reply_error(s, "550 5.7.0 Error: insufficient authorization");
		return;
	}
	if (xclient)
		cmd_xclient(s, cmd);
	else
		cmd_xforward(s, cmd);
}

/* ---- the queue file ---- */

void smtpd_xclient_queue(struct smtpd_session *s, str_t *log)
{
	struct smtpd_xstate *x = s->xstate;
	const char *name, *addr;
	str_t origin;

	if (x == NULL)
		return;
	if (x->login != NULL) {
		cleanup_attr(s->cleanup, QUEUE_ATTR_SASL_METHOD, "XCLIENT");
		cleanup_attr(s->cleanup, QUEUE_ATTR_SASL_USERNAME, x->login);
		str_appendf(log, ", sasl_method=XCLIENT, sasl_username=%s", x->login);
	}
	if (xforward_current(s) == NULL)
		return;
	/* "name[addr]", or the name alone when the address is unknown. */
	name = x->xf[XF_NAME] != NULL ? x->xf[XF_NAME] : "unknown";
	addr = x->xf[XF_ADDR];
	str_init(&origin);
	str_append(&origin, name);
	if (addr != NULL)
		str_appendf(&origin, "[%s]", addr);
	if (x->xf[XF_NAME] != NULL)
		cleanup_attr(s->cleanup, QUEUE_ATTR_LOG_CLIENT_NAME, x->xf[XF_NAME]);
	if (addr != NULL)
		cleanup_attr(s->cleanup, QUEUE_ATTR_LOG_CLIENT_ADDRESS, addr);
	if (x->xf[XF_PORT] != NULL)
		cleanup_attr(s->cleanup, QUEUE_ATTR_LOG_CLIENT_PORT, x->xf[XF_PORT]);
	if ((x->xf_given & XF_CLIENT) != 0)
		cleanup_attr(s->cleanup, QUEUE_ATTR_LOG_ORIGIN, str_c(&origin));
	if (x->xf[XF_HELO] != NULL)
		cleanup_attr(s->cleanup, QUEUE_ATTR_LOG_HELO_NAME, x->xf[XF_HELO]);
	if (x->xf[XF_PROTO] != NULL)
		cleanup_attr(s->cleanup, QUEUE_ATTR_LOG_PROTOCOL, x->xf[XF_PROTO]);
	if (x->xf[XF_IDENT] != NULL)
		cleanup_attr(s->cleanup, QUEUE_ATTR_LOG_IDENT, x->xf[XF_IDENT]);
	if (x->xf[XF_SOURCE] != NULL)
		cleanup_attr(s->cleanup, QUEUE_ATTR_REWRITE_CONTEXT, x->xf[XF_SOURCE]);
	if (x->xf[XF_IDENT] != NULL)
		str_appendf(log, ", orig_queue_id=%s", x->xf[XF_IDENT]);
	if ((x->xf_given & XF_CLIENT) != 0)
		str_appendf(log, ", orig_client=%s", str_c(&origin));
	str_free(&origin);
	/* Taken by this transaction: the next one needs XFORWARD again. */
	xforward_clear(x);
}
