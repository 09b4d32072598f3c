/* bounce.c - delivery status notifications (RFC 3464) as queued messages.
 *
 * Used by qmgr (see bounce.h for the contract). A notice is built in three
 * steps: the text and delivery-status parts in memory (bounded: each
 * recipient's strings are cut at BOUNCE_REASON_MAX), a scan of the part of
 * the original that goes back (bounded by bounce_size_limit for a whole
 * message, by the header section for headers only) for 8-bit bytes and for
 * the MIME boundary, then one queue_writer pass that streams the original
 * from its queue file. On failure the writer is destroyed, which removes
 * its temporary file: no partial notice is ever queued.
 *
 * SECURITY: reasons come from remote SMTP servers, ORCPT and ENVID from
 * clients. Everything put into the generated header and the first two
 * parts is cleaned (control characters become spaces, 8-bit bytes '?',
 * addresses excepted, which may be UTF-8) and folded so that no line is
 * longer than 998 bytes and no bare CR is written. The returned original
 * is copied byte for byte: it is the sender's own message.
 */
#include "message/bounce.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "base/mem.h"
#include "address/address.h"
#include "conf/config.h"

/* Soft and hard line limits of RFC 5322 2.1.1. */
#define LINE_SOFT 78
#define LINE_HARD 998
/* Bytes read from the original at a time. */
#define READ_CHUNK 65536
/* Headers-only returns keep at least this much header (header_size_limit's
 * default), so a small bounce_size_limit does not cut the header short. */
#define HEADERS_MIN 102400
/* RFC 2046: a boundary has at most 70 characters. */
#define BOUNDARY_MAX 70
#define BOUNDARY_TRIES 8

struct bounce_settings {
	char *myhostname;
	char *mail_name;
	char *myorigin;
	char *double_bounce_addr; /* double_bounce_sender@myorigin */
	char *double_bounce_local; /* double_bounce_sender as configured */
	char *notice_rcpt; /* 2bounce_notice_recipient, with @myorigin */
	uint64_t size_limit;
	uint64_t max_lifetime;
};

/* ---- settings ---------------------------------------------------------- */

static int get_seconds(struct config *cfg, const char *name, uint64_t *value_r, str_t *error)
{
	const char *err;

	if (config_get_time(cfg, name, value_r, &err) < 0) {
		str_append(error, err);
		return -1;
	}
	return 0;
}

/* An address parameter: not empty, no white space or control characters
 * (it goes into a queue file envelope as it is). */
static int check_address(const char *name, const char *value, str_t *error)
{
	const unsigned char *p = (const unsigned char *)value;

	if (*p == '\0') {
		str_appendf(error, "bad value for %s: empty; expected an address", name);
		return -1;
	}
	for (; *p != '\0'; p++) {
		if (*p <= ' ' || *p == 0x7f) {
			str_appendf(error,
			            "bad value for %s: \"%s\": expected an address without "
			            "white space or control characters",
			            name, value);
			return -1;
		}
	}
	return 0;
}

/* name, or name@myorigin when it has no domain (as trivial-rewrite's
 * append_at_myorigin would do for a local submission). */
static char *qualify(const char *name, const char *myorigin)
{
	if (strchr(name, '@') != NULL || *myorigin == '\0')
		return xstrdup(name);
	return xasprintf("%s@%s", name, myorigin);
}

int bounce_settings_new(struct config *cfg, struct bounce_settings **s_r, str_t *error)
{
	struct bounce_settings *s = xcalloc(1, sizeof(*s));
	char *notice = NULL;
	int64_t limit;
	const char *err;

	*s_r = NULL;
	if (config_expand_dup(cfg, "myhostname", &s->myhostname, error) < 0 ||
	    config_expand_dup(cfg, "mail_name", &s->mail_name, error) < 0 ||
	    config_expand_dup(cfg, "myorigin", &s->myorigin, error) < 0 ||
	    config_expand_dup(cfg, "double_bounce_sender", &s->double_bounce_local, error) < 0 ||
	    config_expand_dup(cfg, "2bounce_notice_recipient", &notice, error) < 0 ||
	    get_seconds(cfg, "maximal_queue_lifetime", &s->max_lifetime, error) < 0)
		goto fail;
	if (config_get_int(cfg, "bounce_size_limit", &limit, &err) < 0) {
		str_append(error, err);
		goto fail;
	}
	s->size_limit = limit < 0 ? 0 : (uint64_t)limit;
	if (check_address("double_bounce_sender", s->double_bounce_local, error) < 0 ||
	    check_address("2bounce_notice_recipient", notice, error) < 0)
		goto fail;
	s->double_bounce_addr = qualify(s->double_bounce_local, s->myorigin);
	s->notice_rcpt = qualify(notice, s->myorigin);
	free(notice);
	*s_r = s;
	return 0;
fail:
	free(notice);
	bounce_settings_destroy(&s);
	return -1;
}

void bounce_settings_destroy(struct bounce_settings **sp)
{
	struct bounce_settings *s = *sp;

	if (s == NULL)
		return;
	free(s->myhostname);
	free(s->mail_name);
	free(s->myorigin);
	free(s->double_bounce_addr);
	free(s->double_bounce_local);
	free(s->notice_rcpt);
	free(s);
	*sp = NULL;
}

bool bounce_wanted(unsigned notify, enum bounce_kind kind)
{
	if (notify == 0)
		return kind != BOUNCE_DELIVERED;
	if (notify & QUEUE_NOTIFY_NEVER)
		return false;
	switch (kind) {
	case BOUNCE_FAILED:
		return (notify & QUEUE_NOTIFY_FAILURE) != 0;
	case BOUNCE_DELAYED:
		return (notify & QUEUE_NOTIFY_DELAY) != 0;
	case BOUNCE_DELIVERED:
		return (notify & QUEUE_NOTIFY_SUCCESS) != 0;
	}
	return false;
}

/* ---- text helpers ------------------------------------------------------ */

/* Append text cleaned for a generated line: control characters (CR and LF
 * included) and DEL become spaces, runs of spaces become one, and bytes
 * >= 0x80 become '?' unless keep_8bit. At most max bytes of text are
 * used; a cut is marked with "...". Leading and trailing spaces go. Sets
 * *eight_r when an 8-bit byte was kept. */
static void append_clean(str_t *out, const char *text, size_t max, bool keep_8bit, bool *eight_r)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t start = out->len, used = 0;
	bool space = true; /* drop spaces at the start */

	for (; *p != '\0' && used < max; p++, used++) {
		unsigned char c = *p;

		if (c < 0x20 || c == 0x7f)
			c = ' ';
		else if (c >= 0x80 && !keep_8bit)
			c = '?';
		if (c == ' ') {
			if (!space)
				str_append_c(out, ' ');
			space = true;
			continue;
		}
		if (c >= 0x80 && eight_r != NULL)
			*eight_r = true;
		str_append_c(out, (char)c);
		space = false;
	}
	while (out->len > start && out->buf[out->len - 1] == ' ')
		str_truncate(out, out->len - 1);
	if (*p != '\0')
		str_append(out, "...");
}

/* Append prefix and the words of text (single spaces between them, as
 * append_clean leaves them) as lines of at most LINE_SOFT bytes where a
 * word allows it and never more than LINE_HARD: a longer word is cut.
 * Continuation lines start with indent (white space, so that header-style
 * fields fold). Ends with LF. */
static void append_folded(str_t *out, const char *prefix, const char *text, const char *indent)
{
	size_t line = out->len, ilen = strlen(indent);
	bool words = false; /* a word on the current line after the prefix */
	const char *p = text;

	str_append(out, prefix);
	for (;;) {
		size_t wlen, cur;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		wlen = strcspn(p, " ");
		cur = out->len - line;
		if (words && cur + 1 + wlen > LINE_SOFT) {
			str_append_c(out, '\n');
			line = out->len;
			str_append(out, indent);
			words = false;
			cur = ilen;
		}
		if (words) {
			str_append_c(out, ' ');
			cur++;
		}
		while (cur + wlen > LINE_HARD) {
			size_t take = cur < LINE_HARD ? LINE_HARD - cur : 0;

			str_append_n(out, p, take);
			p += take;
			wlen -= take;
			str_append_c(out, '\n');
			line = out->len;
			str_append(out, indent);
			cur = ilen;
		}
		str_append_n(out, p, wlen);
		p += wlen;
		words = true;
	}
	while (out->len > line && out->buf[out->len - 1] == ' ')
		str_truncate(out, out->len - 1);
	str_append_c(out, '\n');
}

/* A field "Name: value" of a header or a delivery-status block, value
 * cleaned (8-bit kept only when keep_8bit) and folded. */
static void append_field(str_t *out, const char *prefix, const char *value, bool keep_8bit,
                         bool *eight_r)
{
	str_t clean;

	str_init(&clean);
	append_clean(&clean, value, BOUNCE_REASON_MAX, keep_8bit, eight_r);
	append_folded(out, prefix, str_c(&clean), " ");
	str_free(&clean);
}

/* The address (internal form) as written in mail: the local part quoted
 * when needed (address_external), cleaned of control characters. */
static void append_address(str_t *out, const char *internal, bool *eight_r)
{
	struct mail_address *addr = address_from_internal(internal);
	str_t ext;

	str_init(&ext);
	if (address_external(addr, &ext) < 0)
		str_set(&ext, internal);
	append_clean(out, str_c(&ext), QUEUE_FIELD_MAX, true, eight_r);
	str_free(&ext);
	mail_address_destroy(&addr);
}

/* RFC 5322 date-time in local time, without locale: "Tue, 04 Jun 2024
 * 12:00:00 +0200". */
static void append_date(str_t *out, time_t t)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	long off;
	char sign = '+';

	if (localtime_r(&t, &tm) == NULL) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	str_appendf(out, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday % 7],
	            tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	            tm.tm_sec, sign, off / 60, off % 60);
}

/* ---- the notice -------------------------------------------------------- */

struct notice {
	const struct bounce_settings *s;
	const struct queue_envelope *env;
	enum bounce_kind kind;
	bool double_bounce;
	const char *from; /* envelope sender of the notice */
	const char *to; /* its one recipient */
	time_t now;
	str_t text; /* part 1 body */
	str_t status; /* part 2 body */
	bool text_8bit, status_8bit; /* UTF-8 addresses in them */
	bool whole; /* return the whole original, not only its header */
	uint64_t orig_len; /* bytes of the original returned */
	bool orig_8bit;
	str_t boundary;
};

static const char *default_action(enum bounce_kind kind)
{
	switch (kind) {
	case BOUNCE_FAILED:
		return "failed";
	case BOUNCE_DELAYED:
		return "delayed";
	case BOUNCE_DELIVERED:
		return "delivered";
	}
	return "failed";
}

static struct queue_dsn default_dsn(enum bounce_kind kind)
{
	struct queue_dsn d = {.klass = 5};

	if (kind == BOUNCE_DELAYED)
		d.klass = 4;
	else if (kind == BOUNCE_DELIVERED)
		d.klass = 2;
	return d;
}

static const char *subject_of(const struct notice *nt)
{
	if (nt->double_bounce)
		return "Postmaster Copy: Undeliverable Bounce Message";
	switch (nt->kind) {
	case BOUNCE_FAILED:
		return "Undelivered Mail Returned to Sender";
	case BOUNCE_DELAYED:
		return "Delayed Mail (still being retried)";
	case BOUNCE_DELIVERED:
		return "Successful Mail Delivery Report";
	}
	return "Mail Delivery Report";
}

/* A paragraph of prose, wrapped at LINE_SOFT. */
static void para(str_t *out, const char *text)
{
	append_folded(out, "", text, "");
	str_append_c(out, '\n');
}

/* Part 1: what happened, for people. */
static void build_text(struct notice *nt, const struct bounce_rcpt *rcpts, size_t n)
{
	const struct bounce_settings *s = nt->s;
	str_t *t = &nt->text, line, when;
	time_t arrival = nt->env->arrival.tv_sec;

	str_init(&line);
	str_init(&when);
	str_appendf(&line, "This report was written by the %s mail delivery software on %s.",
	            s->mail_name, s->myhostname);
	para(t, str_c(&line));
	str_reset(&line);
	append_date(&when, arrival);
	if (nt->double_bounce) {
		para(t, "A delivery report (a bounce) could not be delivered to the address it was "
		        "meant for. A bounce has no return address, so no one else can be told: "
		        "this copy goes to the postmaster instead. This is a bounce of a bounce.");
		str_appendf(&line,
		            "The undeliverable report, queued on %s, and the reason it "
		            "failed for each address follow.",
		            str_c(&when));
		para(t, str_c(&line));
	} else if (nt->kind == BOUNCE_FAILED) {
		str_appendf(&line,
		            "Your message of %s could not be delivered to the addresses "
		            "below, and no further attempts will be made for them. The reason "
		            "is given for each address.",
		            str_c(&when));
		para(t, str_c(&line));
		str_reset(&line);
		str_appendf(&line,
		            "%s of your message is attached. If the problem is not clear, "
		            "ask the postmaster of %s for help and send them this whole report.",
		            nt->whole ? "A copy" : "The header", s->myhostname);
		para(t, str_c(&line));
	} else if (nt->kind == BOUNCE_DELAYED) {
		str_t until;
		long hours = (long)((nt->now - arrival) / 3600);

		str_init(&until);
		append_date(&until, (time_t)(arrival + (time_t)s->max_lifetime));
		str_appendf(&line,
		            "Your message of %s has not yet reached the addresses below%s%ld "
		            "hour%s. Delivery is still being tried; you do not need to send it "
		            "again.",
		            str_c(&when), hours > 0 ? " after " : " after less than ",
		            hours > 0 ? hours : 1L, hours == 1 || hours == 0 ? "" : "s");
		para(t, str_c(&line));
		str_reset(&line);
		str_appendf(&line,
		            "The mail system will keep trying until %s. If the message "
		            "cannot be delivered by then, it will be returned to you.",
		            str_c(&until));
		para(t, str_c(&line));
		str_free(&until);
	} else {
		str_appendf(&line,
		            "Your message of %s was delivered to the addresses below, as "
		            "you asked when you sent it.",
		            str_c(&when));
		para(t, str_c(&line));
	}
	for (size_t i = 0; i < n; i++) {
		str_reset(&line);
		str_append_c(&line, '<');
		append_address(&line, rcpts[i].final_recipient, &nt->text_8bit);
		str_append(&line, ">: ");
		if (rcpts[i].reason != NULL && *rcpts[i].reason != '\0')
			append_clean(&line, rcpts[i].reason, BOUNCE_REASON_MAX, false, NULL);
		else
			str_append(&line, rcpts[i].action != NULL ? rcpts[i].action
			                                          : default_action(nt->kind));
		append_folded(t, "", str_c(&line), "    ");
		str_append_c(t, '\n');
	}
	str_free(&line);
	str_free(&when);
}

/* Part 2: the delivery-status fields (RFC 3464 2.2 and 2.3). */
static void build_status(struct notice *nt, const struct bounce_rcpt *rcpts, size_t n)
{
	const struct bounce_settings *s = nt->s;
	const struct queue_envelope *env = nt->env;
	str_t *st = &nt->status, v;

	str_init(&v);
	append_field(st, "Reporting-MTA: dns; ", s->myhostname, false, NULL);
	append_field(st, "X-Postern-Queue-ID: ", env->id, false, NULL);
	append_address(&v, env->sender, &nt->status_8bit);
	append_field(st, "X-Postern-Sender: rfc822; ", str_c(&v), true, NULL);
	str_reset(&v);
	append_date(&v, env->arrival.tv_sec);
	append_field(st, "Arrival-Date: ", str_c(&v), false, NULL);
	if (env->envid != NULL)
		append_field(st, "Original-Envelope-Id: ", env->envid, false, NULL);
	for (size_t i = 0; i < n; i++) {
		const struct bounce_rcpt *r = &rcpts[i];
		struct queue_dsn dsn = r->dsn.klass != 0 ? r->dsn : default_dsn(nt->kind);
		bool has_reason = r->reason != NULL && *r->reason != '\0';
		bool utf8 = false;

		str_append_c(st, '\n');
		str_reset(&v);
		append_address(&v, r->final_recipient, &utf8);
		/* RFC 6533: a UTF-8 address has the address type utf-8. */
		append_field(st, utf8 ? "Final-Recipient: utf-8; " : "Final-Recipient: rfc822; ",
		             str_c(&v), true, NULL);
		if (utf8)
			nt->status_8bit = true;
		if (r->original_recipient != NULL && *r->original_recipient != '\0') {
			str_reset(&v);
			if (strchr(r->original_recipient, ';') == NULL)
				str_append(&v, "rfc822;");
			str_append(&v, r->original_recipient);
			append_field(st, "Original-Recipient: ", str_c(&v), true, &nt->status_8bit);
		}
		append_field(st,
		             "Action: ", r->action != NULL ? r->action : default_action(nt->kind),
		             false, NULL);
		str_reset(&v);
		queue_dsn_format(&dsn, &v);
		append_field(st, "Status: ", str_c(&v), false, NULL);
		if (r->remote_mta != NULL && *r->remote_mta != '\0')
			append_field(st, "Remote-MTA: ", r->remote_mta, false, NULL);
		if (has_reason)
			append_field(st,
			             r->remote_mta != NULL && *r->remote_mta != '\0'
			                     ? "Diagnostic-Code: smtp; "
			                     : "Diagnostic-Code: X-Postfix; ",
			             r->reason, false, NULL);
		if (nt->kind == BOUNCE_DELAYED) {
			str_reset(&v);
			append_date(&v, (time_t)(env->arrival.tv_sec + (time_t)s->max_lifetime));
			append_field(st, "Will-Retry-Until: ", str_c(&v), false, NULL);
		}
	}
	str_free(&v);
}

/* Read up to want (> 0) content bytes of f at pos: at least one, or -1
 * with error set (a content shorter than the file says is EIO). */
static ssize_t read_some(struct queue_file *f, uint64_t pos, void *buf, size_t want, str_t *error)
{
	ssize_t got = queue_file_read_content(f, pos, buf, want, error);

	if (got == 0) {
		errno = EIO;
		str_appendf(error, "%s: content shorter than its length", queue_file_path(f));
		return -1;
	}
	return got;
}

/* The length of the original's header section: up to the empty line that
 * ends it (the whole content when there is none), at most limit bytes and
 * then cut after the last complete line. */
static int header_length(struct queue_file *f, uint64_t total, uint64_t limit, uint64_t *len_r,
                         str_t *error)
{
	unsigned char *buf = xmalloc(READ_CHUNK);
	bool whole = total <= limit; /* the limit does not cut the content */
	uint64_t pos = 0, end = whole ? total : limit, line_end = 0;
	int prev = '\n'; /* an LF at offset 0 is an empty first line */

	while (pos < end) {
		size_t want = end - pos < READ_CHUNK ? (size_t)(end - pos) : READ_CHUNK;
		ssize_t got = read_some(f, pos, buf, want, error);

		if (got < 0) {
			free(buf);
			return -1;
		}
		for (ssize_t i = 0; i < got; i++) {
			if (buf[i] != '\n') {
				prev = buf[i];
				continue;
			}
			if (prev == '\n') {
				*len_r = pos + (uint64_t)i;
				free(buf);
				return 0;
			}
			line_end = pos + (uint64_t)i + 1;
			prev = '\n';
		}
		pos += (uint64_t)got;
	}
	free(buf);
	*len_r = whole ? total : line_end;
	return 0;
}

/* Scan the first len bytes of the original for 8-bit bytes and for the
 * boundary (anywhere, which is stricter than at a line start). */
static int scan_original(struct queue_file *f, uint64_t len, const char *boundary, bool *eight_r,
                         bool *clash_r, str_t *error)
{
	size_t blen = strlen(boundary), keep = 0;
	unsigned char *buf = xmalloc(READ_CHUNK + blen);
	uint64_t pos = 0;

	*eight_r = false;
	*clash_r = false;
	while (pos < len) {
		size_t want = len - pos < READ_CHUNK ? (size_t)(len - pos) : READ_CHUNK, have;
		ssize_t got = read_some(f, pos, buf + keep, want, error);

		if (got < 0) {
			free(buf);
			return -1;
		}
		for (size_t i = keep; i < keep + (size_t)got; i++)
			if (buf[i] & 0x80)
				*eight_r = true;
		have = keep + (size_t)got;
		if (memmem(buf, have, boundary, blen) != NULL)
			*clash_r = true;
		/* Keep the last blen - 1 bytes: a boundary may span two reads. */
		keep = have < blen - 1 ? have : blen - 1;
		memmove(buf, buf + have - keep, keep);
		pos += (uint64_t)got;
	}
	free(buf);
	return 0;
}

/* Try "ID.N/host", then with random bytes, until the boundary appears
 * nowhere in the notice. Why check at all: the original is the sender's
 * text and the queue ID can be guessed; a boundary inside it would end the
 * report early and let a sender forge parts of it. */
static int choose_boundary(struct notice *nt, struct queue_file *f, const char *id, str_t *error)
{
	for (unsigned attempt = 0; attempt < BOUNDARY_TRIES; attempt++) {
		bool clash = false;

		str_reset(&nt->boundary);
		str_appendf(&nt->boundary, "%s.%u", id, attempt);
		if (attempt > 0) {
			unsigned char rnd[8] = {0};

			if (getrandom(rnd, sizeof(rnd), 0) < 0) {
				uint64_t x = (uint64_t)nt->now ^ ((uint64_t)attempt << 32);
				memcpy(rnd, &x, sizeof(rnd));
			}
			str_append_c(&nt->boundary, '.');
			for (size_t i = 0; i < sizeof(rnd); i++)
				str_appendf(&nt->boundary, "%02x", rnd[i]);
		}
		str_append_c(&nt->boundary, '/');
		for (const char *h = nt->s->myhostname; *h != '\0'; h++)
			if ((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
			    (*h >= '0' && *h <= '9') || *h == '.' || *h == '-')
				str_append_c(&nt->boundary, *h);
		str_truncate(&nt->boundary, BOUNDARY_MAX);
		if (strstr(str_c(&nt->text), str_c(&nt->boundary)) != NULL ||
		    strstr(str_c(&nt->status), str_c(&nt->boundary)) != NULL)
			continue;
		if (scan_original(f, nt->orig_len, str_c(&nt->boundary), &nt->orig_8bit, &clash,
		                  error) < 0)
			return -1;
		if (!clash)
			return 0;
	}
	errno = EINVAL;
	str_appendf(error, "no MIME boundary found that is not in the message");
	return -1;
}

/* Everything before the original: header, parts 1 and 2, part 3's header. */
static void build_head(struct notice *nt, const char *id, str_t *out)
{
	const struct bounce_settings *s = nt->s;
	const char *b = str_c(&nt->boundary);
	bool eight = nt->text_8bit || nt->status_8bit || nt->orig_8bit;
	str_t v;
	struct tm tm;
	char stamp[32];

	str_init(&v);
	append_date(&v, nt->now);
	append_field(out, "Date: ", str_c(&v), false, NULL);
	str_reset(&v);
	str_appendf(&v, "MAILER-DAEMON@%s (Mail Delivery System)", s->myhostname);
	append_field(out, "From: ", str_c(&v), false, NULL);
	append_field(out, "Subject: ", subject_of(nt), false, NULL);
	str_reset(&v);
	append_address(&v, nt->to, NULL);
	append_field(out, "To: ", str_c(&v), true, NULL);
	append_field(out, "Auto-Submitted: ", "auto-replied", false, NULL);
	gmtime_r(&nt->now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	str_reset(&v);
	str_appendf(&v, "<%s.%s@%s>", stamp, id, s->myhostname);
	append_field(out, "Message-Id: ", str_c(&v), false, NULL);
	str_append(out, "MIME-Version: 1.0\n");
	str_appendf(out,
	            "Content-Type: multipart/report; report-type=delivery-status;\n"
	            "\tboundary=\"%s\"\n",
	            b);
	if (eight)
		str_append(out, "Content-Transfer-Encoding: 8bit\n");
	str_append(out, "\nThis is a MIME-encapsulated message.\n\n");

	str_appendf(out, "--%s\n", b);
	str_append(out, "Content-Description: Notification\n");
	str_appendf(out, "Content-Type: text/plain; charset=%s\n",
	            nt->text_8bit ? "utf-8" : "us-ascii");
	if (nt->text_8bit)
		str_append(out, "Content-Transfer-Encoding: 8bit\n");
	str_append_c(out, '\n');
	str_append(out, str_c(&nt->text));

	str_appendf(out, "\n--%s\n", b);
	str_append(out, "Content-Description: Delivery report\n");
	if (nt->status_8bit)
		str_append(out, "Content-Type: message/global-delivery-status\n"
		                "Content-Transfer-Encoding: 8bit\n");
	else
		str_append(out, "Content-Type: message/delivery-status\n");
	str_append_c(out, '\n');
	str_append(out, str_c(&nt->status));

	str_appendf(out, "\n--%s\n", b);
	if (nt->whole)
		str_appendf(out, "Content-Description: %s\nContent-Type: message/rfc822\n",
		            nt->kind == BOUNCE_FAILED ? "Undelivered Message" : "Message");
	else
		str_appendf(out, "Content-Description: %s\nContent-Type: text/rfc822-headers\n",
		            nt->kind == BOUNCE_FAILED ? "Undelivered Message Headers"
		                                      : "Message Headers");
	if (nt->orig_8bit)
		str_append(out, "Content-Transfer-Encoding: 8bit\n");
	str_append_c(out, '\n');
	str_free(&v);
}

/* Copy the first len bytes of the original into the writer. */
static int copy_original(struct queue_file *f, uint64_t len, struct queue_writer *w,
                         bool *ends_lf_r, str_t *error)
{
	unsigned char *buf = xmalloc(READ_CHUNK);
	uint64_t pos = 0;

	*ends_lf_r = true;
	while (pos < len) {
		size_t want = len - pos < READ_CHUNK ? (size_t)(len - pos) : READ_CHUNK;
		ssize_t got = read_some(f, pos, buf, want, error);

		if (got < 0) {
			free(buf);
			return -1;
		}
		if (queue_writer_content(w, buf, (size_t)got, error) < 0) {
			free(buf);
			return -1;
		}
		*ends_lf_r = buf[got - 1] == '\n';
		pos += (uint64_t)got;
	}
	free(buf);
	return 0;
}

static bool same_address(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

int bounce_write(const struct bounce_settings *s, struct queue_file *original,
                 const struct queue_dir *qd, enum bounce_kind kind, const struct bounce_rcpt *rcpts,
                 size_t n, char id_r[QUEUE_ID_SIZE], str_t *error)
{
	const struct queue_envelope *env = queue_file_envelope(original);
	struct notice nt = {.s = s, .env = env, .kind = kind, .now = time(NULL)};
	struct queue_writer *w = NULL;
	str_t head;
	char id[QUEUE_ID_SIZE];
	bool ends_lf;
	int ret = -1;

	id_r[0] = '\0';
	if (n == 0) {
		errno = EINVAL;
		str_appendf(error, "%s: no recipients to report on", env->id);
		return -1;
	}
	/* Why these checks come first: a notice about a double bounce would
	 * go to the double-bounce address itself, and one about mail from <>
	 * has no one to go to; either would loop or pile up. */
	if (same_address(env->sender, s->double_bounce_addr) ||
	    same_address(env->sender, s->double_bounce_local))
		return 0;
	if (*env->sender == '\0') {
		if (kind != BOUNCE_FAILED)
			return 0;
		nt.double_bounce = true;
		nt.from = s->double_bounce_addr;
		nt.to = s->notice_rcpt;
	} else {
		nt.from = "";
		nt.to = env->sender;
	}
	/* Postfix's rule: the whole message only for a failure, when RET does
	 * not say HDRS and it fits in bounce_size_limit. */
	nt.whole = kind == BOUNCE_FAILED && env->ret != QUEUE_RET_HDRS &&
	           env->content_length <= s->size_limit;
	str_init(&nt.text);
	str_init(&nt.status);
	str_init(&nt.boundary);
	str_init(&head);
	build_text(&nt, rcpts, n);
	build_status(&nt, rcpts, n);
	if (nt.whole) {
		nt.orig_len = env->content_length;
	} else {
		uint64_t limit = s->size_limit > HEADERS_MIN ? s->size_limit : HEADERS_MIN;

		if (header_length(original, env->content_length, limit, &nt.orig_len, error) < 0)
			goto out;
	}
	if (queue_writer_open(qd, &w, error) < 0)
		goto out;
	memcpy(id, queue_writer_id(w), QUEUE_ID_SIZE);
	if (choose_boundary(&nt, original, id, error) < 0)
		goto out;
	build_head(&nt, id, &head);
	if (queue_writer_sender(w, nt.from, error) < 0 ||
	    queue_writer_rcpt(w, nt.to, NULL, 0, error) < 0 ||
	    queue_writer_content(w, head.buf, head.len, error) < 0 ||
	    copy_original(original, nt.orig_len, w, &ends_lf, error) < 0)
		goto out;
	/* The LF before a boundary belongs to the boundary (RFC 2046 5.1.1):
	 * one more keeps the original's last line ending in the part. */
	str_reset(&head);
	str_appendf(&head, "%s\n--%s--\n", ends_lf ? "" : "\n", str_c(&nt.boundary));
	if (queue_writer_content(w, head.buf, head.len, error) < 0 ||
	    queue_writer_commit(w, QUEUE_INCOMING, error) < 0)
		goto out;
	memcpy(id_r, id, QUEUE_ID_SIZE);
	ret = 0;
out:
	if (ret < 0) {
		int saved = errno;

		str_appendf(error, " (while writing a delivery report about %s)", env->id);
		errno = saved;
	}
	queue_writer_destroy(&w);
	str_free(&nt.text);
	str_free(&nt.status);
	str_free(&nt.boundary);
	str_free(&head);
	return ret;
}
