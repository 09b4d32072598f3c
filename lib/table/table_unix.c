/* table_unix.c - unix:passwd.byname and unix:group.byname, the system's accounts.
 *
 * Postfix's unix: table type: "unix:passwd.byname" finds a login name in
 * the password database (getpwnam_r, so NSS sources count) and answers
 * the passwd(5) line "name:passwd:uid:gid:gecos:dir:shell";
 * "unix:group.byname" finds a group (getgrnam_r) and answers
 * "name:passwd:gid:member,member". Postfix's default local_recipient_maps
 * (proxy:unix:passwd.byname $alias_maps) is this table.
 *
 * Remote: an NSS source may be a directory server, so lookups are cached
 * and run on the worker pool like database tables (postern's stand-in
 * for Postfix's proxymap). Keys are folded to lower case, as Postfix does.
 *
 * On failure: an unknown map name fails at open; a lookup error other
 * than "no such entry" (NSS source down, out of memory) is a temporary
 * failure naming the table and the error.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "table/table.h"
#include "table/table_backends.h"

/* The largest buffer getpw*_r / getgr*_r are given (a group with many
 * members needs a large one). */
#define UNIX_BUF_MAX (1024 * 1024)

struct table_unix {
	struct table t;
	bool group; /* group.byname, else passwd.byname */
};

static int unix_open(struct table *t, const char *name, const struct table_open_context *ctx,
                     str_t *error)
{
	struct table_unix *u = (struct table_unix *)t;

	(void)ctx;
	if (strcmp(name, "passwd.byname") == 0) {
		u->group = false;
	} else if (strcmp(name, "group.byname") == 0) {
		u->group = true;
	} else {
		str_appendf(error,
		            "unknown table \"unix:%s\": postern knows unix:passwd.byname and "
		            "unix:group.byname",
		            name);
		return -1;
	}
	return 0;
}

/* A "no such entry" answer of the NSS functions: 0, ENOENT, ESRCH,
 * EBADF or EPERM (getpwnam_r(3) lists them all). */
static bool not_found_errno(int e)
{
	return e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM;
}

static void passwd_lookup(const char *key, struct table_result *r, const char *spec)
{
	size_t size = 4096;

	for (;;) {
		struct passwd pw, *res = NULL;
		char *buf = xmalloc(size);
		int e = getpwnam_r(key, &pw, buf, size, &res);

		if (e == ERANGE && size < UNIX_BUF_MAX) {
			free(buf);
			size *= 4;
			continue;
		}
		if (res != NULL) {
			r->status = TABLE_FOUND;
			str_reset(&r->value);
			str_appendf(&r->value, "%s:%s:%ld:%ld:%s:%s:%s", pw.pw_name, pw.pw_passwd,
			            (long)pw.pw_uid, (long)pw.pw_gid, pw.pw_gecos, pw.pw_dir,
			            pw.pw_shell);
		} else if (not_found_errno(e)) {
			r->status = TABLE_NOTFOUND;
		} else {
			r->status = TABLE_TEMPFAIL;
			str_appendf(&r->error, "%s: getpwnam_r %s: %s", spec, key, strerror(e));
		}
		free(buf);
		return;
	}
}

static void group_lookup(const char *key, struct table_result *r, const char *spec)
{
	size_t size = 4096;

	for (;;) {
		struct group gr, *res = NULL;
		char *buf = xmalloc(size);
		int e = getgrnam_r(key, &gr, buf, size, &res);

		if (e == ERANGE && size < UNIX_BUF_MAX) {
			free(buf);
			size *= 4;
			continue;
		}
		if (res != NULL) {
			r->status = TABLE_FOUND;
			str_reset(&r->value);
			str_appendf(&r->value, "%s:%s:%ld:", gr.gr_name, gr.gr_passwd,
			            (long)gr.gr_gid);
			for (char **m = gr.gr_mem; m != NULL && *m != NULL; m++) {
				str_append(&r->value, *m);
				if (m[1] != NULL)
					str_append_c(&r->value, ',');
			}
		} else if (not_found_errno(e)) {
			r->status = TABLE_NOTFOUND;
		} else {
			r->status = TABLE_TEMPFAIL;
			str_appendf(&r->error, "%s: getgrnam_r %s: %s", spec, key, strerror(e));
		}
		free(buf);
		return;
	}
}

static void unix_lookup(struct table *t, const char *key, struct table_result *r)
{
	const struct table_unix *u = (const struct table_unix *)t;

	if (key[0] == '\0') {
		r->status = TABLE_NOTFOUND;
		return;
	}
	if (u->group)
		group_lookup(key, r, t->spec);
	else
		passwd_lookup(key, r, t->spec);
}

const struct table_backend table_backend_unix = {
        .type = "unix",
        .flags = TABLE_F_FIXED_KEYS | TABLE_F_REMOTE,
        .size = sizeof(struct table_unix),
        .open = unix_open,
        .lookup = unix_lookup,
};
