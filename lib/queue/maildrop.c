/* maildrop.c - maildrop file writer and bounded, validating reader (see
 * maildrop.h for the format).
 *
 * The stream writer is used by `postern sendmail`, the file writer,
 * maildrop_relay() and maildrop_dir_create() by postdrop (and the latter
 * by master), the reader by pickup and by the maildrop fuzz target. Guarantees on failure: a writer that fails or
 * is destroyed before commit leaves no file behind; the reader never uses
 * a length it has not checked against the file size and the fixed bounds,
 * holds at most MAILDROP_ENVELOPE_MAX bytes of envelope in memory whatever
 * the file says, and reports a bad file as MAILDROP_CORRUPT with the
 * offset of the problem.
 *
 * SECURITY: the content of every maildrop file comes from an arbitrary
 * local user, so every byte of it is hostile input to postdrop (setgid)
 * and to pickup; only the submit_uid record postdrop adds is trusted.
 */
#include "queue/maildrop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/types.h>

#include "base/bigendian.h"
#include "base/fs.h"
#include "base/mem.h"
#include "base/strv.h"
#include "queue/queue_id.h"

#define REC_SENDER 'S'
#define REC_RCPT 'R'
#define REC_ATTR 'A'
#define REC_CONTENT 'C'
#define REC_END 'E'

static enum maildrop_status sys_error(str_t *error, const char *what);

bool maildrop_attr_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > MAILDROP_ATTR_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
			return false;
	}
	return true;
}

bool maildrop_text_valid(const char *s, size_t len)
{
	if (len > MAILDROP_FIELD_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

/* ---- Writer ---- */

struct maildrop_writer {
	int fd; /* the file; -1 once closed or for a stream */
	int stream_fd; /* maildrop_writer_open_fd(): borrowed; else -1 */
	char *tmp_path; /* removed on destroy unless committed */
	char id[QUEUE_ID_SIZE];
	char *dir;
	str_t chunk; /* content not yet written as a record */
	uint64_t content_size;
	bool have_sender;
	bool in_content;
	bool committed;
	int failed; /* sticky errno, 0 while fine */
};

static int writer_fail(struct maildrop_writer *w, int err, str_t *error, const char *what)
{
	if (w->failed == 0) {
		w->failed = err;
		str_appendf(error, "maildrop file %s: %s: %s", w->id, what, strerror(err));
	} else {
		str_appendf(error, "maildrop file %s: earlier error: %s", w->id,
		            strerror(w->failed));
	}
	errno = w->failed;
	return -1;
}

static int writer_record(struct maildrop_writer *w, char type, const void *a, size_t alen,
                         const void *b, size_t blen, str_t *error)
{
	unsigned char head[MAILDROP_RECORD_HEADER_SIZE];

	int fd = w->stream_fd >= 0 ? w->stream_fd : w->fd;

	head[0] = (unsigned char)type;
	put_u32(head + 1, (uint32_t)(alen + blen));
	if (fs_write_all(fd, head, sizeof(head)) < 0 ||
	    (alen > 0 && fs_write_all(fd, a, alen) < 0) ||
	    (blen > 0 && fs_write_all(fd, b, blen) < 0))
		return writer_fail(w, errno != 0 ? errno : EIO, error, "write");
	return 0;
}

/* Make the rename durable. Why not fs_durable_commit(): the maildrop
 * directory is 1733, so the user sendmail runs as may create files in it
 * but not open it for reading, and fsync needs an open directory. When
 * that is refused, syncfs() on the file's own descriptor flushes the
 * whole file system, directory entry included: slower, equally safe. */
static int sync_dir_entry(struct maildrop_writer *w)
{
	int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd >= 0) {
		int ret = fsync(dfd);

		close(dfd);
		return ret;
	}
	if (errno != EACCES)
		return -1;
	return syncfs(w->fd);
}

int maildrop_writer_open(const char *dir, struct maildrop_writer **w_r, str_t *error)
{
	struct maildrop_writer *w = xcalloc(1, sizeof(*w));
	unsigned char head[MAILDROP_HEADER_SIZE];

	*w_r = NULL;
	w->fd = -1;
	w->stream_fd = -1;
	queue_id_generate(w->id, NULL);
	w->dir = xstrdup(dir);
	str_init(&w->chunk);
	w->tmp_path = xasprintf("%s/%s%s", dir, MAILDROP_TEMP_PREFIX, w->id);
	w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	             MAILDROP_FILE_MODE);
	if (w->fd < 0) {
		int err = errno;

		str_appendf(error, "create %s: %s", w->tmp_path, strerror(err));
		free(w->tmp_path);
		w->tmp_path = NULL; /* not ours: never remove it */
		maildrop_writer_destroy(&w);
		errno = err;
		return -1;
	}
	memset(head, 0, sizeof(head));
	memcpy(head, MAILDROP_MAGIC, 8);
	head[8] = 0;
	head[9] = MAILDROP_VERSION;
	if (fs_write_all(w->fd, head, sizeof(head)) < 0) {
		int err = errno;

		str_appendf(error, "write %s: %s", w->tmp_path, strerror(err));
		maildrop_writer_destroy(&w);
		errno = err;
		return -1;
	}
	*w_r = w;
	return 0;
}

int maildrop_writer_open_fd(int fd, struct maildrop_writer **w_r, str_t *error)
{
	struct maildrop_writer *w = xcalloc(1, sizeof(*w));
	unsigned char head[MAILDROP_HEADER_SIZE];

	w->fd = -1;
	w->stream_fd = fd;
	snprintf(w->id, sizeof(w->id), "-");
	str_init(&w->chunk);
	memset(head, 0, sizeof(head));
	memcpy(head, MAILDROP_MAGIC, 8);
	head[9] = MAILDROP_VERSION;
	if (fs_write_all(fd, head, sizeof(head)) < 0) {
		int err = errno;

		str_appendf(error, "write maildrop stream: %s", strerror(err));
		maildrop_writer_destroy(&w);
		*w_r = NULL;
		errno = err;
		return -1;
	}
	*w_r = w;
	return 0;
}

const char *maildrop_writer_id(const struct maildrop_writer *w)
{
	return w->id;
}

static int writer_envelope_ok(struct maildrop_writer *w, bool sender, str_t *error)
{
	if (w->failed != 0)
		return writer_fail(w, w->failed, error, "write");
	if (w->in_content || w->committed || sender == w->have_sender)
		return writer_fail(w, EINVAL, error, "envelope record out of order");
	return 0;
}

int maildrop_writer_sender(struct maildrop_writer *w, const char *sender, str_t *error)
{
	size_t len = strlen(sender);

	if (writer_envelope_ok(w, true, error) < 0)
		return -1;
	if (!maildrop_text_valid(sender, len))
		return writer_fail(w, EINVAL, error, "bad sender address");
	w->have_sender = true;
	return writer_record(w, REC_SENDER, sender, len, NULL, 0, error);
}

int maildrop_writer_rcpt(struct maildrop_writer *w, const char *rcpt, str_t *error)
{
	size_t len = strlen(rcpt);

	if (writer_envelope_ok(w, false, error) < 0)
		return -1;
	if (len == 0 || !maildrop_text_valid(rcpt, len))
		return writer_fail(w, EINVAL, error, "bad recipient address");
	return writer_record(w, REC_RCPT, rcpt, len, NULL, 0, error);
}

int maildrop_writer_attr(struct maildrop_writer *w, const char *name, const char *value,
                         str_t *error)
{
	size_t vlen = strlen(value);

	if (writer_envelope_ok(w, false, error) < 0)
		return -1;
	if (!maildrop_attr_name_valid(name) || !maildrop_text_valid(value, vlen))
		return writer_fail(w, EINVAL, error, "bad attribute");
	return writer_record(w, REC_ATTR, name, strlen(name) + 1, value, vlen, error);
}

static int writer_flush(struct maildrop_writer *w, str_t *error)
{
	if (w->chunk.len == 0)
		return 0;
	if (writer_record(w, REC_CONTENT, w->chunk.buf, w->chunk.len, NULL, 0, error) < 0)
		return -1;
	str_reset(&w->chunk);
	return 0;
}

int maildrop_writer_content(struct maildrop_writer *w, const void *data, size_t len, str_t *error)
{
	const char *p = data;

	if (w->failed != 0)
		return writer_fail(w, w->failed, error, "write");
	if (!w->have_sender || w->committed)
		return writer_fail(w, EINVAL, error, "content out of order");
	w->in_content = true;
	while (len > 0) {
		size_t room = MAILDROP_CHUNK_MAX - w->chunk.len;
		size_t n = len < room ? len : room;

		str_append_n(&w->chunk, p, n);
		p += n;
		len -= n;
		w->content_size += n;
		if (w->chunk.len == MAILDROP_CHUNK_MAX && writer_flush(w, error) < 0)
			return -1;
	}
	return 0;
}

uint64_t maildrop_writer_content_size(const struct maildrop_writer *w)
{
	return w->content_size;
}

int maildrop_writer_commit(struct maildrop_writer *w, str_t *error)
{
	unsigned char total[8];
	char *path;
	int ret;

	if (w->failed != 0)
		return writer_fail(w, w->failed, error, "write");
	if (!w->have_sender || w->committed)
		return writer_fail(w, EINVAL, error, "commit out of order");
	put_u64(total, w->content_size);
	if (writer_flush(w, error) < 0 ||
	    writer_record(w, REC_END, total, sizeof(total), NULL, 0, error) < 0)
		return -1;
	if (w->stream_fd >= 0) {
		w->committed = true;
		return 0;
	}
	path = xasprintf("%s/%s", w->dir, w->id);
	/* STYLE 18 order: fsync the file, rename without replacing, make
	 * the directory entry durable. Only after that may sendmail exit 0. */
	if (fsync(w->fd) < 0) {
		ret = writer_fail(w, errno, error, "fsync");
	} else if (fs_rename_noreplace(w->tmp_path, path) < 0) {
		ret = writer_fail(w, errno, error, "rename");
	} else {
		w->committed = true; /* the file is in place: never remove it */
		ret = sync_dir_entry(w) < 0 ? writer_fail(w, errno, error, "sync directory") : 0;
	}
	free(path);
	return ret;
}

void maildrop_writer_destroy(struct maildrop_writer **wp)
{
	struct maildrop_writer *w = *wp;
	int err = errno;

	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (!w->committed && w->tmp_path != NULL)
		(void)unlink(w->tmp_path);
	free(w->tmp_path);
	str_free(&w->chunk);
	free(w->dir);
	free(w);
	*wp = NULL;
	errno = err;
}

/* ---- postdrop ---- */

int maildrop_dir_create(const char *queue_root, uid_t uid, gid_t gid, str_t *error)
{
	char *dir = xasprintf("%s/%s", queue_root, MAILDROP_DIR_NAME);
	int ret = -1;

	/* chown before chmod: chown clears the set-id bits, and the mode
	 * (1730) is set last, when the group is already the right one. */
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		str_appendf(error, "create directory %s: %s", dir, strerror(errno));
	else if (uid != (uid_t)-1 && chown(dir, uid, gid) < 0)
		str_appendf(error, "chown %s to %lu:%lu: %s", dir, (unsigned long)uid,
		            (unsigned long)gid, strerror(errno));
	else if (chmod(dir, MAILDROP_DIR_MODE) < 0)
		str_appendf(error, "chmod %s: %s", dir, strerror(errno));
	else
		ret = 0;
	free(dir);
	return ret;
}

/* Read exactly len bytes from a stream: 0, 1 at end of input before
 * len bytes (none or some), -1 on an error (errno). */
static int stream_read(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static enum maildrop_status relay_bad(str_t *error, uint64_t off, const char *what)
{
	str_appendf(error, "bad input at offset %llu: %s", (unsigned long long)off, what);
	return MAILDROP_CORRUPT;
}

/* A writer call failed: EINVAL means the writer refused the text. */
static enum maildrop_status relay_write_failed(void)
{
	return errno == EINVAL ? MAILDROP_CORRUPT : MAILDROP_ERROR;
}

enum maildrop_status maildrop_relay(int in_fd, struct maildrop_writer *w, uid_t uid,
                                    uint64_t max_content, str_t *error)
{
	unsigned char head[MAILDROP_HEADER_SIZE], rec[MAILDROP_RECORD_HEADER_SIZE];
	char *buf = xmalloc(MAILDROP_CHUNK_MAX + 1);
	uint64_t off = 0, content = 0, envelope_bytes = 0;
	enum maildrop_status status = MAILDROP_OK;
	bool have_sender = false, uid_written = false;
	char uidbuf[32];
	int r;

	snprintf(uidbuf, sizeof(uidbuf), "%lu", (unsigned long)uid);
	r = stream_read(in_fd, head, sizeof(head));
	if (r != 0) {
		free(buf);
		return r < 0 ? sys_error(error, "read input")
		             : relay_bad(error, 0, "no file header");
	}
	if (memcmp(head, MAILDROP_MAGIC, 8) != 0 || head[8] != 0 || head[9] != MAILDROP_VERSION) {
		free(buf);
		return relay_bad(error, 0, "bad magic or version");
	}
	off = MAILDROP_HEADER_SIZE;
	for (;;) {
		uint32_t len;
		char type;

		r = stream_read(in_fd, rec, sizeof(rec));
		if (r != 0) {
			status = r < 0 ? sys_error(error, "read input")
			               : relay_bad(error, off, "truncated: no end record");
			break;
		}
		type = (char)rec[0];
		len = get_u32(rec + 1);
		if (type == REC_CONTENT || type == REC_END) {
			if (!have_sender) {
				status = relay_bad(error, off, "no sender record first");
				break;
			}
			if (!uid_written) {
				/* The one trusted record, written after every
				 * submitted attribute, before the content. */
				uid_written = true;
				if (maildrop_writer_attr(w, MAILDROP_ATTR_SUBMIT_UID, uidbuf,
				                         error) < 0) {
					status = relay_write_failed();
					break;
				}
			}
		}
		if (type == REC_END) {
			unsigned char total[8], extra;

			if (len != 8) {
				status = relay_bad(error, off, "bad end record length");
				break;
			}
			r = stream_read(in_fd, total, sizeof(total));
			if (r != 0) {
				status = r < 0 ? sys_error(error, "read input")
				               : relay_bad(error, off, "truncated end record");
				break;
			}
			if (get_u64(total) != content) {
				status = relay_bad(error, off, "content length mismatch");
				break;
			}
			r = stream_read(in_fd, &extra, 1);
			if (r < 0)
				status = sys_error(error, "read input");
			else if (r == 0)
				status = relay_bad(error, off, "data after the end record");
			break;
		}
		if (type == REC_CONTENT) {
			if (len == 0 || len > MAILDROP_CHUNK_MAX) {
				status = relay_bad(error, off, "bad content record length");
				break;
			}
		} else if (len > MAILDROP_FIELD_MAX + MAILDROP_ATTR_NAME_MAX + 1) {
			status = relay_bad(error, off, "envelope record too long");
			break;
		} else if ((envelope_bytes += len + MAILDROP_RECORD_HEADER_SIZE) >
		           MAILDROP_ENVELOPE_MAX) {
			status = relay_bad(error, off, "envelope too large");
			break;
		}
		r = stream_read(in_fd, buf, len);
		if (r != 0) {
			status = r < 0 ? sys_error(error, "read input")
			               : relay_bad(error, off, "truncated record");
			break;
		}
		buf[len] = '\0';
		off += MAILDROP_RECORD_HEADER_SIZE + (uint64_t)len;
		if (type == REC_CONTENT) {
			content += len;
			if (max_content > 0 && content > max_content) {
				status = MAILDROP_TOO_BIG;
				break;
			}
			r = maildrop_writer_content(w, buf, len, error);
		} else if (type == REC_SENDER) {
			if (have_sender || memchr(buf, '\0', len) != NULL) {
				status = relay_bad(error, off, "bad or second sender record");
				break;
			}
			have_sender = true;
			r = maildrop_writer_sender(w, buf, error);
		} else if (!have_sender || uid_written) {
			status = relay_bad(error, off, "envelope record out of order");
			break;
		} else if (type == REC_RCPT) {
			if (memchr(buf, '\0', len) != NULL) {
				status = relay_bad(error, off, "bad recipient");
				break;
			}
			r = maildrop_writer_rcpt(w, buf, error);
		} else if (type == REC_ATTR) {
			const char *nul = memchr(buf, '\0', len);

			if (nul == NULL ||
			    memchr(nul + 1, '\0', len - (size_t)(nul - buf) - 1) != NULL) {
				status = relay_bad(error, off, "bad attribute");
				break;
			}
			/* Never the caller's word for who submitted. */
			r = strcmp(buf, MAILDROP_ATTR_SUBMIT_UID) == 0
			            ? 0
			            : maildrop_writer_attr(w, buf, nul + 1, error);
		} else {
			status = relay_bad(error, off, "unknown record type");
			break;
		}
		if (r < 0) {
			status = relay_write_failed();
			break;
		}
	}
	free(buf);
	return status;
}

/* ---- Reader ---- */

struct maildrop {
	int fd;
	uint64_t file_size;
	char *sender;
	strv_t rcpts;
	strv_t attr_names;
	strv_t attr_values;
	uint64_t content_start; /* offset of the first content record */
	uint64_t content_size;
	/* streaming state */
	uint64_t next_record; /* offset of the next content record header */
	uint64_t chunk_pos; /* offset of unread bytes in the current record */
	uint64_t chunk_left; /* unread bytes in the current record */
	uint64_t content_read;
};

/* Read exactly len bytes at off; 0, or -1 (errno; EIO for a short read,
 * which the callers have excluded by checking against the size). */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static enum maildrop_status corrupt(str_t *error, uint64_t off, const char *what)
{
	str_appendf(error, "corrupt maildrop file at offset %llu: %s", (unsigned long long)off,
	            what);
	return MAILDROP_CORRUPT;
}

static enum maildrop_status sys_error(str_t *error, const char *what)
{
	int err = errno;

	str_appendf(error, "maildrop file %s: %s", what, strerror(err));
	errno = err;
	return MAILDROP_ERROR;
}

/* Parse one envelope record's payload into m. */
static enum maildrop_status envelope_record(struct maildrop *m, char type, const char *p,
                                            size_t len, uint64_t off, str_t *error)
{
	switch (type) {
	case REC_SENDER:
		if (m->sender != NULL)
			return corrupt(error, off, "second sender record");
		if (!maildrop_text_valid(p, len))
			return corrupt(error, off, "bad sender");
		m->sender = xstrndup(p, len);
		return MAILDROP_OK;
	case REC_RCPT:
		if (len == 0 || !maildrop_text_valid(p, len))
			return corrupt(error, off, "bad recipient");
		strv_add_n(&m->rcpts, p, len);
		return MAILDROP_OK;
	case REC_ATTR: {
		const char *nul = memchr(p, '\0', len);
		char *name;
		bool ok;

		if (nul == NULL)
			return corrupt(error, off, "attribute without a name terminator");
		name = xstrndup(p, (size_t)(nul - p));
		ok = maildrop_attr_name_valid(name) &&
		     maildrop_text_valid(nul + 1, len - (size_t)(nul - p) - 1);
		if (!ok) {
			free(name);
			return corrupt(error, off, "bad attribute");
		}
		strv_add_owned(&m->attr_names, name);
		strv_add_n(&m->attr_values, nul + 1, len - (size_t)(nul - p) - 1);
		return MAILDROP_OK;
	}
	default:
		return corrupt(error, off, "unknown record type");
	}
}

enum maildrop_status maildrop_open_fd(int fd, uint64_t max_content, struct maildrop **m_r,
                                      str_t *error)
{
	unsigned char head[MAILDROP_HEADER_SIZE];
	unsigned char rec[MAILDROP_RECORD_HEADER_SIZE];
	struct maildrop *m;
	struct stat st;
	uint64_t off = MAILDROP_HEADER_SIZE, envelope_bytes = 0;
	str_t payload;
	enum maildrop_status status = MAILDROP_OK;

	*m_r = NULL;
	if (fstat(fd, &st) < 0)
		return sys_error(error, "fstat");
	if (!S_ISREG(st.st_mode))
		return corrupt(error, 0, "not a regular file");
	if ((uint64_t)st.st_size < MAILDROP_HEADER_SIZE)
		return corrupt(error, 0, "shorter than the file header");
	if (read_at(fd, head, sizeof(head), 0) < 0)
		return sys_error(error, "read");
	if (memcmp(head, MAILDROP_MAGIC, 8) != 0)
		return corrupt(error, 0, "bad magic");
	if (head[8] != 0 || head[9] != MAILDROP_VERSION)
		return corrupt(error, 8, "unsupported version");
	for (size_t i = 10; i < MAILDROP_HEADER_SIZE; i++) {
		if (head[i] != 0)
			return corrupt(error, i, "reserved header bytes not zero");
	}

	m = xcalloc(1, sizeof(*m));
	m->fd = fd;
	m->file_size = (uint64_t)st.st_size;
	str_init(&payload);
	/* Every way out of this loop is a break: the end record, or an error. */
	while (status == MAILDROP_OK) {
		uint32_t len;
		char type;

		if (m->file_size - off < MAILDROP_RECORD_HEADER_SIZE) {
			status = corrupt(error, off, "truncated: no end record");
			break;
		}
		if (read_at(fd, rec, sizeof(rec), off) < 0) {
			status = sys_error(error, "read");
			break;
		}
		type = (char)rec[0];
		len = get_u32(rec + 1);
		if ((uint64_t)len > m->file_size - off - MAILDROP_RECORD_HEADER_SIZE) {
			status = corrupt(error, off, "record extends past the end of the file");
			break;
		}
		if (type == REC_END) {
			unsigned char total[8];

			if (len != 8) {
				status = corrupt(error, off, "bad end record length");
				break;
			}
			if (read_at(fd, total, 8, off + MAILDROP_RECORD_HEADER_SIZE) < 0) {
				status = sys_error(error, "read");
				break;
			}
			if (m->sender == NULL) {
				status = corrupt(error, off, "no sender record");
				break;
			}
			if (get_u64(total) != m->content_size) {
				status = corrupt(error, off, "content length mismatch");
				break;
			}
			if (off + MAILDROP_RECORD_HEADER_SIZE + 8 != m->file_size) {
				status = corrupt(error, off, "data after the end record");
				break;
			}
			if (m->content_start == 0)
				m->content_start = off;
			break;
		}
		if (type == REC_CONTENT) {
			if (m->sender == NULL) {
				status = corrupt(error, off, "content before the sender");
				break;
			}
			if (len == 0 || len > MAILDROP_CHUNK_MAX) {
				status = corrupt(error, off, "bad content record length");
				break;
			}
			if (m->content_start == 0)
				m->content_start = off;
			m->content_size += len;
		} else {
			if (m->content_start != 0) {
				status = corrupt(error, off, "envelope record after the content");
				break;
			}
			if (m->sender == NULL && type != REC_SENDER) {
				status = corrupt(error, off, "first record is not the sender");
				break;
			}
			if (len > MAILDROP_FIELD_MAX + MAILDROP_ATTR_NAME_MAX + 1) {
				status = corrupt(error, off, "envelope record too long");
				break;
			}
			envelope_bytes += len + MAILDROP_RECORD_HEADER_SIZE;
			if (envelope_bytes > MAILDROP_ENVELOPE_MAX) {
				status = corrupt(error, off, "envelope too large");
				break;
			}
			str_reset(&payload);
			str_reserve(&payload, len);
			if (read_at(fd, payload.buf, len, off + MAILDROP_RECORD_HEADER_SIZE) < 0) {
				status = sys_error(error, "read");
				break;
			}
			payload.len = len;
			payload.buf[len] = '\0';
			status = envelope_record(m, type, payload.buf, len, off, error);
		}
		off += MAILDROP_RECORD_HEADER_SIZE + (uint64_t)len;
	}
	str_free(&payload);
	if (status == MAILDROP_OK && max_content > 0 && m->content_size > max_content)
		status = MAILDROP_TOO_BIG;
	if (status != MAILDROP_OK && status != MAILDROP_TOO_BIG) {
		maildrop_close(&m);
		return status;
	}
	m->next_record = m->content_start;
	*m_r = m;
	return status;
}

void maildrop_close(struct maildrop **mp)
{
	struct maildrop *m = *mp;

	if (m == NULL)
		return;
	free(m->sender);
	strv_free(&m->rcpts);
	strv_free(&m->attr_names);
	strv_free(&m->attr_values);
	free(m);
	*mp = NULL;
}

const char *maildrop_sender(const struct maildrop *m)
{
	return m->sender;
}

size_t maildrop_rcpt_count(const struct maildrop *m)
{
	return m->rcpts.n;
}

const char *maildrop_rcpt(const struct maildrop *m, size_t index)
{
	return index < m->rcpts.n ? m->rcpts.v[index] : NULL;
}

const char *maildrop_attr(const struct maildrop *m, const char *name)
{
	for (size_t i = m->attr_names.n; i > 0; i--) {
		if (strcmp(m->attr_names.v[i - 1], name) == 0)
			return m->attr_values.v[i - 1];
	}
	return NULL;
}

bool maildrop_attr_next(const struct maildrop *m, size_t *pos, const char **name_r,
                        const char **value_r)
{
	if (*pos >= m->attr_names.n)
		return false;
	*name_r = m->attr_names.v[*pos];
	*value_r = m->attr_values.v[*pos];
	(*pos)++;
	return true;
}

uint64_t maildrop_content_size(const struct maildrop *m)
{
	return m->content_size;
}

ssize_t maildrop_read_content(struct maildrop *m, void *buf, size_t len, str_t *error)
{
	size_t n;

	/* Why re-check each record header: the file belongs to the user who
	 * submitted it and may be rewritten after maildrop_open_fd()
	 * validated it. Everything read must still fit what was validated. */
	while (m->chunk_left == 0) {
		unsigned char rec[MAILDROP_RECORD_HEADER_SIZE];
		uint32_t rlen;

		if (m->content_read == m->content_size)
			return 0;
		if (m->next_record + MAILDROP_RECORD_HEADER_SIZE > m->file_size)
			return corrupt(error, m->next_record, "file changed while read");
		if (read_at(m->fd, rec, sizeof(rec), m->next_record) < 0)
			return errno == EIO
			               ? corrupt(error, m->next_record, "file changed while read")
			               : sys_error(error, "read");
		rlen = get_u32(rec + 1);
		if (rec[0] != REC_CONTENT || rlen == 0 || rlen > MAILDROP_CHUNK_MAX ||
		    (uint64_t)rlen > m->content_size - m->content_read)
			return corrupt(error, m->next_record, "file changed while read");
		m->chunk_pos = m->next_record + MAILDROP_RECORD_HEADER_SIZE;
		m->chunk_left = rlen;
		m->next_record = m->chunk_pos + rlen;
	}
	if (len == 0)
		return 0;
	n = len < m->chunk_left ? len : (size_t)m->chunk_left;
	if (read_at(m->fd, buf, n, m->chunk_pos) < 0)
		return errno == EIO ? corrupt(error, m->chunk_pos, "file changed while read")
		                    : sys_error(error, "read");
	m->chunk_pos += n;
	m->chunk_left -= n;
	m->content_read += n;
	return (ssize_t)n;
}
