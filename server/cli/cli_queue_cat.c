/* cli_queue_cat.c - `postern queue cat [-e] [-h] [-b] ID` (postcat -q).
 *
 * Finds ID in any message queue (incoming, active, deferred, hold,
 * corrupt) and prints it in postcat's layout, adapted to postern's
 * records:
 *
 *   *** ENVELOPE RECORDS deferred/ID ***      (-e)
 *   message_size: CONTENT_LENGTH FILE_SIZE RECIPIENTS
 *   message_arrival_time: Tue Nov 24 12:00:00 2026
 *   sender: ADDRESS
 *   dsn_envid: / dsn_ret:                       when given
 *   named_attribute: NAME=VALUE                 client attributes
 *   dsn_orig_rcpt: / dsn_notify:                per recipient, when given
 *   recipient: ADDRESS                          not yet done, or
 *   done_recipient: ADDRESS                     delivered or bounced
 *   recipient_status: STATE attempts=N next_retry=TIME dsn=X.Y.Z
 *   *** MESSAGE CONTENTS deferred/ID ***      (-h and/or -b)
 *   the header lines (-h) and the body (-b), as stored
 *   *** HEADER EXTRACTED deferred/ID ***      (-e)
 *   *** MESSAGE FILE END deferred/ID ***
 *
 * Without -e, -h, -b everything is printed. recipient_status is postern's
 * own (Postfix keeps no per-recipient retry state in the file). HEADER
 * EXTRACTED is empty: postern keeps no records after the content.
 * Content bytes below 0x20 other than tab are shown as '?', so a message
 * cannot drive the administrator's terminal.
 *
 * Exit status: 0, 1 when ID is not in the queue or not a valid ID, 64
 * usage, 75 when the file cannot be read or is corrupt (reported).
 *
 * SECURITY: the ID is checked with queue_id_valid() before it names a
 * file; the file is read through the validating reader (queue_file.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/str.h"
#include "cli.h"
#include "cli_queue.h"
#include "queue/queue_file.h"
#include "queue/queue_id.h"

#define CAT_ENVELOPE (1u << 0)
#define CAT_HEADER (1u << 1)
#define CAT_BODY (1u << 2)

static void print_time(const char *label, time_t when)
{
	char buf[64];
	struct tm tm;

	localtime_r(&when, &tm);
	strftime(buf, sizeof(buf), "%a %b %e %H:%M:%S %Y", &tm);
	printf("%s: %s\n", label, buf);
}

static void print_envelope(struct queue_file *f)
{
	const struct queue_envelope *env = queue_file_envelope(f);
	struct queue_rcpt rcpt;
	const char *name, *value;
	size_t pos = 0;
	str_t error, dsn;

	printf("message_size: %llu %llu %zu\n", (unsigned long long)env->content_length,
	       (unsigned long long)env->file_size, env->rcpt_count);
	print_time("message_arrival_time", env->arrival.tv_sec);
	printf("sender: %s\n", env->sender);
	if (env->envid != NULL)
		printf("dsn_envid: %s\n", env->envid);
	if (env->ret != QUEUE_RET_NONE)
		printf("dsn_ret: %s\n", env->ret == QUEUE_RET_FULL ? "FULL" : "HDRS");
	while (queue_file_attr_next(f, &pos, &name, &value))
		printf("named_attribute: %s=%s\n", name, value);
	str_init(&error);
	str_init(&dsn);
	queue_rcpt_init(&rcpt);
	for (size_t i = 0; i < env->rcpt_count; i++) {
		if (queue_file_read_rcpt(f, i, &rcpt, &error) != QUEUE_FILE_OK) {
			log_warning("%s", str_c(&error));
			break;
		}
		if (rcpt.orcpt.len > 0)
			printf("dsn_orig_rcpt: %s\n", str_c(&rcpt.orcpt));
		if (rcpt.notify != 0)
			printf("dsn_notify: %u\n", rcpt.notify);
		printf("%s: %s\n",
		       queue_rcpt_state_final(rcpt.status.state) ? "done_recipient" : "recipient",
		       str_c(&rcpt.address));
		printf("recipient_status: %s attempts=%u", queue_rcpt_state_str(rcpt.status.state),
		       rcpt.status.attempts);
		if (rcpt.status.next_retry != 0)
			printf(" next_retry=%lld", (long long)rcpt.status.next_retry);
		queue_dsn_format(&rcpt.status.dsn, &dsn);
		if (dsn.len > 0)
			printf(" dsn=%s", str_c(&dsn));
		printf("\n");
	}
	queue_rcpt_free(&rcpt);
	str_free(&dsn);
	str_free(&error);
}

/* Print one content line (without its LF/CRLF), made safe. */
static void print_line(const str_t *line)
{
	size_t len = line->len;

	if (len > 0 && line->buf[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line->buf[i];

		putchar((c < 0x20 && c != '\t') || c == 0x7f ? '?' : c);
	}
	putchar('\n');
}

/* The content, line by line: the header lines up to the first empty line
 * (which belongs to neither part), then the body. -1 on a read error. */
static int print_content(struct queue_file *f, unsigned what)
{
	char buf[65536];
	uint64_t pos = 0;
	bool in_header = true;
	str_t line, error;
	int ret = 0;

	str_init(&line);
	str_init(&error);
	for (;;) {
		ssize_t n = queue_file_read_content(f, pos, buf, sizeof(buf), &error);
		if (n < 0) {
			log_error("%s", str_c(&error));
			ret = -1;
			break;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				str_append_n(&line, &buf[i], 1);
				continue;
			}
			if (in_header &&
			    (line.len == 0 || (line.len == 1 && line.buf[0] == '\r'))) {
				in_header = false;
				/* postcat prints the separating empty line
				 * with the whole message only. */
				if ((what & (CAT_HEADER | CAT_BODY)) == (CAT_HEADER | CAT_BODY))
					putchar('\n');
			} else if ((in_header && (what & CAT_HEADER)) ||
			           (!in_header && (what & CAT_BODY))) {
				print_line(&line);
			}
			str_reset(&line);
		}
		if (n == 0)
			break;
		pos += (uint64_t)n;
	}
	if (ret == 0 && line.len > 0 &&
	    ((in_header && (what & CAT_HEADER)) || (!in_header && (what & CAT_BODY))))
		print_line(&line);
	str_free(&line);
	str_free(&error);
	return ret;
}

int cli_queue_cat(const struct queue_dir *qd, int argc, char **argv)
{
	struct queue_file *f = NULL;
	enum queue_file_status st;
	enum queue_name queue;
	unsigned what = 0;
	const char *id;
	str_t error, path, where;
	int opt, r, ret = CLI_EXIT_OK;

	while ((opt = getopt(argc, argv, "ehb")) != -1) {
		switch (opt) {
		case 'e':
			what |= CAT_ENVELOPE;
			break;
		case 'h':
			what |= CAT_HEADER;
			break;
		case 'b':
			what |= CAT_BODY;
			break;
		default:
			fprintf(stderr, "usage: postern queue cat [-e] [-h] [-b] ID\n");
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: postern queue cat [-e] [-h] [-b] ID\n");
		return CLI_EXIT_USAGE;
	}
	if (what == 0)
		what = CAT_ENVELOPE | CAT_HEADER | CAT_BODY;
	id = argv[optind];
	if (!queue_id_valid(id)) {
		log_error("invalid mail queue id: %s", id);
		return CLI_EXIT_FAIL;
	}
	str_init(&error);
	str_init(&path);
	str_init(&where);
	r = queue_dir_find(qd, id, &queue, &path, &error);
	if (r <= 0) {
		if (r < 0)
			log_error("%s", str_c(&error));
		else
			log_error("no message %s in the queue", id);
		ret = r < 0 ? CLI_EXIT_TEMPFAIL : CLI_EXIT_FAIL;
		goto out;
	}
	st = queue_file_open_path(str_c(&path), 0, &f, &error);
	if (st != QUEUE_FILE_OK) {
		log_error("%s", str_c(&error));
		ret = st == QUEUE_FILE_ERROR && errno == ENOENT ? CLI_EXIT_FAIL : CLI_EXIT_TEMPFAIL;
		goto out;
	}
	str_appendf(&where, "%s/%s", queue_name_str(queue), id);
	if (what & CAT_ENVELOPE) {
		printf("*** ENVELOPE RECORDS %s ***\n", str_c(&where));
		print_envelope(f);
	}
	if (what & (CAT_HEADER | CAT_BODY)) {
		printf("*** MESSAGE CONTENTS %s ***\n", str_c(&where));
		if (print_content(f, what) < 0)
			ret = CLI_EXIT_TEMPFAIL;
	}
	if (what & CAT_ENVELOPE) {
		printf("*** HEADER EXTRACTED %s ***\n", str_c(&where));
		printf("*** MESSAGE FILE END %s ***\n", str_c(&where));
	}
	queue_file_close(&f);
out:
	str_free(&where);
	str_free(&path);
	str_free(&error);
	return ret;
}
