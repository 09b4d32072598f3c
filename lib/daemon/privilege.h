/* privilege.h - the one place where a postern process gives up root.
 *
 * Used by the daemon skeleton (daemon.c: daemons started by hand as
 * root, and every service whose master.cf unpriv column is y or -) and
 * by master (master_service.c: between fork and exec of a child), so
 * that the order and the checks are written once (STYLE.md point 19):
 * (chroot, later), setgroups to mail_owner's group only, setgid, setuid,
 * then a check that root cannot be regained.
 */
#ifndef POSTERN_PRIVILEGE_H
#define POSTERN_PRIVILEGE_H

#include <sys/types.h>

#include "base/str.h"

/* The user name, uid and primary gid of mail_owner. */
struct privilege_owner {
	char *name;
	uid_t uid;
	gid_t gid;
};

/* Look user name up with getpwnam() into *owner_r (owner_r->name is a
 * copy owned by the caller: privilege_owner_free). Returns 0, or -1 with
 * "mail_owner: ..." appended to error when the user does not exist or
 * has uid 0 (running the daemons as root would silently give up the
 * privilege separation). */
int privilege_owner_lookup(const char *name, struct privilege_owner *owner_r, str_t *error);

/* Free owner->name; the struct itself belongs to the caller. */
void privilege_owner_free(struct privilege_owner *owner);

/* Become uid/gid for good: setgroups({gid} or {gid, extra_gid}; pass
 * (gid_t)-1 for none), setgid(gid), setuid(uid),
 * in that order, then verify that real, effective and saved uid and gid
 * are the new ones and that setuid(0) fails. Call as root only. Returns
 * 0, or -1 with the step that failed appended to error; the process is
 * then in an unknown state and must exit (callers make that fatal). */
int privilege_drop(uid_t uid, gid_t gid, gid_t extra_gid, str_t *error);

#endif
