/* cli_conf.c - `postern conf`: show and edit main.cf, show master.cf.
 *
 * The postconf(1) equivalent, with the same output shape ("name = value",
 * sorted by name) so a Postfix administrator reads it at once:
 *   conf [NAME...]          current values (set or default), unexpanded
 *   conf -n                 only parameters set in main.cf
 *   conf -d                 defaults
 *   conf -h                 values without "name = "
 *   conf -x                 values with $name expanded
 *   conf set 'NAME = VALUE' (also -e): edit main.cf, keeping comments
 *   conf unset NAME         (also -X): remove from main.cf
 *   conf -M [SERVICE[/TYPE]]: master.cf services, one per line
 *   conf --man              the postern-conf(5) page (cli_conf_man.c)
 * An edit is checked against the parameter's type before main.cf is
 * touched, and written with fs_write_durable(), so main.cf is never left
 * half-written.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "cli.h"
#include "conf/config.h"
#include "conf/config_edit.h"
#include "conf/mastercf.h"
#include "conf/params.h"

enum conf_mode { SHOW_CURRENT, SHOW_SET, SHOW_DEFAULTS };

struct conf_flags {
	enum conf_mode mode;
	bool value_only; /* -h */
	bool expand; /* -x */
};

static void print_param(struct config *cfg, const struct conf_flags *f, const char *name,
                        const char *raw)
{
	const char *value = raw, *error;
	str_t expanded;

	str_init(&expanded);
	if (f->expand) {
		if (f->mode == SHOW_DEFAULTS ? config_expand_text(cfg, raw, &expanded, &error)
		                             : config_expand(cfg, name, &value, &error)) {
			log_warning("%s", error);
			value = raw;
		} else if (f->mode == SHOW_DEFAULTS) {
			value = str_c(&expanded);
		}
	}
	if (f->value_only)
		printf("%s\n", value);
	else
		printf("%s =%s%s\n", name, value[0] != '\0' ? " " : "", value);
	str_free(&expanded);
}

static int show(struct config *cfg, struct config *defaults, const struct conf_flags *f, int argc,
                char **argv)
{
	int status = CLI_EXIT_OK;

	if (argc > 0) {
		for (int i = 0; i < argc; i++) {
			const char *raw = f->mode == SHOW_DEFAULTS ? config_raw(defaults, argv[i])
			                                           : config_raw(cfg, argv[i]);

			if (raw == NULL || (f->mode == SHOW_SET && !config_is_set(cfg, argv[i]))) {
				if (raw == NULL)
					log_warning("%s: unknown parameter", argv[i]);
				continue;
			}
			print_param(f->mode == SHOW_DEFAULTS ? defaults : cfg, f, argv[i], raw);
		}
		return status;
	}
	if (f->mode == SHOW_SET) {
		strv_t names = STRV_INIT;

		config_set_names(cfg, &names);
		for (size_t i = 0; i < names.n; i++)
			print_param(cfg, f, names.v[i], config_raw(cfg, names.v[i]));
		strv_free(&names);
		return status;
	}
	for (size_t i = 0; i < param_count(); i++) {
		const char *name = param_at(i)->name;

		if (f->mode == SHOW_DEFAULTS)
			print_param(defaults, f, name, config_raw(defaults, name));
		else
			print_param(cfg, f, name, config_raw(cfg, name));
	}
	return status;
}

/* Split "name = value" / "name=value" into its parts (allocated). */
static int split_assignment(const char *arg, char **name_r, char **value_r)
{
	const char *eq = strchr(arg, '=');
	const char *end, *value;

	if (eq == NULL)
		return -1;
	end = eq;
	while (end > arg && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	value = eq + 1;
	while (*value == ' ' || *value == '\t')
		value++;
	*name_r = xstrndup(arg, (size_t)(end - arg));
	*value_r = xstrdup(value);
	/* trailing white space is not part of a main.cf value */
	for (size_t n = strlen(*value_r);
	     n > 0 && ((*value_r)[n - 1] == ' ' || (*value_r)[n - 1] == '\t'); n--)
		(*value_r)[n - 1] = '\0';
	return 0;
}

static bool valid_name(const char *name)
{
	if (name[0] == '\0')
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
			return false;
	return true;
}

/* conf set / conf unset: edit main.cf once for all arguments. */
static int edit(struct config *cfg, bool unset, int argc, char **argv)
{
	char *path = xasprintf("%s/main.cf", cli_globals.config_dir);
	str_t text, out, error;
	struct stat st;
	mode_t mode = 0644;
	int status = CLI_EXIT_OK;

	str_init(&text);
	str_init(&out);
	str_init(&error);
	if (argc == 0) {
		log_error("conf %s: nothing to do: give %s", unset ? "unset" : "set",
		          unset ? "NAME..." : "'NAME = VALUE'...");
		status = CLI_EXIT_USAGE;
		goto done;
	}
	if (stat(path, &st) == 0)
		mode = st.st_mode & 07777;
	if (fs_read_file(path, CONFIG_FILE_MAX, &text, &error) < 0) {
		log_error("%s", str_c(&error));
		status = CLI_EXIT_FAIL;
		goto done;
	}
	for (int i = 0; i < argc; i++) {
		char *name = NULL, *value = NULL;
		const char *why;

		if (unset) {
			name = xstrdup(argv[i]);
		} else if (split_assignment(argv[i], &name, &value) < 0) {
			log_error("conf set: \"%s\": expected NAME = VALUE", argv[i]);
			status = CLI_EXIT_USAGE;
			goto done;
		}
		if (!valid_name(name) || (value != NULL && strpbrk(value, "\r\n") != NULL)) {
			log_error("conf %s: \"%s\": expected a parameter name (letters, digits, "
			          "'_', '-', '.') "
			          "and a one-line value",
			          unset ? "unset" : "set", argv[i]);
			status = CLI_EXIT_USAGE;
			free(name);
			free(value);
			goto done;
		}
		if (value != NULL) {
			if (param_find(name) == NULL)
				log_warning("%s: unknown parameter (written anyway)", name);
			config_set(cfg, name, value, "command line");
			if (config_check_value(cfg, name, &why) < 0) {
				log_error("%s; main.cf not changed", why);
				status = CLI_EXIT_FAIL;
				free(name);
				free(value);
				goto done;
			}
		}
		str_reset(&out);
		if (config_edit_text(text.buf, text.len, name, value, &out) == 0 && unset)
			log_warning("%s: not set in %s", name, path);
		str_set(&text, "");
		str_append_n(&text, out.buf, out.len);
		free(name);
		free(value);
	}
	if (fs_write_durable(path, text.buf, text.len, mode, &error) < 0) {
		log_error("%s", str_c(&error));
		status = CLI_EXIT_FAIL;
	}
done:
	str_free(&text);
	str_free(&out);
	str_free(&error);
	free(path);
	return status;
}

static const char *yn(bool b)
{
	return b ? "y" : "n";
}

/* conf -M: one service per line, Postfix's column order, overrides as -o. */
static int show_master(struct config *cfg, int argc, char **argv)
{
	char *path = xasprintf("%s/master.cf", cli_globals.config_dir);
	struct master_conf *mc = NULL;
	strv_t errors = STRV_INIT;
	int status = CLI_EXIT_OK;

	(void)cfg;
	if (mastercf_load(path, &mc, &errors) < 0) {
		for (size_t i = 0; i < errors.n; i++)
			log_error("%s", errors.v[i]);
		status = CLI_EXIT_FAIL;
	}
	for (size_t i = 0; mc != NULL && i < mc->n; i++) {
		const struct master_service *s = &mc->services[i];
		bool wanted = argc == 0;
		char wakeup[32], maxproc[32];

		for (int a = 0; a < argc && !wanted; a++) {
			const char *slash = strchr(argv[a], '/');
			size_t nlen = slash != NULL ? (size_t)(slash - argv[a]) : strlen(argv[a]);

			wanted = strlen(s->name) == nlen && strncmp(s->name, argv[a], nlen) == 0 &&
			         (slash == NULL || strcmp(slash + 1, s->type) == 0);
		}
		if (!wanted)
			continue;
		snprintf(wakeup, sizeof(wakeup), "%u%s", s->wakeup,
		         s->wakeup_conditional ? "?" : "");
		if (s->maxproc < 0)
			snprintf(maxproc, sizeof(maxproc), "-");
		else
			snprintf(maxproc, sizeof(maxproc), "%ld", s->maxproc);
		printf("%-10s %-5s %-7s %-7s %-7s %-7s %-7s %s", s->name, s->type, yn(s->private_),
		       yn(s->unpriv), yn(s->chroot), wakeup, maxproc, s->command);
		for (size_t o = 0; o < s->override_names.n; o++)
			printf(" -o %s=%s", s->override_names.v[o], s->override_values.v[o]);
		for (size_t a = 0; a < s->argv.n; a++)
			printf(" %s", s->argv.v[a]);
		printf("\n");
	}
	mastercf_destroy(&mc);
	strv_free(&errors);
	free(path);
	return status;
}

enum { OPT_MAN = 256 };

static const struct option long_options[] = {
        {"man", no_argument, NULL, OPT_MAN},
        {NULL, 0, NULL, 0},
};

int cli_conf(int argc, char **argv)
{
	struct conf_flags f = {SHOW_CURRENT, false, false};
	struct config *cfg = NULL, *defaults = NULL;
	strv_t errors = STRV_INIT;
	bool edit_set = false, edit_unset = false, master = false, man = false;
	int opt, status;

	while ((opt = getopt_long(argc, argv, "c:ndhxeXMv", long_options, NULL)) != -1) {
		switch (opt) {
		case OPT_MAN:
			man = true;
			break;
		case 'c':
			cli_globals.config_dir = optarg;
			break;
		case 'n':
			f.mode = SHOW_SET;
			break;
		case 'd':
			f.mode = SHOW_DEFAULTS;
			break;
		case 'h':
			f.value_only = true;
			break;
		case 'x':
			f.expand = true;
			break;
		case 'e':
			edit_set = true;
			break;
		case 'X':
			edit_unset = true;
			break;
		case 'M':
			master = true;
			break;
		case 'v':
			log_set_verbose(log_verbose() + 1);
			break;
		default:
			fprintf(stderr,
			        "usage: postern conf [-c DIR] [-n|-d] [-h] [-x] [NAME...]\n"
			        "       postern conf set 'NAME = VALUE'... | unset NAME...\n"
			        "       postern conf -M [SERVICE[/TYPE]...]\n");
			return CLI_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (man) /* the table alone: no main.cf is read */
		return argc == 0 ? cli_conf_man(stdout) : CLI_EXIT_USAGE;
	if (argc > 0 && (strcmp(argv[0], "set") == 0 || strcmp(argv[0], "unset") == 0)) {
		edit_set = argv[0][0] == 's';
		edit_unset = !edit_set;
		argc--;
		argv++;
	}
	/* conf -d needs no main.cf; everything else refuses to show or edit
	 * a main.cf that could not be read in full. */
	if (config_load(cli_globals.config_dir, &cfg, &errors) < 0 &&
	    (f.mode != SHOW_DEFAULTS || edit_set || edit_unset || master)) {
		for (size_t i = 0; i < errors.n; i++)
			log_error("%s", errors.v[i]);
		strv_free(&errors);
		config_destroy(&cfg);
		return CLI_EXIT_FAIL;
	}
	for (size_t i = 0; i < config_parse_warnings(cfg)->n; i++)
		log_warning("%s", config_parse_warnings(cfg)->v[i]);
	strv_free(&errors);
	cli_warn_not_yet(cfg);
	if (master)
		status = show_master(cfg, argc, argv);
	else if (edit_set || edit_unset)
		status = edit(cfg, edit_unset, argc, argv);
	else {
		/* Defaults come from an empty main.cf in the same directory. */
		if (config_parse_text("", 0, "(defaults)", cli_globals.config_dir, &defaults,
		                      &errors) < 0)
			log_panic("parsing an empty main.cf failed");
		status = show(cfg, defaults, &f, argc, argv);
	}
	config_destroy(&defaults);
	config_destroy(&cfg);
	strv_free(&errors);
	return status;
}
