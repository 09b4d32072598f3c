/* queue_dir.c - the queue directory tree: paths, hashing, moves, scans
 * (see queue_dir.h for the layout).
 *
 * Used by the queue writer and reader (queue_file.c), qmgr (moves and
 * scans) and the `postern queue` commands. Failures return -1 with errno
 * set and a message naming the path; a failed move leaves the message
 * where it was, and a scan that hits an unreadable subdirectory reports it
 * and goes on with the rest.
 */
#include "queue/queue_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/mem.h"
#include "base/strv.h"

static const char *const queue_names[QUEUE_NAME_COUNT] = {
        [QUEUE_INCOMING] = "incoming", [QUEUE_ACTIVE] = "active",   [QUEUE_DEFERRED] = "deferred",
        [QUEUE_HOLD] = "hold",         [QUEUE_CORRUPT] = "corrupt", [QUEUE_DEFER_LOG] = "defer",
};

struct queue_dir {
	char *root;
	unsigned depth;
	unsigned hashed_mask;
};

const char *queue_name_str(enum queue_name queue)
{
	return (unsigned)queue < QUEUE_NAME_COUNT ? queue_names[queue] : "(unknown)";
}

int queue_name_parse(const char *name, enum queue_name *queue_r)
{
	for (int i = 0; i < QUEUE_NAME_COUNT; i++) {
		if (strcmp(name, queue_names[i]) == 0) {
			*queue_r = (enum queue_name)i;
			return 0;
		}
	}
	return -1;
}

int queue_dir_hash_names(const char *value, unsigned *mask_r, str_t *error)
{
	strv_t names = STRV_INIT;
	const char *err;
	unsigned mask = 0;
	int ret = 0;

	if (strv_split_list(&names, value, &err) < 0) {
		str_appendf(error, "hash_queue_names: %s", err);
		return -1;
	}
	for (size_t i = 0; i < names.n; i++) {
		const char *name = names.v[i];
		enum queue_name q;

		if (strcmp(name, "bounce") == 0)
			q = QUEUE_DEFER_LOG;
		else if (strcmp(name, "trace") == 0 || strcmp(name, "flush") == 0 ||
		         strcmp(name, "maildrop") == 0)
			continue;
		else if (queue_name_parse(name, &q) < 0) {
			str_appendf(error,
			            "hash_queue_names: unknown queue \"%s\" (expected incoming, "
			            "active, deferred, hold, corrupt or defer)",
			            name);
			ret = -1;
			break;
		}
		mask |= 1u << q;
	}
	strv_free(&names);
	if (ret == 0)
		*mask_r = mask;
	return ret;
}

struct queue_dir *queue_dir_new(const char *path, unsigned depth, unsigned hashed_mask)
{
	struct queue_dir *qd = xmalloc(sizeof(*qd));

	qd->root = xstrdup(path);
	qd->depth = depth < 1 ? 1 : depth > QUEUE_HASH_DEPTH_MAX ? QUEUE_HASH_DEPTH_MAX : depth;
	qd->hashed_mask = hashed_mask;
	return qd;
}

void queue_dir_destroy(struct queue_dir **qdp)
{
	if (*qdp == NULL)
		return;
	free((*qdp)->root);
	xfree(qdp);
}

const char *queue_dir_root(const struct queue_dir *qd)
{
	return qd->root;
}

static unsigned queue_depth(const struct queue_dir *qd, enum queue_name queue)
{
	return (qd->hashed_mask & (1u << queue)) != 0 ? qd->depth : 0;
}

/* The hash character of level (1-based): the low microsecond digits. */
static char hash_char(const char *id, unsigned level)
{
	return id[QUEUE_ID_LEN - 4 - level];
}

static void path_at_depth(const struct queue_dir *qd, enum queue_name queue, const char *id,
                          unsigned depth, str_t *out)
{
	str_reset(out);
	str_appendf(out, "%s/%s/", qd->root, queue_names[queue]);
	for (unsigned level = 1; level <= depth; level++) {
		str_append_c(out, hash_char(id, level));
		str_append_c(out, '/');
	}
	str_append(out, id);
}

void queue_dir_path(const struct queue_dir *qd, enum queue_name queue, const char *id, str_t *out)
{
	path_at_depth(qd, queue, id, queue_depth(qd, queue), out);
}

void queue_dir_temp_path(const struct queue_dir *qd, const char *id, str_t *out)
{
	str_reset(out);
	str_appendf(out, "%s/%s/tmp.%s", qd->root, queue_names[QUEUE_INCOMING], id);
}

/* mkdir that is durable when it creates: a message committed into a new
 * hash directory is only as durable as that directory's own entry. */
/* Make a hash directory. Made by root (`postern queue` run by the
 * administrator), it is given to the owner of its parent, the queue's
 * owner (mail_owner): a root-owned hash directory would lock qmgr and
 * smtpd out of every message that hashes there. */
static int mkdir_durable(const char *path, str_t *error)
{
	struct stat st;

	if (mkdir(path, QUEUE_DIR_MODE) < 0) {
		if (errno == EEXIST)
			return 0;
		str_appendf(error, "create directory %s: %m", path);
		return -1;
	}
	if (geteuid() == 0) {
		char *parent = xstrdup(path);

		*strrchr(parent, '/') = '\0';
		if (stat(parent, &st) < 0 ||
		    ((st.st_uid != 0 || st.st_gid != 0) && chown(path, st.st_uid, st.st_gid) < 0)) {
			str_appendf(error, "give directory %s to the queue's owner: %m", path);
			free(parent);
			return -1;
		}
		free(parent);
	}
	return fs_sync_dir_of(path, error);
}

int queue_dir_prepare(const struct queue_dir *qd, enum queue_name queue, const char *id,
                      str_t *error)
{
	unsigned depth = queue_depth(qd, queue);
	str_t path;
	int ret = 0;

	if (depth == 0)
		return 0;
	str_init(&path);
	str_appendf(&path, "%s/%s", qd->root, queue_names[queue]);
	for (unsigned level = 1; level <= depth && ret == 0; level++) {
		str_append_c(&path, '/');
		str_append_c(&path, hash_char(id, level));
		ret = mkdir_durable(str_c(&path), error);
	}
	str_free(&path);
	return ret;
}

int queue_dir_locate(const struct queue_dir *qd, enum queue_name queue, const char *id,
                     str_t *path_r, str_t *error)
{
	unsigned want = queue_depth(qd, queue);
	struct stat st;

	/* The configured depth first; the others find files left by an
	 * earlier hash_queue_depth or hash_queue_names setting. */
	for (unsigned i = 0; i <= QUEUE_HASH_DEPTH_MAX; i++) {
		unsigned depth = i == 0 ? want : i <= want ? i - 1 : i;

		path_at_depth(qd, queue, id, depth, path_r);
		if (lstat(str_c(path_r), &st) == 0)
			return S_ISREG(st.st_mode) ? 1 : 0;
		if (errno != ENOENT && errno != ENOTDIR) {
			str_appendf(error, "stat %s: %m", str_c(path_r));
			return -1;
		}
	}
	errno = ENOENT;
	return 0;
}

int queue_dir_find(const struct queue_dir *qd, const char *id, enum queue_name *queue_r,
                   str_t *path_r, str_t *error)
{
	str_t path;
	int ret = 0;

	str_init(&path);
	for (int q = 0; q < QUEUE_MESSAGE_QUEUES && ret == 0; q++) {
		ret = queue_dir_locate(qd, (enum queue_name)q, id, &path, error);
		if (ret == 1) {
			*queue_r = (enum queue_name)q;
			if (path_r != NULL)
				str_set(path_r, str_c(&path));
		}
	}
	str_free(&path);
	return ret;
}

int queue_dir_move(const struct queue_dir *qd, const char *id, enum queue_name from,
                   enum queue_name to, str_t *error)
{
	return queue_dir_move_flags(qd, id, from, to, 0, error);
}

int queue_dir_move_flags(const struct queue_dir *qd, const char *id, enum queue_name from,
                         enum queue_name to, unsigned flags, str_t *error)
{
	str_t src, dst;
	int ret = -1, found;

	str_init(&src);
	str_init(&dst);
	found = queue_dir_locate(qd, from, id, &src, error);
	if (found == 0) {
		str_appendf(error, "%s: not in the %s queue", id, queue_names[from]);
		errno = ENOENT;
	}
	if (found != 1)
		goto out;
	if (queue_dir_prepare(qd, to, id, error) < 0)
		goto out;
	queue_dir_path(qd, to, id, &dst);
	if (fs_rename_noreplace(str_c(&src), str_c(&dst)) < 0) {
		str_appendf(error, "rename %s to %s: %m", str_c(&src), str_c(&dst));
		goto out;
	}
	/* Why both: the new entry must be durable before the caller acts on
	 * the move (qmgr schedules from active/); syncing the old directory
	 * too keeps a crash from showing the message in both queues on file
	 * systems that do not journal a rename as one change. */
	if (!(flags & QUEUE_MOVE_NOSYNC) &&
	    (fs_sync_dir_of(str_c(&dst), error) < 0 || fs_sync_dir_of(str_c(&src), error) < 0))
		goto out;
	ret = 0;
out:
	if (ret < 0) {
		int saved = errno;

		str_free(&src);
		str_free(&dst);
		errno = saved;
		return -1;
	}
	str_free(&src);
	str_free(&dst);
	return 0;
}

int queue_dir_remove(const struct queue_dir *qd, enum queue_name queue, const char *id,
                     str_t *error)
{
	str_t path;
	int found, ret = -1;

	str_init(&path);
	found = queue_dir_locate(qd, queue, id, &path, error);
	if (found == 0) {
		str_appendf(error, "%s: not in the %s queue", id, queue_names[queue]);
		errno = ENOENT;
	} else if (found == 1) {
		if (unlink(str_c(&path)) < 0) {
			str_appendf(error, "remove %s: %m", str_c(&path));
		} else {
			str_t ignored;

			ret = 0;
			/* The status log goes with its message; a log that cannot
			 * be found or removed does not keep the message. */
			str_init(&ignored);
			if (queue_dir_locate(qd, QUEUE_DEFER_LOG, id, &path, &ignored) == 1)
				(void)unlink(str_c(&path));
			str_free(&ignored);
		}
	}
	if (ret < 0) {
		int saved = errno;

		str_free(&path);
		errno = saved;
		return -1;
	}
	str_free(&path);
	return 0;
}

int queue_dir_create(const struct queue_dir *qd, uid_t uid, gid_t gid, str_t *error)
{
	str_t path;
	int ret = 0;

	if (mkdir(qd->root, 0755) < 0 && errno != EEXIST) {
		str_appendf(error, "create directory %s: %m", qd->root);
		return -1;
	}
	str_init(&path);
	for (int q = 0; q < QUEUE_NAME_COUNT && ret == 0; q++) {
		str_reset(&path);
		str_appendf(&path, "%s/%s", qd->root, queue_names[q]);
		if (mkdir(str_c(&path), QUEUE_DIR_MODE) < 0 && errno != EEXIST) {
			str_appendf(error, "create directory %s: %m", str_c(&path));
			ret = -1;
		} else if (chmod(str_c(&path), QUEUE_DIR_MODE) < 0) {
			str_appendf(error, "chmod %s: %m", str_c(&path));
			ret = -1;
		} else if (uid != (uid_t)-1 && chown(str_c(&path), uid, gid) < 0) {
			str_appendf(error, "chown %s: %m", str_c(&path));
			ret = -1;
		}
	}
	if (ret == 0)
		ret = fs_sync_dir(qd->root, error);
	str_free(&path);
	return ret;
}

int queue_dir_cleanup(const struct queue_dir *qd, time_t max_age, unsigned *removed_r, str_t *error)
{
	str_t path;
	DIR *dir;
	time_t now = time(NULL);
	unsigned removed = 0;
	int ret = 0;

	str_init(&path);
	str_appendf(&path, "%s/%s", qd->root, queue_names[QUEUE_INCOMING]);
	dir = opendir(str_c(&path));
	if (dir == NULL) {
		str_appendf(error, "open directory %s: %m", str_c(&path));
		str_free(&path);
		return -1;
	}
	for (;;) {
		struct stat st;
		const struct dirent *de;

		errno = 0;
		de = readdir(dir);
		if (de == NULL)
			break;
		if (strncmp(de->d_name, "tmp.", 4) != 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile: committed or aborted */
		if (!S_ISREG(st.st_mode) || (max_age > 0 && now - st.st_mtime < max_age))
			continue;
		if (unlinkat(dirfd(dir), de->d_name, 0) == 0)
			removed++;
		else if (errno != ENOENT) {
			str_appendf(error, "remove %s/%s: %m", str_c(&path), de->d_name);
			ret = -1;
		}
	}
	if (errno != 0) {
		str_appendf(error, "read directory %s: %m", str_c(&path));
		ret = -1;
	}
	closedir(dir);
	str_free(&path);
	if (removed_r != NULL)
		*removed_r = removed;
	return ret;
}

/* A depth-first walk over one queue's tree: one open directory per level. */
struct walker {
	str_t path; /* directory of the current level */
	DIR *dirs[QUEUE_HASH_DEPTH_MAX + 1];
	size_t path_lens[QUEUE_HASH_DEPTH_MAX + 1];
	int level; /* -1 when done */
};

static int walker_open(struct walker *w, const struct queue_dir *qd, enum queue_name queue,
                       str_t *error)
{
	str_init(&w->path);
	str_appendf(&w->path, "%s/%s", qd->root, queue_names[queue]);
	w->level = 0;
	w->path_lens[0] = w->path.len;
	w->dirs[0] = opendir(str_c(&w->path));
	if (w->dirs[0] == NULL) {
		int saved = errno;

		str_appendf(error, "open directory %s: %m", str_c(&w->path));
		str_free(&w->path);
		w->level = -1;
		errno = saved;
		return -1;
	}
	return 0;
}

static void walker_pop(struct walker *w)
{
	closedir(w->dirs[w->level]);
	w->level--;
	if (w->level >= 0)
		str_truncate(&w->path, w->path_lens[w->level]);
}

static void walker_close(struct walker *w)
{
	while (w->level >= 0)
		walker_pop(w);
	str_free(&w->path);
}

static bool is_hash_name(const char *name)
{
	return name[0] != '\0' && name[1] == '\0' && strchr(QUEUE_ID_DIGITS, name[0]) != NULL;
}

/* Type of an entry: DT_DIR, DT_REG or other, asking stat when readdir
 * does not say (some file systems). */
static unsigned char entry_type(DIR *dir, const struct dirent *de)
{
	struct stat st;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type;
	if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
}

/* The next message file: 1 with its name and directory, 0 at the end, -1
 * on an error (the walk goes on past it at the next call). */
static int walker_next(struct walker *w, const char **name_r, DIR **dir_r, str_t *error)
{
	while (w->level >= 0) {
		DIR *dir = w->dirs[w->level];
		struct dirent *de;

		errno = 0;
		de = readdir(dir);
		if (de == NULL) {
			int saved = errno;

			if (saved != 0)
				str_appendf(error, "read directory %s: %s", str_c(&w->path),
				            strerror(saved));
			walker_pop(w);
			if (saved != 0) {
				errno = saved;
				return -1;
			}
			continue;
		}
		if (w->level < QUEUE_HASH_DEPTH_MAX && is_hash_name(de->d_name) &&
		    entry_type(dir, de) == DT_DIR) {
			int fd = openat(dirfd(dir), de->d_name,
			                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			DIR *sub = fd < 0 ? NULL : fdopendir(fd);

			if (sub == NULL) {
				int saved = errno;

				if (fd >= 0)
					close(fd);
				if (saved == ENOENT)
					continue;
				str_appendf(error, "open directory %s/%s: %s", str_c(&w->path),
				            de->d_name, strerror(saved));
				errno = saved;
				return -1;
			}
			str_append_c(&w->path, '/');
			str_append(&w->path, de->d_name);
			w->level++;
			w->dirs[w->level] = sub;
			w->path_lens[w->level] = w->path.len;
			continue;
		}
		if (queue_id_valid(de->d_name) && entry_type(dir, de) == DT_REG) {
			*name_r = de->d_name;
			*dir_r = dir;
			return 1;
		}
	}
	return 0;
}

int queue_dir_stats(const struct queue_dir *qd, enum queue_name queue, struct queue_stats *st_r,
                    str_t *error)
{
	struct walker w;
	const char *name;
	DIR *dir;
	int rc, ret = 0;

	st_r->count = st_r->bytes = 0;
	if (walker_open(&w, qd, queue, error) < 0)
		return -1;
	while ((rc = walker_next(&w, &name, &dir, error)) != 0) {
		struct stat st;

		if (rc < 0) {
			ret = -1;
			continue;
		}
		if (fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* removed meanwhile */
		st_r->count++;
		st_r->bytes += (uint64_t)st.st_size;
	}
	walker_close(&w);
	return ret;
}

/* Ordered scans keep a max-heap of the window smallest IDs seen in this
 * pass that are above the last ID returned. */
typedef char id_slot[QUEUE_ID_SIZE];

struct queue_scan {
	const struct queue_dir *qd;
	enum queue_name queue;
	bool ordered;
	struct walker walk;
	/* ordered scans */
	size_t window;
	id_slot *heap;
	size_t heap_n; /* IDs in the heap */
	size_t emit_pos; /* next sorted ID to return */
	size_t emit_n; /* sorted IDs ready to return */
	bool last_pass; /* the pass found fewer than window IDs */
	bool have_last;
	id_slot last;
	id_slot current;
};

int queue_scan_open(const struct queue_dir *qd, enum queue_name queue, unsigned flags,
                    struct queue_scan **scan_r, str_t *error)
{
	struct queue_scan *scan = xcalloc(1, sizeof(*scan));

	*scan_r = NULL;
	scan->qd = qd;
	scan->queue = queue;
	scan->ordered = (flags & QUEUE_SCAN_ORDERED) != 0;
	scan->window = QUEUE_SCAN_WINDOW_DEFAULT;
	if (walker_open(&scan->walk, qd, queue, error) < 0) {
		int saved = errno;

		free(scan);
		errno = saved;
		return -1;
	}
	*scan_r = scan;
	return 0;
}

void queue_scan_set_window(struct queue_scan *scan, size_t window)
{
	scan->window = window < 1 ? 1 : window;
}

static void heap_swap(id_slot *heap, size_t a, size_t b)
{
	id_slot tmp;

	memcpy(tmp, heap[a], sizeof(tmp));
	memcpy(heap[a], heap[b], sizeof(tmp));
	memcpy(heap[b], tmp, sizeof(tmp));
}

static void heap_sift_down(id_slot *heap, size_t n, size_t i)
{
	for (;;) {
		size_t big = i, l = 2 * i + 1, r = l + 1;

		if (l < n && strcmp(heap[l], heap[big]) > 0)
			big = l;
		if (r < n && strcmp(heap[r], heap[big]) > 0)
			big = r;
		if (big == i)
			return;
		heap_swap(heap, i, big);
		i = big;
	}
}

static void heap_push(id_slot *heap, size_t *n, const char *id)
{
	size_t i = (*n)++;

	memcpy(heap[i], id, QUEUE_ID_SIZE);
	while (i > 0 && strcmp(heap[(i - 1) / 2], heap[i]) < 0) {
		heap_swap(heap, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* One pass over the tree: fill the heap, then sort it for returning. */
static int scan_pass(struct queue_scan *scan, str_t *error)
{
	const char *name;
	DIR *dir;
	int rc, ret = 0;

	if (scan->heap == NULL)
		scan->heap = xcalloc(scan->window, sizeof(id_slot));
	scan->heap_n = 0;
	while ((rc = walker_next(&scan->walk, &name, &dir, error)) != 0) {
		if (rc < 0) {
			ret = -1;
			continue;
		}
		if (scan->have_last && strcmp(name, scan->last) <= 0)
			continue;
		if (scan->heap_n < scan->window) {
			heap_push(scan->heap, &scan->heap_n, name);
		} else if (strcmp(name, scan->heap[0]) < 0) {
			memcpy(scan->heap[0], name, QUEUE_ID_SIZE);
			heap_sift_down(scan->heap, scan->heap_n, 0);
		}
	}
	walker_close(&scan->walk);
	scan->last_pass = scan->heap_n < scan->window;
	qsort(scan->heap, scan->heap_n, sizeof(id_slot), cmp_id);
	scan->emit_pos = 0;
	scan->emit_n = scan->heap_n;
	return ret;
}

int queue_scan_next(struct queue_scan *scan, const char **id_r, str_t *error)
{
	if (!scan->ordered) {
		const char *name;
		DIR *dir;
		int rc = walker_next(&scan->walk, &name, &dir, error);

		if (rc == 1) {
			memcpy(scan->current, name, QUEUE_ID_SIZE);
			*id_r = scan->current;
		}
		return rc;
	}
	for (;;) {
		if (scan->emit_pos < scan->emit_n) {
			memcpy(scan->current, scan->heap[scan->emit_pos++], QUEUE_ID_SIZE);
			memcpy(scan->last, scan->current, QUEUE_ID_SIZE);
			scan->have_last = true;
			*id_r = scan->current;
			return 1;
		}
		if (scan->heap != NULL && scan->last_pass)
			return 0;
		if (scan->heap != NULL &&
		    walker_open(&scan->walk, scan->qd, scan->queue, error) < 0)
			return -1;
		if (scan_pass(scan, error) < 0) {
			/* Report the error once; the IDs the pass found follow. */
			if (scan->emit_n == 0)
				scan->last_pass = true;
			return -1;
		}
	}
}

void queue_scan_close(struct queue_scan **scanp)
{
	struct queue_scan *scan = *scanp;

	if (scan == NULL)
		return;
	walker_close(&scan->walk);
	free(scan->heap);
	xfree(scanp);
}

int queue_dir_space_ok(const struct queue_dir *qd, uint64_t minfree, uint64_t size_limit,
                       uint64_t *free_r)
{
	struct statvfs sv;
	uint64_t avail, need;

	*free_r = 0;
	if (statvfs(queue_dir_root(qd), &sv) < 0)
		return -1;
	avail = (uint64_t)sv.f_bavail;
	avail = sv.f_frsize != 0 && avail > UINT64_MAX / sv.f_frsize ? UINT64_MAX
	                                                             : avail * sv.f_frsize;
	*free_r = avail;
	/* 1.5 x the limit without overflow: the limit is at most INT64_MAX */
	need = size_limit + size_limit / 2;
	return avail > minfree && avail > need ? 1 : 0;
}
