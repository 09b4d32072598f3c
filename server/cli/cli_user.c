/* cli_user.c - `postern user`: add, delete and list mailboxes, and set
 * their passwords.
 *
 *   user add ADDRESS [--name TEXT] [--quota BYTES] [--password-file FILE]
 *   user passwd ADDRESS [--password-file FILE]
 *   user del ADDRESS
 *   user list [DOMAIN]     one line per mailbox, tab-separated:
 *       ADDRESS QUOTA STATUS MAILDIR NAME
 *     QUOTA is bytes ("0" unlimited), followed by " (domain default)"
 *     when the mailbox has none of its own; STATUS active or inactive.
 *
 * A new mailbox's maildir is "domain/local/" under virtual_mailbox_base;
 * its domain must exist (postern domain add). --quota 0 is unlimited;
 * without --quota the domain's default applies. The password is hashed
 * with password_scheme (Dovecot's {ARGON2ID} by default).
 *
 * Passwords never come from the command line (where ps(1) shows them):
 * from --password-file (its first line), else from standard input when
 * it is not a terminal (its first line), else from the terminal, asked
 * twice without echo.
 *
 * Exit status: 0 done, 1 refused or a database error, 75 the database
 * cannot be reached, 64 usage.
 *
 * SECURITY: runs with the caller's privileges. The password is read into
 * memory that is wiped after hashing, and never logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "base/log.h"
#include "base/parse.h"
#include "cli.h"
#include "cli_db.h"
#include "db/db_admin.h"
#include "auth/password.h"

static int usage(void)
{
	fprintf(stderr,
	        "usage: postern user [-c DIR] [-v] add ADDRESS [--name TEXT] [--quota BYTES] "
	        "[--password-file FILE]\n"
	        "       postern user [-c DIR] [-v] passwd ADDRESS [--password-file FILE]\n"
	        "       postern user [-c DIR] [-v] del ADDRESS\n"
	        "       postern user [-c DIR] [-v] list [DOMAIN]\n"
	        "The password is read from FILE, else from standard input when it is not a\n"
	        "terminal, else asked twice on the terminal.\n");
	return CLI_EXIT_USAGE;
}

enum { OPT_NAME = 256, OPT_QUOTA, OPT_PASSWORD_FILE, OPT_PASSWORD };

static const struct option long_options[] = {
        {"name", required_argument, NULL, OPT_NAME},
        {"quota", required_argument, NULL, OPT_QUOTA},
        {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
        /* Only to refuse it, and so that getopt_long does not take
         * "--password x" as an abbreviation of --password-file. */
        {"password", required_argument, NULL, OPT_PASSWORD},
        {NULL, 0, NULL, 0},
};

/* Read one line from fd into out (at most PASSWORD_MAX bytes, the
 * newline and a CR before it removed). -1 with a message on error or for
 * a longer line; 0 at end of input with nothing read sets *eof_r. */
static int read_line_fd(int fd, const char *what, str_t *out, bool *eof_r, str_t *error)
{
	*eof_r = false;
	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			str_appendf(error, "%s: read error: %m", what);
			return -1;
		}
		if (n == 0) {
			*eof_r = out->len == 0;
			break;
		}
		if (c == '\n')
			break;
		if (out->len >= PASSWORD_MAX) {
			str_appendf(error, "%s: password longer than %d bytes", what, PASSWORD_MAX);
			return -1;
		}
		str_append_c(out, c);
	}
	if (out->len > 0 && out->buf[out->len - 1] == '\r')
		str_truncate(out, out->len - 1);
	return 0;
}

static void wipe(str_t *s)
{
	explicit_bzero(s->buf, s->cap);
	str_free(s);
}

/* Ask on the terminal without echo. */
static int ask_tty(const char *prompt, str_t *out, str_t *error)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	struct termios old, quiet;
	bool eof = false;
	int ret;

	if (fd < 0) {
		str_appendf(error, "cannot open the terminal to ask for the password: %m");
		return -1;
	}
	if (tcgetattr(fd, &old) < 0) {
		str_appendf(error, "cannot read the terminal settings: %m");
		close(fd);
		return -1;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	(void)tcsetattr(fd, TCSAFLUSH, &quiet);
	(void)!write(fd, prompt, strlen(prompt));
	ret = read_line_fd(fd, "terminal", out, &eof, error);
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	if (ret == 0 && eof) {
		str_append(error, "no password given");
		ret = -1;
	}
	return ret;
}

/* The new password, from the source described at the top of the file. */
static int read_password(const char *file, str_t *out, str_t *error)
{
	bool eof = false;
	int ret;

	if (file != NULL) {
		int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);

		if (fd < 0) {
			str_appendf(error, "--password-file %s: %m", file);
			return -1;
		}
		ret = read_line_fd(fd, file, out, &eof, error);
		close(fd);
	} else if (!isatty(STDIN_FILENO)) {
		ret = read_line_fd(STDIN_FILENO, "standard input", out, &eof, error);
	} else {
		str_t again;

		str_init(&again);
		ret = ask_tty("New password: ", out, error);
		if (ret == 0)
			ret = ask_tty("Retype new password: ", &again, error);
		if (ret == 0 &&
		    (out->len != again.len || memcmp(out->buf, again.buf, out->len) != 0)) {
			str_append(error, "the passwords do not match");
			ret = -1;
		}
		wipe(&again);
	}
	if (ret == 0 && out->len == 0) {
		str_append(error, "empty password refused");
		ret = -1;
	}
	if (ret == 0 && memchr(out->buf, '\0', out->len) != NULL) {
		str_append(error, "the password holds a NUL byte");
		ret = -1;
	}
	return ret;
}

/* Read, hash (password_scheme of main.cf) and wipe the password. */
static int new_password_hash(struct cli_db *d, const char *file, str_t *hash)
{
	struct password_config pc;
	str_t plain, error;
	int ret = -1;

	str_init(&plain);
	str_init(&error);
	if (password_config_get(d->cfg, &pc, &error) == 0 &&
	    read_password(file, &plain, &error) == 0 &&
	    password_hash(pc.scheme, str_c(&plain), hash, &error) == 0)
		ret = 0;
	if (ret < 0)
		log_error("%s", str_c(&error));
	wipe(&plain);
	str_free(&error);
	return ret;
}

static int user_list(struct cli_db *d, const char *domain)
{
	struct sql_result res;
	enum sql_status st;
	str_t error;
	int ret;

	str_init(&error);
	st = db_mailbox_list(&d->admin, domain, &res, &error);
	ret = cli_db_exit(st, &error);
	str_free(&error);
	if (st != SQL_OK)
		return ret;
	for (size_t i = 0; i < res.nrows; i++)
		printf("%s\t%s%s\t%s\t%s\t%s\n", sql_cell(&res, i, 0), sql_cell(&res, i, 3),
		       sql_cell(&res, i, 2) == NULL ? " (domain default)" : "",
		       db_bool(sql_cell(&res, i, 4)) ? "active" : "inactive", sql_cell(&res, i, 5),
		       sql_cell(&res, i, 1) != NULL ? sql_cell(&res, i, 1) : "");
	sql_result_free(&res);
	return CLI_EXIT_OK;
}

int cli_user(int argc, char **argv)
{
	const char *action, *name = NULL, *pwfile = NULL;
	uint64_t quota = 0;
	bool has_quota = false;
	char *arg = NULL;
	struct cli_db d;
	enum sql_status st = SQL_OK;
	str_t error, hash;
	int opt, ret, npos;

	/* optind 0 makes glibc start afresh: postern.c parsed the global
	 * options in "+" (stop at the first argument) mode, and options may
	 * come after the arguments here. */
	optind = 0;
	while ((opt = getopt_long(argc, argv, "c:v", long_options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cli_globals.config_dir = optarg;
			break;
		case 'v':
			log_set_verbose(log_verbose() + 1);
			break;
		case OPT_NAME:
			name = optarg;
			break;
		case OPT_QUOTA:
			if (parse_uint64(optarg, 0, INT64_MAX, &quota) < 0) {
				log_error("--quota \"%s\": expected a number of bytes (0 = "
				          "unlimited)",
				          optarg);
				return CLI_EXIT_USAGE;
			}
			has_quota = true;
			break;
		case OPT_PASSWORD_FILE:
			pwfile = optarg;
			break;
		case OPT_PASSWORD:
			log_error("--password: a password is never taken from the command line "
			          "(ps(1) shows it to everyone); use --password-file FILE or "
			          "standard input");
			return CLI_EXIT_USAGE;
		default:
			return usage();
		}
	}
	npos = argc - optind;
	if (npos < 1)
		return usage();
	action = argv[optind];
	if (strcmp(action, "add") == 0) {
		if (npos != 2)
			return usage();
	} else if (strcmp(action, "passwd") == 0) {
		if (npos != 2 || name != NULL || has_quota)
			return usage();
	} else if (strcmp(action, "del") == 0) {
		if (npos != 2 || name != NULL || has_quota || pwfile != NULL)
			return usage();
	} else if (strcmp(action, "list") == 0) {
		if (npos > 2 || name != NULL || has_quota || pwfile != NULL)
			return usage();
	} else {
		fprintf(stderr, "postern user: unknown action \"%s\"\n", action);
		return usage();
	}

	str_init(&error);
	str_init(&hash);
	if (npos == 2) {
		arg = strcmp(action, "list") == 0
		              ? db_domain_normalise(argv[optind + 1], &error)
		              : db_address_normalise(argv[optind + 1], false, &error);
		if (arg == NULL) {
			log_error("%s", str_c(&error));
			str_free(&error);
			return CLI_EXIT_FAIL;
		}
	}
	ret = cli_db_open(&d, 0);
	if (ret != CLI_EXIT_OK)
		goto out;
	if (strcmp(action, "list") == 0) {
		ret = user_list(&d, arg);
	} else if (strcmp(action, "del") == 0) {
		st = db_mailbox_del(&d.admin, arg, &error);
		if (st == SQL_OK)
			log_info("deleted mailbox %s (its maildir is left on disk)", arg);
		ret = cli_db_exit(st, &error);
	} else {
		bool add = strcmp(action, "add") == 0;

		/* Checked before the password is asked for: no typing in vain. */
		st = add ? db_mailbox_check_new(&d.admin, arg, &error)
		         : db_mailbox_check_exists(&d.admin, arg, &error);
		if (st != SQL_OK) {
			ret = cli_db_exit(st, &error);
		} else if (new_password_hash(&d, pwfile, &hash) < 0) {
			ret = CLI_EXIT_FAIL;
		} else if (add) {
			st = db_mailbox_add(&d.admin, arg, str_c(&hash), name,
			                    has_quota ? &quota : NULL, &error);
			if (st == SQL_OK)
				log_info("added mailbox %s", arg);
			ret = cli_db_exit(st, &error);
		} else {
			st = db_mailbox_passwd(&d.admin, arg, str_c(&hash), &error);
			if (st == SQL_OK)
				log_info("changed the password of %s", arg);
			ret = cli_db_exit(st, &error);
		}
	}
	cli_db_close(&d);
out:
	free(arg);
	str_free(&hash);
	str_free(&error);
	return ret;
}
