/* smtpd_log.c - smtpd's log lines in Postfix's formats.
 *
 * Used by the session and command files. pflogsumm and other Postfix log
 * tools parse these lines, so their wording follows Postfix's smtpd:
 *   NOQUEUE: reject: RCPT from name[addr]: 554 5.7.1 <x@y>: Relay access
 *     denied; from=<s> to=<r> proto=ESMTP helo=<h>
 *   disconnect from name[addr] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4
 * Never fails; client-supplied text is sanitised by the log module.
 */
#include <stdlib.h>

#include "base/log.h"
#include "base/str.h"
#include "smtpd.h"

void smtpd_log_reject(struct smtpd_session *s, const char *stage, const char *reply,
                      const char *recipient)
{
	str_t line;

	str_init(&line);
	str_appendf(&line, "%s: reject: %s from %s[%s]: %s;",
	            s->cleanup != NULL ? cleanup_id(s->cleanup) : "NOQUEUE", stage, s->name,
	            s->addr, reply);
	if (s->sender != NULL)
		str_appendf(&line, " from=<%s>", s->sender);
	if (recipient != NULL)
		str_appendf(&line, " to=<%s>", recipient);
	str_appendf(&line, " proto=%s", s->esmtp ? "ESMTP" : "SMTP");
	if (s->helo != NULL)
		str_appendf(&line, " helo=<%s>", s->helo);
	log_info("%s", str_c(&line));
	str_free(&line);
}

/* Postfix's order of the per-command counts. */
static const enum smtp_verb stat_order[] = {
        SMTP_VERB_HELO,     SMTP_VERB_EHLO, SMTP_VERB_XCLIENT, SMTP_VERB_XFORWARD,
        SMTP_VERB_STARTTLS, SMTP_VERB_AUTH, SMTP_VERB_MAIL,    SMTP_VERB_RCPT,
        SMTP_VERB_DATA,     SMTP_VERB_BDAT, SMTP_VERB_RSET,    SMTP_VERB_NOOP,
        SMTP_VERB_VRFY,     SMTP_VERB_ETRN, SMTP_VERB_QUIT,    SMTP_VERB_HELP,
        SMTP_VERB_UNKNOWN,
};

void smtpd_log_disconnect(struct smtpd_session *s)
{
	unsigned total = 0, ok = 0;
	str_t line;

	str_init(&line);
	str_appendf(&line, "disconnect from %s[%s]", s->name, s->addr);
	for (size_t i = 0; i < sizeof(stat_order) / sizeof(stat_order[0]); i++) {
		enum smtp_verb v = stat_order[i];
		const char *name = v == SMTP_VERB_UNKNOWN ? "unknown" : smtp_verb_name(v);

		if (s->cmd_total[v] == 0)
			continue;
		str_append_c(&line, ' ');
		for (const char *p = name; *p != '\0'; p++)
			str_append_c(&line, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
		if (s->cmd_ok[v] == s->cmd_total[v])
			str_appendf(&line, "=%u", s->cmd_total[v]);
		else
			str_appendf(&line, "=%u/%u", s->cmd_ok[v], s->cmd_total[v]);
		total += s->cmd_total[v];
		ok += s->cmd_ok[v];
	}
	if (ok == total)
		str_appendf(&line, " commands=%u", total);
	else
		str_appendf(&line, " commands=%u/%u", ok, total);
	log_info("%s", str_c(&line));
	str_free(&line);
}
