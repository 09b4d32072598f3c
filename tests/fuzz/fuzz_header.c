/* fuzz_header.c - libFuzzer target for the header parser
 * (lib/message/header.c) and the cleanup content path (lib/cleanup).
 *
 * The first input byte picks cleanup flags (local, sendmail -t, MIME off,
 * pieces); the rest is message content, split at "\n" into lines. Every
 * line goes through the header functions, with their invariants checked
 * (offsets inside the text, progress on every address), and the whole
 * message through cleanup into a scratch queue with header/body checks
 * of every action. A queued message must read back with exactly the size
 * cleanup reported, its content ending in "\n"; a failed one must leave no
 * file. A violation aborts, so libFuzzer reports it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "cleanup/cleanup.h"
#include "conf/config.h"
#include "message/header.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64];
static struct queue_dir *qd;
static struct config *cfg, *cfg_nomime;
static struct cleanup_settings *set, *set_nomime;

static void quiet(enum log_level level, const char *text, void *ctx)
{
	(void)level;
	(void)text;
	(void)ctx;
}

static char *write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", root, name);
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
	return path;
}

static void make_settings(const char *extra, struct config **cfg_r, struct cleanup_settings **set_r)
{
	strv_t errors = STRV_INIT;
	str_t text, error;
	str_init(&text);
	str_init(&error);
	str_appendf(
	        &text,
	        "myhostname = mx.example.com\nmydomain = example.com\nheader_size_limit = 300\n"
	        "body_checks_size_limit = 200\nmessage_size_limit = 20000\nhopcount_limit = 5\n"
	        "mime_nesting_limit = 5\nheader_checks = regexp:%s/hc\nbody_checks = "
	        "regexp:%s/bc\nundisclosed_recipients_header = To: undisclosed-recipients:;\n%s",
	        root, root, extra);
	if (config_parse_text(text.buf, text.len, "main.cf", root, cfg_r, &errors) < 0 ||
	    cleanup_settings_new(*cfg_r, root, set_r, &error) < 0)
		abort();
	strv_free(&errors);
	str_free(&text);
	str_free(&error);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The scratch queue goes when the fuzzer exits. */
static void cleanup_root(void)
{
	nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	str_t error;
	str_init(&error);
	log_set_hook(quiet, NULL);
	const char *open_error;
	if (log_open("fuzz", LOG_TARGET_FILE, "/dev/null", &open_error) < 0)
		abort();
	snprintf(root, sizeof(root), "/tmp/fuzz-header-XXXXXX");
	if (mkdtemp(root) == NULL)
		abort();
	atexit(cleanup_root);
	qd = queue_dir_new(root, 1, 0);
	if (queue_dir_create(qd, (uid_t)-1, (gid_t)-1, &error) < 0)
		abort();
	free(write_file("hc", "/^X-Reject:/ REJECT no\n/^X-Discard:/ DISCARD\n/^X-Hold:/ HOLD\n"
	                      "/^X-Ignore:/ IGNORE\n/^X-Replace:(.*)/ REPLACE X-Replaced:$1\n"
	                      "/^X-Prepend:/ PREPEND X-Pre: 1\n/^X-Redirect:/ REDIRECT r@x\n"
	                      "/^X-Filter:/ FILTER a:b\n/^X-Warn:/ WARN w\n/^X-Bcc:/ BCC b@x\n"
	                      "/^X-Temp:/ 450 later\n/^X-Pass:/ PASS\n"));
	free(write_file("bc", "/^reject/ REJECT\n/^ignore/ IGNORE\n/^replace/ REPLACE new\n"
	                      "/^prepend/ PREPEND line\n/^discard/ DISCARD\n"));
	make_settings("", &cfg, &set);
	make_settings("disable_mime_input_processing = yes\n", &cfg_nomime, &set_nomime);
	str_free(&error);
}

static void check_header_functions(const char *line, size_t len, str_t *a, str_t *b, str_t *c)
{
	size_t n = header_name_len(line, len);
	if (n > len)
		abort();
	if (n > 0 && (header_is_continuation(line, len) || memchr(line, ':', n) != NULL))
		abort();
	(void)header_id_of(line, n);
	size_t off = header_value_offset(line, len);
	if (off > len)
		abort();
	str_reset(a);
	header_unfold(line, len, 50, a);
	if (a->len > 50)
		abort();
	if (header_content_type(line + off, len - off, a, b, c) == 0 &&
	    c->len > HEADER_BOUNDARY_MAX)
		abort();
	size_t pos = 0, steps = 0;
	struct header_address addr;
	while (header_address_next(line + off, len - off, &pos, &addr) == 1) {
		if (addr.start + addr.len > len - off || addr.len == 0 || pos > len - off)
			abort();
		if (++steps > len + 1)
			abort(); /* no progress */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 1)
		return 0;
	unsigned mode = data[0];
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	unsigned flags = (mode & 1 ? CLEANUP_F_LOCAL : 0) | (mode & 2 ? CLEANUP_F_EXTRACT_RCPT : 0);
	bool pieces = mode & 4;
	struct cleanup *c;
	str_t error, a, b, cs;
	str_init(&error);
	str_init(&a);
	str_init(&b);
	str_init(&cs);
	if (cleanup_open(mode & 8 ? set_nomime : set, qd, flags, &c, &error) < 0)
		abort();
	char id[QUEUE_ID_SIZE];
	memcpy(id, cleanup_id(c), QUEUE_ID_SIZE);
	cleanup_sender(c, mode & 16 ? "" : "s@example.com", NULL, QUEUE_RET_NONE);
	cleanup_rcpt(c, "r@example.com", NULL, 0);
	cleanup_prepend_header(c, "Received: from fuzz");
	size_t start = 0;
	while (start <= len) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl != NULL ? (size_t)(nl - text) : len;
		if (nl == NULL && end == start)
			break;
		check_header_functions(text + start, end - start, &a, &b, &cs);
		if (pieces && end - start > 7) {
			cleanup_line(c, text + start, 7, true);
			cleanup_line(c, text + start + 7, end - start - 7, false);
		} else {
			cleanup_line(c, text + start, end - start, false);
		}
		start = end + 1;
	}
	struct cleanup_result res;
	cleanup_result_init(&res);
	cleanup_finish(&c, &res);
	if (res.status == CLEANUP_QUEUED) {
		struct queue_file *f;
		if (queue_file_open(qd, res.queue, id, 0, &f, &error) != QUEUE_FILE_OK)
			abort();
		const struct queue_envelope *env = queue_file_envelope(f);
		if (env->content_length != res.size || env->rcpt_count != res.nrcpt)
			abort();
		char last;
		if (env->content_length > 0 &&
		    (queue_file_read_content(f, env->content_length - 1, &last, 1, &error) != 1 ||
		     last != '\n'))
			abort();
		queue_file_close(&f);
		if (queue_dir_remove(qd, res.queue, id, &error) < 0)
			abort();
	} else {
		enum queue_name q;
		str_reset(&error);
		if (queue_dir_find(qd, id, &q, NULL, &error) != 0)
			abort();
	}
	cleanup_result_free(&res);
	str_free(&error);
	str_free(&a);
	str_free(&b);
	str_free(&cs);
	return 0;
}
