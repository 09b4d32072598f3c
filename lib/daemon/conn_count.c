/* conn_count.c - connections per client address, shared by the
 * processes of one service through a mapped file (conn_count.h).
 *
 * Used by smtpd for smtpd_client_connection_count_limit. Every operation
 * takes the file's table lock (an OFD lock on byte 0, so a process that
 * dies holding it frees it); owner slot i is "alive" while somebody holds
 * the OFD lock on byte 1 + i. Locks are advisory byte ranges and may lie
 * over the header: they never touch the data.
 *
 * Failure: nothing here is fatal. A file that cannot be opened, mapped or
 * locked, no free owner slot, or a full table is logged as a warning and
 * the connection is simply not counted (accepted).
 *
 * SECURITY: the file is the service user's, mode 0600, opened with
 * O_NOFOLLOW; its content is trusted no more than needed: a header that
 * does not match is reset, owner and index values are range-checked.
 */
#include "daemon/conn_count.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"

#define CC_MAGIC 0x70636331u /* "pcc1" */
/* Why 3/4: linear probing slows down sharply above that, and a free entry
 * must always remain so that every scan ends. */
#define CC_MAX_USED (CONN_COUNT_ENTRIES / 4 * 3)

struct cc_entry {
	uint8_t used;
	uint8_t family;
	uint16_t owner;
	uint32_t count;
	uint8_t addr[16];
};

struct cc_owner {
	uint32_t in_use;
	int32_t pid;
};

struct cc_file {
	uint32_t magic;
	uint32_t owners;
	uint32_t entries;
	uint32_t used; /* entries in use */
	struct cc_owner owner[CONN_COUNT_OWNERS];
	struct cc_entry entry[CONN_COUNT_ENTRIES];
};

struct conn_count {
	int fd;
	char *path;
	struct cc_file *f;
	unsigned slot; /* our owner slot */
	bool warned_full;
};

static void table_lock(struct conn_count *cc)
{
	if (fs_ofd_lock(cc->fd, F_WRLCK, 0, true) < 0)
		log_warning("%s: lock: %m", cc->path);
}

static void table_unlock(struct conn_count *cc)
{
	(void)fs_ofd_lock(cc->fd, F_UNLCK, 0, false);
}

/* Is owner slot i held by a live process (other than through our fd)? */
static bool owner_alive(const struct conn_count *cc, unsigned i)
{
	struct flock fl = {
	        .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1 + (off_t)i, .l_len = 1};

	if (fcntl(cc->fd, F_OFD_GETLK, &fl) < 0)
		return true; /* cannot tell: keep its counts */
	return fl.l_type != F_UNLCK;
}

/* FNV-1a over the address: the home entry of every entry of that address. */
static unsigned home_of(uint8_t family, const uint8_t addr[16])
{
	uint32_t h = 2166136261u ^ family;

	for (unsigned i = 0; i < 16; i++) {
		h ^= addr[i];
		h *= 16777619u;
	}
	return h % CONN_COUNT_ENTRIES;
}

static bool same_addr(const struct cc_entry *e, uint8_t family, const uint8_t addr[16])
{
	return e->family == family && memcmp(e->addr, addr, 16) == 0;
}

/* Drop every entry of the owners for which drop[owner] is set: rebuild the
 * table from the entries that stay (rare: a process died or started). */
static void purge(struct cc_file *f, const bool *drop)
{
	struct cc_entry *keep = xcalloc(CONN_COUNT_ENTRIES, sizeof(*keep));
	size_t n = 0;

	for (unsigned i = 0; i < CONN_COUNT_ENTRIES; i++)
		if (f->entry[i].used && f->entry[i].owner < CONN_COUNT_OWNERS &&
		    !drop[f->entry[i].owner] && f->entry[i].count > 0)
			keep[n++] = f->entry[i];
	memset(f->entry, 0, sizeof(f->entry));
	f->used = 0;
	for (size_t k = 0; k < n; k++) {
		unsigned i = home_of(keep[k].family, keep[k].addr);

		while (f->entry[i].used)
			i = (i + 1) % CONN_COUNT_ENTRIES;
		f->entry[i] = keep[k];
		f->used++;
	}
	free(keep);
}

/* Under the table lock: forget owners that died without closing. Returns
 * true when something was dropped. */
static bool sweep_dead(struct conn_count *cc)
{
	bool drop[CONN_COUNT_OWNERS] = {false}, any = false;

	for (unsigned i = 0; i < CONN_COUNT_OWNERS; i++) {
		if (i == cc->slot || !cc->f->owner[i].in_use || owner_alive(cc, i))
			continue;
		log_info("%s: dropping the connection counts of exited process %ld", cc->path,
		         (long)cc->f->owner[i].pid);
		cc->f->owner[i].in_use = 0;
		drop[i] = true;
		any = true;
	}
	if (any)
		purge(cc->f, drop);
	return any;
}

struct conn_count *conn_count_open(const char *path)
{
	struct conn_count *cc = xcalloc(1, sizeof(*cc));
	bool drop[CONN_COUNT_OWNERS] = {false};

	cc->path = xstrdup(path);
	cc->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (cc->fd < 0) {
		log_warning("cannot open %s: %m; client connections are not counted", path);
		goto fail;
	}
	table_lock(cc);
	cc->f = fs_map_allocated(cc->fd, sizeof(struct cc_file));
	if (cc->f == NULL) {
		log_warning("cannot map %s: %m; client connections are not counted", path);
		table_unlock(cc);
		goto fail;
	}
	if (cc->f->magic != CC_MAGIC || cc->f->owners != CONN_COUNT_OWNERS ||
	    cc->f->entries != CONN_COUNT_ENTRIES) {
		memset(cc->f, 0, sizeof(*cc->f));
		cc->f->magic = CC_MAGIC;
		cc->f->owners = CONN_COUNT_OWNERS;
		cc->f->entries = CONN_COUNT_ENTRIES;
	}
	for (cc->slot = 0; cc->slot < CONN_COUNT_OWNERS; cc->slot++)
		if (fs_ofd_lock(cc->fd, F_WRLCK, 1 + (off_t)cc->slot, false) == 0)
			break;
	if (cc->slot == CONN_COUNT_OWNERS) {
		log_warning("%s: all %d process slots are taken; client connections of this "
		            "process are not counted",
		            path, CONN_COUNT_OWNERS);
		table_unlock(cc);
		goto fail;
	}
	/* A previous holder of the slot died: its counts go. */
	drop[cc->slot] = true;
	purge(cc->f, drop);
	cc->f->owner[cc->slot].in_use = 1;
	cc->f->owner[cc->slot].pid = (int32_t)getpid();
	(void)sweep_dead(cc);
	table_unlock(cc);
	return cc;
fail:
	conn_count_close(&cc);
	return NULL;
}

void conn_count_close(struct conn_count **ccp)
{
	struct conn_count *cc = *ccp;

	if (cc == NULL)
		return;
	*ccp = NULL;
	if (cc->f != NULL) {
		if (cc->slot < CONN_COUNT_OWNERS) {
			bool drop[CONN_COUNT_OWNERS] = {false};

			table_lock(cc);
			drop[cc->slot] = true;
			purge(cc->f, drop);
			cc->f->owner[cc->slot].in_use = 0;
			table_unlock(cc);
		}
		munmap(cc->f, sizeof(*cc->f));
	}
	if (cc->fd >= 0)
		close(cc->fd); /* also releases the slot lock */
	free(cc->path);
	free(cc);
}

static bool make_key(const struct sockaddr *sa, struct conn_count_key *key)
{
	memset(key, 0, sizeof(*key));
	if (sa->sa_family == AF_INET) {
		key->family = AF_INET;
		memcpy(key->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a =
		        &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			key->family = AF_INET;
			memcpy(key->addr, &a->s6_addr[12], 4);
		} else {
			key->family = AF_INET6;
			memcpy(key->addr, a->s6_addr, 16);
		}
		return true;
	}
	return false;
}

/* Sum of the counts of key's address. */
static unsigned total(const struct cc_file *f, const struct conn_count_key *key)
{
	unsigned n = 0;

	for (unsigned i = home_of(key->family, key->addr); f->entry[i].used;
	     i = (i + 1) % CONN_COUNT_ENTRIES)
		if (same_addr(&f->entry[i], key->family, key->addr))
			n += f->entry[i].count;
	return n;
}

unsigned conn_count_connect(struct conn_count *cc, const struct sockaddr *sa, unsigned limit,
                            struct conn_count_key *key_r)
{
	struct cc_file *f;
	unsigned i, n = 0;

	if (cc == NULL || !make_key(sa, key_r))
		return 0;
	f = cc->f;
	table_lock(cc);
	for (i = home_of(key_r->family, key_r->addr); f->entry[i].used;
	     i = (i + 1) % CONN_COUNT_ENTRIES)
		if (f->entry[i].owner == cc->slot &&
		    same_addr(&f->entry[i], key_r->family, key_r->addr))
			break;
	if (!f->entry[i].used) {
		if (f->used >= CC_MAX_USED && sweep_dead(cc)) {
			/* The purge moved entries: find the free one again. */
			for (i = home_of(key_r->family, key_r->addr); f->entry[i].used;
			     i = (i + 1) % CONN_COUNT_ENTRIES)
				;
		}
		if (f->used >= CC_MAX_USED) {
			if (!cc->warned_full)
				log_warning("%s: table full (%d addresses); connections from new "
				            "client addresses are not counted",
				            cc->path, CC_MAX_USED);
			cc->warned_full = true;
			table_unlock(cc);
			return 0;
		}
		f->entry[i].used = 1;
		f->entry[i].family = key_r->family;
		memcpy(f->entry[i].addr, key_r->addr, 16);
		f->entry[i].owner = (uint16_t)cc->slot;
		f->entry[i].count = 0;
		f->used++;
	}
	f->entry[i].count++;
	n = total(f, key_r);
	/* Why sweep before answering "over": a process that was killed never
	 * said goodbye for its connections; they must not count against a
	 * client that is now within its limit. */
	if (limit > 0 && n > limit && sweep_dead(cc))
		n = total(f, key_r);
	table_unlock(cc);
	return n;
}

void conn_count_disconnect(struct conn_count *cc, const struct conn_count_key *key)
{
	struct cc_file *f;
	unsigned i;

	if (cc == NULL)
		return;
	f = cc->f;
	table_lock(cc);
	for (i = home_of(key->family, key->addr); f->entry[i].used;
	     i = (i + 1) % CONN_COUNT_ENTRIES)
		if (f->entry[i].owner == cc->slot &&
		    same_addr(&f->entry[i], key->family, key->addr))
			break;
	if (f->entry[i].used && f->entry[i].count > 0 && --f->entry[i].count == 0) {
		/* Backward-shift deletion keeps every entry reachable from its
		 * home without crossing a free entry. */
		unsigned hole = i, j = i;

		for (;;) {
			unsigned k;

			j = (j + 1) % CONN_COUNT_ENTRIES;
			if (!f->entry[j].used)
				break;
			k = home_of(f->entry[j].family, f->entry[j].addr);
			/* Move j into the hole unless its home lies cyclically
			 * in (hole, j]. */
			if ((hole < j) ? (k <= hole || k > j) : (k <= hole && k > j)) {
				f->entry[hole] = f->entry[j];
				hole = j;
			}
		}
		memset(&f->entry[hole], 0, sizeof(f->entry[hole]));
		f->used--;
	}
	table_unlock(cc);
}
