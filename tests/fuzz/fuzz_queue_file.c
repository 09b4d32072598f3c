/* fuzz_queue_file.c - libFuzzer target for the queue file reader
 * (lib/queue/queue_file.c) and the status log reader (queue_log.c).
 *
 * The first input byte chooses the reader; the rest is written to a
 * scratch file that is opened as a queue file (or loaded as a status log).
 * Whatever the reader accepts must be fully readable: every recipient,
 * attribute and content byte; and after a recipient's status is updated in
 * place the file must still be accepted, with the new status read back. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"
#include "queue/queue_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ID "4Zb2Lk0Fqx01Tm"

static char root[64];
static char *file_path, *log_path;
static struct queue_dir *qd;

static void setup(void)
{
	char *dir;

	snprintf(root, sizeof(root), "/tmp/fuzz-queue-XXXXXX");
	if (mkdtemp(root) == NULL)
		abort();
	qd = queue_dir_new(root, 1, 0);
	dir = xasprintf("%s/defer", root);
	if (mkdir(dir, 0700) < 0)
		abort();
	free(dir);
	file_path = xasprintf("%s/%s", root, FUZZ_ID);
	log_path = xasprintf("%s/defer/%s", root, FUZZ_ID);
}

static void put_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
}

static void check_queue_file(void)
{
	struct queue_file *f;
	const struct queue_envelope *env;
	struct queue_rcpt r;
	struct queue_rcpt_status st = {.state = QUEUE_RCPT_DELIVERED, .attempts = 2};
	unsigned char buf[4096];
	uint64_t pos = 0;
	str_t error;
	size_t apos = 0;
	const char *name, *value;

	str_init(&error);
	if (queue_file_open_path(file_path, QUEUE_FILE_RDWR, &f, &error) != QUEUE_FILE_OK) {
		if (strstr(str_c(&error), file_path) == NULL)
			log_panic("error does not name the file: %s", str_c(&error));
		str_free(&error);
		return;
	}
	env = queue_file_envelope(f);
	if (env->rcpt_count == 0 || env->sender == NULL)
		log_panic("accepted a file without sender or recipients");
	while (queue_file_attr_next(f, &apos, &name, &value))
		if (strlen(name) == 0)
			log_panic("empty attribute name");
	queue_rcpt_init(&r);
	for (size_t i = 0; i < env->rcpt_count; i++)
		if (queue_file_read_rcpt(f, i, &r, &error) != QUEUE_FILE_OK)
			log_panic("accepted recipient %zu unreadable: %s", i, str_c(&error));
	for (;;) {
		ssize_t n = queue_file_read_content(f, pos, buf, sizeof(buf), &error);

		if (n < 0)
			log_panic("content unreadable: %s", str_c(&error));
		if (n == 0)
			break;
		pos += (uint64_t)n;
	}
	if (pos != env->content_length)
		log_panic("content length %llu, read %llu", (unsigned long long)env->content_length,
		          (unsigned long long)pos);
	if (queue_file_update_rcpt(f, env->rcpt_count - 1, &st, false, &error) < 0)
		log_panic("update failed: %s", str_c(&error));
	queue_file_close(&f);
	if (queue_file_open_path(file_path, 0, &f, &error) != QUEUE_FILE_OK)
		log_panic("file invalid after an update: %s", str_c(&error));
	if (queue_file_read_rcpt(f, queue_file_envelope(f)->rcpt_count - 1, &r, &error) !=
	            QUEUE_FILE_OK ||
	    r.status.state != QUEUE_RCPT_DELIVERED || r.status.attempts != 2)
		log_panic("update not read back");
	queue_rcpt_free(&r);
	queue_file_close(&f);
	str_free(&error);
}

static void check_log(void)
{
	struct queue_log *log;
	str_t error;

	str_init(&error);
	if (queue_log_load(qd, FUZZ_ID, &log, &error) == 0) {
		const struct queue_log_entry *e = queue_log_get(log, 0);

		if (e != NULL && (e->state > QUEUE_RCPT_STATE_MAX || e->reason == NULL))
			log_panic("bad log entry accepted");
		queue_log_destroy(&log);
	}
	str_free(&error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (qd == NULL)
		setup();
	if (size == 0)
		return 0;
	if (data[0] & 1) {
		put_file(log_path, data + 1, size - 1);
		check_log();
	} else {
		put_file(file_path, data + 1, size - 1);
		check_queue_file();
	}
	return 0;
}
