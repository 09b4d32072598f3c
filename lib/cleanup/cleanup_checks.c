/* cleanup_checks.c - header_checks and body_checks actions.
 *
 * cleanup_message.c hands each logical header and each body line to
 * cleanup_check() with the tables that apply; the first table that
 * matches gives an action, carried out as header_checks(5) describes:
 *
 *   REJECT [text]   550 5.7.1 text (default "message content rejected");
 *                   text may start with its own DSN: "4.7.0 text" makes it
 *                   a temporary "451 4.7.0 text", as in Postfix
 *   4NN text, 5NN text   that reply (postern extension: Postfix's
 *                   header_checks know only REJECT)
 *   DISCARD [text]  answer 250, keep nothing
 *   HOLD [text]     commit into the hold queue
 *   WARN [text], INFO [text]   log only
 *   IGNORE          drop the header or line; STRIP [text] the same, logged
 *   PREPEND text    a header (or body line) before this one
 *   REPLACE text    replace this header (or body line)
 *   REDIRECT addr   all recipients replaced by addr
 *   FILTER transport:destination   content_filter for this message
 *   BCC addr        one more recipient
 *   PASS            no more header/body checks for this message
 *   DUNNO, OK       nothing; the line is kept
 *
 * Each action that Postfix logs is logged in its format:
 *   ID: reject: header Subject: x from host[addr]; from=<s> to=<r>
 *       proto=ESMTP helo=<h>: 5.7.1 text
 *
 * Failure: a table that fails is a temporary failure of the whole message
 * (451 4.3.0 and Postfix's warning), never a silent "no match": a reject
 * rule must not be skipped because a table hiccupped.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "cleanup/cleanup_private.h"
#include "message/header.h"

void cleanup_act_log(struct cleanup *c, const char *action, const char *what, const char *text,
                     const char *extra)
{
	str_t line;
	str_init(&line);
	str_appendf(&line, "%s: %s: %s %.200s from ", c->id, action, what, text);
	if (c->client_name != NULL && c->client_address != NULL)
		str_appendf(&line, "%s[%s]", c->client_name, c->client_address);
	else
		str_append(&line, "local");
	str_append_c(&line, ';');
	if (c->sender != NULL)
		str_appendf(&line, " from=<%s>", c->sender);
	if (c->nrcpt > 0)
		str_appendf(&line, " to=<%s>", c->rcpts[0].address);
	if (c->protocol != NULL)
		str_appendf(&line, " proto=%s", c->protocol);
	if (c->helo_name != NULL)
		str_appendf(&line, " helo=<%s>", c->helo_name);
	if (extra != NULL && *extra != '\0')
		str_appendf(&line, ": %s", extra);
	log_info("%s", str_c(&line));
	str_free(&line);
}

/* "d.d.d" at the start of text followed by a space or the end, of class
 * 4 or 5: its length, else 0. */
static size_t dsn_prefix(const char *text)
{
	if ((text[0] != '4' && text[0] != '5') || text[1] != '.')
		return 0;
	size_t i = 2, digits = 0;
	while (isdigit((unsigned char)text[i]) && digits < 3)
		i++, digits++;
	if (digits == 0 || text[i] != '.')
		return 0;
	i++;
	digits = 0;
	while (isdigit((unsigned char)text[i]) && digits < 3)
		i++, digits++;
	if (digits == 0 || (text[i] != ' ' && text[i] != '\0'))
		return 0;
	return i;
}

/* A reject: reply "CODE DSN text", logged as "DSN text". code is NULL for
 * REJECT, whose text may carry its own DSN: a 4.x.x one makes it a
 * temporary failure (451), as Postfix's cleanup does; else 550 5.7.1.
 * For the "NNN text" form the code is given and the DSN defaults to its
 * class. */
static void reject(struct cleanup *c, const char *what, const char *line, const char *code,
                   const char *text)
{
	str_t dsn_text, reply;
	str_init(&dsn_text);
	str_init(&reply);
	if (dsn_prefix(text) > 0 && (code == NULL || code[0] == text[0]))
		str_append(&dsn_text, text);
	else
		str_appendf(&dsn_text, "%s %s", code != NULL && code[0] == '4' ? "4.7.1" : "5.7.1",
		            *text != '\0' ? text : "message content rejected");
	if (code == NULL)
		code = dsn_text.buf[0] == '4' ? "451" : "550";
	cleanup_act_log(c, "reject", what, line, str_c(&dsn_text));
	str_appendf(&reply, "%s %s", code, str_c(&dsn_text));
	cleanup_fail(c, code[0] == '4' ? CLEANUP_TEMPFAIL : CLEANUP_REJECTED, str_c(&reply));
	str_free(&reply);
	str_free(&dsn_text);
}

static bool is_word(const char *action, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(action, word, len) == 0;
}

/* Why PREPEND/REPLACE text for a header must itself be a header: anything
 * else would corrupt the header block (Postfix refuses it too). */
static bool valid_header_text(const char *text)
{
	return header_name_len(text, strlen(text)) > 0;
}

bool cleanup_check(struct cleanup *c, struct maps *m, const char *what, str_t *text)
{
	struct table_result r;
	bool drop = false;
	bool is_header = strcmp(what, "header") == 0;
	table_result_init(&r);
	enum table_status st = maps_lookup(m, str_c(text), 0, &r, NULL);
	if (st == TABLE_TEMPFAIL) {
		log_warning("%s: %s map lookup problem -- message not accepted, try again later",
		            c->id, maps_title(m));
		cleanup_fail(c, CLEANUP_TEMPFAIL, "451 4.3.0 Error: queue file write error");
		goto done;
	}
	if (st != TABLE_FOUND)
		goto done;

	const char *value = str_c(&r.value);
	while (*value == ' ' || *value == '\t')
		value++;
	size_t alen = strcspn(value, " \t");
	const char *arg = value + alen;
	while (*arg == ' ' || *arg == '\t')
		arg++;
	/* The logged line: the first line only reads better but Postfix logs
	 * the whole header; control characters become '?' in the log. */
	const char *line = str_c(text);

	if (is_word(value, alen, "REJECT")) {
		reject(c, what, line, NULL, arg);
	} else if (alen == 3 && (value[0] == '4' || value[0] == '5') &&
	           isdigit((unsigned char)value[1]) && isdigit((unsigned char)value[2])) {
		char code[4] = {value[0], value[1], value[2], '\0'};
		reject(c, what, line, code, arg);
	} else if (is_word(value, alen, "DISCARD")) {
		cleanup_act_log(c, "discard", what, line, arg);
		c->discard = true;
		c->checks_off = true;
	} else if (is_word(value, alen, "HOLD")) {
		if (!c->hold && !c->discard) {
			cleanup_act_log(c, "hold", what, line, arg);
			c->hold = true;
		}
	} else if (is_word(value, alen, "WARN")) {
		cleanup_act_log(c, "warning", what, line, arg);
	} else if (is_word(value, alen, "INFO")) {
		cleanup_act_log(c, "info", what, line, arg);
	} else if (is_word(value, alen, "IGNORE")) {
		drop = true;
	} else if (is_word(value, alen, "STRIP")) {
		cleanup_act_log(c, "strip", what, line, arg);
		drop = true;
	} else if (is_word(value, alen, "FILTER")) {
		if (*arg == '\0') {
			log_warning("missing FILTER command argument in %s map", maps_title(m));
		} else if (strchr(arg, ':') == NULL) {
			log_warning("bad FILTER command %s in %s -- need transport:destination",
			            arg, maps_title(m));
		} else {
			cleanup_act_log(c, "filter", what, line, arg);
			free(c->filter);
			c->filter = xstrdup(arg);
		}
	} else if (is_word(value, alen, "REDIRECT")) {
		if (strchr(arg, '@') == NULL) {
			log_warning("bad REDIRECT target \"%s\" in %s map -- need user@domain", arg,
			            maps_title(m));
		} else {
			cleanup_act_log(c, "redirect", what, line, arg);
			free(c->redirect);
			c->redirect = xstrdup(arg);
		}
	} else if (is_word(value, alen, "BCC")) {
		if (strchr(arg, '@') == NULL)
			log_warning("bad BCC address \"%s\" in %s map -- need user@domain", arg,
			            maps_title(m));
		else
			cleanup_rcpt_add(c, arg, NULL, 0);
	} else if (is_word(value, alen, "PREPEND") || is_word(value, alen, "REPLACE")) {
		bool prepend = toupper((unsigned char)value[0]) == 'P';
		const char *name = prepend ? "PREPEND" : "REPLACE";
		if (*arg == '\0') {
			log_warning("%s action without text in %s map", name, maps_title(m));
		} else if (is_header && !valid_header_text(arg)) {
			log_warning("bad %s header text \"%s\" in %s map -- need \"headername: "
			            "headervalue\"",
			            name, arg, maps_title(m));
		} else if (prepend) {
			cleanup_act_log(c, "prepend", what, line, arg);
			cleanup_write(c, arg, strlen(arg));
			cleanup_write(c, "\n", 1);
		} else {
			cleanup_act_log(c, "replace", what, line, arg);
			str_set(text, arg);
		}
	} else if (is_word(value, alen, "PASS")) {
		c->checks_off = true;
	} else if (is_word(value, alen, "DUNNO") || is_word(value, alen, "OK")) {
		/* nothing */
	} else {
		log_warning("%s: unknown command in %s map: %s", c->id, maps_title(m), value);
	}
done:
	table_result_free(&r);
	return drop;
}
