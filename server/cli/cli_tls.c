/* cli_tls.c - `postern tls`: TLS chores for the administrator.
 *
 *   tls selfsigned [-n CN] [-d DAYS] [--ecdsa] [CERT KEY]
 *       write a new key and a self-signed certificate for CN (default
 *       $myhostname), valid DAYS days (default 365), RSA 2048 or with
 *       --ecdsa ECDSA P-256. CERT and KEY default to main.cf's
 *       smtpd_tls_cert_file and smtpd_tls_key_file when set, else
 *       $config_directory/tls/postern-cert.pem and postern-key.pem (the
 *       directory is created, mode 0755). Prints the files written and
 *       the main.cf lines that use them.
 *
 * The writing is lib/tls's tls_selfsigned_write(): key mode 0600,
 * certificate 0644, each replaced atomically. An existing pair is
 * replaced: that is what the command is for (a new test certificate).
 *
 * Exit status: 0 written, 1 failure (message on stderr), 64 usage.
 * SECURITY: runs with the caller's privileges; reads main.cf and writes
 * only the two files (and the tls directory).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "cli.h"
#include "conf/config.h"
#include "tls/tls.h"

static int usage(void)
{
	fprintf(stderr, "usage: postern tls [-c DIR] [-v] selfsigned [-n CN] [-d DAYS] [--ecdsa] "
	                "[CERT KEY]\n");
	return CLI_EXIT_USAGE;
}

/* Create the directory path is in (mode 0755) when it is missing and its
 * own parent exists. -1 after logging why. */
static int make_parent(const char *path)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	int ret = 0;

	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			log_error("mkdir %s: %m", dir);
			ret = -1;
		}
	}
	free(dir);
	return ret;
}

/* The expanded value of name into *value_r (caller frees); -1 logged. */
static int expand(struct config *cfg, const char *name, char **value_r)
{
	str_t error;

	str_init(&error);
	if (config_expand_dup(cfg, name, value_r, &error) < 0) {
		log_error("%s", str_c(&error));
		str_free(&error);
		return -1;
	}
	str_free(&error);
	return 0;
}

static int selfsigned(int argc, char **argv)
{
	static const struct option long_options[] = {
	        {"ecdsa", no_argument, NULL, 'e'},
	        {NULL, 0, NULL, 0},
	};
	const char *cn_opt = NULL;
	unsigned long days = 365;
	bool ecdsa = false;
	char *cn = NULL, *cert = NULL, *key = NULL, *confdir = NULL;
	struct config *cfg;
	str_t error;
	int opt, ret = CLI_EXIT_FAIL;

	while ((opt = getopt_long(argc, argv, "+c:vn:d:", long_options, NULL)) != -1) {
		char *end;

		switch (opt) {
		case 'c':
			cli_globals.config_dir = optarg;
			break;
		case 'v':
			log_set_verbose(log_verbose() + 1);
			break;
		case 'n':
			cn_opt = optarg;
			break;
		case 'd':
			errno = 0;
			days = strtoul(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || end == optarg || days == 0 ||
			    days > 36500) {
				fprintf(stderr,
				        "postern tls selfsigned: -d %s: expected days from 1 to "
				        "36500\n",
				        optarg);
				return CLI_EXIT_USAGE;
			}
			break;
		case 'e':
			ecdsa = true;
			break;
		default:
			return usage();
		}
	}
	if (argc - optind != 0 && argc - optind != 2)
		return usage();
	if ((cfg = cli_config_load(cli_globals.config_dir, true)) == NULL)
		return CLI_EXIT_FAIL;
	str_init(&error);

	if (cn_opt != NULL)
		cn = xstrdup(cn_opt);
	else if (expand(cfg, "myhostname", &cn) < 0)
		goto out;
	if (argc - optind == 2) {
		cert = xstrdup(argv[optind]);
		key = xstrdup(argv[optind + 1]);
	} else {
		if (expand(cfg, "smtpd_tls_cert_file", &cert) < 0 ||
		    expand(cfg, "smtpd_tls_key_file", &key) < 0)
			goto out;
		if (*cert == '\0') {
			/* Nothing configured: postern's own place for them. */
			if (expand(cfg, "config_directory", &confdir) < 0)
				goto out;
			char *tlsdir = xasprintf("%s/tls", confdir);

			if (mkdir(tlsdir, 0755) < 0 && errno != EEXIST) {
				log_error("mkdir %s: %m", tlsdir);
				free(tlsdir);
				goto out;
			}
			free(cert);
			free(key);
			cert = xasprintf("%s/postern-cert.pem", tlsdir);
			key = xasprintf("%s/postern-key.pem", tlsdir);
			free(tlsdir);
		} else if (*key == '\0') {
			/* smtpd_tls_key_file = (empty): the key is in the cert
			 * file, which one write cannot make; keep them apart. */
			log_error("smtpd_tls_key_file is empty: name CERT and KEY on the command "
			          "line");
			goto out;
		}
	}
	if (strcmp(cert, key) == 0) {
		log_error("%s: the certificate and the key need two files", cert);
		goto out;
	}
	/* main.cf may name a directory that does not exist yet
	 * ($config_directory/tls on a new install): make its last level. */
	if (make_parent(cert) < 0 || make_parent(key) < 0)
		goto out;
	if (tls_selfsigned_write(cert, key, cn, (unsigned)days, ecdsa, &error) < 0) {
		log_error("%s", str_c(&error));
		goto out;
	}
	printf("wrote %s (self-signed certificate for %s, %s, valid %lu days)\n"
	       "wrote %s (private key, mode 0600)\n\n"
	       "main.cf:\n"
	       "smtpd_tls_cert_file = %s\n"
	       "smtpd_tls_key_file = %s\n"
	       "smtpd_tls_security_level = may\n",
	       cert, cn, ecdsa ? "ECDSA P-256" : "RSA 2048", days, key, cert, key);
	ret = CLI_EXIT_OK;
out:
	str_free(&error);
	free(cn);
	free(cert);
	free(key);
	free(confdir);
	config_destroy(&cfg);
	return ret;
}

int cli_tls(int argc, char **argv)
{
	/* options before the subcommand: -c DIR, -v */
	if (cli_common_options(argc, argv, "+c:v") < 0)
		return usage();
	if (optind >= argc)
		return usage();
	if (strcmp(argv[optind], "selfsigned") == 0) {
		int sub_argc = argc - optind;
		char **sub_argv = argv + optind;

		optind = 1;
		return selfsigned(sub_argc, sub_argv);
	}
	fprintf(stderr, "postern tls: unknown subcommand \"%s\"\n", argv[optind]);
	return usage();
}
