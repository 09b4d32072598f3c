/* test_cleanup.c - cleanup (lib/cleanup): messages go through real
 * regexp:/pcre: check tables written to temp files into a real queue
 * directory; the committed queue file is read back and its stored bytes,
 * envelope and attributes asserted, with the log lines a user would see.
 * Covers every header/body action, MIME part vs message headers, nested
 * message/rfc822, folding and overlong headers, lines in pieces, missing
 * headers (local only), sendmail -t with Bcc removal, REDIRECT, HOLD,
 * DISCARD, FILTER, content_filter and receive_override_options, table
 * failure, size limit and disk full. */
#include "queue_test.h"
#include "table_test.h"

#include <signal.h>
#include <sys/resource.h>

#include "cleanup/cleanup.h"
#include "conf/config.h"
#include "queue/queue_file.h"

struct ct {
	struct qtest *q;
	char *dir;
	struct config *cfg;
	struct cleanup_settings *set;
	struct test_log log;
	struct cleanup_result res;
	char id[QUEUE_ID_SIZE];
	str_t content; /* read back */
	strv_t rcpts; /* read back */
	struct queue_file *f;
};

static struct ct *ct_new(void)
{
	struct ct *t = xcalloc(1, sizeof(*t));
	t->q = qtest_new(1, 0);
	t->dir = test_tmpdir();
	str_init(&t->content);
	cleanup_result_init(&t->res);
	test_log_start(&t->log, true);
	return t;
}

/* A table file in the test directory; returns "type:path" (freed by the
 * caller). */
static char *ct_table(struct ct *t, const char *type, const char *name, const char *text)
{
	char *path = test_write_text(t->dir, name, text);
	char *spec = xasprintf("%s:%s", type, path);
	free(path);
	return spec;
}

static void ct_config(struct ct *t, const char *extra)
{
	strv_t errors = STRV_INIT;
	str_t text, error;
	str_init(&text);
	str_init(&error);
	str_appendf(&text, "myhostname = mx.example.com\nmydomain = example.com\n%s", extra);
	if (config_parse_text(text.buf, text.len, "main.cf", t->dir, &t->cfg, &errors) < 0)
		fail_msg("main.cf: %s", errors.v[0]);
	if (cleanup_settings_new(t->cfg, t->dir, &t->set, &error) < 0)
		fail_msg("settings: %s", str_c(&error));
	strv_free(&errors);
	str_free(&text);
	str_free(&error);
}

static void ct_destroy(struct ct **tp)
{
	struct ct *t = *tp;
	queue_file_close(&t->f);
	cleanup_settings_destroy(&t->set);
	config_destroy(&t->cfg);
	cleanup_result_free(&t->res);
	str_free(&t->content);
	strv_free(&t->rcpts);
	test_log_stop(&t->log);
	test_rmtree(&t->dir);
	qtest_destroy(&t->q);
	free(t);
	*tp = NULL;
}

/* Feed a message: content is lines separated by "\n". Remote client
 * attributes unless CLEANUP_F_LOCAL. */
static struct cleanup *ct_begin(struct ct *t, unsigned flags, const char *sender, const char *rcpts)
{
	struct cleanup *c;
	str_t error;
	str_init(&error);
	if (cleanup_open(t->set, t->q->qd, flags, &c, &error) < 0)
		fail_msg("cleanup_open: %s", str_c(&error));
	str_free(&error);
	memcpy(t->id, cleanup_id(c), QUEUE_ID_SIZE);
	cleanup_sender(c, sender, NULL, QUEUE_RET_NONE);
	if (!(flags & CLEANUP_F_LOCAL)) {
		cleanup_attr(c, QUEUE_ATTR_CLIENT_NAME, "client.example.org");
		cleanup_attr(c, QUEUE_ATTR_CLIENT_ADDRESS, "192.0.2.7");
		cleanup_attr(c, QUEUE_ATTR_HELO_NAME, "client.example.org");
		cleanup_attr(c, QUEUE_ATTR_PROTOCOL, "ESMTP");
	}
	strv_t list = STRV_INIT;
	const char *err;
	assert_int_equal(strv_split_list(&list, rcpts, &err), 0);
	for (size_t i = 0; i < list.n; i++)
		cleanup_rcpt(c, list.v[i], NULL, 0);
	strv_free(&list);
	return c;
}

static void ct_lines(struct cleanup *c, const char *content)
{
	const char *p = content;
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		cleanup_line(c, p, len, false);
		p += len + (nl != NULL);
	}
}

/* Read the committed file of t->id in queue back. */
static void ct_read(struct ct *t, enum queue_name queue)
{
	str_t error;
	char buf[4096];
	uint64_t pos = 0;
	ssize_t n;
	str_init(&error);
	if (queue_file_open(t->q->qd, queue, t->id, 0, &t->f, &error) != QUEUE_FILE_OK)
		fail_msg("open %s: %s", t->id, str_c(&error));
	str_reset(&t->content);
	while ((n = queue_file_read_content(t->f, pos, buf, sizeof(buf), &error)) > 0) {
		str_append_n(&t->content, buf, (size_t)n);
		pos += (uint64_t)n;
	}
	assert_int_equal(n, 0);
	const struct queue_envelope *env = queue_file_envelope(t->f);
	for (size_t i = 0; i < env->rcpt_count; i++) {
		struct queue_rcpt r;
		queue_rcpt_init(&r);
		assert_int_equal(queue_file_read_rcpt(t->f, i, &r, &error), QUEUE_FILE_OK);
		strv_add(&t->rcpts, str_c(&r.address));
		queue_rcpt_free(&r);
	}
	str_free(&error);
}

static void ct_send(struct ct *t, unsigned flags, const char *sender, const char *rcpts,
                    const char *content)
{
	struct cleanup *c = ct_begin(t, flags, sender, rcpts);
	ct_lines(c, content);
	cleanup_finish(&c, &t->res);
	assert_null(c);
}

/* Number of files (any name) in a queue directory. */
static size_t ct_count(struct ct *t, const char *queue)
{
	strv_t files = STRV_INIT;
	char *dir = xasprintf("%s/%s", t->q->root, queue);
	qtest_list_files(dir, "", &files);
	size_t n = files.n;
	strv_free(&files);
	free(dir);
	return n;
}

static void assert_queued(struct ct *t)
{
	char *want = xasprintf("250 2.0.0 Ok: queued as %s", t->id);
	assert_int_equal(t->res.status, CLEANUP_QUEUED);
	assert_string_equal(str_c(&t->res.reply), want);
	free(want);
}

static void assert_log(struct ct *t, const char *line)
{
	if (test_log_find(&t->log, line) == NULL) {
		for (size_t i = 0; i < t->log.lines.n; i++)
			print_message("log: %s\n", t->log.lines.v[i]);
		fail_msg("no log line containing: %s", line);
	}
}

static void test_plain(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "");
	struct cleanup *c = ct_begin(t, 0, "alice@example.org", "bob@example.com");
	cleanup_prepend_header(c, "Received: from client.example.org");
	ct_lines(c, "From: alice@example.org\nSubject: hi\nMessage-ID: <m1@example.org>\n\nbody\n.."
	            "dot\n");
	cleanup_finish(&c, &t->res);
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(str_c(&t->content),
	                    "Received: from client.example.org\nFrom: alice@example.org\nSubject: "
	                    "hi\nMessage-ID: <m1@example.org>\n\nbody\n..dot\n");
	assert_string_equal(queue_file_envelope(t->f)->sender, "alice@example.org");
	assert_int_equal(t->rcpts.n, 1);
	assert_string_equal(t->rcpts.v[0], "bob@example.com");
	assert_string_equal(queue_file_attr(t->f, QUEUE_ATTR_CLIENT_ADDRESS), "192.0.2.7");
	assert_int_equal(t->res.size, t->content.len);
	char *line = xasprintf("%s: message-id=<m1@example.org>", t->id);
	assert_log(t, line);
	free(line);
	/* no missing headers added for a remote client */
	assert_null(strstr(str_c(&t->content), "Date:"));
	ct_destroy(&t);
}

static void test_header_reject(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *hc = ct_table(t, "regexp", "hc", "/^Subject: .*cheap pills/ REJECT no pills here\n");
	char *cf = xasprintf("header_checks = %s\n", hc);
	ct_config(t, cf);
	ct_send(t, 0, "s@example.org", "r@example.com",
	        "Subject: buy cheap pills now\nFrom: x@example.org\n\nbody\n");
	assert_int_equal(t->res.status, CLEANUP_REJECTED);
	assert_string_equal(str_c(&t->res.reply), "550 5.7.1 no pills here");
	char *line = xasprintf("%s: reject: header Subject: buy cheap pills now from "
	                       "client.example.org[192.0.2.7]; from=<s@example.org> "
	                       "to=<r@example.com> proto=ESMTP helo=<client.example.org>: 5.7.1 "
	                       "no pills here",
	                       t->id);
	assert_log(t, line);
	assert_int_equal(ct_count(t, "incoming"), 0);
	free(line);
	free(hc);
	free(cf);
	ct_destroy(&t);
}

static void test_reject_default_and_nnn(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *bc = ct_table(t, "pcre", "bc",
	                    "/^plain reject/ REJECT\n/^temp/ 450 try later\n/^dsn/ REJECT 5.7.9 "
	                    "custom\n/^defer/ REJECT 4.7.0 not now\n");
	char *cf = xasprintf("body_checks = %s\n", bc);
	ct_config(t, cf);
	ct_send(t, 0, "s@example.org", "r@example.com", "Subject: x\n\nplain reject me\n");
	assert_string_equal(str_c(&t->res.reply), "550 5.7.1 message content rejected");
	cleanup_result_free(&t->res);
	cleanup_result_init(&t->res);
	ct_send(t, 0, "s@example.org", "r@example.com", "Subject: x\n\ntemp\n");
	assert_int_equal(t->res.status, CLEANUP_TEMPFAIL);
	assert_string_equal(str_c(&t->res.reply), "450 4.7.1 try later");
	cleanup_result_free(&t->res);
	cleanup_result_init(&t->res);
	ct_send(t, 0, "s@example.org", "r@example.com", "Subject: x\n\ndsn\n");
	assert_string_equal(str_c(&t->res.reply), "550 5.7.9 custom");
	char *line = xasprintf("%s: reject: body dsn from client.example.org[192.0.2.7];", t->id);
	assert_log(t, line);
	cleanup_result_free(&t->res);
	cleanup_result_init(&t->res);
	ct_send(t, 0, "s@example.org", "r@example.com", "Subject: x\n\ndefer\n");
	assert_int_equal(t->res.status, CLEANUP_TEMPFAIL);
	assert_string_equal(str_c(&t->res.reply), "451 4.7.0 not now");
	assert_int_equal(ct_count(t, "incoming"), 0);
	free(line);
	free(bc);
	free(cf);
	ct_destroy(&t);
}

static void test_header_actions(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *hc = ct_table(t, "regexp", "hc",
	                    "/^X-Ignore:/ IGNORE\n"
	                    "/^X-Replace: (.*)/ REPLACE X-Replaced: $1\n"
	                    "/^X-Prepend:/ PREPEND X-Before: yes\n"
	                    "/^X-Warn:/ WARN watch this\n"
	                    "/^X-Dunno:/ DUNNO\n"
	                    "/^X-Bad-Prepend:/ PREPEND not a header\n"
	                    "/^X-Filter:/ FILTER smtp:[127.0.0.1]:10025\n");
	char *cf = xasprintf("header_checks = %s\n", hc);
	ct_config(t, cf);
	ct_send(t, 0, "s@example.org", "r@example.com",
	        "X-Ignore: gone\nX-Replace: old\nX-Prepend: p\nX-Warn: w\nX-Dunno: d\n"
	        "X-Bad-Prepend: b\nX-Filter: f\n\nbody\n");
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(str_c(&t->content),
	                    "X-Replaced: old\nX-Before: yes\nX-Prepend: p\nX-Warn: w\nX-Dunno: "
	                    "d\nX-Bad-Prepend: b\nX-Filter: f\n\nbody\n");
	assert_string_equal(queue_file_attr(t->f, "content_filter"), "smtp:[127.0.0.1]:10025");
	char *w = xasprintf("%s: warning: header X-Warn: w from client.example.org[192.0.2.7]; "
	                    "from=<s@example.org> to=<r@example.com> proto=ESMTP "
	                    "helo=<client.example.org>: watch this",
	                    t->id);
	assert_log(t, w);
	char *r = xasprintf("%s: replace: header X-Replace: old from", t->id);
	assert_log(t, r);
	char *p = xasprintf("%s: prepend: header X-Prepend: p from", t->id);
	assert_log(t, p);
	char *f = xasprintf("%s: filter: header X-Filter: f from", t->id);
	assert_log(t, f);
	assert_log(t, "bad PREPEND header text \"not a header\" in header_checks map -- need "
	              "\"headername: headervalue\"");
	free(w);
	free(r);
	free(p);
	free(f);
	free(hc);
	free(cf);
	ct_destroy(&t);
}

static void test_body_actions(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *bc = ct_table(t, "regexp", "bc",
	                    "/^drop me/ IGNORE\n/^old line/ REPLACE new line\n/^before/ PREPEND "
	                    "inserted\n/^beyond/ REJECT\n");
	char *cf = xasprintf("body_checks = %s\nbody_checks_size_limit = 60\n", bc);
	ct_config(t, cf);
	/* "beyond" comes after 60 bytes of body: not inspected. */
	ct_send(t, 0, "s@example.org", "r@example.com",
	        "Subject: b\n\nkeep\ndrop me\nold line\nbefore\n"
	        "0123456789012345678901234567890123456789\nbeyond\n");
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(str_c(&t->content),
	                    "Subject: b\n\nkeep\nnew line\ninserted\nbefore\n"
	                    "0123456789012345678901234567890123456789\nbeyond\n");
	free(bc);
	free(cf);
	ct_destroy(&t);
}

static void test_hold_discard_redirect(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *hc = ct_table(
	        t, "regexp", "hc",
	        "/^X-Hold:/ HOLD held for review\n/^X-Discard:/ DISCARD gone\n"
	        "/^X-Redirect:/ REDIRECT trap@example.com\n/^X-Bcc:/ BCC copy@example.com\n");
	char *cf = xasprintf("header_checks = %s\n", hc);
	ct_config(t, cf);

	ct_send(t, 0, "s@example.org", "r@example.com", "X-Hold: 1\n\nbody\n");
	assert_queued(t);
	assert_int_equal(t->res.queue, QUEUE_HOLD);
	assert_int_equal(ct_count(t, "hold"), 1);
	assert_int_equal(ct_count(t, "incoming"), 0);
	char *line = xasprintf("%s: hold: header X-Hold: 1 from client.example.org[192.0.2.7]; "
	                       "from=<s@example.org> to=<r@example.com> proto=ESMTP "
	                       "helo=<client.example.org>: held for review",
	                       t->id);
	assert_log(t, line);
	free(line);

	/* the held header is the last line of a message without body */
	cleanup_result_free(&t->res);
	cleanup_result_init(&t->res);
	ct_send(t, 0, "s@example.org", "r@example.com", "Subject: x\nX-Hold: 2");
	assert_queued(t);
	assert_int_equal(t->res.queue, QUEUE_HOLD);
	assert_int_equal(ct_count(t, "hold"), 2);

	cleanup_result_free(&t->res);
	cleanup_result_init(&t->res);
	ct_send(t, 0, "s@example.org", "r@example.com", "X-Discard: 1\n\nbody\n");
	assert_int_equal(t->res.status, CLEANUP_DISCARDED);
	line = xasprintf("250 2.0.0 Ok: queued as %s", t->id);
	assert_string_equal(str_c(&t->res.reply), line);
	free(line);
	assert_int_equal(ct_count(t, "incoming"), 0);
	line = xasprintf("%s: discard: header X-Discard: 1 from", t->id);
	assert_log(t, line);
	free(line);

	cleanup_result_free(&t->res);
	cleanup_result_init(&t->res);
	ct_send(t, 0, "s@example.org", "r1@example.com, r2@example.com",
	        "X-Redirect: 1\nX-Bcc: 1\n\nbody\n");
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_int_equal(t->rcpts.n, 1);
	assert_string_equal(t->rcpts.v[0], "trap@example.com");
	queue_file_close(&t->f);
	strv_free(&t->rcpts);

	/* BCC alone adds a recipient */
	cleanup_result_free(&t->res);
	cleanup_result_init(&t->res);
	ct_send(t, 0, "s@example.org", "r1@example.com", "X-Bcc: 1\n\nbody\n");
	ct_read(t, QUEUE_INCOMING);
	assert_int_equal(t->rcpts.n, 2);
	assert_string_equal(t->rcpts.v[1], "copy@example.com");
	free(hc);
	free(cf);
	ct_destroy(&t);
}

static void test_envelope_actions(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "");
	struct cleanup *c = ct_begin(t, 0, "s@example.org", "r@example.com");
	cleanup_hold(c, "access HOLD");
	cleanup_filter(c, "scan:[127.0.0.1]:10024");
	ct_lines(c, "Subject: x\n\nbody\n");
	cleanup_finish(&c, &t->res);
	assert_queued(t);
	ct_read(t, QUEUE_HOLD);
	assert_string_equal(queue_file_attr(t->f, "content_filter"), "scan:[127.0.0.1]:10024");
	queue_file_close(&t->f);

	c = ct_begin(t, 0, "s@example.org", "r@example.com");
	cleanup_discard(c, "access DISCARD");
	ct_lines(c, "Subject: x\n\nbody\n");
	cleanup_finish(&c, &t->res);
	assert_int_equal(t->res.status, CLEANUP_DISCARDED);
	assert_int_equal(ct_count(t, "incoming"), 0);

	/* abort leaves nothing */
	c = ct_begin(t, 0, "s@example.org", "r@example.com");
	ct_lines(c, "Subject: x\n\nbody\n");
	cleanup_abort(&c);
	assert_null(c);
	assert_int_equal(ct_count(t, "incoming"), 0);
	ct_destroy(&t);
}

static const char mime_message[] = "X-Where: primary\n"
                                   "MIME-Version: 1.0\n"
                                   "Content-Type: multipart/mixed;\n"
                                   "\tboundary=\"outer\"\n"
                                   "\n"
                                   "preamble X-Where: not a header\n"
                                   "--outer\n"
                                   "Content-Type: text/plain\n"
                                   "X-Where: part\n"
                                   "\n"
                                   "part body\n"
                                   "--outer\n"
                                   "Content-Type: message/rfc822\n"
                                   "\n"
                                   "X-Where: nested\n"
                                   "Content-Type: multipart/alternative; boundary=inner\n"
                                   "\n"
                                   "--inner\n"
                                   "X-Where: innerpart\n"
                                   "\n"
                                   "deep\n"
                                   "--inner--\n"
                                   "--outer--\n"
                                   "X-Where: epilogue\n";

static void test_mime_classes(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *hc = ct_table(t, "regexp", "hc", "/^X-Where: (.*)/ WARN header_checks $1\n");
	char *mc = ct_table(t, "regexp", "mc",
	                    "/^X-Where: (.*)/ WARN mime_header_checks $1\n"
	                    "/^Content-Type: (.*)/ WARN mime ct $1\n");
	char *nc = ct_table(t, "regexp", "nc", "/^X-Where: (.*)/ WARN nested_header_checks $1\n");
	char *bc = ct_table(t, "regexp", "bc",
	                    "/X-Where: (.*)/ WARN body $1\n/^--inner--$/ WARN boundary seen\n");
	char *cf = xasprintf("header_checks = %s\nmime_header_checks = %s\nnested_header_checks = "
	                     "%s\nbody_checks = %s\n",
	                     hc, mc, nc, bc);
	ct_config(t, cf);
	ct_send(t, 0, "s@example.org", "r@example.com", mime_message);
	assert_queued(t);
	assert_log(t, "header X-Where: primary from client.example.org[192.0.2.7]; "
	              "from=<s@example.org> to=<r@example.com> proto=ESMTP "
	              "helo=<client.example.org>: header_checks primary");
	assert_log(t, ": header_checks primary");
	assert_log(t, ": mime_header_checks part");
	assert_log(t, ": nested_header_checks nested");
	assert_log(t, ": mime_header_checks innerpart");
	assert_log(t, ": body not a header");
	assert_log(t, ": body epilogue");
	assert_log(t, "body --inner-- from");
	assert_null(test_log_find(&t->log, "body part"));
	/* the folded primary Content-Type is a MIME header */
	assert_log(t, "mime ct multipart/mixed;??boundary=\"outer\"");
	assert_null(test_log_find(&t->log, ": header_checks part"));
	assert_null(test_log_find(&t->log, ": header_checks nested"));
	assert_null(test_log_find(&t->log, "body part"));
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(str_c(&t->content), mime_message);
	free(hc);
	free(mc);
	free(nc);
	free(bc);
	free(cf);
	ct_destroy(&t);
}

static void test_mime_disabled(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *hc = ct_table(t, "regexp", "hc", "/^X-Where: (.*)/ WARN header_checks $1\n");
	char *cf = xasprintf("header_checks = %s\ndisable_mime_input_processing = yes\n", hc);
	ct_config(t, cf);
	ct_send(t, 0, "s@example.org", "r@example.com", mime_message);
	assert_queued(t);
	assert_log(t, ": header_checks primary");
	/* part headers are just body lines now */
	assert_null(test_log_find(&t->log, ": header_checks part"));
	free(hc);
	free(cf);
	ct_destroy(&t);
}

static void test_folding_and_limits(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *hc = ct_table(t, "pcre", "hc", "/^Subject: first\\n\\s+second$/ WARN folded match\n");
	char *bc = ct_table(t, "regexp", "bc", "/^dropped/ IGNORE\n");
	char *cf =
	        xasprintf("header_checks = %s\nbody_checks = %s\nheader_size_limit = 40\n", hc, bc);
	ct_config(t, cf);
	struct cleanup *c = ct_begin(t, 0, "s@example.org", "r@example.com");
	ct_lines(c, "Subject: first\n  second\nX-Long: 0123456789\n 0123456789\n 0123456789\n "
	            "0123456789\n");
	/* a header line in pieces */
	cleanup_line(c, "X-Pieces: ab", 12, true);
	cleanup_line(c, "cd", 2, true);
	cleanup_line(c, "ef", 2, false);
	cleanup_line(c, "", 0, false);
	/* a body line in pieces */
	cleanup_line(c, "body-", 5, true);
	cleanup_line(c, "line", 4, false);
	/* body_checks drop the last piece: the stored line still ends */
	cleanup_line(c, "kept-", 5, true);
	cleanup_line(c, "dropped", 7, false);
	/* ... and drop a whole line */
	cleanup_line(c, "dropped too", 11, false);
	cleanup_line(c, "last", 4, false);
	/* a non-header line ends headers: the blank line is inserted */
	cleanup_finish(&c, &t->res);
	assert_queued(t);
	assert_log(t, "header Subject: first?  second from client.example.org[192.0.2.7]; "
	              "from=<s@example.org> to=<r@example.com> proto=ESMTP "
	              "helo=<client.example.org>: folded match");
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(str_c(&t->content),
	                    "Subject: first\n  second\n"
	                    "X-Long: 0123456789\n 0123456789\n 01234567\n" /* 40 bytes kept */
	                    "X-Pieces: abcdef\n\nbody-line\nkept-\nlast\n");
	free(bc);
	free(hc);
	free(cf);
	ct_destroy(&t);
}

static void test_body_without_blank_line(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "");
	ct_send(t, 0, "s@example.org", "r@example.com", "Subject : x\nnot a header line\nmore\n");
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(str_c(&t->content), "Subject: x\n\nnot a header line\nmore\n");
	queue_file_close(&t->f);
	/* part headers ended by garbage get no inserted line */
	static const char part[] = "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
	                           "Content-Type: text/plain\ngarbage\n--b--\n";
	ct_send(t, 0, "s@example.org", "r@example.com", part);
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(str_c(&t->content), part);
	ct_destroy(&t);
}

static void test_header_count_and_nesting_limits(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *mc = ct_table(t, "regexp", "mc", "/^X-Where: (.*)/ WARN mime_header_checks $1\n");
	char *cf = xasprintf("mime_header_checks = %s\nmime_nesting_limit = 1\n", mc);
	ct_config(t, cf);
	/* more than 1000 headers: the rest of the block is body */
	struct cleanup *c = ct_begin(t, 0, "s@example.org", "r@example.com");
	for (int i = 0; i < 1001; i++)
		cleanup_line(c, "X-Many: 1", 9, false);
	cleanup_line(c, "X-Last: 1", 9, false);
	cleanup_finish(&c, &t->res);
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_non_null(strstr(str_c(&t->content), "X-Many: 1\n\nX-Many: 1\nX-Last: 1\n"));
	queue_file_close(&t->f);
	/* one level of MIME is tracked, the second is not */
	ct_send(t, 0, "s@example.org", "r@example.com",
	        "Content-Type: multipart/mixed; boundary=a\n\n--a\n"
	        "Content-Type: multipart/mixed; boundary=b\nX-Where: level1\n\n--b\n"
	        "X-Where: level2\n\nx\n--b--\n--a--\n");
	assert_queued(t);
	assert_log(t, "mime_header_checks level1");
	assert_null(test_log_find(&t->log, "mime_header_checks level2"));
	free(mc);
	free(cf);
	ct_destroy(&t);
}

static void test_missing_headers_local(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "myorigin = example.com\nundisclosed_recipients_header = To: "
	             "undisclosed-recipients:;\n");
	struct cleanup *c = ct_begin(t, CLEANUP_F_LOCAL, "joe@example.com", "r@example.com");
	cleanup_attr(c, "full_name", "Joe Q. User");
	ct_lines(c, "Subject: cron\n\nbody\n");
	cleanup_finish(&c, &t->res);
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	const char *s = str_c(&t->content);
	char *mid = xasprintf("Message-ID: <");
	assert_non_null(strstr(s, mid));
	char *suffix = xasprintf(".%s@mx.example.com>\n", t->id);
	assert_non_null(strstr(s, suffix));
	assert_non_null(strstr(s, "\nDate: "));
	assert_non_null(strstr(s, "\nFrom: \"Joe Q. User\" <joe@example.com>\n"));
	assert_non_null(strstr(s, "\nTo: undisclosed-recipients:;\n\nbody\n"));
	assert_true(strncmp(s, "Subject: cron\nMessage-ID: <", 27) == 0);
	char *logl = xasprintf("%s: message-id=<", t->id);
	assert_log(t, logl);
	free(logl);
	free(mid);
	free(suffix);
	ct_destroy(&t);
}

static void test_missing_resent_headers(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "");
	ct_send(t, CLEANUP_F_LOCAL, "joe@example.com", "r@example.com",
	        "From: a@example.org\nDate: x\nMessage-ID: <orig@example.org>\n"
	        "Resent-To: r@example.com\n\nbody\n");
	ct_read(t, QUEUE_INCOMING);
	const char *s = str_c(&t->content);
	assert_non_null(strstr(s, "\nResent-Message-ID: <"));
	assert_non_null(strstr(s, "\nResent-Date: "));
	assert_non_null(strstr(s, "\nResent-From: joe@example.com\n\nbody\n"));
	assert_null(strstr(s, "\nMessage-ID: <2"));
	char *logl = xasprintf("%s: message-id=<orig@example.org>", t->id);
	assert_log(t, logl);
	free(logl);
	logl = xasprintf("%s: resent-message-id=<", t->id);
	assert_log(t, logl);
	free(logl);
	ct_destroy(&t);
}

static void test_bad_actions(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *hc = ct_table(t, "regexp", "hc",
	                    "/^X-A:/ REDIRECT nobody\n/^X-B:/ FILTER nocolon\n/^X-C:/ FROB\n"
	                    "/^X-D:/ REPLACE\n");
	char *cf = xasprintf("header_checks = %s\n", hc);
	ct_config(t, cf);
	ct_send(t, 0, "s@example.org", "r@example.com", "X-A: 1\nX-B: 1\nX-C: 1\nX-D: 1\n\nb\n");
	assert_queued(t);
	assert_log(t, "bad REDIRECT target \"nobody\" in header_checks map -- need user@domain");
	assert_log(t, "bad FILTER command nocolon in header_checks -- need transport:destination");
	assert_log(t, "unknown command in header_checks map: FROB");
	assert_log(t, "REPLACE action without text in header_checks map");
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(str_c(&t->content), "X-A: 1\nX-B: 1\nX-C: 1\nX-D: 1\n\nb\n");
	assert_string_equal(t->rcpts.v[0], "r@example.com");
	assert_null(queue_file_attr(t->f, "content_filter"));
	free(hc);
	free(cf);
	ct_destroy(&t);
}

static void test_no_message_id_remote(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "");
	ct_send(t, 0, "s@example.org", "r@example.com", "Subject: x\n\nbody\n");
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(str_c(&t->content), "Subject: x\n\nbody\n");
	char *logl = xasprintf("%s: message-id=<>", t->id);
	assert_log(t, logl);
	free(logl);
	ct_destroy(&t);
}

static void test_always_add(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "always_add_missing_headers = yes\n");
	ct_send(t, 0, "", "r@example.com", "Subject: x\n\nbody\n");
	ct_read(t, QUEUE_INCOMING);
	assert_non_null(strstr(str_c(&t->content), "\nFrom: MAILER-DAEMON\n"));
	assert_non_null(strstr(str_c(&t->content), "\nDate: "));
	ct_destroy(&t);
}

static void test_local_rewrite(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "myorigin = origin.example\nappend_dot_mydomain = yes\n");
	ct_send(t, CLEANUP_F_LOCAL, "joe@origin.example", "r@example.com",
	        "From: joe\nTo: \"Ann\" <ann@host>, bob, \"quoted local\"@x.example\n"
	        "Cc: undisclosed-recipients:;\nReply-To: weird <<broken\nSubject: joe\n\nbody\n");
	ct_read(t, QUEUE_INCOMING);
	const char *s = str_c(&t->content);
	assert_non_null(strstr(s, "From: joe@origin.example\n"));
	assert_non_null(strstr(s,
	                       "To: \"Ann\" <ann@host.example.com>, bob@origin.example, \"quoted "
	                       "local\"@x.example\n"));
	assert_non_null(strstr(s, "Cc: undisclosed-recipients:;\n"));
	assert_non_null(strstr(s, "Reply-To: weird <<broken\n"));
	assert_non_null(strstr(s, "Subject: joe\n"));
	ct_destroy(&t);
}

static void test_extract_recipients(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "myorigin = example.com\n");
	ct_send(t, CLEANUP_F_LOCAL | CLEANUP_F_EXTRACT_RCPT, "joe@example.com", "cmd@example.com",
	        "To: a@example.net, \"B\" <b@example.net>\n"
	        "Cc: cmd@example.com,\n c (comment)\n"
	        "Bcc: secret@example.net\n"
	        "Subject: t\n\nbody\n");
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_int_equal(t->rcpts.n, 5);
	assert_string_equal(t->rcpts.v[0], "cmd@example.com");
	assert_string_equal(t->rcpts.v[1], "a@example.net");
	assert_string_equal(t->rcpts.v[2], "b@example.net");
	assert_string_equal(t->rcpts.v[3], "c@example.com");
	assert_string_equal(t->rcpts.v[4], "secret@example.net");
	assert_null(strstr(str_c(&t->content), "Bcc"));
	assert_null(strstr(str_c(&t->content), "secret"));
	queue_file_close(&t->f);
	strv_free(&t->rcpts);

	/* Resent-* headers take precedence */
	ct_send(t, CLEANUP_F_LOCAL | CLEANUP_F_EXTRACT_RCPT, "joe@example.com", "",
	        "To: old@example.net\nResent-To: new@example.net\nResent-Bcc: "
	        "hidden@example.net\n\nbody\n");
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_int_equal(t->rcpts.n, 2);
	assert_string_equal(t->rcpts.v[0], "new@example.net");
	assert_string_equal(t->rcpts.v[1], "hidden@example.net");
	assert_null(strstr(str_c(&t->content), "hidden"));
	ct_destroy(&t);
}

static void test_no_recipients(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "");
	ct_send(t, CLEANUP_F_LOCAL | CLEANUP_F_EXTRACT_RCPT, "joe@example.com", "",
	        "Subject: none\n\nbody\n");
	assert_int_equal(t->res.status, CLEANUP_REJECTED);
	assert_string_equal(str_c(&t->res.reply), "550 5.1.0 no recipients specified");
	assert_int_equal(ct_count(t, "incoming"), 0);
	ct_destroy(&t);
}

static void test_table_failure(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *hc = ct_table(t, "regexp", "hc", "/^Subject: (a+)+$/ REJECT\n");
	char *cf = xasprintf("header_checks = %s\n", hc);
	ct_config(t, cf);
	char subject[80];
	memset(subject, 'a', sizeof(subject));
	memcpy(subject, "Subject: ", 9);
	subject[sizeof(subject) - 2] = 'b';
	subject[sizeof(subject) - 1] = '\0';
	struct cleanup *c = ct_begin(t, 0, "s@example.org", "r@example.com");
	cleanup_line(c, subject, strlen(subject), false);
	ct_lines(c, "\nbody\n");
	cleanup_finish(&c, &t->res);
	assert_int_equal(t->res.status, CLEANUP_TEMPFAIL);
	assert_string_equal(str_c(&t->res.reply), "451 4.3.0 Error: queue file write error");
	assert_log(t, "header_checks map lookup problem -- message not accepted, try again later");
	assert_int_equal(ct_count(t, "incoming"), 0);
	free(hc);
	free(cf);
	ct_destroy(&t);
}

static void test_size_limit(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "message_size_limit = 100\n");
	ct_send(t, 0, "s@example.org", "r@example.com",
	        "Subject: x\n\n0123456789012345678901234567890123456789\n"
	        "0123456789012345678901234567890123456789\n"
	        "0123456789012345678901234567890123456789\n");
	assert_int_equal(t->res.status, CLEANUP_REJECTED);
	assert_string_equal(str_c(&t->res.reply), "552 5.3.4 Message size exceeds fixed limit");
	assert_int_equal(ct_count(t, "incoming"), 0);
	ct_destroy(&t);
}

static void test_hops(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "hopcount_limit = 3\n");
	ct_send(t, 0, "s@example.org", "r@example.com", "Received: a\nReceived: b\n\nbody\n");
	assert_queued(t);
	cleanup_result_free(&t->res);
	cleanup_result_init(&t->res);
	ct_send(t, 0, "s@example.org", "r@example.com",
	        "Received: a\nReceived: b\nReceived: c\n\nbody\n");
	assert_int_equal(t->res.status, CLEANUP_REJECTED);
	assert_string_equal(str_c(&t->res.reply), "554 5.4.0 Error: too many hops");
	ct_destroy(&t);
}

static void test_disk_full(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	ct_config(t, "");
	struct rlimit old, small = {.rlim_cur = 200000, .rlim_max = RLIM_INFINITY};
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small.rlim_max = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	struct cleanup *c = ct_begin(t, 0, "s@example.org", "r@example.com");
	ct_lines(c, "Subject: big\n\n");
	char line[1001];
	memset(line, 'x', 1000);
	line[1000] = '\0';
	for (int i = 0; i < 400; i++)
		cleanup_line(c, line, 1000, false);
	cleanup_finish(&c, &t->res);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_handler);
	assert_int_equal(t->res.status, CLEANUP_TEMPFAIL);
	assert_string_equal(str_c(&t->res.reply), "452 4.3.1 Insufficient system storage");
	assert_int_equal(ct_count(t, "incoming"), 0);
	ct_destroy(&t);
}

static void test_settings_errors(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	strv_t errors = STRV_INIT;
	str_t error;
	str_init(&error);
	const char *text = "myhostname = mx.example.com\nbody_checks = regexp:/nonexistent/file\n";
	assert_int_equal(config_parse_text(text, strlen(text), "main.cf", t->dir, &t->cfg, &errors),
	                 0);
	assert_int_equal(cleanup_settings_new(t->cfg, t->dir, &t->set, &error), -1);
	assert_null(t->set);
	assert_non_null(strstr(str_c(&error), "body_checks"));
	str_free(&error);
	strv_free(&errors);
	ct_destroy(&t);
}

/* content_filter and receive_override_options: the filter recorded for
 * qmgr (a FILTER action replaces it), no_header_body_checks switching the
 * checks off, no_address_mappings recorded, an unknown option refused. */
static void test_content_filter_and_overrides(void **state)
{
	(void)state;
	struct ct *t = ct_new();
	char *hc = ct_table(t, "regexp", "hc",
	                    "/^Subject: reject me/ REJECT no\n"
	                    "/^Subject: elsewhere/ FILTER other:[127.0.0.1]:10026\n");
	char *cf = xasprintf("content_filter = smtp-amavis:[127.0.0.1]:10024\nheader_checks = %s\n",
	                     hc);
	ct_config(t, cf);
	assert_int_equal(cleanup_settings_overrides(t->set), 0);
	ct_send(t, 0, "a@example.org", "b@example.com", "Subject: plain\n\nbody\n");
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(queue_file_attr(t->f, QUEUE_ATTR_CONTENT_FILTER),
	                    "smtp-amavis:[127.0.0.1]:10024");
	assert_null(queue_file_attr(t->f, QUEUE_ATTR_NO_ADDRESS_MAPPINGS));
	queue_file_close(&t->f);
	ct_send(t, 0, "a@example.org", "b@example.com", "Subject: elsewhere\n\nbody\n");
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_string_equal(queue_file_attr(t->f, QUEUE_ATTR_CONTENT_FILTER),
	                    "other:[127.0.0.1]:10026");
	queue_file_close(&t->f);
	cleanup_settings_destroy(&t->set);
	config_destroy(&t->cfg);
	free(cf);

	/* The re-injection service: no filter, no checks, no mappings. */
	cf = xasprintf("content_filter =\nheader_checks = %s\nreceive_override_options = "
	               "no_header_body_checks, no_address_mappings no_milters\n",
	               hc);
	ct_config(t, cf);
	assert_int_equal(cleanup_settings_overrides(t->set), CLEANUP_NO_HEADER_BODY_CHECKS |
	                                                             CLEANUP_NO_ADDRESS_MAPPINGS |
	                                                             CLEANUP_NO_MILTERS);
	assert_log(t, "receive_override_options: no_milters: nothing to disable");
	ct_send(t, 0, "a@example.org", "b@example.com", "Subject: reject me\n\nbody\n");
	assert_queued(t);
	ct_read(t, QUEUE_INCOMING);
	assert_null(queue_file_attr(t->f, QUEUE_ATTR_CONTENT_FILTER));
	assert_string_equal(queue_file_attr(t->f, QUEUE_ATTR_NO_ADDRESS_MAPPINGS), "yes");
	queue_file_close(&t->f);
	cleanup_settings_destroy(&t->set);
	config_destroy(&t->cfg);
	free(cf);

	/* A name Postfix does not know is a configuration error. */
	{
		strv_t errors = STRV_INIT;
		str_t error;
		const char *text = "receive_override_options = no_address_mapping\n";

		str_init(&error);
		assert_int_equal(
		        config_parse_text(text, strlen(text), "main.cf", t->dir, &t->cfg, &errors),
		        0);
		assert_int_equal(cleanup_settings_new(t->cfg, t->dir, &t->set, &error), -1);
		assert_non_null(strstr(str_c(&error), "unknown option \"no_address_mapping\""));
		str_free(&error);
		strv_free(&errors);
	}
	free(hc);
	ct_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_plain),
	        cmocka_unit_test(test_header_reject),
	        cmocka_unit_test(test_reject_default_and_nnn),
	        cmocka_unit_test(test_header_actions),
	        cmocka_unit_test(test_body_actions),
	        cmocka_unit_test(test_hold_discard_redirect),
	        cmocka_unit_test(test_envelope_actions),
	        cmocka_unit_test(test_mime_classes),
	        cmocka_unit_test(test_mime_disabled),
	        cmocka_unit_test(test_folding_and_limits),
	        cmocka_unit_test(test_body_without_blank_line),
	        cmocka_unit_test(test_header_count_and_nesting_limits),
	        cmocka_unit_test(test_missing_headers_local),
	        cmocka_unit_test(test_missing_resent_headers),
	        cmocka_unit_test(test_bad_actions),
	        cmocka_unit_test(test_no_message_id_remote),
	        cmocka_unit_test(test_always_add),
	        cmocka_unit_test(test_local_rewrite),
	        cmocka_unit_test(test_extract_recipients),
	        cmocka_unit_test(test_no_recipients),
	        cmocka_unit_test(test_table_failure),
	        cmocka_unit_test(test_size_limit),
	        cmocka_unit_test(test_hops),
	        cmocka_unit_test(test_disk_full),
	        cmocka_unit_test(test_settings_errors),
	        cmocka_unit_test(test_content_filter_and_overrides),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
