/* cli_master.c - `postern start|start-fg|stop|reload|status`: run and
 * control the master process (Postfix's postfix start/stop/reload/status).
 *
 * start and start-fg exec the master program (the one next to the
 * postern binary in the build tree, else $daemon_directory/master) with
 * -c DIR and -v as given; start-fg adds -d -e (foreground, log to stderr
 * unless maillog_file is set). stop, reload and status find the master
 * through the lock and pid file under queue_directory/pid
 * (daemon_master_pid) and signal it: SIGTERM, SIGHUP.
 *
 * Failure: a broken main.cf, a master that is not running (stop,
 * reload, status: exit 1) or one that does not stop within 30 s (stop:
 * exit 1) is reported on stderr.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "cli.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "daemon/pidfile.h"

#define STOP_WAIT_SECONDS 30
#define RELOAD_WAIT_SECONDS 30
#define LEFTOVER_GRACE_MS 5000

static struct config *load_config(void)
{
	struct config *cfg = NULL;
	strv_t errors = STRV_INIT;

	if (config_load(cli_globals.config_dir, &cfg, &errors) < 0) {
		for (size_t i = 0; i < errors.n; i++)
			fprintf(stderr, "postern: fatal: %s\n", errors.v[i]);
		strv_free(&errors);
		config_destroy(&cfg);
		return NULL;
	}
	strv_free(&errors);
	return cfg;
}

static int run_master(int argc, char **argv, bool foreground)
{
	strv_t args = STRV_INIT;
	struct config *cfg;
	char *program;

	if (cli_common_options(argc, argv, "c:v") < 0 || optind < argc) {
		fprintf(stderr, "usage: postern %s [-c DIR] [-v]\n", argv[0]);
		return CLI_EXIT_USAGE;
	}
	cfg = load_config();
	if (cfg == NULL)
		return CLI_EXIT_FAIL;
	program = daemon_program_path(cfg, "master");
	/* The master logs these to the mail log; a terminal that started it
	 * in the background sees them here (in the foreground, master's own
	 * log is the terminal). */
	if (!foreground)
		cli_warn_not_yet(cfg);
	config_destroy(&cfg);
	strv_add(&args, program);
	strv_add(&args, "-c");
	strv_add(&args, cli_globals.config_dir);
	for (int i = 0; i < log_verbose(); i++)
		strv_add(&args, "-v");
	if (foreground) {
		strv_add(&args, "-d");
		strv_add(&args, "-e");
	}
	execv(program, args.v);
	fprintf(stderr, "postern: fatal: cannot run %s: %s\n", program, strerror(errno));
	strv_free(&args);
	free(program);
	return CLI_EXIT_FAIL;
}

int cli_start(int argc, char **argv)
{
	return run_master(argc, argv, false);
}

int cli_start_fg(int argc, char **argv)
{
	return run_master(argc, argv, true);
}

/* The running master's PID, or 0 after printing that it is not running
 * (-1 on a configuration error). */
static long running_pid(int argc, char **argv, bool quiet, char **queue_r)
{
	struct config *cfg;
	long pid;

	if (cli_common_options(argc, argv, "c:v") < 0 || optind < argc) {
		fprintf(stderr, "usage: postern %s [-c DIR] [-v]\n", argv[0]);
		return -1;
	}
	cfg = load_config();
	if (cfg == NULL)
		return -1;
	pid = daemon_master_pid(config_str(cfg, "queue_directory"));
	if (pid < 0)
		fprintf(stderr,
		        "postern: fatal: the master holds the lock in %s/pid but its pid "
		        "file is unreadable\n",
		        config_str(cfg, "queue_directory"));
	else if (pid == 0 && !quiet)
		fprintf(stderr, "postern: the postern mail system is not running\n");
	if (queue_r != NULL)
		*queue_r = xstrdup(config_str(cfg, "queue_directory"));
	config_destroy(&cfg);
	return pid;
}

int cli_status(int argc, char **argv)
{
	char *queue = NULL;
	long pid = running_pid(argc, argv, true, &queue);
	strv_t found = STRV_INIT;

	if (pid > 0) {
		printf("postern is running (PID %ld)\n", pid);
		free(queue);
		return CLI_EXIT_OK;
	}
	if (pid == 0 && pidfile_leftovers(queue, &found) > 0) {
		/* A master killed by SIGKILL leaves daemons that serve with
		 * nobody watching them: say so, by PID. */
		printf("postern is not running, but %zu of its daemons still run without a "
		       "master:",
		       found.n);
		for (size_t i = 0; i < found.n; i++)
			printf("%s %s", i == 0 ? "" : ",", found.v[i]);
		printf(" (`postern stop` stops them, `postern start` replaces them)\n");
	} else if (pid == 0) {
		printf("postern is not running\n");
	}
	strv_free(&found);
	free(queue);
	return CLI_EXIT_FAIL;
}

/* The contents of master's reload verdict (master.c), "" when none. */
static char *read_verdict(const char *path)
{
	FILE *f = fopen(path, "r");
	str_t text;

	str_init(&text);
	if (f != NULL) {
		for (;;) {
			char buf[1024];
			size_t n = fread(buf, 1, sizeof(buf), f);

			if (n == 0)
				break;
			str_append_n(&text, buf, n);
		}
		fclose(f);
	}
	{
		char *result = str_steal(&text);

		str_free(&text); /* steal leaves an empty, allocated string */
		return result;
	}
}

/* Why the CLI waits for master's verdict: master is the one that checks
 * the new configuration (confcheck.h) and keeps the old one when it
 * fails; a script that runs `postern reload` must learn that from the
 * exit status, not from the mail log. master writes
 * queue_directory/pid/master.reload ("PID SEQ ok|failed" and the
 * errors) after each SIGHUP; the CLI waits, bounded, for it to change. */
int cli_reload(int argc, char **argv)
{
	char *queue = NULL, *path, *before, *prefix;
	long pid = running_pid(argc, argv, false, &queue);
	int status = CLI_EXIT_FAIL;

	if (pid <= 0) {
		free(queue);
		return CLI_EXIT_FAIL;
	}
	path = xasprintf("%s/pid/master.reload", queue);
	prefix = xasprintf("%ld ", pid);
	before = read_verdict(path);
	if (kill((pid_t)pid, SIGHUP) < 0) {
		fprintf(stderr, "postern: fatal: kill -HUP %ld: %s\n", pid, strerror(errno));
		goto out;
	}
	printf("postern: refreshing the postern mail system\n");
	fflush(stdout);
	for (int i = 0; i < RELOAD_WAIT_SECONDS * 20; i++) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		char *now = read_verdict(path);
		char *nl = strchr(now, '\n');

		if (nl != NULL && strcmp(now, before) != 0 &&
		    strncmp(now, prefix, strlen(prefix)) == 0) {
			*nl = '\0';
			if (strstr(now, " ok") != NULL) {
				status = CLI_EXIT_OK;
			} else {
				for (char *line = nl + 1, *next; *line != '\0'; line = next) {
					next = strchr(line, '\n');
					if (next != NULL)
						*next++ = '\0';
					else
						next = line + strlen(line);
					fprintf(stderr, "postern: reload failed: %s\n", line);
				}
				fprintf(stderr,
				        "postern: reload failed: master PID %ld keeps the "
				        "running configuration\n",
				        pid);
			}
			free(now);
			goto out;
		}
		free(now);
		if (daemon_master_pid(queue) != pid) {
			fprintf(stderr, "postern: fatal: master PID %ld exited during the reload\n",
			        pid);
			goto out;
		}
		nanosleep(&ts, NULL);
	}
	fprintf(stderr,
	        "postern: fatal: master PID %ld did not report the outcome of the reload "
	        "within %d s (see the mail log)\n",
	        pid, RELOAD_WAIT_SECONDS);
out:
	free(before);
	free(prefix);
	free(path);
	free(queue);
	return status;
}

/* Stop, by PID, the daemons a killed master left running and say which;
 * lead says how master went. Returns how many there were. */
static size_t stop_leftovers(const char *queue, const char *lead)
{
	strv_t stopped = STRV_INIT;
	size_t n = pidfile_stop_leftovers(queue, LEFTOVER_GRACE_MS, &stopped);

	if (n > 0) {
		printf("postern: %s: stopped %zu daemon%s it left running:", lead, n,
		       n == 1 ? "" : "s");
		for (size_t i = 0; i < stopped.n; i++)
			printf("%s %s", i == 0 ? "" : ",", stopped.v[i]);
		printf("\n");
	}
	strv_free(&stopped);
	return n;
}

int cli_stop(int argc, char **argv)
{
	char *queue = NULL;
	long pid = running_pid(argc, argv, true, &queue);

	if (pid == 0) {
		size_t n = stop_leftovers(queue, "master is not running");

		free(queue);
		if (n == 0) {
			fprintf(stderr, "postern: the postern mail system is not running\n");
			return CLI_EXIT_FAIL;
		}
		return CLI_EXIT_OK;
	}
	if (pid < 0) {
		free(queue);
		return CLI_EXIT_FAIL;
	}
	if (kill((pid_t)pid, SIGTERM) < 0) {
		fprintf(stderr, "postern: fatal: kill -TERM %ld: %s\n", pid, strerror(errno));
		free(queue);
		return CLI_EXIT_FAIL;
	}
	printf("postern: stopping the postern mail system\n");
	fflush(stdout);
	/* Why wait: a script that runs `postern stop; postern start` must
	 * not find the old master still holding the lock and the ports.
	 * The lock, not kill(pid, 0): it is released when master exits,
	 * also while its parent has not reaped it yet. */
	for (int i = 0; i < STOP_WAIT_SECONDS * 10; i++) {
		struct timespec ts = {0, 100 * 1000 * 1000};

		if (daemon_master_pid(queue) == 0) {
			/* A master that stops on SIGTERM reaps its children
			 * first; one killed (kill -9) just before leaves them
			 * running, and a stop must not. */
			(void)stop_leftovers(queue, "master exited without stopping its daemons");
			free(queue);
			return CLI_EXIT_OK;
		}
		nanosleep(&ts, NULL);
	}
	free(queue);
	fprintf(stderr, "postern: fatal: master PID %ld still running after %d s\n", pid,
	        STOP_WAIT_SECONDS);
	return CLI_EXIT_FAIL;
}
