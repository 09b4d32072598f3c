/* cli_queue.c - `postern queue`: the queue administration commands.
 *
 *   queue list                         postqueue -p / mailq (cli_queue_list.c)
 *   queue cat [-e] [-h] [-b] ID        postcat -q (cli_queue_cat.c)
 *   queue shape [QUEUE...]             qshape (cli_queue_shape.c)
 *   queue delete ID...|ALL|- [QUEUE]   postsuper -d: remove messages and
 *                                      their status logs
 *   queue hold ID...|ALL|- [QUEUE]     postsuper -h: move to hold/
 *   queue release ID...|ALL|- [QUEUE]  postsuper -H: move hold/ -> deferred/
 *   queue requeue ID...|ALL|- [QUEUE]  postsuper -r: move to incoming/ with
 *                                      every pending recipient due now
 *   queue flush [DOMAIN]               postqueue -f / -s DOMAIN
 *
 * This file holds the dispatcher and the operations that change the queue
 * (postsuper and postqueue -f). "-" reads IDs from standard input, one per
 * line; ALL takes every message of the queues the command applies to (as
 * postsuper: delete/requeue hold, incoming, active, deferred; hold
 * incoming, active, deferred; release hold), a trailing QUEUE name limits
 * the command to that queue. A summary goes to standard error in
 * postsuper's words ("Deleted: 2 messages"), only when something changed.
 *
 * Requeue and flush: postern has no cleanup re-run for a queued message
 * (Postfix's postsuper -r re-runs cleanup); instead every recipient not
 * yet done gets its next retry set to now in place (fdatasync'd) and the
 * file is renamed into incoming/, where the queue manager picks it up at
 * once. flush with a DOMAIN (postqueue -s) does so only for deferred
 * messages with a recipient in that domain, and resets only those
 * recipients. Both are lib/queue/queue_flush.c, which smtpd's ETRN uses
 * too: one implementation.
 *
 * Safety: an ID from the command line or standard input is used as a file
 * name only after queue_id_valid() (14 characters of the ID alphabet, so
 * no '/' or ".."). Every move is one rename() (queue_dir_move), atomic for
 * a queue manager that may have the file open; delete is one unlink.
 * A file that cannot be read is reported and skipped; the others go on.
 *
 * Exit status: 0 ok, 1 when some ID was not found (or invalid), 64 usage,
 * 75 when the queue could not be read or changed (system error).
 *
 * SECURITY: runs with the caller's privileges (root or mail_owner in
 * practice: the queue is mode 0700); never follows a path from input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> /* optind */

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "cli.h"
#include "cli_queue.h"
#include "conf/config.h"
#include "daemon/trigger.h"
#include "queue/queue_dir.h"
#include "queue/queue_flush.h"
#include "queue/queue_id.h"

/* Longest line accepted from standard input for "-": an ID is 14. */
#define QUEUE_STDIN_LINE_MAX 1024

enum queue_op {
	OP_DELETE,
	OP_HOLD,
	OP_RELEASE,
	OP_REQUEUE,
};

struct op_info {
	const char *name;
	const char *done; /* postsuper's summary words */
	unsigned queues; /* default queues (bit mask), for ALL and ID search */
};

#define QBIT(q) (1u << (q))

static const struct op_info ops[] = {
        [OP_DELETE] = {"delete", "Deleted",
                       QBIT(QUEUE_HOLD) | QBIT(QUEUE_INCOMING) | QBIT(QUEUE_ACTIVE) |
                               QBIT(QUEUE_DEFERRED)},
        [OP_HOLD] = {"hold", "Placed on hold",
                     QBIT(QUEUE_INCOMING) | QBIT(QUEUE_ACTIVE) | QBIT(QUEUE_DEFERRED)},
        [OP_RELEASE] = {"release", "Released from hold", QBIT(QUEUE_HOLD)},
        [OP_REQUEUE] = {"requeue", "Requeued",
                        QBIT(QUEUE_HOLD) | QBIT(QUEUE_INCOMING) | QBIT(QUEUE_ACTIVE) |
                                QBIT(QUEUE_DEFERRED)},
};

/* Search order of a message queue set: the order postsuper uses. */
static const enum queue_name queue_order[] = {QUEUE_HOLD, QUEUE_INCOMING, QUEUE_ACTIVE,
                                              QUEUE_DEFERRED};

int cli_queue_dir_open(struct config *cfg, struct queue_dir **qd_r)
{
	unsigned mask = 0;
	str_t error;

	str_init(&error);
	if (queue_dir_hash_names(config_str(cfg, "hash_queue_names"), &mask, &error) < 0) {
		log_error("hash_queue_names: %s", str_c(&error));
		str_free(&error);
		return -1;
	}
	str_free(&error);
	*qd_r = queue_dir_new(config_str(cfg, "queue_directory"),
	                      (unsigned)config_int(cfg, "hash_queue_depth"), mask);
	return 0;
}

struct op_ctx {
	const struct queue_dir *qd;
	enum queue_op op;
	unsigned queues;
	unsigned long done;
	bool not_found;
	bool failed;
};

/* Apply the operation to id, which is in queue. */
static void apply(struct op_ctx *ctx, enum queue_name queue, const char *id)
{
	str_t error;
	int r = 0;

	str_init(&error);
	switch (ctx->op) {
	case OP_DELETE:
		r = queue_dir_remove(ctx->qd, queue, id, &error);
		break;
	case OP_HOLD:
		if (queue == QUEUE_HOLD)
			goto out;
		r = queue_dir_move(ctx->qd, id, queue, QUEUE_HOLD, &error);
		break;
	case OP_RELEASE:
		if (queue != QUEUE_HOLD)
			goto out;
		r = queue_dir_move(ctx->qd, id, QUEUE_HOLD, QUEUE_DEFERRED, &error);
		break;
	case OP_REQUEUE:
		/* Reset retries first: a crash between the two leaves a message
		 * that is due now in its old queue, which is harmless. */
		if (queue_reschedule(ctx->qd, queue, id, NULL, &error) < 0) {
			log_warning("%s", str_c(&error));
			ctx->failed = true;
			goto out;
		}
		if (queue != QUEUE_INCOMING)
			r = queue_dir_move(ctx->qd, id, queue, QUEUE_INCOMING, &error);
		break;
	}
	if (r < 0) {
		if (errno == ENOENT) {
			/* Moved or delivered meanwhile. */
			ctx->not_found = true;
		} else {
			log_warning("%s: %s", id, str_c(&error));
			ctx->failed = true;
		}
		goto out;
	}
	ctx->done++;
out:
	str_free(&error);
}

static void apply_id(struct op_ctx *ctx, const char *id)
{
	str_t error, path;
	int r = 0;

	if (!queue_id_valid(id)) {
		log_warning("invalid mail queue id: %s", id);
		ctx->not_found = true;
		return;
	}
	str_init(&error);
	str_init(&path);
	for (size_t i = 0; i < sizeof(queue_order) / sizeof(queue_order[0]); i++) {
		enum queue_name q = queue_order[i];

		if ((ctx->queues & QBIT(q)) == 0)
			continue;
		r = queue_dir_locate(ctx->qd, q, id, &path, &error);
		if (r < 0) {
			log_warning("%s", str_c(&error));
			ctx->failed = true;
			break;
		}
		if (r == 1) {
			apply(ctx, q, id);
			break;
		}
	}
	if (r == 0) {
		log_warning("%s: no such message in the queue", id);
		ctx->not_found = true;
	}
	str_free(&path);
	str_free(&error);
}

static void apply_all(struct op_ctx *ctx)
{
	for (size_t i = 0; i < sizeof(queue_order) / sizeof(queue_order[0]); i++) {
		enum queue_name q = queue_order[i];
		struct queue_scan *scan = NULL;
		strv_t ids = STRV_INIT;
		const char *id;
		str_t error;
		int r;

		if ((ctx->queues & QBIT(q)) == 0)
			continue;
		str_init(&error);
		if (queue_scan_open(ctx->qd, q, 0, &scan, &error) < 0) {
			log_warning("%s", str_c(&error));
			ctx->failed = true;
			str_free(&error);
			continue;
		}
		/* Collect first: moving files while scanning a directory could
		 * make the scan return a moved file again (hold -> hold is
		 * excluded, but requeue incoming -> incoming is not a move). */
		while ((r = queue_scan_next(scan, &id, &error)) != 0) {
			if (r < 0) {
				log_warning("%s", str_c(&error));
				ctx->failed = true;
				str_reset(&error);
				continue;
			}
			strv_add(&ids, id);
		}
		queue_scan_close(&scan);
		for (size_t k = 0; k < ids.n; k++) {
			bool was_not_found = ctx->not_found;

			apply(ctx, q, ids.v[k]);
			ctx->not_found = was_not_found; /* gone meanwhile is fine for ALL */
		}
		strv_free(&ids);
		str_free(&error);
	}
}

static int queue_admin(struct config *cfg, enum queue_op op, int argc, char **argv)
{
	struct op_ctx ctx = {.op = op, .queues = ops[op].queues};
	struct queue_dir *qd = NULL;
	enum queue_name q;
	int nids = argc - 1;

	if (nids >= 2 && queue_name_parse(argv[argc - 1], &q) == 0) {
		if (q > QUEUE_HOLD) {
			log_error("%s: cannot %s messages in that queue", argv[argc - 1],
			          ops[op].name);
			return CLI_EXIT_USAGE;
		}
		ctx.queues = QBIT(q);
		nids--;
	}
	if (nids < 1) {
		fprintf(stderr, "usage: postern queue %s ID...|ALL|- [QUEUE]\n", ops[op].name);
		return CLI_EXIT_USAGE;
	}
	if (cli_queue_dir_open(cfg, &qd) < 0)
		return CLI_EXIT_TEMPFAIL;
	ctx.qd = qd;
	for (int i = 1; i <= nids; i++) {
		if (strcmp(argv[i], "ALL") == 0) {
			apply_all(&ctx);
		} else if (strcmp(argv[i], "-") == 0) {
			str_t line;
			int c;

			str_init(&line);
			do {
				c = getchar();
				if (c != EOF && c != '\n') {
					if (line.len < QUEUE_STDIN_LINE_MAX)
						str_append_n(&line, &(char){(char)c}, 1);
					continue;
				}
				/* mailq output piped in: "ID*" and "ID!" are
				 * accepted, as postsuper does for its -d -. */
				if (line.len > 0 && (line.buf[line.len - 1] == '*' ||
				                     line.buf[line.len - 1] == '!'))
					str_truncate(&line, line.len - 1);
				if (line.len > 0)
					apply_id(&ctx, str_c(&line));
				str_reset(&line);
			} while (c != EOF);
			str_free(&line);
		} else {
			apply_id(&ctx, argv[i]);
		}
	}
	if (ctx.done > 0)
		log_info("%s: %lu message%s", ops[op].done, ctx.done, ctx.done == 1 ? "" : "s");
	if (ctx.done > 0 && (op == OP_REQUEUE || op == OP_RELEASE))
		(void)trigger_send(queue_dir_root(qd), "public/qmgr", TRIGGER_WAKEUP);
	queue_dir_destroy(&qd);
	if (ctx.failed)
		return CLI_EXIT_TEMPFAIL;
	return ctx.not_found ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* postqueue -f / -s DOMAIN: deferred messages to incoming, due now
 * (queue_flush.h, shared with smtpd's ETRN). */
static int queue_flush_cmd(struct config *cfg, int argc, char **argv)
{
	strv_t domains = STRV_INIT;
	struct queue_flush_result r;
	struct queue_dir *qd = NULL;
	str_t error;
	int ret = CLI_EXIT_OK;

	if (argc > 2) {
		fprintf(stderr, "usage: postern queue flush [DOMAIN]\n");
		return CLI_EXIT_USAGE;
	}
	if (cli_queue_dir_open(cfg, &qd) < 0)
		return CLI_EXIT_TEMPFAIL;
	if (argc > 1)
		strv_add(&domains, argv[1]);
	str_init(&error);
	if (queue_flush(qd, argc > 1 ? &domains : NULL, &r, &error) < 0) {
		log_error("%s", str_c(&error));
		ret = CLI_EXIT_TEMPFAIL;
	} else {
		if (cli_globals.verbose > 0 || log_verbose() > 0)
			log_info("flushed: %lu message%s", r.moved, r.moved == 1 ? "" : "s");
		if (r.moved > 0)
			(void)trigger_send(queue_dir_root(qd), "public/qmgr", TRIGGER_WAKEUP);
		if (r.failed > 0)
			ret = CLI_EXIT_TEMPFAIL;
	}
	strv_free(&domains);
	str_free(&error);
	queue_dir_destroy(&qd);
	return ret;
}

static void queue_usage(void)
{
	fprintf(stderr, "usage: postern queue [-c DIR] [-v] list\n"
	                "       postern queue cat [-e] [-h] [-b] ID\n"
	                "       postern queue shape [QUEUE...]\n"
	                "       postern queue delete|hold|release|requeue ID...|ALL|- [QUEUE]\n"
	                "       postern queue flush [DOMAIN]\n");
}

int cli_queue(int argc, char **argv)
{
	static const char *const admin[] = {[OP_DELETE] = "delete",
	                                    [OP_HOLD] = "hold",
	                                    [OP_RELEASE] = "release",
	                                    [OP_REQUEUE] = "requeue"};
	strv_t errors = STRV_INIT;
	struct config *cfg = NULL;
	struct queue_dir *qd = NULL;
	const char *sub;
	int ret = -1;

	/* "+": options only before the subcommand (cat has its own). */
	if (cli_common_options(argc, argv, "+c:v") < 0 || optind >= argc) {
		queue_usage();
		return CLI_EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	sub = argv[0];
	if (config_load(cli_globals.config_dir, &cfg, &errors) < 0) {
		for (size_t i = 0; i < errors.n; i++)
			log_error("%s", errors.v[i]);
		strv_free(&errors);
		config_destroy(&cfg);
		return CLI_EXIT_TEMPFAIL;
	}
	strv_free(&errors);
	if (strcmp(sub, "list") == 0) {
		if (argc != 1) {
			queue_usage();
			ret = CLI_EXIT_USAGE;
		} else {
			ret = cli_mailq_list(cfg);
		}
	} else if (strcmp(sub, "flush") == 0) {
		ret = queue_flush_cmd(cfg, argc, argv);
	} else if (strcmp(sub, "cat") == 0 || strcmp(sub, "shape") == 0) {
		if (cli_queue_dir_open(cfg, &qd) < 0) {
			ret = CLI_EXIT_TEMPFAIL;
		} else {
			optind = 1;
			ret = sub[0] == 'c' ? cli_queue_cat(qd, argc, argv)
			                    : cli_queue_shape(qd, argc, argv);
			queue_dir_destroy(&qd);
		}
	} else {
		for (size_t i = 0; i < sizeof(admin) / sizeof(admin[0]); i++) {
			if (strcmp(sub, admin[i]) == 0)
				ret = queue_admin(cfg, (enum queue_op)i, argc, argv);
		}
		if (ret < 0) {
			log_error("unknown queue command \"%s\"", sub);
			queue_usage();
			ret = CLI_EXIT_USAGE;
		}
	}
	config_destroy(&cfg);
	return ret;
}
