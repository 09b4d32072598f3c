/* test_bounce.c - delivery status notifications (lib/message/bounce): an
 * original message is written into a private queue, a notice about it is
 * written with bounce_write(), and the notice is read back from incoming/
 * with queue_file_open: its envelope (sender, recipient) and its content
 * (header, the three MIME parts, the returned original) are asserted.
 * Covers failures, delay warnings, success notices, RET=HDRS, an original
 * over bounce_size_limit, ENVID/ORCPT, double bounces, the no-loop rule,
 * the NOTIFY table, 8-bit originals and hostile or huge reasons.
 *
 * With POSTERN_BOUNCE_DUMP=DIR in the environment every notice is also
 * left in DIR as NAME.dsn (the stored content), NAME.orig (the original's
 * content) and NAME.expect (key=value lines saying what it should hold),
 * for tests/system/test_bounce_format.py to parse with Python's email
 * package. */
#include "queue_test.h"

#include <time.h>

#include "message/bounce.h"
#include "conf/config.h"
#include "queue/queue_file.h"

struct bt {
	struct qtest *q;
	struct config *cfg;
	struct bounce_settings *set;
	char orig_id[QUEUE_ID_SIZE];
	char dsn_id[QUEUE_ID_SIZE];
	struct queue_file *orig;
	str_t orig_content;
	/* the notice, read back */
	str_t sender;
	strv_t rcpts;
	str_t content;
	str_t unfolded; /* content with folded lines joined (RFC 5322 2.2.3) */
	str_t words; /* content with every run of white space one space */
};

static const char plain_message[] = "Received: from client.example.org\n"
                                    "From: Sender <sender@example.org>\n"
                                    "To: a@example.com, b@remote.example\n"
                                    "Subject: quarterly report\n"
                                    "Message-ID: <m1@example.org>\n"
                                    "\n"
                                    "Hello,\n"
                                    "the numbers are attached.\n";

static void bt_config(struct bt *t, const char *extra)
{
	strv_t errors = STRV_INIT;
	str_t text, error;

	str_init(&text);
	str_init(&error);
	str_appendf(&text, "myhostname = mx.example.com\nmyorigin = example.com\n%s",
	            extra != NULL ? extra : "");
	if (config_parse_text(text.buf, text.len, "main.cf", "/nonexistent", &t->cfg, &errors) < 0)
		fail_msg("main.cf: %s", errors.v[0]);
	if (bounce_settings_new(t->cfg, &t->set, &error) < 0)
		fail_msg("bounce_settings_new: %s", str_c(&error));
	strv_free(&errors);
	str_free(&text);
	str_free(&error);
}

static struct bt *bt_new(const char *extra)
{
	struct bt *t = xcalloc(1, sizeof(*t));

	t->q = qtest_new(1, 0);
	str_init(&t->orig_content);
	str_init(&t->sender);
	str_init(&t->content);
	str_init(&t->unfolded);
	str_init(&t->words);
	bt_config(t, extra);
	return t;
}

static void bt_destroy(struct bt **tp)
{
	struct bt *t = *tp;

	queue_file_close(&t->orig);
	bounce_settings_destroy(&t->set);
	config_destroy(&t->cfg);
	str_free(&t->orig_content);
	str_free(&t->sender);
	str_free(&t->content);
	str_free(&t->unfolded);
	str_free(&t->words);
	strv_free(&t->rcpts);
	qtest_destroy(&t->q);
	free(t);
	*tp = NULL;
}

/* Queue the original and move it to active/, where qmgr has the mail it
 * reports on, and open it there. rcpts: "addr" or "addr|orcpt", one per element. */
static void bt_original(struct bt *t, const char *sender, const char *envid, enum queue_dsn_ret ret,
                        const char *const *rcpts, const char *content, size_t len)
{
	struct queue_writer *w;
	str_t error;

	str_init(&error);
	if (queue_writer_open(t->q->qd, &w, &error) < 0)
		fail_msg("queue_writer_open: %s", str_c(&error));
	memcpy(t->orig_id, queue_writer_id(w), QUEUE_ID_SIZE);
	assert_int_equal(queue_writer_sender(w, sender, &error), 0);
	assert_int_equal(queue_writer_dsn(w, envid, ret, &error), 0);
	for (size_t i = 0; rcpts[i] != NULL; i++) {
		char *addr = xstrdup(rcpts[i]), *bar = strchr(addr, '|');

		if (bar != NULL)
			*bar++ = '\0';
		assert_int_equal(queue_writer_rcpt(w, addr, bar, 0, &error), 0);
		free(addr);
	}
	assert_int_equal(queue_writer_content(w, content, len, &error), 0);
	if (queue_writer_commit(w, QUEUE_INCOMING, &error) < 0 ||
	    queue_dir_move(t->q->qd, t->orig_id, QUEUE_INCOMING, QUEUE_ACTIVE, &error) < 0)
		fail_msg("commit: %s", str_c(&error));
	queue_writer_destroy(&w);
	if (queue_file_open(t->q->qd, QUEUE_ACTIVE, t->orig_id, 0, &t->orig, &error) !=
	    QUEUE_FILE_OK)
		fail_msg("open original: %s", str_c(&error));
	str_set(&t->orig_content, "");
	str_append_n(&t->orig_content, content, len);
	str_free(&error);
}

static void bt_plain(struct bt *t, const char *sender)
{
	static const char *const rcpts[] = {"a@example.com", "b@remote.example", NULL};

	bt_original(t, sender, NULL, QUEUE_RET_NONE, rcpts, plain_message,
	            sizeof(plain_message) - 1);
}

static void dump(const char *dir, const char *name, const char *ext, const char *data, size_t len)
{
	char *path = xasprintf("%s/%s.%s", dir, name, ext);
	FILE *fp = fopen(path, "w");

	if (fp == NULL || fwrite(data, 1, len, fp) != len || fclose(fp) != 0)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	free(path);
}

/* Read the notice back from incoming/; check what every notice must hold:
 * lines of at most 998 bytes, no CR at all, one recipient. With
 * POSTERN_BOUNCE_DUMP set, leave it there under name with expect. */
static void bt_read(struct bt *t, const char *name, const char *expect)
{
	struct queue_file *f;
	const struct queue_envelope *env;
	struct queue_rcpt r;
	str_t error;
	char buf[4096];
	uint64_t pos = 0;
	ssize_t got;
	const char *dir = getenv("POSTERN_BOUNCE_DUMP");

	str_init(&error);
	assert_true(queue_id_valid(t->dsn_id));
	if (queue_file_open(t->q->qd, QUEUE_INCOMING, t->dsn_id, 0, &f, &error) != QUEUE_FILE_OK)
		fail_msg("open notice %s: %s", t->dsn_id, str_c(&error));
	env = queue_file_envelope(f);
	str_set(&t->sender, env->sender);
	assert_null(env->envid);
	assert_int_equal(env->ret, QUEUE_RET_NONE);
	assert_int_equal(env->rcpt_count, 1);
	queue_rcpt_init(&r);
	assert_int_equal(queue_file_read_rcpt(f, 0, &r, &error), QUEUE_FILE_OK);
	strv_free(&t->rcpts);
	strv_add(&t->rcpts, str_c(&r.address));
	assert_int_equal(r.status.state, QUEUE_RCPT_PENDING);
	assert_string_equal(str_c(&r.orcpt), "");
	queue_rcpt_free(&r);
	str_reset(&t->content);
	while ((got = queue_file_read_content(f, pos, buf, sizeof(buf), &error)) > 0) {
		str_append_n(&t->content, buf, (size_t)got);
		pos += (uint64_t)got;
	}
	assert_int_equal(got, 0);
	assert_int_equal(t->content.len, env->content_length);
	queue_file_close(&f);
	str_free(&error);

	assert_null(memchr(t->content.buf, '\r', t->content.len));
	for (const char *p = t->content.buf, *end = p + t->content.len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		assert_non_null(nl); /* every line ends in LF */
		if (nl - p > 998)
			fail_msg("%s: line of %zu bytes: %.60s...", name, (size_t)(nl - p), p);
		p = nl + 1;
	}
	str_reset(&t->unfolded);
	str_reset(&t->words);
	for (size_t i = 0; i < t->content.len; i++) {
		char c = t->content.buf[i], next = t->content.buf[i + 1];
		bool space = c == ' ' || c == '\t' || c == '\n';

		if (!(c == '\n' && (next == ' ' || next == '\t')))
			str_append_c(&t->unfolded, c);
		if (!space)
			str_append_c(&t->words, c);
		else if (t->words.len > 0 && t->words.buf[t->words.len - 1] != ' ')
			str_append_c(&t->words, ' ');
	}
	if (dir != NULL && *dir != '\0') {
		dump(dir, name, "dsn", t->content.buf, t->content.len);
		dump(dir, name, "orig", t->orig_content.buf, t->orig_content.len);
		dump(dir, name, "expect", expect, strlen(expect));
	}
}

static int bt_write(struct bt *t, enum bounce_kind kind, const struct bounce_rcpt *rcpts, size_t n)
{
	str_t error;
	int ret;

	str_init(&error);
	memset(t->dsn_id, 'x', sizeof(t->dsn_id));
	ret = bounce_write(t->set, t->orig, t->q->qd, kind, rcpts, n, t->dsn_id, &error);
	if (ret < 0)
		fail_msg("bounce_write: %s", str_c(&error));
	str_free(&error);
	return ret;
}

/* Failure messages show only a little: cmocka cuts long ones. */
static void assert_has(const struct bt *t, const char *text)
{
	if (strstr(str_c(&t->unfolded), text) == NULL)
		fail_msg("notice (unfolded) lacks [%.300s]", text);
}

/* text, with white space normalised, in the notice's words (prose). */
static void assert_words(const struct bt *t, const char *text)
{
	if (strstr(str_c(&t->words), text) == NULL)
		fail_msg("notice text lacks [%.300s]", text);
}

static void assert_raw(const struct bt *t, const char *text)
{
	if (strstr(str_c(&t->content), text) == NULL)
		fail_msg("notice lacks [%.300s]", text);
}

static void assert_lacks(const struct bt *t, const char *text)
{
	if (strstr(str_c(&t->content), text) != NULL)
		fail_msg("notice has [%.300s]", text);
}

/* The boundary from the Content-Type header (caller frees). */
static char *boundary_of(const struct bt *t)
{
	const char *b = strstr(str_c(&t->content), "boundary=\"");
	const char *e;

	assert_non_null(b);
	b += strlen("boundary=\"");
	e = strchr(b, '"');
	assert_non_null(e);
	return xstrndup(b, (size_t)(e - b));
}

/* The returned original: what follows part 3's header up to the LF before
 * the closing delimiter (caller frees). */
static char *part3_of(const struct bt *t, const char *type)
{
	char *b = boundary_of(t), *close = xasprintf("\n--%s--\n", b);
	char *hdr = xasprintf("Content-Type: %s\n", type);
	const char *start = strstr(str_c(&t->content), hdr), *end;
	char *body;

	if (start == NULL) {
		fail_msg("no part %s", type);
		return NULL;
	}
	start = strstr(start, "\n\n");
	assert_non_null(start);
	start += 2;
	end = strstr(start, close);
	assert_non_null(end);
	/* nothing after the closing delimiter */
	assert_int_equal((size_t)(end - t->content.buf) + strlen(close), t->content.len);
	body = xstrndup(start, (size_t)(end - start));
	free(b);
	free(close);
	free(hdr);
	return body;
}

static void assert_header_line(const struct bt *t, const char *line)
{
	char *want = xasprintf("\n%s\n", line);

	/* the first header line has no LF before it */
	if (strncmp(str_c(&t->unfolded), line, strlen(line)) != 0 &&
	    strstr(str_c(&t->unfolded), want) == NULL)
		fail_msg("no line [%.300s]", line);
	free(want);
}

static void test_failure(void **state)
{
	struct bt *t = bt_new(NULL);
	struct bounce_rcpt rcpts[] = {
	        {.final_recipient = "a@example.com",
	         .dsn = {5, 1, 1},
	         .reason = "unknown user: \"a@example.com\""},
	        {.final_recipient = "b@remote.example",
	         .dsn = {5, 7, 1},
	         .remote_mta = "dns; mx.remote.example",
	         .reason =
	                 "host mx.remote.example[192.0.2.25] said: 550 5.7.1 <b@remote.example>: "
	                 "Recipient address rejected: Access denied (in reply to RCPT TO command)"},
	};
	char *orig, *line, *b;

	(void)state;
	bt_plain(t, "sender@example.org");
	assert_int_equal(bt_write(t, BOUNCE_FAILED, rcpts, 2), 0);
	bt_read(t, "failure", "kind=failed\nreturn=message\nrcpts=2\n");
	assert_string_equal(str_c(&t->sender), "");
	assert_string_equal(t->rcpts.v[0], "sender@example.org");

	assert_true(strncmp(str_c(&t->content), "Date: ", 6) == 0);
	assert_header_line(t, "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)");
	assert_header_line(t, "Subject: Undelivered Mail Returned to Sender");
	assert_header_line(t, "To: sender@example.org");
	assert_header_line(t, "Auto-Submitted: auto-replied");
	assert_header_line(t, "MIME-Version: 1.0");
	assert_has(t, "\nMessage-Id: <");
	assert_has(t, "@mx.example.com>\n");
	assert_raw(t,
	           "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"");
	/* the notice's own header has no Received: line (the original has) */
	assert_true(strstr(str_c(&t->content), "Received:") > strstr(str_c(&t->content), "\n\n"));
	assert_lacks(t, "Content-Transfer-Encoding");
	/* part 1 names the software and the host, and each recipient's reason */
	assert_has(t, "Content-Type: text/plain; charset=us-ascii\n");
	assert_words(t, "postern mail delivery software on mx.example.com");
	assert_words(t, "<a@example.com>: unknown user: \"a@example.com\"");
	assert_words(t, "<b@remote.example>: host mx.remote.example[192.0.2.25] said: 550");
	/* part 2 */
	assert_has(t,
	           "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.com\n");
	line = xasprintf("X-Postern-Queue-ID: %s", t->orig_id);
	assert_header_line(t, line);
	free(line);
	assert_header_line(t, "X-Postern-Sender: rfc822; sender@example.org");
	assert_has(t, "\nArrival-Date: ");
	assert_lacks(t, "Original-Envelope-Id");
	assert_lacks(t, "Original-Recipient");
	assert_has(t, "\n\nFinal-Recipient: rfc822; a@example.com\nAction: failed\nStatus: 5.1.1\n"
	              "Diagnostic-Code: X-Postfix; unknown user: \"a@example.com\"\n");
	assert_has(t, "\n\nFinal-Recipient: rfc822; b@remote.example\nAction: failed\n"
	              "Status: 5.7.1\nRemote-MTA: dns; mx.remote.example\n"
	              "Diagnostic-Code: smtp; host mx.remote.example[192.0.2.25] said: 550");
	assert_lacks(t, "Will-Retry-Until");
	/* part 3: the whole original, byte for byte */
	orig = part3_of(t, "message/rfc822");
	assert_string_equal(orig, plain_message);
	b = boundary_of(t);
	assert_null(strstr(plain_message, b));
	assert_true(strlen(b) <= 70);
	free(b);
	free(orig);
	assert_has(t, "Content-Description: Undelivered Message\n");
	bt_destroy(&t);
}

static void test_delay_warning(void **state)
{
	struct bt *t = bt_new("maximal_queue_lifetime = 2d\n");
	struct bounce_rcpt r = {
	        .final_recipient = "b@remote.example",
	        .dsn = {4, 4, 1},
	        .remote_mta = "dns; mx.remote.example",
	        .reason = "connect to mx.remote.example[192.0.2.25]:25: Connection timed out",
	};
	const char *until, *nl;
	char *date, *text, *hdrs;

	(void)state;
	bt_plain(t, "sender@example.org");
	assert_int_equal(bt_write(t, BOUNCE_DELAYED, &r, 1), 0);
	bt_read(t, "delay", "kind=delayed\nreturn=headers\nrcpts=1\n");
	assert_string_equal(str_c(&t->sender), "");
	assert_string_equal(t->rcpts.v[0], "sender@example.org");
	assert_header_line(t, "Subject: Delayed Mail (still being retried)");
	assert_has(t, "\nAction: delayed\nStatus: 4.4.1\nRemote-MTA: dns; mx.remote.example\n"
	              "Diagnostic-Code: smtp; connect to mx.remote.example[192.0.2.25]:25: "
	              "Connection timed out\nWill-Retry-Until: ");
	/* The text says until when: the same date as Will-Retry-Until, which
	 * is arrival + maximal_queue_lifetime. */
	until = strstr(str_c(&t->content), "Will-Retry-Until: ") + strlen("Will-Retry-Until: ");
	nl = strchr(until, '\n');
	date = xstrndup(until, (size_t)(nl - until));
	{
		const struct queue_envelope *env = queue_file_envelope(t->orig);
		time_t u = env->arrival.tv_sec + 2 * 86400;
		struct tm tm;
		char want[64];

		localtime_r(&u, &tm);
		strftime(want, sizeof(want), "%d %b %Y %H:%M:%S", &tm);
		if (strstr(date, want) == NULL)
			fail_msg("Will-Retry-Until [%s] is not arrival + 2d [%s]", date, want);
	}
	/* the text part, unfolded, names that date */
	text = xstrdup(str_c(&t->content));
	for (char *p = text; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	if (strstr(text, date) == NULL)
		fail_msg("text does not say until when [%s]", date);
	assert_non_null(strstr(text, "keep trying until"));
	free(text);
	free(date);
	/* headers only */
	hdrs = part3_of(t, "text/rfc822-headers");
	assert_int_equal(strlen(hdrs), strstr(plain_message, "\n\n") + 1 - plain_message);
	assert_memory_equal(hdrs, plain_message, strlen(hdrs));
	assert_lacks(t, "the numbers are attached");
	free(hdrs);
	bt_destroy(&t);
}

static void test_success(void **state)
{
	struct bt *t = bt_new(NULL);
	struct bounce_rcpt r = {.final_recipient = "a@example.com",
	                        .dsn = {2, 0, 0},
	                        .reason = "delivered to mailbox"};
	char *hdrs;

	(void)state;
	bt_plain(t, "sender@example.org");
	assert_int_equal(bt_write(t, BOUNCE_DELIVERED, &r, 1), 0);
	bt_read(t, "success", "kind=delivered\nreturn=headers\nrcpts=1\n");
	assert_string_equal(str_c(&t->sender), "");
	assert_header_line(t, "Subject: Successful Mail Delivery Report");
	assert_has(t, "\nFinal-Recipient: rfc822; a@example.com\nAction: delivered\n"
	              "Status: 2.0.0\nDiagnostic-Code: X-Postfix; delivered to mailbox\n");
	assert_words(t, "<a@example.com>: delivered to mailbox");
	assert_lacks(t, "Will-Retry-Until");
	hdrs = part3_of(t, "text/rfc822-headers");
	assert_memory_equal(hdrs, plain_message, strlen(hdrs));
	assert_lacks(t, "the numbers are attached");
	free(hdrs);
	bt_destroy(&t);
}

static void test_ret_hdrs(void **state)
{
	static const char *const rcpts[] = {"a@example.com", NULL};
	struct bt *t = bt_new(NULL);
	struct bounce_rcpt r = {.final_recipient = "a@example.com", .reason = "mailbox full"};
	char *hdrs;

	(void)state;
	bt_original(t, "sender@example.org", NULL, QUEUE_RET_HDRS, rcpts, plain_message,
	            sizeof(plain_message) - 1);
	assert_int_equal(bt_write(t, BOUNCE_FAILED, &r, 1), 0);
	bt_read(t, "ret_hdrs", "kind=failed\nreturn=headers\nrcpts=1\n");
	/* no status given: 5.0.0 from the kind */
	assert_has(t, "\nAction: failed\nStatus: 5.0.0\n");
	assert_has(t, "Content-Description: Undelivered Message Headers\n");
	assert_lacks(t, "message/rfc822");
	assert_lacks(t, "the numbers are attached");
	hdrs = part3_of(t, "text/rfc822-headers");
	assert_memory_equal(hdrs, plain_message, strlen(hdrs));
	assert_int_equal(hdrs[strlen(hdrs) - 1], '\n');
	free(hdrs);
	bt_destroy(&t);
}

static void test_too_large(void **state)
{
	static const char *const rcpts[] = {"a@example.com", NULL};
	struct bt *t = bt_new("bounce_size_limit = 1000\n");
	struct bounce_rcpt r = {.final_recipient = "a@example.com", .reason = "mailbox full"};
	str_t big;
	char *hdrs;

	(void)state;
	str_init(&big);
	str_append(&big, "From: sender@example.org\nSubject: big\n\n");
	while (big.len <= 1000)
		str_append(&big, "a body line that pushes the message over the limit\n");
	bt_original(t, "sender@example.org", NULL, QUEUE_RET_FULL, rcpts, big.buf, big.len);
	assert_int_equal(bt_write(t, BOUNCE_FAILED, &r, 1), 0);
	bt_read(t, "too_large", "kind=failed\nreturn=headers\nrcpts=1\n");
	hdrs = part3_of(t, "text/rfc822-headers");
	assert_string_equal(hdrs, "From: sender@example.org\nSubject: big\n");
	assert_lacks(t, "pushes the message");
	free(hdrs);
	str_free(&big);
	bt_destroy(&t);
}

static void test_envid_orcpt(void **state)
{
	static const char *const rcpts[] = {"a@example.com|rfc822;Alias@Example.COM", NULL};
	struct bt *t = bt_new(NULL);
	struct bounce_rcpt r = {.final_recipient = "a@example.com",
	                        .original_recipient = "rfc822;Alias@Example.COM",
	                        .dsn = {5, 1, 1},
	                        .reason = "unknown user"};

	(void)state;
	bt_original(t, "sender@example.org", "QQ314159", QUEUE_RET_FULL, rcpts, plain_message,
	            sizeof(plain_message) - 1);
	assert_int_equal(bt_write(t, BOUNCE_FAILED, &r, 1), 0);
	bt_read(t, "envid_orcpt",
	        "kind=failed\nreturn=message\nrcpts=1\nenvid=QQ314159\n"
	        "orcpt=rfc822;Alias@Example.COM\n");
	assert_has(t, "\nOriginal-Envelope-Id: QQ314159\n");
	assert_has(t, "\nFinal-Recipient: rfc822; a@example.com\n"
	              "Original-Recipient: rfc822;Alias@Example.COM\nAction: failed\n");
	bt_destroy(&t);
}

static void test_double_bounce(void **state)
{
	struct bt *t = bt_new(NULL);
	struct bounce_rcpt r = {.final_recipient = "sender@example.org",
	                        .dsn = {5, 1, 1},
	                        .reason = "unknown user: \"sender@example.org\""};
	static const char bounce[] = "From: MAILER-DAEMON@elsewhere.example\n"
	                             "Subject: Undelivered Mail Returned to Sender\n\nsorry\n";
	static const char *const rcpts[] = {"sender@example.org", NULL};
	char *orig;

	(void)state;
	bt_original(t, "", NULL, QUEUE_RET_NONE, rcpts, bounce, sizeof(bounce) - 1);
	assert_int_equal(bt_write(t, BOUNCE_FAILED, &r, 1), 0);
	bt_read(t, "double_bounce", "kind=failed\nreturn=message\nrcpts=1\n");
	assert_string_equal(str_c(&t->sender), "double-bounce@example.com");
	assert_string_equal(t->rcpts.v[0], "postmaster@example.com");
	assert_header_line(t, "To: postmaster@example.com");
	assert_words(t, "bounce of a bounce");
	assert_header_line(t, "X-Postern-Sender: rfc822;");
	orig = part3_of(t, "message/rfc822");
	assert_string_equal(orig, bounce);
	free(orig);
	bt_destroy(&t);

	/* 2bounce_notice_recipient and double_bounce_sender are honoured */
	t = bt_new("2bounce_notice_recipient = mailops@ops.example\n"
	           "double_bounce_sender = bounce-loop\n");
	bt_original(t, "", NULL, QUEUE_RET_NONE, rcpts, bounce, sizeof(bounce) - 1);
	assert_int_equal(bt_write(t, BOUNCE_FAILED, &r, 1), 0);
	bt_read(t, "double_bounce2", "kind=failed\nreturn=message\nrcpts=1\n");
	assert_string_equal(str_c(&t->sender), "bounce-loop@example.com");
	assert_string_equal(t->rcpts.v[0], "mailops@ops.example");
	bt_destroy(&t);
}

/* Nothing is written about mail from the double-bounce sender (a failed
 * double bounce), nor delay or success notices about mail from <>. */
static void test_no_loop(void **state)
{
	static const struct {
		const char *sender;
		enum bounce_kind kind;
	} cases[] = {
	        {"double-bounce@example.com", BOUNCE_FAILED},
	        {"Double-Bounce@EXAMPLE.com", BOUNCE_FAILED},
	        {"double-bounce", BOUNCE_FAILED},
	        {"double-bounce@example.com", BOUNCE_DELAYED},
	        {"", BOUNCE_DELAYED},
	        {"", BOUNCE_DELIVERED},
	};
	struct bounce_rcpt r = {.final_recipient = "postmaster@example.com", .reason = "no"};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct bt *t = bt_new(NULL);

		bt_plain(t, cases[i].sender);
		assert_int_equal(bt_write(t, cases[i].kind, &r, 1), 0);
		if (strcmp(t->dsn_id, "") != 0)
			fail_msg("case %zu: notice %s written about mail from <%s>", i, t->dsn_id,
			         cases[i].sender);
		assert_int_equal(qtest_count_files(t->q, "incoming"), 0);
		bt_destroy(&t);
	}
}

static void test_notify_table(void **state)
{
	static const struct {
		unsigned notify;
		bool failed, delayed, delivered;
	} cases[] = {
	        {0, true, true, false},
	        {QUEUE_NOTIFY_NEVER, false, false, false},
	        {QUEUE_NOTIFY_SUCCESS, false, false, true},
	        {QUEUE_NOTIFY_FAILURE, true, false, false},
	        {QUEUE_NOTIFY_DELAY, false, true, false},
	        {QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE, true, false, true},
	        {QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY, true, true, false},
	        {QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY, true, true,
	         true},
	        {QUEUE_NOTIFY_ALL, false, false, false}, /* NEVER wins */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (bounce_wanted(cases[i].notify, BOUNCE_FAILED) != cases[i].failed ||
		    bounce_wanted(cases[i].notify, BOUNCE_DELAYED) != cases[i].delayed ||
		    bounce_wanted(cases[i].notify, BOUNCE_DELIVERED) != cases[i].delivered)
			fail_msg("NOTIFY flags 0x%x: wrong answer", cases[i].notify);
	}
}

static void test_8bit(void **state)
{
	static const char message[] = "From: =?utf-8?q?Ren=C3=A9?= <rene@example.org>\n"
	                              "Subject: caf\xc3\xa9\n"
	                              "\n"
	                              "cr\xc3\xa8me br\xc3\xbbl\xc3\xa9\x65\n";
	static const char *const rcpts[] = {"a@example.com", NULL};
	struct bt *t = bt_new(NULL);
	struct bounce_rcpt r = {.final_recipient = "a@example.com", .reason = "mailbox full"};
	char *orig;

	(void)state;
	bt_original(t, "rene@example.org", NULL, QUEUE_RET_NONE, rcpts, message,
	            sizeof(message) - 1);
	assert_int_equal(bt_write(t, BOUNCE_FAILED, &r, 1), 0);
	bt_read(t, "eightbit", "kind=failed\nreturn=message\nrcpts=1\n");
	/* the top level and part 3 say 8bit; parts 1 and 2 stay 7-bit */
	assert_has(t, "boundary=\"");
	assert_has(t, "\"\nContent-Transfer-Encoding: 8bit\n\n");
	assert_has(t, "Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n");
	assert_has(t, "Content-Type: text/plain; charset=us-ascii\n\n");
	orig = part3_of(t, "message/rfc822");
	assert_string_equal(orig, message);
	free(orig);
	bt_destroy(&t);
}

/* A remote reply with CR, LF, ESC and other control bytes cannot add a
 * header or a DSN field; a 5000-byte reason is folded (and cut) into
 * lines of at most 998 bytes; bt_read checks every line. */
static void test_hostile_reasons(void **state)
{
	struct bt *t = bt_new(NULL);
	str_t huge;
	struct bounce_rcpt rcpts[] = {
	        {.final_recipient = "a@example.com",
	         .remote_mta = "dns; mx.remote.example",
	         .reason = "550 no\r\nAction: delivered\r\n\r\n--x\x01\x1b[31mred\x7f\tend\xff"},
	        {.final_recipient = "b@remote.example", .dsn = {5, 3, 4}},
	        {.final_recipient = "c@remote.example", .dsn = {5, 3, 4}},
	};
	char *orig;

	(void)state;
	str_init(&huge);
	for (int i = 0; huge.len < 2000; i++)
		str_appendf(&huge, "word%d ", i);
	for (int i = 0; i < 3000; i++) /* one 3000-byte word */
		str_append_c(&huge, (char)('a' + i % 26));
	rcpts[1].reason = str_c(&huge);
	rcpts[2].reason = huge.buf + 1990; /* the long word after a little text */
	assert_true(huge.len >= 5000);
	bt_plain(t, "sender@example.org");
	assert_int_equal(bt_write(t, BOUNCE_FAILED, rcpts, 3), 0);
	bt_read(t, "hostile", "kind=failed\nreturn=message\nrcpts=3\n");
	assert_lacks(t, "\x01");
	assert_lacks(t, "\x1b");
	assert_lacks(t, "\x7f");
	assert_lacks(t, "\xff");
	assert_lacks(t, "\nAction: delivered");
	assert_lacks(t, "\n--x");
	assert_has(t, "Diagnostic-Code: smtp; 550 no Action: delivered --x [31mred end?\n");
	assert_has(t, "Diagnostic-Code: X-Postfix; word0 word1 word2");
	assert_has(t, "...\n");
	orig = part3_of(t, "message/rfc822");
	assert_string_equal(orig, plain_message);
	free(orig);
	str_free(&huge);
	bt_destroy(&t);
}

/* An original without a body, or that ends without LF, comes back whole. */
static void test_odd_originals(void **state)
{
	static const char *const rcpts[] = {"a@example.com", NULL};
	static const char *const messages[] = {
	        "Subject: no body\nFrom: x@example.org\n",
	        "Subject: no final newline\n\nlast line",
	        "\nbody without a header\n",
	};
	struct bounce_rcpt r = {.final_recipient = "a@example.com", .reason = "mailbox full"};

	(void)state;
	for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
		struct bt *t = bt_new(NULL);
		char *orig, *name = xasprintf("odd%zu", i);
		size_t len = strlen(messages[i]);

		bt_original(t, "sender@example.org", NULL, QUEUE_RET_FULL, rcpts, messages[i], len);
		assert_int_equal(bt_write(t, BOUNCE_FAILED, &r, 1), 0);
		bt_read(t, name,
		        messages[i][len - 1] == '\n' ? "kind=failed\nreturn=message\nrcpts=1\n"
		                                     : "kind=failed\nreturn=message-lf\nrcpts=1\n");
		orig = part3_of(t, "message/rfc822");
		if (messages[i][len - 1] == '\n')
			assert_string_equal(orig, messages[i]);
		else
			assert_true(strlen(orig) == len + 1 && memcmp(orig, messages[i], len) == 0);
		free(orig);
		free(name);
		bt_destroy(&t);
	}
}

static void test_settings_errors(void **state)
{
	static const char *const bad[] = {
	        "double_bounce_sender =\n",
	        "2bounce_notice_recipient = post master\n",
	        "bounce_size_limit = lots\n",
	        "maximal_queue_lifetime = forever\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strv_t errors = STRV_INIT;
		struct config *cfg = NULL;
		struct bounce_settings *s = NULL;
		str_t error;

		str_init(&error);
		config_parse_text(bad[i], strlen(bad[i]), "main.cf", "/nonexistent", &cfg, &errors);
		assert_int_equal(bounce_settings_new(cfg, &s, &error), -1);
		assert_null(s);
		if (error.len == 0)
			fail_msg("no error for %s", bad[i]);
		bounce_settings_destroy(&s);
		config_destroy(&cfg);
		strv_free(&errors);
		str_free(&error);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_failure),         cmocka_unit_test(test_delay_warning),
	        cmocka_unit_test(test_success),         cmocka_unit_test(test_ret_hdrs),
	        cmocka_unit_test(test_too_large),       cmocka_unit_test(test_envid_orcpt),
	        cmocka_unit_test(test_double_bounce),   cmocka_unit_test(test_no_loop),
	        cmocka_unit_test(test_notify_table),    cmocka_unit_test(test_8bit),
	        cmocka_unit_test(test_hostile_reasons), cmocka_unit_test(test_odd_originals),
	        cmocka_unit_test(test_settings_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
