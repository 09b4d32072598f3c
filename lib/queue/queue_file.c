/* queue_file.c - queue file writer and reader (see queue_file.h for the
 * format and the commit contract).
 *
 * The writer is used by smtpd, pickup and qmgr (bounces); the reader by
 * qmgr and the `postern queue` commands. Guarantees on failure: a writer
 * that fails or is destroyed before commit leaves no file behind (its
 * temporary file is removed; one left by a killed process is removed by
 * queue_dir_cleanup); the reader never trusts a length or offset it has
 * not checked against the file's size, and reports a bad file as
 * QUEUE_FILE_CORRUPT with the file name and the offset of the problem.
 */
#include "queue/queue_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/bigendian.h"
#include "base/fs.h"
#include "base/hash.h"
#include "base/mem.h"

#define WRITE_BUFFER 65536
#define READ_BUFFER 65536
#define OPEN_ATTEMPTS 20

/* Record types. */
#define REC_TIME 'T'
#define REC_SENDER 'S'
#define REC_ENVID 'E'
#define REC_RET 'N'
#define REC_ATTR 'A'
#define REC_RCPT 'R'
#define REC_END 'X'
#define REC_COMPLETE 'Z'

int queue_dsn_parse(const char *text, struct queue_dsn *dsn_r)
{
	unsigned v[3] = {0, 0, 0};
	const char *p = text;

	for (int part = 0; part < 3; part++) {
		int digits = 0;

		while (*p >= '0' && *p <= '9' && digits < 4) {
			v[part] = v[part] * 10 + (unsigned)(*p++ - '0');
			digits++;
		}
		if (digits == 0 || digits > (part == 0 ? 1 : 3))
			return -1;
		if (part < 2 && *p++ != '.')
			return -1;
	}
	if (*p != '\0' || (v[0] != 2 && v[0] != 4 && v[0] != 5))
		return -1;
	dsn_r->klass = (unsigned char)v[0];
	dsn_r->subject = (unsigned short)v[1];
	dsn_r->detail = (unsigned short)v[2];
	return 0;
}

void queue_dsn_format(const struct queue_dsn *dsn, str_t *out)
{
	str_reset(out);
	if (dsn->klass != 0)
		str_appendf(out, "%u.%u.%u", dsn->klass, dsn->subject, dsn->detail);
}

const char *queue_rcpt_state_str(enum queue_rcpt_state state)
{
	switch (state) {
	case QUEUE_RCPT_PENDING:
		return "pending";
	case QUEUE_RCPT_DEFERRED:
		return "deferred";
	case QUEUE_RCPT_DELIVERED:
		return "delivered";
	case QUEUE_RCPT_BOUNCED:
		return "bounced";
	}
	return "unknown";
}

bool queue_error_is_resource(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

const char *queue_error_reply(int err)
{
	return queue_error_is_resource(err) ? "452 4.3.1 Insufficient system storage"
	                                    : "451 4.3.0 Error: queue file write error";
}

static void slot_encode(unsigned char *p, const struct queue_rcpt_status *st)
{
	memset(p, 0, QUEUE_STATUS_SLOT_SIZE);
	p[0] = (unsigned char)st->state;
	p[1] = (unsigned char)st->flags;
	put_u16(p + 2, st->attempts > 65535 ? 65535 : st->attempts);
	put_u64(p + 4, st->next_retry < 0 ? 0 : (uint64_t)st->next_retry);
	put_u64(p + 12, st->changed < 0 ? 0 : (uint64_t)st->changed);
	p[20] = st->dsn.klass;
	put_u16(p + 21, st->dsn.subject);
	put_u16(p + 23, st->dsn.detail);
}

/* Decode a slot; a text describing the problem when it is invalid. */
static const char *slot_decode(const unsigned char *p, struct queue_rcpt_status *st)
{
	uint64_t next = get_u64(p + 4), changed = get_u64(p + 12);

	if (p[0] > QUEUE_RCPT_STATE_MAX)
		return "recipient status has an unknown state";
	if (p[20] != 0 && p[20] != 2 && p[20] != 4 && p[20] != 5)
		return "recipient status has a bad DSN class";
	if (get_u16(p + 21) > 999 || get_u16(p + 23) > 999)
		return "recipient status has a bad DSN code";
	if (next > INT64_MAX || changed > INT64_MAX)
		return "recipient status has a bad time";
	st->state = (enum queue_rcpt_state)p[0];
	st->flags = p[1];
	st->attempts = get_u16(p + 2);
	st->next_retry = (time_t)next;
	st->changed = (time_t)changed;
	st->dsn.klass = p[20];
	st->dsn.subject = (unsigned short)get_u16(p + 21);
	st->dsn.detail = (unsigned short)get_u16(p + 23);
	return NULL;
}

static bool attr_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > QUEUE_ATTR_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

/* ---------------------------------------------------------------- writer */

struct queue_writer {
	const struct queue_dir *qd;
	char id[QUEUE_ID_SIZE];
	struct timeval arrival;
	struct fs_durable *file;
	str_t buf; /* bytes not yet written */
	uint64_t offset; /* file offset after buf */
	bool have_sender, have_dsn, in_content, content_done, committed;
	uint64_t content_offset, content_length;
	size_t rcpt_count;
	int err; /* sticky errno */
	str_t err_text; /* sticky message */
};

/* Remember the first failure; every later call repeats it. */
static int writer_fail(struct queue_writer *w, int err, str_t *error)
{
	if (w->err == 0) {
		w->err = err;
		if (w->err_text.len == 0)
			str_append(&w->err_text, "queue file write failed");
	}
	str_append(error, str_c(&w->err_text));
	errno = w->err;
	return -1;
}

static int writer_check(struct queue_writer *w, str_t *error)
{
	return w->err != 0 ? writer_fail(w, w->err, error) : 0;
}

static int writer_usage(struct queue_writer *w, const char *what, str_t *error)
{
	/* A caller bug, not an I/O error: it is not sticky. */
	str_appendf(error, "queue file %s: %s", w->id, what);
	errno = EINVAL;
	return -1;
}

static int writer_flush(struct queue_writer *w, str_t *error)
{
	if (w->buf.len == 0)
		return 0;
	if (fs_durable_write(w->file, w->buf.buf, w->buf.len, &w->err_text) < 0)
		return writer_fail(w, errno, error);
	str_reset(&w->buf);
	return 0;
}

static int writer_put(struct queue_writer *w, const void *data, size_t len, str_t *error)
{
	if (w->buf.len + len > WRITE_BUFFER && writer_flush(w, error) < 0)
		return -1;
	if (len >= WRITE_BUFFER) {
		if (fs_durable_write(w->file, data, len, &w->err_text) < 0)
			return writer_fail(w, errno, error);
	} else {
		str_append_n(&w->buf, data, len);
	}
	w->offset += len;
	return 0;
}

/* Write one record from up to three payload pieces. */
static int writer_record(struct queue_writer *w, char type, const void *a, size_t alen,
                         const void *b, size_t blen, str_t *error)
{
	unsigned char head[QUEUE_RECORD_HEADER_SIZE];

	if (alen + blen > QUEUE_RECORD_MAX)
		return writer_usage(w, "record too long", error);
	head[0] = (unsigned char)type;
	put_u32(head + 1, (uint32_t)(alen + blen));
	if (writer_put(w, head, sizeof(head), error) < 0 || writer_put(w, a, alen, error) < 0 ||
	    writer_put(w, b, blen, error) < 0)
		return -1;
	return 0;
}

/* End the content: the 'X' record when no content was written yet. */
static int writer_end_head(struct queue_writer *w, str_t *error)
{
	if (w->in_content || w->content_done)
		return 0;
	if (writer_record(w, REC_END, NULL, 0, NULL, 0, error) < 0)
		return -1;
	w->in_content = true;
	w->content_offset = w->offset;
	return 0;
}

int queue_writer_open(const struct queue_dir *qd, struct queue_writer **w_r, str_t *error)
{
	struct queue_writer *w = xcalloc(1, sizeof(*w));
	unsigned char header[QUEUE_FILE_HEADER_SIZE], tbuf[12];
	str_t path;
	int attempt;

	*w_r = NULL;
	w->qd = qd;
	str_init(&w->buf);
	str_init(&w->err_text);
	str_init(&path);
	/* Why a loop: the ID is reserved by creating tmp.ID exclusively and
	 * checking that no queue holds it; a clash (only possible when the
	 * clock went back and a PID was reused) takes the next ID. */
	for (attempt = 0; attempt < OPEN_ATTEMPTS; attempt++) {
		enum queue_name q;
		int found;

		queue_id_generate(w->id, &w->arrival);
		queue_dir_temp_path(qd, w->id, &path);
		if (fs_durable_open(str_c(&path), QUEUE_FILE_MODE, &w->file, &w->err_text) < 0) {
			if (errno == EEXIST) {
				str_reset(&w->err_text);
				continue;
			}
			break;
		}
		found = queue_dir_find(qd, w->id, &q, NULL, &w->err_text);
		if (found == 0)
			break;
		fs_durable_abort(&w->file);
		if (found < 0)
			break;
	}
	str_free(&path);
	if (w->file == NULL) {
		int saved = errno;

		if (attempt == OPEN_ATTEMPTS) {
			str_append(&w->err_text, "no unused queue ID found");
			saved = EEXIST;
		}
		str_append(error, str_c(&w->err_text));
		str_free(&w->buf);
		str_free(&w->err_text);
		free(w);
		errno = saved;
		return -1;
	}
	memset(header, 0, sizeof(header));
	memcpy(header, QUEUE_FILE_MAGIC, 8);
	put_u16(header + 8, QUEUE_FILE_VERSION);
	put_u64(tbuf, (uint64_t)w->arrival.tv_sec);
	put_u32(tbuf + 8, (uint32_t)w->arrival.tv_usec);
	if (writer_put(w, header, sizeof(header), error) < 0 ||
	    writer_record(w, REC_TIME, tbuf, sizeof(tbuf), NULL, 0, error) < 0) {
		queue_writer_destroy(&w);
		return -1;
	}
	*w_r = w;
	return 0;
}

const char *queue_writer_id(const struct queue_writer *w)
{
	return w->id;
}

const struct timeval *queue_writer_arrival(const struct queue_writer *w)
{
	return &w->arrival;
}

int queue_writer_sender(struct queue_writer *w, const char *sender, str_t *error)
{
	size_t len = strlen(sender);

	if (writer_check(w, error) < 0)
		return -1;
	if (w->have_sender)
		return writer_usage(w, "sender given twice", error);
	if (w->in_content || w->content_done)
		return writer_usage(w, "sender given after the content", error);
	if (len > QUEUE_FIELD_MAX)
		return writer_usage(w, "sender address too long", error);
	w->have_sender = true;
	return writer_record(w, REC_SENDER, sender, len, NULL, 0, error);
}

int queue_writer_dsn(struct queue_writer *w, const char *envid, enum queue_dsn_ret ret,
                     str_t *error)
{
	if (writer_check(w, error) < 0)
		return -1;
	if (w->have_dsn)
		return writer_usage(w, "DSN parameters given twice", error);
	if (w->in_content || w->content_done)
		return writer_usage(w, "DSN parameters given after the content", error);
	if (envid != NULL && (envid[0] == '\0' || strlen(envid) > QUEUE_FIELD_MAX))
		return writer_usage(w, "bad DSN envelope ID length", error);
	w->have_dsn = true;
	if (envid != NULL && writer_record(w, REC_ENVID, envid, strlen(envid), NULL, 0, error) < 0)
		return -1;
	if (ret != QUEUE_RET_NONE) {
		char r = ret == QUEUE_RET_FULL ? 'F' : 'H';

		return writer_record(w, REC_RET, &r, 1, NULL, 0, error);
	}
	return 0;
}

/* Records that follow the content end it. */
static void writer_before_tail_record(struct queue_writer *w)
{
	if (w->in_content) {
		w->in_content = false;
		w->content_done = true;
	}
}

int queue_writer_attr(struct queue_writer *w, const char *name, const char *value, str_t *error)
{
	size_t nlen = strlen(name), vlen = strlen(value);

	if (writer_check(w, error) < 0)
		return -1;
	if (!attr_name_valid(name, nlen))
		return writer_usage(w, "bad attribute name", error);
	if (vlen > QUEUE_FIELD_MAX)
		return writer_usage(w, "attribute value too long", error);
	writer_before_tail_record(w);
	/* name and its NUL, then the value */
	return writer_record(w, REC_ATTR, name, nlen + 1, value, vlen, error);
}

int queue_writer_rcpt(struct queue_writer *w, const char *address, const char *orcpt,
                      unsigned notify, str_t *error)
{
	size_t alen = strlen(address), olen = orcpt == NULL ? 0 : strlen(orcpt);
	unsigned char fixed[QUEUE_STATUS_SLOT_SIZE + 3];
	struct queue_rcpt_status st = {.state = QUEUE_RCPT_PENDING};
	str_t payload;
	unsigned char len2[2];
	int ret;

	if (writer_check(w, error) < 0)
		return -1;
	if (alen == 0 || alen > QUEUE_FIELD_MAX || olen > QUEUE_FIELD_MAX)
		return writer_usage(w, "bad recipient address length", error);
	if (notify & ~QUEUE_NOTIFY_ALL)
		return writer_usage(w, "bad DSN NOTIFY flags", error);
	writer_before_tail_record(w);
	slot_encode(fixed, &st);
	fixed[QUEUE_STATUS_SLOT_SIZE] = (unsigned char)notify;
	put_u16(fixed + QUEUE_STATUS_SLOT_SIZE + 1, (unsigned)alen);
	str_init(&payload);
	str_append_n(&payload, fixed, sizeof(fixed));
	str_append_n(&payload, address, alen);
	put_u16(len2, (unsigned)olen);
	str_append_n(&payload, len2, 2);
	str_append_n(&payload, orcpt == NULL ? "" : orcpt, olen);
	ret = writer_record(w, REC_RCPT, payload.buf, payload.len, NULL, 0, error);
	str_free(&payload);
	if (ret == 0)
		w->rcpt_count++;
	return ret;
}

int queue_writer_content(struct queue_writer *w, const void *data, size_t len, str_t *error)
{
	if (writer_check(w, error) < 0)
		return -1;
	if (w->content_done)
		return writer_usage(w, "content written after tail records", error);
	if (writer_end_head(w, error) < 0)
		return -1;
	if (writer_put(w, data, len, error) < 0)
		return -1;
	w->content_length += len;
	return 0;
}

uint64_t queue_writer_content_size(const struct queue_writer *w)
{
	return w->content_length;
}

/* After EALREADY from fs_durable_commit: find where qmgr moved the file
 * and fsync that directory; true when that made it durable. */
static bool committed_elsewhere(struct queue_writer *w, str_t *error)
{
	enum queue_name where;
	str_t found;
	bool ok;

	/* Not found anywhere: qmgr has already finished with it. */
	str_init(&found);
	switch (queue_dir_find(w->qd, w->id, &where, &found, error)) {
	case 0:
		ok = true;
		break;
	case 1:
		ok = fs_sync_dir_of(str_c(&found), error) == 0;
		break;
	default:
		ok = false;
	}
	str_free(&found);
	return ok;
}

int queue_writer_commit(struct queue_writer *w, enum queue_name queue, str_t *error)
{
	unsigned char patch[16], size[8];
	str_t path;
	ssize_t n;
	int fd;

	if (writer_check(w, error) < 0)
		return -1;
	if (w->committed)
		return writer_usage(w, "committed twice", error);
	if (!w->have_sender)
		return writer_usage(w, "no sender", error);
	if (w->rcpt_count == 0)
		return writer_usage(w, "no recipients", error);
	if (queue != QUEUE_INCOMING && queue != QUEUE_HOLD)
		return writer_usage(w, "new messages go into incoming or hold", error);
	if (writer_end_head(w, error) < 0)
		return -1;
	put_u64(size, w->offset + QUEUE_RECORD_HEADER_SIZE + sizeof(size));
	if (writer_record(w, REC_COMPLETE, size, sizeof(size), NULL, 0, error) < 0 ||
	    writer_flush(w, error) < 0)
		return -1;
	put_u64(patch, w->content_offset);
	put_u64(patch + 8, w->content_length);
	fd = fs_durable_fd(w->file);
	n = pwrite(fd, patch, sizeof(patch), 16);
	if (n != (ssize_t)sizeof(patch)) {
		if (n >= 0)
			errno = EIO;
		str_appendf(&w->err_text, "write %s: %m", fs_durable_tmp_path(w->file));
		return writer_fail(w, errno, error);
	}
	str_init(&path);
	if (queue_dir_prepare(w->qd, queue, w->id, &w->err_text) < 0) {
		str_free(&path);
		return writer_fail(w, errno, error);
	}
	queue_dir_path(w->qd, queue, w->id, &path);
	/* fs_durable_commit: fsync file, rename (never replacing), fsync
	 * directory; it frees w->file either way. */
	if (fs_durable_commit(&w->file, str_c(&path), FS_COMMIT_NOREPLACE, &w->err_text) < 0) {
		int saved = errno;

		/* Why not fail at once: EALREADY means qmgr took the file
		 * from incoming/ while the directory fsync was failing; it
		 * is delivering it. A 4xx now would make the client send it
		 * again: a duplicate in the common case. The file itself is
		 * fsync'd; if the directory that holds it now syncs, the
		 * message is durable and the commit stands. If that fails
		 * too, the 4xx stands: at least once, never lost. */
		if (saved == EALREADY && committed_elsewhere(w, &w->err_text)) {
			str_free(&path);
			w->committed = true;
			return 0;
		}
		str_free(&path);
		return writer_fail(w, saved == EALREADY ? EIO : saved, error);
	}
	str_free(&path);
	w->committed = true;
	return 0;
}

void queue_writer_destroy(struct queue_writer **wp)
{
	struct queue_writer *w = *wp;
	int saved = errno;

	if (w == NULL)
		return;
	fs_durable_abort(&w->file);
	str_free(&w->buf);
	str_free(&w->err_text);
	free(w);
	*wp = NULL;
	errno = saved;
}

/* ---------------------------------------------------------------- reader */

struct queue_file {
	int fd;
	char *path;
	struct queue_envelope env;
	char *sender;
	char *envid;
	hash_t *attrs;
	uint64_t *rcpt_offsets; /* record start of each recipient */
	size_t rcpt_cap;
	/* read buffer: bytes of the file from buf_off */
	unsigned char *buf;
	uint64_t buf_off;
	size_t buf_len;
	bool writable;
};

static void file_free(struct queue_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f->sender);
	free(f->envid);
	hash_destroy(&f->attrs);
	free(f->rcpt_offsets);
	free(f->buf);
	free(f);
}

void queue_file_close(struct queue_file **fp)
{
	if (*fp == NULL)
		return;
	file_free(*fp);
	*fp = NULL;
}

static enum queue_file_status corrupt(const struct queue_file *f, uint64_t off, str_t *error,
                                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum queue_file_status corrupt(const struct queue_file *f, uint64_t off, str_t *error,
                                      const char *fmt, ...)
{
	va_list ap;

	str_appendf(error, "%s: corrupt queue file at offset %llu: ", f->path,
	            (unsigned long long)off);
	va_start(ap, fmt);
	str_vappendf(error, fmt, ap);
	va_end(ap);
	errno = EBADMSG;
	return QUEUE_FILE_CORRUPT;
}

/* Make len bytes at off available in the buffer: 0 and *p_r, or -1 on a
 * read error (errno) or when the file ends early (errno EBADMSG). The
 * caller has checked off + len against the file size. */
static int file_need(struct queue_file *f, uint64_t off, size_t len, const unsigned char **p_r,
                     str_t *error)
{
	size_t want, got = 0;

	if (off >= f->buf_off && off + len <= f->buf_off + f->buf_len) {
		*p_r = f->buf + (off - f->buf_off);
		return 0;
	}
	want = len > READ_BUFFER ? len : READ_BUFFER;
	if (want > f->env.file_size - off)
		want = (size_t)(f->env.file_size - off);
	if (want < len)
		want = len;
	f->buf = xrealloc(f->buf, want > READ_BUFFER ? want : READ_BUFFER);
	f->buf_off = off;
	f->buf_len = 0;
	while (got < want) {
		ssize_t n = pread(f->fd, f->buf + got, want - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			str_appendf(error, "read %s: %m", f->path);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	f->buf_len = got;
	if (got < len) { /* shrank under us */
		errno = EBADMSG;
		return -1;
	}
	*p_r = f->buf;
	return 0;
}

static bool has_nul(const unsigned char *p, size_t len)
{
	return memchr(p, '\0', len) != NULL;
}

/* Check one recipient payload; NULL or what is wrong. */
static const char *rcpt_check(const unsigned char *p, size_t len, struct queue_rcpt *r)
{
	struct queue_rcpt_status st;
	size_t alen, olen, pos;
	const char *why;

	if (len < QUEUE_STATUS_SLOT_SIZE + 3)
		return "recipient record too short";
	if ((why = slot_decode(p, &st)) != NULL)
		return why;
	if (p[QUEUE_STATUS_SLOT_SIZE] & ~QUEUE_NOTIFY_ALL)
		return "recipient has unknown DSN NOTIFY flags";
	alen = get_u16(p + QUEUE_STATUS_SLOT_SIZE + 1);
	pos = QUEUE_STATUS_SLOT_SIZE + 3;
	if (alen == 0 || alen > QUEUE_FIELD_MAX)
		return "recipient address length out of range";
	if (alen + 2 > len - pos)
		return "recipient address runs past its record";
	if (has_nul(p + pos, alen))
		return "recipient address contains NUL";
	olen = get_u16(p + pos + alen);
	if (olen > QUEUE_FIELD_MAX || pos + alen + 2 + olen != len)
		return "recipient ORCPT length does not match its record";
	if (has_nul(p + pos + alen + 2, olen))
		return "recipient ORCPT contains NUL";
	if (r != NULL) {
		r->status = st;
		r->notify = p[QUEUE_STATUS_SLOT_SIZE];
		str_reset(&r->address);
		str_append_n(&r->address, p + pos, alen);
		str_reset(&r->orcpt);
		str_append_n(&r->orcpt, p + pos + alen + 2, olen);
	}
	return NULL;
}

static char *dup_field(const unsigned char *p, size_t len)
{
	return xstrndup((const char *)p, len);
}

/* Parse and check every record; fill the envelope. */
static enum queue_file_status file_parse(struct queue_file *f, str_t *error)
{
	const unsigned char *p;
	uint64_t size = f->env.file_size, off, content_off, content_len;
	bool seen_time = false, seen_end = false, seen_ret = false;

	if (size < QUEUE_FILE_HEADER_SIZE)
		return corrupt(f, 0, error, "file too short for a header (%llu bytes)",
		               (unsigned long long)size);
	if (file_need(f, 0, QUEUE_FILE_HEADER_SIZE, &p, error) < 0)
		return errno == EBADMSG ? corrupt(f, 0, error, "file shrank while read")
		                        : QUEUE_FILE_ERROR;
	if (memcmp(p, QUEUE_FILE_MAGIC, 8) != 0)
		return corrupt(f, 0, error, "not a postern queue file (bad magic)");
	if (get_u16(p + 8) != QUEUE_FILE_VERSION)
		return corrupt(f, 8, error, "unsupported queue file version %u (this is %u)",
		               get_u16(p + 8), QUEUE_FILE_VERSION);
	for (int i = 10; i < 16; i++)
		if (p[i] != 0)
			return corrupt(f, (uint64_t)i, error, "reserved header byte is not zero");
	content_off = get_u64(p + 16);
	content_len = get_u64(p + 24);
	if (content_off < QUEUE_FILE_HEADER_SIZE || content_off > size ||
	    content_len > size - content_off)
		return corrupt(f, 16, error, "content range %llu+%llu outside the file",
		               (unsigned long long)content_off, (unsigned long long)content_len);
	f->env.content_offset = content_off;
	f->env.content_length = content_len;
	off = QUEUE_FILE_HEADER_SIZE;
	for (;;) {
		unsigned type;
		uint32_t len;
		uint64_t start = off;

		if (size - off < QUEUE_RECORD_HEADER_SIZE)
			return corrupt(f, off, error, "file ends before the complete marker");
		if (file_need(f, off, QUEUE_RECORD_HEADER_SIZE, &p, error) < 0)
			return errno == EBADMSG ? corrupt(f, off, error, "file shrank while read")
			                        : QUEUE_FILE_ERROR;
		type = p[0];
		len = get_u32(p + 1);
		off += QUEUE_RECORD_HEADER_SIZE;
		if (len > QUEUE_RECORD_MAX)
			return corrupt(f, start, error, "record '%c' length %lu exceeds %u",
			               type >= 0x21 && type < 0x7f ? (char)type : '?',
			               (unsigned long)len, QUEUE_RECORD_MAX);
		if (len > size - off)
			return corrupt(f, start, error, "record runs past the end of the file");
		if (file_need(f, off, len, &p, error) < 0)
			return errno == EBADMSG ? corrupt(f, off, error, "file shrank while read")
			                        : QUEUE_FILE_ERROR;
		if (!seen_time && type != REC_TIME)
			return corrupt(f, start, error, "first record is not the arrival time");
		switch (type) {
		case REC_TIME:
			if (seen_time)
				return corrupt(f, start, error, "arrival time given twice");
			if (len != 12 || get_u64(p) > INT64_MAX || get_u32(p + 8) >= 1000000u)
				return corrupt(f, start, error, "bad arrival time record");
			f->env.arrival.tv_sec = (time_t)get_u64(p);
			f->env.arrival.tv_usec = (suseconds_t)get_u32(p + 8);
			seen_time = true;
			break;
		case REC_SENDER:
			if (seen_end || f->sender != NULL)
				return corrupt(f, start, error, "sender repeated or out of place");
			if (len > QUEUE_FIELD_MAX || has_nul(p, len))
				return corrupt(f, start, error, "bad sender record");
			f->sender = dup_field(p, len);
			break;
		case REC_ENVID:
			if (seen_end || f->envid != NULL)
				return corrupt(f, start, error, "ENVID repeated or out of place");
			if (len == 0 || len > QUEUE_FIELD_MAX || has_nul(p, len))
				return corrupt(f, start, error, "bad ENVID record");
			f->envid = dup_field(p, len);
			break;
		case REC_RET:
			if (seen_end || seen_ret)
				return corrupt(f, start, error, "RET repeated or out of place");
			if (len != 1 || (p[0] != 'F' && p[0] != 'H'))
				return corrupt(f, start, error, "bad RET record");
			f->env.ret = p[0] == 'F' ? QUEUE_RET_FULL : QUEUE_RET_HDRS;
			seen_ret = true;
			break;
		case REC_ATTR: {
			const unsigned char *nul = memchr(p, '\0', len);
			size_t nlen = nul == NULL ? 0 : (size_t)(nul - p);
			char *name;

			if (nul == NULL || !attr_name_valid((const char *)p, nlen) ||
			    len - nlen - 1 > QUEUE_FIELD_MAX || has_nul(nul + 1, len - nlen - 1))
				return corrupt(f, start, error, "bad attribute record");
			name = dup_field(p, nlen);
			hash_put(f->attrs, name, dup_field(nul + 1, len - nlen - 1));
			free(name);
			break;
		}
		case REC_RCPT: {
			const char *why = rcpt_check(p, len, NULL);

			if (why != NULL)
				return corrupt(f, start, error, "%s", why);
			if (f->env.rcpt_count == f->rcpt_cap) {
				f->rcpt_cap = f->rcpt_cap == 0 ? 8 : f->rcpt_cap * 2;
				f->rcpt_offsets = xreallocarray(f->rcpt_offsets, f->rcpt_cap,
				                                sizeof(*f->rcpt_offsets));
			}
			f->rcpt_offsets[f->env.rcpt_count++] = start;
			break;
		}
		case REC_END:
			if (seen_end || len != 0)
				return corrupt(f, start, error, "bad or repeated end-of-envelope");
			if (off != content_off)
				return corrupt(f, start, error,
				               "content does not start after end-of-envelope "
				               "(header says %llu)",
				               (unsigned long long)content_off);
			seen_end = true;
			off += content_len;
			continue;
		case REC_COMPLETE:
			if (!seen_end)
				return corrupt(f, start, error,
				               "complete marker before the content");
			if (len != 8 || get_u64(p) != size || off + len != size)
				return corrupt(f, start, error,
				               "file size %llu does not match the complete marker",
				               (unsigned long long)size);
			if (f->sender == NULL)
				return corrupt(f, start, error, "no sender record");
			if (f->env.rcpt_count == 0)
				return corrupt(f, start, error, "no recipient records");
			return QUEUE_FILE_OK;
		default:
			if (type >= 'a' && type <= 'z')
				break; /* optional record of a later version */
			return corrupt(f, start, error, "unknown record type 0x%02x", type);
		}
		off += len;
	}
}

enum queue_file_status queue_file_open_path(const char *path, unsigned flags,
                                            struct queue_file **f_r, str_t *error)
{
	struct queue_file *f = xcalloc(1, sizeof(*f));
	const char *base = strrchr(path, '/');
	enum queue_file_status st;
	struct stat sb;

	*f_r = NULL;
	f->writable = (flags & QUEUE_FILE_RDWR) != 0;
	f->path = xstrdup(path);
	f->attrs = hash_new(free);
	f->fd = open(path, (f->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
	if (f->fd < 0 || fstat(f->fd, &sb) < 0) {
		int saved = errno;

		str_appendf(error, "open %s: %m", path);
		file_free(f);
		errno = saved;
		return QUEUE_FILE_ERROR;
	}
	if (!S_ISREG(sb.st_mode)) {
		st = corrupt(f, 0, error, "not a regular file");
		file_free(f);
		return st;
	}
	base = base == NULL ? path : base + 1;
	if (queue_id_valid(base))
		memcpy(f->env.id, base, QUEUE_ID_SIZE);
	f->env.file_size = (uint64_t)sb.st_size;
	st = file_parse(f, error);
	if (st != QUEUE_FILE_OK) {
		int saved = errno;

		file_free(f);
		errno = saved;
		return st;
	}
	f->env.sender = f->sender;
	f->env.envid = f->envid;
	*f_r = f;
	return QUEUE_FILE_OK;
}

enum queue_file_status queue_file_open(const struct queue_dir *qd, enum queue_name queue,
                                       const char *id, unsigned flags, struct queue_file **f_r,
                                       str_t *error)
{
	str_t path;
	enum queue_file_status st;
	int found;

	*f_r = NULL;
	if (!queue_id_valid(id)) {
		str_appendf(error, "\"%s\" is not a valid queue ID", id);
		errno = EINVAL;
		return QUEUE_FILE_ERROR;
	}
	str_init(&path);
	found = queue_dir_locate(qd, queue, id, &path, error);
	if (found == 0) {
		str_appendf(error, "%s: not in the %s queue", id, queue_name_str(queue));
		errno = ENOENT;
	}
	st = found == 1 ? queue_file_open_path(str_c(&path), flags, f_r, error) : QUEUE_FILE_ERROR;
	if (st != QUEUE_FILE_OK) {
		int saved = errno;

		str_free(&path);
		errno = saved;
		return st;
	}
	str_free(&path);
	return st;
}

const struct queue_envelope *queue_file_envelope(const struct queue_file *f)
{
	return &f->env;
}

const char *queue_file_path(const struct queue_file *f)
{
	return f->path;
}

const char *queue_file_attr(const struct queue_file *f, const char *name)
{
	return hash_get(f->attrs, name);
}

bool queue_file_attr_next(const struct queue_file *f, size_t *pos, const char **name_r,
                          const char **value_r)
{
	void *value;

	if (!hash_next(f->attrs, pos, name_r, &value))
		return false;
	*value_r = value;
	return true;
}

int queue_file_fd(const struct queue_file *f)
{
	return f->fd;
}

void queue_rcpt_init(struct queue_rcpt *r)
{
	memset(r, 0, sizeof(*r));
	str_init(&r->address);
	str_init(&r->orcpt);
}

void queue_rcpt_free(struct queue_rcpt *r)
{
	str_free(&r->address);
	str_free(&r->orcpt);
}

enum queue_file_status queue_file_read_rcpt(struct queue_file *f, size_t index,
                                            struct queue_rcpt *r, str_t *error)
{
	uint64_t off;
	const unsigned char *p;
	const char *why;
	uint32_t len;

	if (index >= f->env.rcpt_count) {
		str_appendf(error, "%s: no recipient %zu", f->path, index);
		errno = EINVAL;
		return QUEUE_FILE_ERROR;
	}
	off = f->rcpt_offsets[index];
	/* Slots change on disk (other updates): always read afresh. */
	f->buf_len = 0;
	if (file_need(f, off, QUEUE_RECORD_HEADER_SIZE, &p, error) < 0)
		return errno == EBADMSG ? corrupt(f, off, error, "file shrank while read")
		                        : QUEUE_FILE_ERROR;
	len = get_u32(p + 1);
	if (p[0] != REC_RCPT || len > QUEUE_RECORD_MAX ||
	    off + QUEUE_RECORD_HEADER_SIZE + len > f->env.file_size)
		return corrupt(f, off, error, "recipient record changed on disk");
	if (file_need(f, off + QUEUE_RECORD_HEADER_SIZE, len, &p, error) < 0)
		return errno == EBADMSG ? corrupt(f, off, error, "file shrank while read")
		                        : QUEUE_FILE_ERROR;
	if ((why = rcpt_check(p, len, r)) != NULL)
		return corrupt(f, off, error, "%s", why);
	r->index = index;
	return QUEUE_FILE_OK;
}

ssize_t queue_file_read_content(struct queue_file *f, uint64_t pos, void *buf, size_t len,
                                str_t *error)
{
	ssize_t n;

	if (pos >= f->env.content_length)
		return 0;
	if (len > f->env.content_length - pos)
		len = (size_t)(f->env.content_length - pos);
	do
		n = pread(f->fd, buf, len, (off_t)(f->env.content_offset + pos));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		str_appendf(error, "read %s: %m", f->path);
	else if (n == 0 && len > 0) {
		str_appendf(error, "%s: content ends early (file shrank)", f->path);
		errno = EIO;
		n = -1;
	}
	return n;
}

int queue_file_sync(struct queue_file *f, str_t *error)
{
	if (fdatasync(f->fd) < 0) {
		str_appendf(error, "fdatasync %s: %m", f->path);
		return -1;
	}
	return 0;
}

int queue_file_update_retry(struct queue_file *f, size_t index, uint64_t next_retry, str_t *error)
{
	unsigned char field[8];
	uint64_t off;
	ssize_t n;

	if (!f->writable || index >= f->env.rcpt_count) {
		str_appendf(error, "%s: cannot update recipient %zu", f->path, index);
		errno = EINVAL;
		return -1;
	}
	off = f->rcpt_offsets[index] + QUEUE_RECORD_HEADER_SIZE + 4;
	put_u64(field, next_retry);
	do
		n = pwrite(f->fd, field, sizeof(field), (off_t)off);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(field)) {
		if (n >= 0)
			errno = EIO;
		str_appendf(error, "write %s: %m", f->path);
		return -1;
	}
	if (off < f->buf_off + f->buf_len && off + sizeof(field) > f->buf_off)
		f->buf_len = 0; /* drop the stale buffer */
	return 0;
}

int queue_file_update_rcpt(struct queue_file *f, size_t index,
                           const struct queue_rcpt_status *status, bool sync, str_t *error)
{
	unsigned char slot[QUEUE_STATUS_SLOT_SIZE];
	uint64_t off;
	ssize_t n;

	if (!f->writable || index >= f->env.rcpt_count || status->state > QUEUE_RCPT_STATE_MAX) {
		str_appendf(error, "%s: cannot update recipient %zu", f->path, index);
		errno = EINVAL;
		return -1;
	}
	off = f->rcpt_offsets[index] + QUEUE_RECORD_HEADER_SIZE;
	slot_encode(slot, status);
	/* Why in place and why this is safe: the slot has a fixed size and
	 * position, so the update neither moves nor resizes anything, and the
	 * file stays valid whichever bytes of the 32 reach the disk before a
	 * crash. The byte that matters, the state, is a single byte and so is
	 * written whole or not at all; the other fields only inform. The
	 * caller records the state only after the delivery is durable (the
	 * agent fsync'd the mailbox or the remote server said 250), so a crash
	 * between the two re-delivers: a duplicate at worst, never a loss.
	 * fdatasync suffices: the file's size does not change. */
	do
		n = pwrite(f->fd, slot, sizeof(slot), (off_t)off);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(slot)) {
		if (n >= 0)
			errno = EIO;
		str_appendf(error, "write %s: %m", f->path);
		return -1;
	}
	if (off < f->buf_off + f->buf_len && off + sizeof(slot) > f->buf_off)
		f->buf_len = 0; /* drop the stale buffer */
	return sync ? queue_file_sync(f, error) : 0;
}
