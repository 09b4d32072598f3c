/* cli.h - shared pieces of the postern command-line program.
 *
 * Each subcommand lives in its own cli_<name>.c and exposes one entry
 * point taking (argc, argv) with argv[0] being the subcommand name; it
 * returns the process exit status.
 */
#ifndef POSTERN_CLI_H
#define POSTERN_CLI_H

#include <stdbool.h>
#include <stdio.h>

/* Exit statuses shared by all subcommands (sysexits.h values where one fits). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 64
#define CLI_EXIT_TEMPFAIL 75

/* Options that every subcommand accepts: -c DIR and -v. */
struct cli_globals {
	const char *config_dir; /* -c DIR, $MAIL_CONFIG, or the built-in default */
	int verbose;
};
extern struct cli_globals cli_globals;

/* Open stderr logging as "postern/<command>" and apply -v. */
void cli_log_open(const char *command);

/* Parse the options every subcommand shares, -c DIR and -v, with
 * getopt(optstring) from the current optind ("c:v", or "+c:v" to stop at
 * the first argument). -1 at an option not in optstring (getopt has
 * printed why); the caller prints its usage. */
int cli_common_options(int argc, char **argv, const char *optstring);

struct config;
/* main.cf of dir; a missing main.cf means the built-in defaults (the
 * commands work on a host without one). Problems are logged: strict, as
 * errors and NULL is returned (the caller stops: a broken database line
 * must not mean the default database); else as warnings, with what could
 * be read returned. */
struct config *cli_config_load(const char *dir, bool strict);

/* Warn on stderr about each parameter set in main.cf or as a master.cf -o
 * override (config directory cli_globals.config_dir) that is accepted but
 * not implemented yet, naming file and line. */
void cli_warn_not_yet(struct config *cfg);

int cli_conf(int argc, char **argv);
/* `postern conf --man`: write the postern-conf(5) page, generated from
 * the parameter table, to out (cli_conf_man.c); the exit status. */
int cli_conf_man(FILE *out);
int cli_check(int argc, char **argv);
int cli_map(int argc, char **argv);
int cli_db(int argc, char **argv);
int cli_domain(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_alias(int argc, char **argv);
/* sendmail(1) compatibility (cli_sendmail.c); also reached as `sendmail`,
 * `mailq` and `newaliases` through a link of that name (argv[0]). */
int cli_sendmail(int argc, char **argv);
/* `postern trace ADDRESS`: recipient resolution step by step
 * (cli_trace.c). */
int cli_trace(int argc, char **argv);
/* `postern tls selfsigned`: a new key and self-signed certificate
 * (cli_tls.c). */
int cli_tls(int argc, char **argv);
/* Run the smtpd program in the foreground (cli_smtpd.c). */
int cli_smtpd(int argc, char **argv);
/* The master process (cli_master.c): start (detached), start-fg,
 * stop, reload, status. */
int cli_start(int argc, char **argv);
int cli_start_fg(int argc, char **argv);
int cli_stop(int argc, char **argv);
int cli_reload(int argc, char **argv);
int cli_status(int argc, char **argv);
struct config;
/* The mailq / sendmail -bp / `postern queue list` listing of the queue
 * of cfg (cli_queue_list.c); returns the exit status. */
int cli_mailq_list(struct config *cfg);
/* `postern queue ...`: list, cat, shape, delete, hold, release, requeue,
 * flush (cli_queue.c; postqueue, postsuper, postcat, qshape). */
int cli_queue(int argc, char **argv);

#endif
