/* postdrop.c - the setgid helper that puts a locally submitted message
 * into queue_directory/maildrop/ (Postfix postdrop(1)).
 *
 * `postdrop [-c CONFIG_DIR]` is run by `postern sendmail` (any local
 * user, root included) with the message on standard input in maildrop
 * format (queue/maildrop.h). It creates maildrop/tmp.<ID>, copies the
 * stream into it through maildrop_relay() (framing and bounds checked,
 * size limited to message_size_limit, the caller's real uid recorded as
 * the trusted submit_uid), fsyncs the file, renames it to <ID>, fsyncs the
 * directory, prints "<ID>" on standard output and pokes pickup (a lost
 * poke only delays the message to pickup's next scan).
 *
 * Exit status (sysexits): 0 only once the file is durable; 64 bad usage
 * or a config directory it may not use; 65 malformed input or a message
 * over message_size_limit; 75 anything else (nothing is left behind then,
 * unless a SIGKILL arrives: pickup removes stale tmp.* files).
 *
 * SECURITY: installed setgid setgid_group ("postdrop"), mode 2755; it
 * holds that group and the caller's own uid, nothing else. The group
 * gives write access to maildrop/ (1730 mail_owner:postdrop) and nothing
 * more. The caller controls argv, the environment, signals, rlimits and
 * standard input: the environment is cleared, a configuration directory
 * other than the built-in one is used only when the caller is root or
 * the directory and its main.cf belong to root and are writable by root
 * only (an administrator's, not the caller's, choice); the maildrop
 * directory must be a real directory owned by mail_owner with group
 * setgid_group and mode 1730 before anything is written; standard input
 * is hostile and read through the bounded maildrop_relay(); the file is
 * created with O_EXCL|O_NOFOLLOW under a fresh queue ID and removed
 * again on any failure or catchable signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "daemon/trigger.h"
#include "queue/maildrop.h"

#define EX_USAGE_ 64
#define EX_DATAERR_ 65
#define EX_TEMPFAIL_ 75

/* The temporary file, for the signal handler: a path of at most
 * PATH_MAX bytes copied in before any signal can name it. */
static char tmp_path[4096];
static volatile sig_atomic_t tmp_live;

static void on_signal(int sig)
{
	if (tmp_live)
		(void)unlink(tmp_path);
	_exit(128 + sig);
}

static void signals_setup(void)
{
	static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)sigaction(sigs[i], &sa, NULL);
	/* A write error is reported as one, not as a silent death. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
}

/* May this caller use config_dir? The built-in one always; another only
 * for root, or when root alone can have written it. */
static int config_dir_allowed(const char *dir, const char **why_r)
{
	char *main_cf;
	struct stat st;
	int ret = 0;

	if (strcmp(dir, DEF_CONFIG_DIR) == 0 || getuid() == 0)
		return 0;
	main_cf = xasprintf("%s/main.cf", dir);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 022) != 0) {
		*why_r = "the directory must be owned by root and writable by root only";
		ret = -1;
	} else if (stat(main_cf, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	           (st.st_mode & 022) != 0) {
		*why_r = "its main.cf must be owned by root and writable by root only";
		ret = -1;
	}
	free(main_cf);
	return ret;
}

/* Is dir the maildrop directory master made? 0, or -1 after logging. */
static int maildrop_dir_check(const char *dir, struct config *cfg)
{
	const char *owner = config_str(cfg, "mail_owner");
	const char *group = config_str(cfg, "setgid_group");
	const struct passwd *pw = getpwnam(owner);
	const struct group *gr = getgrnam(group);
	struct stat st;
	int fd;

	if (pw == NULL || gr == NULL) {
		log_error("%s: no such %s", pw == NULL ? owner : group,
		          pw == NULL ? "user (mail_owner)" : "group (setgid_group)");
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_PATH);
	if (fd < 0 || fstat(fd, &st) < 0) {
		log_error("%s: %m (is the mail system started?)", dir);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	/* Why the owner may differ in group: a mail system run by one
	 * unprivileged user (no root master) has no postdrop group. */
	if (st.st_uid != pw->pw_uid || (st.st_mode & 07777) != MAILDROP_DIR_MODE ||
	    (st.st_gid != gr->gr_gid && getuid() != st.st_uid)) {
		log_error(
		        "%s: expected a directory owned by %s, group %s, mode %04o; found uid %lu, "
		        "gid %lu, mode %04o",
		        dir, owner, group, MAILDROP_DIR_MODE, (unsigned long)st.st_uid,
		        (unsigned long)st.st_gid, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

#if defined(__SANITIZE_ADDRESS__)
/* The sanitizer build only (make SANITIZE=1): LeakSanitizer stops the
 * process with "fatal error" when it cannot trace itself, which is the
 * case for a setgid program run by another user (the kernel makes it
 * non-dumpable, as it should). Leak checking stays on whenever it can
 * work. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return getegid() != getgid();
}
#endif

int main(int argc, char **argv)
{
	const char *config_dir = DEF_CONFIG_DIR, *why = NULL, *err;
	struct maildrop_writer *w = NULL;
	struct config *cfg = NULL;
	strv_t errors = STRV_INIT;
	enum maildrop_status status;
	str_t error;
	char *dir = NULL;
	int64_t limit;
	int opt, ret = EX_TEMPFAIL_;

	signals_setup();
	umask(022);
	(void)clearenv();
	(void)log_open("postern/postdrop", LOG_TARGET_STDERR, NULL, &err);
	while ((opt = getopt(argc, argv, "c:V")) != -1) {
		if (opt == 'V') {
			printf("postdrop %s\n", POSTERN_VERSION);
			return 0;
		}
		if (opt != 'c') {
			log_error("usage: postdrop [-V] [-c config_dir] < maildrop-stream");
			return EX_USAGE_;
		}
		config_dir = optarg;
	}
	if (optind != argc || strlen(config_dir) >= 1024) {
		log_error("usage: postdrop [-V] [-c config_dir] < maildrop-stream");
		return EX_USAGE_;
	}
	if (config_dir_allowed(config_dir, &why) < 0) {
		log_error("%s: not a configuration directory postdrop may use: %s", config_dir,
		          why);
		return EX_USAGE_;
	}
	str_init(&error);
	if (config_load(config_dir, &cfg, &errors) < 0) {
		for (size_t i = 0; i < errors.n; i++)
			log_error("%s", errors.v[i]);
		goto out;
	}
	if (config_get_int(cfg, "message_size_limit", &limit, &err) < 0) {
		log_error("%s", err);
		goto out;
	}
	dir = xasprintf("%s/%s", config_str(cfg, "queue_directory"), MAILDROP_DIR_NAME);
	if (maildrop_dir_check(dir, cfg) < 0)
		goto out;
	if (maildrop_writer_open(dir, &w, &error) < 0) {
		log_error("%s", str_c(&error));
		goto out;
	}
	snprintf(tmp_path, sizeof(tmp_path), "%s/%s%s", dir, MAILDROP_TEMP_PREFIX,
	         maildrop_writer_id(w));
	tmp_live = 1;
	status = maildrop_relay(STDIN_FILENO, w, getuid(), (uint64_t)limit, &error);
	if (status == MAILDROP_TOO_BIG) {
		log_error("message file too big (limit %lld bytes)", (long long)limit);
		ret = EX_DATAERR_;
	} else if (status != MAILDROP_OK) {
		log_error("%s", str_c(&error));
		ret = status == MAILDROP_CORRUPT ? EX_DATAERR_ : EX_TEMPFAIL_;
	} else if (maildrop_writer_commit(w, &error) < 0) {
		log_error("%s", str_c(&error));
	} else {
		tmp_live = 0; /* renamed: no longer ours to remove */
		/* Committed: 0 even if the ID cannot be printed (the message
		 * is safe; a retry would only duplicate it). */
		printf("%s\n", maildrop_writer_id(w));
		(void)fflush(stdout);
		ret = 0;
		if (trigger_send(config_str(cfg, "queue_directory"), "public/pickup",
		                 TRIGGER_WAKEUP) < 0)
			log_debug(1, "cannot poke pickup: %m");
	}
out:
	/* destroy removes an uncommitted file; no signal may race it. */
	tmp_live = 0;
	maildrop_writer_destroy(&w);
	strv_free(&errors);
	str_free(&error);
	free(dir);
	config_destroy(&cfg);
	return ret;
}
