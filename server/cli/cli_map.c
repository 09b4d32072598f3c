/* cli_map.c - `postern map`: query and list lookup tables (postmap -q, -s).
 *
 *   map query KEY... TABLE   print the value of each key (postmap -q KEY):
 *                            one key prints the value alone, several keys
 *                            print "key<TAB>value" per key found
 *   map query - TABLE        keys from standard input, one per line;
 *                            prints "key<TAB>value" per key found and
 *                            flushes after each line (postmap -q -)
 *   map dump TABLE           every "key<TAB>value" of a texthash:, inline:,
 *                            hash:, btree:, lmdb: or cdb: table, in the
 *                            file's order (postmap -s)
 *   map build [-A] [-N|-n] [-f] [-i] [-r|-w] TYPE:FILE...
 *                            build FILE.db (hash, btree), FILE.lmdb or
 *                            FILE.cdb from the text file FILE, as postmap
 *                            does (-A: an aliases(5) file, as postalias
 *                            does; newaliases uses that). -N / -n: keys and
 *                            values with / without a trailing NUL (default:
 *                            with, except cdb); -f: keep the case of keys;
 *                            -i: add entries read from standard input to the
 *                            existing file; -r: a duplicate key replaces the
 *                            first, -w: ignored quietly (default: first wins,
 *                            with a warning). TYPE: defaults to hash:;
 *                            texthash: needs no build (checked only).
 *   map build -d KEY TYPE:FILE
 *                            delete KEY (-d -: keys from standard input)
 *                            from the file in place (postmap -d)
 * TABLE is a table name (texthash:/etc/postern/aliases) or a list of them
 * as in main.cf ("texthash:/a, regexp:/b"), searched in order. Tables are
 * opened with the configuration of -c DIR (relative file names are taken
 * from that directory; database tables use its settings). `map build`
 * takes relative file names from the current directory, as postmap does.
 *
 * Exit status: 0 when a key was found (dump: listed; build: built; -d: a
 * key deleted), 1 when none was (dump: the table cannot be listed; build:
 * the source or the file could not be read or written), 75
 * when a lookup failed temporarily or a table cannot be opened (the answer
 * is unknown, so scripts must not read it as "not found"), 64 for usage
 * errors. Messages go to standard error and name the table and reason.
 *
 * SECURITY: runs with the caller's privileges; reads only the table files
 * and main.cf the caller can read, and writes only the files it is asked
 * to build (a new file renamed into place, with the old one's mode and,
 * for root, owner). Keys from standard input are bounded (longer lines are
 * skipped as not found) and never reach a shell.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "cli.h"
#include "conf/config.h"
#include "table/maps.h"
#include "table/table.h"
#include "table/table_postmap.h"

/* Longest line read from standard input; longer ones are not found. */
#define MAP_LINE_MAX (TABLE_PATTERN_KEY_MAX + 2)

struct map_run {
	struct maps *maps;
	bool found;
	bool tempfail;
};

static int usage(void)
{
	fprintf(stderr, "usage: postern map [-c DIR] [-v] query KEY... TABLE\n"
	                "       postern map [-c DIR] [-v] query - TABLE\n"
	                "       postern map [-c DIR] [-v] dump TABLE\n"
	                "       postern map [-c DIR] [-v] build [-A] [-N|-n] [-f] [-i] [-r|-w] "
	                "TYPE:FILE...\n"
	                "       postern map [-c DIR] [-v] build [-A] -d KEY|- TYPE:FILE\n");
	return CLI_EXIT_USAGE;
}

static void query_one(struct map_run *run, const char *key, bool with_key)
{
	struct table_result r;

	table_result_init(&r);
	/* maps_lookup logs a warning naming the table for a TEMPFAIL */
	switch (maps_lookup(run->maps, key, 0, &r, NULL)) {
	case TABLE_FOUND:
		run->found = true;
		if (with_key)
			printf("%s\t%s\n", key, str_c(&r.value));
		else
			printf("%s\n", str_c(&r.value));
		break;
	case TABLE_NOTFOUND:
		break;
	case TABLE_TEMPFAIL:
		run->tempfail = true;
		break;
	}
	fflush(stdout);
	table_result_free(&r);
}

/* Read one line of at most max bytes into line (newline and a CR before it
 * removed). Returns 1 for a line, 0 at end of input; *too_long is set when
 * the line was longer (its rest is discarded). */
static int read_line(FILE *in, str_t *line, size_t max, bool *too_long)
{
	int c;

	str_reset(line);
	*too_long = false;
	while ((c = getc(in)) != EOF && c != '\n') {
		if (line->len < max)
			str_append_c(line, (char)c);
		else
			*too_long = true;
	}
	if (c == EOF && line->len == 0 && !*too_long)
		return 0;
	if (line->len > 0 && line->buf[line->len - 1] == '\r')
		str_truncate(line, line->len - 1);
	return 1;
}

static void query_stdin(struct map_run *run)
{
	bool too_long;
	str_t line;

	str_init(&line);
	while (read_line(stdin, &line, MAP_LINE_MAX, &too_long) > 0) {
		/* A key that cannot be a C string or is over every bound is
		 * "not found", as table_lookup_n() would answer. */
		if (too_long || line.len == 0 || memchr(line.buf, '\0', line.len) != NULL)
			continue;
		query_one(run, str_c(&line), true);
	}
	str_free(&line);
}

static void print_entry(const char *key, const char *value, void *ctx)
{
	(void)ctx;
	printf("%s\t%s\n", key, value);
}

static int dump(struct maps *maps)
{
	for (size_t i = 0; i < maps_count(maps); i++) {
		str_t error;

		str_init(&error);
		if (table_dump(maps_table(maps, i), print_entry, NULL, &error) < 0) {
			log_error("%s", str_c(&error));
			str_free(&error);
			fflush(stdout);
			return CLI_EXIT_FAIL;
		}
		str_free(&error);
	}
	fflush(stdout);
	return CLI_EXIT_OK; /* an empty table lists nothing, like postmap -s */
}

/* `map build`: argv[0] is "build". */
static int build(int argc, char **argv)
{
	struct postmap_options o = {.nul = -1, .dup = INDEXED_DUP_WARN};
	const char *delete_key = NULL;
	struct config *cfg;
	int opt, status = CLI_EXIT_OK;

	optind = 1;
	while ((opt = getopt(argc, argv, "+c:vANnfirwd:")) != -1) {
		switch (opt) {
		case 'c':
			cli_globals.config_dir = optarg;
			break;
		case 'v':
			log_set_verbose(log_verbose() + 1);
			break;
		case 'A':
			o.aliases = true;
			break;
		case 'N':
			o.nul = 1;
			break;
		case 'n':
			o.nul = 0;
			break;
		case 'f':
			o.no_fold = true;
			break;
		case 'i':
			o.incremental = true;
			break;
		case 'r':
			o.dup = INDEXED_DUP_REPLACE;
			break;
		case 'w':
			o.dup = INDEXED_DUP_IGNORE;
			break;
		case 'd':
			delete_key = optarg;
			break;
		default:
			return usage();
		}
	}
	if (optind >= argc || (delete_key != NULL && (o.incremental || argc - optind != 1)))
		return usage();
	cfg = cli_config_load(cli_globals.config_dir, false);
	if (o.aliases && cfg != NULL)
		o.hostname = config_str(cfg, "myhostname");
	if (delete_key != NULL) {
		strv_t keys = {0};
		str_t error;
		int n;

		if (strcmp(delete_key, "-") == 0) {
			bool too_long;
			str_t line;

			str_init(&line);
			while (read_line(stdin, &line, TABLE_KEY_MAX, &too_long) > 0)
				if (!too_long && line.len > 0 &&
				    memchr(line.buf, '\0', line.len) == NULL)
					strv_add(&keys, str_c(&line));
			str_free(&line);
		} else {
			strv_add(&keys, delete_key);
		}
		str_init(&error);
		n = postmap_delete(argv[optind], &keys, &o, &error);
		if (n < 0)
			log_error("%s", str_c(&error));
		status = n > 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
		str_free(&error);
		strv_free(&keys);
		config_destroy(&cfg);
		return status;
	}
	for (int i = optind; i < argc; i++) {
		str_t error;

		str_init(&error);
		if (postmap_build(argv[i], &o, stdin, NULL, &error) < 0) {
			log_error("%s", str_c(&error));
			status = CLI_EXIT_FAIL;
		}
		str_free(&error);
	}
	config_destroy(&cfg);
	return status;
}

static int parse_options(int argc, char **argv)
{
	return cli_common_options(argc, argv, "+c:v");
}

int cli_map(int argc, char **argv)
{
	struct table_open_context ctx = {0};
	struct map_run run = {NULL, false, false};
	const char *action, *table;
	char **keys;
	int nkeys, status;
	str_t error;

	/* Options go before or after the action: map -c DIR query ..., or
	 * map query -c DIR ... (a key starting with '-' follows "--"). */
	if (parse_options(argc, argv) < 0)
		return usage();
	if (optind >= argc)
		return usage();
	action = argv[optind];
	argv += optind;
	argc -= optind;
	optind = 1;
	if (strcmp(action, "build") == 0)
		return build(argc, argv);
	if (parse_options(argc, argv) < 0)
		return usage();
	keys = argv + optind;
	nkeys = argc - optind - 1; /* the last argument is the table */
	if (strcmp(action, "query") == 0) {
		if (nkeys < 1)
			return usage();
		if (strcmp(keys[0], "-") == 0 && nkeys != 1)
			return usage();
	} else if (strcmp(action, "dump") == 0) {
		if (nkeys != 0)
			return usage();
	} else {
		fprintf(stderr, "postern map: unknown action \"%s\"\n", action);
		return usage();
	}
	table = argv[argc - 1];

	ctx.cfg = cli_config_load(cli_globals.config_dir, false);
	ctx.config_dir = cli_globals.config_dir;
	str_init(&error);
	run.maps = maps_open("", table, &ctx, &error);
	if (run.maps == NULL) {
		log_error("%s", str_c(&error));
		str_free(&error);
		config_destroy(&ctx.cfg);
		return CLI_EXIT_TEMPFAIL;
	}
	str_free(&error);

	if (strcmp(action, "dump") == 0) {
		status = dump(run.maps);
	} else {
		if (strcmp(keys[0], "-") == 0)
			query_stdin(&run);
		else
			for (int i = 0; i < nkeys; i++)
				query_one(&run, keys[i], nkeys > 1);
		status = run.tempfail ? CLI_EXIT_TEMPFAIL : run.found ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	maps_close(&run.maps);
	config_destroy(&ctx.cfg);
	return status;
}
