/* privfiles.h - the files a daemon reads but may not open itself.
 *
 * TLS private keys are mode 0600, owned by root (certbot writes them so;
 * `postern check` warns when they are readable by anyone else). Only
 * master runs as root, so master opens them, between fork and exec of
 * the daemon that needs them, and hands them over as inherited
 * descriptors: "-f FD:PATH" on the daemon's command line, registered with
 * fs_inherited_add() (base/fs.h) by the daemon skeleton, read by lib/tls
 * through fs_read_file() as if it had opened PATH itself. A daemon
 * started by hand as root (`smtpd -c DIR`) opens them the same way
 * before it drops privileges.
 *
 * Why not a group-readable key (mail_owner's group): that gives every
 * process running as mail_owner (qmgr, cleanup, virtual, the admin) the
 * key, and needs a permission change that certbot undoes at renewal.
 * Why at exec and not once: a reload starts new daemons, which get the
 * renewed files; running ones keep the key they loaded.
 */
#ifndef POSTERN_PRIVFILES_H
#define POSTERN_PRIVFILES_H

#include "base/strv.h"

struct config;

/* Append to paths the privileged files the daemon `command` (master.cf's
 * command column: "smtpd") needs with configuration cfg (its service's
 * overrides applied): the TLS certificate and key files that are set.
 * Nothing for a command that needs none. */
void privfiles_collect(struct config *cfg, const char *command, strv_t *paths);

/* Open each of paths read-only (not close-on-exec) and append "-f",
 * "FD:PATH" to argv; a file that cannot be opened is skipped (the daemon
 * reports it when it tries to read it, naming the file). For master's
 * child between fork and exec, and for the skeleton before the
 * privilege drop (argv NULL: register with fs_inherited_add instead). */
void privfiles_open(const strv_t *paths, strv_t *argv);

/* Parse a "-f FD:PATH" argument and register it (fs_inherited_add). -1
 * when it is malformed. */
int privfiles_arg(const char *arg);

#endif
