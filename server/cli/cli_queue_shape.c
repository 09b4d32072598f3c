/* cli_queue_shape.c - `postern queue shape [QUEUE...]` (qshape).
 *
 * Prints, for the given queues (default incoming and active, as qshape),
 * a table of recipient domains by message age in minutes:
 *
 *                          T  5 10 20 40 80 160 320 640 1280 1280+
 *                   TOTAL  3  3  0  0  0  0   0   0   0    0     0
 *             example.org  2  2  0  0  0  0   0   0   0    0     0
 *
 * Column "5" counts messages younger than 5 minutes, "10" those of 5 to
 * 10 minutes, and so on; "1280+" the older ones; T is the row total. A
 * message counts once per domain it has recipients not yet done in (so
 * TOTAL, the sum of the domain rows, may exceed the message count, as in
 * qshape). Domains are sorted by their total, largest first (then by
 * name); the domain column is as wide as the longest domain, every other
 * column as wide as its header or its largest number.
 *
 * Errors: an unreadable queue directory is exit 75; an unreadable or
 * corrupt message is reported and skipped.
 *
 * SECURITY: runs with the caller's privileges; reads queue files through
 * the validating reader; domains from the queue are printed with control
 * characters replaced by '?'.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "cli.h"
#include "cli_queue.h"
#include "queue/queue_file.h"

#define SHAPE_BUCKETS 10 /* 5 10 20 40 80 160 320 640 1280 1280+ */
#define SHAPE_COLS (SHAPE_BUCKETS + 1) /* T first */

static const char *const col_names[SHAPE_COLS] = {"T",   "5",   "10",  "20",   "40",   "80",
                                                  "160", "320", "640", "1280", "1280+"};

struct shape_row {
	char *domain;
	unsigned long n[SHAPE_COLS];
};

struct shape {
	struct shape_row *rows;
	size_t count, alloc;
	struct shape_row total;
};

static struct shape_row *shape_row_get(struct shape *sh, const char *domain)
{
	for (size_t i = 0; i < sh->count; i++) {
		if (strcmp(sh->rows[i].domain, domain) == 0)
			return &sh->rows[i];
	}
	if (sh->count == sh->alloc) {
		sh->alloc = sh->alloc == 0 ? 16 : sh->alloc * 2;
		sh->rows = xreallocarray(sh->rows, sh->alloc, sizeof(sh->rows[0]));
	}
	memset(&sh->rows[sh->count], 0, sizeof(sh->rows[0]));
	sh->rows[sh->count].domain = xstrdup(domain);
	return &sh->rows[sh->count++];
}

static int bucket_of(time_t age_seconds)
{
	long minutes = (long)(age_seconds / 60);
	long limit = 5;

	for (int b = 0; b < SHAPE_BUCKETS - 1; b++, limit *= 2) {
		if (minutes < limit)
			return b;
	}
	return SHAPE_BUCKETS - 1;
}

/* Add one message: each distinct domain of its pending recipients. */
static void shape_add_message(struct shape *sh, struct queue_file *f, time_t now)
{
	const struct queue_envelope *env = queue_file_envelope(f);
	int col = 1 + bucket_of(now - env->arrival.tv_sec);
	strv_t seen = STRV_INIT;
	struct queue_rcpt rcpt;
	str_t error, domain;

	str_init(&error);
	str_init(&domain);
	queue_rcpt_init(&rcpt);
	for (size_t i = 0; i < env->rcpt_count; i++) {
		const char *at;
		struct shape_row *row;

		if (queue_file_read_rcpt(f, i, &rcpt, &error) != QUEUE_FILE_OK) {
			log_warning("%s", str_c(&error));
			break;
		}
		if (queue_rcpt_state_final(rcpt.status.state))
			continue;
		at = strrchr(str_c(&rcpt.address), '@');
		str_reset(&domain);
		for (const char *p = at == NULL ? "" : at + 1; *p != '\0'; p++) {
			char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;

			str_append_n(&domain, (unsigned char)c < 0x20 || c == 0x7f ? "?" : &c, 1);
		}
		/* Postfix's qshape files local recipients without a domain
		 * under the empty name; it is hard to read, so name it. */
		if (domain.len == 0)
			str_set(&domain, "(local)");
		if (strv_find(&seen, str_c(&domain)) >= 0)
			continue;
		strv_add(&seen, str_c(&domain));
		row = shape_row_get(sh, str_c(&domain));
		row->n[0]++;
		row->n[col]++;
		sh->total.n[0]++;
		sh->total.n[col]++;
	}
	queue_rcpt_free(&rcpt);
	strv_free(&seen);
	str_free(&domain);
	str_free(&error);
}

static int shape_queue(struct shape *sh, const struct queue_dir *qd, enum queue_name queue,
                       time_t now)
{
	struct queue_scan *scan = NULL;
	const char *id;
	str_t error;
	int r;

	str_init(&error);
	if (queue_scan_open(qd, queue, 0, &scan, &error) < 0) {
		log_error("%s", str_c(&error));
		str_free(&error);
		return -1;
	}
	while ((r = queue_scan_next(scan, &id, &error)) != 0) {
		struct queue_file *f = NULL;
		enum queue_file_status st;

		if (r < 0) {
			log_warning("%s", str_c(&error));
			str_reset(&error);
			continue;
		}
		st = queue_file_open(qd, queue, id, 0, &f, &error);
		if (st != QUEUE_FILE_OK) {
			if (!(st == QUEUE_FILE_ERROR && errno == ENOENT))
				log_warning("%s", str_c(&error));
			str_reset(&error);
			continue;
		}
		shape_add_message(sh, f, now);
		queue_file_close(&f);
	}
	queue_scan_close(&scan);
	str_free(&error);
	return 0;
}

static int row_cmp(const void *a, const void *b)
{
	const struct shape_row *x = a, *y = b;

	if (x->n[0] != y->n[0])
		return x->n[0] > y->n[0] ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

static int num_width(unsigned long v)
{
	int w = 1;

	while (v >= 10) {
		v /= 10;
		w++;
	}
	return w;
}

static void print_row(const char *label, int label_w, const unsigned long *n, const int *w)
{
	printf("%*s", label_w, label);
	for (int c = 0; c < SHAPE_COLS; c++)
		printf(" %*lu", w[c], n[c]);
	printf("\n");
}

int cli_queue_shape(const struct queue_dir *qd, int argc, char **argv)
{
	enum queue_name queues[QUEUE_MESSAGE_QUEUES];
	size_t nqueues = 0;
	struct shape sh;
	int label_w = (int)strlen("TOTAL");
	time_t now = time(NULL);
	int ret = CLI_EXIT_OK;

	memset(&sh, 0, sizeof(sh));
	for (int i = 1; i < argc; i++) {
		enum queue_name q;

		if (queue_name_parse(argv[i], &q) < 0 || q >= QUEUE_MESSAGE_QUEUES) {
			fprintf(stderr, "usage: postern queue shape [QUEUE...]: no queue \"%s\"\n",
			        argv[i]);
			return CLI_EXIT_USAGE;
		}
		if (nqueues < QUEUE_MESSAGE_QUEUES)
			queues[nqueues++] = q;
	}
	if (nqueues == 0) {
		queues[nqueues++] = QUEUE_INCOMING;
		queues[nqueues++] = QUEUE_ACTIVE;
	}
	for (size_t i = 0; i < nqueues; i++) {
		if (shape_queue(&sh, qd, queues[i], now) < 0)
			ret = CLI_EXIT_TEMPFAIL;
	}
	if (ret == CLI_EXIT_OK) {
		int w[SHAPE_COLS];

		if (sh.count > 1)
			qsort(sh.rows, sh.count, sizeof(sh.rows[0]), row_cmp);
		for (int c = 0; c < SHAPE_COLS; c++) {
			/* TOTAL holds the largest number of each column. */
			int nw = num_width(sh.total.n[c]);
			int hw = (int)strlen(col_names[c]);

			w[c] = nw > hw ? nw : hw;
		}
		for (size_t i = 0; i < sh.count; i++) {
			int dw = (int)strlen(sh.rows[i].domain);

			if (dw > label_w)
				label_w = dw;
		}
		printf("%*s", label_w, "");
		for (int c = 0; c < SHAPE_COLS; c++)
			printf(" %*s", w[c], col_names[c]);
		printf("\n");
		print_row("TOTAL", label_w, sh.total.n, w);
		for (size_t i = 0; i < sh.count; i++)
			print_row(sh.rows[i].domain, label_w, sh.rows[i].n, w);
	}
	for (size_t i = 0; i < sh.count; i++)
		free(sh.rows[i].domain);
	free(sh.rows);
	return ret;
}
