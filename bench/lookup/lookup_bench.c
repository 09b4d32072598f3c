/* lookup_bench.c - lookups per second through table_async, per table.
 *
 * Measures what an event-driven postern daemon gets from its lookup
 * tables: for each table given, with the table cache off and on, and
 * with 1, 8 and 64 lookups in flight, it keeps that many lookups going
 * through table_async (the worker pool and the cache the daemons use)
 * for a fixed time, cycling through a list of keys, and prints one
 * Markdown table row per run: lookups, lookups/s, latency percentiles,
 * cache hit ratio, and how many answers were found / not found /
 * temporary failures. Run by bench/run-lookup.sh, which starts the
 * database servers, loads the data and writes bench/RESULTS.md.
 *
 *   lookup_bench [-c DIR] [-o name=value]... -k KEYFILE [-d SECONDS]
 *                [-j 1,8,64] [-m off,on] [-w WORKERS] TABLE...
 *
 * With -q it is instead a long-running lookup client for system tests:
 * it reads one key per line on standard input and prints one line per
 * answer, "KEY<TAB>FOUND<TAB>VALUE", "KEY<TAB>NOTFOUND" ("KEY<TAB>NOTFOUND
 * <TAB>stale" from the cache during an outage: table_result.stale) or
 * "KEY<TAB>TEMPFAIL<TAB>WHY", through the same pool and cache, so that
 * cache behaviour across a database outage can be watched from outside.
 *
 *   lookup_bench -q [-c DIR] [-o name=value]... TABLE
 *
 * Failure: bad options or parameters exit 64 with a message; a table that
 * cannot be used shows up as temporary failures in the results (the
 * program does not hide them) and the exit status is 1, since such
 * figures measure an error path. No thresholds: it measures, it does not
 * judge.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "table/table.h"
#include "table/table_async.h"
#include "table/table_cache.h"

#define EXIT_USAGE 64
/* Largest key file read, and longest key line in -q mode. */
#define KEYFILE_MAX (64 * 1024 * 1024)
#define QUERY_LINE_MAX 4096
/* Most lookups in flight accepted by -j. */
#define INFLIGHT_MAX 4096

struct options {
	const char *config_dir;
	strv_t overrides; /* name=value */
	const char *keyfile;
	uint64_t seconds;
	strv_t inflight; /* "1", "8", "64" */
	strv_t modes; /* "off", "on" */
	unsigned workers;
	bool query;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr, "usage: lookup_bench [-c DIR] [-o name=value]... -k KEYFILE [-d SECONDS]\n"
	                "                    [-j 1,8,64] [-m off,on] [-w WORKERS] TABLE...\n"
	                "       lookup_bench -q [-c DIR] [-o name=value]... TABLE\n");
	exit(EXIT_USAGE);
}

/* main.cf from -c DIR (or the defaults), then the -o overrides. */
static struct config *load_config(const struct options *o)
{
	struct config *cfg = NULL;
	strv_t errors = STRV_INIT;
	int rc;

	if (o->config_dir != NULL)
		rc = config_load(o->config_dir, &cfg, &errors);
	else
		rc = config_parse_text("", 0, "(defaults)", ".", &cfg, &errors);
	if (rc < 0) {
		for (size_t i = 0; i < errors.n; i++)
			fprintf(stderr, "lookup_bench: %s\n", errors.v[i]);
		exit(EXIT_USAGE);
	}
	strv_free(&errors);
	for (size_t i = 0; i < o->overrides.n; i++) {
		const char *eq = strchr(o->overrides.v[i], '=');
		char *name;

		if (eq == NULL || eq == o->overrides.v[i]) {
			fprintf(stderr, "lookup_bench: -o %s: expected name=value\n",
			        o->overrides.v[i]);
			exit(EXIT_USAGE);
		}
		name = xstrndup(o->overrides.v[i], (size_t)(eq - o->overrides.v[i]));
		config_set(cfg, name, eq + 1, "-o");
		free(name);
	}
	return cfg;
}

static struct table_async *make_pool(struct event_base *base, struct config *cfg,
                                     const struct options *o)
{
	struct table_open_context ctx = {.cfg = cfg, .config_dir = o->config_dir};
	struct table_async *pool;
	str_t error;

	str_init(&error);
	pool = table_async_new(base, o->workers, &ctx, &error);
	if (pool == NULL) {
		fprintf(stderr, "lookup_bench: %s\n", str_c(&error));
		exit(EXIT_USAGE);
	}
	str_free(&error);
	return pool;
}

/* ---- benchmark mode --------------------------------------------------- */

struct run;

struct slot {
	struct run *run;
	uint64_t started_ns;
};

struct run {
	struct table_async *pool;
	const char *spec;
	const strv_t *keys;
	size_t next_key;
	bool stopping; /* no new lookups: the deadline has passed */
	bool warming; /* warm-up pass: answers are not counted */
	size_t warm_left; /* warm-up lookups still to issue */
	uint64_t found, notfound, tempfail;
	uint32_t *lat_us; /* latency of each answer counted */
	size_t nlat, cap;
	str_t first_error;
};

static void issue(struct slot *s);

static void on_bench_answer(const struct table_result *r, void *ctx)
{
	struct slot *s = ctx;
	struct run *run = s->run;
	uint64_t us;

	if (run->stopping)
		return; /* answers after the deadline are not counted */
	if (run->warming) {
		if (run->warm_left > 0) {
			run->warm_left--;
			issue(s);
		}
		return;
	}
	us = (now_ns() - s->started_ns) / 1000;
	if (run->nlat == run->cap) {
		run->cap = run->cap ? run->cap * 2 : 65536;
		run->lat_us = xreallocarray(run->lat_us, run->cap, sizeof(*run->lat_us));
	}
	run->lat_us[run->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	switch (r->status) {
	case TABLE_FOUND:
		run->found++;
		break;
	case TABLE_NOTFOUND:
		run->notfound++;
		break;
	case TABLE_TEMPFAIL:
		run->tempfail++;
		if (run->first_error.len == 0)
			str_set(&run->first_error, str_c(&r->error));
		break;
	}
	issue(s);
}

static void issue(struct slot *s)
{
	struct run *run = s->run;
	const char *key = run->keys->v[run->next_key];

	run->next_key = (run->next_key + 1) % run->keys->n;
	s->started_ns = now_ns();
	table_async_lookup(run->pool, run->spec, key, on_bench_answer, s);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	((struct run *)arg)->stopping = true;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static double percentile_ms(const struct run *run, double p)
{
	size_t i;

	if (run->nlat == 0)
		return 0;
	i = (size_t)(p * (double)(run->nlat - 1) + 0.5);
	return run->lat_us[i] / 1000.0;
}

/* One measurement: inflight lookups kept going for o->seconds. Returns
 * the number of temporary failures. */
static uint64_t bench_one(const struct options *o, struct config *cfg, const char *spec,
                          const strv_t *keys, const char *mode, unsigned inflight)
{
	struct event_base *base = event_base_new();
	struct table_async *pool;
	struct run run = {.spec = spec, .keys = keys};
	struct slot *slots = xcalloc(inflight, sizeof(*slots));
	struct timeval tv = {(time_t)o->seconds, 0};
	struct event *deadline;
	struct table_cache_stats cs0 = {0}, cs = {0};
	uint64_t t0, elapsed_ns;
	double secs, hit_pct = 0;
	char type[32];
	const char *colon = strchr(spec, ':');

	if (base == NULL)
		log_fatal("cannot create an event base");
	str_init(&run.first_error);
	pool = make_pool(base, cfg, o);
	run.pool = pool;
	for (unsigned i = 0; i < inflight; i++)
		slots[i].run = &run;
	if (table_async_cache(pool) != NULL) {
		/* Why warm up: a daemon's cache holds the addresses it saw in
		 * the last minute; a run that starts empty would measure
		 * the first pass over the keys, i.e. the backend. Every key
		 * is looked up once, not counted; the run then cycles. */
		run.warming = true;
		run.warm_left = keys->n;
		for (unsigned i = 0; i < inflight && run.warm_left > 0; i++) {
			run.warm_left--;
			issue(&slots[i]);
		}
		event_base_dispatch(base); /* the callbacks read run.warming */
		/* cppcheck-suppress redundantAssignment */
		run.warming = false;
		table_cache_get_stats(table_async_cache(pool), &cs0);
	}
	deadline = evtimer_new(base, on_deadline, &run);
	evtimer_add(deadline, &tv);
	t0 = now_ns();
	for (unsigned i = 0; i < inflight; i++)
		issue(&slots[i]);
	/* Returns when the deadline has passed and the last lookups in
	 * flight have come back (table_async adds no event of its own while
	 * nothing is pending). */
	event_base_dispatch(base);
	elapsed_ns = now_ns() - t0;
	secs = (double)elapsed_ns / 1e9;
	if (table_async_cache(pool) != NULL) {
		uint64_t hits, misses;

		table_cache_get_stats(table_async_cache(pool), &cs);
		hits = cs.hits - cs0.hits;
		misses = cs.misses - cs0.misses;
		if (hits + misses > 0)
			hit_pct = 100.0 * (double)hits / (double)(hits + misses);
	}
	qsort(run.lat_us, run.nlat, sizeof(*run.lat_us), cmp_u32);
	snprintf(type, sizeof(type), "%.*s", colon != NULL ? (int)(colon - spec) : 0, spec);
	printf("| %s | %s | %u | %zu | %.0f | %.3f | %.3f | %.3f | %.1f | %" PRIu64 " / %" PRIu64
	       " / %" PRIu64 " |\n",
	       type, mode, inflight, run.nlat, (double)run.nlat / secs, percentile_ms(&run, 0.50),
	       percentile_ms(&run, 0.99), percentile_ms(&run, 1.0), hit_pct, run.found,
	       run.notfound, run.tempfail);
	fflush(stdout);
	if (run.tempfail > 0)
		fprintf(stderr, "lookup_bench: %s: %" PRIu64 " temporary failures, first: %s\n",
		        spec, run.tempfail, str_c(&run.first_error));
	event_free(deadline);
	table_async_destroy(&pool);
	event_base_free(base);
	free(slots);
	free(run.lat_us);
	str_free(&run.first_error);
	return run.tempfail;
}

static void read_keys(const char *path, strv_t *keys)
{
	str_t text, error;
	size_t start = 0;

	str_init(&text);
	str_init(&error);
	if (fs_read_file(path, KEYFILE_MAX, &text, &error) < 0) {
		fprintf(stderr, "lookup_bench: %s\n", str_c(&error));
		exit(EXIT_USAGE);
	}
	for (size_t i = 0; i <= text.len; i++) {
		if (i == text.len || text.buf[i] == '\n') {
			if (i > start)
				strv_add_n(keys, text.buf + start, i - start);
			start = i + 1;
		}
	}
	if (keys->n == 0) {
		fprintf(stderr, "lookup_bench: %s: no keys\n", path);
		exit(EXIT_USAGE);
	}
	str_free(&text);
	str_free(&error);
}

static int bench_main(const struct options *o, int nspecs, char **specs)
{
	strv_t keys = STRV_INIT;
	uint64_t tempfail = 0;
	unsigned levels[16];
	size_t nlevels = 0;

	if (o->keyfile == NULL || nspecs < 1)
		usage();
	for (size_t i = 0; i < o->inflight.n; i++) {
		uint64_t v;

		if (nlevels == sizeof(levels) / sizeof(levels[0]) ||
		    parse_uint64(o->inflight.v[i], 1, INFLIGHT_MAX, &v) < 0) {
			fprintf(stderr, "lookup_bench: -j: bad level \"%s\": expected 1 to %d\n",
			        o->inflight.v[i], INFLIGHT_MAX);
			exit(EXIT_USAGE);
		}
		levels[nlevels++] = (unsigned)v;
	}
	for (size_t i = 0; i < o->modes.n; i++) {
		if (strcmp(o->modes.v[i], "on") != 0 && strcmp(o->modes.v[i], "off") != 0) {
			fprintf(stderr, "lookup_bench: -m: bad mode \"%s\": expected on or off\n",
			        o->modes.v[i]);
			exit(EXIT_USAGE);
		}
	}
	read_keys(o->keyfile, &keys);

	printf("| table | cache | in flight | lookups | lookups/s | p50 ms | p99 ms | max ms | "
	       "cache hits %% | found / not found / tempfail |\n");
	printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
	for (int s = 0; s < nspecs; s++) {
		for (size_t m = 0; m < o->modes.n; m++) {
			struct config *cfg = load_config(o);

			/* The cache is only in front of remote tables; "off"
			 * measures the backend itself. */
			if (strcmp(o->modes.v[m], "off") == 0)
				config_set(cfg, "table_cache_size", "0", "lookup_bench -m off");
			for (size_t l = 0; l < nlevels; l++)
				tempfail += bench_one(o, cfg, specs[s], &keys, o->modes.v[m],
				                      levels[l]);
			config_destroy(&cfg);
		}
	}
	strv_free(&keys);
	if (tempfail > 0) {
		fprintf(stderr,
		        "lookup_bench: %" PRIu64 " lookups failed temporarily: these figures "
		        "measure failures, not lookups\n",
		        tempfail);
		return 1;
	}
	return 0;
}

/* ---- query mode (-q) -------------------------------------------------- */

struct query {
	struct event_base *base;
	struct table_async *pool;
	const char *spec;
	struct event *stdin_ev;
	str_t line; /* partial input line */
	bool eof;
	bool overlong; /* discarding the rest of an overlong line */
};

struct query_req {
	struct query *q;
	char *key;
};

static void print_answer(const char *key, const struct table_result *r)
{
	switch (r->status) {
	case TABLE_FOUND:
		printf("%s\tFOUND\t%s\n", key, str_c(&r->value));
		break;
	case TABLE_NOTFOUND:
		printf("%s\tNOTFOUND%s\n", key, r->stale ? "\tstale" : "");
		break;
	case TABLE_TEMPFAIL:
		printf("%s\tTEMPFAIL\t%s\n", key, str_c(&r->error));
		break;
	}
	fflush(stdout);
}

static void on_query_answer(const struct table_result *r, void *ctx)
{
	struct query_req *qr = ctx;

	print_answer(qr->key, r);
	free(qr->key);
	free(qr);
}

static void query_key(struct query *q, const char *key, size_t len)
{
	struct query_req *qr = xcalloc(1, sizeof(*qr));

	qr->q = q;
	qr->key = xstrndup(key, len);
	table_async_lookup(q->pool, q->spec, qr->key, on_query_answer, qr);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
	struct query *q = arg;
	char buf[4096];
	ssize_t n;

	(void)what;
	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		if (n < 0)
			log_warning("read standard input: %m");
		if (q->line.len > 0 && !q->overlong)
			query_key(q, q->line.buf, q->line.len);
		event_del(q->stdin_ev);
		q->eof = true;
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			if (q->overlong)
				printf("(overlong line)\tTEMPFAIL\tline longer than %d bytes\n",
				       QUERY_LINE_MAX);
			else if (q->line.len > 0)
				query_key(q, q->line.buf, q->line.len);
			str_reset(&q->line);
			q->overlong = false;
		} else if (q->line.len >= QUERY_LINE_MAX) {
			q->overlong = true;
		} else if (!q->overlong) {
			str_append_c(&q->line, buf[i]);
		}
	}
}

static int query_main(const struct options *o, int nspecs, char **specs)
{
	struct query q = {.spec = specs[0]};
	struct config *cfg;

	if (nspecs != 1)
		usage();
	cfg = load_config(o);
	str_init(&q.line);
	q.base = event_base_new();
	if (q.base == NULL)
		log_fatal("cannot create an event base");
	q.pool = make_pool(q.base, cfg, o);
	q.stdin_ev = event_new(q.base, STDIN_FILENO, EV_READ | EV_PERSIST, on_stdin, &q);
	event_add(q.stdin_ev, NULL);
	/* Runs until standard input is closed and every answer is printed. */
	event_base_dispatch(q.base);
	event_free(q.stdin_ev);
	table_async_destroy(&q.pool);
	event_base_free(q.base);
	config_destroy(&cfg);
	str_free(&q.line);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = {.seconds = 3};
	const char *error;
	int opt, rc;

	(void)log_open("lookup_bench", LOG_TARGET_STDERR, NULL, &error);
	while ((opt = getopt(argc, argv, "c:d:j:k:m:o:qvw:")) != -1) {
		uint64_t v;

		switch (opt) {
		case 'c':
			o.config_dir = optarg;
			break;
		case 'd':
			if (parse_time(optarg, 's', 86400, &o.seconds) < 0 || o.seconds == 0) {
				fprintf(stderr, "lookup_bench: -d: bad duration \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'j':
			strv_free(&o.inflight);
			if (strv_split_list(&o.inflight, optarg, &error) < 0) {
				fprintf(stderr, "lookup_bench: -j: %s\n", error);
				return EXIT_USAGE;
			}
			break;
		case 'k':
			o.keyfile = optarg;
			break;
		case 'm':
			strv_free(&o.modes);
			if (strv_split_list(&o.modes, optarg, &error) < 0) {
				fprintf(stderr, "lookup_bench: -m: %s\n", error);
				return EXIT_USAGE;
			}
			break;
		case 'o':
			strv_add(&o.overrides, optarg);
			break;
		case 'q':
			o.query = true;
			break;
		case 'v':
			log_set_verbose(log_verbose() + 1);
			break;
		case 'w':
			if (parse_uint64(optarg, 1, 256, &v) < 0) {
				fprintf(stderr, "lookup_bench: -w: expected 1 to 256 workers\n");
				return EXIT_USAGE;
			}
			o.workers = (unsigned)v;
			break;
		default:
			usage();
		}
	}
	if (o.inflight.n == 0) {
		strv_add(&o.inflight, "1");
		strv_add(&o.inflight, "8");
		strv_add(&o.inflight, "64");
	}
	if (o.modes.n == 0) {
		strv_add(&o.modes, "off");
		strv_add(&o.modes, "on");
	}
	if (o.query)
		rc = query_main(&o, argc - optind, argv + optind);
	else
		rc = bench_main(&o, argc - optind, argv + optind);
	strv_free(&o.overrides);
	strv_free(&o.inflight);
	strv_free(&o.modes);
	return rc;
}
