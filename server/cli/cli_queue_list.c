/* cli_queue_list.c - list the mail queue: `postern queue list`, and the
 * same listing for `mailq` / `sendmail -bp` (cli_sendmail.c calls
 * cli_mailq_list; one implementation for all three, as Postfix's mailq
 * and postqueue -p print the same thing).
 *
 * Reads the queue directory directly (until the queue manager offers a
 * showq service) and prints Postfix's postqueue -p layout: a header line,
 * then per message the ID with a status mark ('*' active, '!' on hold,
 * ' ' otherwise), the size, the arrival time and the sender, the
 * recipients not yet done indented below it, each deferred one preceded
 * by the reason of its last deferral in parentheses (from the message's
 * status log, queue_log.h; several recipients with the same reason share
 * one reason line, as in Postfix), an empty line, and a
 * "-- N Kbytes in N Requests." total; or "Mail queue is empty". Messages
 * still in maildrop/ (submitted, not yet picked up) are listed too, as
 * Postfix's showq does. Queues are listed incoming, active, deferred,
 * hold, each in arrival (ID) order.
 *
 * Errors: a queue directory that cannot be read (not root, not
 * mail_owner) is an error naming it, exit 75, so a script never reads
 * "empty" for "unknown". A file that vanishes during the scan (delivered
 * meanwhile) is skipped; a damaged one is listed as such.
 *
 * SECURITY: runs with the caller's privileges; reads queue files through
 * the validating reader (queue_file.h) and maildrop files through theirs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "cli.h"
#include "conf/config.h"
#include "queue/maildrop.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"
#include "queue/queue_log.h"
#include "cli_queue.h"

struct mailq_totals {
	uint64_t bytes;
	size_t count;
};

static void print_header(bool *printed)
{
	if (*printed)
		return;
	printf("%-15s %8s %-20s %s\n", "-Queue ID-", "--Size--", "----Arrival Time----",
	       "-Sender/Recipient-------");
	*printed = true;
}

static void print_message(const char *id, char mark, uint64_t size, time_t arrival,
                          const char *sender, bool *printed)
{
	char when[64];
	struct tm tm;

	localtime_r(&arrival, &tm);
	strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
	print_header(printed);
	printf("%-14s%c %8llu %-20.20s %s\n", id, mark, (unsigned long long)size, when,
	       sender[0] != '\0' ? sender : "MAILER-DAEMON");
}

static void print_rcpt(const char *rcpt)
{
	printf("%46s%s\n", "", rcpt);
}

/* Why right-aligned: Postfix's mailq puts a deferral reason in
 * parentheses on a line of its own, padded on the left so that it ends
 * near column 78; a longer reason starts in column 0. */
static void print_reason(const char *reason)
{
	int pad = 76 - (int)strlen(reason);

	/* The text may come from a remote server: no control characters
	 * reach the administrator's terminal. */
	printf("%*s(", pad > 0 ? pad : 0, "");
	for (const char *p = reason; *p != '\0'; p++)
		putchar((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
	printf(")\n");
}

static int list_queue(const struct queue_dir *qd, enum queue_name queue, struct mailq_totals *tot,
                      bool *printed)
{
	struct queue_scan *scan = NULL;
	struct queue_rcpt rcpt;
	str_t error;
	const char *id;
	char mark = queue == QUEUE_ACTIVE ? '*' : queue == QUEUE_HOLD ? '!' : ' ';
	int r;

	str_init(&error);
	if (queue_scan_open(qd, queue, QUEUE_SCAN_ORDERED, &scan, &error) < 0) {
		log_error("cannot read the queue: %s", str_c(&error));
		str_free(&error);
		return -1;
	}
	queue_rcpt_init(&rcpt);
	while ((r = queue_scan_next(scan, &id, &error)) != 0) {
		struct queue_file *f = NULL;
		struct queue_log *qlog = NULL;
		const char *last_reason;
		const struct queue_envelope *env;
		enum queue_file_status st;

		if (r < 0) {
			log_warning("%s", str_c(&error));
			str_reset(&error);
			continue;
		}
		st = queue_file_open(qd, queue, id, 0, &f, &error);
		if (st == QUEUE_FILE_ERROR && errno == ENOENT) {
			str_reset(&error);
			continue; /* gone meanwhile: delivered or moved */
		}
		if (st != QUEUE_FILE_OK) {
			log_warning("%s", str_c(&error));
			str_reset(&error);
			continue;
		}
		env = queue_file_envelope(f);
		print_message(id, mark, env->content_length, env->arrival.tv_sec, env->sender,
		              printed);
		/* A missing or unreadable status log only loses the reasons. */
		if (queue_log_load(qd, id, &qlog, &error) < 0) {
			log_warning("%s", str_c(&error));
			str_reset(&error);
		}
		last_reason = NULL;
		for (size_t i = 0; i < env->rcpt_count; i++) {
			const struct queue_log_entry *le;

			if (queue_file_read_rcpt(f, i, &rcpt, &error) != QUEUE_FILE_OK) {
				log_warning("%s", str_c(&error));
				str_reset(&error);
				break;
			}
			if (queue_rcpt_state_final(rcpt.status.state))
				continue;
			le = qlog == NULL ? NULL : queue_log_get(qlog, i);
			if (rcpt.status.state == QUEUE_RCPT_DEFERRED && le != NULL &&
			    le->reason[0] != '\0' &&
			    (last_reason == NULL || strcmp(last_reason, le->reason) != 0)) {
				print_reason(le->reason);
				last_reason = le->reason;
			}
			print_rcpt(str_c(&rcpt.address));
		}
		queue_log_destroy(&qlog);
		printf("\n");
		tot->bytes += env->content_length;
		tot->count++;
		queue_file_close(&f);
	}
	queue_scan_close(&scan);
	queue_rcpt_free(&rcpt);
	str_free(&error);
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Messages waiting in maildrop/: listed when readable (root sees all). */
static int list_maildrop(const char *queue_root, struct mailq_totals *tot, bool *printed)
{
	char *dir = xasprintf("%s/%s", queue_root, MAILDROP_DIR_NAME);
	strv_t names = STRV_INIT;
	struct dirent *e;
	str_t error;
	DIR *d;

	d = opendir(dir);
	if (d == NULL) {
		int err = errno;

		free(dir);
		/* No maildrop yet (pickup never ran) is an empty one; not being
		 * allowed to list it (1733) is normal for users. */
		return err == ENOENT || err == EACCES ? 0 : -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.' &&
		    strncmp(e->d_name, MAILDROP_TEMP_PREFIX, strlen(MAILDROP_TEMP_PREFIX)) != 0)
			strv_add(&names, e->d_name);
	}
	closedir(d);
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(names.v[0]), name_cmp);
	str_init(&error);
	for (size_t i = 0; i < names.n; i++) {
		char *path = xasprintf("%s/%s", dir, names.v[i]);
		int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		struct maildrop *m = NULL;
		struct stat st;

		free(path);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && maildrop_open_fd(fd, 0, &m, &error) == MAILDROP_OK) {
			print_message(names.v[i], ' ', maildrop_content_size(m), st.st_mtime,
			              maildrop_sender(m), printed);
			for (size_t r = 0; r < maildrop_rcpt_count(m); r++)
				print_rcpt(maildrop_rcpt(m, r));
			printf("\n");
			tot->bytes += maildrop_content_size(m);
			tot->count++;
		}
		str_reset(&error);
		maildrop_close(&m);
		close(fd);
	}
	str_free(&error);
	strv_free(&names);
	free(dir);
	return 0;
}

int cli_mailq_list(struct config *cfg)
{
	static const enum queue_name queues[] = {QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED,
	                                         QUEUE_HOLD};
	const char *root = config_str(cfg, "queue_directory");
	struct mailq_totals tot = {0, 0};
	struct queue_dir *qd = NULL;
	bool printed = false;
	int ret = CLI_EXIT_OK;

	if (cli_queue_dir_open(cfg, &qd) < 0)
		return CLI_EXIT_TEMPFAIL;
	if (list_maildrop(root, &tot, &printed) < 0) {
		log_error("cannot read the queue: %s/%s: %m", root, MAILDROP_DIR_NAME);
		ret = CLI_EXIT_TEMPFAIL;
	}
	for (size_t i = 0; ret == CLI_EXIT_OK && i < sizeof(queues) / sizeof(queues[0]); i++) {
		if (list_queue(qd, queues[i], &tot, &printed) < 0)
			ret = CLI_EXIT_TEMPFAIL;
	}
	queue_dir_destroy(&qd);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (tot.count == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %llu Kbytes in %zu Request%s.\n",
		       (unsigned long long)((tot.bytes + 1023) / 1024), tot.count,
		       tot.count == 1 ? "" : "s");
	return CLI_EXIT_OK;
}
