/* pidfile.h - the pid files of postern's daemons.
 *
 * master writes queue_directory/pid/master.pid (master.c). Every other
 * daemon built on the skeleton writes one file per process:
 *
 *   queue_directory/pid/PROGRAM.SERVICE.PID.pid   (started with -s SERVICE)
 *   queue_directory/pid/PROGRAM.PID.pid           (started by hand)
 *
 * holding the PID in Postfix's format ("%10ld\n"). Why the PID in the
 * name: an inet service runs several processes, each needs its own
 * file. A daemon removes its file when it exits; master removes the
 * file of a child it reaped (a child killed by a signal cannot) and, at
 * start, every child file a previous run left behind.
 *
 * pid/ is root's, mode 1775, group mail_owner's group when master or a
 * daemon runs as root: unprivileged daemons can create and remove their
 * own files but, the directory being sticky, not master.pid or
 * master.lock.
 */
#ifndef POSTERN_PIDFILE_H
#define POSTERN_PIDFILE_H

#include <sys/types.h>

#include <stddef.h>

#include "base/str.h"
#include "base/strv.h"

/* The pid file path of a process (service may be NULL). A '/' in the
 * program or service name becomes '_'. Owned by the caller. */
char *pidfile_path(const char *queue_directory, const char *program, const char *service, long pid);

/* Create queue_directory/pid when missing (mode 0755, or 01775 with group
 * gid when gid is not (gid_t)-1: run as root). Returns 0, or -1 with
 * "PATH: ..." appended to error. */
int pidfile_dir_create(const char *queue_directory, gid_t gid, str_t *error);

/* Write getpid() durably to path (mode 0644). Returns 0, or -1 with the
 * reason (naming the path) appended to error. */
int pidfile_write(const char *path, str_t *error);

/* Remove the file of a process that is gone; a missing file is fine. */
void pidfile_remove_stale(const char *queue_directory, const char *program, const char *service,
                          long pid);

/* Remove every daemon pid file in queue_directory/pid ("*.pid" other than
 * master.pid): for master at start, when no child of its can be alive. */
void pidfile_remove_all(const char *queue_directory);

/* The daemons that outlived their master (killed by SIGKILL, say) and
 * still run: one per pid file in queue_directory/pid (other than
 * master.pid) whose PID runs the program the file name says, checked
 * with /proc/PID/exe so that a reused PID is never taken for a daemon.
 * Files whose process is gone are removed. Appends "PROGRAM pid N" to
 * found for each one and returns how many. */
size_t pidfile_leftovers(const char *queue_directory, strv_t *found);

/* Stop the leftovers pidfile_leftovers() finds: SIGTERM (a daemon whose
 * master is gone finishes what it holds, then exits), up to grace_ms
 * milliseconds, then SIGKILL; their pid files are removed. Appends
 * "PROGRAM pid N" to stopped for each one (", killed" when SIGKILL was
 * needed) and returns how many there were. For master at start (no
 * child of its can be alive: it holds the lock) and `postern stop`. */
size_t pidfile_stop_leftovers(const char *queue_directory, unsigned grace_ms, strv_t *stopped);

#endif
