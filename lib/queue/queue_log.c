/* queue_log.c - per-message delivery status logs (see queue_log.h).
 *
 * Written by qmgr after each delivery attempt, read by the queue commands
 * and by qmgr when it builds a bounce or delay warning. An append either
 * lands whole in one write() or fails with errno; a partial entry left by
 * a crash is ignored by readers.
 */
#include "queue/queue_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/bigendian.h"
#include "base/fs.h"
#include "base/hash.h"
#include "base/mem.h"

#define LOG_MAGIC "POSTERNL"
#define LOG_VERSION 1
#define LOG_HEADER_SIZE 16
#define ENTRY_TYPE 'D'
#define ENTRY_FIXED 26
#define FINAL_TYPE 'F'
#define FINAL_FIXED 13

struct queue_log {
	hash_t *entries; /* decimal index -> struct stored_entry */
	hash_t *finals; /* "index address" -> state (stored as a pointer) */
	size_t count;
};

struct stored_entry {
	struct queue_log_entry e;
	char *reason;
};

/* Append one record (type, payload) to id's log, creating the log with its
 * header on first use; one write, so a reader never sees half a record
 * but after a crash. */
static int append_record(const struct queue_dir *qd, const char *id, unsigned char type,
                         const str_t *payload, bool sync, str_t *error)
{
	unsigned char head[LOG_HEADER_SIZE] = {0};
	str_t path, rec;
	struct stat st;
	int fd, ret = -1, saved;

	str_init(&path);
	str_init(&rec);
	if (queue_dir_prepare(qd, QUEUE_DEFER_LOG, id, error) < 0)
		goto out;
	queue_dir_path(qd, QUEUE_DEFER_LOG, id, &path);
	fd = open(str_c(&path), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, QUEUE_FILE_MODE);
	if (fd < 0) {
		str_appendf(error, "open %s: %m", str_c(&path));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		str_appendf(error, "stat %s: %m", str_c(&path));
		goto close;
	}
	if (st.st_size == 0) {
		memcpy(head, LOG_MAGIC, 8);
		put_u16(head + 8, LOG_VERSION);
		str_append_n(&rec, head, sizeof(head));
	}
	head[0] = type;
	put_u32(head + 1, payload->len);
	str_append_n(&rec, head, 5);
	str_append_n(&rec, payload->buf, payload->len);
	if (fs_write_all(fd, rec.buf, rec.len) < 0) {
		str_appendf(error, "write %s: %m", str_c(&path));
		goto close;
	}
	if (sync && fdatasync(fd) < 0) {
		str_appendf(error, "fdatasync %s: %m", str_c(&path));
		goto close;
	}
	/* Why the directory on every synced append, not only when this
	 * append created the log: an earlier unsynced append (a deferral
	 * reason) may have created it, and its entry is as needed as its
	 * data. */
	if (sync && fs_sync_dir_of(str_c(&path), error) < 0)
		goto close;
	ret = 0;
close:
	saved = errno;
	close(fd);
	errno = saved;
out:
	saved = errno;
	str_free(&path);
	str_free(&rec);
	errno = saved;
	return ret;
}

int queue_log_append(const struct queue_dir *qd, const char *id,
                     const struct queue_log_entry *entry, bool sync, str_t *error)
{
	const char *reason = entry->reason == NULL ? "" : entry->reason;
	size_t rlen = strnlen(reason, QUEUE_LOG_REASON_MAX);
	unsigned char fixed[ENTRY_FIXED];
	str_t payload;
	int ret, saved;

	if (entry->rcpt_index > UINT32_MAX || entry->state > QUEUE_RCPT_STATE_MAX) {
		str_appendf(error, "%s: bad status log entry", id);
		errno = EINVAL;
		return -1;
	}
	str_init(&payload);
	put_u32(fixed, entry->rcpt_index);
	fixed[4] = (unsigned char)entry->state;
	fixed[5] = entry->dsn.klass;
	put_u16(fixed + 6, entry->dsn.subject);
	put_u16(fixed + 8, entry->dsn.detail);
	put_u64(fixed + 10, entry->when < 0 ? 0 : (uint64_t)entry->when);
	put_u64(fixed + 18, entry->next_retry < 0 ? 0 : (uint64_t)entry->next_retry);
	str_append_n(&payload, fixed, ENTRY_FIXED);
	str_append_n(&payload, reason, rlen);
	ret = append_record(qd, id, ENTRY_TYPE, &payload, sync, error);
	saved = errno;
	str_free(&payload);
	errno = saved;
	return ret;
}

int queue_log_append_final(const struct queue_dir *qd, const char *id, size_t rcpt_index,
                           enum queue_rcpt_state state, const char *address, bool sync,
                           str_t *error)
{
	size_t alen = strnlen(address, QUEUE_FIELD_MAX + 1);
	unsigned char fixed[FINAL_FIXED];
	str_t payload;
	int ret, saved;

	if (rcpt_index > UINT32_MAX || !queue_rcpt_state_final(state) || alen == 0 ||
	    alen > QUEUE_FIELD_MAX) {
		str_appendf(error, "%s: bad final status log entry", id);
		errno = EINVAL;
		return -1;
	}
	str_init(&payload);
	put_u32(fixed, rcpt_index);
	fixed[4] = (unsigned char)state;
	put_u64(fixed + 5, (uint64_t)time(NULL));
	str_append_n(&payload, fixed, FINAL_FIXED);
	str_append_n(&payload, address, alen);
	ret = append_record(qd, id, FINAL_TYPE, &payload, sync, error);
	saved = errno;
	str_free(&payload);
	errno = saved;
	return ret;
}

static void stored_free(void *p)
{
	struct stored_entry *s = p;

	free(s->reason);
	free(s);
}

/* A final-address record: u32 index, u8 state, u64 time, address. */
static int parse_final(struct queue_log *log, const unsigned char *e, size_t len)
{
	str_t key;

	if (!queue_rcpt_state_final((enum queue_rcpt_state)e[4]) || get_u64(e + 5) > INT64_MAX ||
	    memchr(e + FINAL_FIXED, '\0', len - FINAL_FIXED) != NULL)
		return -1;
	str_init(&key);
	str_appendf(&key, "%lu ", (unsigned long)get_u32(e));
	str_append_n(&key, e + FINAL_FIXED, len - FINAL_FIXED);
	hash_put(log->finals, str_c(&key), (void *)(uintptr_t)e[4]);
	str_free(&key);
	log->count++;
	return 0;
}

static int parse_log(struct queue_log *log, const char *path, const str_t *text, str_t *error)
{
	const unsigned char *p = (const unsigned char *)text->buf;
	size_t len = text->len, off = LOG_HEADER_SIZE;

	if (len < LOG_HEADER_SIZE || memcmp(p, LOG_MAGIC, 8) != 0 ||
	    get_u16(p + 8) != LOG_VERSION) {
		str_appendf(error, "%s: not a postern status log (bad header)", path);
		return -1;
	}
	while (len - off >= 5) {
		uint64_t rlen = get_u32(p + off + 1);
		const unsigned char *e = p + off + 5;
		struct stored_entry *s;
		char key[24];

		if (p[off] == FINAL_TYPE && rlen > FINAL_FIXED &&
		    rlen <= FINAL_FIXED + QUEUE_FIELD_MAX) {
			if (rlen > len - off - 5)
				break; /* cut short by a crash: ignore */
			if (parse_final(log, e, (size_t)rlen) < 0) {
				str_appendf(error, "%s: bad status log entry at offset %zu", path,
				            off);
				return -1;
			}
			off += 5 + (size_t)rlen;
			continue;
		}
		if (p[off] != ENTRY_TYPE || rlen < ENTRY_FIXED ||
		    rlen > ENTRY_FIXED + QUEUE_LOG_REASON_MAX) {
			str_appendf(error, "%s: bad status log entry at offset %zu", path, off);
			return -1;
		}
		if (rlen > len - off - 5)
			break; /* cut short by a crash: ignore */
		if (e[4] > QUEUE_RCPT_STATE_MAX || get_u64(e + 10) > INT64_MAX ||
		    get_u64(e + 18) > INT64_MAX || get_u16(e + 6) > 999 || get_u16(e + 8) > 999 ||
		    memchr(e + ENTRY_FIXED, '\0', (size_t)rlen - ENTRY_FIXED) != NULL) {
			str_appendf(error, "%s: bad status log entry at offset %zu", path, off);
			return -1;
		}
		s = xcalloc(1, sizeof(*s));
		s->e.rcpt_index = (size_t)get_u32(e);
		s->e.state = (enum queue_rcpt_state)e[4];
		s->e.dsn.klass = e[5];
		s->e.dsn.subject = (unsigned short)get_u16(e + 6);
		s->e.dsn.detail = (unsigned short)get_u16(e + 8);
		s->e.when = (time_t)get_u64(e + 10);
		s->e.next_retry = (time_t)get_u64(e + 18);
		s->reason = xstrndup((const char *)e + ENTRY_FIXED, (size_t)rlen - ENTRY_FIXED);
		s->e.reason = s->reason;
		snprintf(key, sizeof(key), "%zu", s->e.rcpt_index);
		hash_put(log->entries, key, s);
		log->count++;
		off += 5 + (size_t)rlen;
	}
	return 0;
}

int queue_log_load(const struct queue_dir *qd, const char *id, struct queue_log **log_r,
                   str_t *error)
{
	struct queue_log *log = xcalloc(1, sizeof(*log));
	str_t path, text, err;
	int found, ret = 0;

	*log_r = NULL;
	log->entries = hash_new(stored_free);
	log->finals = hash_new(NULL);
	str_init(&path);
	str_init(&text);
	str_init(&err);
	found = queue_dir_locate(qd, QUEUE_DEFER_LOG, id, &path, error);
	if (found < 0)
		ret = -1;
	else if (found == 1 && fs_read_file(str_c(&path), QUEUE_LOG_FILE_MAX, &text, &err) < 0) {
		/* Removed meanwhile: the message is gone or done. */
		if (errno != ENOENT) {
			str_append(error, str_c(&err));
			ret = -1;
		}
	} else if (found == 1 && text.len > 0) {
		ret = parse_log(log, str_c(&path), &text, error);
	}
	str_free(&path);
	str_free(&text);
	str_free(&err);
	if (ret < 0) {
		queue_log_destroy(&log);
		return -1;
	}
	*log_r = log;
	return 0;
}

const struct queue_log_entry *queue_log_get(const struct queue_log *log, size_t rcpt_index)
{
	char key[24];
	struct stored_entry *s;

	snprintf(key, sizeof(key), "%zu", rcpt_index);
	s = hash_get(log->entries, key);
	return s == NULL ? NULL : &s->e;
}

enum queue_rcpt_state queue_log_final_state(const struct queue_log *log, size_t rcpt_index,
                                            const char *address)
{
	str_t key;
	void *v;

	str_init(&key);
	str_appendf(&key, "%zu %s", rcpt_index, address);
	v = hash_get(log->finals, str_c(&key));
	str_free(&key);
	return v == NULL ? QUEUE_RCPT_PENDING : (enum queue_rcpt_state)(uintptr_t)v;
}

size_t queue_log_entries(const struct queue_log *log)
{
	return log->count;
}

void queue_log_destroy(struct queue_log **logp)
{
	if (*logp == NULL)
		return;
	hash_destroy(&(*logp)->entries);
	hash_destroy(&(*logp)->finals);
	xfree(logp);
}
