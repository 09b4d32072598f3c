/* privilege.c - dropping root for good (see privilege.h).
 *
 * Used by daemon.c (the daemon skeleton) and master_service.c (each
 * child between fork and exec). On failure nothing is undone: the
 * caller gets -1 and the reason, and exits, because a process that
 * dropped half its privileges must not serve anything.
 */
#include "daemon/privilege.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"

int privilege_owner_lookup(const char *name, struct privilege_owner *owner_r, str_t *error)
{
	const struct passwd *pw;

	memset(owner_r, 0, sizeof(*owner_r));
	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL) {
		str_appendf(error,
		            "mail_owner: unknown user \"%s\" (create it, e.g. adduser --system "
		            "--group --no-create-home %s)",
		            name, name);
		return -1;
	}
	if (pw->pw_uid == 0) {
		str_appendf(error,
		            "mail_owner: user \"%s\" has uid 0: it must be an unprivileged user",
		            name);
		return -1;
	}
	owner_r->name = xstrdup(name);
	owner_r->uid = pw->pw_uid;
	owner_r->gid = pw->pw_gid;
	return 0;
}

void privilege_owner_free(struct privilege_owner *owner)
{
	free(owner->name);
	owner->name = NULL;
}

int privilege_drop(uid_t uid, gid_t gid, gid_t extra_gid, str_t *error)
{
	gid_t groups[2] = {gid, extra_gid};
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	/* Why this order: setgroups and setgid need root, so they come
	 * before setuid; the supplementary groups go first so that no group
	 * of root's survives. */
	if (setgroups(extra_gid != (gid_t)-1 && extra_gid != gid ? 2 : 1, groups) < 0) {
		str_appendf(error, "setgroups(%ld): %s", (long)gid, strerror(errno));
		return -1;
	}
	if (setgid(gid) < 0) {
		str_appendf(error, "setgid(%ld): %s", (long)gid, strerror(errno));
		return -1;
	}
	if (setuid(uid) < 0) {
		str_appendf(error, "setuid(%ld): %s", (long)uid, strerror(errno));
		return -1;
	}
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0) {
		str_appendf(error, "getresuid: %s", strerror(errno));
		return -1;
	}
	if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid ||
	    sgid != gid) {
		str_appendf(error,
		            "privileges not dropped: uids %ld/%ld/%ld gids %ld/%ld/%ld, expected "
		            "%ld and %ld",
		            (long)ruid, (long)euid, (long)suid, (long)rgid, (long)egid, (long)sgid,
		            (long)uid, (long)gid);
		return -1;
	}
	if (setuid(0) == 0) {
		str_appendf(error, "setuid(0) succeeded after dropping privileges");
		return -1;
	}
	return 0;
}
