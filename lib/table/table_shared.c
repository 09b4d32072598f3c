/* table_shared.c - last-known-good answers of remote tables shared by
 * every smtpd and qmgr process through a mapped file (table_shared.h).
 *
 * Used by table_cache.c: written on every answer a backend gives, read
 * when a backend fails and the process's own cache cannot answer.
 */
#include "table/table_shared.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"

#define TS_MAGIC 0x70747331u /* "pts1" */
#define TS_VERSION 2u
#define TS_SLOT_HEAD 32
#define TS_DATA (TABLE_SHARED_SLOT - TS_SLOT_HEAD)
/* Why a bound on a reader's retries: a slot rewritten on every try is
 * simply skipped (a miss), a reader never spins. */
#define TS_READ_TRIES 4
/* An answer dated this far in the future (a clock set back) is not used. */
#define TS_FUTURE_SLACK 60

struct ts_slot {
	_Atomic uint32_t seq; /* odd while being written */
	uint8_t status; /* TABLE_FOUND or TABLE_NOTFOUND; anything else: empty */
	uint8_t unused;
	uint16_t spec_len;
	uint16_t key_len;
	uint16_t value_len;
	uint32_t unused2;
	uint64_t hash;
	uint64_t when; /* wall-clock second of the answer; 0: empty */
	char data[TS_DATA]; /* spec NUL key NUL value */
};

/* A backend known to fail: until (wall-clock ms) the processes answer
 * its keys without asking it. */
struct ts_outage {
	_Atomic uint64_t hash; /* of the backend's name; 0: free */
	_Atomic uint64_t until;
};

#define TS_OUTAGES TABLE_SHARED_OUTAGES

struct ts_header {
	uint32_t magic;
	uint32_t version;
	uint32_t slot_size;
	uint32_t ways;
	uint64_t slots;
	uint64_t unused0;
	struct ts_outage outage[TS_OUTAGES];
	char unused[TABLE_SHARED_SLOT - 32 - TS_OUTAGES * sizeof(struct ts_outage)];
};

_Static_assert(sizeof(struct ts_slot) == TABLE_SHARED_SLOT, "slot size");
_Static_assert(sizeof(struct ts_header) == TABLE_SHARED_SLOT, "header size");

struct table_shared {
	int fd;
	char *path;
	size_t slots;
	size_t buckets;
	struct ts_header *head;
	struct ts_slot *slot;
	size_t map_len;
	pthread_mutex_t lock; /* OFD locks do not exclude this process's threads */
};

size_t table_shared_slots(size_t cache_size)
{
	size_t n = cache_size > SIZE_MAX / 4 ? SIZE_MAX / 4 : cache_size * 2;

	if (n < TABLE_SHARED_MIN_SLOTS)
		n = TABLE_SHARED_MIN_SLOTS;
	/* Why a cap: the file is mapped by every smtpd; 1 Mi slots are 512 MiB. */
	if (n > 1024 * 1024)
		n = 1024 * 1024;
	return (n + TABLE_SHARED_WAYS - 1) / TABLE_SHARED_WAYS * TABLE_SHARED_WAYS;
}

static bool header_ok(const struct table_shared *s)
{
	return s->head->magic == TS_MAGIC && s->head->version == TS_VERSION &&
	       s->head->slot_size == TABLE_SHARED_SLOT && s->head->ways == TABLE_SHARED_WAYS &&
	       s->head->slots == s->slots;
}

/* Size the file, map it, and reset a header that does not match, all
 * under the lock on byte 0 so that two processes starting together
 * agree. -1 with errno. */
static int map_file(struct table_shared *s)
{
	struct stat st;
	int saved;

	if (fs_ofd_lock(s->fd, F_WRLCK, 0, true) < 0)
		return -1;
	if (fstat(s->fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		errno = EPERM; /* not a file of ours: never map it */
		goto fail;
	}
	s->head = fs_map_allocated(s->fd, s->map_len);
	if (s->head == NULL)
		goto fail;
	s->slot = (struct ts_slot *)(void *)((char *)s->head + TABLE_SHARED_SLOT);
	if (!header_ok(s)) {
		memset(s->head, 0, s->map_len);
		s->head->magic = TS_MAGIC;
		s->head->version = TS_VERSION;
		s->head->slot_size = TABLE_SHARED_SLOT;
		s->head->ways = TABLE_SHARED_WAYS;
		s->head->slots = s->slots;
	}
	(void)fs_ofd_lock(s->fd, F_UNLCK, 0, true);
	return 0;
fail:
	saved = errno;
	(void)fs_ofd_lock(s->fd, F_UNLCK, 0, true);
	errno = saved;
	return -1;
}

struct table_shared *table_shared_open(const char *dir, size_t n)
{
	struct table_shared *s = xcalloc(1, sizeof(*s));

	s->slots = n < TABLE_SHARED_WAYS ? TABLE_SHARED_WAYS
	                                 : n / TABLE_SHARED_WAYS * TABLE_SHARED_WAYS;
	s->buckets = s->slots / TABLE_SHARED_WAYS;
	s->map_len = (s->slots + 1) * TABLE_SHARED_SLOT;
	s->path = xasprintf("%s/table_cache.%zu.map", dir, s->slots);
	pthread_mutex_init(&s->lock, NULL);
	s->fd = open(s->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->fd < 0 || map_file(s) < 0) {
		log_warning("cannot share table answers between processes: %s: %s "
		            "(each process keeps its own cache only)",
		            s->path, strerror(errno));
		table_shared_close(&s);
		return NULL;
	}
	return s;
}

void table_shared_close(struct table_shared **sp)
{
	struct table_shared *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->head != NULL)
		(void)munmap(s->head, s->map_len);
	if (s->fd >= 0)
		(void)close(s->fd);
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
}

const char *table_shared_path(const struct table_shared *s)
{
	return s->path;
}

/* FNV-1a over spec NUL key: spreads keys over buckets. */
static uint64_t answer_hash(const char *spec, const char *key)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (const char *p = spec;; p++) {
		h = (h ^ (unsigned char)*p) * 0x100000001b3u;
		if (*p == '\0')
			break;
	}
	for (const char *p = key; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3u;
	return h;
}

/* Does slot copy c (checked, consistent) hold spec and key? */
static bool slot_matches(const struct ts_slot *c, uint64_t hash, const char *spec, size_t spec_len,
                         const char *key, size_t key_len)
{
	return c->hash == hash && c->spec_len == spec_len && c->key_len == key_len &&
	       memcmp(c->data, spec, spec_len) == 0 &&
	       memcmp(c->data + spec_len + 1, key, key_len) == 0;
}

/* Are the lengths and markers of slot copy c within bounds? */
static bool slot_sane(const struct ts_slot *c)
{
	size_t used = (size_t)c->spec_len + 1 + c->key_len + 1 + c->value_len;

	return (c->status == TABLE_FOUND || c->status == TABLE_NOTFOUND) && c->when != 0 &&
	       used <= TS_DATA && c->data[c->spec_len] == '\0' &&
	       c->data[c->spec_len + 1 + c->key_len] == '\0';
}

/* A consistent copy of slot i into c; false if it is being written, was
 * rewritten on every try, or is empty or malformed. */
static bool slot_read(const struct table_shared *s, size_t i, struct ts_slot *c)
{
	struct ts_slot *p = &s->slot[i];

	for (int t = 0; t < TS_READ_TRIES; t++) {
		uint32_t before = atomic_load_explicit(&p->seq, memory_order_acquire);

		if (before & 1u)
			return false;
		memcpy((char *)c + sizeof(c->seq), (char *)p + sizeof(p->seq),
		       sizeof(*c) - sizeof(c->seq));
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&p->seq, memory_order_relaxed) == before)
			return slot_sane(c);
	}
	return false;
}

bool table_shared_get(struct table_shared *s, const char *spec, const char *key, uint64_t now,
                      uint64_t max_age, enum table_status *status_r, str_t *value, uint64_t *age_r)
{
	uint64_t hash = answer_hash(spec, key);
	size_t spec_len = strlen(spec), key_len = strlen(key);
	size_t first = (size_t)(hash % s->buckets) * TABLE_SHARED_WAYS;
	struct ts_slot copy, *c = &copy;
	bool found = false;

	for (size_t i = first; i < first + TABLE_SHARED_WAYS && !found; i++) {
		uint64_t age;

		if (!slot_read(s, i, c) || !slot_matches(c, hash, spec, spec_len, key, key_len))
			continue;
		if (c->when > now + TS_FUTURE_SLACK)
			break;
		age = now > c->when ? now - c->when : 0;
		if (age > max_age)
			break;
		*status_r = (enum table_status)c->status;
		*age_r = age;
		str_reset(value);
		if (c->status == TABLE_FOUND)
			str_append_n(value, c->data + spec_len + 1 + key_len + 1, c->value_len);
		found = true;
	}
	return found;
}

/* Which slot of the bucket at first to write (bucket locked): the one
 * holding this key, else a free or half-written one, else the oldest. */
static size_t slot_choose(const struct table_shared *s, size_t first, uint64_t hash,
                          const char *spec, size_t spec_len, const char *key, size_t key_len)
{
	size_t oldest = first, free_slot = SIZE_MAX;

	for (size_t i = first; i < first + TABLE_SHARED_WAYS; i++) {
		const struct ts_slot *p = &s->slot[i];
		uint32_t seq = atomic_load_explicit(&p->seq, memory_order_relaxed);

		/* Nobody else writes the bucket now: an odd counter is a
		 * writer that died, the slot is free. */
		if ((seq & 1u) || !slot_sane(p)) {
			if (free_slot == SIZE_MAX)
				free_slot = i;
			continue;
		}
		if (slot_matches(p, hash, spec, spec_len, key, key_len))
			return i;
		if (p->when < s->slot[oldest].when)
			oldest = i;
	}
	return free_slot != SIZE_MAX ? free_slot : oldest;
}

void table_shared_store(struct table_shared *s, const char *spec, const char *key,
                        enum table_status status, const char *value, size_t len, uint64_t when)
{
	size_t spec_len = strlen(spec), key_len = strlen(key);
	uint64_t hash;
	size_t first, i;
	struct ts_slot *p;
	uint32_t seq;

	if (status == TABLE_NOTFOUND)
		len = 0;
	else if (status != TABLE_FOUND)
		return;
	if (spec_len > UINT16_MAX || key_len > UINT16_MAX || len > UINT16_MAX ||
	    spec_len + 1 + key_len + 1 + len > TS_DATA || when == 0)
		return; /* does not fit: the process's own cache has it */
	hash = answer_hash(spec, key);
	first = (size_t)(hash % s->buckets) * TABLE_SHARED_WAYS;
	pthread_mutex_lock(&s->lock);
	if (fs_ofd_lock(s->fd, F_WRLCK, (off_t)((first + 1) * TABLE_SHARED_SLOT), true) < 0) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	i = slot_choose(s, first, hash, spec, spec_len, key, key_len);
	p = &s->slot[i];
	seq = atomic_load_explicit(&p->seq, memory_order_relaxed) | 1u;
	atomic_store_explicit(&p->seq, seq, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	p->status = (uint8_t)status;
	p->spec_len = (uint16_t)spec_len;
	p->key_len = (uint16_t)key_len;
	p->value_len = (uint16_t)len;
	p->hash = hash;
	p->when = when;
	memcpy(p->data, spec, spec_len + 1);
	memcpy(p->data + spec_len + 1, key, key_len + 1);
	if (len > 0)
		memcpy(p->data + spec_len + 1 + key_len + 1, value, len);
	atomic_store_explicit(&p->seq, seq + 1, memory_order_release);
	(void)fs_ofd_lock(s->fd, F_UNLCK, (off_t)((first + 1) * TABLE_SHARED_SLOT), true);
	pthread_mutex_unlock(&s->lock);
}

/* The hash of a backend's name, never 0 (0 marks a free record). */
static uint64_t outage_hash(const char *backend)
{
	uint64_t h = answer_hash(backend, "");

	return h == 0 ? 1 : h;
}

uint64_t table_shared_outage_until(struct table_shared *s, const char *backend)
{
	uint64_t hash = outage_hash(backend);

	for (size_t i = 0; i < TS_OUTAGES; i++) {
		struct ts_outage *o = &s->head->outage[i];

		if (atomic_load_explicit(&o->hash, memory_order_acquire) == hash)
			return atomic_load_explicit(&o->until, memory_order_acquire);
	}
	return 0;
}

void table_shared_outage_set(struct table_shared *s, const char *backend, uint64_t until)
{
	uint64_t hash = outage_hash(backend);
	struct ts_outage *slot = NULL, *victim = NULL;
	uint64_t victim_rank = UINT64_MAX;

	pthread_mutex_lock(&s->lock);
	if (fs_ofd_lock(s->fd, F_WRLCK, 0, true) < 0) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	for (size_t i = 0; i < TS_OUTAGES && slot == NULL; i++) {
		struct ts_outage *o = &s->head->outage[i];
		uint64_t h = atomic_load_explicit(&o->hash, memory_order_relaxed);
		/* A free record first, then the one that ends first. */
		uint64_t rank = h == 0 ? 0 : atomic_load_explicit(&o->until, memory_order_relaxed);

		if (h == hash)
			slot = o;
		else if (rank < victim_rank || victim == NULL) {
			victim = o;
			victim_rank = rank;
		}
	}
	if (slot == NULL) {
		/* A record that ended (until 0 or past) or the one ending
		 * first gives way; the new backend's until is written first,
		 * so a reader never sees its hash with another's time. */
		slot = victim;
		atomic_store_explicit(&slot->hash, 0, memory_order_release);
		atomic_store_explicit(&slot->until, until, memory_order_release);
		atomic_store_explicit(&slot->hash, hash, memory_order_release);
	} else {
		atomic_store_explicit(&slot->until, until, memory_order_release);
	}
	(void)fs_ofd_lock(s->fd, F_UNLCK, 0, true);
	pthread_mutex_unlock(&s->lock);
}
